// Waiting on a condition, for every integration test: one loop instead of a copy per file. The timeout's message says
// what was awaited, for how long, the last error the check threw, and whatever `detail` adds (a serial tail, the
// last state seen), so a failure reads without a rerun.

export interface WaitOptions {
  /** How long to wait in all (default 10 s). */
  timeoutMs?: number;
  /** The pause between two tries (default 50 ms). */
  everyMs?: number;
  /** Appended to the timeout's message: what the test last saw, a serial tail. */
  detail?: () => string;
  /**
   * Asked before each try: a reason to give up at once (the process being waited on exited, QEMU died), or
   * nothing to go on waiting.
   */
  failIf?: () => string | null | undefined | false;
}

/** A check's answer that means "not yet". */
type NotYet = undefined | null | false;

/**
 * Calls `check` until it answers something other than undefined, null or false, and returns that answer. A check
 * that throws is tried again (a console that is restarting refuses connections); when the time is up, its last
 * error is part of the message. `opts` may be just the timeout in milliseconds (then `everyMs` the pause).
 */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, opts: number | WaitOptions = {}, everyMs?: number): Promise<Exclude<T, NotYet>> {
  const o: WaitOptions = typeof opts === "number" ? { timeoutMs: opts, everyMs } : opts;
  const timeoutMs = o.timeoutMs ?? 10_000;
  const pause = o.everyMs ?? 50;
  const start = Date.now();
  let lastError = "";
  for (;;) {
    const stop = o.failIf?.();
    if (stop) throw new Error(`gave up waiting for ${what}: ${stop}${extra(o)}`);
    try {
      const v = await check();
      if (v !== undefined && v !== null && v !== false) return v as Exclude<T, NotYet>;
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() - start >= timeoutMs) {
      throw new Error(`timed out after ${seconds(timeoutMs)} waiting for ${what}${lastError ? ` (last error: ${lastError})` : ""}${extra(o)}`);
    }
    await Bun.sleep(pause);
  }
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

function extra(o: WaitOptions): string {
  const d = o.detail?.();
  return d ? `\n${d}` : "";
}
