// The desired state the reconciler works from: the current config version's device model (config/model.ts, read
// once per version) as EVE's pillar runs it, plus the operator's local commands.
import { createHash } from "node:crypto";
import { NOT_OPENED, type RevealedSecrets } from "../config/cipher.ts";
import { buildDeviceModel, type DeviceModel, type VolumeModel } from "../config/model.ts";
import type { ObjectProblem } from "../config/problems.ts";
import type { VmBootOrder } from "../config/boot-order.ts";
import type { DesiredVm } from "./vms.ts";
import type { DesiredNetwork } from "../network/manager.ts";
import type { Assignment } from "../hardware/assign.ts";
import { type AppDevices, hasDevices, NO_DEVICES } from "../hardware/types.ts";

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
  /** Its datastore's credentials came encrypted (cipherData): they stay out of every hash and key. */
  encrypted?: boolean;
  error: string | null;
}

/** A volume as the workloads need it: the model's, without what only validation and the UI read. */
export type DesiredVolume = Pick<VolumeModel, "uuid" | "name" | "generation" | "origin" | "contentTreeId" | "sizeBytes">;

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
  /** What the app holds of the host's I/O (its adapters, assigned by hardware/assign.ts). */
  devices: AppDevices;
  /** Hash of everything that requires a new container when it changes. */
  generation: string;
  /** Why this app cannot run as configured (a fault in its config or its references). */
  error: string | null;
  /** Why it is held halted whatever its activate says (maintenance mode, a device command), when it is. */
  haltedBy?: string;
}

export interface DesiredState {
  /** The device's model it was read from (config/model.ts): a kind's own reading (a VM's disks, firmware) starts there. */
  model: DeviceModel;
  apps: DesiredApp[];
  volumes: DesiredVolume[];
  contentTrees: DesiredContentTree[];
  /** The VM of each VM app, when the reconciler runs VMs. */
  vms?: Map<string, DesiredVm>;
  /** Network instances, app interfaces and the firewall (network/), when the network part runs. */
  network?: DesiredNetwork;
  /** The model's cipher blocks, opened (config/cipher.ts); absent until they were. */
  secrets?: RevealedSecrets;
  /** VM boot orders a Local Profile Server set (appbootinfo), by app uuid: they win over the config's. */
  lpsBootOrders?: ReadonlyMap<string, VmBootOrder>;
}

/** What the operator asked for locally (EVE's local profile server does the same): kept per app. */
export interface LocalCommands {
  /** Overrides `activate` until the app's config version changes. */
  activate?: { value: boolean; forVersion: string };
  restarts?: number;
  purges?: number;
}

/**
 * The desired state of a raw document (tests, benches): its model (config/model.ts) read as the reconciler reads
 * the current version's (`desiredFromModel`).
 */
export function desiredFromConfig(doc: Doc | null, objectErrors: ObjectProblem[] = [], local: Map<string, LocalCommands> = new Map()): DesiredState {
  return desiredFromModel(buildDeviceModel(doc).model, objectErrors, local);
}

/**
 * The apps, volumes and content trees of the device's model, as EVE's pillar runs them: an app's kind from the
 * format of its first volume's content tree, a container's environment and command from its userData, the
 * validation's problems of an object as that object's error (a controller's faulty objects are held in error).
 */
export function desiredFromModel(
  model: DeviceModel,
  objectErrors: ObjectProblem[] = [],
  local: Map<string, LocalCommands> = new Map(),
  secrets?: RevealedSecrets,
  /** A Local Profile Server's profile: it overrides the config's `global_profile`. */
  localProfile?: string | null,
): DesiredState {
  // EVE: an app with a profile list runs only in one of its profiles; with no current profile, every app runs.
  const profile = localProfile || model.globalProfile;
  const errorsOf = (kind: string, id: string) =>
    objectErrors.filter((p) => p.objectKind === kind && p.objectId === id).map((p) => `${p.path}: ${p.message}`);
  const encryptedDatastores = new Set(model.datastores.filter((d) => d.cipher).map((d) => d.id));

  const contentTrees: DesiredContentTree[] = model.contentTrees.map((ct): DesiredContentTree => {
    const errors = [...errorsOf("contentTree", ct.uuid), ...ct.faults];
    let source: DesiredContentTree["source"] = ct.source ?? { kind: "http", url: "" };
    const encrypted = encryptedDatastores.has(ct.datastoreId);
    if (encrypted) {
      // EVE's downloader: the opened block's credentials replace the datastore's clear ones.
      const opened = secrets?.datastores.get(ct.datastoreId);
      if (!opened) errors.push(`datastore ${ct.datastoreId}: ${NOT_OPENED}`);
      else if (!opened.ok) errors.push(`datastore ${ct.datastoreId}: its encrypted credentials (cipherData) cannot be opened: ${opened.error}`);
      else if (source.kind === "registry") {
        const { username: _u, password: _p, ...rest } = source;
        source = { ...rest, ...(opened.value.username !== null ? { username: opened.value.username } : {}), ...(opened.value.password !== null ? { password: opened.value.password } : {}) };
      }
    }
    return {
      uuid: ct.uuid,
      name: ct.name,
      format: ct.format,
      source,
      sha256: ct.sha256,
      maxSizeBytes: ct.maxSizeBytes,
      referenced: ct.referenced,
      ...(encrypted ? { encrypted } : {}),
      error: errors.length ? errors.join("; ") : null,
    };
  });
  const treesById = new Map(contentTrees.map((c) => [c.uuid, c]));

  const volumes: DesiredVolume[] = model.volumes.map((v) => ({
    uuid: v.uuid,
    name: v.name,
    generation: v.generation,
    origin: v.origin,
    contentTreeId: v.contentTreeId,
    sizeBytes: v.sizeBytes,
  }));
  const desiredVolumes = new Map(volumes.map((v) => [v.uuid, v]));

  const apps: DesiredApp[] = model.apps.map((a): DesiredApp => {
    const errors = errorsOf("app", a.uuid);
    const tree = a.imageContentTree ? treesById.get(a.imageContentTree) : undefined;
    const kind: AppKind = a.kind ?? "unknown";
    if (!a.kind && !errors.length) errors.push(...a.faults);
    let userData = a.userData;
    if (a.cipher) {
      // EVE's domainmgr: the protected user data of the opened block is the app's user data.
      const opened = secrets?.apps.get(a.uuid);
      if (!opened) errors.push(`cipherData: ${NOT_OPENED}`);
      else if (!opened.ok) errors.push(`cipherData: the app's encrypted user data cannot be opened: ${opened.error}`);
      else {
        userData = opened.value;
        errors.push(...userData.problems.map((m) => `cipherData (protected user data): ${m}`));
      }
    }
    const { env, cmd } = userData;
    const mounts: DesiredMount[] = [];
    const blank = a.volumeRefs.slice(kind === "container" ? 1 : 0).map((r) => ({ ref: r, vol: desiredVolumes.get(r.uuid) }));
    blank.forEach(({ ref, vol }, i) => {
      if (!vol) return; // a missing reference is already an error from validation
      if (kind === "container" && vol.origin !== "blank") return;
      // A volume's name becomes one path component in the container, when it is one (validation checks mountDir).
      const dirName = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(vol.name) ? vol.name : `volume${i + 1}`;
      const target = ref.mountDir || (blank.length === 1 ? "/mnt" : `/mnt/${dirName}`);
      mounts.push({ volumeUuid: vol.uuid, generation: vol.generation, target, readOnly: false });
    });
    const memoryBytes = a.resources.memoryKiB * 1024;
    const nanoCpus = a.resources.vcpus * 1e9;
    const interfaces = a.interfaces.map((i) => ({ name: i.name, networkId: i.networkId }));
    const l = local.get(a.uuid);
    const inProfile = !profile || a.profiles.length === 0 || a.profiles.includes(profile);
    const activate = l?.activate && l.activate.forVersion === a.version ? l.activate.value : a.activate && inProfile;
    // What makes a new container when it changes: the same fields, in the same order, as before the model, so an
    // upgrade of evebox never recreates a running app.
    // Credentials that came encrypted stay out of it (the hash is a container label).
    const image = tree ? (tree.encrypted && tree.source.kind === "registry" ? { kind: "registry", fqdn: tree.source.fqdn, url: tree.source.url, encrypted: true } : tree.source) : null;
    const spec = { image: tree ? [image, tree.sha256] : null, env, cmd, memoryBytes, nanoCpus, mounts, interfaces, kind };
    return {
      uuid: a.uuid,
      name: a.name,
      version: a.version,
      kind,
      activate,
      imageContentTree: tree?.uuid ?? null,
      env,
      cmd,
      memoryBytes,
      nanoCpus,
      mounts,
      restartCounter: a.restartCounter + (l?.restarts ?? 0),
      purgeCounter: a.purgeCounter + (l?.purges ?? 0),
      startDelaySec: a.startDelaySec,
      networked: a.interfaces.length > 0,
      interfaces,
      devices: NO_DEVICES,
      generation: createHash("sha256").update(JSON.stringify(spec)).digest("hex").slice(0, 16),
      error: errors.length ? errors.join("; ") : tree?.error ? `content tree ${tree.name}: ${tree.error}` : null,
    };
  });

  return { model, apps, volumes, contentTrees, ...(secrets ? { secrets } : {}) };
}

/**
 * The adapters each app was assigned (hardware/assign.ts): its devices, or why it cannot have them (the app's
 * error: it is not started, the other apps are). Devices are part of a container's spec only when it has some, so
 * the spec hash of an app without adapters is what it always was.
 */
export function withAdapters(desired: DesiredState, assignment: Assignment): void {
  for (const app of desired.apps) {
    const a = assignment.apps.get(app.uuid);
    if (!a) continue;
    if (a.error) {
      if (!app.error) app.error = a.error;
      continue;
    }
    if (!hasDevices(a.devices)) continue;
    app.devices = a.devices;
    app.generation = createHash("sha256").update(JSON.stringify([app.generation, a.devices])).digest("hex").slice(0, 16);
  }
}
