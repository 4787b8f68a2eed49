import { expect, test } from "bun:test";
import { SerialLines, serialLine } from "./app-logs.ts";

const enc = (s: string) => new TextEncoder().encode(s);

test("terminal escapes, carriage returns and control characters leave a serial line; tabs stay", () => {
  expect(serialLine("\x1b[1;32mOK\x1b[0m  Started\tsshd\r")).toBe("OK  Started\tsshd");
  expect(serialLine("\x1b]0;title\x07login: \x1b[?25h")).toBe("login:");
  expect(serialLine("a\x08b\x00c\x7f")).toBe("abc");
});

test("lines are split across chunks, multi-byte characters too; what is left comes with end()", () => {
  const l = new SerialLines();
  const bytes = enc("boot: ünïcode ok\r\nsecond li");
  expect(l.push(bytes.subarray(0, 8))).toEqual([]); // cuts inside "ü"
  expect(l.push(bytes.subarray(8))).toEqual(["boot: ünïcode ok"]);
  expect(l.push(enc("ne\n\r\n\x1b[2J\nthird"))).toEqual(["second line"]);
  expect(l.end()).toEqual(["third"]);
  expect(l.end()).toEqual([]);
});

test("a guest printing without line breaks is stored in pieces of at most 4 KiB", () => {
  const l = new SerialLines();
  const out = l.push(enc("x".repeat(10_000)));
  expect(out.map((s) => s.length)).toEqual([4096, 4096]);
  expect(l.end()).toEqual(["x".repeat(10_000 - 8192)]);
  expect(new SerialLines().push(enc(`${"y".repeat(5000)}\n`)).map((s) => s.length)).toEqual([4096, 904]);
});
