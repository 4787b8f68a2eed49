// Waiting on a condition, for every integration test: src/lib/wait.ts's loop (the one evebox itself uses), with
// what tests need besides: a timeout's message that also carries `detail` (a serial tail, the last state seen), and
// `failIf`, which ends the wait at once when there is no point going on (the process being waited on exited).
import { waitFor as waitUntil, WaitTimeout } from "../../src/lib/wait.ts";

export interface WaitOptions {
  /** How long to wait in all (default 10 s). */
  timeoutMs?: number;
  /** The pause between two tries (default 50 ms). */
  everyMs?: number;
  /** Appended to the timeout's message: what the test last saw, a serial tail. */
  detail?: () => string;
  /** Asked before each try: a reason to give up at once (QEMU died, evebox exited), or nothing to go on waiting. */
  failIf?: () => string | null | undefined | false;
}

/**
 * Calls `check` until it answers a truthy value, and returns that value. A check that throws is tried again (a
 * console that is restarting refuses connections); when the time is up, its last error is part of the message.
 * `opts` may be just the timeout in milliseconds (then `everyMs` the pause).
 */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, opts: number | WaitOptions = {}, everyMs?: number): Promise<NonNullable<T>> {
  const o: WaitOptions = typeof opts === "number" ? { timeoutMs: opts, everyMs } : opts;
  const extra = () => {
    const d = o.detail?.();
    return d ? `\n${d}` : "";
  };
  const stop = new AbortController();
  const gaveUp = () => {
    const reason = o.failIf?.();
    if (reason) stop.abort(new Error(`gave up waiting for ${what}: ${reason}${extra()}`));
    return !!reason;
  };
  try {
    return await waitUntil(async () => (gaveUp() ? undefined : await check()), { what, timeoutMs: o.timeoutMs ?? 10_000, intervalMs: o.everyMs ?? 50, signal: stop.signal });
  } catch (e) {
    if (e instanceof WaitTimeout) throw new Error(`${e.message}${extra()}`);
    throw e;
  }
}
