// A small dependency-graph reconciler, after EVE's nireconciler: the network is a set of items (a bridge,
// its address, a dnsmasq instance, the firewall, routes …), each with the items it depends on. planGraph()
// compares the desired items with the ones that exist and returns the operations, in an order that never
// builds an item before what it needs nor removes one before what needs it. Pure; runGraph() executes.

export interface Item {
  /** Unique, and says what the thing is: `bridge:eb1a2b…`, `addr:eb1a2b…/10.1.0.1/24`, `firewall`. */
  id: string;
  type: string;
  deps: string[];
  /** What is compared: equal attributes mean the item is as desired. */
  attrs: Record<string, unknown>;
  /** What a configurator needs to build the item and is not compared (e.g. a compiled ruleset). */
  payload?: unknown;
}

export interface GraphOp {
  op: "create" | "modify" | "delete";
  item: Item;
  /** Why: "missing", "changed: mtu", "not desired", "recreated with bridge:…". */
  reason: string;
}

export interface GraphPlan {
  ops: GraphOp[];
  /** Desired items that cannot be built because something they need is not desired. */
  blocked: { id: string; missing: string[] }[];
}

/** How items of one type are built; `modify` absent means a changed item is deleted and created again. */
export interface Configurator {
  create(item: Item): Promise<void>;
  modify?(item: Item, previous: Item): Promise<void>;
  delete(item: Item): Promise<void>;
}

function same(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  return stable(a) === stable(b);
}

export function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(",")}]`;
  if (v && typeof v === "object") {
    return `{${Object.keys(v as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

function changedKeys(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => stable(a[k]) !== stable(b[k]));
}

/** Items in an order where each comes after its dependencies (a cycle is broken by id order). */
export function topoOrder(items: Item[]): Item[] {
  const byId = new Map(items.map((i) => [i.id, i]));
  const out: Item[] = [];
  const state = new Map<string, 1 | 2>();
  const visit = (i: Item) => {
    if (state.get(i.id) === 2 || state.get(i.id) === 1) return;
    state.set(i.id, 1);
    for (const d of [...i.deps].sort()) {
      const dep = byId.get(d);
      if (dep) visit(dep);
    }
    state.set(i.id, 2);
    out.push(i);
  };
  for (const i of [...items].sort((a, b) => a.id.localeCompare(b.id))) visit(i);
  return out;
}

export function planGraph(desired: Item[], current: Item[], modifiable: (type: string) => boolean): GraphPlan {
  const want = new Map(desired.map((i) => [i.id, i]));
  const have = new Map(current.map((i) => [i.id, i]));

  // Desired items whose dependencies are not desired (transitively) cannot be built.
  const blocked: GraphPlan["blocked"] = [];
  const buildable = new Map<string, boolean>();
  const canBuild = (id: string, seen = new Set<string>()): boolean => {
    if (buildable.has(id)) return buildable.get(id)!;
    const item = want.get(id);
    if (!item || seen.has(id)) return false;
    seen.add(id);
    const ok = item.deps.every((d) => canBuild(d, seen));
    buildable.set(id, ok);
    return ok;
  };
  for (const item of desired) {
    if (!canBuild(item.id)) blocked.push({ id: item.id, missing: item.deps.filter((d) => !canBuild(d)) });
  }

  // Deleted: not desired, not buildable, or changed in a way that needs a rebuild; and, transitively,
  // whatever existing item depends on a deleted one (it goes with it).
  const deleted = new Map<string, string>();
  for (const [id, cur] of have) {
    const w = want.get(id);
    if (!w || !buildable.get(id)) deleted.set(id, w ? "blocked" : "not desired");
    else if (!same(w.attrs, cur.attrs) && !modifiable(w.type)) deleted.set(id, `changed: ${changedKeys(w.attrs, cur.attrs).join(", ")}`);
  }
  for (let grew = true; grew; ) {
    grew = false;
    for (const [id, cur] of have) {
      if (deleted.has(id)) continue;
      const dep = cur.deps.find((d) => deleted.has(d));
      if (dep) {
        deleted.set(id, `goes with ${dep}`);
        grew = true;
      }
    }
  }

  const ops: GraphOp[] = [];
  const deleteOrder = topoOrder([...deleted.keys()].map((id) => have.get(id)!)).reverse();
  for (const item of deleteOrder) ops.push({ op: "delete", item, reason: deleted.get(item.id)! });

  const recreated = new Set(deleted.keys());
  for (const item of topoOrder(desired.filter((i) => buildable.get(i.id)))) {
    const cur = have.get(item.id);
    if (!cur || recreated.has(item.id)) {
      ops.push({ op: "create", item, reason: cur ? `recreated (${deleted.get(item.id)})` : "missing" });
    } else if (!same(item.attrs, cur.attrs)) {
      ops.push({ op: "modify", item, reason: `changed: ${changedKeys(item.attrs, cur.attrs).join(", ")}` });
    }
  }
  return { ops, blocked };
}

export interface OpResult {
  op: GraphOp;
  error: string | null;
  /** Not run because an item it needs failed. */
  skipped: boolean;
}

/**
 * Runs the operations in order. A failed create or modify skips every later operation on an item that
 * depends on it (directly or not); deletes always run (they only ever make the device hold less).
 */
export async function runGraph(ops: GraphOp[], configurators: Record<string, Configurator>, current: Item[], signal?: AbortSignal): Promise<OpResult[]> {
  const prev = new Map(current.map((i) => [i.id, i]));
  const failed = new Set<string>();
  const results: OpResult[] = [];
  for (const op of ops) {
    if (signal?.aborted) break;
    const c = configurators[op.item.type];
    if (op.op !== "delete" && op.item.deps.some((d) => failed.has(d))) {
      failed.add(op.item.id);
      results.push({ op, error: `not built: ${op.item.deps.filter((d) => failed.has(d)).join(", ")} failed`, skipped: true });
      continue;
    }
    try {
      if (!c) throw new Error(`no configurator for items of type ${op.item.type}`);
      if (op.op === "create") await c.create(op.item);
      else if (op.op === "modify") await c.modify!(op.item, prev.get(op.item.id)!);
      else await c.delete(op.item);
      results.push({ op, error: null, skipped: false });
    } catch (e) {
      if (op.op !== "delete") failed.add(op.item.id);
      results.push({ op, error: (e as Error).message, skipped: false });
    }
  }
  return results;
}
