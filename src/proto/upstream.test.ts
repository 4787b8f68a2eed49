// evebox's proto/ against upstream lf-edge/eve-api, whose .proto files are kept (unchanged, as a test fixture
// only) under testdata/eve-api/: every message and enum evebox defines must exist upstream with the same
// fields (name, number, type, label, map key, oneof, proto3 presence), the same reserved numbers and the same
// enum values; and a message with every field set must survive evebox → upstream → evebox and back without an
// unknown or a lost field.
import { describe, expect, test } from "bun:test";
import { readdirSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import protobuf from "protobufjs";
import { protoRoot } from "./index.ts";

const UPSTREAM_DIR = join(import.meta.dir, "testdata", "eve-api", "proto");

function protoFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...protoFiles(p));
    else if (name.endsWith(".proto")) out.push(p);
  }
  return out;
}

/** Upstream's files parsed here, at test time. register.proto imports protoc-gen-validate's options, which only
 * annotate (they do not change the wire), so that import is skipped. */
function loadUpstream(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) =>
    target.startsWith("validate/") ? (null as unknown as string) : isAbsolute(target) ? target : join(UPSTREAM_DIR, target);
  root.loadSync(protoFiles(UPSTREAM_DIR), { keepCase: false });
  root.resolveAll();
  return root;
}

function walk(ns: protobuf.NamespaceBase, types: protobuf.Type[], enums: protobuf.Enum[]): void {
  for (const o of ns.nestedArray) {
    if (o instanceof protobuf.Type) types.push(o);
    else if (o instanceof protobuf.Enum) enums.push(o);
    if (o instanceof protobuf.Namespace) walk(o, types, enums);
  }
}

const upstream = loadUpstream();
const ours = protoRoot();
const ourTypes: protobuf.Type[] = [];
const ourEnums: protobuf.Enum[] = [];
walk(ours, ourTypes, ourEnums);

/** What makes a field the same on the wire and in proto3 JSON. */
function fieldShape(f: protobuf.Field) {
  f.resolve();
  return {
    id: f.id,
    type: f.resolvedType ? f.resolvedType.fullName : f.type,
    rule: f.repeated ? "repeated" : "singular",
    keyType: f instanceof protobuf.MapField ? f.keyType : undefined,
    oneof: f.partOf && !f.partOf.name.startsWith("_") ? f.partOf.name : undefined,
    proto3Optional: !!f.options?.proto3_optional,
    packed: f.repeated ? f.packed : undefined,
  };
}

describe("proto/ equals upstream lf-edge/eve-api", () => {
  test("the fixture parses and holds the top-level messages", () => {
    for (const n of ["config.EdgeDevConfig", "info.ZInfoMsg", "metrics.ZMetricMsg", "logs.LogBundle", "flowlog.FlowMessage"]) {
      expect(upstream.lookupType("org.lfedge.eve." + n)).toBeInstanceOf(protobuf.Type);
    }
    expect(ourTypes.length).toBeGreaterThan(250);
  });

  test("every message evebox defines exists upstream with the same fields and reserved numbers", () => {
    const problems: string[] = [];
    for (const t of ourTypes) {
      const u = upstream.lookup(t.fullName);
      if (!(u instanceof protobuf.Type)) {
        problems.push(`${t.fullName}: not an upstream message`);
        continue;
      }
      for (const f of t.fieldsArray) {
        const g = u.fields[f.name];
        if (!g) problems.push(`${f.fullName} (${f.id}): not upstream`);
        else if (!Bun.deepEquals(fieldShape(f), fieldShape(g))) {
          problems.push(`${f.fullName}: ${JSON.stringify(fieldShape(f))} upstream ${JSON.stringify(fieldShape(g))}`);
        }
      }
      for (const g of u.fieldsArray) if (!t.fields[g.name]) problems.push(`${g.fullName} (${g.id}): missing`);
      const reserved = (x: protobuf.Type) => JSON.stringify((x.reserved ?? []).map(String).sort());
      if (reserved(t) !== reserved(u)) problems.push(`${t.fullName}: reserved ${reserved(t)} upstream ${reserved(u)}`);
    }
    expect(problems).toEqual([]);
  });

  test("every enum evebox defines exists upstream with the same values", () => {
    const problems: string[] = [];
    for (const e of ourEnums) {
      const u = upstream.lookup(e.fullName);
      if (!(u instanceof protobuf.Enum)) problems.push(`${e.fullName}: not an upstream enum`);
      else if (!Bun.deepEquals(e.values, u.values)) {
        problems.push(`${e.fullName}: ${JSON.stringify(e.values)} upstream ${JSON.stringify(u.values)}`);
      }
    }
    expect(problems).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Round trips with every field set.

const MAX_DEPTH = 3;

/** A value for a scalar field, distinct per field number so two fields swapped on the wire cannot compare equal. */
function scalar(type: string, id: number): unknown {
  switch (type) {
    case "string":
      return `s${id}`;
    case "bool":
      return true;
    case "bytes":
      return new Uint8Array([id & 0xff, 0xfe, 0x01]);
    case "double":
    case "float":
      return id + 0.5;
    case "int32":
    case "sint32":
    case "sfixed32":
      return -(id + 1);
    case "uint32":
    case "fixed32":
      return id + 1;
    case "int64":
    case "sint64":
    case "sfixed64":
      return String(-(1_000_000_000_000 + id));
    case "uint64":
    case "fixed64":
      return String(1_000_000_000_000 + id);
  }
  throw new Error(`no sample for scalar type ${type}`);
}

/**
 * A plain object with every field of `t` set (maps and repeated fields with two entries), nested messages filled
 * down to MAX_DEPTH. In each oneof only one member can be set: `variant` picks which, so running variants
 * 0..n-1 covers every member.
 */
function sample(t: protobuf.Type, variant: number, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const oneofPick = new Map<string, string>();
  for (const o of t.oneofsArray) {
    if (o.name.startsWith("_")) continue; // proto3 optional: a oneof of one
    oneofPick.set(o.name, o.fieldsArray[variant % o.fieldsArray.length]!.name);
  }
  for (const f of t.fieldsArray) {
    f.resolve();
    if (f.partOf && oneofPick.has(f.partOf.name) && oneofPick.get(f.partOf.name) !== f.name) continue;
    const one = (i: number): unknown => {
      if (f.resolvedType instanceof protobuf.Enum) {
        const values = Object.values(f.resolvedType.values);
        return values[(f.id + i) % values.length] || values.find((v) => v !== 0) || 0;
      }
      if (f.resolvedType instanceof protobuf.Type) {
        return depth >= MAX_DEPTH ? undefined : sample(f.resolvedType, variant + i, depth + 1);
      }
      const v = scalar(f.type, f.id);
      return typeof v === "string" && i > 0 ? `${v}${i}`.replace(/^(-?\d+)$/, (m) => String(BigInt(m) + BigInt(i))) : v;
    };
    if (f instanceof protobuf.MapField) {
      const key = (i: number) => (f.keyType === "string" ? `k${i}` : f.keyType === "bool" ? String(i === 1) : String(i + 1));
      const a = one(0);
      const b = one(1);
      if (a !== undefined) out[f.name] = { [key(0)]: a, [key(1)]: b };
    } else if (f.repeated) {
      const a = one(0);
      if (a !== undefined) out[f.name] = [a, one(1)];
    } else {
      const v = one(0);
      if (v !== undefined) out[f.name] = v;
    }
  }
  return out;
}

const OPTS: protobuf.IConversionOptions = { longs: String, enums: Number, bytes: String, defaults: false, arrays: false, objects: false };

function through(from: protobuf.Type, to: protobuf.Type, obj: Record<string, unknown>): Record<string, unknown> {
  const bytes = from.encode(from.fromObject(obj)).finish();
  return to.toObject(to.decode(bytes), OPTS);
}

/** Messages a controller sends and messages the device sends: the round-trip test must reach all of them. */
const ROOTS = [
  "config.EdgeDevConfig", "config.ConfigRequest", "config.ConfigResponse", "auth.AuthContainer",
  "certs.ZControllerCert", "attest.ZAttestReq", "attest.ZAttestResponse", "uuid.UuidRequest", "uuid.UuidResponse",
  "register.ZRegisterMsg", "info.ZInfoMsg", "metrics.ZMetricMsg", "logs.LogBundle", "flowlog.FlowMessage",
  "config.CompoundEdgeDevConfig", "config.CompoundEdgeDevConfigRequest", "profile.LocalProfile", "profile.RadioStatus",
  "profile.RadioConfig", "profile.LocalAppInfoList", "profile.LocalAppCmdList", "profile.LocalDevInfo",
  "profile.LocalDevCmd", "profile.AppBootInfoList", "profile.AppBootConfigList", "profile.NetworkInfo",
  "profile.LocalNetworkConfig", "profile.Signal",
];

function closure(names: string[]): Set<string> {
  const seen = new Set<string>();
  const visit = (t: protobuf.Type) => {
    if (seen.has(t.fullName)) return;
    seen.add(t.fullName);
    for (const f of t.fieldsArray) {
      f.resolve();
      if (f.resolvedType instanceof protobuf.Type) visit(f.resolvedType);
    }
  };
  for (const n of names) visit(ours.lookupType("org.lfedge.eve." + n));
  return seen;
}

describe("round trips with every field set", () => {
  const reached = closure(ROOTS);

  test("every config and device-sent message is among the messages checked", () => {
    const checked = new Set(ourTypes.map((t) => t.fullName));
    expect([...reached].filter((n) => !checked.has(n))).toEqual([]);
    expect(reached.size).toBeGreaterThan(200);
  });

  test("evebox → upstream → evebox loses nothing, in every oneof variant", () => {
    const problems: string[] = [];
    for (const t of ourTypes) {
      const u = upstream.lookupType(t.fullName);
      const variants = Math.max(1, ...t.oneofsArray.map((o) => o.fieldsArray.length));
      for (let v = 0; v < variants; v++) {
        const obj = sample(t, v);
        const want = t.toObject(t.fromObject(obj), OPTS);
        const there = through(t, u, obj);
        const back = through(u, t, there);
        if (!Bun.deepEquals(there, want)) problems.push(`${t.fullName} [${v}] decoded upstream: ${diffKeys(want, there)}`);
        if (!Bun.deepEquals(back, want)) problems.push(`${t.fullName} [${v}] back in evebox: ${diffKeys(want, back)}`);
      }
    }
    expect(problems).toEqual([]);
  });

  test("upstream → evebox → upstream loses nothing", () => {
    const problems: string[] = [];
    for (const t of ourTypes) {
      const u = upstream.lookupType(t.fullName);
      const obj = sample(u, 0);
      const want = u.toObject(u.fromObject(obj), OPTS);
      const back = through(t, u, through(u, t, obj));
      if (!Bun.deepEquals(back, want)) problems.push(`${t.fullName}: ${diffKeys(want, back)}`);
    }
    expect(problems).toEqual([]);
  });

  test("the check can fail: a field only evebox has is lost upstream", () => {
    const t = ours.lookupType("org.lfedge.eve.config.Adapter");
    const forked = new protobuf.Type("Adapter").add(new protobuf.Field("name", 2, "string")).add(new protobuf.Field("extra", 99, "string"));
    new protobuf.Root().define("x").add(forked);
    const there = through(forked, t, { name: "a", extra: "lost" });
    expect(there).toEqual({ name: "a" });
  });
});

function diffKeys(want: Record<string, unknown>, got: Record<string, unknown>, path = ""): string {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(want), ...Object.keys(got)])) {
    const a = want[k];
    const b = got[k];
    if (Bun.deepEquals(a, b)) continue;
    if (a && b && typeof a === "object" && typeof b === "object" && !Array.isArray(a)) {
      out.push(diffKeys(a as Record<string, unknown>, b as Record<string, unknown>, `${path}${k}.`));
    } else out.push(`${path}${k}: ${JSON.stringify(a)} → ${JSON.stringify(b)}`);
  }
  return out.join("; ");
}
