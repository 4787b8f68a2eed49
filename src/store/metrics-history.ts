// The metrics history behind the console's graphs: samples (tier 0), their 1-minute averages (tier 1) and
// 10-minute averages (tier 2) in one WITHOUT ROWID table keyed (tier, object, ts). Everything here is a prepared
// statement run on the caller's clock: the sampler (telemetry/history.ts) records, rolls up and prunes on its
// one timer; the console reads series. The size is bounded by the number of objects it keeps (README.md).
import type { Database, Statement } from "bun:sqlite";

/** One sample or average of one object. Rates are per second; null where not known (a first sample). */
export interface MetricPoint {
  /** Hundredths of a percent of the whole device's CPU (all CPUs busy = 10000). */
  cpu: number | null;
  memoryBytes: number | null;
  diskReadBps: number | null;
  diskWriteBps: number | null;
  netRxBps: number | null;
  netTxBps: number | null;
  /** The device's data filesystem in use; null for apps. */
  diskUsedBytes: number | null;
}

const COLUMNS = ["cpu", "memory_bytes", "disk_read_bps", "disk_write_bps", "net_rx_bps", "net_tx_bps", "disk_used_bytes"] as const;

/** How long each tier keeps its rows, and the bucket of its averages (tier 0: one row per sample). */
export const TIERS = [
  { tier: 0, bucketMs: 0, keepMs: 3_600_000 },
  { tier: 1, bucketMs: 60_000, keepMs: 86_400_000 },
  { tier: 2, bucketMs: 600_000, keepMs: 30 * 86_400_000 },
] as const;

export type HistoryRange = "1h" | "24h" | "7d";
export const RANGES: Record<HistoryRange, { ms: number; tier: 0 | 1 | 2 }> = {
  "1h": { ms: 3_600_000, tier: 0 },
  "24h": { ms: 86_400_000, tier: 1 },
  "7d": { ms: 7 * 86_400_000, tier: 2 },
};

/** A series in columns (what uPlot draws): `ts[i]` in ms with each field's value at i; CPU in percent. */
export interface HistorySeries {
  ts: number[];
  cpuPercent: (number | null)[];
  memoryBytes: (number | null)[];
  diskReadBps: (number | null)[];
  diskWriteBps: (number | null)[];
  netRxBps: (number | null)[];
  netTxBps: (number | null)[];
  diskUsedBytes: (number | null)[];
}
const SERIES_FIELDS = ["cpuPercent", "memoryBytes", "diskReadBps", "diskWriteBps", "netRxBps", "netTxBps", "diskUsedBytes"] as const;

export interface HistoryStats {
  rows: number;
  objects: number;
  maxObjects: number;
  /** Samples not kept: an object over the cap, or a write that failed. */
  dropped: number;
}

/** Objects kept (the device and apps) unless the store is opened with another cap. */
export const DEFAULT_MAX_OBJECTS = 65;

export class MetricsHistory {
  /** Each object with rows, and the time of its last sample (it is forgotten when that is older than tier 2 keeps). */
  private readonly objects = new Map<string, number>();
  private dropped = 0;
  /** End of the last bucket averaged into tier 1 and tier 2. */
  private readonly rolled: [number, number, number] = [0, 0, 0];
  private loaded = false;
  private readonly insert: Statement;
  private readonly rollUps: Statement[];
  private readonly pruneObject: Statement;
  private readonly select: Statement[];
  private readonly lastTs: Statement;
  private lastPruneMs = 0;

  constructor(
    private readonly sqlite: Database,
    readonly maxObjects: number = DEFAULT_MAX_OBJECTS,
  ) {
    const cols = COLUMNS.join(", ");
    this.insert = sqlite.prepare(`INSERT OR REPLACE INTO metric_points (tier, object, ts, ${cols}) VALUES (0, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    // One statement per tier averages every object's closed buckets at once.
    const avg = COLUMNS.map((c) => `CAST(round(avg(${c})) AS INTEGER)`).join(", ");
    this.rollUps = [1, 2].map((t) => {
      const b = TIERS[t]!.bucketMs;
      return sqlite.prepare(
        `INSERT OR REPLACE INTO metric_points (tier, object, ts, ${cols})
         SELECT ${t}, object, (ts / ${b}) * ${b} AS bucket, ${avg} FROM metric_points
         WHERE tier = ${t - 1} AND ts >= ?1 AND ts < ?2 GROUP BY object, bucket`,
      );
    });
    this.pruneObject = sqlite.prepare("DELETE FROM metric_points WHERE tier = ? AND object = ? AND ts < ?");
    this.select = [0, 1, 2].map((t) => sqlite.prepare(`SELECT ts, ${cols} FROM metric_points WHERE tier = ${t} AND object = ? AND ts >= ? AND ts <= ? ORDER BY ts`));
    this.lastTs = sqlite.prepare("SELECT MAX(ts) AS ts FROM metric_points WHERE tier = ?");
  }

  /** What a previous run left: the objects with rows, and how far they were averaged. */
  private load(): void {
    if (this.loaded) return;
    this.loaded = true;
    for (const r of this.sqlite.query("SELECT object, MAX(ts) AS ts FROM metric_points GROUP BY object").all() as { object: string; ts: number }[]) {
      this.objects.set(r.object, r.ts);
    }
    for (const t of [1, 2] as const) {
      const last = (this.lastTs.get(t) as { ts: number | null }).ts;
      if (last !== null) this.rolled[t] = last + TIERS[t].bucketMs;
    }
  }

  /** Runs `f` (records of one tick, a roll-up) in one transaction: one commit instead of one per row. */
  batch<T>(f: () => T): T {
    return this.sqlite.transaction(f)();
  }

  /** Keeps one sample; false when it was dropped (and counted): a new object beyond the cap, or a failed write. */
  record(object: string, ts: number, p: MetricPoint): boolean {
    this.load();
    if (!this.objects.has(object) && this.objects.size >= this.maxObjects) {
      this.dropped++;
      return false;
    }
    try {
      this.insert.run(object, ts, p.cpu, p.memoryBytes, p.diskReadBps, p.diskWriteBps, p.netRxBps, p.netTxBps, p.diskUsedBytes);
    } catch {
      this.dropped++;
      return false;
    }
    this.objects.set(object, ts);
    return true;
  }

  /**
   * Averages the buckets that closed by `now` into the next tier and, at most once a minute, removes what each
   * tier no longer keeps. Cheap when nothing closed: two comparisons.
   */
  maintain(now: number): void {
    this.load();
    for (const t of [1, 2] as const) {
      const b = TIERS[t].bucketMs;
      const to = Math.floor(now / b) * b;
      // Nothing averaged yet: start at the oldest bucket the tier below still has.
      const from = this.rolled[t] || this.oldest(t - 1, b);
      if (from === null || to <= from) continue;
      this.rollUps[t - 1]!.run(from, to);
      this.rolled[t] = to;
    }
    if (now - this.lastPruneMs >= 60_000) this.prune(now);
  }

  private oldest(tier: number, bucketMs: number): number | null {
    const r = this.sqlite.query("SELECT MIN(ts) AS ts FROM metric_points WHERE tier = ?").get(tier) as { ts: number | null };
    return r.ts === null ? null : Math.floor(r.ts / bucketMs) * bucketMs;
  }

  /** Removes rows older than their tier keeps, object by object (each a seek on the key). */
  prune(now: number): void {
    this.load();
    this.lastPruneMs = now;
    this.sqlite.transaction(() => {
      for (const [object, last] of this.objects) {
        for (const t of TIERS) this.pruneObject.run(t.tier, object, now - t.keepMs);
        if (last < now - TIERS[2].keepMs) this.objects.delete(object);
      }
    })();
  }

  /**
   * The series of `object` over `range` ending at `now`: the range's tier, then the finer tiers for the time
   * after its last average (the minutes not averaged yet), so the newest samples always show.
   */
  series(object: string, range: HistoryRange, now: number): HistorySeries {
    const out: HistorySeries = { ts: [], cpuPercent: [], memoryBytes: [], diskReadBps: [], diskWriteBps: [], netRxBps: [], netTxBps: [], diskUsedBytes: [] };
    let from = now - RANGES[range].ms;
    for (let t = RANGES[range].tier; t >= 0; t--) {
      const rows = this.select[t]!.values(object, from, now) as number[][];
      for (const r of rows) {
        out.ts.push(r[0]!);
        out.cpuPercent.push(r[1] == null ? null : r[1] / 100);
        for (let i = 1; i < SERIES_FIELDS.length; i++) out[SERIES_FIELDS[i]!].push(r[i + 1] ?? null);
      }
      const last = rows.at(-1);
      if (last) from = last[0]! + (TIERS[t]!.bucketMs || 1);
    }
    return out;
  }

  stats(): HistoryStats {
    this.load();
    const rows = (this.sqlite.query("SELECT COUNT(*) AS n FROM metric_points").get() as { n: number }).n;
    return { rows, objects: this.objects.size, maxObjects: this.maxObjects, dropped: this.dropped };
  }

  /** Samples dropped since start (cheap: for /metrics). */
  get droppedCount(): number {
    return this.dropped;
  }
}
