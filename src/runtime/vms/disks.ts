// VM disks: checking that a verified content-tree image really is a disk image of its declared format, the
// writable qcow2 overlay a VM runs on, and the cloud-init NoCloud seed.
import { existsSync, openSync, readSync, closeSync, realpathSync, statSync } from "node:fs";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { run, type RunResult } from "../../lib/run.ts";
import { VmError } from "./errors.ts";
import type { DiskFormat } from "./types.ts";

export interface ImageInfo {
  /** The format qemu-img detects (it reads any file as `raw`). */
  format: string;
  virtualSize: number;
  backingFile: string | null;
  /** For VMDK: the files the descriptor points to. */
  extents: string[];
  /** Everything qemu-img's report (the whole `--backing-chain`) names besides the image itself: what it is, and the name. */
  references: ImageReference[];
}

/** A file, node or URI an image would make QEMU open besides itself. */
export interface ImageReference {
  what: string;
  name: string;
}

type App = { uuid: string; name?: string } | null;

/** qemu-img, mkfs.vfat, mcopy: each gets this long before it is killed. */
const TOOL_TIMEOUT_MS = 120_000;

/** What a failed tool said, or that it hung. */
function said(r: RunResult, argv: readonly string[], timeoutMs = TOOL_TIMEOUT_MS): string {
  return r.timedOut ? `${r.stderr}${argv[0]} did not finish within ${timeoutMs} ms` : r.stderr;
}

// ---- what an image file itself says it refers to (read before any qemu-img or QEMU opens it)

const QCOW_MAGIC = 0x514649fb; // "QFI\xfb": qcow (version 1) and qcow2 (2, 3)
const QCOW2_EXT_BACKING_FORMAT = 0xe2792aca;
const QCOW2_EXT_DATA_FILE = 0x44415441;
const QCOW2_INCOMPAT_DATA_FILE = 1n << 2n;

export interface HeaderFacts {
  /** qcow, qcow2, vmdk (sparse or descriptor), or null for anything else (QEMU's drivers of those follow no names). */
  kind: "qcow" | "qcow2" | "vmdk" | null;
  /** The backing file the header names, and its format when the header records it. */
  backing: { name: string; format: string | null } | null;
  /** Why the header is refused whatever the declared format: a data file, encryption, a VMDK that names other files. */
  problems: string[];
}

/**
 * Reads the header of an image the way QEMU's qcow/qcow2/vmdk drivers do, without qemu-img: a backing file name,
 * an external data file (the incompatible feature bit or the header extension), encryption, and VMDK descriptors
 * (their extents and parent are other files). Any file can be read: its magic, not its declared format, decides,
 * so a "raw" file that is really qcow2 is caught here too.
 */
export function readImageHeader(path: string): HeaderFacts {
  const head = readHead(path, 64 * 1024);
  const facts: HeaderFacts = { kind: null, backing: null, problems: [] };
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const text = (off: number, len: number) => new TextDecoder("latin1").decode(head.subarray(off, off + len));
  if (head.length >= 72 && view.getUint32(0) === QCOW_MAGIC) {
    const version = view.getUint32(4);
    facts.kind = version === 1 ? "qcow" : "qcow2";
    const backingOffset = view.getBigUint64(8);
    const backingSize = version === 1 ? view.getUint32(16) : view.getUint32(16);
    // qcow: crypt_method at 36; qcow2: at 32.
    if (view.getUint32(version === 1 ? 36 : 32) !== 0) facts.problems.push("it is encrypted (no key is ever given to QEMU)");
    let backingFormat: string | null = null;
    if (version >= 2) {
      const incompatible = version >= 3 && head.length >= 80 ? view.getBigUint64(72) : 0n;
      let dataFile: string | null = null;
      // Header extensions follow the header (72 bytes in version 2, header_length in version 3).
      let off = version >= 3 && head.length >= 104 ? view.getUint32(100) : 72;
      while (off + 8 <= head.length) {
        const type = view.getUint32(off);
        const len = view.getUint32(off + 4);
        if (type === 0) break;
        const data = off + 8 + len <= head.length ? text(off + 8, len) : "";
        if (type === QCOW2_EXT_DATA_FILE) dataFile = data || "named in its header";
        if (type === QCOW2_EXT_BACKING_FORMAT) backingFormat = data;
        off += 8 + Math.ceil(len / 8) * 8;
      }
      // With data_file_raw the guest reads and writes that file as its disk; without, its clusters live there.
      if (dataFile !== null || incompatible & QCOW2_INCOMPAT_DATA_FILE)
        facts.problems.push(`it has an external data file (${dataFile ?? "its clusters live in another file"})`);
    }
    if (backingOffset !== 0n) {
      const o = Number(backingOffset);
      const name = o + backingSize <= head.length ? text(o, backingSize) : `(${backingSize} bytes at offset ${o})`;
      facts.backing = { name, format: backingFormat };
    }
    return facts;
  }
  if (head.length >= 512 && text(0, 4) === "KDMV") {
    facts.kind = "vmdk";
    const capacity = view.getBigUint64(12, true);
    const descOffset = Number(view.getBigUint64(28, true)) * 512;
    const descSize = Math.min(Number(view.getBigUint64(36, true)) * 512, 64 * 1024);
    const desc = descOffset > 0 && descSize > 0 ? new TextDecoder("latin1").decode(readHead(path, descSize, descOffset)) : "";
    // A sparse header with no capacity is read as a descriptor: its extents are whatever files it names.
    if (capacity === 0n && descOffset > 0) facts.problems.push("it is a VMDK descriptor (its extents are other files)");
    if (/^\s*parentFileNameHint\s*=/m.test(desc)) facts.problems.push("it is a VMDK delta disk (its parent is another file)");
    return facts;
  }
  // A text descriptor, as QEMU's vmdk probe finds one: after comment lines, "version=1|2|3".
  if (text(0, 4) === "QED\0") {
    facts.problems.push("it is a QED image (not a format of EVE content trees; its header can name a backing file)");
    return facts;
  }
  const start = text(0, 1024);
  const firstLine = start.split("\n").find((l) => l.trim() !== "" && !l.trimStart().startsWith("#")) ?? "";
  if (/#\s*Disk DescriptorFile/i.test(start) || /^\s*version=[123]\r?$/.test(firstLine)) {
    facts.kind = "vmdk";
    facts.problems.push("it is a VMDK descriptor (its extents are other files)");
  }
  return facts;
}

/** Names QEMU reads as a protocol or a JSON node description rather than a plain file. */
const PROTOCOL_NAME = /^(json|nbd|file|https?|ftps?|ssh|iscsi|gluster|rbd|nfs|sheepdog|vvfat|vxhs|blkdebug|blkverify|blklogwrites|quorum|null-co|null-aio|throttle|host_device|host_cdrom|nvme|compress|copy-on-read|preallocate|snapshot-access|luks|raw)[:+]/i;

/** Everything one element of `qemu-img info --output=json` names that is not `self` (the image's own file name). */
function referencesIn(info: Record<string, any>, self: string): ImageReference[] {
  const out: ImageReference[] = [];
  const spec = info["format-specific"]?.data ?? {};
  if (info["backing-filename"] || info["full-backing-filename"])
    out.push({ what: "a backing file", name: info["full-backing-filename"] ?? info["backing-filename"] });
  if (spec["data-file"]) out.push({ what: "an external data file", name: String(spec["data-file"]) });
  for (const e of spec.extents ?? []) if (e?.filename && e.filename !== self) out.push({ what: "a VMDK extent in another file", name: String(e.filename) });
  if (info.encrypted === true || spec.encrypt) out.push({ what: "encryption", name: String(spec.encrypt?.format ?? "encrypted") });
  // Any other file name or protocol anywhere in the report (children, nodes of a json: description).
  const walk = (v: unknown, key: string, depth: number): void => {
    if (depth > 8 || v === null || v === undefined) return;
    if (typeof v === "string") {
      if (PROTOCOL_NAME.test(v)) out.push({ what: `a "${v.split(/[:+]/)[0]}" reference`, name: v });
      else if (/(^|-)filename$|^file$|^data-file$/.test(key) && v !== self && !out.some((r) => r.name === v))
        out.push({ what: "another file", name: v });
      return;
    }
    if (Array.isArray(v)) v.forEach((x) => walk(x, key, depth + 1));
    else if (typeof v === "object") for (const [k, x] of Object.entries(v)) walk(x, k, depth + 1);
  };
  walk(info, "", 0);
  const seen = new Set<string>();
  return out.filter((r) => {
    const k = `${r.what}\0${r.name}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * `qemu-img info` with format probing (`--backing-chain` when the header names a backing file, after that file's
 * own header was found clean); throws `not-a-disk` when qemu-img cannot read the file at all. The header is read
 * first (`readImageHeader`): an image whose header names other files is refused before qemu-img opens it, since
 * qemu-img would open them too (a data file; a backing file when the chain is followed).
 */
export async function imageInfo(path: string, opts: { qemuImg?: string; app?: App } = {}): Promise<ImageInfo> {
  const app = opts.app ?? null;
  // An absolute name: qemu-img never reads it as a protocol ("nbd:…") or a JSON description ("json:{…}").
  const abs = resolve(path);
  let header: HeaderFacts;
  try {
    header = readImageHeader(abs);
  } catch (err) {
    throw new VmError("not-a-disk", app, `${path} is not a disk image: ${(err as Error).message}`);
  }
  if (header.problems.length) throw new VmError("not-a-disk", app, `${path} is refused: ${header.problems.join("; ")}`);
  const chain = header.backing !== null;
  if (chain) {
    // Only a backing file that is itself a plain file without references is followed (an overlay of ours).
    const name = header.backing!.name;
    if (PROTOCOL_NAME.test(name)) throw new VmError("not-a-disk", app, `${path} is refused: its backing file is a "${name.split(/[:+]/)[0]}" reference (${name})`);
    const target = resolve(dirname(abs), name);
    let sub: HeaderFacts;
    try {
      sub = readImageHeader(target);
    } catch (err) {
      throw new VmError("not-a-disk", app, `${path}: its backing file ${name} cannot be read: ${(err as Error).message}`);
    }
    if (sub.problems.length || sub.backing)
      throw new VmError("not-a-disk", app, `${path} is refused: its backing file ${name} refers to other files (${[...sub.problems, ...(sub.backing ? [`backing file ${sub.backing.name}`] : [])].join("; ")})`);
  }
  // The chain only once its backing file was read and found clean above: qemu-img opens what it follows.
  const infoArgv = [opts.qemuImg ?? "qemu-img", "info", ...(chain ? ["--backing-chain"] : []), "--output=json", abs];
  const r = await run(infoArgv, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new VmError("not-a-disk", app, `${path} is not a disk image: ${said(r, infoArgv, 60_000).trim() || `qemu-img exited ${r.code}`}`);
  const parsed = JSON.parse(r.stdout) as Record<string, any> | Record<string, any>[];
  const list = Array.isArray(parsed) ? parsed : [parsed];
  const j = list[0]!;
  const references = list.flatMap((info, i) => {
    const own = String(info.filename ?? "");
    const refs = referencesIn(info, own);
    if (i === 0 && own !== abs) refs.push({ what: "another file than the image", name: own });
    // The chain's next element is the backing file named above: that one is allowed to be reported by its caller.
    return refs;
  });
  return {
    format: j.format,
    virtualSize: j["virtual-size"],
    backingFile: j["full-backing-filename"] ?? j["backing-filename"] ?? null,
    extents: (j["format-specific"]?.data?.extents ?? []).map((e: { filename?: string }) => e.filename ?? "").filter(Boolean),
    references,
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
  // Before qemu-img opens it: qemu-img (and QEMU) would open whatever the header names.
  let header: HeaderFacts;
  try {
    header = readImageHeader(path);
  } catch (err) {
    return refuse((err as Error).message);
  }
  if (header.problems.length) refuse(`${header.problems.join("; ")}; a content tree must be self-contained`);
  if (header.backing) refuse(`it has a backing file (${header.backing.name}); a content tree must be self-contained`);
  const info = await imageInfo(path, { qemuImg: opts.qemuImg, app });
  if (info.format !== format) refuse(`qemu-img reads it as ${info.format}`);
  if (info.backingFile) refuse(`it has a backing file (${info.backingFile}); a content tree must be self-contained`);
  const self = realpathSync(path);
  const foreign = info.extents.filter((e) => resolve(dirname(path), e) !== self && e !== path);
  if (foreign.length) refuse(`its extents are other files (${foreign.join(", ")})`);
  const refs = info.references.filter((r) => !(r.what.startsWith("a VMDK extent") && resolve(dirname(path), r.name) === self));
  if (refs.length) refuse(`it refers to ${refs.map((r) => `${r.what} (${r.name})`).join(", ")}; a content tree must be self-contained`);
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
    const other = info.references.filter((r) => !(r.what === "a backing file" && resolve(dirname(opts.dest), r.name) === base) && r.name !== base);
    if (other.length)
      throw new VmError("disk", app, `${opts.dest} refers to ${other.map((r) => `${r.what} (${r.name})`).join(", ")}; purge the volume to recreate it`);
    if (info.virtualSize < wanted) {
      const argv = [qemuImg, "resize", "-f", "qcow2", opts.dest, String(wanted)];
      const r = await run(argv, { timeoutMs: TOOL_TIMEOUT_MS });
      if (r.code !== 0) throw new VmError("disk", app, `growing ${opts.dest} to ${wanted} bytes failed: ${said(r, argv).trim()}`);
    }
    return { path: opts.dest, format: "qcow2", virtualSize: Math.max(info.virtualSize, wanted), created: false };
  }

  const tmp = `${opts.dest}.tmp-${process.pid}`;
  const argv = [qemuImg, "create", "-q", "-f", "qcow2", "-b", base, "-F", opts.format, tmp, String(wanted)];
  const r = await run(argv, { timeoutMs: TOOL_TIMEOUT_MS });
  if (r.code !== 0) {
    await rm(tmp, { force: true });
    throw new VmError("disk", app, `creating the overlay ${opts.dest} over ${base} failed: ${said(r, argv).trim()}`);
  }
  await rename(tmp, opts.dest);
  return { path: opts.dest, format: "qcow2", virtualSize: wanted, created: true };
}

/** A new empty qcow2 (a blank volume's disk); kept when it exists. */
export async function createBlankDisk(opts: { dest: string; sizeBytes: number; qemuImg?: string; app?: App }): Promise<void> {
  if (existsSync(opts.dest)) return;
  const tmp = `${opts.dest}.tmp-${process.pid}`;
  const argv = [opts.qemuImg ?? "qemu-img", "create", "-q", "-f", "qcow2", tmp, String(opts.sizeBytes)];
  const r = await run(argv, { timeoutMs: TOOL_TIMEOUT_MS });
  if (r.code !== 0) {
    await rm(tmp, { force: true });
    throw new VmError("disk", opts.app ?? null, `creating the blank disk ${opts.dest} failed: ${said(r, argv).trim()}`);
  }
  await rename(tmp, opts.dest);
}

/** The backing of a VM disk as QEMU is told it (`-blockdev … "backing": …`), never read from the header by QEMU. */
export interface DiskBacking {
  path: string;
  format: DiskFormat;
}

/**
 * The check of every disk right before QEMU opens it: its header names no data file, no encryption and no other
 * VMDK files, and a backing file only when that is itself a self-contained image of a recorded format (an overlay
 * over a verified content tree). Returns that backing, so the command line states it instead of QEMU following
 * the header. Files whose magic is none of qcow, qcow2 or VMDK name nothing QEMU would follow (it opens each with
 * its declared format, never probing), so whether they are of that format is QEMU's to say.
 */
export async function checkDiskBeforeStart(
  disk: { path: string; format: DiskFormat },
  opts: { qemuImg?: string; app?: App } = {},
): Promise<DiskBacking | null> {
  const app = opts.app ?? null;
  let header: HeaderFacts;
  try {
    header = readImageHeader(disk.path);
  } catch (err) {
    throw new VmError("not-a-disk", app, `${disk.path} cannot be read: ${(err as Error).message}`);
  }
  if (header.problems.length) throw new VmError("not-a-disk", app, `${disk.path} is refused: ${header.problems.join("; ")}`);
  if (!header.backing || header.kind !== disk.format) return null;
  const { name, format } = header.backing;
  if (PROTOCOL_NAME.test(name) || !name.startsWith("/"))
    throw new VmError("not-a-disk", app, `${disk.path} is refused: its backing file is not an absolute file name (${name})`);
  if (!format || !["raw", "qcow2", "qcow", "vmdk", "vhdx", "vpc"].includes(format))
    throw new VmError("not-a-disk", app, `${disk.path} is refused: its backing file ${name} has no recorded format${format ? ` evebox runs (${format})` : ""}`);
  await verifyDiskImage(name, format as DiskFormat, { qemuImg: opts.qemuImg, app });
  return { path: name, format: format as DiskFormat };
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
      const r = await run(cmd, { timeoutMs: TOOL_TIMEOUT_MS });
      if (r.code !== 0) throw new VmError("cloud-init", opts.app, `building the cloud-init seed failed: ${cmd[0]}: ${said(r, cmd).trim()}`);
    }
    await rename(img, opts.dest);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
