// Edits of network instances in the device's document (the Networks page): add, change, remove. Pure, like
// config-edit.ts: each returns a new document. What the device accepts is decided by its own validation, run here
// too (device-check.ts); this file only writes what the form says, after EVE's field names:
// - Local: `instType: ZnetInstLocal`, `ip.subnet`/`gateway`/`dhcpRange`/`dns` (left out: the device allocates a /24
//   and derives the gateway and range), `dns[]` static entries ({HostName, Address[]}), `port.name` the uplink
//   label ("uplink": whichever port has the default route; none: air-gapped, no NAT);
// - Switch: `instType: ZnetInstSwitch`, `port.name` the device port it bridges.
import { deviceModel } from "../src/config/model.ts";

export type Doc = Record<string, any>;

export interface StaticDnsInput {
  host: string;
  /** Addresses, comma or space separated as typed. */
  addrs: string;
}

export interface NetworkInput {
  name: string;
  kind: "local" | "switch";
  /** The port label: "" none (Local: air-gapped), "uplink" any uplink, else a port name or label. */
  port: string;
  subnet: string;
  gateway: string;
  dhcpStart: string;
  dhcpEnd: string;
  /** Upstream DNS servers, comma or space separated. */
  dns: string;
  staticDns: StaticDnsInput[];
}

/** The shared label for "the port with the default route" (config/ports.ts SHARED_LABELS). */
export const ANY_UPLINK = "uplink";

export const emptyNetwork = (): NetworkInput => ({ name: "", kind: "local", port: ANY_UPLINK, subnet: "", gateway: "", dhcpStart: "", dhcpEnd: "", dns: "", staticDns: [] });

const list = (s: string) => s.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);

function write(ni: Doc, input: NetworkInput): void {
  ni.displayname = input.name.trim();
  ni.instType = input.kind === "local" ? "ZnetInstLocal" : "ZnetInstSwitch";
  ni.activate = true;
  const port = input.port.trim();
  if (port) ni.port = { ...(ni.port ?? {}), name: port };
  else delete ni.port;
  if (input.kind === "switch") {
    delete ni.ip;
    delete ni.dns;
    return;
  }
  const ip: Doc = {};
  if (input.subnet.trim()) ip.subnet = input.subnet.trim();
  if (input.gateway.trim()) ip.gateway = input.gateway.trim();
  if (input.dhcpStart.trim() || input.dhcpEnd.trim()) ip.dhcpRange = { start: input.dhcpStart.trim(), end: input.dhcpEnd.trim() };
  const dns = list(input.dns);
  if (dns.length) ip.dns = dns;
  // Fields of ip this form does not show (domain, ntp, …) are kept.
  const kept = Object.fromEntries(Object.entries(ni.ip ?? {}).filter(([k]) => !["subnet", "gateway", "dhcpRange", "dns"].includes(k)));
  const next = { ...kept, ...ip };
  if (Object.keys(next).length) ni.ip = next;
  else delete ni.ip;
  const entries = input.staticDns.filter((d) => d.host.trim() || d.addrs.trim()).map((d) => ({ HostName: d.host.trim(), Address: list(d.addrs) }));
  if (entries.length) ni.dns = entries;
  else delete ni.dns;
}

export function addNetworkInstance(doc: Doc | null, input: NetworkInput, uuid: string = crypto.randomUUID()): Doc {
  const next = structuredClone(doc ?? {});
  next.networkInstances ??= [];
  const ni: Doc = { uuidandversion: { uuid, version: "1" } };
  write(ni, input);
  next.networkInstances.push(ni);
  return next;
}

export function updateNetworkInstance(doc: Doc, uuid: string, input: NetworkInput): Doc {
  const next = structuredClone(doc);
  const ni = (next.networkInstances ?? []).find((n: Doc) => n.uuidandversion?.uuid === uuid);
  if (!ni) throw new Error(`no network instance ${uuid} in the configuration`);
  write(ni, input);
  const v = Number.parseInt(String(ni.uuidandversion?.version ?? "0"), 10);
  ni.uuidandversion = { ...ni.uuidandversion, version: String(Number.isFinite(v) ? v + 1 : 1) };
  return next;
}

/** The apps with an interface on the instance, by name (what keeps it from being deleted). */
export function appsOnNetwork(doc: Doc | null, uuid: string): string[] {
  if (!doc) return [];
  return deviceModel(doc)
    .apps.filter((a) => a.interfaces.some((i) => i.networkId === uuid))
    .map((a) => a.name);
}

/** Removes the instance. Refused while an app is on it (the device refuses that document too, naming the apps). */
export function removeNetworkInstance(doc: Doc, uuid: string): Doc {
  const users = appsOnNetwork(doc, uuid);
  if (users.length) throw new Error(`${users.length === 1 ? "The app" : "The apps"} ${users.join(", ")} ${users.length === 1 ? "is" : "are"} on this network: remove ${users.length === 1 ? "its interface" : "their interfaces"} on it first.`);
  const next = structuredClone(doc);
  next.networkInstances = (next.networkInstances ?? []).filter((n: Doc) => n.uuidandversion?.uuid !== uuid);
  return next;
}

/** The form's values of an instance of the document. */
export function networkInputOf(doc: Doc | null, uuid: string): NetworkInput | null {
  const ni = doc ? deviceModel(doc).networkInstances.find((n) => n.uuid === uuid) : undefined;
  if (!ni) return null;
  return {
    name: ni.name === ni.uuid ? "" : ni.name,
    kind: ni.kind === "switch" ? "switch" : "local",
    port: ni.port?.label ?? "",
    subnet: ni.subnet ?? "",
    gateway: ni.gateway ?? "",
    dhcpStart: ni.dhcpRange?.start ?? "",
    dhcpEnd: ni.dhcpRange?.end ?? "",
    dns: ni.dns.join(", "),
    staticDns: ni.staticDns.map((d) => ({ host: d.host, addrs: d.addrs.join(", ") })),
  };
}

/** The form field a device problem at `path` is about, for the instance at `index` of the sent document. */
export function networkProblemField(path: string, index: number): string | null {
  const m = /^networkInstances\[(\d+)\]\.?(.*)$/.exec(path);
  if (!m || Number(m[1]) !== index) return null;
  const rest = m[2]!;
  if (rest.startsWith("displayname")) return "name";
  if (rest.startsWith("port")) return "port";
  if (rest.startsWith("instType")) return "kind";
  if (rest.startsWith("ip.subnet")) return "subnet";
  if (rest.startsWith("ip.gateway")) return "gateway";
  if (rest.startsWith("ip.dhcpRange.end")) return "dhcpEnd";
  if (rest.startsWith("ip.dhcpRange")) return "dhcpStart";
  if (rest.startsWith("ip.dns")) return "dns";
  const d = /^dns\[(\d+)\]\.(HostName|Address)/.exec(rest);
  if (d) return `staticDns.${d[1]}.${d[2] === "HostName" ? "host" : "addrs"}`;
  if (rest.startsWith("dns")) return "staticDns";
  return "";
}

/** The port choices of the form: any uplink, the device's ports, the labels the document gives its ports. */
export function portChoices(doc: Doc | null, hostPorts: { name: string; defaultRoute: boolean }[]): { value: string; label: string }[] {
  const out: { value: string; label: string }[] = [];
  const seen = new Set<string>();
  const add = (value: string, label: string) => {
    if (!seen.has(value)) out.push({ value, label }), seen.add(value);
  };
  const model = doc ? deviceModel(doc) : null;
  for (const io of model?.physicalIo ?? []) if (io.logicalLabel) add(io.logicalLabel, `${io.logicalLabel}${io.ifname && io.ifname !== io.logicalLabel ? ` (${io.ifname})` : ""}`);
  for (const p of model?.ports ?? []) if (p.name) add(p.name, p.name);
  for (const p of hostPorts) add(p.name, `${p.name}${p.defaultRoute ? " (default route)" : ""}`);
  return out;
}
