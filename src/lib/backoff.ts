// Backoff: how long to wait before the next try after `attempt` failures — exponential from `baseMs`, capped at
// `maxMs`, times a random factor in `jitter` so that many devices (or many apps) do not retry in step. The clock
// and the random source are injected, so a test (or the reconciler's clock) decides what "now" is.

export interface BackoffClock {
  /** Milliseconds, as Date.now(). */
  now(): number;
  /** A number in [0, 1), as Math.random(). */
  random(): number;
}

export const systemClock: BackoffClock = { now: () => Date.now(), random: () => Math.random() };

export interface BackoffPolicy {
  /** The delay after the first failure. */
  baseMs: number;
  /** No delay (before jitter) is longer than this. */
  maxMs: number;
  /** Growth per failure; default 2. */
  factor?: number;
  /**
   * The capped delay is multiplied by a factor drawn uniformly from [low, high): [0.8, 1.2] spreads ±20 %,
   * [0.5, 1] waits between half and all of it. Default [1, 1]: no jitter.
   */
  jitter?: readonly [low: number, high: number];
}

/** The delay after `attempt` failures (1 = the first; 0 counts as 1), on `random` for the jitter. */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const factor = policy.factor ?? 2;
  // The exponent is bounded so that a long run of failures cannot overflow to Infinity (or NaN with jitter).
  const exponent = Math.min(Math.max(0, Math.floor(attempt) - 1), 64);
  const capped = Math.min(policy.maxMs, policy.baseMs * factor ** exponent);
  return jittered(capped, policy.jitter ?? [1, 1], random);
}

/** `ms` times a factor drawn from [low, high), rounded: a poll interval that a fleet does not keep in lockstep. */
export function jittered(ms: number, [low, high]: readonly [number, number], random: () => number = Math.random): number {
  return Math.max(0, Math.round(ms * (low + random() * (high - low))));
}

/** A backoff with its count of failures: `next()` after a failure, `reset()` after a success. */
export class Backoff {
  private failures = 0;
  private until = 0;

  constructor(
    readonly policy: BackoffPolicy,
    private readonly clock: BackoffClock = systemClock,
  ) {}

  /** The delay after `attempt` failures, with this backoff's jitter source. */
  delayFor(attempt: number): number {
    return backoffDelay(this.policy, attempt, () => this.clock.random());
  }

  /** Counts one more failure and returns how long to wait before the next try (also kept as `nextAt`). */
  next(): number {
    this.failures++;
    const delay = this.delayFor(this.failures);
    this.until = this.clock.now() + delay;
    return delay;
  }

  /** After a success: the next failure waits `baseMs` again. */
  reset(): void {
    this.failures = 0;
    this.until = 0;
  }

  /** Failures since the last reset. */
  get attempts(): number {
    return this.failures;
  }

  /** When the next try is due (clock milliseconds); 0 after a reset. */
  get nextAt(): number {
    return this.until;
  }

  /** Whether the wait after the last failure is over. */
  ready(): boolean {
    return this.clock.now() >= this.until;
  }
}
