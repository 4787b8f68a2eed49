// Returning the executable's pages that only the start touched to the kernel (issue 17): madvise(MADV_PAGEOUT)
// over the file-backed mappings of the running binary itself. Those pages are clean (the binary's code, its
// read-only data, the embedded bundle and its bytecode): the kernel drops them at once instead of under memory
// pressure, and a page still in use comes back at its next touch (read from the page cache or the file again).
// Anonymous memory is never advised (there is no swap on a device: it would only cost a scan); the C heap's
// free pages are given back with glibc's malloc_trim. The same technique as Android's cached-app compaction
// (process_madvise with MADV_PAGEOUT), on our own process.
//
// Linux ≥ 5.4 has MADV_PAGEOUT; an older kernel answers EINVAL, and then trimming is off for the process.
import { dlopen, FFIType, read } from "bun:ffi";
import { readFileSync, readlinkSync, statSync } from "node:fs";

const MADV_PAGEOUT = 21;
/** One madvise call's span: the kernel walks and reclaims it without yielding to our event loop. */
const CHUNK = 2 * 1024 * 1024;

let lib: ReturnType<typeof load> | null = null;
function load() {
  return dlopen("libc.so.6", {
    madvise: { args: [FFIType.u64, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }).symbols;
}

/** glibc's malloc_trim, apart: a C library without it still has madvise. */
let mallocTrim: ((pad: number) => number) | null | undefined;
function glibcMallocTrim(): ((pad: number) => number) | null {
  if (mallocTrim === undefined) {
    try {
      const s = dlopen("libc.so.6", { malloc_trim: { args: [FFIType.u64], returns: FFIType.i32 } }).symbols;
      mallocTrim = (pad) => s.malloc_trim(pad);
    } catch {
      mallocTrim = null;
    }
  }
  return mallocTrim;
}

export interface Mapping {
  start: number;
  end: number;
}

/**
 * The mappings of one file in a /proc/<pid>/maps text: by its path (also when replaced meanwhile: maps then says
 * "(deleted)"), or by device and inode (a path seen through another mount).
 */
export function mappingsOf(maps: string, file: { path: string; dev: number; ino: number }): Mapping[] {
  const out: Mapping[] = [];
  for (const line of maps.split("\n")) {
    // start-end perms offset major:minor inode path
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ [0-9a-f]+ ([0-9a-f]+):([0-9a-f]+) (\d+) +(.*)$/.exec(line);
    if (!m || m[5] === "0") continue;
    const path = m[6]!.replace(/ \(deleted\)$/, "");
    // st_dev as the kernel encodes it for user space (minor's low 8 bits, the major, minor's high bits)
    const major = parseInt(m[3]!, 16);
    const minor = parseInt(m[4]!, 16);
    const dev = (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12);
    if (path !== file.path && !(Number(m[5]) === file.ino && dev === file.dev)) continue;
    out.push({ start: parseInt(m[1]!, 16), end: parseInt(m[2]!, 16) });
  }
  return out;
}

export interface MemoryFigures {
  rssKiB: number;
  fileKiB: number;
  anonKiB: number;
}

export function memoryFigures(status: string = readFileSync("/proc/self/status", "utf8")): MemoryFigures {
  const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
  return { rssKiB: kib("VmRSS"), fileKiB: kib("RssFile"), anonKiB: kib("RssAnon") };
}

export interface TrimResult {
  before: MemoryFigures;
  after: MemoryFigures;
  /** Bytes of mappings advised. */
  advised: number;
}

export class TrimUnsupported extends Error {}

/**
 * A full collection, then advises the kernel to page out the executable's own mappings, CHUNK bytes per call,
 * yielding to the event loop between calls, then trims the C heap. Throws TrimUnsupported when the kernel has no
 * MADV_PAGEOUT (or bun:ffi cannot reach libc).
 */
export async function trimExecutable(): Promise<TrimResult> {
  const before = memoryFigures();
  // A full collection first (the start's garbage, ~1–2 MiB of the heap; at idle, once per trim), so that what
  // it frees and what it touches are settled before the pages go.
  Bun.gc(true);
  let libc: ReturnType<typeof load>;
  try {
    libc = lib ??= load();
  } catch (e) {
    throw new TrimUnsupported(`no libc for madvise: ${(e as Error).message}`);
  }
  const st = statSync("/proc/self/exe");
  const maps = mappingsOf(readFileSync("/proc/self/maps", "utf8"), { path: readlinkSync("/proc/self/exe").replace(/ \(deleted\)$/, ""), dev: st.dev, ino: st.ino });
  let advised = 0;
  for (const { start, end } of maps) {
    for (let a = start; a < end; a += CHUNK) {
      const len = Math.min(CHUNK, end - a);
      if (libc.madvise(a, len, MADV_PAGEOUT) !== 0) {
        const errno = read.i32(libc.__errno_location()!, 0);
        if (errno === 22) throw new TrimUnsupported("the kernel has no MADV_PAGEOUT (Linux 5.4 or later)");
        // EAGAIN/ENOMEM on a part of the range (a mapping that changed meanwhile): the rest is still worth it
        continue;
      }
      advised += len;
      await new Promise<void>((r) => setImmediate(r));
    }
  }
  // The C heap's free pages too (libnftables' and the runtime's own malloc; JavaScript's heap is not there):
  // ~1 MiB of RssAnon after the start's transactions.
  glibcMallocTrim()?.(0);
  return { before, after: memoryFigures(), advised };
}
