import { describe, expect, test } from "bun:test";
import { statusOf } from "../console/errors.ts";
import { AuthError, clientKey, DEFAULT_THROTTLE, HashGate, LoginThrottle } from "./auth.ts";

const refused = (f: () => void) => {
  try {
    f();
  } catch (e) {
    return e instanceof AuthError ? statusOf(e.kind) : -1;
  }
  return 0;
};

describe("LoginThrottle", () => {
  test("counts each attempt before the check: the 7th of a burst is refused", () => {
    const t = new LoginThrottle(DEFAULT_THROTTLE, () => 1000);
    const statuses = Array.from({ length: 8 }, () => refused(() => t.attempt("10.0.0.1")));
    expect(statuses).toEqual([0, 0, 0, 0, 0, 0, 429, 429]);
  });

  test("a success clears the client's record; the wait doubles up to the cap", () => {
    let now = 0;
    const t = new LoginThrottle({ ...DEFAULT_THROTTLE, maxDelayMs: 4000 }, () => now);
    for (let i = 0; i < 6; i++) t.attempt("a");
    expect(refused(() => t.attempt("a"))).toBe(429);
    now += 1000;
    t.attempt("a"); // 7th: waits 2 s
    now += 1999;
    expect(refused(() => t.attempt("a"))).toBe(429);
    now += 1;
    t.succeed("a");
    expect(refused(() => t.attempt("a"))).toBe(0);
  });

  test("a global budget caps many addresses; the local socket has none", () => {
    const t = new LoginThrottle({ ...DEFAULT_THROTTLE, globalFree: 10 }, () => 0);
    const statuses = Array.from({ length: 20 }, (_, i) => refused(() => t.attempt(`192.0.2.${i}`)));
    expect(statuses.filter((s) => s === 0)).toHaveLength(11);
    expect(refused(() => t.attempt("local-socket"))).toBe(0);
  });

  test("an IPv6 client is one /64; an IPv4-mapped address is its IPv4 address", () => {
    expect(clientKey("2001:db8:1:2:aaaa::1")).toBe(clientKey("2001:db8:1:2:bbbb:cccc:dddd:eeee"));
    expect(clientKey("2001:db8:1:2::1")).toBe("2001:db8:1:2::/64");
    expect(clientKey("2001:0db8::1")).toBe("2001:db8:0:0::/64");
    expect(clientKey("::1")).toBe("0:0:0:0::/64");
    expect(clientKey("::ffff:192.0.2.7")).toBe("192.0.2.7");
    expect(clientKey("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
  });
});

describe("HashGate", () => {
  test("runs at most N at once, queues M more, refuses the rest with 429", async () => {
    const gate = new HashGate(2, 3);
    let running = 0;
    let peak = 0;
    const job = () =>
      gate.run(async () => {
        peak = Math.max(peak, ++running);
        await Bun.sleep(10);
        running--;
        return true;
      });
    const results = await Promise.allSettled(Array.from({ length: 8 }, job));
    expect(peak).toBe(2);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(5);
    expect(results.filter((r) => r.status === "rejected").every((r) => statusOf(((r as PromiseRejectedResult).reason as AuthError).kind) === 429)).toBe(true);
    expect(await job()).toBe(true); // and the slots are all free again
  });
});
