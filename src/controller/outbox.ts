// Everything sent to the controller goes through here first, so nothing is lost to a restart and an offline
// week costs a bounded amount of disk. Oldest first; bounded in bytes: when over the bound, metrics and logs
// are dropped oldest-first and counted; info is never dropped, and a newer info for an object replaces the
// unsent older one (the controller only needs an object's latest state).
import type { Statement } from "bun:sqlite";
import type { Store } from "../store/store.ts";

export type OutboxKind = "info" | "metrics" | "logs" | "flowlog";
const DROPPABLE: OutboxKind[] = ["metrics", "logs", "flowlog"];

export interface OutboxMessage {
  id: number;
  kind: OutboxKind;
  key: string | null;
  path: string;
  body: Uint8Array;
  size: number;
  createdAt: Date;
  attempts: number;
}

export interface OutboxCounters {
  /** Dropped to keep the bound, per kind. */
  dropped: Record<"metrics" | "logs" | "flowlog", number>;
  droppedBytes: number;
  lastDroppedAt: string | null;
  /** Unsent info replaced by a newer info for the same object. */
  superseded: number;
  /** Refused by the controller for good (4xx) and so removed. */
  rejected: number;
  sent: number;
  sentBytes: number;
}

export interface OutboxDepth {
  messages: number;
  bytes: number;
  maxBytes: number;
  oldest: string | null;
  byKind: Record<OutboxKind, number>;
}

const COUNTERS_KEY = "outbox.counters";

export class Outbox {
  private bytes: number;
  private counters: OutboxCounters;
  private readonly q: {
    insert: Statement;
    deleteKey: Statement;
    head: Statement;
    deleteId: Statement;
    attempt: Statement;
    oldestDroppable: Statement;
    saveCounters: Statement;
  };

  constructor(
    private readonly store: Store,
    readonly maxBytes: number,
  ) {
    const db = store.sqlite;
    this.q = {
      insert: db.prepare("INSERT INTO controller_outbox (kind, key, path, body, size, created_at, attempts) VALUES (?, ?, ?, ?, ?, ?, 0)"),
      deleteKey: db.prepare("DELETE FROM controller_outbox WHERE key = ? AND kind = 'info' RETURNING size"),
      head: db.prepare("SELECT id, kind, key, path, body, size, created_at AS createdAt, attempts FROM controller_outbox ORDER BY id LIMIT 1"),
      deleteId: db.prepare("DELETE FROM controller_outbox WHERE id = ? RETURNING size"),
      attempt: db.prepare("UPDATE controller_outbox SET attempts = attempts + 1 WHERE id = ?"),
      oldestDroppable: db.prepare(`SELECT id, kind, size FROM controller_outbox WHERE kind IN ('metrics', 'logs', 'flowlog') ORDER BY id LIMIT ?`),
      saveCounters: db.prepare("INSERT INTO controller_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"),
    };
    this.bytes = (db.query("SELECT COALESCE(SUM(size), 0) AS n FROM controller_outbox").get() as { n: number }).n;
    const saved = db.query("SELECT value FROM controller_state WHERE key = ?").get(COUNTERS_KEY) as { value: string } | null;
    this.counters = { ...emptyCounters(), ...(saved ? (JSON.parse(saved.value) as Partial<OutboxCounters>) : {}) };
  }

  /** Queues one message; returns how many older messages were dropped or replaced to make room. */
  enqueue(kind: OutboxKind, path: string, body: Uint8Array, key: string | null = null, at = new Date()): { dropped: number } {
    let dropped = 0;
    this.store.sqlite.transaction(() => {
      if (kind === "info" && key) {
        for (const r of this.q.deleteKey.all(key) as { size: number }[]) {
          this.bytes -= r.size;
          this.counters.superseded++;
        }
      }
      this.q.insert.run(kind, key, path, body, body.byteLength, at.getTime());
      this.bytes += body.byteLength;
      dropped = this.enforceBound(at);
      this.saveCounters();
    })();
    return { dropped };
  }

  private enforceBound(at: Date): number {
    let dropped = 0;
    while (this.bytes > this.maxBytes) {
      const victims = this.q.oldestDroppable.all(64) as { id: number; kind: "metrics" | "logs" | "flowlog"; size: number }[];
      if (victims.length === 0) break; // only info left: it is never dropped
      for (const v of victims) {
        if (this.bytes <= this.maxBytes) break;
        this.q.deleteId.run(v.id);
        this.bytes -= v.size;
        this.counters.dropped[v.kind]++;
        this.counters.droppedBytes += v.size;
        this.counters.lastDroppedAt = at.toISOString();
        dropped++;
      }
    }
    return dropped;
  }

  /** The oldest message, or null when the outbox is empty. */
  peek(): OutboxMessage | null {
    const r = this.q.head.get() as (Omit<OutboxMessage, "createdAt" | "body"> & { createdAt: number; body: Uint8Array }) | null;
    if (!r) return null;
    return { ...r, createdAt: new Date(r.createdAt) };
  }

  /** The controller accepted it. */
  ack(id: number): void {
    const r = this.q.deleteId.get(id) as { size: number } | null;
    if (!r) return; // replaced by a newer info while it was in flight
    this.bytes -= r.size;
    this.counters.sent++;
    this.counters.sentBytes += r.size;
    this.saveCounters();
  }

  /** The controller refused it for good (a 4xx other than an authentication fault): keeping it would block the queue. */
  reject(id: number): void {
    const r = this.q.deleteId.get(id) as { size: number } | null;
    if (!r) return;
    this.bytes -= r.size;
    this.counters.rejected++;
    this.saveCounters();
  }

  /** A try that failed and will be repeated. */
  attempted(id: number): void {
    this.q.attempt.run(id);
  }

  depth(): OutboxDepth {
    const rows = this.store.sqlite.query("SELECT kind, COUNT(*) AS n FROM controller_outbox GROUP BY kind").all() as { kind: OutboxKind; n: number }[];
    const byKind: Record<OutboxKind, number> = { info: 0, metrics: 0, logs: 0, flowlog: 0 };
    let messages = 0;
    for (const r of rows) {
      byKind[r.kind] = r.n;
      messages += r.n;
    }
    const oldest = this.store.sqlite.query("SELECT MIN(created_at) AS t FROM controller_outbox").get() as { t: number | null };
    return { messages, bytes: this.bytes, maxBytes: this.maxBytes, oldest: oldest.t ? new Date(oldest.t).toISOString() : null, byKind };
  }

  counts(): OutboxCounters {
    return structuredClone(this.counters);
  }

  get totalDropped(): number {
    return DROPPABLE.reduce((n, k) => n + this.counters.dropped[k as "metrics"], 0);
  }

  private saveCounters(): void {
    this.q.saveCounters.run(COUNTERS_KEY, JSON.stringify(this.counters));
  }
}

function emptyCounters(): OutboxCounters {
  return { dropped: { metrics: 0, logs: 0, flowlog: 0 }, droppedBytes: 0, lastDroppedAt: null, superseded: 0, rejected: 0, sent: 0, sentBytes: 0 };
}
