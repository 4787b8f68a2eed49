// The config's own links and routes, read once into the device model (model.ts): VLAN sub-interfaces
// (`vlans`), bonds (`bonds`) and the static routes of network instances (`static_routes`), with EVE's checks
// (zedagent's parseVlans / parseBonds / parseStaticRoute) and those of the places they end up (an `ip` argv, a
// dnsmasq option, the kernel). The links' host names are evebox's (`l2LinkName`), never a config string.
// Pure: no node:, no Bun APIs (ui/ bundles the model).
import { l2LinkName } from "./names.ts";
import { contains, hasHostBits, overlaps, parseCidr, parseIp, type Cidr } from "./net.ts";
import { type PortResolution, resolvePortLabel } from "./ports.ts";
import type { ObjectKind } from "./problems.ts";

type Doc = Record<string, any>;
type Push = (kind: ObjectKind, id: string, path: string, message: string) => void;

/** A VLAN sub-interface the device makes (`ip link add link <parent> name <ifname> type vlan id <vlanId>`). */
export interface VlanModel {
  index: number;
  label: string;
  /** evebox's name for it (`evv` + 12 hex): the config's `interface_name` is not used as a host name. */
  ifname: string;
  parentLabel: string;
  /** The parent: a port (deviceIoList label, interface name) or one of the config's bonds. */
  parent: PortResolution;
  vlanId: number;
  /** Why it cannot be made (it is then left out; an NI on it is in error with this reason). */
  error: string | null;
}

/** A bond (LAG) the device makes of its member ports. */
export interface BondModel {
  index: number;
  label: string;
  /** evebox's name for it (`evg` + 12 hex). */
  ifname: string;
  members: { label: string; resolution: PortResolution }[];
  /** `bond_mode` by its proto name, and the kernel's name for it. */
  modeName: string;
  mode: string;
  /** `lacp_rate` (802.3ad only): null — the kernel's default (slow). */
  lacpRate: "slow" | "fast" | null;
  /** MII link monitoring (ms); evebox's default when the config sets no monitoring: miimon 100. */
  mii: { interval: number; updelay: number; downdelay: number } | null;
  /** ARP link monitoring (ms, IPv4 targets). */
  arp: { interval: number; targets: string[] } | null;
  error: string | null;
}

/** A static route of a Local network instance (`static_routes`). */
export interface StaticRouteModel {
  /** The destination network, normalised (`192.0.2.0/24`; `0.0.0.0/0` for a default route). */
  dst: string;
  /** The next hop: an address inside the NI's subnet (an app, or the bridge), or one the NI's port reaches. */
  gateway: string | null;
  /** The output port's label (it must be the NI's port: evebox's NIs have one). */
  port: string | null;
}

export const MIN_VLAN_ID = 1;
export const MAX_VLAN_ID = 4094;
/** Routes per instance: option 121 carries them to every app (dnsmasq splits a long option, RFC 3396). */
export const MAX_STATIC_ROUTES = 64;
/** The kernel's limit of ARP targets per bond. */
const MAX_ARP_TARGETS = 16;
/** What a link's logical label may be: it is shown, logged and put into a link's alias. */
const LABEL_RE = /^[A-Za-z0-9_.:@+-]{1,64}$/;
export const LINK_LABEL_RULE = "1-64 of A-Z a-z 0-9 _ . : @ + -";

/** EVE's BondMode, by number and name, with the kernel's name for each (UNSPECIFIED: the kernel's default). */
export const BOND_MODES: { name: string; kernel: string }[] = [
  { name: "BOND_MODE_UNSPECIFIED", kernel: "balance-rr" },
  { name: "BOND_MODE_BALANCE_RR", kernel: "balance-rr" },
  { name: "BOND_MODE_ACTIVE_BACKUP", kernel: "active-backup" },
  { name: "BOND_MODE_BALANCE_XOR", kernel: "balance-xor" },
  { name: "BOND_MODE_BROADCAST", kernel: "broadcast" },
  { name: "BOND_MODE_802_3AD", kernel: "802.3ad" },
  { name: "BOND_MODE_BALANCE_TLB", kernel: "balance-tlb" },
  { name: "BOND_MODE_BALANCE_ALB", kernel: "balance-alb" },
];
const LACP_RATES = ["LACP_RATE_UNSPECIFIED", "LACP_RATE_SLOW", "LACP_RATE_FAST"];

const list = (v: unknown): Doc[] => (Array.isArray(v) ? v : []);

function quote(v: unknown): string {
  const s = String(v);
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}

function enumIndex(v: unknown, names: string[]): number {
  if (typeof v === "number") return v;
  const i = names.indexOf(String(v ?? ""));
  return i < 0 ? (v ? -1 : 0) : i;
}

/**
 * `vlans` and `bonds`. A problem of one link is its `error` (and a device problem at its field, so a local
 * document is refused whole); a controller's config applies without that link.
 */
export function readLinks(doc: Doc, push: Push, resolve: (label: string) => PortResolution): { vlans: VlanModel[]; bonds: BondModel[] } {
  const labels = new Map<string, string>();
  for (const [i, io] of list(doc.deviceIoList).entries()) if (io?.logicallabel) labels.set(String(io.logicallabel), `deviceIoList[${i}]`);
  const problem = (path: string, message: string, errors: string[]) => {
    push("device", "", path, message);
    errors.push(message);
  };
  const label = (v: unknown, path: string, errors: string[]): string => {
    const s = String(v ?? "");
    if (!LABEL_RE.test(s)) problem(`${path}.logicallabel`, s ? `${quote(s)} is not a logical label (${LINK_LABEL_RULE})` : "a VLAN or bond needs a logical label", errors);
    else if (labels.has(s)) problem(`${path}.logicallabel`, `logical label ${quote(s)} is already used by ${labels.get(s)}`, errors);
    labels.set(s, path);
    return s;
  };

  const bondLabels = new Set(list(doc.bonds).map((b) => String(b?.logicallabel ?? "")));
  const bonds: BondModel[] = list(doc.bonds).map((b, index) => {
    const path = `bonds[${index}]`;
    const errors: string[] = [];
    const l = label(b?.logicallabel, path, errors);
    const mi = enumIndex(b?.bondMode, BOND_MODES.map((m) => m.name));
    const mode = BOND_MODES[mi];
    if (!mode) problem(`${path}.bondMode`, `${quote(b?.bondMode)} is not a bond mode (${BOND_MODES.map((m) => m.name).join(", ")})`, errors);
    const li = enumIndex(b?.lacpRate, LACP_RATES);
    const lacpRate = li === 1 ? "slow" : li === 2 ? "fast" : null;
    if (lacpRate && mode?.kernel !== "802.3ad") problem(`${path}.lacpRate`, "a LACP rate applies to an 802.3ad bond only", errors);
    let mii: BondModel["mii"] = null;
    let arp: BondModel["arp"] = null;
    if (b?.arp) {
      const targets = list(b.arp.ipTargets).map(String);
      targets.forEach((t, j) => {
        if (parseIp(t)?.family !== 4) problem(`${path}.arp.ipTargets[${j}]`, `${quote(t)} is not an IPv4 address`, errors);
      });
      if (!targets.length) problem(`${path}.arp.ipTargets`, "ARP monitoring needs at least one target address", errors);
      if (targets.length > MAX_ARP_TARGETS) problem(`${path}.arp.ipTargets`, `${targets.length} targets: the kernel takes at most ${MAX_ARP_TARGETS}`, errors);
      if (mode && (mode.kernel === "802.3ad" || mode.kernel === "balance-tlb" || mode.kernel === "balance-alb")) problem(`${path}.arp`, `ARP monitoring does not work with mode ${mode.name} (use MII monitoring)`, errors);
      arp = { interval: Number(b.arp.interval ?? 0) || 1000, targets };
    } else {
      const m: Doc = b?.mii ?? {};
      mii = { interval: Number(m.interval ?? 0) || 100, updelay: Number(m.updelay ?? 0), downdelay: Number(m.downdelay ?? 0) };
    }
    const names = list(b?.lowerLayerNames).map(String);
    if (!names.length) problem(`${path}.lowerLayerNames`, "a bond needs at least one member port", errors);
    const members = names.map((m, j) => {
      const r = bondLabels.has(m) ? ({ kind: "error", message: "a bond cannot be a member of a bond", path: null, via: [m] } as PortResolution) : resolve(m);
      if (r.kind === "error") problem(`${path}.lowerLayerNames[${j}]`, `member ${quote(m)}: ${r.message}`, errors);
      else if (r.kind === "shared") problem(`${path}.lowerLayerNames[${j}]`, `member ${quote(m)}: a shared label names no one port`, errors);
      else if (r.link) problem(`${path}.lowerLayerNames[${j}]`, `member ${quote(m)}: a ${r.link.kind === "vlan" ? "VLAN sub-interface" : "bond"} cannot be a member of a bond`, errors);
      return { label: m, resolution: r };
    });
    const ifs = members.map((m) => (m.resolution.kind === "ifname" ? m.resolution.ifname : null)).filter((x): x is string => !!x);
    if (new Set(ifs).size !== ifs.length) problem(`${path}.lowerLayerNames`, "a port is named twice among the members", errors);
    return { index, label: l, ifname: l2LinkName("bond", l), members, modeName: mode?.name ?? String(b?.bondMode), mode: mode?.kernel ?? "balance-rr", lacpRate, mii, arp, error: errors.length ? errors.join("; ") : null };
  });
  const bondByLabel = new Map(bonds.map((b) => [b.label, b]));

  const seen = new Map<string, string>();
  const vlans: VlanModel[] = list(doc.vlans).map((v, index) => {
    const path = `vlans[${index}]`;
    const errors: string[] = [];
    const l = label(v?.logicallabel, path, errors);
    const vlanId = Number(v?.vlanId ?? 0);
    if (!Number.isInteger(vlanId) || vlanId < MIN_VLAN_ID || vlanId > MAX_VLAN_ID) problem(`${path}.vlanId`, `VLAN id ${vlanId} is out of range (${MIN_VLAN_ID}-${MAX_VLAN_ID})`, errors);
    const parentLabel = String(v?.lowerLayerName ?? "");
    let parent: PortResolution;
    const bond = bondByLabel.get(parentLabel);
    if (!parentLabel) parent = { kind: "error", message: "a VLAN needs its parent port (lowerLayerName)", path: null, via: [] };
    else if (bond) parent = { kind: "ifname", ifname: bond.ifname, via: [parentLabel], link: { kind: "bond", label: bond.label } };
    else parent = resolve(parentLabel);
    if (parent.kind === "error") problem(`${path}.lowerLayerName`, `parent ${quote(parentLabel)}: ${parent.message}`, errors);
    else if (parent.kind === "shared") problem(`${path}.lowerLayerName`, `parent ${quote(parentLabel)}: a shared label names no one port`, errors);
    else if (parent.link?.kind === "vlan") problem(`${path}.lowerLayerName`, `parent ${quote(parentLabel)}: a VLAN sub-interface of a VLAN sub-interface (QinQ) is not supported`, errors);
    else if (bond?.error) errors.push(`its parent bond ${quote(bond.label)} has an error (${bond.error})`);
    if (parent.kind === "ifname") {
      const key = `${parent.ifname}/${vlanId}`;
      if (seen.has(key)) problem(`${path}.vlanId`, `VLAN ${vlanId} on ${quote(parentLabel)} is already ${seen.get(key)}`, errors);
      seen.set(key, path);
    }
    return { index, label: l, ifname: l2LinkName("vlan", l), parentLabel, parent, vlanId, error: errors.length ? errors.join("; ") : null };
  });
  return { vlans, bonds };
}

/**
 * After the model's ports and apps are read: what may not be a bond's member. A member the device uses itself
 * (a system adapter or an NI names it directly, or a VLAN sits on it) or that an app is given (passthrough) is
 * a conflict: enslaving it would take it from its other user.
 */
export function checkBondMembers(
  bonds: BondModel[],
  users: { ifname: string; what: string }[],
  push: Push,
): void {
  for (const b of bonds) {
    b.members.forEach((m, j) => {
      if (m.resolution.kind !== "ifname") return;
      const ifname = m.resolution.ifname;
      for (const u of users.filter((u) => u.ifname === ifname)) {
        const message = `member ${quote(m.label)} (${ifname}) is ${u.what}: a bond member is the bond's only`;
        push("device", "", `bonds[${b.index}].lowerLayerNames[${j}]`, message);
        b.error = b.error ? `${b.error}; ${message}` : message;
      }
    });
  }
}

/** An NI's `static_routes` (Local NIs only), checked as far as the config alone can tell. */
export function readStaticRoutes(ni: Doc, index: number, uuid: string, local: boolean, portLabel: string | null, push: Push): StaticRouteModel[] {
  const routes = list(ni?.staticRoutes);
  const path = `networkInstances[${index}].staticRoutes`;
  const p = (j: number | null, field: string, message: string) => push("networkInstance", uuid, `${path}${j === null ? "" : `[${j}]`}${field}`, message);
  if (!routes.length) return [];
  if (!local) {
    p(null, "", "static routes apply to Local network instances (a Switch instance's apps route through the port's own network)");
    return [];
  }
  if (routes.length > MAX_STATIC_ROUTES) p(null, "", `${routes.length} routes: at most ${MAX_STATIC_ROUTES} per network instance`);
  const subnet: Cidr | null = ni?.ip?.subnet ? parseCidr(String(ni.ip.subnet)) : null;
  const out: StaticRouteModel[] = [];
  const dsts = new Set<string>();
  routes.slice(0, MAX_STATIC_ROUTES).forEach((r, j) => {
    const raw = String(r?.destinationNetwork ?? "");
    const dst = parseCidr(raw);
    let ok = true;
    const bad = (field: string, message: string) => {
      p(j, field, message);
      ok = false;
    };
    if (!raw) bad(".destinationNetwork", "a route needs its destination network");
    else if (!dst) bad(".destinationNetwork", `${quote(raw)} is not a CIDR network like 192.0.2.0/24`);
    else if (dst.family !== 4) bad(".destinationNetwork", `${raw}: IPv6 routes are not supported (network instances are IPv4 here)`);
    else if (hasHostBits(dst)) bad(".destinationNetwork", `${raw} has host bits set`);
    else if (subnet && dst.prefix > 0 && overlaps(dst, subnet)) bad(".destinationNetwork", `${raw} overlaps the instance's own subnet ${ni.ip.subnet}`);
    const gwRaw = String(r?.gateway ?? "");
    const gw = gwRaw ? parseIp(gwRaw) : null;
    const port = r?.port ? String(r.port) : null;
    if (!gwRaw && !port) bad("", "a route needs a gateway or a port");
    if (gwRaw && !gw) bad(".gateway", `${quote(gwRaw)} is not an IP address`);
    else if (gw && gw.family !== 4) bad(".gateway", `${gwRaw}: an IPv6 gateway on an IPv4 instance`);
    else if (gw && gw.addr === 0n) bad(".gateway", "the gateway is all zeroes");
    else if (gw && subnet && contains(subnet, gw)) {
      const last = subnet.addr | ((1n << BigInt(32 - subnet.prefix)) - 1n);
      if (gw.addr === subnet.addr || gw.addr === last) bad(".gateway", `${gwRaw} is the network or broadcast address of ${ni.ip.subnet}`);
    } else if (gw && subnet && !portLabel) bad(".gateway", `${gwRaw} is outside the subnet ${ni.ip.subnet}, and an instance without a port can route only through an address inside its subnet (an app)`);
    if (port && port !== portLabel) bad(".port", `port ${quote(port)} is not this instance's port${portLabel ? ` (${quote(portLabel)})` : " (it has none)"}: an instance routes out of its own port only`);
    if (dst && ok) {
      const key = `${raw}`;
      if (dsts.has(key)) bad(".destinationNetwork", `${raw} is routed twice`);
      dsts.add(key);
    }
    if (ok && dst) out.push({ dst: raw, gateway: gwRaw || null, port });
  });
  return out;
}
