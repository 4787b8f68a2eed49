// The folder-level import graph holds its shape: no cycles, nothing below device/ imports it, model/ stands alone.
import { describe, expect, test } from "bun:test";
import { cycles, importGraph, violations } from "../../scripts/import-graph.ts";

describe("import graph", () => {
  const graph = importGraph();
  test("has no cycles between src/ folders", () => {
    expect(cycles(graph)).toEqual([]);
  });
  test("no part below device/ imports it; model/ imports nothing", () => {
    expect(violations(graph)).toEqual({ upward: [], model: [] });
  });
  test("the checker sees a cycle and an upward import when there is one", () => {
    const g = new Map([
      ["config", new Map([["network", ["a.ts"]], ["device", ["b.ts"]]])],
      ["network", new Map([["config", ["c.ts"]]])],
      ["model", new Map([["store", ["d.ts"]]])],
    ]);
    expect(cycles(g)).toEqual([["config", "network"]]);
    expect(violations(g)).toEqual({ upward: ["config"], model: ["store"] });
  });
});
