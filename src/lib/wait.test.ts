import { describe, expect, test } from "bun:test";
import { sleep, TookTooLong, waitFor, WaitTimeout, within } from "./wait.ts";

describe("sleep", () => {
  test("waits about as long as asked", async () => {
    const t0 = performance.now();
    await sleep(50);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(45);
  });

  test("an abort ends it early with the signal's reason", async () => {
    const ac = new AbortController();
    const t0 = performance.now();
    setTimeout(() => ac.abort(new Error("stopping")), 20);
    await expect(sleep(5_000, ac.signal)).rejects.toThrow("stopping");
    expect(performance.now() - t0).toBeLessThan(1_000);
    await expect(sleep(10, ac.signal)).rejects.toThrow("stopping");
  });
});

describe("waitFor", () => {
  test("returns the condition's first truthy value", async () => {
    let calls = 0;
    const v = await waitFor(() => (++calls >= 3 ? { ready: calls } : null), { timeoutMs: 2_000, intervalMs: 5, what: "x" });
    expect(v).toEqual({ ready: 3 });
    expect(calls).toBe(3);
  });

  test("awaits an async condition; a throw counts as not yet", async () => {
    let calls = 0;
    const v = await waitFor(
      async () => {
        if (++calls < 3) throw new Error("not listening");
        return "up";
      },
      { timeoutMs: 2_000, intervalMs: 5, what: "x" },
    );
    expect(v).toBe("up");
  });

  test("gives up after the timeout with what it waited for and the last error", async () => {
    const t0 = performance.now();
    const err = await waitFor(
      () => {
        throw new Error("connection refused");
      },
      { timeoutMs: 120, intervalMs: 20, what: "the QMP socket" },
    ).catch((e) => e);
    const took = performance.now() - t0;
    expect(err).toBeInstanceOf(WaitTimeout);
    expect(err.message).toBe("timed out after 120 ms waiting for the QMP socket (last: connection refused)");
    expect(took).toBeGreaterThanOrEqual(110);
    expect(took).toBeLessThan(1_000);
    const plain = await waitFor(() => false, { timeoutMs: 30, intervalMs: 10, what: "nothing" }).catch((e) => e);
    expect(plain.message).toBe("timed out after 30 ms waiting for nothing");
  });

  test("checks once more at the deadline", async () => {
    const t0 = Date.now();
    // true only from 80 ms on; the interval (1 s) is longer than the timeout (100 ms)
    const v = await waitFor(() => Date.now() - t0 >= 80, { timeoutMs: 100, intervalMs: 1_000, what: "x" });
    expect(v).toBe(true);
  });

  test("an abort stops the wait", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("shutdown")), 30);
    await expect(waitFor(() => false, { timeoutMs: 5_000, intervalMs: 10, what: "x", signal: ac.signal })).rejects.toThrow("shutdown");
  });
});

describe("within", () => {
  test("the work's result when it ends in time, its error when it fails", async () => {
    expect(await within("quick", 1000, async () => 7)).toBe(7);
    await expect(within("failing", 1000, async () => Promise.reject(new Error("no")))).rejects.toThrow("no");
  });

  test("TookTooLong naming the step when the work hangs", async () => {
    const e = await within("stopping the app runtime", 50, () => new Promise(() => {})).catch((x) => x);
    expect(e).toBeInstanceOf(TookTooLong);
    expect((e as Error).message).toBe("stopping the app runtime: no end after 0 s; going on without it");
  });
});
