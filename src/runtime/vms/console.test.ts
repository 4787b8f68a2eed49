import { describe, expect, test } from "bun:test";
import { ByteRing } from "./console.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("ByteRing", () => {
  test("keeps everything until full, then the last `capacity` bytes", () => {
    const ring = new ByteRing(8);
    ring.push(bytes("abc"));
    expect(text(ring.snapshot())).toBe("abc");
    ring.push(bytes("defgh"));
    expect(text(ring.snapshot())).toBe("abcdefgh");
    ring.push(bytes("ij"));
    expect(text(ring.snapshot())).toBe("cdefghij");
    ring.push(bytes("klmno"));
    expect(text(ring.snapshot())).toBe("hijklmno");
    expect(ring.size).toBe(8);
  });

  test("a chunk larger than the ring keeps its tail", () => {
    const ring = new ByteRing(4);
    ring.push(bytes("xy"));
    ring.push(bytes("0123456789"));
    expect(text(ring.snapshot())).toBe("6789");
    ring.push(bytes("a"));
    expect(text(ring.snapshot())).toBe("789a");
  });

  test("many small pushes wrap correctly", () => {
    const ring = new ByteRing(100);
    let all = "";
    for (let i = 0; i < 1000; i++) {
      const s = `${i};`;
      all += s;
      ring.push(bytes(s));
    }
    expect(text(ring.snapshot())).toBe(all.slice(-100));
  });
});
