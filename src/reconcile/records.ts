// The reconciler's own bookkeeping per app and content tree, kept in the store so a restarted
// evebox knows which restart/purge counters it already acted on and what it loaded. Every workload kind
// keeps its apps' failures and crashes here, through the same backoff.
import { backoffDelay, type BackoffClock, type BackoffPolicy, systemClock } from "../lib/backoff.ts";
import type { Store } from "../store/store.ts";
import { type AppRecord, type ContentTreeRecord, newAppRecord } from "./observed.ts";

const APP = "reconcile.app";
const TREE = "reconcile.contentTree";

/** After a step that failed (create, start, fetch refused): 5 s, 10 s, 20 s … up to 10 min, ±20 %. */
export const RETRY_BACKOFF: BackoffPolicy = { baseMs: 5_000, maxMs: 600_000, jitter: [0.8, 1.2] };
/** Before the supervised restart of an app that exited while it should run: 1 s, 2 s, 4 s … up to 5 min. */
export const CRASH_BACKOFF: BackoffPolicy = { baseMs: 1_000, maxMs: 300_000 };

/** The clock and the backoff every workload kind's records are kept on (lib/backoff.ts). */
export interface RecordsTiming {
  /** Time and the jitter's random source (default: the system's). */
  clock?: BackoffClock;
  retry?: BackoffPolicy;
  crash?: BackoffPolicy;
}

/** An exit that ran less than this counts as one more crash in a row; a longer run starts the count again. */
export const CRASH_WINDOW_MS = 60_000;

/** Counts an exit of an app that should run: crashes in a row, and when the supervised restart may happen. */
export function noteCrash(rec: AppRecord, ranMs: number, now: number, crash: BackoffPolicy = CRASH_BACKOFF): void {
  rec.crashes = ranMs < CRASH_WINDOW_MS ? rec.crashes + 1 : 1;
  rec.nextStartAt = now + backoffDelay(crash, rec.crashes);
}

export class Records {
  readonly clock: BackoffClock;
  readonly retry: BackoffPolicy;
  readonly crash: BackoffPolicy;

  constructor(
    private readonly store: Store,
    timing: RecordsTiming = {},
  ) {
    this.clock = timing.clock ?? systemClock;
    this.retry = timing.retry ?? RETRY_BACKOFF;
    this.crash = timing.crash ?? CRASH_BACKOFF;
  }

  /** The records' clock (the reconciler's). */
  now(): number {
    return this.clock.now();
  }

  /** How long to wait after `attempts` failures in a row. */
  retryMs(attempts: number): number {
    return backoffDelay(this.retry, attempts, () => this.clock.random());
  }

  apps(): Map<string, AppRecord> {
    return new Map(this.store.observed(APP).map((r) => [r.id, r.data as unknown as AppRecord]));
  }
  app(uuid: string): AppRecord | undefined {
    return this.apps().get(uuid);
  }
  newApp(uuid: string, restartApplied: number, purgeApplied: number): AppRecord {
    return newAppRecord(uuid, restartApplied, purgeApplied);
  }
  putApp(rec: AppRecord): void {
    this.store.putObserved({ kind: APP, id: rec.uuid, name: null, state: "-", error: rec.error, data: rec as unknown as Record<string, unknown> });
  }
  deleteApp(uuid: string): void {
    this.store.deleteObserved(APP, uuid);
  }

  /** A step of the app failed: its error, shown until a later attempt succeeds, and the retry time. Returns the error to throw. */
  appFailed(uuid: string, message: string): Error {
    const rec = this.app(uuid);
    if (rec) {
      rec.error = message;
      rec.attempts++;
      rec.nextRetryAt = this.now() + this.retryMs(rec.attempts);
      this.putApp(rec);
    }
    return new Error(message);
  }

  /** The app started: an earlier failure is over. */
  appStarted(uuid: string): void {
    const rec = this.app(uuid);
    if (rec && rec.error) {
      rec.error = null;
      rec.attempts = 0;
      this.putApp(rec);
    }
  }

  /** The app exited while it should run (see `noteCrash`); null when it has no record. */
  appCrashed(uuid: string, ranMs: number): AppRecord | null {
    const rec = this.app(uuid);
    if (!rec) return null;
    noteCrash(rec, ranMs, this.now(), this.crash);
    this.putApp(rec);
    return rec;
  }

  contentTrees(): Map<string, ContentTreeRecord> {
    return new Map(this.store.observed(TREE).map((r) => [r.id, r.data as unknown as ContentTreeRecord]));
  }
  contentTree(uuid: string): ContentTreeRecord | undefined {
    return this.contentTrees().get(uuid);
  }
  putContentTree(rec: ContentTreeRecord): void {
    this.store.putObserved({ kind: TREE, id: rec.uuid, name: null, state: rec.state, error: rec.error, data: rec as unknown as Record<string, unknown> });
  }
  deleteContentTree(uuid: string): void {
    this.store.deleteObserved(TREE, uuid);
  }
}
