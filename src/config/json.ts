// Strict proto3 JSON for protobufjs reflection types. protobufjs's own fromObject coerces silently
// (wrong types become defaults, unknown fields vanish); a device must refuse such input and say
// where, so this walker checks every field and collects every problem with its path.
import type protobuf from "protobufjs";
import { boundFor, tooMany } from "./bounds.ts";
import { joinPath, type Problem } from "./problems.ts";

type Type = protobuf.Type;
type Field = protobuf.Field;

const INT32 = new Set(["int32", "sint32", "sfixed32"]);
const UINT32 = new Set(["uint32", "fixed32"]);
const INT64 = new Set(["int64", "sint64", "sfixed64"]);
const UINT64 = new Set(["uint64", "fixed64"]);
const MAX_DEPTH = 64;

export interface ParsedJson {
  value: Record<string, unknown>;
  problems: Problem[];
}

/** Turns proto3 JSON into an object `Type.fromObject` takes unchanged, or lists what is wrong. */
export function fromProto3Json(type: Type, json: unknown, path = ""): ParsedJson {
  const problems: Problem[] = [];
  const value = readMessage(type, json, path, problems, 0) ?? {};
  return { value, problems };
}

function camel(name: string): string {
  return name.replace(/_([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
}

function fieldIndex(type: Type): Map<string, Field> {
  const cached = (type as unknown as { __jsonIndex?: Map<string, Field> }).__jsonIndex;
  if (cached) return cached;
  const m = new Map<string, Field>();
  for (const f of type.fieldsArray) {
    m.set(f.name, f);
    m.set(camel(f.name), f);
  }
  (type as unknown as { __jsonIndex?: Map<string, Field> }).__jsonIndex = m;
  return m;
}

function readMessage(type: Type, json: unknown, path: string, problems: Problem[], depth: number): Record<string, unknown> | undefined {
  const wkt = readWellKnown(type, json, path, problems);
  if (wkt !== NOT_WKT) return wkt as Record<string, unknown> | undefined;
  if (depth > MAX_DEPTH) {
    problems.push({ path, message: "nested too deeply" });
    return undefined;
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    problems.push({ path: path || "(document)", message: `expected an object (${type.name}), got ${describe(json)}` });
    return undefined;
  }
  const out: Record<string, unknown> = {};
  const index = fieldIndex(type);
  const oneofSeen = new Map<string, string>();
  for (const [key, raw] of Object.entries(json)) {
    const p = joinPath(path, key);
    const field = index.get(key) ?? index.get(camel(key));
    if (!field) {
      problems.push({ path: p, message: `unknown field of ${type.name}${suggest(key, type)}` });
      continue;
    }
    if (raw === null) continue; // proto3 JSON: null means "not set"
    if (field.partOf) {
      const other = oneofSeen.get(field.partOf.name);
      if (other) problems.push({ path: p, message: `only one of the oneof '${field.partOf.name}' may be set (also set: ${other})` });
      oneofSeen.set(field.partOf.name, key);
    }
    field.resolve();
    const v = readField(field, raw, p, problems, depth);
    if (v !== undefined) out[field.name] = v;
  }
  return out;
}

function readField(field: Field, raw: unknown, path: string, problems: Problem[], depth: number): unknown {
  if (field.map) {
    if (typeof raw !== "object" || Array.isArray(raw)) {
      problems.push({ path, message: `expected an object (map), got ${describe(raw)}` });
      return undefined;
    }
    const keys = Object.keys(raw as object);
    if (keys.length > boundFor(field)) {
      problems.push({ path, message: tooMany(keys.length, boundFor(field)) });
      return undefined;
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(raw as object)) {
      const kp = `${path}["${k}"]`;
      const keyType = (field as unknown as protobuf.MapField).keyType;
      if (keyType !== "string" && readScalar(keyType, k, kp, problems) === undefined) continue;
      const val = readSingle(field, v, kp, problems, depth);
      if (val !== undefined) out[k] = val;
    }
    return out;
  }
  if (field.repeated) {
    if (!Array.isArray(raw)) {
      problems.push({ path, message: `expected an array, got ${describe(raw)}` });
      return undefined;
    }
    // Counted before any element is walked (the text was scanned already; this holds for objects given directly).
    if (raw.length > boundFor(field)) {
      problems.push({ path, message: tooMany(raw.length, boundFor(field)) });
      return undefined;
    }
    const out: unknown[] = [];
    raw.forEach((item, i) => {
      const v = readSingle(field, item, joinPath(path, i), problems, depth);
      if (v !== undefined) out.push(v);
    });
    return out;
  }
  return readSingle(field, raw, path, problems, depth);
}

function readSingle(field: Field, raw: unknown, path: string, problems: Problem[], depth: number): unknown {
  const rt = field.resolvedType;
  if (isType(rt)) return readMessage(rt, raw, path, problems, depth + 1);
  if (isEnum(rt)) return readEnum(rt, raw, path, problems);
  return readScalar(field.type, raw, path, problems);
}

function readEnum(e: protobuf.Enum, raw: unknown, path: string, problems: Problem[]): number | undefined {
  if (typeof raw === "string") {
    const v = e.values[raw];
    if (v === undefined) {
      problems.push({ path, message: `unknown ${e.name} value "${raw}" (expected one of ${Object.keys(e.values).slice(0, 12).join(", ")}${Object.keys(e.values).length > 12 ? ", …" : ""})` });
      return undefined;
    }
    return v;
  }
  if (typeof raw === "number" && Number.isInteger(raw) && raw >= -2147483648 && raw <= 2147483647) return raw;
  problems.push({ path, message: `expected a ${e.name} name or number, got ${describe(raw)}` });
  return undefined;
}

function readScalar(type: string, raw: unknown, path: string, problems: Problem[]): unknown {
  const bad = (what: string) => {
    problems.push({ path, message: `expected ${what}, got ${describe(raw)}` });
    return undefined;
  };
  switch (type) {
    case "string":
      return typeof raw === "string" ? raw : bad("a string");
    case "bool":
      return typeof raw === "boolean" ? raw : bad("true or false");
    case "bytes": {
      if (typeof raw !== "string" || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(raw)) return bad("base64 bytes");
      return new Uint8Array(Buffer.from(raw.replace(/-/g, "+").replace(/_/g, "/"), "base64"));
    }
    case "double":
    case "float": {
      if (typeof raw === "number") return raw;
      if (raw === "NaN") return NaN;
      if (raw === "Infinity") return Infinity;
      if (raw === "-Infinity") return -Infinity;
      if (typeof raw === "string" && raw.trim() !== "" && Number.isFinite(Number(raw))) return Number(raw);
      return bad("a number");
    }
  }
  if (INT32.has(type) || UINT32.has(type)) {
    const n = typeof raw === "string" && /^-?\d+$/.test(raw) ? Number(raw) : raw;
    if (typeof n !== "number" || !Number.isInteger(n)) return bad(`an integer (${type})`);
    const [lo, hi] = INT32.has(type) ? [-2147483648, 2147483647] : [0, 4294967295];
    if (n < lo || n > hi) return bad(`an integer in ${lo}..${hi} (${type})`);
    return n;
  }
  if (INT64.has(type) || UINT64.has(type)) {
    let s: string;
    if (typeof raw === "number" && Number.isSafeInteger(raw)) s = String(raw);
    else if (typeof raw === "string" && /^-?\d+$/.test(raw)) s = raw;
    else return bad(`an integer (${type}, as a number or a decimal string)`);
    const b = BigInt(s);
    const [lo, hi] = INT64.has(type) ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
    if (b < lo || b > hi) return bad(`an integer in range for ${type}`);
    return Number.isSafeInteger(Number(b)) ? Number(b) : s;
  }
  problems.push({ path, message: `unsupported field type ${type}` });
  return undefined;
}

// ---- well-known types used by the EVE API (timestamps, durations, wrappers)
const NOT_WKT = Symbol("not a well-known type");

function readWellKnown(type: Type, json: unknown, path: string, problems: Problem[]): unknown {
  switch (type.fullName) {
    case ".google.protobuf.Timestamp": {
      if (typeof json !== "string") break;
      const m = json.match(/^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/);
      const ms = m ? Date.parse(`${m[1]}${m[3]}`) : NaN;
      if (!m || Number.isNaN(ms)) {
        problems.push({ path, message: `expected an RFC 3339 timestamp like 2024-01-02T03:04:05Z, got ${describe(json)}` });
        return undefined;
      }
      const nanos = m[2] ? Number(m[2].slice(1).padEnd(9, "0")) : 0;
      return { seconds: Math.floor(ms / 1000), nanos };
    }
    case ".google.protobuf.Duration": {
      if (typeof json !== "string") break;
      const m = json.match(/^(-?)(\d+)(?:\.(\d{1,9}))?s$/);
      if (!m) {
        problems.push({ path, message: `expected a duration like "1.5s", got ${describe(json)}` });
        return undefined;
      }
      const sign = m[1] ? -1 : 1;
      return { seconds: sign * Number(m[2]), nanos: sign * Number((m[3] ?? "").padEnd(9, "0")) };
    }
  }
  if (type.fullName.startsWith(".google.protobuf.") && type.fullName.endsWith("Value") && type.fields.value) {
    if (json !== null && typeof json !== "object") {
      const v = readScalar(type.fields.value.type, json, path, problems);
      return v === undefined ? undefined : { value: v };
    }
  }
  return NOT_WKT;
}

// ---- the other direction: message object → proto3 JSON

/** Turns a decoded message into proto3 JSON (lowerCamel names, enum names, 64-bit ints as strings). */
export function toProto3Json(type: Type, message: protobuf.Message | Record<string, unknown>): Record<string, unknown> {
  const obj = type.toObject(message as protobuf.Message, { longs: String, enums: String, bytes: String, defaults: false, arrays: false, oneofs: false });
  return postWellKnown(type, obj) as Record<string, unknown>;
}

function postWellKnown(type: Type, obj: Record<string, unknown>): unknown {
  if (type.fullName === ".google.protobuf.Timestamp") {
    const ms = Number(obj.seconds ?? 0) * 1000 + Math.floor(Number(obj.nanos ?? 0) / 1e6);
    return new Date(ms).toISOString();
  }
  if (type.fullName === ".google.protobuf.Duration") return `${Number(obj.seconds ?? 0) + Number(obj.nanos ?? 0) / 1e9}s`;
  for (const f of type.fieldsArray) {
    const rt = f.resolvedType;
    const v = obj[f.name];
    if (!isType(rt) || v === undefined || v === null) continue;
    if (f.map) {
      for (const k of Object.keys(v as object)) (v as Record<string, unknown>)[k] = postWellKnown(rt, (v as Record<string, Record<string, unknown>>)[k]!);
    } else if (Array.isArray(v)) obj[f.name] = v.map((x) => postWellKnown(rt, x));
    else obj[f.name] = postWellKnown(rt, v as Record<string, unknown>);
  }
  return obj;
}

// Duck-typed so that two copies of protobufjs (a test's and the app's) still interoperate.
function isType(t: unknown): t is Type {
  return !!t && Array.isArray((t as Type).fieldsArray);
}
function isEnum(t: unknown): t is protobuf.Enum {
  return !!t && typeof (t as protobuf.Enum).values === "object" && !("fieldsArray" in (t as object));
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  if (typeof v === "object") return "an object";
  return `${typeof v} ${String(v)}`;
}

function suggest(key: string, type: Type): string {
  const k = key.toLowerCase().replace(/_/g, "");
  const hit = type.fieldsArray.find((f) => f.name.toLowerCase().replace(/_/g, "") === k);
  if (hit) return ` (did you mean "${hit.name}"?)`;
  const near = type.fieldsArray.find((f) => levenshtein(f.name.toLowerCase(), key.toLowerCase()) <= 2);
  return near ? ` (did you mean "${near.name}"?)` : "";
}

function levenshtein(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 99;
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length]![b.length]!;
}
