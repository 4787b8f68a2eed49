// VM disks: checking that a verified content-tree image really is a disk image of its declared format, the
// writable qcow2 overlay a VM runs on, and the cloud-init NoCloud seed.
import { existsSync, openSync, readSync, closeSync, realpathSync, statSync } from "node:fs";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { VmError } from "./errors.ts";
import type { DiskFormat } from "./types.ts";

export interface ImageInfo {
  /** The format qemu-img detects (it reads any file as `raw`). */
  format: string;
  virtualSize: number;
  backingFile: string | null;
  /** For VMDK: the files the descriptor points to. */
  extents: string[];
}

type App = { uuid: string; name?: string } | null;

interface Ran {
  code: number;
  out: string;
  err: string;
}

async function run(cmd: string[]): Promise<Ran> {
  let proc;
  try {
    proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch (err) {
    return { code: 127, out: "", err: `cannot run ${cmd[0]}: ${(err as Error).message}` };
  }
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, out, err };
}

/** `qemu-img info` with format probing; throws `not-a-disk` when qemu-img cannot read the file at all. */
export async function imageInfo(path: string, opts: { qemuImg?: string; app?: App } = {}): Promise<ImageInfo> {
  const r = await run([opts.qemuImg ?? "qemu-img", "info", "--output=json", path]);
  if (r.code !== 0) throw new VmError("not-a-disk", opts.app ?? null, `${path} is not a disk image: ${r.err.trim() || `qemu-img exited ${r.code}`}`);
  const j = JSON.parse(r.out) as {
    format: string;
    "virtual-size": number;
    "backing-filename"?: string;
    "full-backing-filename"?: string;
    "format-specific"?: { type?: string; data?: { extents?: { filename?: string }[] } };
  };
  return {
    format: j.format,
    virtualSize: j["virtual-size"],
    backingFile: j["full-backing-filename"] ?? j["backing-filename"] ?? null,
    extents: (j["format-specific"]?.data?.extents ?? []).map((e) => e.filename ?? "").filter(Boolean),
  };
}

/** Magic numbers of things that are often served in place of an image (an error page, an archive). */
const NOT_DISK_MAGIC: [string, (head: Uint8Array, text: string) => boolean][] = [
  ["an HTML or XML document", (_h, t) => /^\s*<(!doctype|html|\?xml|head|body)/i.test(t)],
  ["a JSON document", (_h, t) => /^\s*[{[]\s*"/.test(t)],
  ["a gzip archive", (h) => h[0] === 0x1f && h[1] === 0x8b],
  ["an xz archive", (h) => h[0] === 0xfd && h[1] === 0x37 && h[2] === 0x7a && h[3] === 0x58 && h[4] === 0x5a],
  ["a zstd archive", (h) => h[0] === 0x28 && h[1] === 0xb5 && h[2] === 0x2f && h[3] === 0xfd],
  ["a bzip2 archive", (h) => h[0] === 0x42 && h[1] === 0x5a && h[2] === 0x68],
  ["a zip archive", (h) => h[0] === 0x50 && h[1] === 0x4b && h[2] === 0x03 && h[3] === 0x04],
  ["a tar archive", (h) => new TextDecoder().decode(h.subarray(257, 262)) === "ustar"],
];

function readHead(path: string, bytes: number, offset = 0): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const buf = new Uint8Array(bytes);
    const n = readSync(fd, buf, 0, bytes, offset);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/**
 * Refuses (VmError `not-a-disk`) a file that is not a disk image of the declared format: qemu-img cannot read
 * it, it detects another format (either way: a "raw" file that is really qcow2 is refused too, since its
 * header could name host files), a qcow2 with a backing file or a VMDK whose extents are other files (a
 * downloaded image must not reach into the host), or a "raw" file that is empty, not whole 512-byte sectors,
 * or an HTML page or archive. `iso` also requires the ISO 9660 signature.
 */
export async function verifyDiskImage(
  path: string,
  format: DiskFormat,
  opts: { qemuImg?: string; app?: App; iso?: boolean } = {},
): Promise<ImageInfo> {
  const app = opts.app ?? null;
  const refuse = (why: string): never => {
    throw new VmError("not-a-disk", app, `${path} is not a ${opts.iso ? "ISO 9660 (CD-ROM)" : format} disk image: ${why}`);
  };
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) refuse("not a regular file");
    size = st.size;
  } catch (err) {
    if (err instanceof VmError) throw err;
    return refuse((err as Error).message);
  }
  if (size === 0) refuse("the file is empty");
  const info = await imageInfo(path, { qemuImg: opts.qemuImg, app });
  if (info.format !== format) refuse(`qemu-img reads it as ${info.format}`);
  if (info.backingFile) refuse(`it has a backing file (${info.backingFile}); a content tree must be self-contained`);
  const self = realpathSync(path);
  const foreign = info.extents.filter((e) => resolve(dirname(path), e) !== self && e !== path);
  if (foreign.length) refuse(`its extents are other files (${foreign.join(", ")})`);
  if (format === "raw") {
    const head = readHead(path, 512);
    const text = new TextDecoder("latin1").decode(head.subarray(0, 64));
    for (const [what, test] of NOT_DISK_MAGIC) if (test(head, text)) refuse(`it is ${what}`);
    if (size % 512 !== 0) refuse(`its size (${size} bytes) is not a whole number of 512-byte sectors`);
  }
  if (opts.iso) {
    const sig = new TextDecoder().decode(readHead(path, 5, 0x8001));
    if (sig !== "CD001") refuse("no ISO 9660 signature (CD001 at byte 32769)");
  }
  return info;
}

export interface PrepareDiskOptions {
  /** The verified content-tree image; it is only ever read (the overlay's backing file). */
  baseImage: string;
  format: DiskFormat;
  /** The VM's writable disk (the volume), a qcow2 overlay. Kept when it already exists over `baseImage`. */
  dest: string;
  /** The volume's size; the overlay is never smaller than the image. */
  sizeBytes?: number;
  app?: App;
  qemuImg?: string;
}

export interface PreparedDisk {
  path: string;
  format: "qcow2";
  virtualSize: number;
  /** False when an existing overlay was kept (the guest's writes survive a restart of the app). */
  created: boolean;
}

/**
 * The VM's writable disk: `qemu-img create -f qcow2 -b <base> -F <format>` over the verified image, grown to
 * `sizeBytes`. Idempotent: an existing overlay over the same image is kept (and grown if the size went up);
 * one over another image is refused (purge the volume first).
 */
export async function prepareDisk(opts: PrepareDiskOptions): Promise<PreparedDisk> {
  const qemuImg = opts.qemuImg ?? "qemu-img";
  const app = opts.app ?? null;
  const base = resolve(opts.baseImage);
  const baseInfo = await verifyDiskImage(base, opts.format, { qemuImg, app });
  const wanted = Math.max(opts.sizeBytes ?? 0, baseInfo.virtualSize);

  if (existsSync(opts.dest)) {
    const info = await imageInfo(opts.dest, { qemuImg, app });
    if (info.format !== "qcow2" || !info.backingFile || resolve(dirname(opts.dest), info.backingFile) !== base)
      throw new VmError(
        "disk",
        app,
        `${opts.dest} exists but is not an overlay of ${base} (format ${info.format}, backing file ${info.backingFile ?? "none"}); purge the volume to recreate it`,
      );
    if (info.virtualSize < wanted) {
      const r = await run([qemuImg, "resize", "-f", "qcow2", opts.dest, String(wanted)]);
      if (r.code !== 0) throw new VmError("disk", app, `growing ${opts.dest} to ${wanted} bytes failed: ${r.err.trim()}`);
    }
    return { path: opts.dest, format: "qcow2", virtualSize: Math.max(info.virtualSize, wanted), created: false };
  }

  const tmp = `${opts.dest}.tmp-${process.pid}`;
  const r = await run([qemuImg, "create", "-q", "-f", "qcow2", "-b", base, "-F", opts.format, tmp, String(wanted)]);
  if (r.code !== 0) {
    await rm(tmp, { force: true });
    throw new VmError("disk", app, `creating the overlay ${opts.dest} over ${base} failed: ${r.err.trim()}`);
  }
  await rename(tmp, opts.dest);
  return { path: opts.dest, format: "qcow2", virtualSize: wanted, created: true };
}

/**
 * A cloud-init NoCloud seed: a small FAT image labelled CIDATA holding `user-data` and `meta-data`
 * (instance-id = the app uuid, so cloud-init runs once per app). Needs mkfs.vfat and mcopy (dosfstools, mtools).
 */
export async function makeNoCloudSeed(opts: { dest: string; userData: string; app: { uuid: string; name: string } }): Promise<void> {
  const mkfs = Bun.which("mkfs.vfat") ?? ["/usr/sbin/mkfs.vfat", "/sbin/mkfs.vfat"].find(existsSync);
  const mcopy = Bun.which("mcopy");
  if (!mkfs || !mcopy)
    throw new VmError("cloud-init", opts.app, "the cloud-init seed needs mkfs.vfat and mcopy (Debian packages dosfstools and mtools)");
  const work = await mkdtemp(join(dirname(opts.dest), ".seed-"));
  try {
    const hostname = opts.app.name.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 63) || "vm";
    await writeFile(join(work, "user-data"), opts.userData);
    await writeFile(join(work, "meta-data"), `instance-id: ${opts.app.uuid}\nlocal-hostname: ${hostname}\n`);
    const img = join(work, "seed.img");
    const kib = Math.max(1024, Math.ceil(Buffer.byteLength(opts.userData) / 1024) + 512);
    for (const cmd of [
      [mkfs, "-C", "-n", "CIDATA", img, String(kib)],
      [mcopy, "-i", img, join(work, "user-data"), join(work, "meta-data"), "::/"],
    ]) {
      const r = await run(cmd);
      if (r.code !== 0) throw new VmError("cloud-init", opts.app, `building the cloud-init seed failed: ${cmd[0]}: ${r.err.trim()}`);
    }
    await rename(img, opts.dest);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
