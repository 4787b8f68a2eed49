import protobuf from "protobufjs";
import { readdirSync, statSync } from "node:fs";
import { join, isAbsolute } from "node:path";
import { loadProtoRoot } from "/work/wt-i16-ops/scripts/gen-proto.ts";
function list(d: string): string[] { const o: string[] = []; for (const n of readdirSync(d).sort()) { const p = join(d, n); if (statSync(p).isDirectory()) o.push(...list(p)); else if (n.endsWith(".proto")) o.push(p);} return o; }
const up = new protobuf.Root(); const dir = "/work/wt-i16-ops/src/proto/testdata/eve-api/proto";
up.resolvePath = (_o, t) => t.startsWith("validate/") ? null as any : isAbsolute(t) ? t : join(dir, t);
up.loadSync(list(dir), { keepCase: false }); up.resolveAll();
const ours = loadProtoRoot();
function walk(ns: protobuf.NamespaceBase, f: (o: protobuf.ReflectionObject)=>void) { for (const o of ns.nestedArray) { f(o); if (o instanceof protobuf.Namespace) walk(o, f);} }
walk(ours, (o) => {
  if (o instanceof protobuf.Type) {
    const u = up.lookup(o.fullName);
    if (!(u instanceof protobuf.Type)) { console.log("TYPE only ours", o.fullName); return; }
    for (const f of o.fieldsArray) { const g = u.fields[f.name]; if (!g) { console.log("FIELD only ours", f.fullName, f.id); continue; }
      if (g.id !== f.id || g.type !== f.type || g.repeated !== f.repeated || (g as any).keyType !== (f as any).keyType || (g.resolvedType?.fullName ?? g.type) !== (f.resolvedType?.fullName ?? f.type)) console.log("FIELD differs", f.fullName, f.id, f.type, "vs", g.id, g.type);
      if ((f.partOf?.name) !== (g.partOf?.name)) console.log("ONEOF differs", f.fullName, f.partOf?.name, g.partOf?.name);
    }
    for (const g of u.fieldsArray) if (!o.fields[g.name]) console.log("FIELD missing", g.fullName, g.id, g.type);
  } else if (o instanceof protobuf.Enum) {
    const u = up.lookup(o.fullName);
    if (!(u instanceof protobuf.Enum)) { console.log("ENUM only ours", o.fullName); return; }
    for (const [k, v] of Object.entries(o.values)) if (u.values[k] !== v) console.log("ENUMVAL only ours/differs", o.fullName, k, v, u.values[k]);
    for (const [k, v] of Object.entries(u.values)) if (o.values[k] === undefined) console.log("ENUMVAL missing", o.fullName, k, v);
  }
});
let n=0; walk(ours, o => { if (o instanceof protobuf.Type) n++; }); console.log("types", n);
walk(up, (o) => { if ((o instanceof protobuf.Type || o instanceof protobuf.Enum) && !ours.lookup(o.fullName)) console.log("UPSTREAM only", o.fullName, (o as any).filename?.replace(/.*proto\//,'')); });
