// An app's network interfaces as the app form edits them: the network instance each is on, an optional fixed
// address and MAC, and its port maps (a device port → the app's port, TCP or UDP). Written after EVE's fields
// (`apps[].interfaces[]`: networkId, addr, macAddress, acls); a port map is an ACE matching the protocol and the
// device port (`lport`) with a `portmap` action to `appPort`, as the device's firewall reads it (network/acl).
// The interface's other rules are the firewall editor's: kept as they are, after the port maps. A new interface
// gets one rule allowing everything (with none, the firewall drops all of its traffic).
import { deviceModel } from "../src/config/model.ts";

export type Doc = Record<string, any>;

export interface PortMapInput {
  devicePort: string;
  appPort: string;
  protocol: "tcp" | "udp";
}

export interface InterfaceInput {
  networkId: string;
  addr: string;
  mac: string;
  portMaps: PortMapInput[];
}

const isPortmap = (ace: Doc) => (ace?.actions ?? []).some((a: Doc) => a?.portmap);

/** The interfaces of an app of the document, as the form shows them. */
export function interfacesOf(doc: Doc | null, uuid: string): InterfaceInput[] {
  const app = doc ? deviceModel(doc).apps.find((a) => a.uuid === uuid) : undefined;
  return (app?.interfaces ?? []).map((i) => ({
    networkId: i.networkId,
    addr: i.addr ?? "",
    mac: i.macAddress ?? "",
    portMaps: i.acls
      .filter((a) => a.action.kind === "portmap")
      .map((a) => ({
        devicePort: a.matches.find((m) => m.type === "lport")?.value ?? "",
        appPort: String(a.action.kind === "portmap" ? a.action.appPort : ""),
        protocol: (a.matches.find((m) => m.type === "protocol")?.value ?? "tcp").toLowerCase() === "udp" ? "udp" : "tcp",
      })),
  }));
}

/** Writes the form's interfaces into `app` (a document's app object, changed in place). */
export function writeInterfaces(app: Doc, inputs: InterfaceInput[]): void {
  const old: Doc[] = Array.isArray(app.interfaces) ? app.interfaces : [];
  app.interfaces = inputs.map((input, j) => {
    const before: Doc | undefined = old[j];
    const others: Doc[] = before ? (before.acls ?? []).filter((a: Doc) => !isPortmap(a)) : [];
    let id = Math.max(0, ...others.map((a) => Number(a.id ?? 0) || 0));
    const portmaps = input.portMaps.map((p) => ({
      id: ++id,
      name: `port map ${p.devicePort.trim()}/${p.protocol}`,
      matches: [
        { type: "protocol", value: p.protocol },
        { type: "lport", value: p.devicePort.trim() },
      ],
      actions: [{ portmap: true, appPort: Number(p.appPort.trim()) }],
    }));
    const rest = before ? others : [{ id: ++id, name: "allow all", matches: [{ type: "ip", value: "0.0.0.0/0" }] }];
    const ifc: Doc = { ...(before ?? {}), name: before?.name || `eth${j}`, networkId: input.networkId, acls: [...portmaps, ...rest] };
    if (input.addr.trim()) ifc.addr = input.addr.trim();
    else delete ifc.addr;
    if (input.mac.trim()) ifc.macAddress = input.mac.trim().toLowerCase();
    else delete ifc.macAddress;
    return ifc;
  });
}

/** The form field of a device problem at `rest` (the path after `apps[i].`), or null. */
export function interfaceProblemField(rest: string, app: Doc): string | null {
  const m = /^interfaces\[(\d+)\]\.?(.*)$/.exec(rest);
  if (!m) return null;
  const j = Number(m[1]);
  const r = m[2]!;
  if (r.startsWith("addr")) return `interfaces.${j}.addr`;
  if (r.startsWith("macAddress")) return `interfaces.${j}.mac`;
  if (r.startsWith("networkId")) return `interfaces.${j}.network`;
  const a = /^acls\[(\d+)\]/.exec(r);
  if (a) {
    const acls: Doc[] = app?.interfaces?.[j]?.acls ?? [];
    const k = Number(a[1]);
    // Port maps are written first: acls[k] is port map k.
    if (isPortmap(acls[k] ?? {})) return `interfaces.${j}.portMaps.${acls.slice(0, k).filter(isPortmap).length}.devicePort`;
    return `interfaces.${j}`;
  }
  return `interfaces.${j}`;
}

/** The port numbers and protocols the form can check itself (the device checks the rest: already mapped, …). */
export function portMapProblems(inputs: InterfaceInput[]): { field: string; message: string }[] {
  const out: { field: string; message: string }[] = [];
  const port = (s: string) => /^\d{1,5}$/.test(s.trim()) && Number(s) >= 1 && Number(s) <= 65535;
  inputs.forEach((i, j) => {
    if (!i.networkId) out.push({ field: `interfaces.${j}.network`, message: `Interface ${j + 1}: choose a network.` });
    i.portMaps.forEach((p, k) => {
      if (!port(p.devicePort)) out.push({ field: `interfaces.${j}.portMaps.${k}.devicePort`, message: `Port map ${k + 1}: the device port is a number from 1 to 65535.` });
      if (!port(p.appPort)) out.push({ field: `interfaces.${j}.portMaps.${k}.appPort`, message: `Port map ${k + 1}: the app's port is a number from 1 to 65535.` });
    });
  });
  return out;
}
