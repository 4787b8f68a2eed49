// Placeholders of a bundle's config fragment, and the site's parameter values checked against the device.
// A placeholder is a whole JSON string value ("{{param.NAME}}"), never a part of a longer string: values are
// substituted, text never is, so a value cannot reach a place its check did not foresee. Pure (ui/ may use it).
import { hasControl } from "../config/names.ts";
import { hasHostBits, overlaps, parseCidr, parseIp } from "../config/net.ts";
import { ENV_KEY_RE, envToUserData } from "../config/userdata.ts";
import type { Manifest, ManifestProblem, ParamSpec } from "./manifest.ts";

/** What the device offers a bundle's parameters (the console shows them as the fields' choices). */
export interface DeviceFacts {
  /** Port values besides the shared labels: host interfaces and the current config's port labels. */
  ports: string[];
  /** Serial adapters: declared ones (a deviceIoList logical label or group) and undeclared inventory ports. */
  serial: SerialChoice[];
  /** Networks in use: the current config's network instances (not this bundle's own) and the host's routes. */
  subnets: { cidr: string; what: string }[];
}

export interface SerialChoice {
  /** The value: a logical label / assignment group of deviceIoList, or an inventory port's name (ttyS0). */
  name: string;
  /** The host's device node. */
  devPath: string;
  /** In the current config's deviceIoList already; else the importer adds an entry for it. */
  declared: boolean;
  /** Who holds it now (an app name), if any: shown, not refused (the assignment decides at run time). */
  heldBy?: string | null;
}

export const SHARED_PORTS = ["uplink", "freeuplink"];

/** A parameter with the value it will take and the choices the device offers. */
export interface ParamView {
  name: string;
  kind: ParamSpec["kind"];
  label: string;
  default: string | null;
  pattern: string | null;
  value: string | null;
  /** port and serial: the only values accepted. */
  choices: string[] | null;
  problem: string | null;
}

export type ParamValues = Record<string, string>;

const PLACEHOLDER = /^\{\{(param|image)\.([A-Za-z][A-Za-z0-9_-]*)(?:\.(gateway|dhcpStart|dhcpEnd|prefix|host\.(\d{1,10})))?\}\}$/;

/** The problem of one parameter value on this device, or null. */
export function paramProblem(spec: ParamSpec, value: unknown, facts: DeviceFacts): string | null {
  if (typeof value !== "string") return "a value is needed (a string)";
  if (value === "") return "a value is needed";
  if (value.length > 256) return `${value.length} characters: at most 256`;
  if (hasControl(value)) return "holds a control character (a line break, …)";
  if (value.includes("{{")) return "a value cannot hold a placeholder";
  switch (spec.kind) {
    case "port": {
      const ok = [...SHARED_PORTS, ...facts.ports];
      return ok.includes(value) ? null : `${JSON.stringify(value)} is not a port of this device (one of ${ok.join(", ")})`;
    }
    case "serial": {
      if (facts.serial.some((s) => s.name === value)) return null;
      return facts.serial.length
        ? `${JSON.stringify(value)} is not a serial port of this device (one of ${facts.serial.map((s) => s.name).join(", ")})`
        : `${JSON.stringify(value)}: this device has no serial port`;
    }
    case "subnet":
      return subnetProblem(value, facts);
    case "string": {
      if (!spec.pattern || !new RegExp(spec.pattern, "u").test(value)) return `${JSON.stringify(value)} does not match ${spec.pattern}`;
      return null;
    }
  }
}

export function subnetProblem(value: string, facts: Pick<DeviceFacts, "subnets">): string | null {
  const c = parseCidr(value);
  if (!c || c.family !== 4) return `${JSON.stringify(value)}: expected an IPv4 subnet (10.77.0.0/24)`;
  if (c.prefix < 8 || c.prefix > 28) return `/${c.prefix}: the prefix must be 8 to 28`;
  if (hasHostBits(c)) return `${value} has host bits set (the network address is ${v4(networkAddr(c.addr, c.prefix))}/${c.prefix})`;
  for (const s of facts.subnets) {
    const o = parseCidr(s.cidr);
    if (o && o.family === 4 && overlaps(c, o)) return `${value} overlaps ${s.cidr} (${s.what})`;
  }
  return null;
}

/** Every parameter: its value (given, or the default), its choices and its problem. Unknown values are problems. */
export function resolveParams(m: Manifest, given: Record<string, unknown>, facts: DeviceFacts): { params: ParamView[]; values: ParamValues; problems: ManifestProblem[] } {
  const problems: ManifestProblem[] = [];
  for (const k of Object.keys(given)) if (!m.parameters[k]) problems.push({ path: `params.${k}`, message: `bundle ${m.name} has no parameter ${JSON.stringify(k.slice(0, 64))}` });
  const values: ParamValues = {};
  const params = Object.entries(m.parameters).map(([name, spec]): ParamView => {
    const raw = Object.hasOwn(given, name) ? given[name] : spec.default;
    const problem = paramProblem(spec, raw ?? undefined, facts);
    if (problem) problems.push({ path: `params.${name}`, message: problem });
    else values[name] = raw as string;
    return {
      name,
      kind: spec.kind,
      label: spec.label,
      default: spec.default,
      pattern: spec.pattern,
      value: typeof raw === "string" ? raw : null,
      choices: spec.kind === "port" ? [...SHARED_PORTS, ...facts.ports] : spec.kind === "serial" ? facts.serial.map((s) => s.name) : null,
      problem,
    };
  });
  return { params, values, problems };
}

/**
 * Checks the placeholders of `config` without values (what `bundle build` and the import check first): each is
 * whole, names a declared parameter or image, a derived form only of a subnet, an image only as a content tree's
 * sha256; every parameter and image is used.
 */
export function checkPlaceholders(m: Pick<Manifest, "parameters" | "images" | "config">): ManifestProblem[] {
  const problems: ManifestProblem[] = [];
  envUserData(walk(m.config, "config", m, problems, null) as Record<string, unknown[]>, problems);
  return problems;
}

/**
 * An app's `userData` may be written in a bundle as `{"env": {"KEY": "value" | "{{param.x}}", …}}`: after
 * substitution it becomes EVE's base64 `KEY=VALUE` lines (config/userdata.ts), one variable per key, so a value
 * (checked to hold no line break) is one variable's value and nothing else.
 */
function envUserData(config: Record<string, unknown[]>, problems: ManifestProblem[]): void {
  (config.apps ?? []).forEach((app, i) => {
    const a = app as Record<string, unknown>;
    const ud = a?.userData;
    if (!ud || typeof ud !== "object") return;
    const path = `config.apps[${i}].userData`;
    const env = (ud as Record<string, unknown>).env;
    if (Array.isArray(ud) || Object.keys(ud).some((k) => k !== "env") || !env || typeof env !== "object" || Array.isArray(env)) {
      problems.push({ path, message: 'in a bundle, userData is base64 text, or {"env": {"KEY": "value", …}}' });
      return;
    }
    const vars: { key: string; value: string }[] = [];
    for (const [key, value] of Object.entries(env)) {
      if (!ENV_KEY_RE.test(key)) problems.push({ path: `${path}.env.${key.slice(0, 64)}`, message: `not a variable name (${ENV_KEY_RE.source})` });
      else if (typeof value !== "string" || hasControl(value)) problems.push({ path: `${path}.env.${key}`, message: "a variable's value: a string of one line" });
      else vars.push({ key, value });
    }
    a.userData = envToUserData(vars);
  });
}

/** The fragment with every placeholder replaced by its value; problems when one cannot be. */
export function substitute(m: Manifest, values: ParamValues, digests: Record<string, string>): { config: Record<string, unknown[]>; problems: ManifestProblem[] } {
  const problems: ManifestProblem[] = [];
  const config = walk(m.config, "config", m, problems, { values, digests }) as Record<string, unknown[]>;
  envUserData(config, problems);
  return { config, problems };
}

function walk(
  v: unknown,
  path: string,
  m: Pick<Manifest, "parameters" | "images">,
  problems: ManifestProblem[],
  subst: { values: ParamValues; digests: Record<string, string> } | null,
  used = { params: new Set<string>(), images: new Set<string>(), top: true },
): unknown {
  const top = used.top;
  used.top = false;
  let out: unknown = v;
  if (typeof v === "string") {
    if (v.includes("{{") || v.includes("}}")) out = placeholder(v, path, m, problems, subst, used);
  } else if (Array.isArray(v)) {
    out = v.map((x, i) => walk(x, `${path}[${i}]`, m, problems, subst, used));
  } else if (v && typeof v === "object") {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k.includes("{{") || k.includes("}}")) problems.push({ path: `${path}.${k.slice(0, 64)}`, message: "a placeholder cannot be an object key" });
      o[k] = walk(x, `${path}.${k}`, m, problems, subst, used);
    }
    out = o;
  }
  if (top) {
    for (const n of Object.keys(m.parameters)) if (!used.params.has(n)) problems.push({ path: `parameters.${n}`, message: "declared but never used in config ({{param." + n + "}})" });
    for (const n of Object.keys(m.images)) if (!used.images.has(n)) problems.push({ path: `images.${n}`, message: `no content tree names it (contentInfo[].sha256 "{{image.${n}}}")` });
  }
  return out;
}

function placeholder(
  s: string,
  path: string,
  m: Pick<Manifest, "parameters" | "images">,
  problems: ManifestProblem[],
  subst: { values: ParamValues; digests: Record<string, string> } | null,
  used: { params: Set<string>; images: Set<string> },
): unknown {
  const bad = (message: string) => {
    problems.push({ path, message });
    return s;
  };
  const x = PLACEHOLDER.exec(s);
  if (!x) return bad(`${JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s)}: a placeholder must be the whole string, exactly "{{param.NAME}}", "{{param.NAME.gateway}}" (…) or "{{image.NAME}}"`);
  const [, what, name, derived, hostN] = x;
  if (what === "image") {
    if (derived) return bad(`{{image.${name}}} has no derived forms`);
    if (!m.images[name!]) return bad(`no image ${JSON.stringify(name)} in images`);
    if (!/^config\.contentInfo\[\d+\]\.sha256$/.test(path)) return bad(`{{image.${name}}} may only be a content tree's sha256 (contentInfo[i].sha256)`);
    used.images.add(name!);
    return subst ? (subst.digests[name!] ?? bad(`image ${name}: no digest`)) : s;
  }
  const spec = m.parameters[name!];
  if (!spec) return bad(`no parameter ${JSON.stringify(name)} in parameters`);
  if (derived && spec.kind !== "subnet") return bad(`.${derived} is a derived form of a subnet parameter; ${name} is a ${spec.kind}`);
  used.params.add(name!);
  if (!subst) {
    if (hostN !== undefined && Number(hostN) < 2) return bad(`.host.${hostN}: N starts at 2 (.gateway is the first address)`);
    return s;
  }
  const value = subst.values[name!];
  if (value === undefined) return bad(`parameter ${name} has no value`);
  if (!derived) return value;
  const c = parseCidr(value)!;
  const net = networkAddr(c.addr, c.prefix);
  const size = 2n ** BigInt(32 - c.prefix);
  const last = net + size - 2n; // the last address before the broadcast
  switch (derived) {
    case "gateway":
      return v4(net + 1n);
    case "dhcpStart":
      return v4(net + 2n);
    case "dhcpEnd":
      return v4(last);
    case "prefix":
      return String(c.prefix);
  }
  const n = BigInt(hostN!);
  if (n < 2n || net + n > last) return bad(`.host.${hostN} is outside ${value} (2 to ${last - net})`);
  return v4(net + n);
}

function networkAddr(addr: bigint, prefix: number): bigint {
  const shift = BigInt(32 - prefix);
  return (addr >> shift) << shift;
}

function v4(a: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((a >> s) & 255n)).join(".");
}

/** True when `s` is an IPv4 address (for the console's field check). */
export function isIpv4(s: string): boolean {
  return parseIp(s)?.family === 4;
}
