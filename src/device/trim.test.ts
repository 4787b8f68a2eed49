import { describe, expect, test } from "bun:test";
import { TrimUnsupported, type TrimResult } from "../lib/trim.ts";
import { TrimPolicy } from "./trim.ts";

const figures = (rss: number): TrimResult["before"] => ({ rssKiB: rss, fileKiB: rss / 2, anonKiB: rss / 2 });

function policy(o: { settleMs: number; maxWaitMs: number; minIntervalMs?: number; fail?: Error }) {
  const calls: number[] = [];
  const lines: string[] = [];
  const t0 = performance.now();
  const p = new TrimPolicy({
    quiet: async () => {},
    say: (l) => lines.push(l),
    settleMs: o.settleMs,
    maxWaitMs: o.maxWaitMs,
    minIntervalMs: o.minIntervalMs ?? 0,
    trim: async () => {
      calls.push(performance.now() - t0);
      if (o.fail) throw o.fail;
      return { before: figures(80 * 1024), after: figures(60 * 1024), advised: 1 << 20 };
    },
  });
  return { p, calls, lines };
}

describe("TrimPolicy", () => {
  test("trims once a burst has settled: each poke moves it later", async () => {
    const { p, calls, lines } = policy({ settleMs: 60, maxWaitMs: 10_000 });
    p.poke();
    await Bun.sleep(30);
    p.poke();
    await Bun.sleep(40);
    expect(calls).toHaveLength(0); // 70 ms after the first poke, 40 after the last
    await Bun.sleep(60);
    expect(calls).toHaveLength(1);
    expect(calls[0]!).toBeGreaterThanOrEqual(85);
    expect(lines[0]).toBe("evebox: start-up pages returned to the kernel: RSS 80.0 → 60.0 MiB (the binary's pages 40.0 → 30.0)");
    expect(p.metricsLines()).toContain("evebox_trims_total 1");
    expect(p.metricsLines()).toContain(`evebox_trim_resident_bytes{when="after"} ${60 * 1024 * 1024}`);
    await p.stop();
  });

  test("pokes that never stop do not hold it off past maxWaitMs", async () => {
    const { p, calls } = policy({ settleMs: 50, maxWaitMs: 120 });
    for (let i = 0; i < 10; i++) {
      p.poke();
      await Bun.sleep(20);
    }
    expect(calls.length).toBeGreaterThanOrEqual(1);
    expect(calls[0]!).toBeLessThan(190);
    await p.stop();
  });

  test("at most once every minIntervalMs: a poke soon after a trim waits for the interval", async () => {
    const { p, calls } = policy({ settleMs: 10, maxWaitMs: 100, minIntervalMs: 150 });
    p.poke();
    await Bun.sleep(40);
    expect(calls).toHaveLength(1);
    p.poke();
    await Bun.sleep(60);
    expect(calls).toHaveLength(1); // 10 ms would have settled it, the interval holds it
    await Bun.sleep(120);
    expect(calls).toHaveLength(2);
    expect(calls[1]! - calls[0]!).toBeGreaterThanOrEqual(145);
    await p.stop();
  });

  test("a kernel without MADV_PAGEOUT: said once, then no more trims", async () => {
    const { p, calls, lines } = policy({ settleMs: 10, maxWaitMs: 100, fail: new TrimUnsupported("the kernel has no MADV_PAGEOUT (Linux 5.4 or later)") });
    p.poke();
    await Bun.sleep(40);
    p.poke();
    await Bun.sleep(40);
    expect(calls).toHaveLength(1);
    expect(lines).toEqual(["evebox: start-up pages are not returned to the kernel: the kernel has no MADV_PAGEOUT (Linux 5.4 or later)"]);
    expect(p.metricsLines()).toContain("evebox_trims_total 0");
  });

  test("stopped: a pending trim does not run", async () => {
    const { p, calls } = policy({ settleMs: 20, maxWaitMs: 100 });
    p.poke();
    await p.stop();
    await Bun.sleep(50);
    expect(calls).toHaveLength(0);
  });
});
