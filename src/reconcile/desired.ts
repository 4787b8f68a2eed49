// The desired state the reconciler works from: the current EdgeDevConfig (toObject form) read the
// way EVE's pillar reads it, plus the operator's local commands.
import { createHash } from "node:crypto";
import { readUserData } from "../config/userdata.ts";
import type { ObjectProblem } from "../config/validate.ts";
import type { DesiredVm } from "./vms.ts";
import type { DesiredNetwork } from "../network/manager.ts";

type Doc = Record<string, any>;

export type AppKind = "container" | "vm" | "unknown";

export interface DesiredContentTree {
  uuid: string;
  name: string;
  format: string;
  source: { kind: "registry"; fqdn: string; url: string; username?: string; password?: string } | { kind: "http"; url: string };
  sha256: string | null;
  maxSizeBytes: number | null;
  /** Used by an app of this config (unreferenced ones are not fetched). */
  referenced: boolean;
  error: string | null;
}

export interface DesiredVolume {
  uuid: string;
  name: string;
  generation: number;
  origin: "blank" | "download";
  contentTreeId: string | null;
  sizeBytes: number;
}

export interface DesiredMount {
  volumeUuid: string;
  generation: number;
  target: string;
  readOnly: boolean;
}

export interface DesiredApp {
  uuid: string;
  name: string;
  version: string;
  kind: AppKind;
  activate: boolean;
  imageContentTree: string | null;
  env: Record<string, string>;
  cmd: string[] | null;
  memoryBytes: number;
  nanoCpus: number;
  mounts: DesiredMount[];
  /** Effective counters: the config's plus the operator's local commands. */
  restartCounter: number;
  purgeCounter: number;
  startDelaySec: number;
  networked: boolean;
  /** The app's interfaces (name, network instance) in config order; which instance each is on is part of the spec. */
  interfaces: { name: string; networkId: string }[];
  /** Hash of everything that requires a new container when it changes. */
  generation: string;
  /** Why this app cannot run as configured (a fault in its config or its references). */
  error: string | null;
}

export interface DesiredState {
  apps: DesiredApp[];
  volumes: DesiredVolume[];
  contentTrees: DesiredContentTree[];
  /** The VM of each VM app, when the reconciler runs VMs. */
  vms?: Map<string, DesiredVm>;
  /** Network instances, app interfaces and the firewall (network/), when the network part runs. */
  network?: DesiredNetwork;
}

/** What the operator asked for locally (EVE's local profile server does the same): kept per app. */
export interface LocalCommands {
  /** Overrides `activate` until the app's config version changes. */
  activate?: { value: boolean; forVersion: string };
  restarts?: number;
  purges?: number;
}

const CONTAINER_FORMATS = new Set(["CONTAINER"]);
const DISK_FORMATS = new Set(["RAW", "QCOW", "QCOW2", "VHD", "VMDK", "OVA", "VHDX", "ISO"]);

export function desiredFromConfig(doc: Doc | null, objectErrors: ObjectProblem[] = [], local: Map<string, LocalCommands> = new Map()): DesiredState {
  if (!doc) return { apps: [], volumes: [], contentTrees: [] };
  const errorsOf = (kind: string, id: string) =>
    objectErrors.filter((p) => p.objectKind === kind && p.objectId === id).map((p) => `${p.path}: ${p.message}`);

  const datastores = new Map<string, Doc>((doc.datastores ?? []).map((d: Doc) => [d.id, d]));
  const volumesById = new Map<string, Doc>((doc.volumes ?? []).map((v: Doc) => [v.uuid, v]));
  const referencedVolumes = new Set<string>();
  for (const a of doc.apps ?? []) for (const r of a.volumeRefList ?? []) referencedVolumes.add(r.uuid);
  const referencedTrees = new Set<string>();
  for (const id of referencedVolumes) {
    const ct = volumesById.get(id)?.origin?.downloadContentTreeID;
    if (ct) referencedTrees.add(ct);
  }

  const contentTrees: DesiredContentTree[] = (doc.contentInfo ?? []).map((ct: Doc): DesiredContentTree => {
    const errors = errorsOf("contentTree", ct.uuid);
    const ds = datastores.get(ct.dsId);
    let source: DesiredContentTree["source"] = { kind: "http", url: "" };
    if (!ds) errors.push(`dsId: no datastore ${ct.dsId}`);
    else if (ds.dType === "DsContainerRegistry") {
      source = { kind: "registry", fqdn: ds.fqdn, url: ct.URL ?? "", username: ds.apiKey || undefined, password: ds.password || undefined };
    } else if (ds.dType === "DsHttp" || ds.dType === "DsHttps") {
      const base = String(ds.fqdn ?? "").replace(/\/+$/, "");
      const dpath = String(ds.dpath ?? "").replace(/^\/+|\/+$/g, "");
      source = { kind: "http", url: [base, dpath, String(ct.URL ?? "").replace(/^\/+/, "")].filter(Boolean).join("/") };
      if (!/^https?:\/\//.test(base)) errors.push(`datastore ${ds.id}: fqdn ${JSON.stringify(ds.fqdn)} must start with http:// or https://`);
      if (ds.dType === "DsHttps" && !base.startsWith("https://")) errors.push(`datastore ${ds.id}: an Https datastore needs an https:// fqdn`);
      if (!ct.sha256) errors.push("sha256: a content tree from an Http(s) datastore needs its sha256");
    } else errors.push(`datastore ${ds.id}: datastore type ${ds.dType ?? "(none)"} is not supported (Http, Https, ContainerRegistry are)`);
    return {
      uuid: ct.uuid,
      name: ct.displayName || ct.URL || ct.uuid,
      format: ct.iformat ?? "FmtUnknown",
      source,
      sha256: ct.sha256 ? String(ct.sha256).toLowerCase() : null,
      maxSizeBytes: ct.maxSizeBytes ? Number(ct.maxSizeBytes) : null,
      referenced: referencedTrees.has(ct.uuid),
      error: errors.length ? errors.join("; ") : null,
    };
  });
  const treesById = new Map(contentTrees.map((c) => [c.uuid, c]));

  const volumes: DesiredVolume[] = (doc.volumes ?? []).map((v: Doc) => ({
    uuid: v.uuid,
    name: v.displayName ?? "",
    generation: Number(v.generationCount ?? 0),
    origin: v.origin?.type === "VCOT_DOWNLOAD" ? "download" : "blank",
    contentTreeId: v.origin?.downloadContentTreeID ?? null,
    sizeBytes: Number(v.maxsizebytes ?? 0),
  }));
  const desiredVolumes = new Map(volumes.map((v) => [v.uuid, v]));

  const apps: DesiredApp[] = (doc.apps ?? []).map((a: Doc): DesiredApp => {
    const uuid: string = a.uuidandversion?.uuid ?? "";
    const version: string = a.uuidandversion?.version ?? "";
    const errors = errorsOf("app", uuid);
    const refs: Doc[] = a.volumeRefList ?? [];
    const first = refs[0] ? desiredVolumes.get(refs[0].uuid) : undefined;
    const tree = first?.contentTreeId ? treesById.get(first.contentTreeId) : undefined;
    let kind: AppKind = "unknown";
    if (tree && CONTAINER_FORMATS.has(tree.format)) kind = "container";
    else if (tree && DISK_FORMATS.has(tree.format)) kind = "vm";
    else if (!errors.length) errors.push("volumeRefList[0]: the app's first volume must come from a content tree of format CONTAINER (a container) or a disk format (a VM)");

    const { env, cmd } = readUserData(a.userData);
    const mounts: DesiredMount[] = [];
    const blank = refs.slice(kind === "container" ? 1 : 0).map((r) => ({ ref: r, vol: desiredVolumes.get(r.uuid) }));
    blank.forEach(({ ref, vol }, i) => {
      if (!vol) return; // a missing reference is already an error from validation
      if (kind === "container" && vol.origin !== "blank") return;
      // A volume's name becomes one path component in the container, when it is one (validation checks mountDir).
      const dirName = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(vol.name) ? vol.name : `volume${i + 1}`;
      const target = ref.mountDir || (blank.length === 1 ? "/mnt" : `/mnt/${dirName}`);
      mounts.push({ volumeUuid: vol.uuid, generation: vol.generation, target, readOnly: false });
    });
    const memoryBytes = Number(a.fixedresources?.memory ?? 0) * 1024;
    const nanoCpus = Number(a.fixedresources?.vcpus ?? 0) * 1e9;
    const networked = (a.interfaces ?? []).length > 0;
    const interfaces = (a.interfaces ?? []).map((i: Doc, n: number) => ({ name: i.name || `eth${n}`, networkId: i.networkId ?? "" }));
    const l = local.get(uuid);
    const activate = l?.activate && l.activate.forVersion === version ? l.activate.value : !!a.activate;
    const spec = { image: tree ? [tree.source, tree.sha256] : null, env, cmd, memoryBytes, nanoCpus, mounts, interfaces, kind };
    return {
      uuid,
      name: a.displayname ?? uuid,
      version,
      kind,
      activate,
      imageContentTree: tree?.uuid ?? null,
      env,
      cmd,
      memoryBytes,
      nanoCpus,
      mounts,
      restartCounter: Number(a.restart?.counter ?? 0) + (l?.restarts ?? 0),
      purgeCounter: Number(a.purge?.counter ?? 0) + (l?.purges ?? 0),
      startDelaySec: Number(a.startDelayInSeconds ?? 0),
      networked,
      interfaces,
      generation: createHash("sha256").update(JSON.stringify(spec)).digest("hex").slice(0, 16),
      error: errors.length ? errors.join("; ") : tree?.error ? `content tree ${tree.name}: ${tree.error}` : null,
    };
  });

  return { apps, volumes, contentTrees };
}
