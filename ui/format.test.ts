import { describe, expect, test } from "bun:test";
import { formatUptime, formatWait, locSummary, shortHash } from "./format";

describe("formatUptime", () => {
  test("seconds only below a minute", () => {
    expect(formatUptime(0)).toBe("0 s");
    expect(formatUptime(42.9)).toBe("42 s");
  });
  test("keeps the smaller units once a larger one is shown", () => {
    expect(formatUptime(60)).toBe("1 min 0 s");
    expect(formatUptime(3600 + 5)).toBe("1 h 0 min 5 s");
    expect(formatUptime(86400)).toBe("1 day 0 h 0 min 0 s");
    expect(formatUptime(3 * 86400 + 4 * 3600 + 12 * 60 + 5)).toBe("3 days 4 h 12 min 5 s");
  });
  test("never negative or NaN", () => {
    expect(formatUptime(-5)).toBe("0 s");
    expect(formatUptime(Number.NaN)).toBe("0 s");
  });
});

describe("formatWait", () => {
  test("words, rounded up to whole seconds", () => {
    expect(formatWait(0.2)).toBe("1 second");
    expect(formatWait(45)).toBe("45 seconds");
    expect(formatWait(120)).toBe("2 minutes");
    expect(formatWait(90)).toBe("1 minute 30 seconds");
  });
});

describe("shortHash", () => {
  test("drops a sha256: prefix and truncates", () => {
    expect(shortHash("sha256:0123456789abcdef0123")).toBe("0123456789ab");
    expect(shortHash("abc")).toBe("abc");
  });
});

describe("locSummary", () => {
  const loc = { url: "http://10.0.0.5:8080", configFromLoc: false, lastContact: null, lastError: null };
  test("none without a LOC; standing by while the controller answers", () => {
    expect(locSummary(undefined, true)).toBeNull();
    expect(locSummary({ ...loc, url: null }, true)).toBeNull();
    expect(locSummary(loc, true)).toBe("standing by: asked only when the controller cannot be reached");
  });
  test("the source of the running config while the controller is away; its fault otherwise", () => {
    expect(locSummary({ ...loc, configFromLoc: true, lastContact: "x" }, false)).toMatch(/running config came from it/);
    expect(locSummary({ ...loc, lastContact: "x", lastError: { message: "its config was refused: older" } }, false)).toBe("not usable: its config was refused: older");
  });
});
