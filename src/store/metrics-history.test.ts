import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MetricPoint } from "./metrics-history.ts";
import { Store } from "./store.ts";

const dirs: string[] = [];
const stores: Store[] = [];
function open(metricObjects = 65, path?: string): Store {
  if (!path) {
    const d = mkdtempSync(join(tmpdir(), "evebox-history-"));
    dirs.push(d);
    path = join(d, "evebox.db");
  }
  const s = Store.open(path, { events: 100, logs: 100, metricObjects, configVersions: 5 });
  stores.push(s);
  return s;
}
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const point = (cpu: number | null, memoryBytes: number | null = 1000): MetricPoint => ({
  cpu,
  memoryBytes,
  diskReadBps: null,
  diskWriteBps: 10,
  netRxBps: 20,
  netTxBps: 30,
  diskUsedBytes: null,
});
const T0 = Date.UTC(2026, 0, 1); // a whole hour, so every bucket starts at a known time
const S = 10_000;
const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/** Samples `object` every 10 s from `from` to `to` (exclusive), maintaining as the sampler does. */
function sample(s: Store, object: string, from: number, to: number, value: (t: number) => number) {
  s.history.batch(() => {
    for (let t = from; t < to; t += S) {
      s.history.record(object, t, point(value(t)));
      s.history.maintain(t);
    }
  });
}
/** Days of 10 s samples, fast: maintained once a simulated minute (as often as roll-up has work), a commit an hour. */
function days(s: Store, object: string, from: number, n: number, cpu = 50) {
  for (let h = from; h < from + n * DAY; h += HOUR) {
    s.history.batch(() => {
      for (let t = h; t < h + HOUR; t += S) {
        s.history.record(object, t, point(cpu));
        if (t % MIN === 0) s.history.maintain(t);
      }
    });
  }
}
const rows = (s: Store, tier: number, object = "device") =>
  s.sqlite.query("SELECT ts, cpu, memory_bytes AS mem, disk_write_bps AS w FROM metric_points WHERE tier = ? AND object = ? ORDER BY ts").all(tier, object) as { ts: number; cpu: number | null; mem: number; w: number }[];

describe("metrics history", () => {
  test("closed minutes are averaged into tier 1, closed 10-minute buckets into tier 2", () => {
    const s = open();
    // cpu = the sample's second within the minute (0, 10, …, 50): each minute averages 25.
    sample(s, "device", T0, T0 + 20 * MIN, (t) => ((t - T0) % MIN) / 1000);
    s.history.maintain(T0 + 20 * MIN);
    const minutes = rows(s, 1);
    expect(minutes).toHaveLength(20);
    expect(minutes[0]).toEqual({ ts: T0, cpu: 25, mem: 1000, w: 10 });
    expect(minutes.map((r) => r.ts)).toEqual(Array.from({ length: 20 }, (_, i) => T0 + i * MIN));
    const tens = rows(s, 2);
    expect(tens.map((r) => r.ts)).toEqual([T0, T0 + 10 * MIN]);
    expect(tens.every((r) => r.cpu === 25)).toBe(true);
  });

  test("an average of nulls stays null (a rate not known yet is not a zero)", () => {
    const s = open();
    for (let t = T0; t < T0 + 2 * MIN; t += S) {
      s.history.record("device", t, point(t < T0 + MIN ? null : 40));
      s.history.maintain(t);
    }
    s.history.maintain(T0 + 2 * MIN);
    expect(rows(s, 1).map((r) => r.cpu)).toEqual([null, 40]);
  });

  test("each tier keeps its window: 1 h of samples, 24 h of minutes, 30 days of 10 minutes", () => {
    const s = open();
    days(s, "device", T0, 2);
    const now = T0 + 2 * DAY;
    s.history.maintain(now);
    s.history.prune(now);
    const samples = rows(s, 0);
    expect(samples.length).toBe(HOUR / S);
    expect(samples[0]!.ts).toBeGreaterThanOrEqual(now - HOUR);
    const minutes = rows(s, 1);
    expect(minutes.length).toBe(DAY / MIN);
    expect(minutes[0]!.ts).toBeGreaterThanOrEqual(now - DAY);
    expect(rows(s, 2).length).toBe((2 * DAY) / (10 * MIN));
    // 31 days on, the tier-2 rows are gone too, and the object with them.
    s.history.prune(now + 31 * DAY);
    expect(s.history.stats()).toMatchObject({ rows: 0, objects: 0 });
  });

  test("a new object beyond the cap is dropped and counted; the kept ones go on", () => {
    const s = open(3);
    for (const o of ["device", "app-a", "app-b"]) expect(s.history.record(o, T0, point(1))).toBe(true);
    expect(s.history.record("app-c", T0, point(1))).toBe(false);
    expect(s.history.record("app-c", T0 + S, point(1))).toBe(false);
    expect(s.history.record("app-a", T0 + S, point(1))).toBe(true);
    expect(s.history.stats()).toEqual({ rows: 4, objects: 3, maxObjects: 3, dropped: 2 });
    expect(s.history.series("app-c", "1h", T0 + S).ts).toEqual([]);
  });

  test("the rows per object stay bounded over 32 days of 10 s samples", { timeout: 60_000 }, () => {
    const s = open(65, ":memory:");
    days(s, "app-a", T0, 32, 5);
    const end = T0 + 32 * DAY;
    s.history.maintain(end);
    s.history.prune(end);
    // 360 samples + 1440 minutes + 4320 ten-minute averages: a 10 s sampler's bound per object.
    expect(s.history.stats().rows).toBe(360 + 1440 + 4320);
  });

  test("a series takes its range's tier, then the finer rows of the time not averaged yet", () => {
    const s = open();
    sample(s, "device", T0, T0 + 25 * MIN + 30_000, () => 7);
    const now = T0 + 25 * MIN + 30_000;
    const h = s.history.series("device", "1h", now);
    expect(h.ts.length).toBe((25 * MIN + 30_000) / S);
    expect(h.cpuPercent.every((c) => c === 0.07)).toBe(true);
    expect(h.netTxBps[0]).toBe(30);
    const d = s.history.series("device", "24h", now);
    // 25 closed minutes, then the samples of the open one (00:25:00–00:25:20).
    expect(d.ts.slice(0, 25)).toEqual(Array.from({ length: 25 }, (_, i) => T0 + i * MIN));
    expect(d.ts.slice(25)).toEqual([T0 + 25 * MIN, T0 + 25 * MIN + S, T0 + 25 * MIN + 2 * S]);
    const w = s.history.series("device", "7d", now);
    // 2 closed 10-minute buckets, the 5 minutes after them, the open minute's samples.
    expect(w.ts.length).toBe(2 + 5 + 3);
    expect(w.ts).toEqual([...w.ts].sort((a, b) => a - b));
    expect(s.history.series("other", "1h", now).ts).toEqual([]);
  });

  test("after a restart, roll-up continues where it stopped, and the objects count toward the cap", () => {
    const d = mkdtempSync(join(tmpdir(), "evebox-history-"));
    dirs.push(d);
    const path = join(d, "evebox.db");
    const a = open(2, path);
    sample(a, "device", T0, T0 + 3 * MIN + 20_000, () => 10);
    sample(a, "app-a", T0, T0 + S, () => 10);
    a.close();
    stores.splice(stores.indexOf(a), 1);
    const b = open(2, path);
    expect(b.history.record("app-b", T0 + 4 * MIN, point(1))).toBe(false);
    sample(b, "device", T0 + 4 * MIN, T0 + 6 * MIN, () => 30);
    b.history.maintain(T0 + 6 * MIN);
    // Minute 3 (samples before the restart) is averaged after it; minute 4 and 5 from the new run.
    expect(rows(b, 1).map((r) => [r.ts - T0, r.cpu])).toEqual([
      [0, 10],
      [MIN, 10],
      [2 * MIN, 10],
      [3 * MIN, 10],
      [4 * MIN, 30],
      [5 * MIN, 30],
    ]);
  });
});
