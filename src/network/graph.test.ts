import { describe, expect, test } from "bun:test";
import { type Configurator, type Item, planGraph, runGraph, topoOrder } from "./graph.ts";

const item = (id: string, deps: string[] = [], attrs: Record<string, unknown> = {}): Item => ({ id, type: id.split(":")[0]!, deps, attrs });
const MOD = new Set(["bridge", "dnsmasq"]);
const ops = (d: Item[], c: Item[]) => planGraph(d, c, (t) => MOD.has(t)).ops.map((o) => `${o.op} ${o.item.id}`);

describe("planGraph", () => {
  const bridge = item("bridge:eb1", [], { mtu: 1500 });
  const addr = item("addr:eb1:10.0.0.1/24", ["bridge:eb1"]);
  const dns = item("dnsmasq:eb1", ["addr:eb1:10.0.0.1/24"], { conf: "a" });
  const fw = item("firewall", [], { hash: "x" });

  test("builds from nothing in dependency order", () => {
    expect(ops([dns, fw, addr, bridge], [])).toEqual(["create bridge:eb1", "create addr:eb1:10.0.0.1/24", "create dnsmasq:eb1", "create firewall"]);
  });

  test("nothing to do when all is as desired (adoption after a restart)", () => {
    expect(ops([bridge, addr, dns, fw], [fw, dns, addr, bridge])).toEqual([]);
  });

  test("removes what is no longer desired, dependents first", () => {
    expect(ops([fw], [bridge, addr, dns, fw])).toEqual(["delete dnsmasq:eb1", "delete addr:eb1:10.0.0.1/24", "delete bridge:eb1"]);
  });

  test("modifies in place what can be, recreates what cannot (with what depends on it)", () => {
    expect(ops([{ ...bridge, attrs: { mtu: 9000 } }, addr, dns], [bridge, addr, dns])).toEqual(["modify bridge:eb1"]);
    const route = item("route:1", ["addr:eb1:10.0.0.1/24"], { via: "a" });
    const rule = item("rule:1", ["route:1"], {});
    expect(ops([bridge, addr, { ...route, attrs: { via: "b" } }, rule], [bridge, addr, route, rule])).toEqual(["delete rule:1", "delete route:1", "create route:1", "create rule:1"]);
  });

  test("an item whose dependency is not desired is blocked, and an existing one is removed", () => {
    const p = planGraph([addr, dns], [addr, dns], () => true);
    expect(p.blocked.map((b) => b.id).sort()).toEqual(["addr:eb1:10.0.0.1/24", "dnsmasq:eb1"]);
    expect(p.ops.map((o) => `${o.op} ${o.item.id}`)).toEqual(["delete dnsmasq:eb1", "delete addr:eb1:10.0.0.1/24"]);
  });

  test("topoOrder survives a cycle", () => {
    expect(topoOrder([item("a:1", ["b:1"]), item("b:1", ["a:1"])]).map((i) => i.id).sort()).toEqual(["a:1", "b:1"]);
  });
});

describe("runGraph", () => {
  test("a failed create skips what depends on it; unrelated items are still built", async () => {
    const done: string[] = [];
    const ok: Configurator = { create: async (i) => void done.push(i.id), delete: async (i) => void done.push(`-${i.id}`) };
    const failing: Configurator = { create: async () => Promise.reject(new Error("no such device")), delete: async () => undefined };
    const plan = planGraph([item("bridge:eb1"), item("addr:eb1", ["bridge:eb1"]), item("firewall")], [], () => false);
    const results = await runGraph(plan.ops, { bridge: failing, addr: ok, firewall: ok }, []);
    expect(results.map((r) => [r.op.item.id, r.error, r.skipped])).toEqual([
      ["bridge:eb1", "no such device", false],
      ["addr:eb1", "not built: bridge:eb1 failed", true],
      ["firewall", null, false],
    ]);
    expect(done).toEqual(["firewall"]);
  });
});
