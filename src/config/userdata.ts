// The one reading of an app's `userData` (EVE `AppInstanceConfig.userData`). The device (a container's
// environment and command, a VM's cloud-init user-data), validation and the console's app editor all read it
// here, so the console shows exactly the variables the device applies. Pure (no node:, no Bun APIs): ui/ bundles it.
//
// EVE sends userData base64-encoded (Go's standard encoding, padded). Its text is
// - `KEY=VALUE` lines: a container's environment (a value in double quotes loses them);
// - a `#cloud-config` document: for a VM, cloud-init user-data; for a container, the `KEY=VALUE` items of its
//   `runcmd:` list are its environment (EVE's pillar does the same);
// `EVE_ECO_CMD` among the variables replaces the image's command (split into words as a shell would, without one).
// A value that is not base64 of UTF-8 text is taken as the text itself (a locally written config may carry it plain).

export interface EnvVar {
  key: string;
  value: string;
}

export type UserDataKind =
  /** No user data. */
  | "none"
  /** Only `KEY=VALUE` lines (blank and `#` comment lines aside): an editor may rewrite it from `vars` without loss. */
  | "env"
  /** A `#cloud-config` document (its runcmd `KEY=VALUE` items are `vars`). */
  | "cloud-config"
  /** Other text (a script, …): its `KEY=VALUE` lines, if any, are still `vars`. */
  | "other";

export interface UserData {
  kind: UserDataKind;
  /** How the value was carried: base64 (EVE's way), plain text, or absent. */
  encoding: "base64" | "plain" | "none";
  /** The text: what a VM receives as cloud-init user-data; null without user data. */
  text: string | null;
  /** Every variable in order, as written (EVE_ECO_CMD included, a repeated key listed each time). */
  vars: EnvVar[];
  /** A container's environment: the variables without EVE_ECO_CMD, a repeated key's last value. */
  env: Record<string, string>;
  /** EVE_ECO_CMD as words, or null: the image's own command. */
  cmd: string[] | null;
  /** Why this user data cannot be applied as written (each names the variable), empty when it can. */
  problems: string[];
}

export const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const CMD_VAR = "EVE_ECO_CMD";
const NONE: UserData = Object.freeze({ kind: "none", encoding: "none", text: null, vars: [], env: {}, cmd: null, problems: [] }) as UserData;

/** base64 of the UTF-8 text (btoa alone takes only Latin-1). */
export function encodeBase64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** The UTF-8 text of standard (padded) base64, whitespace ignored; null when it is not base64 of UTF-8 text. */
export function decodeBase64(b64: string): string | null {
  const compact = b64.replace(/\s+/g, "");
  if (compact === "" || compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) return null;
  try {
    const binary = atob(compact);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

/** The user data of a container app written from its variables: `KEY=VALUE` lines, base64; "" for none. */
export function envToUserData(env: EnvVar[]): string {
  const lines = env.filter((e) => e.key.trim() !== "").map((e) => `${e.key.trim()}=${e.value}\n`);
  return lines.length ? encodeBase64(lines.join("")) : "";
}

export function readUserData(userData: string | null | undefined): UserData {
  if (!userData) return NONE;
  const decoded = decodeBase64(userData);
  const text = decoded ?? userData;
  const encoding = decoded === null ? "plain" : "base64";
  const lines = text.split(/\r?\n/);
  const vars: EnvVar[] = [];
  let kind: UserDataKind;
  if (lines[0]?.trim() === "#cloud-config") {
    kind = "cloud-config";
    let inRuncmd = false;
    for (const l of lines.slice(1)) {
      if (/^runcmd\s*:/.test(l)) {
        inRuncmd = true;
        continue;
      }
      if (inRuncmd && /^\s*-\s*/.test(l)) {
        const v = envLine(l.replace(/^\s*-\s*/, "").replace(/^["']|["']$/g, ""));
        if (v) vars.push(v);
      } else if (inRuncmd && /^\S/.test(l)) inRuncmd = false;
    }
  } else {
    kind = "env";
    for (const l of lines) {
      const v = envLine(l);
      if (v) vars.push(v);
      else if (l.trim() !== "" && !l.trimStart().startsWith("#")) kind = "other";
    }
    if (kind === "env" && !vars.length) kind = text.trim() === "" ? "none" : "other";
  }
  const env: Record<string, string> = {};
  const problems: string[] = [];
  for (const v of vars) {
    // A variable's value goes to the container engine (and, for EVE_ECO_CMD, becomes its argv): one line of text.
    const bad = v.value.search(/[\u0000-\u0008\u000a-\u001f\u007f]/);
    if (bad >= 0) problems.push(`variable ${v.key}: its value holds a control character at position ${bad}`);
    if (v.key !== CMD_VAR) env[v.key] = v.value;
  }
  let cmdValue = "";
  for (const v of vars) if (v.key === CMD_VAR) cmdValue = v.value;
  // An empty EVE_ECO_CMD leaves the image's command.
  const cmd = cmdValue ? shellWords(cmdValue) : [];
  return { kind, encoding, text, vars, env, cmd: cmd.length ? cmd : null, problems };
}

/** `KEY=VALUE` (leading blanks allowed; a value in double quotes loses them), or null. */
function envLine(line: string): EnvVar | null {
  const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
  return m ? { key: m[1]!, value: m[2]!.replace(/^"(.*)"$/, "$1") } : null;
}

/** Words as a POSIX shell splits them (double quotes with backslash escapes, single quotes), without running one. */
export function shellWords(s: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s))) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : (m[2] ?? m[3]!));
  return out;
}
