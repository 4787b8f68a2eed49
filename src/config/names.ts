// What the places a config string ends up in accept: interface names (the kernel), host names and domains
// (dnsmasq files, DNS), free display text (files, logs, comments). Validation refuses anything else; the writers
// use the same checks as their second line of defence.

/** Linux interface names: IFNAMSIZ (16 with the NUL), no '/', no whitespace; "." and ".." are path components. */
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

export function isIfname(s: unknown): s is string {
  return typeof s === "string" && IFNAME_RE.test(s) && s !== "." && s !== "..";
}

export const IFNAME_RULE = "1-15 of A-Z a-z 0-9 _ . - (a Linux interface name), not . or ..";

/** One DNS label: letters, digits, '-' inside (and '_', which EVE's service names use), 1-63. */
const LABEL_RE = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** A host name or domain: dot-separated labels, at most 253 characters, an optional final dot. */
export function isHostname(s: unknown): s is string {
  if (typeof s !== "string" || s.length === 0 || s.length > 254) return false;
  const body = s.endsWith(".") ? s.slice(0, -1) : s;
  if (body.length === 0 || body.length > 253) return false;
  return body.split(".").every((l) => LABEL_RE.test(l));
}

export const HOSTNAME_RULE = "a host name: dot-separated labels of letters, digits, '-' and '_' (1-63 each, 253 in all)";

/**
 * Control characters: C0, DEL, C1, and the Unicode line and paragraph separators — anything a file format,
 * a terminal or a log line could read as the end of a line or a command.
 */
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

export function hasControl(s: string): boolean {
  return CONTROL_RE.test(s);
}

/** Display text (names shown to people, written into comments and logs): no control characters, bounded. */
export const MAX_DISPLAY_NAME = 256;

export function displayNameProblem(s: unknown): string | null {
  if (typeof s !== "string") return "expected text";
  if (hasControl(s)) return "contains a control character (a newline, tab, …): display names are one line of text";
  if (s.length > MAX_DISPLAY_NAME) return `${s.length} characters: at most ${MAX_DISPLAY_NAME}`;
  return null;
}

/** Text safe inside a `#` comment of a generated file: printable ASCII only, anything else replaced. */
export function commentText(s: string, max = 64): string {
  return s.replace(/[^\x20-\x7e]/g, "?").slice(0, max);
}

/**
 * The host name of a link evebox makes for the config's `vlans`/`bonds` (never the config's `interface_name`
 * nor its label: a name from the config never becomes an interface name). `evv` (VLAN) / `evg` (bond, a link
 * group) + 12 hex of a hash of the logical label: stable across config versions, 15 characters, and neither
 * an NI bridge (`eb…`) nor an app interface (`ev` + hex), so the network part counts it among the device's ports.
 */
export function l2LinkName(kind: "vlan" | "bond", label: string): string {
  return `${kind === "vlan" ? "evv" : "evg"}${hash48(`${kind}:${label}`)}`;
}

/** Is this one of the links `l2LinkName` gives (what evebox may create and delete)? */
export function isL2LinkName(name: string): boolean {
  return /^ev[vg][0-9a-f]{12}$/.test(name);
}

/** 12 hex digits from two FNV-1a passes (pure: the model is bundled into the UI, no node:crypto here). */
function hash48(s: string): string {
  const fnv = (seed: number) => {
    let h = seed >>> 0;
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h >>> 0;
  };
  const a = fnv(0x811c9dc5);
  const b = fnv(a ^ 0x9e3779b9);
  return (a.toString(16).padStart(8, "0") + b.toString(16).padStart(8, "0")).slice(0, 12);
}
