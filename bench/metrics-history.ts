// The metrics history (store/metrics-history.ts), on a store file in a temp directory, with an injected clock:
//   - GET /metrics/history's query for 7 days of one app (the store's series()) vs a plain SELECT count(*) over the
//     same rows, in the same run;
//   - the store's growth per app per day (MiB), through the sampler's own path (record + maintain every 10 s), vs the
//     same samples kept the way evebox kept them before (one row per value in an indexed journal, no roll-up).
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MetricPoint } from "../src/store/metrics-history.ts";
import { Store } from "../src/store/store.ts";
import { HistorySampler } from "../src/telemetry/history.ts";
import { sampleDevice } from "../src/telemetry/metrics.ts";
import { readFileSync } from "node:fs";
import { median, Report } from "./report.ts";

const DAY = 86_400_000;
const S = 10_000;
const APPS = Number(process.env.BENCH_HISTORY_APPS ?? 20);
const DAYS = Number(process.env.BENCH_HISTORY_DAYS ?? 31);
const QUERY_RUNS = Number(process.env.BENCH_HISTORY_RUNS ?? 200);
const MiB = 1024 * 1024;

const dir = mkdtempSync(join(tmpdir(), "evebox-bench-history-"));
const report = new Report(`metrics history (${APPS} apps and the device at their steady state; one app sampled every 10 s for ${DAYS} days)`);

const point = (t: number): MetricPoint => ({
  cpu: (t / S) % 10_000,
  memoryBytes: 64 * MiB + ((t / S) % 1000) * 4096,
  diskReadBps: (t / S) % 5000,
  diskWriteBps: (t / S) % 7000,
  netRxBps: (t / S) % 90_000,
  netTxBps: (t / S) % 30_000,
  diskUsedBytes: null,
});

/** Bytes in use by the database file (pages not on the free list), after a checkpoint. */
function usedBytes(db: Database): number {
  db.run("PRAGMA wal_checkpoint(TRUNCATE)");
  const q = (p: string) => Object.values(db.query(`PRAGMA ${p}`).get() as Record<string, number>)[0]!;
  return (q("page_count") - q("freelist_count")) * q("page_size");
}

try {
  // ---- growth per app per day: the sampler's path on an injected clock
  const grow = Store.open(join(dir, "grow.db"));
  const T0 = Date.UTC(2026, 0, 1);
  const sizes: number[] = [usedBytes(grow.sqlite)];
  for (let d = 0; d < DAYS; d++) {
    for (let h = 0; h < 24; h++) {
      grow.history.batch(() => {
        for (let t = T0 + d * DAY + h * 3_600_000, end = t + 3_600_000; t < end; t += S) {
          grow.history.record("7e000000-0000-4000-8000-000000000001", t, point(t));
          grow.history.maintain(t);
        }
      });
    }
    sizes.push(usedBytes(grow.sqlite));
  }
  const rows = grow.history.stats().rows;
  grow.close();
  // The same day of samples as the journal evebox had before (one row per value, id + index, no roll-up).
  const old = new Database(join(dir, "journal.db"));
  old.run("PRAGMA journal_mode = WAL");
  old.run("CREATE TABLE metrics (id integer PRIMARY KEY AUTOINCREMENT NOT NULL, ts integer NOT NULL, object_kind text NOT NULL, object_id text NOT NULL, name text NOT NULL, value integer NOT NULL)");
  old.run("CREATE INDEX metrics_object ON metrics (object_kind, object_id, name, id)");
  const before = usedBytes(old);
  const ins = old.prepare("INSERT INTO metrics (ts, object_kind, object_id, name, value) VALUES (?, 'app', '7e000000-0000-4000-8000-000000000001', ?, ?)");
  const names = ["cpu", "memory_bytes", "disk_read_bps", "disk_write_bps", "net_rx_bps", "net_tx_bps"] as const;
  old.transaction(() => {
    for (let t = T0; t < T0 + DAY; t += S) {
      const p = point(t);
      const v = [p.cpu, p.memoryBytes, p.diskReadBps, p.diskWriteBps, p.netRxBps, p.netTxBps];
      for (let i = 0; i < names.length; i++) ins.run(t, names[i]!, v[i]!);
    }
  })();
  const journalDay = usedBytes(old) - before;
  old.close();

  const firstDay = sizes[1]! - sizes[0]!;
  const toBound = (sizes[Math.min(30, DAYS)]! - sizes[0]!) / Math.min(30, DAYS);
  const afterBound = DAYS > 30 ? (sizes[DAYS]! - sizes[30]!) / (DAYS - 30) : NaN;
  const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
  report.add({ what: "store growth per app, first day (fills the 1 h and 24 h windows)", value: firstDay / MiB, unit: "MiB", baseline: { what: "the same samples as the old journal", value: journalDay / MiB }, aim: { on: "ratio", op: "<=", limit: 0.5 }, note: kib(firstDay) });
  report.add({ what: "store growth per app per day, days 1–30 (average)", value: toBound / MiB, unit: "MiB", baseline: { what: "the same samples as the old journal", value: journalDay / MiB }, aim: { on: "ratio", op: "<=", limit: 0.1 }, note: kib(toBound) });
  if (DAYS > 30) report.add({ what: "store growth per app per day after 30 days (bounded)", value: afterBound / MiB, unit: "MiB", note: `${kib(afterBound)}: the 30-day window is full, rows age out as fast as they come` });
  report.add({ what: `rows per app at ${DAYS} days`, value: rows, unit: "rows", aim: { on: "value", op: "<=", limit: 360 + 1440 + 4320 + 6 }, note: `${((sizes[DAYS]! - sizes[0]!) / MiB).toFixed(2)} MiB in all` });

  // ---- 7 days of one app: the history query vs a plain count over the same rows
  const store = Store.open(join(dir, "query.db"));
  const now = T0 + 40 * DAY;
  const objects = ["device", ...Array.from({ length: APPS }, (_, i) => `7e000000-0000-4000-8000-${String(i + 1).padStart(12, "0")}`)];
  // The steady state of each object, written directly (days of sampling per object would take minutes): 30 days
  // of 10-minute averages, 24 h of minutes, 1 h of samples.
  const put = store.sqlite.prepare(
    "INSERT INTO metric_points (tier, object, ts, cpu, memory_bytes, disk_read_bps, disk_write_bps, net_rx_bps, net_tx_bps, disk_used_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
  );
  store.sqlite.transaction(() => {
    for (const o of objects) {
      for (const [tier, step, keep] of [
        [2, 600_000, 30 * DAY],
        [1, 60_000, DAY],
        [0, S, 3_600_000],
      ] as const) {
        const from = Math.floor((now - keep) / step) * step;
        for (let t = from; t < now - (tier === 0 ? 0 : step); t += step) {
          const p = point(t);
          put.run(tier, o, t, p.cpu, p.memoryBytes, p.diskReadBps, p.diskWriteBps, p.netRxBps, p.netTxBps, o === "device" ? 5e9 : null);
        }
      }
    }
  })();
  const app = objects[1]!;
  const count = store.sqlite.prepare("SELECT count(*) AS n FROM metric_points WHERE tier = 2 AND object = ? AND ts >= ? AND ts <= ?");
  const plain = store.sqlite.prepare("SELECT * FROM metric_points WHERE tier = 2 AND object = ? AND ts >= ? AND ts <= ?");
  let points = 0;
  const timed = (f: () => void) => {
    const xs: number[] = [];
    for (let i = 0; i < QUERY_RUNS; i++) {
      const t = performance.now();
      f();
      xs.push(performance.now() - t);
    }
    return median(xs);
  };
  // Warm both (page cache, statement caches), then interleave nothing: each is timed over the same rows.
  timed(() => store.history.series(app, "7d", now));
  const baseline = timed(() => count.get(app, now - 7 * DAY, now));
  const plainMs = timed(() => plain.all(app, now - 7 * DAY, now));
  const query = timed(() => (points = store.history.series(app, "7d", now).ts.length));
  // Also with the answer as the console sends it (JSON text).
  const json = timed(() => JSON.stringify(store.history.series(app, "7d", now)));
  report.add({ what: `history query, 7 days of one app (${points} points)`, value: query, unit: "ms", baseline: { what: "SELECT count(*) over its rows", value: baseline }, aim: { on: "value", op: "<=", limit: 20 } });
  report.add({ what: "the same query", value: query, unit: "ms", baseline: { what: "SELECT * of its tier-2 rows (objects)", value: plainMs }, aim: { on: "ratio", op: "<=", limit: 3 } });
  report.add({ what: "the same, as JSON text", value: json, unit: "ms", baseline: { what: "SELECT count(*) over its rows", value: baseline }, aim: { on: "value", op: "<=", limit: 25 } });

  // ---- one tick of the sampler at idle (the device, no app running): /proc read, one point written, roll-up checked
  let clock = now;
  const sampler = new HistorySampler({ sink: store.history, sources: { device: () => sampleDevice({ mounts: [dir] }), apps: async () => [], cpus: 1 }, clock: () => (clock += S) });
  const ticks: number[] = [];
  for (let i = 0; i < 300; i++) {
    const t = performance.now();
    await sampler.tick();
    ticks.push(performance.now() - t);
  }
  const procOnly = timed(() => {
    for (const f of ["stat", "meminfo", "diskstats", "net/dev"]) readFileSync(`/proc/${f}`, "utf8");
  });
  report.add({ what: "one sampler tick at idle (device only)", value: median(ticks), unit: "ms", baseline: { what: "reading its four /proc files", value: procOnly }, aim: { on: "value", op: "<=", limit: 2 }, note: "every 10 s" });
  store.close();
  report.print();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
