// The manifest of an app bundle (bundle.json), read and checked once: the source form (`evebox bundle build`'s
// input: images by file) and the built form (inside the bundle file: images by sha256 and size). Pure: no
// `node:`, no Bun (the console's import dialog may show the same messages). README.md is the format.
import { hasControl } from "../config/names.ts";
import { DomainError } from "../model/errors.ts";

export const FORMAT = 1;
export const NAME_RE = /^[a-z0-9][a-z0-9-]{0,47}$/;
export const VERSION_RE = /^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})(-[0-9A-Za-z.-]{1,32})?$/;
export const PARAM_RE = /^[a-z][a-zA-Z0-9_]{0,31}$/;
export const IMAGE_RE = /^[a-z][a-z0-9-]{0,31}$/;
export const SHA256_RE = /^[0-9a-f]{64}$/;
export const MAX_PARAMS = 32;
export const MAX_IMAGES = 32;
export const MAX_DESCRIPTION = 2000;
/** One ustar header's size field: 11 octal digits. */
export const MAX_IMAGE_BYTES = 8 * 1024 ** 3 - 1;
/** The keys of `config` a bundle may bring. */
export const CONFIG_KEYS = ["datastores", "contentInfo", "volumes", "networkInstances", "apps", "deviceIoList"] as const;

export type ParamKind = "port" | "serial" | "subnet" | "string";
export const PARAM_KINDS: readonly ParamKind[] = ["port", "serial", "subnet", "string"];

export interface ParamSpec {
  kind: ParamKind;
  label: string;
  default: string | null;
  /** `string` only: the value must match it. */
  pattern: string | null;
}

export interface ImageSpec {
  /** Source form: the file in DIR. */
  file?: string;
  /** Built form. */
  sha256?: string;
  size?: number;
}

export interface Manifest {
  format: 1;
  name: string;
  version: string;
  description: string;
  parameters: Record<string, ParamSpec>;
  images: Record<string, ImageSpec>;
  config: Record<string, unknown[]>;
}

export interface ManifestProblem {
  path: string;
  message: string;
}

/** A bundle refused whole: every problem with its path (the answer's `problems`). */
export class BundleInvalid extends DomainError {
  override name = "BundleInvalid";
  constructor(readonly problems: ManifestProblem[]) {
    super("invalid", `the bundle is refused: ${problems.slice(0, 5).map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join("; ")}${problems.length > 5 ? ` (and ${problems.length - 5} more)` : ""}`, { problems: problems.slice(0, 100) });
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const show = (v: unknown) => JSON.stringify(typeof v === "string" && v.length > 64 ? `${v.slice(0, 64)}…` : v);

/**
 * Reads a manifest. `form` "source": each image has a `file` (relative, inside the directory); "built": each has
 * a `sha256` and a `size`. Every problem is listed with its path; the manifest is usable only when there are none.
 */
export function readManifest(input: unknown, form: "source" | "built"): { manifest: Manifest | null; problems: ManifestProblem[] } {
  const problems: ManifestProblem[] = [];
  const p = (path: string, message: string) => problems.push({ path, message });
  if (!isObj(input)) return { manifest: null, problems: [{ path: "", message: "bundle.json must be a JSON object" }] };
  const known = new Set(["format", "name", "version", "description", "parameters", "images", "config"]);
  for (const k of Object.keys(input)) if (!known.has(k)) p(k, `unknown field (expected ${[...known].join(", ")})`);
  if (input.format !== FORMAT) p("format", `must be ${FORMAT}, got ${show(input.format)}`);
  const name = input.name;
  if (typeof name !== "string" || !NAME_RE.test(name)) p("name", `${show(name)}: expected ${NAME_RE.source}`);
  const version = input.version;
  if (typeof version !== "string" || !VERSION_RE.test(version)) p("version", `${show(version)}: expected MAJOR.MINOR.PATCH (semver)`);
  const description = input.description ?? "";
  if (typeof description !== "string") p("description", "must be a string");
  else if (description.length > MAX_DESCRIPTION) p("description", `${description.length} characters: at most ${MAX_DESCRIPTION}`);
  else if (hasControl(description.replace(/\n/g, " "))) p("description", "holds a control character");

  const parameters: Record<string, ParamSpec> = {};
  const rawParams = input.parameters ?? {};
  if (!isObj(rawParams)) p("parameters", "must be an object of name → {kind, label, default?, pattern?}");
  else {
    const names = Object.keys(rawParams);
    if (names.length > MAX_PARAMS) p("parameters", `${names.length} parameters: at most ${MAX_PARAMS}`);
    for (const n of names.slice(0, MAX_PARAMS)) {
      const at = `parameters.${n}`;
      const r = rawParams[n];
      if (!PARAM_RE.test(n)) {
        p(at, `parameter name ${show(n)}: expected ${PARAM_RE.source}`);
        continue;
      }
      if (!isObj(r)) {
        p(at, "must be an object {kind, label, default?, pattern?}");
        continue;
      }
      for (const k of Object.keys(r)) if (!["kind", "label", "default", "pattern"].includes(k)) p(`${at}.${k}`, "unknown field (expected kind, label, default, pattern)");
      const kind = r.kind as ParamKind;
      if (!PARAM_KINDS.includes(kind)) p(`${at}.kind`, `${show(r.kind)}: expected one of ${PARAM_KINDS.join(", ")}`);
      const label = r.label ?? n;
      if (typeof label !== "string" || label.length > 128 || hasControl(label)) p(`${at}.label`, "one line of text, at most 128 characters");
      const dflt = r.default ?? null;
      if (dflt !== null && (typeof dflt !== "string" || dflt.length > 256)) p(`${at}.default`, "a string of at most 256 characters");
      let pattern: string | null = null;
      if (kind === "string") {
        if (typeof r.pattern !== "string" || r.pattern.length > 256) p(`${at}.pattern`, "a string parameter needs a pattern (a regular expression, at most 256 characters)");
        else {
          try {
            new RegExp(r.pattern, "u");
            pattern = r.pattern;
          } catch (e) {
            p(`${at}.pattern`, `not a regular expression: ${(e as Error).message}`);
          }
        }
      } else if (r.pattern !== undefined && r.pattern !== null) p(`${at}.pattern`, "only a string parameter has a pattern");
      parameters[n] = { kind, label: String(label), default: typeof dflt === "string" ? dflt : null, pattern };
    }
  }

  const images: Record<string, ImageSpec> = {};
  const rawImages = input.images ?? {};
  if (!isObj(rawImages)) p("images", "must be an object of name → {file}");
  else {
    const names = Object.keys(rawImages);
    if (names.length > MAX_IMAGES) p("images", `${names.length} images: at most ${MAX_IMAGES}`);
    for (const n of names.slice(0, MAX_IMAGES)) {
      const at = `images.${n}`;
      const r = rawImages[n];
      if (!IMAGE_RE.test(n)) {
        p(at, `image name ${show(n)}: expected ${IMAGE_RE.source}`);
        continue;
      }
      if (!isObj(r)) {
        p(at, form === "source" ? "must be an object {file}" : "must be an object {sha256, size}");
        continue;
      }
      if (form === "source") {
        for (const k of Object.keys(r)) if (k !== "file") p(`${at}.${k}`, "unknown field (expected file)");
        const problem = relativeFileProblem(r.file);
        if (problem) p(`${at}.file`, problem);
        images[n] = { file: String(r.file) };
      } else {
        for (const k of Object.keys(r)) if (k !== "sha256" && k !== "size") p(`${at}.${k}`, "unknown field (expected sha256, size)");
        if (typeof r.sha256 !== "string" || !SHA256_RE.test(r.sha256)) p(`${at}.sha256`, "expected 64 lower-case hex digits");
        if (typeof r.size !== "number" || !Number.isSafeInteger(r.size) || r.size < 1 || r.size > MAX_IMAGE_BYTES) p(`${at}.size`, `expected a size in bytes, 1 to ${MAX_IMAGE_BYTES}`);
        images[n] = { sha256: String(r.sha256), size: Number(r.size) };
      }
    }
  }

  const config: Record<string, unknown[]> = {};
  if (!isObj(input.config)) p("config", "must be an object: an EdgeDevConfig fragment");
  else {
    for (const [k, v] of Object.entries(input.config)) {
      if (!(CONFIG_KEYS as readonly string[]).includes(k)) {
        p(`config.${k}`, `a bundle cannot bring ${k} (only ${CONFIG_KEYS.join(", ")})`);
        continue;
      }
      if (!Array.isArray(v) || v.some((o) => !isObj(o))) {
        p(`config.${k}`, "must be an array of objects");
        continue;
      }
      config[k] = v;
    }
    if (!(config.apps?.length)) p("config.apps", "a bundle brings at least one app");
  }
  if (problems.length) return { manifest: null, problems };
  return {
    manifest: { format: 1, name: name as string, version: version as string, description: description as string, parameters, images, config },
    problems,
  };
}

/** A path inside the bundle's directory: relative, no `..`, no empty or `.` components, no control characters. */
export function relativeFileProblem(f: unknown): string | null {
  if (typeof f !== "string" || f === "") return "the image's file: a path relative to the bundle's directory";
  if (f.length > 1024 || hasControl(f)) return "a path of one line, at most 1024 characters";
  if (f.startsWith("/")) return `${show(f)}: must be relative to the bundle's directory`;
  const parts = f.split("/");
  if (parts.some((s) => s === ".." || s === "." || s === "")) return `${show(f)}: no "..", "." or empty components`;
  return null;
}

/** Semver order of two checked versions: <0, 0, >0 (a pre-release sorts before its release). */
export function compareVersions(a: string, b: string): number {
  const pa = VERSION_RE.exec(a)!;
  const pb = VERSION_RE.exec(b)!;
  for (let i = 1; i <= 3; i++) {
    const d = Number(pa[i]) - Number(pb[i]);
    if (d) return d;
  }
  const ra = pa[4] ?? "";
  const rb = pb[4] ?? "";
  if (ra === rb) return 0;
  if (!ra) return 1;
  if (!rb) return -1;
  return ra < rb ? -1 : 1;
}
