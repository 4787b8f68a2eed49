// Waiting: `sleep`, and `waitFor`, which polls a condition until it holds or a deadline passes — the one loop for
// "until the socket answers", "until the process is gone", "until the interface is up".

/** Resolves after `ms`; rejects with the signal's reason when `signal` aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export interface WaitOptions {
  /** Give up after this long. */
  timeoutMs: number;
  /** Pause between two checks; default 100 ms. */
  intervalMs?: number;
  /** What is awaited, for the error: "the QMP socket of app x", "dockerd to answer". */
  what: string;
  signal?: AbortSignal;
}

/** `waitFor` gave up: says what it waited for, for how long, and the last error the condition threw. */
export class WaitTimeout extends Error {
  override readonly name = "WaitTimeout";
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    readonly lastError: unknown,
  ) {
    const last = lastError instanceof Error ? lastError.message : lastError !== undefined ? String(lastError) : "";
    super(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last: ${last})` : ""}`);
  }
}

/**
 * Calls `condition` until it returns a truthy value, and returns that value. A condition that throws counts as
 * not yet (its last error goes into the `WaitTimeout`). The condition is checked at least once, and once more
 * right at the deadline, so a short timeout does not lose a condition that holds by then.
 */
export async function waitFor<T>(condition: () => T | Promise<T>, o: WaitOptions): Promise<NonNullable<T>> {
  const interval = Math.max(1, o.intervalMs ?? 100);
  const deadline = Date.now() + o.timeoutMs;
  let lastError: unknown;
  for (;;) {
    if (o.signal?.aborted) throw o.signal.reason;
    try {
      const v = await condition();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    const left = deadline - Date.now();
    if (left <= 0) throw new WaitTimeout(o.what, o.timeoutMs, lastError);
    await sleep(Math.min(interval, left), o.signal);
  }
}

/** `within` gave up waiting: the work may still be going on; the caller moves on without it. */
export class TookTooLong extends Error {
  override readonly name = "TookTooLong";
  constructor(
    readonly what: string,
    readonly ms: number,
  ) {
    super(`${what}: no end after ${(ms / 1000).toFixed(0)} s; going on without it`);
  }
}

/**
 * The work's result, or `TookTooLong` after `ms` (the work is not cancelled: it may still finish later). For
 * steps that must not hold up what follows — stopping a part on the way to a reboot.
 */
export function within<T>(what: string, ms: number, work: () => Promise<T> | T): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new TookTooLong(what, ms)), ms);
    Promise.resolve()
      .then(work)
      .then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (e) => {
          clearTimeout(timer);
          reject(e);
        },
      );
  });
}
