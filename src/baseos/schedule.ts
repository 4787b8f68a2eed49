// When a written update may reboot the device: now, in a daily maintenance window (UTC), or when the operator
// says so. Pure functions, unit-tested in schedule.test.ts.
import { DomainError } from "../model/errors.ts";

export type RebootMode = "now" | "window" | "hold";

export interface BaseOsSettings {
  /** How a written update reboots into its trial: at once, in the maintenance window, or on POST /baseos/activate. */
  reboot: RebootMode;
  /** Daily maintenance window, UTC: start "HH:MM" and length in minutes (1..1440). */
  window: { start: string; durationMinutes: number };
  /** The trial's test window (EVE's timer.test.baseimage.update), seconds. */
  testWindowSeconds: number;
  /** How long the health checks must hold, without a break, before the trial commits, seconds. */
  stableSeconds: number;
}

export const DEFAULT_SETTINGS: BaseOsSettings = {
  reboot: "now",
  window: { start: "02:00", durationMinutes: 120 },
  testWindowSeconds: 600,
  stableSeconds: 20,
};

/** Base OS settings that cannot be applied (a malformed window, an unknown field): the message lists every problem. */
export class SettingsError extends DomainError {
  constructor(message: string) {
    super("invalid", message);
  }
}

function parseHHMM(s: unknown): number {
  const m = typeof s === "string" ? s.match(/^([01]\d|2[0-3]):([0-5]\d)$/) : null;
  if (!m) throw new SettingsError(`window.start: expected "HH:MM" (UTC, 00:00–23:59), got ${JSON.stringify(s)}`);
  return Number(m[1]) * 60 + Number(m[2]);
}

/** Validates a (partial) settings change on top of `cur`; every problem named. */
export function mergeSettings(cur: BaseOsSettings, input: unknown): BaseOsSettings {
  if (!input || typeof input !== "object" || Array.isArray(input)) throw new SettingsError("expected a JSON object of settings");
  const i = input as Record<string, any>;
  const known = new Set(["reboot", "window", "testWindowSeconds", "stableSeconds"]);
  const problems: string[] = [];
  for (const k of Object.keys(i)) if (!known.has(k)) problems.push(`${k}: unknown setting`);
  const next: BaseOsSettings = { ...cur, window: { ...cur.window } };
  if (i.reboot !== undefined) {
    if (!["now", "window", "hold"].includes(i.reboot)) problems.push(`reboot: expected "now", "window" or "hold"`);
    else next.reboot = i.reboot;
  }
  if (i.window !== undefined) {
    if (!i.window || typeof i.window !== "object") problems.push("window: expected {start, durationMinutes}");
    else {
      if (i.window.start !== undefined) {
        try {
          parseHHMM(i.window.start);
          next.window.start = i.window.start;
        } catch (e) {
          problems.push((e as Error).message);
        }
      }
      if (i.window.durationMinutes !== undefined) {
        const d = i.window.durationMinutes;
        if (!Number.isInteger(d) || d < 1 || d > 1440) problems.push("window.durationMinutes: expected an integer 1..1440");
        else next.window.durationMinutes = d;
      }
    }
  }
  for (const [k, lo, hi] of [["testWindowSeconds", 10, 86400], ["stableSeconds", 0, 3600]] as const) {
    if (i[k] === undefined) continue;
    if (!Number.isInteger(i[k]) || i[k] < lo || i[k] > hi) problems.push(`${k}: expected an integer ${lo}..${hi}`);
    else next[k] = i[k];
  }
  if (next.stableSeconds >= next.testWindowSeconds) problems.push("stableSeconds must be shorter than testWindowSeconds");
  if (problems.length) throw new SettingsError(problems.join("; "));
  return next;
}

/** Is `now` inside the daily window? The window may run past midnight. */
export function inWindow(now: Date, w: BaseOsSettings["window"]): boolean {
  const start = parseHHMM(w.start);
  const minute = now.getUTCHours() * 60 + now.getUTCMinutes();
  const since = (minute - start + 1440) % 1440;
  return since < w.durationMinutes;
}

/** The next moment the window is open: `now` itself when inside it. */
export function nextWindowStart(now: Date, w: BaseOsSettings["window"]): Date {
  if (inWindow(now, w)) return now;
  const start = parseHHMM(w.start);
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), Math.floor(start / 60), start % 60));
  if (d.getTime() <= now.getTime()) d.setUTCDate(d.getUTCDate() + 1);
  return d;
}

/** When a written update reboots: a date, or null when it waits for the operator (hold, or managed without activate). */
export function rebootAt(now: Date, s: BaseOsSettings, managed: { activate: boolean } | null): Date | null {
  if (managed) return managed.activate ? now : null;
  if (s.reboot === "now") return now;
  if (s.reboot === "window") return nextWindowStart(now, s.window);
  return null;
}
