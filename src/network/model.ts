// The desired networks, read from the device model (config/model.ts) the way EVE's zedrouter reads the config:
// network instances (Local: a NATed bridge with DHCP and DNS; Switch: a bridge on a device port) and the app
// interfaces on them, with stable MACs, addresses and names. Pure: host facts and earlier allocations come in as
// arguments.
import { type AceModel, type AppModel, deviceModel, type DeviceModel } from "../config/model.ts";
import { isHostname, isIfname } from "../config/names.ts";
import { type PortResolution, resolvePortLabel } from "../config/ports.ts";
import type { ObjectProblem } from "../config/problems.ts";
import { inNet, last, netsOverlap, netStr, type V4Net, v4, v4net, v4str } from "./ipv4.ts";
import { hashHex } from "./sys.ts";

type Doc = Record<string, any>;

export type NiKind = "local" | "switch";

export interface NiSpec {
  uuid: string;
  name: string;
  kind: NiKind;
  /** Our bridge: `eb` + 12 hex of the uuid's hash. */
  bridge: string;
  /** Local: the subnet (configured or allocated), its gateway (the bridge's address) and DHCP range. */
  subnet: string | null;
  gateway: string | null;
  dhcpRange: { start: string; end: string } | null;
  /** Local: the port NATed to (none: an air-gapped instance). Switch: the port enslaved to the bridge. */
  uplink: { label: string; ifname: string } | null;
  /** Upstream DNS servers dnsmasq forwards to (the config's `ip.dns`, else the device's resolv.conf). */
  dnsServers: string[];
  staticDns: { host: string; addrs: string[] }[];
  domain: string | null;
  mtu: number;
  flowlog: boolean;
  /** Why this instance cannot be built (it is then left out, and shown with this error). */
  error: string | null;
}

/** An ACL rule of an app interface: the model's reading of it (config/model.ts). */
export type AceSpec = AceModel;

export interface AppInterfaceSpec {
  appUuid: string;
  appName: string;
  appKind: "container" | "vm" | "unknown";
  index: number;
  /** The adapter's name in the config (eth0 …); a container sees this name. */
  name: string;
  niUuid: string;
  niKind: NiKind;
  bridge: string;
  /** Host side: `ev` + 10 hex of the app's hash + `v` (veth) or `t` (tap) + index. */
  hostIfname: string;
  mac: string;
  /** Local: the reserved address (prefix from the subnet); Switch: null (the uplink's DHCP decides). */
  ip: string | null;
  prefix: number | null;
  gateway: string | null;
  uplinkIfname: string | null;
  uplinkLabel: string | null;
  acls: AceSpec[];
}

export interface Allocations {
  /** Allocated subnets of Local instances configured without one. */
  subnets: Record<string, string>;
  /** `<ni>/<app>/<index>` → address. */
  addrs: Record<string, string>;
}

export interface HostFacts {
  /** Networks on the device's own (not evebox's) interfaces and routes: allocated subnets must avoid them. */
  hostNetworks: string[];
  /** The device's interfaces that are not evebox's. */
  interfaces: string[];
  /** Interface of the default route, for the shared label `uplink`. */
  defaultRouteIfname: string | null;
  resolvServers: string[];
  /** Default gateway per interface (main table), for an instance's own routing table. */
  gateways: Record<string, string>;
  /** Directly connected networks per interface. */
  connected: Record<string, string[]>;
}

export interface NetworkModel {
  instances: NiSpec[];
  interfaces: AppInterfaceSpec[];
  allocations: Allocations;
}

export const EMPTY_FACTS: HostFacts = { hostNetworks: [], interfaces: [], defaultRouteIfname: null, resolvServers: [], gateways: {}, connected: {} };

/** `<container id 12>@<start ms>`: a container that started again has a new namespace (and needs a new veth). */
export function containerKey(containerId: string, startedAt: Date | string | null): string {
  return `${containerId.slice(0, 12)}@${startedAt ? new Date(startedAt).getTime() : 0}`;
}

export function bridgeName(niUuid: string): string {
  return `eb${hashHex(`ni:${niUuid.toLowerCase()}`, 12)}`;
}

export function appIfname(appUuid: string, index: number, kind: "veth" | "tap"): string {
  return `ev${hashHex(`app:${appUuid.toLowerCase()}`, 10)}${kind === "tap" ? "t" : "v"}${index}`;
}

/** A stable, locally administered unicast MAC per app interface. */
export function appMac(appUuid: string, index: number): string {
  const h = hashHex(`mac:${appUuid.toLowerCase()}:${index}`, 10);
  return ["02", ...h.match(/../g)!].join(":");
}

const ALLOC_POOL: V4Net[] = Array.from({ length: 256 }, (_, i) => ({ addr: v4(`10.111.${i}.0`)!, prefix: 24 }));

/**
 * The interface a port label names on this device (config/ports.ts reads the label), or why there is none. Only
 * an interface the host has (`facts.interfaces`, observed) is ever returned: a name from the config goes into
 * /proc/sys and /sys paths and `ip` command lines, so one the kernel did not report is never used.
 */
export function portOf(doc: Doc, label: string, facts: HostFacts): { ifname: string } | { error: string } {
  if (!label) return { error: "no port named" };
  return portOnHost(label, resolvePortLabel(doc, label), facts);
}

/** What a resolved label (the model's) names on this device, or why it names nothing here. */
function portOnHost(label: string, r: PortResolution, facts: HostFacts): { ifname: string } | { error: string } {
  if (r.kind === "error") return { error: `${r.message}${r.path ? ` (at ${r.path})` : ""}` };
  let ifname: string | null;
  if (r.kind === "shared") ifname = facts.interfaces.includes(r.label) ? r.label : facts.defaultRouteIfname;
  else ifname = r.ifname;
  if (ifname === null) return { error: `no port "${label}" on this device: it has no default route for the shared label` };
  if (!isIfname(ifname) || !facts.interfaces.includes(ifname)) {
    return { error: `no port "${label}" on this device${ifname !== label ? ` (it names interface ${JSON.stringify(ifname)})` : ""} (its interfaces: ${facts.interfaces.join(", ") || "none"})` };
  }
  return { ifname };
}

export function resolvePort(doc: Doc, label: string, facts: HostFacts): string | null {
  const p = portOf(doc, label, facts);
  return "ifname" in p ? p.ifname : null;
}

/** The network model of a document (read into the device model first; see networkModelOf). */
export function networkModel(doc: Doc | null, objectErrors: ObjectProblem[], facts: HostFacts, previous: Allocations): NetworkModel {
  return networkModelOf(doc ? deviceModel(doc) : null, objectErrors, facts, previous);
}

export function networkModelOf(device: DeviceModel | null, objectErrors: ObjectProblem[], facts: HostFacts, previous: Allocations): NetworkModel {
  const allocations: Allocations = { subnets: {}, addrs: {} };
  if (!device) return { instances: [], interfaces: [], allocations };
  const faulty = new Set(objectErrors.filter((p) => p.objectKind === "networkInstance").map((p) => p.objectId));
  const errorOf = (id: string) =>
    objectErrors.filter((p) => p.objectKind === "networkInstance" && p.objectId === id).map((p) => `${p.path}: ${p.message}`).join("; ");

  const taken: V4Net[] = facts.hostNetworks.map(v4net).filter((n): n is V4Net => !!n);
  for (const ni of device.networkInstances) {
    const n = ni.subnet ? v4net(ni.subnet) : null;
    if (n) taken.push(n);
  }

  const instances: NiSpec[] = [];
  for (const ni of device.networkInstances) {
    const { uuid, kind } = ni;
    const spec: NiSpec = {
      uuid,
      name: ni.name,
      kind: kind ?? "local",
      bridge: bridgeName(uuid),
      subnet: null,
      gateway: null,
      dhcpRange: null,
      uplink: null,
      dnsServers: [],
      // Names go into dnsmasq's files: only host-name syntax (validation refuses the rest; this is the second line).
      staticDns: ni.staticDns.map((d) => ({ host: d.host, addrs: d.addrs.filter((a) => v4(a) !== null) })).filter((d) => isHostname(d.host)),
      domain: isHostname(ni.domain) ? ni.domain : null,
      mtu: ni.mtu,
      flowlog: ni.flowlog,
      error: null,
    };
    instances.push(spec);
    if (faulty.has(uuid)) {
      spec.error = errorOf(uuid);
      continue;
    }
    if (!kind) {
      spec.error = `instType: ${ni.instType ?? "(none)"} is not supported (Local and Switch are)`;
      continue;
    }
    if (ni.port) {
      const port = portOnHost(ni.port.label, ni.port.resolution, facts);
      if ("error" in port) {
        spec.error = `port.name: ${port.error}`;
        continue;
      }
      spec.uplink = { label: ni.port.label, ifname: port.ifname };
    } else if (kind === "switch") {
      spec.error = "port.name: a Switch network instance needs a device port to bridge";
      continue;
    }
    if (kind === "switch") continue;

    let net = ni.subnet ? v4net(ni.subnet) : null;
    if (!net) {
      const prev = previous.subnets[uuid] ? v4net(previous.subnets[uuid]!) : null;
      if (prev && !taken.some((t) => netsOverlap(t, prev))) net = prev;
      else net = ALLOC_POOL.find((c) => !taken.some((t) => netsOverlap(t, c))) ?? null;
      if (!net) {
        spec.error = "ip.subnet: none given, and no free /24 left in 10.111.0.0/16 to allocate";
        continue;
      }
      taken.push(net);
      allocations.subnets[uuid] = netStr(net);
    }
    if (net.prefix > 30) {
      spec.error = `ip.subnet: ${netStr(net)} is too small for a gateway and apps (/30 at most)`;
      continue;
    }
    const gw = v4(ni.gateway ?? "") ?? net.addr + 1;
    const start = v4(ni.dhcpRange?.start ?? "") ?? (gw === net.addr + 1 ? gw + 1 : net.addr + 1);
    const end = v4(ni.dhcpRange?.end ?? "") ?? last(net) - 1;
    spec.subnet = netStr(net);
    spec.gateway = v4str(gw);
    spec.dhcpRange = { start: v4str(start), end: v4str(end) };
    spec.dnsServers = ni.dns.filter((d) => v4(d) !== null);
    if (!spec.dnsServers.length) spec.dnsServers = facts.resolvServers.filter((s) => v4(s) !== null && !s.startsWith("127."));
  }
  const byUuid = new Map(instances.filter((n) => !n.error).map((n) => [n.uuid, n]));

  // App interfaces, with addresses: the config's, else the one allocated before, else a new one.
  const interfaces: AppInterfaceSpec[] = [];
  const appFaulty = new Set(objectErrors.filter((p) => p.objectKind === "app").map((p) => p.objectId));
  for (const a of device.apps) {
    const appUuid = a.uuid;
    if (appFaulty.has(appUuid)) continue;
    const kind = appKindOf(a);
    for (const ifc of a.interfaces) {
      const index = ifc.index;
      const ni = byUuid.get(ifc.networkId);
      if (!ni) continue;
      interfaces.push({
        appUuid,
        appName: a.name,
        appKind: kind,
        index,
        name: ifc.name,
        niUuid: ni.uuid,
        niKind: ni.kind,
        bridge: ni.bridge,
        hostIfname: appIfname(appUuid, index, kind === "vm" ? "tap" : "veth"),
        mac: ifc.macAddress ?? appMac(appUuid, index),
        ip: ni.kind === "local" && ifc.addr ? ifc.addr : null,
        prefix: ni.subnet ? Number(ni.subnet.split("/")[1]) : null,
        gateway: ni.gateway,
        uplinkIfname: ni.uplink?.ifname ?? null,
        uplinkLabel: ni.uplink?.label ?? null,
        acls: ifc.acls,
      });
    }
  }
  for (const ni of byUuid.values()) {
    if (ni.kind !== "local") continue;
    const net = v4net(ni.subnet!)!;
    const used = new Set<number>([net.addr, last(net), v4(ni.gateway!)!]);
    const mine = interfaces.filter((i) => i.niUuid === ni.uuid);
    for (const i of mine) if (i.ip) used.add(v4(i.ip)!);
    const start = v4(ni.dhcpRange!.start)!;
    const end = v4(ni.dhcpRange!.end)!;
    const key = (i: AppInterfaceSpec) => `${ni.uuid}/${i.appUuid}/${i.index}`;
    // Earlier allocations are kept while still valid, so an app's address never moves.
    for (const i of mine) {
      if (i.ip) continue;
      const prev = previous.addrs[key(i)];
      const p = prev ? v4(prev) : null;
      if (p !== null && inNet(net, p) && !used.has(p)) {
        i.ip = prev!;
        used.add(p);
      }
    }
    const size = end - start + 1;
    for (const i of mine.filter((x) => !x.ip).sort((x, y) => key(x).localeCompare(key(y)))) {
      const h = parseInt(hashHex(key(i), 8), 16) % Math.max(1, size);
      for (let k = 0; k < size; k++) {
        const c = start + ((h + k) % size);
        if (!used.has(c)) {
          i.ip = v4str(c);
          used.add(c);
          break;
        }
      }
    }
    for (const i of mine) if (i.ip) allocations.addrs[key(i)] = i.ip;
  }
  return { instances, interfaces: interfaces.filter((i) => i.niKind === "switch" || i.ip), allocations };
}

/** The model's kind; an app that is neither (held in error by the reconciler) gets a veth. */
function appKindOf(app: AppModel): AppInterfaceSpec["appKind"] {
  return app.kind ?? "unknown";
}

/** The model's reading of one ACE (config/model.ts), for callers that hold a raw ACE. */
export { aceModel as aceSpec } from "../config/model.ts";
