import { describe, expect, test } from "bun:test";
import { DEFAULT_SETTINGS, inWindow, mergeSettings, nextWindowStart, rebootAt, SettingsError } from "./schedule.ts";

const at = (iso: string) => new Date(iso);

describe("maintenance window", () => {
  const w = { start: "23:00", durationMinutes: 120 }; // runs past midnight
  test("inside and outside, across midnight", () => {
    expect(inWindow(at("2026-01-01T23:00:00Z"), w)).toBe(true);
    expect(inWindow(at("2026-01-02T00:59:00Z"), w)).toBe(true);
    expect(inWindow(at("2026-01-02T01:00:00Z"), w)).toBe(false);
    expect(inWindow(at("2026-01-01T22:59:00Z"), w)).toBe(false);
  });
  test("the next start is today's, tomorrow's, or now when open", () => {
    expect(nextWindowStart(at("2026-01-01T10:00:00Z"), w).toISOString()).toBe("2026-01-01T23:00:00.000Z");
    expect(nextWindowStart(at("2026-01-02T02:00:00Z"), { start: "02:00", durationMinutes: 1 }).toISOString()).toBe("2026-01-02T02:00:00.000Z");
    expect(nextWindowStart(at("2026-01-02T02:01:00Z"), { start: "02:00", durationMinutes: 1 }).toISOString()).toBe("2026-01-03T02:00:00.000Z");
    const now = at("2026-01-02T00:30:00Z");
    expect(nextWindowStart(now, w)).toBe(now);
  });
  test("reboot time by mode; managed: activate decides", () => {
    const now = at("2026-01-01T10:00:00Z");
    expect(rebootAt(now, { ...DEFAULT_SETTINGS, reboot: "now" }, null)).toBe(now);
    expect(rebootAt(now, { ...DEFAULT_SETTINGS, reboot: "hold" }, null)).toBeNull();
    expect(rebootAt(now, { ...DEFAULT_SETTINGS, reboot: "window", window: w }, null)!.toISOString()).toBe("2026-01-01T23:00:00.000Z");
    expect(rebootAt(now, { ...DEFAULT_SETTINGS, reboot: "hold" }, { activate: true })).toBe(now);
    expect(rebootAt(now, { ...DEFAULT_SETTINGS, reboot: "now" }, { activate: false })).toBeNull();
  });
});

describe("settings", () => {
  test("a partial change merges; every problem is named", () => {
    expect(mergeSettings(DEFAULT_SETTINGS, { testWindowSeconds: 60, stableSeconds: 5 })).toMatchObject({ testWindowSeconds: 60, stableSeconds: 5, reboot: "now" });
    try {
      mergeSettings(DEFAULT_SETTINGS, { reboot: "x", window: { start: "7:00", durationMinutes: 0 }, testWindowSeconds: 1 });
      throw new Error("accepted");
    } catch (e) {
      expect(e).toBeInstanceOf(SettingsError);
      const m = (e as Error).message;
      for (const s of ["reboot", "window.start", "window.durationMinutes", "testWindowSeconds"]) expect(m).toContain(s);
    }
    expect(() => mergeSettings(DEFAULT_SETTINGS, { testWindowSeconds: 10, stableSeconds: 10 })).toThrow(/shorter/);
  });
});
