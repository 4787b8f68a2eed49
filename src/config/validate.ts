// Semantic checks of an EdgeDevConfig (in protobufjs toObject form: lowerCamel names, enum names,
// 64-bit integers as strings). Structural faults are found earlier, while decoding.
import { contains, hasHostBits, overlaps, parseCidr, parseIp, type Cidr } from "./net.ts";
import type { Problem } from "./problems.ts";

/** A problem tied to the object it makes faulty, so a controller config can hold just that object in error. */
export interface ObjectProblem extends Problem {
  objectKind: "app" | "volume" | "contentTree" | "datastore" | "networkInstance" | "device";
  objectId: string;
}

type Obj = Record<string, any>;

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const PROTOCOLS = new Set(["tcp", "udp", "icmp", "icmpv6", "sctp", "all"]);
const MATCH_TYPES = new Set(["ip", "host", "protocol", "lport", "fport", "adapter", "eidset", "eidipset"]);

export function validateConfig(doc: Obj): ObjectProblem[] {
  const problems: ObjectProblem[] = [];
  const push = (objectKind: ObjectProblem["objectKind"], objectId: string, path: string, message: string) =>
    problems.push({ objectKind, objectId, path, message });

  const datastores = new Map<string, Obj>();
  (doc.datastores ?? []).forEach((ds: Obj, i: number) => {
    const path = `datastores[${i}]`;
    const id = ds.id ?? "";
    if (!UUID_RE.test(id)) push("datastore", id, `${path}.id`, `expected a UUID, got "${id}"`);
    else if (datastores.has(id)) push("datastore", id, `${path}.id`, `duplicate datastore id ${id}`);
    datastores.set(id, ds);
    if (!ds.fqdn) push("datastore", id, `${path}.fqdn`, "a datastore needs an fqdn (e.g. https://host or docker://host:5000)");
  });

  const contentTrees = new Map<string, Obj>();
  (doc.contentInfo ?? []).forEach((ct: Obj, i: number) => {
    const path = `contentInfo[${i}]`;
    const id = ct.uuid ?? "";
    if (!UUID_RE.test(id)) push("contentTree", id, `${path}.uuid`, `expected a UUID, got "${id}"`);
    else if (contentTrees.has(id)) push("contentTree", id, `${path}.uuid`, `duplicate content tree uuid ${id}`);
    contentTrees.set(id, ct);
    if (!ct.dsId) push("contentTree", id, `${path}.dsId`, "a content tree needs a datastore (dsId)");
    else if (!datastores.has(ct.dsId)) push("contentTree", id, `${path}.dsId`, `no datastore with id ${ct.dsId} in this config`);
    if (!ct.URL) push("contentTree", id, `${path}.URL`, "a content tree needs a URL (path in its datastore, or repository:tag)");
    if (ct.sha256 && !/^[0-9a-fA-F]{64}$/.test(ct.sha256)) push("contentTree", id, `${path}.sha256`, "expected 64 hex digits");
  });

  const volumes = new Map<string, Obj>();
  (doc.volumes ?? []).forEach((v: Obj, i: number) => {
    const path = `volumes[${i}]`;
    const id = v.uuid ?? "";
    if (!UUID_RE.test(id)) push("volume", id, `${path}.uuid`, `expected a UUID, got "${id}"`);
    else if (volumes.has(id)) push("volume", id, `${path}.uuid`, `duplicate volume uuid ${id}`);
    volumes.set(id, v);
    const ctId = v.origin?.downloadContentTreeID;
    if (ctId && !contentTrees.has(ctId)) push("volume", id, `${path}.origin.downloadContentTreeID`, `no content tree with uuid ${ctId} in this config`);
  });

  const networks = new Map<string, { obj: Obj; subnet: Cidr | null; path: string }>();
  (doc.networkInstances ?? []).forEach((ni: Obj, i: number) => {
    const path = `networkInstances[${i}]`;
    const id = ni.uuidandversion?.uuid ?? "";
    if (!UUID_RE.test(id)) push("networkInstance", id, `${path}.uuidandversion.uuid`, `expected a UUID, got "${id}"`);
    else if (networks.has(id)) push("networkInstance", id, `${path}.uuidandversion.uuid`, `duplicate network instance uuid ${id}`);
    let subnet: Cidr | null = null;
    const ip = ni.ip ?? {};
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
    if (subnet) {
      for (const other of networks.values()) {
        if (other.subnet && overlaps(subnet, other.subnet)) {
          push("networkInstance", id, `${path}.ip.subnet`, `${ip.subnet} overlaps ${other.obj.ip.subnet} of ${other.path} (${other.obj.displayname ?? other.obj.uuidandversion?.uuid})`);
        }
      }
    }
    networks.set(id, { obj: ni, subnet, path });
  });

  const apps = new Set<string>();
  (doc.apps ?? []).forEach((app: Obj, i: number) => {
    const path = `apps[${i}]`;
    const id = app.uuidandversion?.uuid ?? "";
    if (!UUID_RE.test(id)) push("app", id, `${path}.uuidandversion.uuid`, `expected a UUID, got "${id}"`);
    else if (apps.has(id)) push("app", id, `${path}.uuidandversion.uuid`, `duplicate app uuid ${id}`);
    apps.add(id);
    if (!app.displayname) push("app", id, `${path}.displayname`, "an app needs a name");
    else if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(app.displayname)) {
      push("app", id, `${path}.displayname`, `"${app.displayname}": use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
    }
    const mem = Number(app.fixedresources?.memory ?? 0);
    const maxmem = Number(app.fixedresources?.maxmem ?? 0);
    if (maxmem && mem > maxmem) push("app", id, `${path}.fixedresources.memory`, `memory ${mem} KiB exceeds maxmem ${maxmem} KiB`);
    if (!(app.volumeRefList ?? []).length && !(app.drives ?? []).length) {
      push("app", id, `${path}.volumeRefList`, "an app needs at least one volume (its image)");
    }
    (app.volumeRefList ?? []).forEach((ref: Obj, j: number) => {
      if (!volumes.has(ref.uuid)) push("app", id, `${path}.volumeRefList[${j}].uuid`, `no volume with uuid ${ref.uuid ?? "(empty)"} in this config`);
    });
    (app.interfaces ?? []).forEach((ifc: Obj, j: number) => {
      const ip = `${path}.interfaces[${j}]`;
      if (ifc.networkId && !networks.has(ifc.networkId)) push("app", id, `${ip}.networkId`, `no network instance with uuid ${ifc.networkId} in this config`);
      if (ifc.addr && !parseIp(ifc.addr)) push("app", id, `${ip}.addr`, `"${ifc.addr}" is not an IP address`);
      else if (ifc.addr && networks.get(ifc.networkId)?.subnet && !contains(networks.get(ifc.networkId)!.subnet!, parseIp(ifc.addr)!)) {
        push("app", id, `${ip}.addr`, `${ifc.addr} is outside the subnet of network instance ${ifc.networkId}`);
      }
      if (ifc.hwaddr && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(ifc.hwaddr)) push("app", id, `${ip}.hwaddr`, `"${ifc.hwaddr}" is not a MAC address`);
      (ifc.acls ?? []).forEach((ace: Obj, k: number) => validateAce(ace, `${ip}.acls[${k}]`, (p, m) => push("app", id, p, m)));
    });
  });

  return problems;
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
