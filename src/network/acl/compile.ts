// EVE's per-interface ACLs compiled into evebox's own nftables tables (`inet evebox`, `bridge evebox`).
// Pure: the same input gives the same text, so the text's hash says whether the loaded ruleset is current.
//
// Semantics (fw.proto): an ACE's matches are ANDed; the first ACE that matches a new flow decides
// (allow, drop, limit, portmap); a flow no ACE matches is dropped; DHCP and DNS are always allowed;
// replies of an allowed flow pass (conntrack). Beyond EVE: drop works on Local instances, and `dir`
// (INGRESS / EGRESS / BOTH) says which flows an ACE is checked for: flows the app opens (egress) or flows
// towards it (ingress: portmaps, other apps, the L2 of a Switch instance).
//
// Scale: consecutive ACEs with the same verdict may be checked in any order, so each such run becomes a few
// map lookups — one nftables map per combination of match types, keyed by the concatenated fields, valued
// by the ACE's conntrack mark, with a counter per element. 10,000 ACEs are then a handful of rules and
// 10,000 map elements: they load about as fast as a verdict map and cost a hash/interval lookup per new flow.
import type { AceSpec, AppInterfaceSpec, NiSpec } from "../model.ts";
import { hashHex } from "../sys.ts";
import { inNet, last, netStr, v4, v4net, v4str } from "../ipv4.ts";

export const TABLE = "evebox";

export type Verdict = "allow" | "drop";

export interface MarkInfo {
  mark: number;
  appUuid: string;
  index: number;
  aceKey: string;
  aceId: number;
  aceName: string;
  action: AceSpec["action"]["kind"];
}

export interface CompiledMap {
  family: "inet" | "bridge";
  /** Element key (nft text) → value text ("" for plain sets). */
  elements: Map<string, string>;
}

export interface CompiledFirewall {
  /** The whole ruleset: both tables, elements included (what a full load sends; rendered when first read). */
  readonly text: string;
  hash: string;
  /** The ruleset without set and map elements: equal skeletons can be updated element by element. */
  skeletonHash: string;
  maps: Map<string, CompiledMap>;
  marks: Map<number, CompiledAce>;
  /** Marks of set lookups (a run of ACEs): the members, in config order. */
  groupMarks: Map<number, MarkGroup>;
  /** Host-name sets filled by dnsmasq (`nftset`): set name → host name. */
  hostSets: Map<string, string>;
  /** ACEs that cannot match anything here, with why (IPv6 matches on IPv4 instances, …). */
  notes: { appUuid: string; index: number; aceKey: string; note: string }[];
  /** Per app interface: its chain names (for the implicit-drop counters). */
  chains: Map<string, { appUuid: string; index: number; dir: "egress" | "ingress" }>;
  empty: boolean;
}

const PROTO_NUM: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, sctp: 132, icmpv6: 58 };

type Field = "ip" | "proto" | "fport" | "lport" | "adapter";
const FIELDS: Field[] = ["ip", "proto", "fport", "lport", "adapter"];
const FIELD_TYPE: Record<Field, string> = { ip: "ipv4_addr", proto: "inet_proto", fport: "inet_service", lport: "inet_service", adapter: "ifname" };

function fieldExpr(f: Field, dir: "egress" | "ingress"): string {
  const eg = dir === "egress";
  switch (f) {
    case "ip":
      return eg ? "ip daddr" : "ip saddr";
    case "proto":
      return "meta l4proto";
    case "fport":
      return eg ? "th dport" : "th sport";
    case "lport":
      return eg ? "th sport" : "th dport";
    case "adapter":
      return eg ? "oifname" : "iifname";
  }
}

/** One ACE as compiled; it is also what its conntrack mark stands for (MarkInfo). */
export interface CompiledAce extends MarkInfo {
  ace: AceSpec;
  fields: Partial<Record<Field, string>>;
  /** The match types present (`ip,proto,fport`), the map key (nft text), and the key without the ip. */
  shapeKey: string;
  elemKey: string;
  restKey: string;
  /** [lo, hi] of the ip match, for overlap checks in interval maps. */
  range: [number, number] | null;
  host: string | null;
  never: string | null;
}

/** A run of ACEs checked with one set lookup: a flow it admits is marked with the group, not the ACE. */
export interface MarkGroup {
  dir: "egress" | "ingress";
  /** The set looked up (its elements carry the members' counters). */
  set: string;
  members: CompiledAce[];
}

/** The sets holding each ACE's key (where its per-element counters are), from the set lookups' groups. */
export function setsOf(fw: CompiledFirewall): Map<CompiledAce, string[]> {
  const out = new Map<CompiledAce, string[]>();
  for (const g of fw.groupMarks.values()) {
    for (const p of g.members) {
      const sets = out.get(p);
      if (!sets) out.set(p, [g.set]);
      else if (!sets.includes(g.set)) sets.push(g.set);
    }
  }
  return out;
}

type Parsed = CompiledAce;

/** A dotted IPv4 address as a number, without allocating (this runs once per ACE); null if not one. */
function quickV4(s: string): number | null {
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (!digits || dots === 3) return null;
      n = n * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return null;
    } else return null;
  }
  if (dots !== 3 || !digits) return null;
  return n * 256 + part;
}

/** One ACE, read once: its fields, map key and mark (the same for both directions). */
function parseAce(ace: AceSpec, key: string, iface: AppInterfaceSpec, mark: number): Parsed {
  // (MarkInfo fields first, so every Parsed has one shape.)
  let ip: string | undefined;
  let proto: string | undefined;
  let fport: string | undefined;
  let lport: string | undefined;
  let adapter: string | undefined;
  let range: [number, number] | null = null;
  let host: string | null = null;
  let never: string | null = null;
  for (const m of ace.matches) {
    switch (m.type) {
      case "ip": {
        // A plain address is used as written (validation refused leading zeros); a prefix is normalised.
        const a = quickV4(m.value);
        if (a !== null) {
          ip = m.value;
          range = [a, a];
          break;
        }
        const n = v4net(m.value);
        if (!n) {
          never = `ip ${m.value}: not IPv4; network instances are IPv4, so this ACE never matches`;
          break;
        }
        ip = n.prefix === 32 ? v4str(n.addr) : netStr(n);
        range = [n.addr, last(n)];
        break;
      }
      case "host":
        host = m.value.replace(/\.$/, "").toLowerCase();
        break;
      case "protocol": {
        const v = m.value === "tcp" || m.value === "udp" ? m.value : m.value.toLowerCase();
        if (v === "all") break;
        const n = PROTO_NUM[v] ?? Number(v);
        if (v === "icmpv6" || n === 58) never = "protocol icmpv6 on an IPv4 network instance never matches";
        proto = String(n);
        break;
      }
      case "fport":
        fport = m.value.charCodeAt(0) === 48 ? String(Number(m.value)) : m.value;
        break;
      case "lport":
        lport = m.value.charCodeAt(0) === 48 ? String(Number(m.value)) : m.value;
        break;
      case "adapter": {
        // The uplink port of the instance, by label or interface name. A Switch instance's traffic is
        // bridged (one interface for both sides), so there the match holds for its own port only.
        const isUplink = iface.uplinkIfname !== null && (m.value === iface.uplinkIfname || m.value === iface.uplinkLabel);
        if (iface.niKind === "switch") {
          if (!isUplink) never = `adapter ${m.value} is not the port of this Switch instance`;
        } else if (!iface.uplinkIfname) never = `adapter ${m.value}: this Local instance has no uplink port`;
        else if (!isUplink) never = `adapter ${m.value} is not the uplink of this instance (${iface.uplinkLabel ?? iface.uplinkIfname})`;
        else adapter = JSON.stringify(iface.uplinkIfname);
        break;
      }
      default:
        never = `match type ${m.type} is not supported`;
    }
  }
  // Keys in FIELDS order: ip, proto, fport, lport, adapter.
  let shapeKey = ip !== undefined ? "ip" : "";
  let restKey = "";
  if (proto !== undefined) (shapeKey = shapeKey ? `${shapeKey},proto` : "proto"), (restKey = proto);
  if (fport !== undefined) (shapeKey = shapeKey ? `${shapeKey},fport` : "fport"), (restKey = restKey ? `${restKey} . ${fport}` : fport);
  if (lport !== undefined) (shapeKey = shapeKey ? `${shapeKey},lport` : "lport"), (restKey = restKey ? `${restKey} . ${lport}` : lport);
  if (adapter !== undefined) (shapeKey = shapeKey ? `${shapeKey},adapter` : "adapter"), (restKey = restKey ? `${restKey} . ${adapter}` : adapter);
  const elemKey = ip === undefined ? restKey : restKey ? `${ip} . ${restKey}` : ip;
  const fields: Partial<Record<Field, string>> = {};
  if (ip !== undefined) fields.ip = ip;
  if (proto !== undefined) fields.proto = proto;
  if (fport !== undefined) fields.fport = fport;
  if (lport !== undefined) fields.lport = lport;
  if (adapter !== undefined) fields.adapter = adapter;
  return {
    mark,
    appUuid: iface.appUuid,
    index: iface.index,
    aceKey: key,
    aceId: ace.id,
    aceName: ace.name,
    action: ace.action.kind,
    ace: key === ace.key ? ace : { ...ace, key },
    fields,
    shapeKey,
    elemKey,
    restKey,
    range,
    host,
    never,
  };
}

export function appSlot(iface: { appUuid: string; index: number }): string {
  return `a${hashHex(`${iface.appUuid.toLowerCase()}/${iface.index}`, 10)}`;
}

export function hostSetName(host: string): string {
  return `h_${hashHex(host, 12)}`;
}

/** The ACE's protocol match, for portmaps (tcp when none). */
function protoOf(p: Parsed): string {
  return p.fields.proto ?? "6";
}

/**
 * ACEs parsed by the previous compile, per interface context (app, index, instance kind, uplink), by the ACE's
 * content (its key, plus its content and name where the key does not say them): a one-rule change re-parses
 * one ACE, not 10,000. A parsed ACE is never changed afterwards, so compiles share them. Bounded: at most twice
 * what each interface's ACLs hold, and interfaces no longer compiled are dropped.
 */
const parseCache = new Map<string, Map<string, Parsed>>();

/**
 * What an interface's ACLs compiled to, kept per interface context: when its parsed ACEs are the very same
 * objects next time (its ACLs did not change), its chains, sets and marks are replayed, not built again.
 */
interface Fragment {
  parsed: Parsed[];
  chains: [string, { appUuid: string; index: number; dir: "egress" | "ingress" }][];
  maps: [string, "inet" | "bridge", string, Map<string, string>][];
  groups: [number, MarkGroup][];
  hostSets: [string, string][];
  limited: [string, string][];
  chainText: string[];
}
const fragments = new Map<string, Fragment>();

function cacheKey(ace: AceSpec): string | null {
  if (ace.id && ace.content === undefined) return null;
  const k = ace.id ? `${ace.key}\u0001${ace.content}` : ace.key;
  return ace.name ? `${k}\u0001${ace.name}` : k;
}

/** EVE's metadata server address, as the apps on Local instances reach it (tcp/80). */
export const METADATA_IP = "169.254.169.254";

/** Connections one app address may hold open to the metadata server at once (more are dropped). */
export const METADATA_CONNECTIONS = 16;

export interface FirewallOptions {
  /** The port the device's metadata server (src/metadata/) listens on; null: none (no DNAT, nothing let in). */
  metadataPort?: number | null;
}

export function compileFirewall(instances: NiSpec[], interfaces: AppInterfaceSpec[], opts: FirewallOptions = {}): CompiledFirewall {
  const nis = instances.filter((n) => !n.error);
  const maps = new Map<string, CompiledMap>();
  const marks = new Map<number, Parsed>();
  const groupMarks = new Map<number, MarkGroup>();
  const hostSets = new Map<string, string>();
  const notes: CompiledFirewall["notes"] = [];
  const chains = new Map<string, { appUuid: string; index: number; dir: "egress" | "ingress" }>();
  const decls: string[] = []; // set/map declarations (elements injected at render time)
  const chainText: string[] = [];
  const limited = new Map<string, string>();
  const egress = new Map<string, string>();
  const ingressIp = new Map<string, string>();
  const ingressMac = new Map<string, string>();
  const natPre: string[] = [];
  const appMacs = new Map<string, string>();
  const portMacs = new Map<string, string>();
  const portIps = new Map<string, string>();
  const appPorts = new Map<string, string>();
  const localPorts = new Map<string, string>();

  const addMap = (name: string, family: "inet" | "bridge", decl: string, elements: Map<string, string>) => {
    maps.set(name, { family, elements });
    decls.push(`${family}\u0000${name}\u0000${decl}`);
  };

  const usedCtx = new Set<string>();
  for (const iface of interfaces) {
    const slot = appSlot(iface);
    const parsed: Parsed[] = [];
    const markPrefix = `${iface.appUuid.toLowerCase()}/${iface.index}/`;
    const ctx = `${markPrefix}\u0001${iface.niKind}\u0001${iface.uplinkIfname}\u0001${iface.uplinkLabel}`;
    let cache = parseCache.get(ctx);
    if (!cache) parseCache.set(ctx, (cache = new Map()));
    usedCtx.add(ctx);
    const used: string[] = [];
    for (const ace of iface.acls) {
      const ck = cacheKey(ace);
      const hit = ck !== null ? cache.get(ck) : undefined;
      if (hit && !marks.has(hit.mark)) {
        // Parsed before with this very content and mark (a parsed ACE is never changed afterwards).
        marks.set(hit.mark, hit);
        if (hit.never) notes.push({ appUuid: iface.appUuid, index: iface.index, aceKey: hit.aceKey, note: hit.never });
        parsed.push(hit);
        used.push(ck!);
        continue;
      }
      // The mark is a hash of the ACE's key: an equal key is a duplicate ACE (keyed `#2`, `#3` …).
      let key = ace.key;
      let mark = (Bun.hash.crc32(markPrefix + key) & 0x7fffffff) || 1;
      const base = mark;
      for (let n = 2; marks.has(mark); ) {
        if (marks.get(mark)!.aceKey === key || marks.get(mark)!.aceKey.startsWith(`${ace.key}#`)) {
          key = `${ace.key}#${n++}`;
          mark = (Bun.hash.crc32(markPrefix + key) & 0x7fffffff) || 1;
        } else mark = (mark % 0x7fffffff) + 1;
      }
      const p = parseAce(ace, key, iface, mark);
      marks.set(mark, p);
      if (p.never) notes.push({ appUuid: iface.appUuid, index: iface.index, aceKey: key, note: p.never });
      parsed.push(p);
      // A duplicate (`#2` …) or a mark moved by a collision depends on the ACEs before it: never reused.
      if (ck !== null && key === ace.key && mark === base) cache.set(ck, p), used.push(ck);
    }
    // What this interface's ACLs no longer hold goes once the cache is twice their size.
    if (cache.size > 2 * used.length + 64) {
      const keep = new Map<string, Parsed>();
      for (const k of used) keep.set(k, cache.get(k)!);
      parseCache.set(ctx, keep);
    }
    appMacs.set(iface.mac, "");
    appPorts.set(JSON.stringify(iface.hostIfname), "");
    portMacs.set(`${JSON.stringify(iface.hostIfname)} . ${iface.mac}`, "");
    if (iface.niKind === "local" && iface.ip) {
      localPorts.set(JSON.stringify(iface.hostIfname), "");
      portIps.set(`${JSON.stringify(iface.hostIfname)} . ${iface.ip}`, "");
    }

    const prev = fragments.get(ctx);
    if (prev && prev.parsed.length === parsed.length && prev.parsed.every((p, i) => p === parsed[i]) && prev.groups.every(([m]) => !marks.has(m) && !groupMarks.has(m))) {
      for (const [c, v] of prev.chains) chains.set(c, v);
      for (const [name, family, decl, els] of prev.maps) addMap(name, family, decl, els);
      for (const [m, g] of prev.groups) groupMarks.set(m, g);
      for (const [k, v] of prev.hostSets) hostSets.set(k, v);
      for (const [k, v] of prev.limited) limited.set(k, v);
      for (const t of prev.chainText) chainText.push(t);
    } else {
      const frag: Fragment = { parsed, chains: [], maps: [], groups: [], hostSets: [], limited: [], chainText: [] };
      const chainText0 = chainText.length;
      let bumped = false;
      const sharedMaps: { shapeKey: string; ps: Parsed[]; names: string[]; layers: Parsed[][] }[] = [];
      // A flow admitted by a set lookup carries the group's mark; collectFlows finds the member it matched.
      const groupMark = (set: string, dir: "egress" | "ingress", members: Parsed[]): number => {
        const base = (Bun.hash.crc32(`${markPrefix}set:${set}:${dir}`) & 0x7fffffff) || 1;
        let m = base;
        while (marks.has(m) || groupMarks.has(m)) m = (m % 0x7fffffff) + 1;
        if (m !== base) bumped = true;
        const g: MarkGroup = { dir, set, members };
        groupMarks.set(m, g);
        frag.groups.push([m, g]);
        return m;
      };
      for (const dir of ["egress", "ingress"] as const) {
        const chain = `${slot}_${dir === "egress" ? "eg" : "in"}`;
        const cv = { appUuid: iface.appUuid, index: iface.index, dir };
        chains.set(chain, cv);
        frag.chains.push([chain, cv]);
        const rules: string[] = [];
        const wanted = parsed.filter((p) => {
          if (p.never) return false;
          if (p.ace.action.kind === "portmap") return dir === "ingress" && p.ace.dir !== "egress";
          return p.ace.dir === "both" || p.ace.dir === dir;
        });
        // Runs of consecutive ACEs with the same verdict; a limit ACE is a run of its own.
        let run: Parsed[] = [];
        let runIndex = 0;
        const flush = () => {
          if (!run.length) return;
          emitRun(run, runIndex++);
          run = [];
        };
        const emitRun = (items: Parsed[], ri: number) => {
          const verdict = items[0]!.ace.action.kind === "drop" ? "drop" : "return";
          const groups = new Map<string, Parsed[]>();
          for (const p of items) {
            if (p.host || p.ace.action.kind === "portmap" || p.ace.action.kind === "limit") {
              rules.push(singleRule(p, dir, verdict));
              continue;
            }
            if (!p.shapeKey) {
              // No match left that narrows anything (protocol all …): it matches every flow.
              rules.push(`ct mark set ${p.mark} counter ${verdict}`);
              continue;
            }
            const sk = p.shapeKey;
            const g = groups.get(sk);
            if (g) g.push(p);
            else groups.set(sk, [p]);
          }
          for (const [sk, ps] of groups) {
            const shape = sk.split(",") as Field[];
            const keyExpr = shape.map((f) => fieldExpr(f, dir)).join(" . ");
            // The same ACEs in both directions (dir BOTH, the usual case) share their maps.
            const shared = sharedMaps.find((m) => m.shapeKey === sk && m.ps.length === ps.length && m.ps.every((x, i) => x === ps[i]));
            if (shared) {
              shared.names.forEach((name, li) => rules.push(`${keyExpr} @${name} ct mark set ${groupMark(name, dir, shared.layers[li]!)} ${verdict}`));
              continue;
            }
            // An interval set only when a prefix needs one: nft reads an interval set's elements back before
            // changing it, which makes a one-element update of 10,000 single addresses cost far more.
            const interval = shape.includes("ip") && ps.some((p) => p.range![0] !== p.range![1]);
            // Interval maps refuse overlapping elements: an overlapping ACE goes to a further map (same
            // verdict, so their order does not matter). Single addresses only overlap when equal.
            // Each layer is one set: its elements (key → "") and its members, in config order.
            const layers: Parsed[][] = [];
            const layerEls: Map<string, string>[] = [];
            const put = (li: number, p: Parsed) => {
              if (!layers[li]) (layers[li] = []), (layerEls[li] = new Map());
              layers[li]!.push(p);
              layerEls[li]!.set(p.elemKey, "");
            };
            if (interval) {
              const maxHi: Map<string, number>[] = [];
              const layerOf = new Map<Parsed, number>();
              for (const p of [...ps].sort((a, b) => a.range![0] - b.range![0])) {
                let li = maxHi.findIndex((m) => (m.get(p.restKey) ?? -1) < p.range![0]);
                if (li < 0) maxHi.push(new Map()), (li = maxHi.length - 1);
                maxHi[li]!.set(p.restKey, p.range![1]);
                layerOf.set(p, li);
              }
              for (const p of ps) put(layerOf.get(p)!, p);
            } else {
              // Single addresses only overlap when equal: a repeated key goes to the next set.
              // (One map operation per ACE: a key already there leaves the set's size as it was.)
              for (const p of ps) {
                for (let li = 0; ; li++) {
                  if (!layers[li]) (layers[li] = []), (layerEls[li] = new Map());
                  const els = layerEls[li]!;
                  const n = els.size;
                  els.set(p.elemKey, "");
                  if (els.size > n) {
                    layers[li]!.push(p);
                    break;
                  }
                }
              }
            }
            const code = shape.map((f) => f[0]).join("");
            const names: string[] = [];
            layers.forEach((layer, li) => {
              const name = `${chain}_${ri}${code}${li ? `_${li}` : ""}`;
              const decl = `type ${shape.map((f) => FIELD_TYPE[f]).join(" . ")};${interval ? " flags interval;" : ""} counter;`;
              addMap(name, "inet", decl, layerEls[li]!);
              frag.maps.push([name, "inet", decl, layerEls[li]!]);
              rules.push(`${keyExpr} @${name} ct mark set ${groupMark(name, dir, layer)} ${verdict}`);
              names.push(name);
            });
            sharedMaps.push({ shapeKey: sk, ps, names, layers });
          }
        };
        const singleRule = (p: Parsed, d: "egress" | "ingress", verdict: string): string => {
          const parts: string[] = [];
          if (p.ace.action.kind === "portmap") {
            parts.push("ct status dnat", `meta l4proto ${protoOf(p)}`, `ct original proto-dst ${p.fields.lport}`, `th dport ${p.ace.action.appPort}`);
            if (p.fields.ip) parts.push(`ip saddr ${p.fields.ip}`);
            if (p.fields.fport) parts.push(`th sport ${p.fields.fport}`);
            if (p.fields.adapter) parts.push(`iifname ${p.fields.adapter}`);
          } else {
            for (const f of FIELDS) if (p.fields[f] !== undefined) parts.push(`${fieldExpr(f, d)} ${p.fields[f]}`);
          }
          if (p.host) {
            const set = hostSetName(p.host);
            hostSets.set(set, p.host);
            frag.hostSets.push([set, p.host]);
            parts.push(`${d === "egress" ? "ip daddr" : "ip saddr"} @${set}`);
          }
          parts.push(`ct mark set ${p.mark}`, "counter");
          if (p.ace.action.kind === "limit") {
            const a = p.ace.action;
            const lim = `lim_${p.mark}`;
            if (!limited.has(String(p.mark))) chainText.push(`  chain ${lim} {\n    limit rate over ${a.rate}/${a.unit} burst ${Math.max(1, a.burst)} packets counter drop\n  }`);
            limited.set(String(p.mark), `jump ${lim}`);
            frag.limited.push([String(p.mark), `jump ${lim}`]);
            parts.push(`goto ${lim}`);
          } else parts.push(verdict);
          return parts.join(" ");
        };
        for (const p of wanted) {
          const cls = p.ace.action.kind === "drop" ? "drop" : p.ace.action.kind === "limit" ? "limit" : "allow";
          const runCls = run.length ? (run[0]!.ace.action.kind === "drop" ? "drop" : run[0]!.ace.action.kind === "limit" ? "limit" : "allow") : cls;
          if (cls !== runCls || cls === "limit") flush();
          run.push(p);
        }
        flush();
        rules.push(`counter drop comment "implicit drop"`);
        chainText.push(`  chain ${chain} {\n${rules.map((r) => `    ${r}`).join("\n")}\n  }`);
      }
      frag.chainText = chainText.slice(chainText0);
      // A group mark moved by a collision depends on the interfaces before it: not replayed.
      if (bumped) fragments.delete(ctx);
      else fragments.set(ctx, frag);
    }
    egress.set(iface.mac, `jump ${slot}_eg`);
    if (iface.niKind === "local" && iface.ip) ingressIp.set(iface.ip, `jump ${slot}_in`);
    else ingressMac.set(iface.mac, `jump ${slot}_in`);

    // Portmaps: the uplink's port to the app's address and port.
    for (const p of parsed) {
      if (p.never || p.ace.action.kind !== "portmap" || iface.niKind !== "local" || !iface.uplinkIfname || !iface.ip) continue;
      const parts = [`iifname ${p.fields.adapter ?? JSON.stringify(iface.uplinkIfname)}`, `meta l4proto ${protoOf(p)}`, `th dport ${p.fields.lport}`];
      if (p.fields.ip) parts.push(`ip saddr ${p.fields.ip}`);
      if (p.fields.fport) parts.push(`th sport ${p.fields.fport}`);
      natPre.push(`${parts.join(" ")} dnat ip to ${iface.ip}:${p.ace.action.appPort}`);
    }
  }

  for (const ctx of parseCache.keys()) if (!usedCtx.has(ctx)) parseCache.delete(ctx);
  for (const ctx of fragments.keys()) if (!usedCtx.has(ctx)) fragments.delete(ctx);
  for (const [set, host] of hostSets) decls.push(`inet\u0000${set}\u0000type ipv4_addr; comment ${JSON.stringify(`dns:${host}`)};`);
  if (opts.metadataPort) decls.push(`inet\u0000meta_conns\u0000type ipv4_addr; flags dynamic;`);
  for (const [name, els] of [["app_macs", appMacs]] as const) addMap(name, "inet", "type ether_addr;", els);
  addMap("eg", "inet", "type ether_addr : verdict;", egress);
  addMap("in_ip", "inet", "type ipv4_addr : verdict;", ingressIp);
  addMap("in_mac", "inet", "type ether_addr : verdict;", ingressMac);
  addMap("limited", "inet", "type mark : verdict;", limited);
  addMap("app_ports", "bridge", "type ifname;", appPorts);
  addMap("local_ports", "bridge", "type ifname;", localPorts);
  addMap("port_macs", "bridge", "type ifname . ether_addr;", portMacs);
  addMap("port_ips", "bridge", "type ifname . ipv4_addr;", portIps);

  const q = (s: string) => JSON.stringify(s);
  const bridges = nis.map((n) => q(n.bridge));
  const local = nis.filter((n) => n.kind === "local");
  const sw = nis.filter((n) => n.kind === "switch");
  const setDecl = (name: string, items: string[]) => `  set ${name} {\n    type ifname;\n${items.length ? `    elements = { ${items.join(", ")} }\n` : ""}  }`;

  const forward = [
    "type filter hook forward priority filter; policy accept;",
    "iifname != @bridges oifname != @bridges accept",
    "ct state established,related ct mark vmap @limited",
    "ct state established,related accept",
    "ct state invalid drop",
    "# DHCP and DNS are always allowed",
    "ether saddr @app_macs udp sport 68 udp dport 67 accept",
    "udp sport 67 udp dport 68 accept",
    "ether saddr @app_macs meta l4proto { tcp, udp } th dport 53 accept",
    "# no traffic between network instances",
    ...local.map((n) => `iifname ${q(n.bridge)} oifname @bridges oifname != ${q(n.bridge)} drop`),
    "# the sending app's egress ACL, then the receiving app's ingress ACL; each returns when allowed",
    "iifname @bridges ether saddr vmap @eg",
    "oifname @local_bridges ip daddr vmap @in_ip",
    "iifname @switch_bridges ether daddr vmap @in_mac",
  ];
  const meta = opts.metadataPort ?? null;
  const input = [
    "type filter hook input priority filter; policy accept;",
    // Only what the DNAT below brought from an app on a Local instance; not the LAN, not a Switch instance.
    ...(meta ? [
      // At most METADATA_CONNECTIONS open at once per app address (the server's own bounds are per request). Dropped,
      // not reset: a reset made here would come from the gateway's port, which the app never connected to.
      `iifname @local_bridges tcp dport ${meta} ct state new add @meta_conns { ip saddr ct count over ${METADATA_CONNECTIONS} } counter drop`,
      `iifname @local_bridges ct original ip daddr ${METADATA_IP} tcp dport ${meta} accept`,
      `iifname != "lo" tcp dport ${meta} counter drop comment "the metadata server answers apps on Local instances only"`,
    ] : []),
    "iifname != @local_bridges accept",
    "ct state established,related accept",
    "udp dport 67 accept",
    "meta l4proto { tcp, udp } th dport 53 accept",
    "icmp type echo-request limit rate 20/second accept",
    `counter drop comment "apps reach only DHCP, DNS${meta ? ", the metadata server" : ""} and ping on the device"`,
  ];
  const postNat = ["type nat hook postrouting priority srcnat; policy accept;", ...local.filter((n) => n.uplink).map((n) => `ip saddr ${n.subnet} oifname ${q(n.uplink!.ifname)} masquerade`)];
  const metaNat = meta ? local.filter((n) => n.gateway).map((n) => `iifname ${q(n.bridge)} ip daddr ${METADATA_IP} tcp dport 80 dnat ip to ${n.gateway}:${meta}`) : [];
  const preNat = ["type nat hook prerouting priority dstnat; policy accept;", ...metaNat, ...natPre];
  const bridgePre = [
    "type filter hook prerouting priority filter; policy accept;",
    "# an app port sends with its own MAC (and on a Local instance its own address) only",
    "iifname @app_ports iifname . ether saddr != @port_macs counter drop",
    "iifname @local_ports ether type ip iifname . ip saddr != @port_ips ip saddr != 0.0.0.0 counter drop",
    "iifname @local_ports ether type arp iifname . arp saddr ip != @port_ips arp saddr ip != 0.0.0.0 counter drop",
  ];
  const base = (name: string, lines: string[]) => `  chain ${name} {\n${lines.map((l) => `    ${l}`).join("\n")}\n  }`;

  // Elements are rendered once; the skeleton (no elements) says whether an element update suffices.
  const elementText = new Map<string, string>();
  for (const [name, m] of maps) {
    if (!m.elements.size) continue;
    const parts: string[] = [];
    for (const [k, v] of m.elements) parts.push(v ? `${k} : ${v}` : k);
    elementText.set(name, `    elements = { ${parts.join(", ")} }\n`);
  }
  const HASH = "\u0001hash\u0001";
  const render = (withElements: boolean) => {
    const declText = (family: string) =>
      decls
        .filter((d) => d.startsWith(`${family}\u0000`))
        .map((d) => {
          const [, name, decl] = d.split("\u0000");
          const kind = decl!.includes(" : ") ? "map" : "set";
          const els = withElements ? (elementText.get(name!) ?? "") : "";
          return `  ${kind} ${name} {\n${decl!.split(";").map((s) => s.trim()).filter(Boolean).map((s) => `    ${s}`).join("\n")}\n${els}  }`;
        })
        .join("\n");
    return [
      `table inet ${TABLE} {`,
      `  chain version {\n    comment "evebox ${HASH}"\n  }`,
      setDecl("bridges", bridges),
      setDecl("local_bridges", local.map((n) => q(n.bridge))),
      setDecl("switch_bridges", sw.map((n) => q(n.bridge))),
      declText("inet"),
      ...chainText,
      base("forward", forward),
      base("input", input),
      base("postrouting_nat", postNat),
      base("prerouting_nat", preNat),
      "}",
      `table bridge ${TABLE} {`,
      declText("bridge"),
      base("prerouting", bridgePre),
      "}",
      "",
    ].join("\n");
  };
  const skeleton = render(false);
  const skeletonHash = hashHex(skeleton, 16);
  // The hash covers the skeleton and every element; the full text is rendered only when a full load needs it
  // (an element update never does).
  const hasher = new Bun.CryptoHasher("sha256").update(skeleton);
  for (const [name, els] of elementText) hasher.update(`\u0000${name}\u0000`).update(els);
  const hash = hasher.digest("hex").slice(0, 16);
  let text: string | null = null;
  return {
    get text() {
      return (text ??= render(true).replace(HASH, hash));
    },
    hash,
    skeletonHash,
    maps,
    marks,
    groupMarks,
    hostSets,
    notes,
    chains,
    empty: nis.length === 0,
  };
}

/**
 * The ACE that decided a flow, from its conntrack mark: the ACE itself, or for a set lookup the first
 * member of its group whose matches the flow's original direction satisfies.
 */
export function aceOfFlow(fw: CompiledFirewall, mark: number, flow: { src: string; dst: string; sport: number; dport: number; proto: number }): CompiledAce | null {
  const single = fw.marks.get(mark);
  if (single) return single;
  const g = fw.groupMarks.get(mark);
  if (!g) return null;
  const eg = g.dir === "egress";
  const remote = quickV4(eg ? flow.dst : flow.src);
  const fport = String(eg ? flow.dport : flow.sport);
  const lport = String(eg ? flow.sport : flow.dport);
  for (const p of g.members) {
    if (p.range && (remote === null || remote < p.range[0] || remote > p.range[1])) continue;
    if (p.fields.proto !== undefined && p.fields.proto !== String(flow.proto)) continue;
    if (p.fields.fport !== undefined && p.fields.fport !== fport) continue;
    if (p.fields.lport !== undefined && p.fields.lport !== lport) continue;
    return p;
  }
  return g.members[0] ?? null;
}

/** The address of `ip` inside `subnet`? (used to tell an app's own flows in conntrack). */
export function inSubnet(subnet: string, ip: string): boolean {
  const n = v4net(subnet);
  const a = v4(ip);
  return !!n && a !== null && inNet(n, a);
}
