import { expect, test } from "bun:test";
import { gunzipSync } from "node:zlib";
import { appBundle, bundleLines, deviceBundle, gzipHeader, logEntryJson } from "./newlogs.ts";

test("device bundle: gzip any reader takes, JSON lines, header comment with devID/image/eveVersion, mtime", () => {
  const at = new Date("2026-01-02T03:04:05Z");
  const lines = bundleLines([{ severity: "info", source: "device", content: "hello", msgid: 7, timestamp: new Date(1_700_000_000_123) }]);
  const gz = deviceBundle(lines[0]!, { devID: "d", image: "IMGA", eveVersion: "1.0" }, at);
  const h = gzipHeader(gz);
  expect(JSON.parse(h.comment!)).toEqual({ devID: "d", image: "IMGA", eveVersion: "1.0" });
  expect(h.name).toBeNull();
  expect(h.mtime.toISOString()).toBe(at.toISOString());
  const entry = JSON.parse(gunzipSync(gz).toString().trim());
  expect(entry).toEqual({ severity: "info", source: "device", content: "hello", msgid: 7, timestamp: { seconds: 1_700_000_000, nanos: 123_000_000 } });
});

test("app bundle: the app name in the header's name field, non-Latin-1 escaped", () => {
  const gz = appBundle([logEntryJson({ severity: "info", source: "app", content: "x", msgid: 1, timestamp: new Date() })], "wéb ☃");
  expect(gzipHeader(gz).name).toBe("wéb ?");
  expect(gunzipSync(gz).toString()).toContain('"content":"x"');
});

test("bundles are cut at the size limit, never splitting a line", () => {
  const e = (i: number) => ({ severity: "info", source: "s", content: "x".repeat(100), msgid: i, timestamp: new Date() });
  const b = bundleLines(Array.from({ length: 50 }, (_, i) => e(i)), 1000);
  expect(b.length).toBeGreaterThan(5);
  expect(b.flat().length).toBe(50);
  for (const chunk of b) expect(chunk.join("\n").length).toBeLessThanOrEqual(1000);
});
