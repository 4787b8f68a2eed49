// The support module's wait: what it answers, when it gives up, and what its messages say.
import { describe, expect, test } from "bun:test";
import { waitFor } from "./wait.ts";

describe("waitFor", () => {
  test("answers the first truthy value", async () => {
    const answers: unknown[] = [undefined, null, false, 0, "", "ready"];
    expect(await waitFor("a value", () => answers.shift(), { everyMs: 1 })).toBe("ready");
  });

  test("a check that throws is tried again; on timeout the last error and the detail are in the message", async () => {
    let n = 0;
    expect(await waitFor("the third try", () => (++n < 3 ? Promise.reject(new Error("not yet")) : n), { everyMs: 1 })).toBe(3);
    const err = await waitFor("never", () => Promise.reject(new Error("connection refused")), { timeoutMs: 50, everyMs: 5, detail: () => "serial tail: boot" }).catch((e) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe("timed out after 50 ms waiting for never (last: connection refused)\nserial tail: boot");
  });

  test("gives up at once when failIf says so, without waiting out the timeout", async () => {
    const t0 = performance.now();
    let checks = 0;
    const err = await waitFor("a process", () => (checks++, undefined), { timeoutMs: 10_000, failIf: () => "it exited with 3" }).catch((e) => e as Error);
    expect((err as Error).message).toBe("gave up waiting for a process: it exited with 3");
    expect(checks).toBe(0);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  test("the positional timeout and pause", async () => {
    const t0 = performance.now();
    let tries = 0;
    const err = await waitFor("slow", () => (tries++, false), 1500, 500).catch((e) => e as Error);
    expect((err as Error).message).toBe("timed out after 1500 ms waiting for slow");
    expect(tries).toBeGreaterThanOrEqual(3);
    expect(tries).toBeLessThanOrEqual(5);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1490);
  });
});
