import { describe, expect, test } from "bun:test";
import { formatUptime, formatWait, shortHash } from "./format";

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
