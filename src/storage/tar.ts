// Reading the table of contents of a tar file on disk without extracting it: one 512-byte header per entry,
// read at its offset, the data skipped. Enough to tell a container image tarball (docker save, OCI layout) from
// any other archive and to read its small JSON files (manifest.json, index.json, the image config). tar-stream
// (in node_modules through dockerode) would stream the whole archive through us; a 1 GiB image needs only a few
// dozen header reads here.
import { type FileHandle, open } from "node:fs/promises";

export interface TarEntry {
  name: string;
  /** '0' file, '5' directory, '2' symlink, … (POSIX typeflag; NUL is a file). */
  type: string;
  size: number;
  /** Where the entry's data starts in the file. */
  dataOffset: number;
}

export interface TarIndex {
  entries: TarEntry[];
  /** Where the end-of-archive marker (two zero blocks) starts; the file's size when it has none. */
  endOffset: number;
}

const BLOCK = 512;

export class TarError extends Error {
  override name = "TarError";
}

/** True when the first block is a tar header: a `ustar` magic, or a header whose checksum holds (v7 tar). */
export function looksLikeTar(head: Uint8Array): boolean {
  if (head.length < BLOCK) return false;
  if (ascii(head, 257, 5) === "ustar") return true;
  return checksumOk(head.subarray(0, BLOCK));
}

/** The entries of the tar at `path` (at most `maxEntries`; more is refused as not an image tarball). */
export async function readTarIndex(path: string, maxEntries = 100_000): Promise<TarIndex> {
  const fh = await open(path, "r");
  try {
    const size = (await fh.stat()).size;
    const entries: TarEntry[] = [];
    const header = new Uint8Array(BLOCK);
    let offset = 0;
    let longName: string | null = null;
    let paxPath: string | null = null;
    for (;;) {
      if (offset + BLOCK > size) return { entries, endOffset: size };
      await readFully(fh, header, offset);
      if (header.every((b) => b === 0)) return { entries, endOffset: offset };
      if (!checksumOk(header)) throw new TarError(`a damaged tar header at byte ${offset}`);
      const type = String.fromCharCode(header[156]!) || "0";
      const entrySize = sizeField(header.subarray(124, 136));
      const dataOffset = offset + BLOCK;
      if (dataOffset + entrySize > size) throw new TarError(`the entry at byte ${offset} runs past the end of the file`);
      offset = dataOffset + Math.ceil(entrySize / BLOCK) * BLOCK;
      if (type === "L" || type === "x") {
        // GNU long name, PAX extended header: they name the next entry.
        const data = await readAt(fh, dataOffset, Math.min(entrySize, 64 * 1024));
        const text = new TextDecoder().decode(data);
        if (type === "L") longName = text.replace(/\0.*$/s, "");
        else paxPath = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(text)?.[1] ?? paxPath;
        continue;
      }
      if (type === "g") continue;
      const prefix = ascii(header, 345, 155);
      const base = ascii(header, 0, 100);
      const name = paxPath ?? longName ?? (prefix ? `${prefix}/${base}` : base);
      longName = paxPath = null;
      entries.push({ name, type: type === "\0" ? "0" : type, size: entrySize, dataOffset });
      if (entries.length > maxEntries) throw new TarError(`more than ${maxEntries} entries`);
    }
  } finally {
    await fh.close();
  }
}

/** The data of one entry (small ones only: JSON files of an image layout). */
export async function readTarEntry(path: string, entry: TarEntry, maxBytes = 4 * 1024 * 1024): Promise<Uint8Array> {
  if (entry.size > maxBytes) throw new TarError(`${entry.name} is ${entry.size} bytes, more than the ${maxBytes} read of it`);
  const fh = await open(path, "r");
  try {
    return await readAt(fh, entry.dataOffset, entry.size);
  } finally {
    await fh.close();
  }
}

/** A header block for one regular file (ustar), for adding a file to an archive as it is streamed. */
export function fileHeader(name: string, size: number, mtimeSec = 0): Uint8Array<ArrayBuffer> {
  if (name.length > 100) throw new TarError(`name ${name} too long for a ustar header`);
  const h = new Uint8Array(BLOCK);
  const put = (off: number, text: string) => h.set(new TextEncoder().encode(text), off);
  put(0, name);
  put(100, "0000644\0");
  put(108, "0000000\0");
  put(116, "0000000\0");
  put(124, `${size.toString(8).padStart(11, "0")}\0`);
  put(136, `${mtimeSec.toString(8).padStart(11, "0")}\0`);
  put(148, "        ");
  h[156] = "0".charCodeAt(0);
  put(257, "ustar\0");
  put(263, "00");
  let sum = 0;
  for (const b of h) sum += b;
  put(148, `${sum.toString(8).padStart(6, "0")}\0 `);
  return h;
}

/** Normalises an entry name as docker and OCI layouts write them ("./manifest.json" → "manifest.json"). */
export function entryName(name: string): string {
  return name.replace(/^(\.\/)+/, "").replace(/\/+$/, "");
}

function ascii(b: Uint8Array, off: number, len: number): string {
  const s = new TextDecoder("latin1").decode(b.subarray(off, off + len));
  const nul = s.indexOf("\0");
  return nul >= 0 ? s.slice(0, nul) : s;
}

function checksumOk(h: Uint8Array): boolean {
  const stored = Number.parseInt(ascii(h, 148, 8).trim(), 8);
  if (!Number.isFinite(stored)) return false;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return sum === stored;
}

/** Octal, or GNU base-256 for entries over 8 GiB. */
function sizeField(f: Uint8Array): number {
  if (f[0]! & 0x80) {
    let n = 0;
    for (let i = 1; i < f.length; i++) n = n * 256 + f[i]!;
    return n;
  }
  const n = Number.parseInt(ascii(f, 0, f.length).trim() || "0", 8);
  if (!Number.isFinite(n)) throw new TarError("a size field that is not a number");
  return n;
}

async function readFully(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new TarError(`the file ends at byte ${position + done}`);
    done += bytesRead;
  }
}

async function readAt(fh: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await readFully(fh, buf, position);
  return buf;
}
