import { describe, expect, test } from "bun:test";
import { Backoff, backoffDelay, jittered } from "./backoff.ts";

/** A clock that moves only when told and a random source that returns the values given, in turn. */
function fakeClock(randoms: number[] = [0.5]) {
  let t = 1_000_000;
  let i = 0;
  return {
    now: () => t,
    random: () => randoms[i++ % randoms.length]!,
    advance: (ms: number) => (t += ms),
  };
}

describe("backoffDelay", () => {
  test("doubles from the base up to the cap, without jitter by default", () => {
    const p = { baseMs: 1_000, maxMs: 10_000 };
    expect([0, 1, 2, 3, 4, 5, 6].map((a) => backoffDelay(p, a))).toEqual([1_000, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
  });

  test("grows by the given factor", () => {
    expect([1, 2, 3].map((a) => backoffDelay({ baseMs: 100, maxMs: 1e9, factor: 3 }, a))).toEqual([100, 300, 900]);
  });

  test("the jitter factor is drawn from [low, high) on the random source", () => {
    const p = { baseMs: 5_000, maxMs: 600_000, jitter: [0.8, 1.2] as const };
    expect(backoffDelay(p, 1, () => 0)).toBe(4_000);
    expect(backoffDelay(p, 1, () => 0.5)).toBe(5_000);
    expect(backoffDelay(p, 1, () => 0.999999)).toBe(6_000);
    // the cap applies before the jitter, as the reconciler's retries always did
    expect(backoffDelay(p, 30, () => 0.999999)).toBe(720_000);
    expect(backoffDelay({ baseMs: 1_000, maxMs: 300_000, jitter: [0.5, 1] }, 2, () => 0)).toBe(1_000);
  });

  test("a very long run of failures stays finite", () => {
    const d = backoffDelay({ baseMs: 1_000, maxMs: 300_000, jitter: [0.5, 1] }, 1e9, () => 0.25);
    expect(d).toBe(187_500);
  });
});

describe("jittered", () => {
  test("shortens or stretches by the drawn factor", () => {
    expect(jittered(10_000, [0.8, 1], () => 0)).toBe(8_000);
    expect(jittered(10_000, [0.8, 1], () => 0.5)).toBe(9_000);
    expect(jittered(10_000, [1, 1], () => 0.7)).toBe(10_000);
  });
});

describe("Backoff", () => {
  test("next() counts failures and waits longer each time, reset() starts over", () => {
    const clock = fakeClock();
    const b = new Backoff({ baseMs: 1_000, maxMs: 5_000 }, clock);
    expect([b.next(), b.next(), b.next(), b.next()]).toEqual([1_000, 2_000, 4_000, 5_000]);
    expect(b.attempts).toBe(4);
    b.reset();
    expect(b.attempts).toBe(0);
    expect(b.next()).toBe(1_000);
  });

  test("nextAt and ready() follow the injected clock, not the wall clock", () => {
    const clock = fakeClock();
    const b = new Backoff({ baseMs: 1_000, maxMs: 60_000 }, clock);
    expect(b.ready()).toBe(true);
    b.next();
    b.next();
    expect(b.nextAt).toBe(clock.now() + 2_000);
    expect(b.ready()).toBe(false);
    clock.advance(1_999);
    expect(b.ready()).toBe(false);
    clock.advance(1);
    expect(b.ready()).toBe(true);
    b.reset();
    expect(b.nextAt).toBe(0);
  });

  test("jitter uses the injected random source", () => {
    const clock = fakeClock([0, 0.5, 0.999999]);
    const b = new Backoff({ baseMs: 1_000, maxMs: 60_000, jitter: [0.5, 1] }, clock);
    expect([b.next(), b.next(), b.next()]).toEqual([500, 1_500, 4_000]);
    expect(b.delayFor(1)).toBe(500);
  });
});
