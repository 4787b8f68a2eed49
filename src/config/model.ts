// The device as one accepted config version asks for it: the EdgeDevConfig (protobufjs toObject form, UUIDs in
// lower case) read ONCE into typed objects, with references followed, userData parsed (userdata.ts) and port
// labels resolved (ports.ts). The parts read this model, not the raw document, so they cannot read a field two
// ways. Building the model is part of validation (validate.ts): what cannot be built for every place a field is
// used (a file, a command line, an interface name, the kernel) is a problem, with its path, and a local document
// with a problem is refused whole. Pure: no node:, no Bun APIs (ui/ bundles it).
import { type CipherBlockModel, type CipherContextModel, cipherBlockModel, cipherContextModel } from "./cipher.ts";
import { isHostname } from "./names.ts";
import { type BondModel, checkBondMembers, readLinks, readStaticRoutes, type StaticRouteModel, type VlanModel } from "./netlinks.ts";
import { artifactRefs, type PatchEnvelopeModel, readPatchEnvelopes } from "./patch-envelopes.ts";
import { resolvePortLabel, type PortResolution } from "./ports.ts";
import type { ObjectKind, ObjectProblem } from "./problems.ts";
import { type ConfigItemStatus, type GlobalSettings, readConfigItems } from "./settings.ts";
import { readUserData, type UserData } from "./userdata.ts";

type Doc = Record<string, any>;

export type WorkloadKind = "container" | "vm";

export interface UuidAndVersion {
  uuid: string;
  version: string;
}

export interface AppResources {
  /** `fixedresources.memory`, KiB (EVE's unit). */
  memoryKiB: number;
  maxMemKiB: number;
  vcpus: number;
  /** `fixedresources.cpus`: a CPU pinning list as EVE writes it ("0-1,3"), or null. */
  cpuPinning: string | null;
  /** EVE `VmMode` by name (PV, HVM, FML, …): FML boots UEFI. */
  virtualizationMode: string;
  /** VNC for a VM: `remoteConsole` or `fixedresources.enableVnc`. */
  remoteConsole: boolean;
  /** The rest of `fixedresources` (EVE's VmConfig), read once: what the VM runtime applies, the rest it reports. */
  vm: VmExtrasModel;
}

/** VmConfig fields beyond memory, vCPUs, mode and VNC; zero values are absent (EVE's defaults). */
export interface VmExtrasModel {
  /** `maxcpus`: vCPUs the guest may bring online (QEMU -smp maxcpus). */
  maxCpus: number;
  /** `pin_cpu`: vCPUs pinned to the host CPUs of `cpus`. */
  pinCpu: boolean;
  /** `vmm_maxmem`, KiB (EVE: `memory` + `vmm_maxmem` is the limit of the VM's whole QEMU process). */
  vmmMaxMemKiB: number;
  /** `disableLogs`: the guest's console output is not collected as the app's logs. */
  disableLogs: boolean;
  /** `vncDisplay`: EVE's VNC on TCP 5900 + this (with `enable_vnc`). */
  vncDisplay: number;
  /** `vncPasswd`: the VNC password (VNC authentication uses its first 8 characters), "" for none. */
  vncPasswd: string;
  /** `enable_oem_win_license_key`: the host's Windows license ACPI table (MSDM) passed to the guest. */
  oemWinLicenseKey: boolean;
  /** `enforce_network_interface_order`: NICs in the order of `interface_order` (interfaces and adapters). */
  enforceInterfaceOrder: boolean;
  /** `boot_mode` by name (VM_BOOT_MODE_UEFI / _LEGACY), null when unspecified. */
  bootMode: string | null;
  /** `boot_order` by name (common.BootOrder), null when unspecified. */
  bootOrder: string | null;
  /** The fields set that name files or devices evebox does not take from VmConfig (kernel, ramdisk, …). */
  set: string[];
}

/** One ACL rule of an app interface, read once (the network part compiles these into nftables rules). */
export interface AceModel {
  /** Stable within the interface: `id:<n>` when the ACE has an id, else its content (`m:` + matches, action, direction). */
  key: string;
  /** With an id: the content an id-less key would hold (the compiler reuses what it parsed before). */
  content?: string;
  id: number;
  name: string;
  matches: { type: string; value: string }[];
  action: { kind: "allow" } | { kind: "drop" } | { kind: "limit"; rate: number; unit: "second" | "minute" | "hour" | "day"; burst: number } | { kind: "portmap"; appPort: number };
  dir: "both" | "ingress" | "egress";
}

export interface AppInterfaceModel {
  index: number;
  /** The adapter's name inside the app (`name`, else `eth<index>`). */
  name: string;
  /** The network instance it is on ("" for none). */
  networkId: string;
  /** A static address asked for, or null. */
  addr: string | null;
  /** A MAC asked for (lower case), or null (the network part derives a stable one). */
  macAddress: string | null;
  acls: AceModel[];
  /** `interface_order`: its place among the app's NICs when VmConfig.enforce_network_interface_order is set. */
  order: number;
  /** `allowToDiscover`: the app may list the other apps' addresses (the metadata server's discover-network.json). */
  allowToDiscover: boolean;
}

/** A physical/IO adapter the app asks to have passed through (`apps[].adapters`). */
export interface AppAdapterModel {
  /** EVE `PhyIoType` by name (PhyIoNetEth, PhyIoUSB, …). */
  type: string;
  /** The assignment group (`deviceIoList[].assigngrp`), else a logical label. */
  name: string;
  /** The group it names: the `assigngrp` (or the label of an entry without one); "" when it names nothing. */
  group: string;
  /** Indexes in `physicalIo` of the group's members (the whole group goes to the app). */
  members: number[];
  /** `interface_order` (a network adapter's place among the app's NICs with enforce_network_interface_order). */
  order: number;
}

export interface VolumeRefModel {
  uuid: string;
  generation: number;
  /** Where a container mounts it (validated absolute path), or null (the default). */
  mountDir: string | null;
}

export interface AppModel {
  /** Position in the document's `apps` (for problem paths). */
  index: number;
  uuid: string;
  version: string;
  name: string;
  /** From the format of the content tree of the first volume; null: neither (see `faults`). */
  kind: WorkloadKind | null;
  activate: boolean;
  resources: AppResources;
  /** The userData, parsed once (env and command for a container, cloud-init text for a VM). */
  userData: UserData;
  interfaces: AppInterfaceModel[];
  adapters: AppAdapterModel[];
  volumeRefs: VolumeRefModel[];
  /** The content tree of the first volume (a container's image, a VM's first disk), or null. */
  imageContentTree: string | null;
  /** The config's counters (the operator's local commands are added by whoever keeps them). */
  restartCounter: number;
  purgeCounter: number;
  startDelaySec: number;
  /** Why the app cannot run as configured, though the config is accepted (EVE holds the app in error). */
  /** `cipherData`: protected user data encrypted for this device (config/cipher.ts); it replaces `userData` once opened. */
  cipher: CipherBlockModel | null;
  /** `profile_list`: the profiles in which the app runs (none: every profile). */
  profiles: string[];
  /** `metaDataType` by name (EVE's MetaDataType): `MetaDataOpenStack` has the metadata server answer /openstack. */
  metaDataType: string;
  faults: string[];
}

export type NiKind = "local" | "switch";

export interface NetworkInstanceModel {
  index: number;
  uuid: string;
  version: string;
  name: string;
  /** null: an instance type evebox does not build (a problem of the config). */
  kind: NiKind | null;
  /** `instType` as the document has it (for messages), null when absent. */
  instType: string | null;
  /** The device port: its label and what the label names (resolved once), or null for none. */
  port: { label: string; resolution: PortResolution } | null;
  subnet: string | null;
  gateway: string | null;
  dhcpRange: { start: string; end: string } | null;
  dns: string[];
  domain: string | null;
  staticDns: { host: string; addrs: string[] }[];
  mtu: number;
  flowlog: boolean;
  activate: boolean;
  /** `static_routes` (Local NIs), checked as far as the config tells (netlinks.ts); the rest at the host. */
  staticRoutes: StaticRouteModel[];
  /** `propagate_connected_routes`: the port's connected networks go to the apps (DHCP option 121). */
  propagateConnectedRoutes: boolean;
}

export type { BondModel, StaticRouteModel, VlanModel } from "./netlinks.ts";
export type { PatchArtifactModel, PatchEnvelopeModel } from "./patch-envelopes.ts";

/** A system adapter (`systemAdapterList`): one of the device's own ports. */
export interface PortModel {
  index: number;
  /** The logical name ("" for an adapter without one: its resolution says so). */
  name: string;
  /** What the name resolves to (ports.ts: bounded, cycles refused). */
  resolution: PortResolution;
  uplink: boolean;
  /** The `networks` entry giving its addressing, or null. */
  networkId: string | null;
  /** A static address. */
  addr: string | null;
}

/** `deviceIoList`: a physical adapter of the device, by its labels. */
export interface PhysicalIoModel {
  index: number;
  type: string;
  logicalLabel: string;
  physicalLabel: string;
  ifname: string | null;
  usage: string;
  /** `assigngrp`: the members of a group go to one app together; "" — not assignable (EVE's rule). */
  assignGroup: string;
  parentAssignGroup: string;
  /** `phyaddrs`, keys read without regard to case, each checked for where it goes (sysfs, /dev, QEMU's argv). */
  addrs: PhysicalIoAddrs;
}

/** The `phyaddrs` evebox acts on. */
export interface PhysicalIoAddrs {
  /** `pcilong`: `0000:03:00.0`, lower case. */
  pciLong: string | null;
  /** `serial`: the host's device node, `/dev/ttyS0`, `/dev/ttyUSB1`, `/dev/pts/3` (a pty). */
  serial: string | null;
  /** `usbaddr`: `<bus>:<port path>`, `1:2.3`. */
  usbAddr: string | null;
  /** `usbproduct`: `<vendor>:<product>` in hex, `0403:6001`, lower case. */
  usbProduct: string | null;
}

/** What `phyaddrs` values may be: they reach sysfs paths, /dev paths and QEMU's command line. */
export const PHYADDR_RULES: Record<keyof PhysicalIoAddrs, { key: string; re: RegExp; rule: string }> = {
  pciLong: { key: "pcilong", re: /^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-1][0-9a-fA-F]\.[0-7]$/, rule: "a PCI address dddd:bb:dd.f" },
  serial: { key: "serial", re: /^\/dev\/(tty[A-Za-z]{1,8}[0-9]{1,4}|pts\/[0-9]{1,6})$/, rule: "a serial device node: /dev/tty<name><n> or /dev/pts/<n>" },
  usbAddr: { key: "usbaddr", re: /^[0-9]{1,3}:[0-9]{1,3}(\.[0-9]{1,3}){0,6}$/, rule: "a USB bus and port path <bus>:<port>[.<port>…]" },
  usbProduct: { key: "usbproduct", re: /^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$/, rule: "a USB vendor and product vvvv:pppp (hex)" },
};
const ASSIGN_GROUP = /^[A-Za-z0-9_.:@+-]{1,64}$/;
/** Usages whose adapters stay with the device: never given to an app. */
export const NOT_FOR_APPS: Record<string, string> = {
  PhyIoUsageMgmtOnly: "it is a management port (PhyIoUsageMgmtOnly)",
  PhyIoUsageMgmtAndApps: "it is a management port shared through network instances (PhyIoUsageMgmtAndApps), not passed through",
  PhyIoUsageDisabled: "it is disabled (PhyIoUsageDisabled)",
};

/** `networks`: addressing of the device's own ports. */
export interface DeviceNetworkModel {
  id: string;
  /** EVE `DHCPType` by name: Static, Client, DHCPNone, DHCPNoop. */
  dhcp: string;
  subnet: string | null;
  gateway: string | null;
  dns: string[];
  domain: string | null;
  mtu: number;
}

export interface VolumeModel {
  index: number;
  uuid: string;
  name: string;
  generation: number;
  origin: "blank" | "download";
  contentTreeId: string | null;
  sizeBytes: number;
  readOnly: boolean;
  /** Used by an app of this config. */
  referenced: boolean;
}

export type ContentSource =
  | { kind: "registry"; fqdn: string; url: string; username?: string; password?: string }
  | { kind: "http"; url: string };

export interface ContentTreeModel {
  index: number;
  uuid: string;
  name: string;
  /** EVE `Format` by name (CONTAINER, QCOW2, ISO, …). */
  format: string;
  datastoreId: string;
  /** `URL`: a path in its datastore, or `repository:tag` in a registry. */
  url: string;
  /** Where it is fetched from, from its datastore; null when the datastore cannot serve it (see `faults`). */
  source: ContentSource | null;
  sha256: string | null;
  maxSizeBytes: number | null;
  /** Used by an app's volume (unreferenced ones are not fetched). */
  referenced: boolean;
  faults: string[];
}

export interface DatastoreModel {
  index: number;
  id: string;
  /** EVE `DsType` by name (DsHttp, DsHttps, DsContainerRegistry, …). */
  type: string;
  fqdn: string;
  dpath: string;
  username: string | null;
  password: string | null;
  /** `cipherData`: the credentials encrypted for this device (config/cipher.ts), opened where they are used. */
  cipher: CipherBlockModel | null;
}

/** The config's `baseos`: the base OS version to run. */
export interface BaseOsModel {
  version: string;
  contentTreeId: string;
  activate: boolean;
  retryCounter: number;
}

/** A reboot or shutdown command (`DeviceOpsCmd`): acted on when its counter changes (device ops). */
export interface DeviceOpModel {
  counter: number;
  desiredState: boolean;
  opsTime: string;
}

/** What the config says of the device itself. */
export interface DeviceIdentityModel {
  /** `device_name`: the name the controller gives the device; null when absent. */
  name: string | null;
  reboot: DeviceOpModel | null;
  shutdown: DeviceOpModel | null;
  /** `maintenance_mode` merged with the `maintenance.mode` config item (which wins unless "none"). */
  maintenanceMode: boolean;
  /** `controllercert_confighash`: a change means the controller's certificates changed. */
  controllerCertHash: string | null;
  /** `cluster`, when the config has one (Kubernetes clusters are refused: see validate.ts). */
  cluster: { id: string; name: string } | null;
}

export interface DeviceModel {
  /** The config's own id, when it has one. */
  id: UuidAndVersion | null;
  device: DeviceIdentityModel;
  /** The config items evebox applies, typed and range-checked (settings.ts); defaults where absent or invalid. */
  settings: GlobalSettings;
  /** What became of each config item (applied, invalid, unknown, ignored): never fatal. */
  configItemStatus: ConfigItemStatus[];
  apps: AppModel[];
  networkInstances: NetworkInstanceModel[];
  ports: PortModel[];
  physicalIo: PhysicalIoModel[];
  /** `vlans` and `bonds`: the links the device makes (netlinks.ts); their labels are port labels too. */
  vlans: VlanModel[];
  bonds: BondModel[];
  networks: DeviceNetworkModel[];
  volumes: VolumeModel[];
  contentTrees: ContentTreeModel[];
  datastores: DatastoreModel[];
  baseOs: BaseOsModel | null;
  /** `configItems`, key → value (a repeated key's last value). */
  configItems: Record<string, string>;
  /** `cipherContexts`: how the cipher blocks of datastores and apps are opened. */
  cipherContexts: CipherContextModel[];
  /** `global_profile`: the controller's profile ("" none); a Local Profile Server may override it. */
  globalProfile: string;
  /** `local_profile_server` (host[:port], EVE's default port 8888) and `profile_server_token`; null: none. */
  localProfileServer: { host: string; port: number; token: string } | null;
  /**
   * `loc_config`: the Local Operator Console, asked for the config (EVE's compound config, signed by the controller)
   * when the controller is unreachable, and sent info and metrics. `url` is scheme://host[:port] (a bare host[:port]
   * is https, as EVE); null: none, or an address that is not one (a device object error).
   */
  loc: { url: string; collectInfoDatastores: string[] } | null;
  /** `patchEnvelopes`: files for the apps they name, served by the metadata server (patch-envelopes.ts). */
  patchEnvelopes: PatchEnvelopeModel[];
  /** Each port label of the config (NI ports, system adapters), resolved once. */
  portLabels: ReadonlyMap<string, PortResolution>;
}

export const EMPTY_MODEL: DeviceModel = Object.freeze({
  id: null,
  device: { name: null, reboot: null, shutdown: null, maintenanceMode: false, controllerCertHash: null, cluster: null },
  ...(({ settings, items }) => ({ settings, configItemStatus: items }))(readConfigItems({})),
  apps: [],
  networkInstances: [],
  ports: [],
  physicalIo: [],
  vlans: [],
  bonds: [],
  networks: [],
  volumes: [],
  contentTrees: [],
  datastores: [],
  baseOs: null,
  configItems: {},
  cipherContexts: [],
  globalProfile: "",
  localProfileServer: null,
  loc: null,
  patchEnvelopes: [],
  portLabels: new Map(),
}) as DeviceModel;

const CONTAINER_FORMATS = new Set(["CONTAINER"]);
export const DISK_FORMATS = new Set(["RAW", "QCOW", "QCOW2", "VHD", "VMDK", "OVA", "VHDX", "ISO"]);

/**
 * The model of a document and the problems that keep it from being built (the document is read, never
 * changed). ConfigService builds it once per config version (`model()`); validation builds it (validate.ts).
 */
export function buildDeviceModel(doc: Doc | null | undefined): { model: DeviceModel; problems: ObjectProblem[] } {
  if (!doc) return { model: EMPTY_MODEL, problems: [] };
  return build(doc);
}

/** Only the model (problems aside). */
export function deviceModel(doc: Doc | null | undefined): DeviceModel {
  return buildDeviceModel(doc).model;
}

function build(doc: Doc): { model: DeviceModel; problems: ObjectProblem[] } {
  const problems: ObjectProblem[] = [];
  const push = (objectKind: ObjectKind, objectId: string, path: string, message: string) => problems.push({ objectKind, objectId, path, message });
  const list = (v: unknown): Doc[] => (Array.isArray(v) ? v : []);

  // ---- ports: every label the config names, resolved once
  const portLabels = new Map<string, PortResolution>();
  const resolve = (label: string): PortResolution => {
    let r = portLabels.get(label);
    if (!r) portLabels.set(label, (r = resolvePortLabel(doc, label)));
    return r;
  };
  const physicalIo: PhysicalIoModel[] = list(doc.deviceIoList).map((io, index) => {
    const a: Doc = io?.phyaddrs ?? {};
    const keyOf = (name: string) => Object.keys(a).find((k) => k.toLowerCase() === name && a[k]);
    const key = keyOf("ifname");
    const addrs = { pciLong: null, serial: null, usbAddr: null, usbProduct: null } as PhysicalIoAddrs;
    for (const [field, r] of Object.entries(PHYADDR_RULES) as [keyof PhysicalIoAddrs, (typeof PHYADDR_RULES)[keyof PhysicalIoAddrs]][]) {
      const k = keyOf(r.key);
      if (!k) continue;
      const v = String(a[k]);
      if (!r.re.test(v)) push("device", "", `deviceIoList[${index}].phyaddrs.${k}`, `${quote(v)} is not ${r.rule}`);
      else addrs[field] = field === "serial" ? v : v.toLowerCase();
    }
    const assignGroup = String(io?.assigngrp ?? "");
    if (assignGroup && !ASSIGN_GROUP.test(assignGroup)) push("device", "", `deviceIoList[${index}].assigngrp`, `${quote(assignGroup)} is not an assignment group (1-64 of A-Z a-z 0-9 _ . : @ + -)`);
    return {
      index,
      type: enumName(io?.ptype, "PhyIoNoop"),
      logicalLabel: String(io?.logicallabel ?? ""),
      physicalLabel: String(io?.phylabel ?? ""),
      ifname: key ? String(a[key]) : null,
      usage: enumName(io?.usage, "PhyIoUsageNone"),
      assignGroup: ASSIGN_GROUP.test(assignGroup) ? assignGroup : "",
      parentAssignGroup: String(io?.parentassigngrp ?? ""),
      addrs,
    };
  });
  const ioGroups = new Map<string, number[]>();
  for (const io of physicalIo) if (io.assignGroup) ioGroups.set(io.assignGroup, [...(ioGroups.get(io.assignGroup) ?? []), io.index]);
  const ports: PortModel[] = [];
  list(doc.systemAdapterList).forEach((sa, index) => {
    if (!sa?.name) {
      // Listed, so that whoever applies the ports can say which adapter has no name.
      ports.push({ index, name: "", resolution: { kind: "error", message: "name is empty", path: `systemAdapterList[${index}].name`, via: [] }, uplink: !!(sa?.uplink || sa?.freeUplink), networkId: null, addr: null });
      return;
    }
    const resolution = resolve(String(sa.name));
    // A bad interface name in deviceIoList is reported at its own field (validate.ts).
    if (resolution.kind === "error" && !resolution.path?.startsWith("deviceIoList")) push("device", "", resolution.path ?? `systemAdapterList[${index}].name`, resolution.message);
    ports.push({ index, name: String(sa.name), resolution, uplink: !!(sa.uplink || sa.freeUplink), networkId: sa.networkUUID ? String(sa.networkUUID) : null, addr: sa.addr ? String(sa.addr) : null });
  });
  const networks: DeviceNetworkModel[] = list(doc.networks).map((n) => ({
    id: String(n?.id ?? ""),
    dhcp: enumName(n?.ip?.dhcp, "DHCPNoop", ["DHCPNoop", "Static", "DHCPNone", "3", "Client"]),
    subnet: n?.ip?.subnet ? String(n.ip.subnet) : null,
    gateway: n?.ip?.gateway ? String(n.ip.gateway) : null,
    dns: list(n?.ip?.dns).map(String),
    domain: n?.ip?.domain ? String(n.ip.domain) : null,
    mtu: Number(n?.mtu ?? 0),
  }));

  // ---- datastores, content trees, volumes
  const datastores: DatastoreModel[] = list(doc.datastores).map((ds, index) => ({
    index,
    id: String(ds?.id ?? ""),
    type: enumName(ds?.dType, "DsUnknown"),
    fqdn: String(ds?.fqdn ?? ""),
    dpath: String(ds?.dpath ?? ""),
    username: ds?.apiKey ? String(ds.apiKey) : null,
    password: ds?.password ? String(ds.password) : null,
    cipher: cipherBlockModel(ds?.cipherData),
  }));
  const dsById = new Map(datastores.map((d) => [d.id, d]));
  const apps: Doc[] = list(doc.apps);
  const referencedVolumes = new Set<string>();
  for (const a of apps) for (const r of list(a?.volumeRefList)) referencedVolumes.add(String(r?.uuid ?? ""));
  const volumes: VolumeModel[] = list(doc.volumes).map((v, index) => ({
    index,
    uuid: String(v?.uuid ?? ""),
    name: String(v?.displayName ?? ""),
    generation: Number(v?.generationCount ?? 0),
    origin: v?.origin?.type === "VCOT_DOWNLOAD" || v?.origin?.type === 2 ? "download" : "blank",
    contentTreeId: v?.origin?.downloadContentTreeID ? String(v.origin.downloadContentTreeID) : null,
    sizeBytes: Number(v?.maxsizebytes ?? 0),
    readOnly: !!v?.readonly,
    referenced: referencedVolumes.has(String(v?.uuid ?? "")),
  }));
  const volById = new Map(volumes.map((v) => [v.uuid, v]));
  const referencedTrees = new Set<string>();
  for (const id of referencedVolumes) {
    const ct = volById.get(id)?.contentTreeId;
    if (ct) referencedTrees.add(ct);
  }
  const contentTrees: ContentTreeModel[] = list(doc.contentInfo).map((ct, index) => {
    const faults: string[] = [];
    const dsId = String(ct?.dsId ?? "");
    const ds = dsById.get(dsId);
    const url = String(ct?.URL ?? "");
    let source: ContentSource | null = null;
    if (!ds) faults.push(`dsId: no datastore ${dsId}`);
    else if (ds.type === "DsContainerRegistry") {
      source = { kind: "registry", fqdn: ds.fqdn, url, ...(ds.username ? { username: ds.username } : {}), ...(ds.password ? { password: ds.password } : {}) };
    } else if (ds.type === "DsHttp" || ds.type === "DsHttps") {
      const base = ds.fqdn.replace(/\/+$/, "");
      const dpath = ds.dpath.replace(/^\/+|\/+$/g, "");
      source = { kind: "http", url: [base, dpath, url.replace(/^\/+/, "")].filter(Boolean).join("/") };
      if (!/^https?:\/\//.test(base)) faults.push(`datastore ${ds.id}: fqdn ${JSON.stringify(ds.fqdn)} must start with http:// or https://`);
      if (ds.type === "DsHttps" && !base.startsWith("https://")) faults.push(`datastore ${ds.id}: an Https datastore needs an https:// fqdn`);
      if (!ct?.sha256) faults.push("sha256: a content tree from an Http(s) datastore needs its sha256");
    } else faults.push(`datastore ${ds.id}: datastore type ${ds.type === "DsUnknown" ? "(none)" : ds.type} is not supported (Http, Https, ContainerRegistry are)`);
    const uuid = String(ct?.uuid ?? "");
    return {
      index,
      uuid,
      name: String(ct?.displayName || ct?.URL || uuid),
      format: enumName(ct?.iformat, "FmtUnknown"),
      datastoreId: dsId,
      url,
      source,
      sha256: ct?.sha256 ? String(ct.sha256).toLowerCase() : null,
      maxSizeBytes: ct?.maxSizeBytes ? Number(ct.maxSizeBytes) : null,
      referenced: referencedTrees.has(uuid),
      faults,
    };
  });
  const treeById = new Map(contentTrees.map((c) => [c.uuid, c]));

  // ---- network instances
  const networkInstances: NetworkInstanceModel[] = list(doc.networkInstances).map((ni, index) => {
    const uuid = String(ni?.uuidandversion?.uuid ?? "");
    const t = ni?.instType;
    const kind: NiKind | null = t === "ZnetInstLocal" || t === 2 ? "local" : t === "ZnetInstSwitch" || t === 1 ? "switch" : null;
    const label = String(ni?.port?.name ?? "");
    let port: NetworkInstanceModel["port"] = null;
    if (label) {
      const resolution = resolve(label);
      port = { label, resolution };
      if (resolution.kind === "error") push("networkInstance", uuid, `networkInstances[${index}].port.name`, `port ${quote(label)}: ${resolution.message}${resolution.path ? ` (at ${resolution.path})` : ""}`);
    }
    const ip: Doc = ni?.ip ?? {};
    return {
      index,
      uuid,
      version: String(ni?.uuidandversion?.version ?? ""),
      name: String(ni?.displayname || uuid),
      kind,
      instType: t === undefined || t === null ? null : String(t),
      port,
      subnet: ip.subnet ? String(ip.subnet) : null,
      gateway: ip.gateway ? String(ip.gateway) : null,
      dhcpRange: ip.dhcpRange?.start || ip.dhcpRange?.end ? { start: String(ip.dhcpRange.start ?? ""), end: String(ip.dhcpRange.end ?? "") } : null,
      dns: list(ip.dns).map(String),
      domain: ip.domain ? String(ip.domain) : null,
      staticDns: list(ni?.dns).map((d) => ({ host: String(d?.HostName ?? ""), addrs: (Array.isArray(d?.Address) ? (d.Address as unknown[]) : []).filter((a): a is string => typeof a === "string") })),
      mtu: Number(ni?.mtu ?? 0) || 1500,
      flowlog: !ni?.disableFlowlog,
      activate: !!ni?.activate,
      staticRoutes: readStaticRoutes(ni, index, uuid, kind === "local", label || null, push),
      propagateConnectedRoutes: !!ni?.propagateConnectedRoutes,
    };
  });

  // ---- apps
  const appModels: AppModel[] = apps.map((a, index): AppModel => {
    const uuid = String(a?.uuidandversion?.uuid ?? "");
    const path = `apps[${index}]`;
    const faults: string[] = [];
    const volumeRefs: VolumeRefModel[] = list(a?.volumeRefList).map((r) => ({ uuid: String(r?.uuid ?? ""), generation: Number(r?.generationCount ?? 0), mountDir: r?.mountDir ? String(r.mountDir) : null }));
    const first = volumeRefs[0] ? volById.get(volumeRefs[0].uuid) : undefined;
    const tree = first?.contentTreeId ? treeById.get(first.contentTreeId) : undefined;
    const kind: WorkloadKind | null = tree && CONTAINER_FORMATS.has(tree.format) ? "container" : tree && DISK_FORMATS.has(tree.format) ? "vm" : null;
    if (!kind) faults.push("volumeRefList[0]: the app's first volume must come from a content tree of format CONTAINER (a container) or a disk format (a VM)");
    const userData = readUserData(a?.userData);
    // A container's variables reach the engine (and EVE_ECO_CMD its argv): what cannot be refuses the config.
    for (const m of userData.problems) push("app", uuid, `${path}.userData`, m);
    const fixed: Doc = a?.fixedresources ?? {};
    const interfaces: AppInterfaceModel[] = list(a?.interfaces).map((ifc, j) => ({
      index: j,
      name: String(ifc?.name || `eth${j}`),
      networkId: String(ifc?.networkId ?? ""),
      addr: ifc?.addr ? String(ifc.addr) : null,
      macAddress: ifc?.macAddress ? String(ifc.macAddress).toLowerCase() : null,
      acls: list(ifc?.acls).map(aceModel),
      order: Number(ifc?.interfaceOrder ?? 0),
      allowToDiscover: ifc?.allowToDiscover === true,
    }));
    return {
      index,
      uuid,
      version: String(a?.uuidandversion?.version ?? ""),
      name: String(a?.displayname ?? uuid),
      kind,
      activate: !!a?.activate,
      resources: {
        memoryKiB: Number(fixed.memory ?? 0),
        maxMemKiB: Number(fixed.maxmem ?? 0),
        vcpus: Number(fixed.vcpus ?? 0),
        cpuPinning: fixed.cpus ? String(fixed.cpus) : null,
        virtualizationMode: enumName(fixed.virtualizationMode, "PV", ["PV", "HVM", "Filler", "FML", "NOHYPER", "LEGACY"]),
        remoteConsole: !!(a?.remoteConsole || fixed.enableVnc),
        vm: vmExtras(fixed),
      },
      userData,
      interfaces,
      adapters: list(a?.adapters).map((ad, j) => adapterModel(ad, `${path}.adapters[${j}]`, uuid, physicalIo, ioGroups, push)),
      volumeRefs,
      imageContentTree: tree?.uuid ?? null,
      restartCounter: Number(a?.restart?.counter ?? 0),
      purgeCounter: Number(a?.purge?.counter ?? 0),
      startDelaySec: Number(a?.startDelayInSeconds ?? 0),
      cipher: cipherBlockModel(a?.cipherData),
      profiles: list(a?.profileList).map(String),
      metaDataType: enumName(a?.metaDataType, "MetaDataDrive", ["MetaDataDrive", "MetaDataNone", "MetaDataOpenStack", "MetaDataDriveMultipart"]),
      faults,
    };
  });

  // ---- VLANs and bonds; a bond's member may have no other user
  const { vlans, bonds } = readLinks(doc, push, resolve);
  const direct = (r: PortResolution | undefined) => (r?.kind === "ifname" && !r.link ? r.ifname : null);
  const users: { ifname: string; what: string }[] = [];
  for (const p of ports) if (direct(p.resolution)) users.push({ ifname: direct(p.resolution)!, what: `a port of the device itself (systemAdapterList[${p.index}] ${quote(p.name)})` });
  for (const ni of networkInstances) if (direct(ni.port?.resolution)) users.push({ ifname: direct(ni.port!.resolution)!, what: `the port of network instance ${quote(ni.name)}` });
  for (const v of vlans) if (direct(v.parent)) users.push({ ifname: direct(v.parent)!, what: `the parent of VLAN ${quote(v.label)}` });
  for (const a of appModels) for (const ad of a.adapters) for (const i of ad.members) if (physicalIo[i]?.ifname) users.push({ ifname: physicalIo[i]!.ifname!, what: `given to app ${quote(a.name)} (passthrough)` });
  checkBondMembers(bonds, users, push);

  const b: Doc | undefined = doc.baseos;
  const baseOs: BaseOsModel | null = b
    ? { version: String(b.baseOsVersion ?? ""), contentTreeId: String(b.contentTreeUuid ?? ""), activate: !!b.activate, retryCounter: Number(b.retryUpdate?.counter ?? 0) }
    : null;
  const configItems: Record<string, string> = {};
  for (const c of list(doc.configItems)) if (c?.key) configItems[String(c.key)] = String(c.value ?? "");

  // A cluster is an object evebox cannot be: refused on its own (a controller's other objects still apply).
  if (doc.cluster) push("device", "", "cluster", "Kubernetes clusters are not supported on this device");
  // What the config asks of the device that evebox does not do: each said once, where a controller's operator and
  // the console read object errors, rather than silently dropped. An empty message (a controller's default) asks nothing.
  for (const u of unsupportedAsks(doc)) push("device", "", u.path, u.message);
  const { settings, items: configItemStatus } = readConfigItems(configItems);
  const op = (c: Doc | undefined): DeviceOpModel | null => (c ? { counter: Number(c.counter ?? 0), desiredState: !!c.desiredState, opsTime: String(c.opsTime ?? "") } : null);
  const model: DeviceModel = {
    id: doc.id?.uuid ? { uuid: String(doc.id.uuid), version: String(doc.id.version ?? "") } : null,
    device: {
      name: doc.deviceName ? String(doc.deviceName) : null,
      reboot: op(doc.reboot),
      shutdown: op(doc.shutdown),
      maintenanceMode: settings.maintenanceMode ?? !!doc.maintenanceMode,
      controllerCertHash: doc.controllercertConfighash ? String(doc.controllercertConfighash) : null,
      cluster: doc.cluster ? { id: String(doc.cluster.clusterId ?? ""), name: String(doc.cluster.clusterName ?? "") } : null,
    },
    settings,
    configItemStatus,
    apps: appModels,
    networkInstances,
    ports,
    physicalIo,
    vlans,
    bonds,
    networks,
    volumes,
    contentTrees,
    datastores,
    baseOs,
    configItems,
    cipherContexts: list(doc.cipherContexts).map(cipherContextModel),
    globalProfile: String(doc.globalProfile ?? ""),
    localProfileServer: localProfileServer(doc, push),
    loc: locConfig(doc, push),
    patchEnvelopes: readPatchEnvelopes(doc, push, artifactRefs({ volumes, contentTrees })),
    portLabels,
  };
  return { model, problems };
}

/**
 * An app's adapter: the assignment group it names (or, for an entry without a group, its logical label), whose
 * members all go to the app. A name that is no group, and a group with a management or disabled member, are
 * problems of the app (a local document is refused; a controller's app is held in error).
 */
function adapterModel(
  ad: Doc,
  path: string,
  uuid: string,
  physicalIo: PhysicalIoModel[],
  groups: Map<string, number[]>,
  push: (kind: ObjectKind, id: string, path: string, message: string) => void,
): AppAdapterModel {
  const type = enumName(ad?.type, "PhyIoNoop");
  const name = String(ad?.name ?? "");
  let group = "";
  let members: number[] = [];
  if (groups.has(name)) {
    group = name;
    members = groups.get(name)!;
  } else {
    const byLabel = physicalIo.find((io) => io.logicalLabel === name);
    if (byLabel?.assignGroup) {
      group = byLabel.assignGroup;
      members = groups.get(group)!;
    } else if (byLabel) push("app", uuid, `${path}.name`, `adapter ${quote(name)}: deviceIoList entry ${quote(name)} has no assignment group (assigngrp), so it cannot be assigned`);
  }
  if (!name) push("app", uuid, `${path}.name`, "adapter name is empty");
  else if (!group && !physicalIo.some((io) => io.logicalLabel === name)) push("app", uuid, `${path}.name`, `adapter ${quote(name)}: no deviceIoList entry has this assignment group or logical label`);
  for (const i of members) {
    const why = NOT_FOR_APPS[physicalIo[i]!.usage];
    if (why) push("app", uuid, `${path}.name`, `adapter ${quote(name)}: member ${quote(physicalIo[i]!.logicalLabel || physicalIo[i]!.physicalLabel)} cannot be given to an app: ${why}`);
  }
  return { type, name, group, members, order: Number(ad?.interfaceOrder ?? 0) };
}

/** Fields of VmConfig read as "set" when they hold anything (the runtime reports those it does not apply). */
const VM_OTHER_FIELDS = ["kernel", "ramdisk", "rootdev", "extraargs", "bootloader", "devicetree", "dtdev", "irqs", "iomem", "enableVncShimVm", "disableVtpm"];

function vmExtras(fixed: Doc): VmExtrasModel {
  const named = (v: unknown, zero: string) => {
    const n = enumName(v, zero);
    return n === zero ? null : n;
  };
  return {
    maxCpus: Number(fixed.maxcpus ?? 0),
    pinCpu: !!fixed.pinCpu,
    vmmMaxMemKiB: Number(fixed.vmmMaxmem ?? 0),
    disableLogs: !!fixed.disableLogs,
    vncDisplay: Number(fixed.vncDisplay ?? 0),
    vncPasswd: fixed.vncPasswd ? String(fixed.vncPasswd) : "",
    oemWinLicenseKey: !!fixed.enableOemWinLicenseKey,
    enforceInterfaceOrder: !!fixed.enforceNetworkInterfaceOrder,
    bootMode: named(fixed.bootMode, "VM_BOOT_MODE_UNSPECIFIED"),
    bootOrder: named(fixed.bootOrder, "BOOT_ORDER_UNSPECIFIED"),
    set: VM_OTHER_FIELDS.filter((f) => {
      const v = fixed[f];
      return Array.isArray(v) ? v.length > 0 : !!v;
    }),
  };
}

/**
 * EVE's `local_profile_server`: host[:port], an IP literal ([v6] with a port) or a host name; the port 8888 when
 * none is given. The address reaches a URL the device calls: anything else refuses the document.
 */
function localProfileServer(doc: Doc, push: (k: ObjectKind, id: string, path: string, m: string) => void): DeviceModel["localProfileServer"] {
  const raw = String(doc.localProfileServer ?? "").trim();
  if (!raw) return null;
  const m = raw.match(/^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/) ?? raw.match(/^([^:\[\]]+)(?::(\d{1,5}))?$/);
  const host = m?.[1] ?? "";
  const port = m?.[2] ? Number(m[2]) : 8888;
  const ipv4 = /^\d{1,3}(\.\d{1,3}){3}$/.test(host) && host.split(".").every((o) => Number(o) <= 255);
  const ipv6 = raw.startsWith("[") && host.includes(":");
  if (!m || !(ipv4 || ipv6 || isHostname(host)) || port < 1 || port > 65535) {
    push("device", "", "localProfileServer", `${quote(raw)} is not host[:port] (an IP address or a host name, port 1-65535)`);
    return null;
  }
  return { host, port, token: String(doc.profileServerToken ?? "") };
}

/**
 * EVE's `loc_config.loc_url`: http(s)://host[:port][/path], or host[:port] (https, as EVE's sender makes it). The
 * device builds `<url>/api/v2/edgedevice/…` from it, so anything with a query, a fragment or credentials is refused.
 */
function locConfig(doc: Doc, push: (k: ObjectKind, id: string, path: string, m: string) => void): DeviceModel["loc"] {
  const raw = String(doc.locConfig?.locUrl ?? "").trim();
  if (!raw) return null;
  const bad = () => {
    push("device", "", "locConfig.locUrl", `${quote(raw)} is not a Local Operator Console address (http(s)://host[:port] or host[:port])`);
    return null;
  };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) && !/^https?:\/\//i.test(raw)) return bad();
  let u: URL;
  try {
    u = new URL(/^https?:\/\//i.test(raw) ? raw : `https://${raw}`);
  } catch {
    return bad();
  }
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const ip = /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(":");
  if (u.username || u.password || u.search || u.hash || !(ip || isHostname(host)) || !/^[A-Za-z0-9._~\/-]*$/.test(u.pathname)) return bad();
  const path = u.pathname.replace(/\/+$/, "");
  return { url: `${u.protocol}//${u.host}${path}`, collectInfoDatastores: (Array.isArray(doc.locConfig?.datastoreCollectInfoId) ? doc.locConfig.datastoreCollectInfoId : []).map(String).filter(Boolean) };
}

const UNITS: Record<string, "second" | "minute" | "hour" | "day"> = { s: "second", second: "second", m: "minute", minute: "minute", h: "hour", hour: "hour", d: "day", day: "day" };
const ALLOW: AceModel["action"] = { kind: "allow" };

/** One ACE as the model holds it (its first action; EVE sends one). */
export function aceModel(ace: Doc): AceModel {
  // Runs once per ACE of every interface of every config version: no copies where the input will do.
  const raw: Doc[] = ace.matches ?? [];
  const matches = raw.every((m) => typeof m.type === "string" && typeof m.value === "string") ? (raw as { type: string; value: string }[]) : raw.map((m) => ({ type: String(m.type ?? ""), value: String(m.value ?? "") }));
  const a = ace.actions?.[0];
  let action = ALLOW;
  if (a?.drop) action = { kind: "drop" };
  else if (a?.portmap) action = { kind: "portmap", appPort: Number(a.appPort ?? 0) };
  else if (a?.limit) action = { kind: "limit", rate: Number(a.limitrate ?? 0), unit: UNITS[a.limitunit ?? "s"] ?? "second", burst: Number(a.limitburst ?? 0) || Number(a.limitrate ?? 1) };
  const dir = ace.dir === "INGRESS" || ace.dir === 1 ? "ingress" : ace.dir === "EGRESS" || ace.dir === 2 ? "egress" : "both";
  const id = Number(ace.id ?? 0);
  // An ACE's content: its matches, action and direction. Without an id, that is its key.
  let content = "m:";
  for (const m of matches) content += `${m.type}=${m.value};`;
  content += action === ALLOW ? "" : `${action.kind}${action.kind === "portmap" ? action.appPort : action.kind === "limit" ? `${action.rate}/${action.unit}/${action.burst}` : ""}`;
  if (dir !== "both") content += `;${dir}`;
  if (id) return { key: `id:${id}`, content, id, name: String(ace.name ?? ""), matches, action, dir };
  return { key: content, id, name: String(ace.name ?? ""), matches, action, dir };
}

/** An enum as its name: documents carry names (toObject with enums: String); numbers are mapped when names are known. */
function enumName(v: unknown, dflt: string, names?: string[]): string {
  if (typeof v === "number") return names?.[v] ?? (v === 0 ? dflt : String(v));
  return typeof v === "string" && v ? v : dflt;
}

function quote(v: unknown): string {
  const s = String(v);
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}

/**
 * Device-level settings of EdgeDevConfig that evebox does not implement, when the config actually asks for them:
 * EdgeView (a remote debugging session through a dispatcher), a ZFS disk layout, 802.1X port authentication and
 * SCEP certificate enrolment. Each is a problem of the device (a controller's other objects still apply).
 */
export function unsupportedAsks(doc: Doc): { path: string; message: string }[] {
  const list = (v: unknown): Doc[] => (Array.isArray(v) ? v : []);
  const out: { path: string; message: string }[] = [];
  const ev = doc.edgeview;
  if (ev && (ev.token || list(ev.dispCertPem).length))
    out.push({ path: "edgeview", message: "EdgeView sessions are not supported on this device: use the local console or the controller's app consoles" });
  const disks = doc.disks;
  const asksDisks = (d: Doc | undefined): boolean =>
    !!d && (list(d.disks).length > 0 || (!!d.arrayType && d.arrayType !== "DISKS_ARRAY_TYPE_UNSPECIFIED") || list(d.children).some(asksDisks));
  if (asksDisks(disks))
    out.push({ path: "disks", message: "disk layouts (EVE's ZFS storage pools) are not managed by evebox: it keeps its data on the file system it was given" });
  list(doc.pnacs).forEach((_, i) => out.push({ path: `pnacs[${i}]`, message: "802.1X port authentication (PNAC) is not supported on this device" }));
  list(doc.scepProfiles).forEach((_, i) => out.push({ path: `scepProfiles[${i}]`, message: "SCEP certificate enrolment is not supported on this device" }));
  return out;
}
