import { describe, expect, test } from "bun:test";
import { mappingsOf, memoryFigures, trimExecutable } from "./trim.ts";

const MAPS = `5581a0000000-5581a2000000 r--p 00000000 fe:01 1310722                    /usr/bin/evebox
5581a2000000-5581a6000000 r-xp 02000000 fe:01 1310722                    /usr/bin/evebox
5581a6000000-5581a6200000 rw-p 06000000 fe:01 1310722                    /usr/bin/evebox (deleted)
5581a6200000-5581a6400000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000100000 r-xp 00000000 fe:01 1310999                    /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000200000-7f0000300000 r--p 00000000 00:1a 77                         /overlay/evebox
7f0000400000-7f0000500000 rw-p 00000000 00:00 0
`;

describe("mappingsOf", () => {
  test("the executable's mappings by path, also once the file was replaced (deleted)", () => {
    const m = mappingsOf(MAPS, { path: "/usr/bin/evebox", dev: 1, ino: 1 });
    expect(m).toEqual([
      { start: 0x5581a0000000, end: 0x5581a2000000 },
      { start: 0x5581a2000000, end: 0x5581a6000000 },
      { start: 0x5581a6000000, end: 0x5581a6200000 },
    ]);
  });
  test("by device and inode when the path differs; other files and anonymous memory never", () => {
    // 00:1a as st_dev: minor 0x1a
    expect(mappingsOf(MAPS, { path: "/sbin/init", dev: 0x1a, ino: 77 })).toEqual([{ start: 0x7f0000200000, end: 0x7f0000300000 }]);
    // fe:01 is major 254 minor 1: (254 << 8) | 1
    expect(mappingsOf(MAPS, { path: "/x", dev: (254 << 8) | 1, ino: 1310722 })).toHaveLength(3);
    expect(mappingsOf(MAPS, { path: "/x", dev: 0x1b, ino: 77 })).toEqual([]);
    expect(mappingsOf(MAPS, { path: "[heap]", dev: 0, ino: 0 })).toEqual([]);
  });
});

describe("trimExecutable", () => {
  test("returns the running binary's resident pages to the kernel (this test's own bun)", async () => {
    // Touch the binary widely first: whatever bun has paged in so far is the "before".
    const before = memoryFigures();
    const r = await trimExecutable();
    expect(r.advised).toBeGreaterThan(10 * 1024 * 1024);
    expect(r.before.fileKiB).toBeGreaterThan(0);
    // The pages this process still touches come back, but far fewer than were resident.
    expect(r.after.fileKiB).toBeLessThan(r.before.fileKiB * 0.8);
    expect(before.anonKiB).toBeGreaterThan(0);
  });
});
