// Edits of VM apps (the app form's "Virtual machine"), after the way the device reads a VM (reconcile/vms.ts):
// every volume is a disk in config order — the first from an image's content tree (a qcow2 overlay over it grown
// to the volume's `maxsizebytes`; an ISO is attached as a CD-ROM, so an installer gets a blank disk of the chosen
// size after it), then blank extra disks; `fixedresources.virtualizationMode` FML boots UEFI, HVM BIOS;
// `userData` (base64) is the cloud-init user-data; `remoteConsole` gives the graphical console;
// `startDelayInSeconds` delays its start. A VM's image comes from an Http(s) datastore with its sha256.
import { DISK_FORMATS, deviceModel } from "../src/config/model.ts";
import { readUserData } from "../src/config/userdata.ts";
import { bumpVersion, encodeBase64, findOrAddDatastore, normalizeSha256, removeUnreferenced } from "./config-edit";
import { type InterfaceInput, interfacesOf, writeInterfaces } from "./interfaces-edit";
import { IMPORTED_DATASTORE, type ImportedImage, withImportedImage } from "./images";

export type Doc = Record<string, any>;

export type VmDiskFormat = "QCOW2" | "RAW" | "ISO";

export type VmImageSource =
  /** A content tree already in the document (an image the device has). */
  | { kind: "tree"; treeUuid: string }
  | { kind: "url"; url: string; sha256: string; format: VmDiskFormat }
  /** An image uploaded to the device (GET /api/v1/images), named by its sha256: never downloaded. */
  | { kind: "imported"; image: ImportedImage | null };

export interface VmAppInput {
  name: string;
  source: VmImageSource;
  /** The boot disk's size (an overlay over the image grown to it; for an ISO, the blank disk installed to). 0: the image's own. */
  diskMiB: number;
  firmware: "bios" | "uefi";
  memoryMiB: number;
  vcpus: number;
  /** Sizes of blank extra disks, MiB. */
  extraDisksMiB: number[];
  cloudInit: string;
  vnc: boolean;
  startDelaySec: number;
  interfaces: InterfaceInput[];
}

/** What can change after creation; absent fields stay. */
export interface VmChanges {
  memoryMiB?: number;
  vcpus?: number;
  firmware?: "bios" | "uefi";
  cloudInit?: string;
  vnc?: boolean;
  startDelaySec?: number;
  /** Extra disks: kept ones by uuid, new ones by size; the others are removed. */
  extraDisks?: { uuid?: string; sizeMiB?: number }[];
  interfaces?: InterfaceInput[];
}

const MIB = 1024 * 1024;

export const CLOUD_INIT_EXAMPLE = `#cloud-config
hostname: my-vm
users:
  - name: operator
    sudo: ALL=(ALL) NOPASSWD:ALL
    ssh_authorized_keys:
      - ssh-ed25519 AAAA… operator@laptop
packages:
  - nginx
runcmd:
  - systemctl enable --now nginx
`;

/** Images in the document a VM can boot from: content trees of a disk format, from an Http(s) datastore, with a sha256. */
export function vmImageChoices(doc: Doc | null): { uuid: string; name: string; format: string }[] {
  if (!doc) return [];
  return deviceModel(doc)
    // Uploaded images are offered as such (their own choice), not a second time here.
    .contentTrees.filter((t) => DISK_FORMATS.has(t.format) && t.source?.kind === "http" && t.sha256 && t.datastoreId !== IMPORTED_DATASTORE.id)
    .map((t) => ({ uuid: t.uuid, name: t.name, format: t.format }));
}

function resources(input: { memoryMiB: number; vcpus: number; firmware: "bios" | "uefi" }, old: Doc = {}): Doc {
  const kib = Math.round(input.memoryMiB * 1024);
  return { ...old, memory: kib, maxmem: kib, vcpus: input.vcpus, virtualizationMode: input.firmware === "uefi" ? "FML" : "HVM" };
}

function blankDisk(doc: Doc, appName: string, sizeMiB: number, newId: () => string): Doc {
  const uuid = newId();
  const taken = new Set((doc.volumes as Doc[]).map((x) => x.displayName));
  let displayName = `${appName}-disk`;
  for (let n = 2; taken.has(displayName); n++) displayName = `${appName}-disk-${n}`;
  doc.volumes.push({ uuid, origin: { type: "VCOT_BLANK" }, maxsizebytes: String(sizeMiB * MIB), displayName, generationCount: "0" });
  return { uuid };
}

function userData(app: Doc, text: string): void {
  if (text.trim()) app.userData = encodeBase64(text);
  else delete app.userData;
}

export function addVmApp(doc: Doc | null, input: VmAppInput, newId: () => string = () => crypto.randomUUID()): Doc {
  const next = structuredClone(doc ?? {});
  const name = input.name.trim();
  next.datastores ??= [];
  next.contentInfo ??= [];
  next.volumes ??= [];
  next.apps ??= [];
  let treeUuid: string;
  let format: string;
  if (input.source.kind === "imported") {
    if (!input.source.image) throw new Error("choose an image uploaded to the device");
    const imported = withImportedImage(next, input.source.image, newId);
    next.datastores = imported.doc.datastores;
    next.contentInfo = imported.doc.contentInfo;
    treeUuid = imported.contentTreeId;
    format = input.source.image.eveFormat;
  } else if (input.source.kind === "tree") {
    const src = input.source;
    const tree = (next.contentInfo as Doc[]).find((c) => c.uuid === src.treeUuid);
    if (!tree) throw new Error(`the image ${src.treeUuid} is not in the configuration any more`);
    treeUuid = tree.uuid;
    format = String(tree.iformat ?? "");
  } else {
    const url = new URL(input.source.url.trim());
    const dsId = findOrAddDatastore(next, { dType: url.protocol === "https:" ? "DsHttps" : "DsHttp", fqdn: `${url.protocol}//${url.host}` }, newId);
    treeUuid = newId();
    format = input.source.format;
    const file = url.pathname.slice(url.pathname.lastIndexOf("/") + 1) || name;
    next.contentInfo.push({ uuid: treeUuid, dsId, URL: url.pathname.replace(/^\/+/, "") + url.search, iformat: format, sha256: normalizeSha256(input.source.sha256), displayName: file });
  }
  const refs: Doc[] = [];
  const boot = newId();
  const iso = format === "ISO";
  next.volumes.push({
    uuid: boot,
    origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: treeUuid },
    displayName: iso ? `${name}-installer` : `${name}-boot`,
    generationCount: "0",
    ...(!iso && input.diskMiB > 0 ? { maxsizebytes: String(input.diskMiB * MIB) } : {}),
    ...(iso ? { readonly: true } : {}),
  });
  refs.push({ uuid: boot });
  if (iso) refs.push(blankDisk(next, name, input.diskMiB, newId));
  for (const size of input.extraDisksMiB) refs.push(blankDisk(next, name, size, newId));
  const app: Doc = {
    uuidandversion: { uuid: newId(), version: "1" },
    displayname: name,
    activate: true,
    fixedresources: resources(input),
    volumeRefList: refs,
    ...(input.vnc ? { remoteConsole: true } : {}),
    ...(input.startDelaySec > 0 ? { startDelayInSeconds: input.startDelaySec } : {}),
  };
  userData(app, input.cloudInit);
  writeInterfaces(app, input.interfaces);
  next.apps.push(app);
  return next;
}

export interface VmView {
  firmware: "bios" | "uefi";
  cloudInit: string;
  vnc: boolean;
  startDelaySec: number;
  /** The disks the image's volume is followed by (an ISO's install disk first, when there is one). */
  extraDisks: { uuid: string; name: string; sizeMiB: number }[];
  /** The boot image is an ISO: the first extra disk is its install disk (not removable here). */
  iso: boolean;
  interfaces: InterfaceInput[];
}

export function readVm(doc: Doc | null, uuid: string): VmView | null {
  if (!doc) return null;
  const m = deviceModel(doc);
  const app = m.apps.find((a) => a.uuid === uuid);
  if (!app) return null;
  const tree = m.contentTrees.find((t) => t.uuid === app.imageContentTree);
  const raw = (doc.apps as Doc[]).find((a) => a.uuidandversion?.uuid === uuid);
  return {
    firmware: app.resources.virtualizationMode === "FML" ? "uefi" : "bios",
    cloudInit: readUserData(raw?.userData).text ?? "",
    vnc: app.resources.remoteConsole,
    startDelaySec: app.startDelaySec,
    iso: tree?.format === "ISO",
    extraDisks: app.volumeRefs.slice(1).map((r) => {
      const v = m.volumes.find((x) => x.uuid === r.uuid);
      return { uuid: r.uuid, name: v?.name || r.uuid, sizeMiB: Math.round((v?.sizeBytes ?? 0) / MIB) };
    }),
    interfaces: interfacesOf(doc, uuid),
  };
}

export function updateVmApp(doc: Doc, uuid: string, changes: VmChanges, newId: () => string = () => crypto.randomUUID()): Doc {
  const next = structuredClone(doc);
  const app = (next.apps ?? []).find((a: Doc) => a.uuidandversion?.uuid === uuid);
  if (!app) throw new Error(`no app with uuid ${uuid} in the configuration`);
  const fixed: Doc = app.fixedresources ?? {};
  if (changes.memoryMiB !== undefined || changes.vcpus !== undefined || changes.firmware !== undefined) {
    app.fixedresources = resources(
      {
        memoryMiB: changes.memoryMiB ?? Math.round(Number(fixed.memory ?? 0) / 1024),
        vcpus: changes.vcpus ?? Number(fixed.vcpus ?? 1),
        firmware: changes.firmware ?? (fixed.virtualizationMode === "FML" ? "uefi" : "bios"),
      },
      fixed,
    );
  }
  if (changes.cloudInit !== undefined) userData(app, changes.cloudInit);
  if (changes.vnc !== undefined) {
    if (changes.vnc) app.remoteConsole = true;
    else {
      delete app.remoteConsole;
      if (app.fixedresources) delete app.fixedresources.enableVnc;
    }
  }
  if (changes.startDelaySec !== undefined) {
    if (changes.startDelaySec > 0) app.startDelayInSeconds = changes.startDelaySec;
    else delete app.startDelayInSeconds;
  }
  if (changes.extraDisks) {
    const [boot, ...extra] = (app.volumeRefList ?? []) as Doc[];
    const kept = new Set(changes.extraDisks.map((d) => d.uuid).filter(Boolean));
    const dropped = extra.filter((r) => !kept.has(r.uuid)).map((r) => r.uuid as string);
    next.volumes ??= [];
    const refs: Doc[] = boot ? [boot] : [];
    for (const d of changes.extraDisks) {
      if (d.uuid) refs.push(extra.find((r) => r.uuid === d.uuid) ?? { uuid: d.uuid });
      else refs.push(blankDisk(next, app.displayname ?? "vm", d.sizeMiB ?? 0, newId));
    }
    app.volumeRefList = refs;
    removeUnreferenced(next, dropped, []);
  }
  if (changes.interfaces) writeInterfaces(app, changes.interfaces);
  bumpVersion(app);
  return next;
}

/** What of a VM's change the device applies by restarting it (its QEMU command line changes): all but the start delay. */
export function vmRestartReasons(before: VmView & { memoryMiB: number; vcpus: number }, after: VmView & { memoryMiB: number; vcpus: number }): string[] {
  const out: string[] = [];
  if (before.memoryMiB !== after.memoryMiB) out.push("memory");
  if (before.vcpus !== after.vcpus) out.push("vCPUs");
  if (before.firmware !== after.firmware) out.push("firmware");
  if (before.cloudInit !== after.cloudInit) out.push("cloud-init user data");
  if (before.vnc !== after.vnc) out.push("graphical console");
  if (JSON.stringify(before.extraDisks.map((d) => d.uuid)) !== JSON.stringify(after.extraDisks.map((d) => d.uuid))) out.push("disks");
  if (before.interfaces.length !== after.interfaces.length || before.interfaces.some((i, j) => i.networkId !== after.interfaces[j]?.networkId || i.mac !== after.interfaces[j]?.mac)) out.push("network interfaces");
  return out;
}

/** For the plan: what a change of a VM app makes the device do (restart it, or apply without one). */
export function vmStepDetails(step: { kind: string; action: string; id: string }, before: Doc | null, after: Doc): string[] {
  if (step.kind !== "app" || step.action !== "change" || !before) return [];
  const a = readVm(before, step.id);
  const b = readVm(after, step.id);
  const ma = deviceModel(before).apps.find((x) => x.uuid === step.id);
  const mb = deviceModel(after).apps.find((x) => x.uuid === step.id);
  if (!a || !b || !ma || !mb || mb.kind !== "vm") return [];
  const res = (m: typeof ma) => ({ memoryMiB: Math.round(m.resources.memoryKiB / 1024), vcpus: m.resources.vcpus });
  const reasons = vmRestartReasons({ ...a, ...res(ma) }, { ...b, ...res(mb) });
  const out: string[] = [];
  if (a.startDelaySec !== b.startDelaySec) out.push(`start delay ${a.startDelaySec} s → ${b.startDelaySec} s`);
  if (reasons.length) out.push(`the VM is restarted to apply its new ${reasons.join(", ")}`);
  else out.push("applied without restarting the VM");
  return out;
}
