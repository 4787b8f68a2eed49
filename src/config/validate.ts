// Semantic checks of an EdgeDevConfig (in protobufjs toObject form: lowerCamel names, enum names,
// 64-bit integers as strings). Structural faults are found earlier, while decoding.
import { MAX_ACES_PER_DEVICE, MAX_ACES_PER_INTERFACE, MAX_NETWORK_INSTANCES } from "./bounds.ts";
import { displayNameProblem, hasControl, HOSTNAME_RULE, IFNAME_RULE, isHostname, isIfname } from "./names.ts";
import { contains, earliestOverlaps, hasHostBits, overlaps, parseCidr, parseIp, type Cidr } from "./net.ts";
import { buildDeviceModel, type DeviceModel } from "./model.ts";
import { ioIfname } from "./ports.ts";
import type { ObjectProblem } from "./problems.ts";
import { normalizeUuids } from "./uuids.ts";

export type { ObjectProblem } from "./problems.ts";

type Obj = Record<string, any>;

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const PROTOCOLS = new Set(["tcp", "udp", "icmp", "icmpv6", "sctp", "all"]);
const MATCH_TYPES = new Set(["ip", "host", "protocol", "lport", "fport", "adapter", "eidset", "eidipset"]);
export { MAX_ACES_PER_DEVICE, MAX_ACES_PER_INTERFACE, MAX_NETWORK_INSTANCES };
const MAX_INTERFACES_PER_APP = 16;
const IFNAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;
/** Free text for the guest or the app itself, never parsed on the host: the only strings that may hold newlines. */
const FREE_TEXT_FIELDS = new Set(["userData", "customMetaData", "base64Data", "base64MetaData", "blobMetaData", "artifactMetaData"]);
/** Strings that become URLs, image references or request headers: one token, no spaces. */
const MAX_URL = 2048;

/** What validation may ask of the device itself: its network ports and networks. */
export interface ValidationEnv {
  /** Does the device have this network interface? null: cannot tell (then it is not checked). */
  interfaceExists(name: string): boolean | null;
  /** The device's own IPv4 networks (routes of its interfaces, not evebox's bridges). */
  hostNetworks(): string[];
  /** The device's memory in KiB; null or absent: cannot tell (then an app's memory is not checked against it). */
  hostMemoryKiB?(): number | null;
}

/** Validation that asks the device nothing (configs checked away from it). */
export const NO_ENV: ValidationEnv = { interfaceExists: () => null, hostNetworks: () => [], hostMemoryKiB: () => null };

export function validateConfig(input: Obj, env: ValidationEnv): ObjectProblem[] {
  return readConfig(input, env).problems;
}

/**
 * Validation is reading the document into the device's model (model.ts): the problems are those of the
 * model's building (port labels, userData, …) and the checks below of what the model's fields will meet on
 * the host. A document with problems still has a model (a controller's faulty objects are held in error).
 */
export function readConfig(input: Obj, env: ValidationEnv): { model: DeviceModel; problems: ObjectProblem[] } {
  // UUIDs compare case-insensitively: ids that differ only in case are one id (a duplicate, refused below).
  const doc = normalizeUuids(input);
  const built = buildDeviceModel(doc);
  const model = built.model;
  const problems: ObjectProblem[] = [];
  const push = (objectKind: ObjectProblem["objectKind"], objectId: string, path: string, message: string) =>
    problems.push({ objectKind, objectId, path, message });
  // No string of a config reaches the host with a line break or another control character in it.
  controlCharacters(doc, (path, message) => push(...ownerOf(doc, path), path, message));
  devicePorts(doc, (path, message) => push("device", "", path, message));
  problems.push(...built.problems);

  const datastores = new Map<string, Obj>();
  (doc.datastores ?? []).forEach((ds: Obj, i: number) => {
    const path = `datastores[${i}]`;
    const id = ds.id ?? "";
    if (!UUID_RE.test(id)) push("datastore", id, `${path}.id`, `expected a UUID, got "${id}"`);
    else if (datastores.has(id)) push("datastore", id, `${path}.id`, `duplicate datastore id ${id} (UUIDs compare without regard to case)`);
    datastores.set(id, ds);
    if (!ds.fqdn) push("datastore", id, `${path}.fqdn`, "a datastore needs an fqdn (e.g. https://host or docker://host:5000)");
    for (const f of ["fqdn", "dpath"]) {
      const m = tokenProblem(ds[f]);
      if (m) push("datastore", id, `${path}.${f}`, m);
    }
  });

  const contentTrees = new Map<string, Obj>();
  (doc.contentInfo ?? []).forEach((ct: Obj, i: number) => {
    const path = `contentInfo[${i}]`;
    const id = ct.uuid ?? "";
    if (!UUID_RE.test(id)) push("contentTree", id, `${path}.uuid`, `expected a UUID, got "${id}"`);
    else if (contentTrees.has(id)) push("contentTree", id, `${path}.uuid`, `duplicate content tree uuid ${id} (UUIDs compare without regard to case)`);
    contentTrees.set(id, ct);
    if (!ct.dsId) push("contentTree", id, `${path}.dsId`, "a content tree needs a datastore (dsId)");
    else if (!datastores.has(ct.dsId)) push("contentTree", id, `${path}.dsId`, `no datastore with id ${ct.dsId} in this config`);
    if (!ct.URL) push("contentTree", id, `${path}.URL`, "a content tree needs a URL (path in its datastore, or repository:tag)");
    else {
      const m = tokenProblem(ct.URL);
      if (m) push("contentTree", id, `${path}.URL`, m);
    }
    textField(ct.displayName, `${path}.displayName`, (p, m) => push("contentTree", id, p, m));
    if (ct.sha256 && !/^[0-9a-fA-F]{64}$/.test(ct.sha256)) push("contentTree", id, `${path}.sha256`, "expected 64 hex digits");
  });

  const volumes = new Map<string, Obj>();
  (doc.volumes ?? []).forEach((v: Obj, i: number) => {
    const path = `volumes[${i}]`;
    const id = v.uuid ?? "";
    if (!UUID_RE.test(id)) push("volume", id, `${path}.uuid`, `expected a UUID, got "${id}"`);
    else if (volumes.has(id)) push("volume", id, `${path}.uuid`, `duplicate volume uuid ${id} (UUIDs compare without regard to case)`);
    volumes.set(id, v);
    const ctId = v.origin?.downloadContentTreeID;
    if (ctId && !contentTrees.has(ctId)) push("volume", id, `${path}.origin.downloadContentTreeID`, `no content tree with uuid ${ctId} in this config`);
    textField(v.displayName, `${path}.displayName`, (p, m) => push("volume", id, p, m));
  });

  const networks = new Map<string, { obj: Obj; subnet: Cidr | null; path: string }>();
  const switchPorts = new Map<string, string>();
  const nis: Obj[] = doc.networkInstances ?? [];
  if (nis.length > MAX_NETWORK_INSTANCES) push("device", "", "networkInstances", `${nis.length} entries: at most ${MAX_NETWORK_INSTANCES}`);
  // The device's own networks, read once per validation (it was once per instance: 16,000 reads of /proc/net/route).
  let hostNets: { text: string; cidr: Cidr }[] | null = null;
  const hostNetworks = () =>
    (hostNets ??= env.hostNetworks().flatMap((text) => {
      const cidr = parseCidr(text);
      return cidr ? [{ text, cidr }] : [];
    }));
  const niSubnets: (Cidr | null)[] = [];
  nis.forEach((ni: Obj, i: number) => {
    const path = `networkInstances[${i}]`;
    const id = ni.uuidandversion?.uuid ?? "";
    if (!UUID_RE.test(id)) push("networkInstance", id, `${path}.uuidandversion.uuid`, `expected a UUID, got "${id}"`);
    else if (networks.has(id)) push("networkInstance", id, `${path}.uuidandversion.uuid`, `duplicate network instance uuid ${id} (UUIDs compare without regard to case)`);
    textField(ni.displayname, `${path}.displayname`, (p, m) => push("networkInstance", id, p, m));
    let subnet: Cidr | null = null;
    const ip = ni.ip ?? {};
    // The domain and the static names are written into dnsmasq's files and answered in DNS.
    // (A control character is reported once, by the walk above.)
    if (ip.domain !== undefined && ip.domain !== "" && !isHostname(ip.domain) && !hasControl(String(ip.domain))) push("networkInstance", id, `${path}.ip.domain`, `${quote(ip.domain)} is not ${HOSTNAME_RULE}`);
    (Array.isArray(ni.dns) ? ni.dns : []).forEach((d: Obj, j: number) => {
      if (!isHostname(d?.HostName) && !hasControl(String(d?.HostName ?? ""))) push("networkInstance", id, `${path}.dns[${j}].HostName`, `${quote(d?.HostName ?? "")} is not ${HOSTNAME_RULE}`);
      (Array.isArray(d?.Address) ? d.Address : []).forEach((a: string, k: number) => {
        if (typeof a !== "string" || (!parseIp(a) && !hasControl(a))) push("networkInstance", id, `${path}.dns[${j}].Address[${k}]`, `${quote(a)} is not an IP address`);
      });
    });
    if (ip.subnet) {
      subnet = parseCidr(ip.subnet);
      if (!subnet) push("networkInstance", id, `${path}.ip.subnet`, `"${ip.subnet}" is not a CIDR subnet like 10.1.0.0/24`);
      else if (hasHostBits(subnet)) push("networkInstance", id, `${path}.ip.subnet`, `"${ip.subnet}" has host bits set`);
    }
    const inSubnet = (field: string, value: string | undefined) => {
      if (!value) return;
      const a = parseIp(value);
      if (!a) push("networkInstance", id, `${path}.${field}`, `"${value}" is not an IP address`);
      else if (subnet && !contains(subnet, a)) push("networkInstance", id, `${path}.${field}`, `${value} is outside the subnet ${ip.subnet}`);
    };
    inSubnet("ip.gateway", ip.gateway);
    inSubnet("ip.dhcpRange.start", ip.dhcpRange?.start);
    inSubnet("ip.dhcpRange.end", ip.dhcpRange?.end);
    (ip.dns ?? []).forEach((d: string, j: number) => {
      if (!parseIp(d)) push("networkInstance", id, `${path}.ip.dns[${j}]`, `"${d}" is not an IP address`);
    });
    const kind = ni.instType ?? "ZNetInstFirst";
    if (kind !== "ZnetInstLocal" && kind !== "ZnetInstSwitch") {
      push("networkInstance", id, `${path}.instType`, `${kind} is not supported: use ZnetInstLocal (NAT, DHCP, DNS) or ZnetInstSwitch (a bridge on a device port)`);
    }
    const port: string = ni.port?.name ?? "";
    if (kind === "ZnetInstSwitch" && !port) push("networkInstance", id, `${path}.port.name`, "a Switch network instance needs the device port it bridges");
    // An unresolvable label is a problem of the model (model.ts), reported with it.
    const resolved = model.networkInstances[i]?.port?.resolution ?? null;
    if (resolved && resolved.kind !== "error") {
      const ifname = resolved.kind === "shared" ? "*" : resolved.ifname;
      // A VLAN or bond of the config is made by the device itself: it need not exist yet.
      const exists = ifname === "*" || (resolved.kind === "ifname" && resolved.link) ? true : env.interfaceExists(ifname);
      if (exists === false) push("networkInstance", id, `${path}.port.name`, `no port "${port}" on this device${ifname !== port ? ` (it names interface ${ifname})` : ""}`);
      if (kind === "ZnetInstSwitch" && ifname !== "*") {
        const other = switchPorts.get(ifname);
        if (other) push("networkInstance", id, `${path}.port.name`, `port ${port} is already bridged by ${other}`);
        switchPorts.set(ifname, path);
      }
    }
    if (subnet && kind === "ZnetInstLocal" && subnet.family === 4) {
      if (subnet.prefix > 30) push("networkInstance", id, `${path}.ip.subnet`, `${ip.subnet} is too small: a Local instance needs at least a /30`);
      const gw = ip.gateway ? parseIp(ip.gateway) : null;
      const last = subnet.addr | ((1n << BigInt(32 - subnet.prefix)) - 1n);
      if (gw && (gw.addr === subnet.addr || gw.addr === last)) push("networkInstance", id, `${path}.ip.gateway`, `${ip.gateway} is the network or broadcast address of ${ip.subnet}`);
      const s0 = ip.dhcpRange?.start ? parseIp(ip.dhcpRange.start) : null;
      const s1 = ip.dhcpRange?.end ? parseIp(ip.dhcpRange.end) : null;
      if (s0 && s1 && s0.addr > s1.addr) push("networkInstance", id, `${path}.ip.dhcpRange`, `start ${ip.dhcpRange.start} is after end ${ip.dhcpRange.end}`);
      const h = hostNetworks().find((h) => overlaps(subnet!, h.cidr));
      if (h) push("networkInstance", id, `${path}.ip.subnet`, `${ip.subnet} overlaps the device's own network ${h.text}`);
    }
    niSubnets.push(subnet);
    networks.set(id, { obj: ni, subnet, path });
  });
  // Each subnet overlapping an earlier instance's is at fault, named with the earliest it overlaps.
  earliestOverlaps(niSubnets).forEach((j, i) => {
    if (j < 0) return;
    const ni = nis[i]!;
    const other = nis[j]!;
    push("networkInstance", ni.uuidandversion?.uuid ?? "", `networkInstances[${i}].ip.subnet`, `${ni.ip.subnet} overlaps ${other.ip.subnet} of networkInstances[${j}] (${other.displayname ?? other.uuidandversion?.uuid})`);
  });

  // The ports VLANs and bonds are made on must be the device's (a bond as a VLAN's parent is made here too).
  const onDevice = (r: { kind: string; ifname?: string; link?: unknown }, label: string, path: string) => {
    if (r.kind !== "ifname" || r.link || env.interfaceExists(r.ifname!) !== false) return;
    push("device", "", path, `no port ${quote(label)} on this device${r.ifname !== label ? ` (it names interface ${r.ifname})` : ""}`);
  };
  for (const v of model.vlans) onDevice(v.parent, v.parentLabel, `vlans[${v.index}].lowerLayerName`);
  for (const b of model.bonds) b.members.forEach((m, j) => onDevice(m.resolution, m.label, `bonds[${b.index}].lowerLayerNames[${j}]`));

  const apps = new Set<string>();
  const staticAddrs = new Map<string, string>();
  const portmaps = new Map<string, string>();
  let totalAces = 0;
  (doc.apps ?? []).forEach((app: Obj, i: number) => {
    const path = `apps[${i}]`;
    const id = app.uuidandversion?.uuid ?? "";
    if (!UUID_RE.test(id)) push("app", id, `${path}.uuidandversion.uuid`, `expected a UUID, got "${id}"`);
    else if (apps.has(id)) push("app", id, `${path}.uuidandversion.uuid`, `duplicate app uuid ${id} (UUIDs compare without regard to case)`);
    apps.add(id);
    if (!app.displayname) push("app", id, `${path}.displayname`, "an app needs a name");
    else if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(app.displayname)) {
      push("app", id, `${path}.displayname`, `"${app.displayname}": use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
    }
    const mem = Number(app.fixedresources?.memory ?? 0);
    const maxmem = Number(app.fixedresources?.maxmem ?? 0);
    if (maxmem && mem > maxmem) push("app", id, `${path}.fixedresources.memory`, `memory ${mem} KiB exceeds maxmem ${maxmem} KiB`);
    // EVE's VNC ports are 5900-5999 (5900 + vncDisplay).
    const display = Number(app.fixedresources?.vncDisplay ?? 0);
    if (display > 99) push("app", id, `${path}.fixedresources.vncDisplay`, `${display} is not a VNC display 0-99 (TCP port 5900 + display)`);
    // An app asking for more memory than the device has can never start (QEMU's allocation, a container's limit).
    const hostMem = env.hostMemoryKiB?.() ?? null;
    if (hostMem && mem > hostMem) push("app", id, `${path}.fixedresources.memory`, `memory ${mem} KiB (${mib(mem)} MiB) is more than the device has (${mib(hostMem)} MiB)`);
    if (!(app.volumeRefList ?? []).length && !(app.drives ?? []).length) {
      push("app", id, `${path}.volumeRefList`, "an app needs at least one volume (its image)");
    }
    (app.volumeRefList ?? []).forEach((ref: Obj, j: number) => {
      if (!volumes.has(ref.uuid)) push("app", id, `${path}.volumeRefList[${j}].uuid`, `no volume with uuid ${ref.uuid ?? "(empty)"} in this config`);
      if (ref.mountDir) {
        const m = mountDirProblem(ref.mountDir);
        if (m) push("app", id, `${path}.volumeRefList[${j}].mountDir`, m);
      }
    });
    if ((app.interfaces ?? []).length > MAX_INTERFACES_PER_APP) push("app", id, `${path}.interfaces`, `${app.interfaces.length} interfaces: at most ${MAX_INTERFACES_PER_APP} per app`);
    const ifnames = new Set<string>();
    (app.interfaces ?? []).forEach((ifc: Obj, j: number) => {
      const ip = `${path}.interfaces[${j}]`;
      const ni = networks.get(ifc.networkId);
      // Also what deleting an instance an app is on gives: the app is named, so the operator knows what uses it.
      if (ifc.networkId && !ni) push("app", id, `${ip}.networkId`, `app ${quote(app.displayname ?? id)} is on network instance ${ifc.networkId}, which is not in this config (remove the app's interface on it first)`);
      if (ifc.name && !IFNAME_RE.test(ifc.name)) push("app", id, `${ip}.name`, `"${ifc.name}" is not an interface name (1-15 of A-Z a-z 0-9 _ . -)`);
      const ifname = ifc.name || `eth${j}`;
      if (ifnames.has(ifname)) push("app", id, `${ip}.name`, `two interfaces of this app are named ${ifname}`);
      ifnames.add(ifname);
      if (ifc.addr && !parseIp(ifc.addr)) push("app", id, `${ip}.addr`, `"${ifc.addr}" is not an IP address`);
      else if (ifc.addr && ni?.subnet && !contains(ni.subnet, parseIp(ifc.addr)!)) {
        push("app", id, `${ip}.addr`, `${ifc.addr} is outside the subnet ${ni.obj.ip?.subnet} of network instance ${quote(ni.obj.displayname || ifc.networkId)}`);
      } else if (ifc.addr && ni) {
        if (ni.obj.ip?.gateway === ifc.addr) push("app", id, `${ip}.addr`, `${ifc.addr} is the gateway of network instance ${ifc.networkId}`);
        const key = `${ifc.networkId}/${ifc.addr}`;
        if (staticAddrs.has(key)) push("app", id, `${ip}.addr`, `${ifc.addr} is already the address of ${staticAddrs.get(key)}`);
        staticAddrs.set(key, ip);
      }
      if (ifc.macAddress) {
        if (!/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(ifc.macAddress)) push("app", id, `${ip}.macAddress`, `"${ifc.macAddress}" is not a MAC address`);
        else if (parseInt(ifc.macAddress.slice(0, 2), 16) & 1) push("app", id, `${ip}.macAddress`, `${ifc.macAddress} is a multicast address; an interface needs a unicast one`);
      }
      const acls: Obj[] = ifc.acls ?? [];
      if (acls.length > MAX_ACES_PER_INTERFACE) {
        push("app", id, `${ip}.acls`, `${acls.length} rules: at most ${MAX_ACES_PER_INTERFACE} per interface (compile large lists to CIDRs or split them)`);
        return;
      }
      totalAces += acls.length;
      acls.forEach((ace: Obj, k: number) => validateAce(ace, `${ip}.acls[${k}]`, (p, m) => push("app", id, p, m)));
      // A device port can be mapped to one app only.
      if (ni?.obj.instType === "ZnetInstLocal") {
        acls.forEach((ace: Obj, k: number) => {
          if (!(ace.actions ?? []).some((a: Obj) => a.portmap)) return;
          const m = (t: string) => (ace.matches ?? []).find((x: Obj) => x.type === t)?.value;
          const key = `${ni.obj.port?.name ?? ""}/${(m("protocol") ?? "tcp").toLowerCase()}/${m("lport")}`;
          if (portmaps.has(key)) push("app", id, `${ip}.acls[${k}]`, `port ${m("lport")}/${(m("protocol") ?? "tcp").toLowerCase()} of ${ni.obj.port?.name || "the uplink"} is already mapped by ${portmaps.get(key)}`);
          else portmaps.set(key, `app ${quote(app.displayname ?? id)} (${ip}.acls[${k}])`);
        });
      }
    });
  });

  if (totalAces > MAX_ACES_PER_DEVICE) {
    push("device", "", "apps", `${totalAces} firewall rules in all: at most ${MAX_ACES_PER_DEVICE} per device`);
  }
  return { model, problems };
}

/** Every device port the config names resolves to an interface name, without cycles (see ports.ts). */
function devicePorts(doc: Obj, push: (path: string, message: string) => void): void {
  (Array.isArray(doc.deviceIoList) ? doc.deviceIoList : []).forEach((io: Obj, i: number) => {
    const f = ioIfname(io);
    if (f && !isIfname(f.value)) push(`deviceIoList[${i}].phyaddrs.${f.key}`, `${quote(f.value)} is not an interface name (${IFNAME_RULE})`);
  });
  // Their names are resolved by the model (model.ts), which reports a label that names no interface.
  (Array.isArray(doc.systemAdapterList) ? doc.systemAdapterList : []).forEach((sa: Obj, i: number) => {
    if (!sa?.name) return;
    if (sa.addr && !parseIp(String(sa.addr))) push(`systemAdapterList[${i}].addr`, `${quote(sa.addr)} is not an IP address`);
  });
  (Array.isArray(doc.networks) ? doc.networks : []).forEach((n: Obj, i: number) => {
    (Array.isArray(n?.ip?.dns) ? n.ip.dns : []).forEach((d: string, j: number) => {
      if (!parseIp(String(d))) push(`networks[${i}].ip.dns[${j}]`, `${quote(d)} is not an IP address`);
    });
    if (n?.ip?.domain && !isHostname(n.ip.domain)) push(`networks[${i}].ip.domain`, `${quote(n.ip.domain)} is not ${HOSTNAME_RULE}`);
  });
}

/** Walks every string of the document; only FREE_TEXT_FIELDS may hold control characters. */
function controlCharacters(doc: unknown, push: (path: string, message: string) => void): void {
  // The path is built only for a hit: a document of 50,000 ACEs has a few hundred thousand strings.
  const at: (string | number)[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === "string") {
      if (hasControl(v)) {
        const path = at.map((k, i) => (typeof k === "number" ? `[${k}]` : i ? `.${k}` : k)).join("");
        push(path, `contains a control character (a newline, tab, …) at position ${v.search(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/)}: this field is one line of text`);
      }
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        at.push(i);
        walk(v[i]);
        at.pop();
      }
    } else if (v && typeof v === "object" && !ArrayBuffer.isView(v)) {
      for (const k in v as Obj) {
        if (FREE_TEXT_FIELDS.has(k)) continue;
        at.push(k);
        walk((v as Obj)[k]);
        at.pop();
      }
    }
  };
  walk(doc);
}

/** The object a field belongs to (its kind and id), from the field's path. */
function ownerOf(doc: Obj, path: string): [ObjectProblem["objectKind"], string] {
  const m = path.match(/^(\w+)\[(\d+)\]/);
  const o = m ? doc[m[1]!]?.[Number(m[2])] : undefined;
  switch (m?.[1]) {
    case "apps":
      return ["app", o?.uuidandversion?.uuid ?? ""];
    case "networkInstances":
      return ["networkInstance", o?.uuidandversion?.uuid ?? ""];
    case "volumes":
      return ["volume", o?.uuid ?? ""];
    case "contentInfo":
      return ["contentTree", o?.uuid ?? ""];
    case "datastores":
      return ["datastore", o?.id ?? ""];
    case "patchEnvelopes":
      return ["patchEnvelope", String(o?.uuid ?? "").toLowerCase()];
    default:
      return ["device", ""];
  }
}

/** A name shown to people (and written into comments and logs): one line, bounded. Control characters are reported by the walk. */
function textField(v: unknown, path: string, push: (path: string, message: string) => void): void {
  if (v === undefined || v === null || v === "") return;
  const m = displayNameProblem(v);
  if (m && !hasControl(String(v))) push(path, m);
}

/** A URL, an image reference, a path in a datastore, a credential: one token (no spaces, no control characters), bounded. */
function tokenProblem(v: unknown): string | null {
  if (v === undefined || v === null || v === "") return null;
  const s = String(v);
  if (/\s/.test(s) && !hasControl(s)) return "contains a space: expected one token (a URL, a path, a reference)";
  if (s.length > MAX_URL) return `${s.length} characters: at most ${MAX_URL}`;
  return null;
}

/** Where a volume appears in the app's container: an absolute path without . or .. components. */
function mountDirProblem(v: unknown): string | null {
  const s = String(v);
  if (hasControl(s)) return null; // reported by the walk
  if (!s.startsWith("/")) return `${quote(s)} is not an absolute path`;
  if (s.split("/").some((c) => c === "." || c === "..")) return `${quote(s)} has a . or .. component`;
  if (s.length > 1024) return `${s.length} characters: at most 1024`;
  return null;
}

function mib(kib: number): number {
  return Math.round(kib / 1024);
}

/** A config value in a message, on one line. */
function quote(v: unknown): string {
  const s = String(v);
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}

function validateAce(ace: Obj, path: string, push: (path: string, message: string) => void): void {
  const matches: Obj[] = ace.matches ?? [];
  if (matches.length === 0) push(`${path}.matches`, "an ACL rule needs at least one match");
  let protocol: string | undefined;
  let hasPort = false;
  matches.forEach((m: Obj, i: number) => {
    const p = `${path}.matches[${i}]`;
    const type = m.type ?? "";
    const value: string = m.value ?? "";
    if (!MATCH_TYPES.has(type)) {
      push(`${p}.type`, `unknown match type "${type}" (expected ip, host, protocol, lport, fport or adapter)`);
      return;
    }
    switch (type) {
      case "ip":
        if (!parseIp(value) && !parseCidr(value)) push(`${p}.value`, `"${value}" is not an IP address or CIDR`);
        break;
      case "host":
        if (!/^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?$/.test(value)) {
          push(`${p}.value`, `"${value}" is not a host name`);
        }
        break;
      case "protocol": {
        protocol = value.toLowerCase();
        const n = Number(value);
        if (!PROTOCOLS.has(protocol) && !(Number.isInteger(n) && n >= 0 && n <= 255 && value !== "")) {
          push(`${p}.value`, `"${value}" is not a protocol (tcp, udp, icmp or a number 0-255)`);
        }
        break;
      }
      case "lport":
      case "fport": {
        hasPort = true;
        const n = Number(value);
        if (!/^\d+$/.test(value) || n < 1 || n > 65535) push(`${p}.value`, `"${value}" is not a port (1-65535)`);
        break;
      }
      case "adapter":
        if (!value) push(`${p}.value`, "an adapter match needs an adapter name");
        break;
    }
  });
  if (hasPort && protocol === undefined) push(`${path}.matches`, "a port match (lport/fport) needs a protocol match (tcp or udp) in the same rule");
  else if (hasPort && protocol !== "tcp" && protocol !== "udp" && protocol !== "6" && protocol !== "17" && protocol !== "sctp") {
    push(`${path}.matches`, `a port match needs protocol tcp, udp or sctp, not "${protocol}"`);
  }
  (ace.actions ?? []).forEach((a: Obj, i: number) => {
    const p = `${path}.actions[${i}]`;
    if (a.portmap) {
      const port = Number(a.appPort ?? 0);
      if (!(port >= 1 && port <= 65535)) push(`${p}.appPort`, "a portmap action needs appPort 1-65535");
      if (!matches.some((m) => m.type === "lport")) push(`${p}.portmap`, "a portmap action needs an lport match (the device port to map)");
    }
    if (a.limit && !(Number(a.limitrate ?? 0) > 0)) push(`${p}.limitrate`, "a limit action needs limitrate > 0");
    if (a.limitunit && !["s", "m", "h", "d", "second", "minute", "hour", "day"].includes(a.limitunit)) {
      push(`${p}.limitunit`, `"${a.limitunit}" is not a unit (s, m, h or d)`);
    }
    if (a.drop && (a.portmap || a.limit)) push(p, "an action cannot both drop and portmap/limit");
  });
}
