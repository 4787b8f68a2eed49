// Pure edits of an app's firewall rules (EVE ACEs on its network interfaces) for the console's rule editor:
// rules as form rows and back, their checks (the device checks them again), and the new document.
import type { Doc } from "../config-edit";

export type RuleAction = "allow" | "drop" | "limit" | "portmap";
export type RuleDir = "BOTH" | "INGRESS" | "EGRESS";

export interface RuleRow {
  /** Local identity of the row in the editor (not sent). */
  rowId: string;
  id: number;
  name: string;
  /** `ip` match: an address or CIDR of the other side. */
  remote: string;
  /** `host` match: a DNS name of the other side. */
  host: string;
  /** `protocol` match: tcp, udp, icmp or a number; "" for any. */
  protocol: string;
  /** `fport`: the other side's port; `lport`: the app's own (for a portmap, the device's port). */
  fport: string;
  lport: string;
  /** `adapter` match: the instance's uplink port. */
  adapter: string;
  action: RuleAction;
  dir: RuleDir;
  limitRate: string;
  limitUnit: "s" | "m" | "h" | "d";
  limitBurst: string;
  /** portmap: the app's port the device port maps to. */
  appPort: string;
  /** Matches of other types (eidset …), kept as they were. */
  other: { type: string; value: string }[];
}

export interface InterfaceView {
  index: number;
  name: string;
  networkId: string;
  networkName: string;
  networkKind: string;
  rules: RuleRow[];
}

export interface RuleProblem {
  row: number;
  field: keyof RuleRow | "matches";
  message: string;
}

let seq = 0;
const rowId = () => `r${++seq}`;

export function emptyRule(): RuleRow {
  return { rowId: rowId(), id: 0, name: "", remote: "", host: "", protocol: "tcp", fport: "", lport: "", adapter: "", action: "allow", dir: "BOTH", limitRate: "10", limitUnit: "s", limitBurst: "", appPort: "", other: [] };
}

export function rowFromAce(ace: Doc): RuleRow {
  const r = { ...emptyRule(), protocol: "" };
  r.id = Number(ace.id ?? 0);
  r.name = String(ace.name ?? "");
  for (const m of (ace.matches ?? []) as Doc[]) {
    const v = String(m.value ?? "");
    switch (m.type) {
      case "ip":
        r.remote = v;
        break;
      case "host":
        r.host = v;
        break;
      case "protocol":
        r.protocol = v;
        break;
      case "fport":
        r.fport = v;
        break;
      case "lport":
        r.lport = v;
        break;
      case "adapter":
        r.adapter = v;
        break;
      default:
        r.other.push({ type: String(m.type ?? ""), value: v });
    }
  }
  const a: Doc = (ace.actions ?? [])[0] ?? {};
  if (a.drop) r.action = "drop";
  else if (a.portmap) {
    r.action = "portmap";
    r.appPort = a.appPort ? String(a.appPort) : "";
  } else if (a.limit) {
    r.action = "limit";
    r.limitRate = a.limitrate ? String(a.limitrate) : "";
    r.limitUnit = (["s", "m", "h", "d"].includes(a.limitunit) ? a.limitunit : "s") as RuleRow["limitUnit"];
    r.limitBurst = a.limitburst ? String(a.limitburst) : "";
  }
  r.dir = ace.dir === "INGRESS" || ace.dir === "EGRESS" ? ace.dir : "BOTH";
  return r;
}

/** A row as an ACE in proto3 JSON (EVE's fw.proto). */
export function aceFromRow(r: RuleRow): Doc {
  const matches: { type: string; value: string }[] = [];
  const add = (type: string, value: string) => value.trim() && matches.push({ type, value: value.trim() });
  add("ip", r.remote);
  add("host", r.host);
  add("protocol", r.protocol);
  add("fport", r.fport);
  add("lport", r.lport);
  add("adapter", r.adapter);
  matches.push(...r.other);
  const ace: Doc = { matches };
  if (r.action === "drop") ace.actions = [{ drop: true }];
  if (r.action === "portmap") ace.actions = [{ portmap: true, appPort: Number(r.appPort) }];
  if (r.action === "limit") {
    ace.actions = [{ limit: true, limitrate: Number(r.limitRate), limitunit: r.limitUnit, ...(r.limitBurst ? { limitburst: Number(r.limitBurst) } : {}) }];
  }
  if (r.name.trim()) ace.name = r.name.trim();
  if (r.id) ace.id = r.id;
  if (r.dir !== "BOTH") ace.dir = r.dir;
  return ace;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HOST = /^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?$/;

function port(v: string): boolean {
  return /^\d{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65535;
}

/** The checks the device makes (config/validate.ts), with messages for the form. */
export function validateRules(rows: RuleRow[]): RuleProblem[] {
  const out: RuleProblem[] = [];
  rows.forEach((r, row) => {
    const p = (field: RuleProblem["field"], message: string) => out.push({ row, field, message });
    const remote = r.remote.trim();
    if (remote) {
      const [ip, len, extra] = remote.split("/");
      const okV4 = IPV4.test(ip ?? "") && (len === undefined || (/^\d{1,2}$/.test(len) && Number(len) <= 32)) && extra === undefined;
      const okV6 = (ip ?? "").includes(":") && (len === undefined || (/^\d{1,3}$/.test(len) && Number(len) <= 128));
      if (!okV4 && !okV6) p("remote", `"${remote}" is not an address or CIDR (like 203.0.113.0/24)`);
    }
    if (r.host.trim() && !HOST.test(r.host.trim())) p("host", `"${r.host.trim()}" is not a host name`);
    const proto = r.protocol.trim().toLowerCase();
    if (proto && !["tcp", "udp", "icmp", "icmpv6", "sctp", "all"].includes(proto) && !(/^\d{1,3}$/.test(proto) && Number(proto) <= 255)) {
      p("protocol", `"${r.protocol}" is not a protocol (tcp, udp, icmp or a number 0-255)`);
    }
    for (const f of ["fport", "lport"] as const) if (r[f].trim() && !port(r[f].trim())) p(f, `"${r[f]}" is not a port (1-65535)`);
    const hasPort = !!(r.fport.trim() || r.lport.trim());
    if (hasPort && !["tcp", "udp", "sctp", "6", "17", "132"].includes(proto)) p("protocol", "a port needs protocol tcp, udp or sctp in the same rule");
    if (!remote && !r.host.trim() && !proto && !hasPort && !r.adapter.trim() && !r.other.length) p("matches", "a rule needs at least one match (address, host, protocol, port or adapter)");
    if (r.action === "portmap") {
      if (!r.lport.trim()) p("lport", "a port map needs the device port (local port)");
      if (!port(r.appPort.trim())) p("appPort", "a port map needs the app's port (1-65535)");
    }
    if (r.action === "limit" && !(Number(r.limitRate) > 0)) p("limitRate", "a limit needs a rate above 0");
    if (r.action === "limit" && r.limitBurst.trim() && !(Number(r.limitBurst) > 0)) p("limitBurst", "a burst is a number above 0");
  });
  // One device port is mapped once per instance uplink (the device checks it across apps too).
  const seen = new Map<string, number>();
  rows.forEach((r, row) => {
    if (r.action !== "portmap" || !r.lport.trim()) return;
    const k = `${(r.protocol.trim() || "tcp").toLowerCase()}/${r.lport.trim()}`;
    if (seen.has(k)) out.push({ row, field: "lport", message: `device port ${r.lport.trim()}/${k.split("/")[0]} is already mapped by rule ${seen.get(k)! + 1}` });
    else seen.set(k, row);
  });
  return out;
}

/** The app's interfaces with their network instances and rules. */
export function readInterfaces(doc: Doc | null, appUuid: string): InterfaceView[] {
  const app = (doc?.apps ?? []).find((a: Doc) => a.uuidandversion?.uuid === appUuid);
  if (!app) return [];
  const nis = new Map<string, Doc>((doc?.networkInstances ?? []).map((n: Doc) => [n.uuidandversion?.uuid, n]));
  return ((app.interfaces ?? []) as Doc[]).map((ifc, index) => {
    const ni = nis.get(ifc.networkId);
    return {
      index,
      name: ifc.name || `eth${index}`,
      networkId: ifc.networkId ?? "",
      networkName: ni?.displayname || ifc.networkId || "",
      networkKind: ni?.instType === "ZnetInstSwitch" ? "Switch" : ni?.instType === "ZnetInstLocal" ? "Local" : String(ni?.instType ?? ""),
      rules: ((ifc.acls ?? []) as Doc[]).map(rowFromAce),
    };
  });
}

/** The document with interface `index` of the app carrying `rows` as its rules; nothing else changes. */
export function setInterfaceRules(doc: Doc, appUuid: string, index: number, rows: RuleRow[]): Doc {
  const next: Doc = { ...doc, apps: [...(doc.apps ?? [])] };
  const i = next.apps.findIndex((a: Doc) => a.uuidandversion?.uuid === appUuid);
  if (i < 0) throw new Error("The app is no longer in the device's configuration.");
  const app = { ...next.apps[i] };
  const ifaces = [...(app.interfaces ?? [])];
  if (!ifaces[index]) throw new Error("The interface is no longer in the app's configuration.");
  ifaces[index] = { ...ifaces[index], acls: rows.map(aceFromRow) };
  app.interfaces = ifaces;
  next.apps[i] = app;
  return next;
}

/** A rule in words, for the list: "tcp to 203.0.113.1 port 80". */
export function describeRule(r: RuleRow): string {
  const parts: string[] = [];
  const proto = r.protocol.trim() && r.protocol.trim().toLowerCase() !== "all" ? r.protocol.trim() : "";
  parts.push(proto || "any protocol");
  const other = r.remote.trim() || r.host.trim();
  if (r.action === "portmap") {
    parts.push(`device port ${r.lport} → app port ${r.appPort}`);
    if (other) parts.push(`from ${other}`);
  } else {
    if (other) parts.push(r.dir === "INGRESS" ? `from ${other}` : r.dir === "EGRESS" ? `to ${other}` : `with ${other}`);
    if (r.fport.trim()) parts.push(`remote port ${r.fport.trim()}`);
    if (r.lport.trim()) parts.push(`local port ${r.lport.trim()}`);
  }
  if (r.adapter.trim()) parts.push(`via ${r.adapter.trim()}`);
  for (const o of r.other) parts.push(`${o.type} ${o.value}`);
  return parts.join(", ");
}
