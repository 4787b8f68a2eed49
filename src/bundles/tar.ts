// The bundle file: an uncompressed ustar archive of bundle.json, bundle.sig (optional) and images/<sha256>.
// Read by its table of contents (storage/tar.ts: one header read per entry, the data never streamed through
// us), written as a stream (an image may be gigabytes: it is copied in 1 MiB reads, never held in memory).
// Why no library: tar-stream is only in node_modules through dockerode (not our dependency), Bun.Archive
// builds an archive in memory; a ustar header is 512 bytes that storage/tar.ts already writes.
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { entryName, fileHeader, readTarEntry, readTarIndex, TarError, type TarEntry } from "../storage/tar.ts";
import { BundleInvalid } from "./manifest.ts";

export const MANIFEST_ENTRY = "bundle.json";
export const SIGNATURE_ENTRY = "bundle.sig";
const MAX_MANIFEST = 4 * 1024 * 1024;

export interface BundleFile {
  path: string;
  manifestBytes: Uint8Array;
  signature: Uint8Array | null;
  /** images/<sha256> entries by sha256. */
  images: Map<string, TarEntry>;
}

/** The entries of a bundle file; anything but bundle.json, bundle.sig and images/<sha256> refuses it. */
export async function readBundleFile(path: string): Promise<BundleFile> {
  let entries: TarEntry[];
  try {
    entries = (await readTarIndex(path, 1000)).entries;
  } catch (e) {
    throw new BundleInvalid([{ path: "", message: e instanceof TarError ? `not a bundle file (a tar archive): ${e.message}` : `cannot read the bundle file: ${(e as Error).message}` }]);
  }
  const seen = new Set<string>();
  let manifest: TarEntry | null = null;
  let sig: TarEntry | null = null;
  const images = new Map<string, TarEntry>();
  for (const e of entries) {
    const name = entryName(e.name);
    if (seen.has(name)) throw new BundleInvalid([{ path: name, message: "the bundle holds this entry twice" }]);
    seen.add(name);
    if (e.type === "5" && name === "images") continue;
    const regular = e.type === "0";
    if (name === MANIFEST_ENTRY && regular) manifest = e;
    else if (name === SIGNATURE_ENTRY && regular) sig = e;
    else if (regular && /^images\/[0-9a-f]{64}$/.test(name)) images.set(name.slice(7), e);
    else throw new BundleInvalid([{ path: name.slice(0, 128), message: "an unexpected entry: a bundle holds only bundle.json, bundle.sig and images/<sha256> files" }]);
  }
  if (!manifest) throw new BundleInvalid([{ path: "", message: "not a bundle: no bundle.json in the file" }]);
  if (manifest.size > MAX_MANIFEST) throw new BundleInvalid([{ path: MANIFEST_ENTRY, message: `${manifest.size} bytes: at most ${MAX_MANIFEST}` }]);
  if (sig && sig.size !== 64) throw new BundleInvalid([{ path: SIGNATURE_ENTRY, message: `${sig.size} bytes: an ed25519 signature is 64` }]);
  return {
    path,
    manifestBytes: await readTarEntry(path, manifest, MAX_MANIFEST),
    signature: sig ? await readTarEntry(path, sig, 64) : null,
    images,
  };
}

/** The sha256 (hex) of `length` bytes of `path` from `offset`, read in 1 MiB pieces. */
export async function sha256OfRange(path: string, offset: number, length: number, signal?: AbortSignal): Promise<string> {
  const h = createHash("sha256");
  const fh = await open(path, "r");
  try {
    const buf = new Uint8Array(1024 * 1024);
    let done = 0;
    while (done < length) {
      signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, length - done), offset + done);
      if (bytesRead === 0) throw new Error(`${path} ends at byte ${offset + done}`);
      h.update(buf.subarray(0, bytesRead));
      done += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return h.digest("hex");
}

export interface FileToAdd {
  name: string;
  /** Either the bytes, or a file to copy. */
  bytes?: Uint8Array;
  path?: string;
  size: number;
}

/** Writes a ustar archive of `files` to `out`, streaming each file's bytes. */
export async function writeTar(out: string, files: FileToAdd[]): Promise<void> {
  const fh = await open(out, "w", 0o644);
  try {
    let pos = 0;
    const write = async (b: Uint8Array) => {
      let done = 0;
      while (done < b.length) done += (await fh.write(b, done, b.length - done, pos + done)).bytesWritten;
      pos += b.length;
    };
    for (const f of files) {
      await write(fileHeader(f.name, f.size));
      if (f.bytes) await write(f.bytes);
      else {
        const src = await open(f.path!, "r");
        try {
          const buf = new Uint8Array(1024 * 1024);
          let done = 0;
          while (done < f.size) {
            const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, f.size - done), done);
            if (bytesRead === 0) throw new Error(`${f.path} ended after ${done} of ${f.size} bytes (changed while the bundle was built)`);
            await write(buf.subarray(0, bytesRead));
            done += bytesRead;
          }
        } finally {
          await src.close();
        }
      }
      const pad = (512 - (f.size % 512)) % 512;
      if (pad) await write(new Uint8Array(pad));
    }
    await write(new Uint8Array(1024)); // the end-of-archive marker
  } finally {
    await fh.close();
  }
}
