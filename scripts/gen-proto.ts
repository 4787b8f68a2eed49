// Regenerates src/proto/descriptor.gen.json, src/proto/config-descriptor.gen.json and src/proto/types.gen.ts from
// proto/**/*.proto.
//
//   npx bun scripts/gen-proto.ts          (or: npm run proto:gen)
//   npx bun scripts/gen-proto.ts --check  (exit 1 if the committed files are stale)
//
// Loading uses protobufjs with its default keepCase=false, so every field name in the
// descriptor and in the generated types is protobufjs' lowerCamelCase form of the .proto
// name (e.g. `config_timestamp` -> `configTimestamp`, `HostName` stays `HostName`).
// Output is deterministic: files are loaded in sorted order and nothing time- or
// machine-dependent is written.

import protobuf from "protobufjs";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";

const REPO = resolve(import.meta.dir, "..");
const PROTO_DIR = join(REPO, "proto");
const OUT_DIR = join(REPO, "src", "proto");
const DESCRIPTOR_OUT = join(OUT_DIR, "descriptor.gen.json");
const TYPES_OUT = join(OUT_DIR, "types.gen.ts");
const CONFIG_DESCRIPTOR_OUT = join(OUT_DIR, "config-descriptor.gen.json");
/** The config's own message: what the config part parses, and the root of the config-only descriptor. */
export const CONFIG_ROOT_TYPE = "org.lfedge.eve.config.EdgeDevConfig";

function listProtoFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listProtoFiles(p));
    else if (name.endsWith(".proto")) out.push(p);
  }
  return out;
}

/** Loads every .proto under proto/ into one resolved Root (imports are relative to proto/). */
export function loadProtoRoot(protoDir = PROTO_DIR): protobuf.Root {
  const root = new protobuf.Root();
  // Imports in the .proto files are written relative to proto/ (e.g. "config/vm.proto").
  // google/protobuf/*.proto are served by protobufjs from its bundled copies.
  root.resolvePath = (_origin: string, target: string) =>
    isAbsolute(target) ? target : join(protoDir, target);
  const files = listProtoFiles(protoDir);
  if (files.length === 0) throw new Error(`no .proto files under ${protoDir}`);
  root.loadSync(files, { keepCase: false });
  root.resolveAll();
  return root;
}

// ---------------------------------------------------------------------------
// TypeScript generation

type AnyType = protobuf.Type | protobuf.Enum;

function fullName(t: protobuf.ReflectionObject): string {
  return t.fullName.replace(/^\./, "");
}

function tsIdent(t: protobuf.ReflectionObject): string {
  return fullName(t).replace(/\./g, "_");
}

function collect(ns: protobuf.NamespaceBase, out: AnyType[]): void {
  for (const obj of ns.nestedArray) {
    if (obj instanceof protobuf.Type) {
      out.push(obj);
      collect(obj, out);
    } else if (obj instanceof protobuf.Enum) {
      out.push(obj);
    } else if (obj instanceof protobuf.Namespace) {
      collect(obj, out);
    }
  }
}

/** Name of the type relative to its package: "EdgeDevConfig", "WifiConfig_cryptoblock". */
function localName(t: AnyType): string {
  const parts: string[] = [t.name];
  let p = t.parent;
  while (p && p instanceof protobuf.Type) {
    parts.unshift(p.name);
    p = p.parent;
  }
  return parts.join("_");
}

/** Last segment of the package a type lives in ("config", "info", "common", "protobuf"). */
function packageSegment(t: AnyType): string {
  let p = t.parent;
  while (p && p instanceof protobuf.Type) p = p.parent;
  return p && p.name ? p.name : "";
}

function capitalize(s: string): string {
  return s.length ? s[0]!.toUpperCase() + s.slice(1) : s;
}

const SCALARS: Record<string, string> = {
  double: "number",
  float: "number",
  int32: "number",
  uint32: "number",
  sint32: "number",
  fixed32: "number",
  sfixed32: "number",
  int64: "number | string",
  uint64: "number | string",
  sint64: "number | string",
  fixed64: "number | string",
  sfixed64: "number | string",
  bool: "boolean",
  string: "string",
  bytes: "Uint8Array",
};

function fieldTsType(f: protobuf.Field): string {
  let base: string;
  if (f.resolvedType) base = tsIdent(f.resolvedType);
  else {
    const s = SCALARS[f.type];
    if (!s) throw new Error(`unresolved field type ${f.type} of ${f.fullName}`);
    base = s;
  }
  if (f instanceof protobuf.MapField) return `Record<string, ${base}>`;
  if (f.repeated) return base.includes("|") ? `(${base})[]` : `${base}[]`;
  return base;
}

function propName(name: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : JSON.stringify(name);
}

export function generateTypes(root: protobuf.Root): string {
  const all: AnyType[] = [];
  collect(root, all);

  // Short aliases: the package-local name when unique across all packages; otherwise
  // prefixed with the capitalized last package segment (e.g. InfoSnapshotType).
  const byLocal = new Map<string, AnyType[]>();
  for (const t of all) {
    const k = localName(t);
    byLocal.set(k, [...(byLocal.get(k) ?? []), t]);
  }
  const aliasOf = new Map<AnyType, string>();
  const used = new Set<string>(all.map(tsIdent));
  const clashes: string[] = [];
  // First pass: unique names; second pass: prefixed names (so a prefixed alias can never
  // take a name that is some other type's natural unique alias).
  for (const [k, ts] of byLocal) {
    if (ts.length === 1 && !used.has(k)) {
      aliasOf.set(ts[0]!, k);
      used.add(k);
    }
  }
  for (const [k, ts] of [...byLocal].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (ts.length === 1) continue;
    const names = ts.map((t) => capitalize(packageSegment(t)) + capitalize(k));
    clashes.push(`${k} -> ${names.join(", ")}`);
    ts.forEach((t, i) => {
      const n = names[i]!;
      if (!used.has(n) && names.indexOf(n) === i) {
        aliasOf.set(t, n);
        used.add(n);
      }
    });
  }

  const lines: string[] = [];
  lines.push("// GENERATED by scripts/gen-proto.ts from proto/**/*.proto. Do not edit by hand;");
  lines.push("// run `npx bun scripts/gen-proto.ts` after changing a .proto file.");
  lines.push("//");
  lines.push("// Each message is an interface named after its full name with dots replaced by");
  lines.push("// underscores, plus a short alias. Field names are protobufjs' lowerCamelCase.");
  lines.push("// Every field is optional; 64-bit integers are `number | string` (decodeMessage");
  lines.push("// returns strings); bytes are Uint8Array; enums are numeric TypeScript enums;");
  lines.push("// maps are Record<string, T>; oneof members are plain optional fields.");
  lines.push("//");
  lines.push("// Short names used by more than one package get the package's last segment as a");
  lines.push("// prefix instead of the bare name:");
  for (const c of clashes) lines.push(`//   ${c}`);
  lines.push("");
  lines.push("/* eslint-disable */");
  lines.push("");

  for (const t of all) {
    const id = tsIdent(t);
    const alias = aliasOf.get(t);
    if (t instanceof protobuf.Enum) {
      lines.push(`/** enum ${fullName(t)} */`);
      lines.push(`export enum ${id} {`);
      const entries = Object.entries(t.values);
      for (const [name, value] of entries) lines.push(`  ${propName(name)} = ${value},`);
      lines.push("}");
      if (alias) lines.push(`export { ${id} as ${alias} };`);
    } else {
      lines.push(`/** message ${fullName(t)} */`);
      lines.push(`export interface ${id} {`);
      for (const f of t.fieldsArray) {
        const tag = f instanceof protobuf.MapField ? `map<${f.keyType}, ${f.type}>` : `${f.repeated ? "repeated " : ""}${f.type}`;
        const oneof = f.partOf && !f.partOf.name.startsWith("_") ? ` (oneof ${f.partOf.name})` : "";
        lines.push(`  /** ${f.id}: ${tag}${oneof} */`);
        lines.push(`  ${propName(f.name)}?: ${fieldTsType(f)};`);
      }
      lines.push("}");
      if (alias) lines.push(`export type ${alias} = ${id};`);
    }
    lines.push("");
  }
  return lines.join("\n");
}

export function generateDescriptor(root: protobuf.Root): string {
  return JSON.stringify(root.toJSON(), null, 1) + "\n";
}

/**
 * The descriptor cut down to the types `EdgeDevConfig` reaches through its fields (~120 of ~420 types and enums):
 * what reading a config needs, loaded alone on a device that has no controller (src/proto/index.ts configType).
 */
export function generateConfigDescriptor(root: protobuf.Root): string {
  const keep = new Set<string>();
  const visit = (t: protobuf.Type | protobuf.Enum) => {
    if (keep.has(t.fullName)) return;
    keep.add(t.fullName);
    if (t instanceof protobuf.Type) for (const f of t.fieldsArray) if (f.resolve().resolvedType) visit(f.resolvedType as protobuf.Type | protobuf.Enum);
  };
  visit(root.lookupType(CONFIG_ROOT_TYPE));
  // The namespaces and types on the way to a kept type, each as toJSON() writes it, without what is not kept.
  const prune = (json: protobuf.INamespace, path: string): Record<string, protobuf.AnyNestedObject> => {
    const out: Record<string, protobuf.AnyNestedObject> = {};
    for (const [name, child] of Object.entries(json.nested ?? {})) {
      const at = `${path}.${name}`;
      const isType = "fields" in child || "values" in child;
      if (isType && !keep.has(at)) continue;
      const nested = "nested" in child && child.nested ? prune(child as protobuf.INamespace, at) : {};
      if (!isType && Object.keys(nested).length === 0) continue;
      const { nested: _drop, ...rest } = child as protobuf.INamespace;
      out[name] = (Object.keys(nested).length ? { ...rest, nested } : rest) as protobuf.AnyNestedObject;
    }
    return out;
  };
  return JSON.stringify({ nested: prune(root.toJSON() as protobuf.INamespace, "") }, null, 1) + "\n";
}

if (import.meta.main) {
  const check = process.argv.includes("--check");
  const root = loadProtoRoot();
  const outputs: [string, string][] = [
    [DESCRIPTOR_OUT, generateDescriptor(root)],
    [CONFIG_DESCRIPTOR_OUT, generateConfigDescriptor(root)],
    [TYPES_OUT, generateTypes(root)],
  ];
  let stale = false;
  for (const [file, content] of outputs) {
    const current = existsSync(file) ? readFileSync(file, "utf8") : undefined;
    if (current === content) continue;
    stale = true;
    if (!check) writeFileSync(file, content);
    console.log(`${check ? "stale" : "wrote"} ${relative(REPO, file)}`);
  }
  if (check && stale) process.exit(1);
  if (!stale) console.log("proto outputs up to date");
}
