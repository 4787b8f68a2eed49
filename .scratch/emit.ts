// Emits a .proto (facts only: names, numbers, types) for the upstream types of one file.
import protobuf from "protobufjs";
import { readdirSync, statSync } from "node:fs";
import { join, isAbsolute } from "node:path";
function list(d: string): string[] { const o: string[] = []; for (const n of readdirSync(d).sort()) { const p = join(d, n); if (statSync(p).isDirectory()) o.push(...list(p)); else if (n.endsWith(".proto")) o.push(p);} return o; }
const dir = "/work/wt-i16-ops/src/proto/testdata/eve-api/proto";
const up = new protobuf.Root();
up.resolvePath = (_o, t) => t.startsWith("validate/") ? null as any : isAbsolute(t) ? t : join(dir, t);
up.loadSync(list(dir), { keepCase: true }); up.resolveAll();
const file = process.argv[2]!;
const pkg = process.argv[3]!;
const ns = up.lookup(pkg) as protobuf.Namespace;
const imports = new Set<string>();
function tref(f: protobuf.Field, scope: protobuf.ReflectionObject): string {
  if (!f.resolvedType) return f.type;
  const rt = f.resolvedType; const fn = rt.fullName.slice(1);
  let o: any = rt; while (o && !o.filename) o = o.parent; const rf = (o?.filename ?? "").replace(/.*\/proto\//, "");
  if (rf !== file) imports.add(fn.startsWith("google.protobuf") ? "google/protobuf/timestamp.proto" : rf);
  if (fn.startsWith(pkg + ".") ) return fn.slice(pkg.length + 1);
  return fn;
}
function emitEnum(e: protobuf.Enum, ind: string): string {
  let s = `${ind}enum ${e.name} {\n`;
  if (e.options?.allow_alias) s += `${ind}  option allow_alias = true;\n`;
  for (const [k, v] of Object.entries(e.values)) { const dep = e.valuesOptions?.[k]?.deprecated ? " [deprecated = true]" : ""; s += `${ind}  ${k} = ${v}${dep};\n`; }
  return s + `${ind}}\n`;
}
function emitType(t: protobuf.Type, ind: string): string {
  let s = `${ind}message ${t.name} {\n`;
  for (const n of t.nestedArray) { if (n instanceof protobuf.Enum) s += emitEnum(n, ind + "  "); else if (n instanceof protobuf.Type) s += emitType(n, ind + "  "); }
  const doneOneof = new Set<string>();
  for (const f of t.fieldsArray) {
    if (f.partOf && !f.options?.proto3_optional) {
      if (doneOneof.has(f.partOf.name)) continue; doneOneof.add(f.partOf.name);
      s += `${ind}  oneof ${f.partOf.name} {\n`;
      for (const g of f.partOf.fieldsArray) s += `${ind}    ${tref(g, t)} ${g.name} = ${g.id};\n`;
      s += `${ind}  }\n`; continue;
    }
    const lab = f instanceof protobuf.MapField ? `map<${f.keyType}, ${tref(f, t)}>` : `${f.repeated ? "repeated " : f.options?.proto3_optional ? "optional " : ""}${tref(f, t)}`;
    const opts: string[] = []; if (f.options?.deprecated) opts.push("deprecated = true");
    s += `${ind}  ${lab} ${f.name} = ${f.id}${opts.length ? ` [${opts.join(", ")}]` : ""};\n`;
  }
  if (t.reserved?.length) s += `${ind}  reserved ${t.reserved.map((r) => Array.isArray(r) ? (r[0] === r[1] ? `${r[0]}` : `${r[0]} to ${r[1]}`) : JSON.stringify(r)).join(", ")};\n`;
  return s + `${ind}}\n`;
}
let body = "";
for (const n of ns.nestedArray) { if ((n as any).filename?.replace(/.*\/proto\//, "") !== file) continue; body += "\n" + (n instanceof protobuf.Enum ? emitEnum(n, "") : emitType(n as protobuf.Type, "")); }
console.log(`syntax = "proto3";\n\npackage ${pkg};\n\n${[...imports].sort().map((i) => `import "${i}";`).join("\n")}\n${body}`);
