// Prints the folder-level import graph of src/ (and ui/) and its cycles: `bun scripts/import-graph.ts [--strict]`.
// A folder is src/<part> (src/cli.ts is "cli"); type-only imports count, since they tie the folders' meanings too.
// --strict exits 1 when there is a cycle, an import of device/ from a part below it, or an import out of model/,
// so a test can hold the line.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (/\.(ts|tsx)$/.test(name) && !/\.test\.tsx?$/.test(name) && !name.endsWith(".gen.ts")) out.push(p);
  }
  return out;
}

/** The folder a file belongs to: "src/network/acl/x.ts" → "network", "ui/pages/A.tsx" → "ui". */
export function folderOf(file: string): string | null {
  const rel = relative(ROOT, file).split("/");
  if (rel[0] === "ui") return "ui";
  if (rel[0] !== "src") return null;
  if (rel.length === 2) return rel[1]!.replace(/\.tsx?$/, "");
  return rel[1]!;
}

const IMPORT_RE = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|require\(\s*["']([^"']+)["']\s*\)|import\(\s*["']([^"']+)["']\s*\)/g;

export function importGraph(): Map<string, Map<string, string[]>> {
  const graph = new Map<string, Map<string, string[]>>();
  for (const f of [...files(join(ROOT, "src")), ...files(join(ROOT, "ui"))]) {
    const from = folderOf(f);
    if (!from) continue;
    if (!graph.has(from)) graph.set(from, new Map());
    const text = readFileSync(f, "utf8");
    for (const m of text.matchAll(IMPORT_RE)) {
      const spec = m[1] ?? m[2] ?? m[3]!;
      if (!spec.startsWith(".")) continue;
      const to = folderOf(resolve(dirname(f), spec));
      if (!to || to === from) continue;
      const edges = graph.get(from)!;
      if (!edges.has(to)) edges.set(to, []);
      edges.get(to)!.push(relative(ROOT, f));
    }
  }
  return graph;
}

/** Strongly connected components with more than one folder (Tarjan). */
export function cycles(graph: Map<string, Map<string, string[]>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) visit(v);
  return out;
}

/** The entry points (src/cli.ts and init/, evebox as PID 1) and the composition root may import device/. */
export const ENTRY_POINTS = new Set(["cli", "init", "device"]);

/** Folders below device/ that import it, and imports out of model/ (which must stand on nothing). */
export function violations(graph: Map<string, Map<string, string[]>>): { upward: string[]; model: string[] } {
  const upward = [...graph].filter(([from, edges]) => !ENTRY_POINTS.has(from) && edges.has("device")).map(([from]) => from).sort();
  const model = [...(graph.get("model")?.keys() ?? [])].sort();
  return { upward, model };
}

if (import.meta.main) {
  const graph = importGraph();
  for (const [from, edges] of [...graph].sort(([a], [b]) => a.localeCompare(b))) {
    console.log(`${from} → ${[...edges.keys()].sort().join(", ") || "(nothing)"}`);
  }
  const found = cycles(graph);
  const { upward, model } = violations(graph);
  console.log(found.length ? `\ncycles (${found.length}):\n${found.map((c) => `  ${c.join(" ⇄ ")}`).join("\n")}` : "\ncycles: none");
  console.log(upward.length ? `imports of device/ from below it: ${upward.join(", ")}` : "imports of device/ from below it: none");
  console.log(model.length ? `imports out of model/: ${model.join(", ")}` : "imports out of model/: none");
  if (Bun.argv.includes("--strict") && (found.length || upward.length || model.length)) process.exit(1);
}
