// The one reading of a port label (a network instance's `port.name`, a system adapter's `name` or
// `lowerLayerName`) down to the Linux interface it names. Validation, the network model and the device's own
// ports (init/) all resolve through here, so they cannot disagree, and a label chain is followed a bounded
// number of steps with its cycles refused. Pure: it reads the document only, never the host.
import { IFNAME_RULE, isIfname, l2LinkName } from "./names.ts";

type Doc = Record<string, any>;

/** Steps a label chain may take (label → adapter → lower layer → …): far more than VLAN-on-bond needs. */
export const MAX_PORT_DEPTH = 8;

export type PortResolution =
  /**
   * An interface name (syntax checked: safe in a /sys path or a command line, not yet known to exist). `link`:
   * the label is one of the config's `vlans`/`bonds`, and the name is the one evebox gives the link it makes.
   */
  | { kind: "ifname"; ifname: string; via: string[]; link?: { kind: "vlan" | "bond"; label: string } }
  /** EVE's shared labels for "the uplink": the caller decides (the default route's interface, …). */
  | { kind: "shared"; label: string; via: string[] }
  /** `path` is the field at fault, when one field is. */
  | { kind: "error"; message: string; path: string | null; via: string[] };

export const SHARED_LABELS = new Set(["uplink", "freeuplink"]);

/** The interface name of a deviceIoList entry (`phyaddrs.Ifname`, in whatever case the key was written). */
export function ioIfname(io: Doc): { key: string; value: unknown } | null {
  const a: Doc = io?.phyaddrs ?? {};
  for (const key of ["Ifname", "ifname"]) if (a[key]) return { key, value: a[key] };
  const k = Object.keys(a).find((x) => x.toLowerCase() === "ifname" && a[x]);
  return k ? { key: k, value: a[k] } : null;
}

/**
 * Follows `label`: a deviceIoList entry with that logical label names its interface; else a system adapter of
 * that name goes on to its lower layer; else a VLAN sub-interface or bond of the config (`vlans`, `bonds`) with
 * that logical label names the link evebox makes for it; else a deviceIoList entry with that physical label;
 * else the shared uplink labels; else the label is the interface name itself.
 */
export function resolvePortLabel(doc: Doc | null | undefined, label: string): PortResolution {
  const ios: Doc[] = Array.isArray(doc?.deviceIoList) ? doc!.deviceIoList : [];
  const adapters: Doc[] = Array.isArray(doc?.systemAdapterList) ? doc!.systemAdapterList : [];
  const via: string[] = [];
  let cur = label;
  let from: string | null = null;
  for (;;) {
    if (typeof cur !== "string" || cur === "") return { kind: "error", message: "an empty port label", path: from, via };
    if (via.includes(cur)) return { kind: "error", message: `the port labels form a cycle: ${[...via, cur].join(" → ")}`, path: from, via };
    if (via.length >= MAX_PORT_DEPTH) return { kind: "error", message: `the port labels go more than ${MAX_PORT_DEPTH} levels deep: ${[...via, cur].join(" → ")}`, path: from, via };
    via.push(cur);
    const byLogical = ios.findIndex((io) => io?.logicallabel === cur && ioIfname(io));
    if (byLogical >= 0) return fromIo(ios, byLogical, via);
    const a = adapters.findIndex((sa) => sa?.name === cur && sa.lowerLayerName && sa.lowerLayerName !== cur);
    if (a >= 0) {
      from = `systemAdapterList[${a}].lowerLayerName`;
      cur = adapters[a]!.lowerLayerName;
      continue;
    }
    for (const [field, kind] of [["vlans", "vlan"], ["bonds", "bond"]] as const) {
      const list: Doc[] = Array.isArray(doc?.[field]) ? doc![field] : [];
      if (list.some((l) => l?.logicallabel === cur)) return { kind: "ifname", ifname: l2LinkName(kind, cur), via, link: { kind, label: cur } };
    }
    const byPhysical = ios.findIndex((io) => io?.phylabel === cur && ioIfname(io));
    if (byPhysical >= 0) return fromIo(ios, byPhysical, via);
    if (SHARED_LABELS.has(cur)) return { kind: "shared", label: cur, via };
    if (!isIfname(cur)) return { kind: "error", message: `"${printable(cur)}" is neither a label of this config nor an interface name (${IFNAME_RULE})`, path: from, via };
    return { kind: "ifname", ifname: cur, via };
  }
}

function fromIo(ios: Doc[], i: number, via: string[]): PortResolution {
  const { key, value } = ioIfname(ios[i]!)!;
  if (!isIfname(value)) return { kind: "error", message: `"${printable(String(value))}" is not an interface name (${IFNAME_RULE})`, path: `deviceIoList[${i}].phyaddrs.${key}`, via };
  return { kind: "ifname", ifname: value, via };
}

/** For messages: a hostile label shown on one line. */
function printable(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s).slice(1, -1);
}
