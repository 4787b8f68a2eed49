import { dlopen, FFIType } from "bun:ffi";
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

  test("gives the C heap's free pages back too (glibc's malloc_trim)", async () => {
    const c = dlopen("libc.so.6", { malloc: { args: [FFIType.u64], returns: FFIType.ptr }, free: { args: [FFIType.ptr], returns: FFIType.void }, memset: { args: [FFIType.ptr, FFIType.i32, FFIType.u64], returns: FFIType.ptr } }).symbols;
    // 40 MiB in small blocks (below mmap's threshold: on the heap), all freed but the last, which pins the heap's
    // top: malloc keeps the free pages below it until it is asked to trim.
    const blocks = [];
    for (let i = 0; i < 40 * 256; i++) {
      const p = c.malloc(4096)!;
      c.memset(p, 1, 4096);
      blocks.push(p);
    }
    for (const p of blocks.slice(0, -1)) c.free(p);
    const held = memoryFigures().anonKiB;
    const r = await trimExecutable();
    c.free(blocks.at(-1)!);
    expect(held - r.after.anonKiB).toBeGreaterThan(30 * 1024);
  });
});

