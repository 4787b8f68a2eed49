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
  /** Local: routes of the instance's own table beyond its subnet, the port's networks and the default (static routes out of the port). */
  routes: { dst: string; via: string | null }[];
  /** Local: a static default route out of the port replaces the port's gateway (null: the port's). */
  hostDefaultVia: string | null;
  /** Local: the routes the apps get (DHCP option 121; set on containers), besides the subnet and the default. */
  propagated: { dst: string; via: string }[];
  /** Local: the apps' default gateway when a static default route names an app (else the bridge). */
  appDefaultVia: string | null;
  /** Static routes that cannot be built here (left out; the instance is in error with these reasons). */
  routeErrors: string[];
  /** Why this instance cannot be built (it is then left out, and shown with this error). */
  error: string | null;
}

/** A VLAN sub-interface or bond the network part makes (config/netlinks.ts's, placed on this host). */
export interface L2LinkSpec {
  kind: "vlan" | "bond";
  label: string;
  /** evebox's name for it (config/names.ts `l2LinkName`). */
  ifname: string;
  /** vlan: the parent interface and the VLAN id. */
  parent: string | null;
  vlanId: number | null;
  /** bond: the member interfaces, the kernel's mode and its monitoring. */
  members: string[];
  mode: string | null;
  lacpRate: "slow" | "fast" | null;
  mii: { interval: number; updelay: number; downdelay: number } | null;
  arp: { interval: number; targets: string[] } | null;
  /** Why it is not made (its parent or a member is not on this device, the config's reason). */
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
  /** Local: the routes set in a container besides its subnet (the instance's propagated routes but those via itself). */
  routes: { dst: string; via: string }[];
  /** Local: the default gateway (the bridge, or the app a static default route names; null for the gateway app itself). */
  defaultVia: string | null;
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
  /** The VLANs and bonds of the config, in the order they are made (bonds first). */
  links: L2LinkSpec[];
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

/**
 * What a resolved label (the model's) names on this device, or why it names nothing here. `links`: the VLANs
 * and bonds being made (a port on one of them exists once it is made).
 */
function portOnHost(label: string, r: PortResolution, facts: HostFacts, links: L2LinkSpec[] = []): { ifname: string } | { error: string } {
  if (r.kind === "error") return { error: `${r.message}${r.path ? ` (at ${r.path})` : ""}` };
  if (r.kind === "ifname" && r.link) {
    const l = links.find((x) => x.ifname === r.ifname);
    if (!l) return { error: `${r.link.kind} ${JSON.stringify(r.link.label)} is not made on this device` };
    if (l.error) return { error: `${l.kind === "vlan" ? "VLAN" : "bond"} ${JSON.stringify(l.label)}: ${l.error}` };
    return { ifname: l.ifname };
  }
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
  if (!device) return { instances: [], links: [], interfaces: [], allocations };
  const links = linksOf(device, facts.interfaces);
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
      routes: [],
      hostDefaultVia: null,
      propagated: [],
      appDefaultVia: null,
      routeErrors: [],
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
      const port = portOnHost(ni.port.label, ni.port.resolution, facts, links);
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
    routesOf(spec, ni.staticRoutes, ni.propagateConnectedRoutes, net, facts);
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
        routes: [],
        defaultVia: ni.gateway,
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
    // An app that is a gateway of the instance's routes gets none through itself.
    for (const i of mine) {
      i.routes = ni.propagated.filter((r) => r.via !== i.ip);
      const dflt = ni.appDefaultVia ?? ni.gateway;
      i.defaultVia = dflt === i.ip ? null : dflt;
    }
  }
  return { instances, links, interfaces: interfaces.filter((i) => i.niKind === "switch" || i.ip), allocations };
}

/** The model's kind; an app that is neither (held in error by the reconciler) gets a veth. */
function appKindOf(app: AppModel): AppInterfaceSpec["appKind"] {
  return app.kind ?? "unknown";
}

/** The model's reading of one ACE (config/model.ts), for callers that hold a raw ACE. */
export { aceModel as aceSpec } from "../config/model.ts";

/**
 * The config's VLANs and bonds on this host: bonds first (a VLAN may sit on one), each with the interfaces
 * it is made of, which must be the device's (`facts.interfaces`, observed) — or, for a VLAN's parent, a bond
 * being made.
 */
export function linksOf(device: DeviceModel, interfaces: readonly string[]): L2LinkSpec[] {
  const has = (n: string) => isIfname(n) && interfaces.includes(n);
  const out: L2LinkSpec[] = [];
  for (const b of device.bonds) {
    const members = b.members.flatMap((m) => (m.resolution.kind === "ifname" ? [m.resolution.ifname] : []));
    const missing = members.filter((m) => !has(m));
    const error = b.error ?? (missing.length ? `member port${missing.length > 1 ? "s" : ""} ${missing.join(", ")} not on this device` : null);
    out.push({ kind: "bond", label: b.label, ifname: b.ifname, parent: null, vlanId: null, members, mode: b.mode, lacpRate: b.lacpRate, mii: b.mii, arp: b.arp, error });
  }
  for (const v of device.vlans) {
    const parent = v.parent.kind === "ifname" ? v.parent.ifname : null;
    const bond = v.parent.kind === "ifname" && v.parent.link?.kind === "bond" ? out.find((l) => l.ifname === parent) : undefined;
    let error = v.error;
    if (!error && parent && bond?.error) error = `its parent bond ${JSON.stringify(bond.label)}: ${bond.error}`;
    else if (!error && parent && !bond && !has(parent)) error = `parent port ${JSON.stringify(v.parentLabel)}${parent !== v.parentLabel ? ` (${parent})` : ""} is not on this device`;
    out.push({ kind: "vlan", label: v.label, ifname: v.ifname, parent, vlanId: v.vlanId, members: [], mode: null, lacpRate: null, mii: null, arp: null, error });
  }
  return out;
}

/**
 * A Local instance's routes, as EVE's zedrouter makes them: a static route through an address inside the
 * subnet (an app, or the bridge) is only given to the apps; one through a gateway the port reaches (or through
 * the port's own gateway, for a route naming only the port) goes into the instance's table and to the apps
 * through the bridge. With `propagate_connected_routes`, the port's connected networks go to the apps too.
 */
function routesOf(spec: NiSpec, routes: { dst: string; gateway: string | null; port: string | null }[], propagateConnected: boolean, net: V4Net, facts: HostFacts): void {
  const uplink = spec.uplink?.ifname ?? null;
  const connected = (uplink ? (facts.connected[uplink] ?? []) : []).map(v4net).filter((n): n is V4Net => !!n);
  const add = (dst: string, via: string) => {
    if (!spec.propagated.some((r) => r.dst === dst)) spec.propagated.push({ dst, via });
  };
  routes.forEach((r, j) => {
    const where = `staticRoutes[${j}] ${r.dst}`;
    const dst = v4net(r.dst);
    if (!dst) return;
    const isDefault = dst.prefix === 0;
    const gw = r.gateway ? v4(r.gateway) : null;
    if (r.gateway && gw === null) return; // IPv6 and other refusals are the config's problems
    if (gw !== null && inNet(net, gw)) {
      if (gw === net.addr || gw === last(net)) {
        spec.routeErrors.push(`${where}: gateway ${r.gateway} is the network or broadcast address of ${spec.subnet}`);
        return;
      }
      if (isDefault) spec.appDefaultVia = r.gateway === spec.gateway ? null : r.gateway;
      else add(r.dst, r.gateway!);
      return;
    }
    if (!uplink) {
      spec.routeErrors.push(`${where}: gateway ${r.gateway} is outside the subnet ${spec.subnet}, and an instance without a port routes only through its apps`);
      return;
    }
    const via = r.gateway ?? facts.gateways[uplink] ?? null;
    const viaN = via ? v4(via) : null;
    if (via && (viaN === null || !connected.some((c) => inNet(c, viaN)))) {
      spec.routeErrors.push(`${where}: gateway ${via} is not reachable through port ${spec.uplink!.label} (${uplink}: ${connected.map(netStr).join(", ") || "no connected network"})`);
      return;
    }
    if (isDefault) spec.hostDefaultVia = via;
    else {
      spec.routes.push({ dst: netStr(dst), via });
      add(netStr(dst), spec.gateway!);
    }
  });
  if (propagateConnected) for (const c of connected) if (!netsOverlap(c, net) && c.prefix > 0) add(netStr(c), spec.gateway!);
  // An app as the apps' default gateway (a firewall VM): the metadata server's address, DNATed on the bridge
  // (metadata/), would go to that app, which has no route to it. A host route keeps it on the bridge. EVE gives
  // none (its apps lose the metadata server then); a route of the config's own to that address stays as it is.
  if (spec.appDefaultVia) add(METADATA_ROUTE, spec.gateway!);
}

/** EVE's app metadata server (169.254.169.254), as a route. */
const METADATA_ROUTE = "169.254.169.254/32";
