import { describe, expect, test } from "bun:test";
import { zipBytes, zipLength, zipStream } from "./zip.ts";

describe("the streamed zip", () => {
  test("its length is known before it is sent, and is what it sends", async () => {
    const data = new TextEncoder().encode("hello");
    const stream = new Blob([new Uint8Array(1000).fill(7)]).stream();
    const entries = [
      { name: "a.txt", size: 5, crc: Bun.hash.crc32(data) >>> 0, body: () => data },
      { name: "b.bin", size: 1000, crc: Bun.hash.crc32(new Uint8Array(1000).fill(7)) >>> 0, body: () => stream },
    ];
    expect((await zipBytes(entries)).length).toBe(zipLength(entries)!);
  });

  test("an archive that would need zip64 has no length (refused); a body of another size than its entry's ends the stream in error", async () => {
    expect(zipLength([{ name: "big", size: 2 ** 32, crc: 0, body: () => new Uint8Array(0) }])).toBeNull();
    expect(zipLength([{ name: "a", size: 2 ** 31, crc: 0, body: () => new Uint8Array(0) }, { name: "b", size: 2 ** 31, crc: 0, body: () => new Uint8Array(0) }])).toBeNull();
    const short = zipStream([{ name: "x", size: 10, crc: 0, body: () => new Blob([new Uint8Array(4)]).stream() }]);
    await expect(new Response(short).arrayBuffer()).rejects.toThrow(/4 bytes read, 10 expected/);
  });
});
