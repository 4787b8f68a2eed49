// The device's partitions, found by their GPT labels (rootfs/build.ts writes them): the EFI system partition
// (boot loader and its environment), CONFIG (EVE's /config: FAT, so a person can put a controller URL and
// certificates on it from any PC) and PERSIST (ext4: the store, images, volumes). PERSIST is checked at each
// boot; a blank one (first boot) is grown to the end of the disk and formatted, a damaged one that fsck cannot
// repair is formatted again, and a missing one leaves the device running on a tmpfs — each reported.
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, realpathSync, statfsSync } from "node:fs";
import { basename, dirname } from "node:path";
import { run } from "../lib/run.ts";
import { MS, mount } from "./libc.ts";
import { isMounted } from "./mounts.ts";

export interface BlockPartition {
  /** e.g. /dev/vda5 */
  dev: string;
  /** The kernel's name, e.g. vda5 */
  name: string;
  /** The parent disk, e.g. vda */
  disk: string;
  number: number;
  label: string;
  sizeBytes: number;
}

/** Every partition with a GPT label, from sysfs. */
export function listPartitions(sys = "/sys"): BlockPartition[] {
  const out: BlockPartition[] = [];
  let names: string[];
  try {
    names = readdirSync(`${sys}/class/block`);
  } catch {
    return out;
  }
  for (const name of names) {
    let uevent: string;
    try {
      uevent = readFileSync(`${sys}/class/block/${name}/uevent`, "utf8");
    } catch {
      continue;
    }
    const field = (k: string) => uevent.match(new RegExp(`^${k}=(.*)$`, "m"))?.[1];
    const label = field("PARTNAME");
    const number = Number(field("PARTN"));
    if (!label || !number) continue;
    // /sys/class/block/vda5 → …/block/vda/vda5: the parent directory is the disk.
    let disk: string;
    try {
      disk = basename(dirname(realpathSync(`${sys}/class/block/${name}`)));
    } catch {
      disk = name.replace(/p?\d+$/, "");
    }
    const sectors = Number(readFileSync(`${sys}/class/block/${name}/size`, "utf8").trim());
    out.push({ dev: `/dev/${field("DEVNAME") ?? name}`, name, disk, number, label, sizeBytes: sectors * 512 });
  }
  return out;
}

export function findPartition(label: string, sys = "/sys"): BlockPartition | null {
  return listPartitions(sys).find((p) => p.label === label) ?? null;
}

/** `length` bytes of `dev` from `offset` (fewer at its end), or null when it cannot be opened. */
function readAt(dev: string, length: number, offset: number): Buffer | null {
  let fd: number;
  try {
    fd = openSync(dev, "r");
  } catch {
    return null;
  }
  try {
    const buf = Buffer.alloc(length);
    return buf.subarray(0, readSync(fd, buf, 0, length, offset));
  } finally {
    closeSync(fd);
  }
}

/** True when the first MiB of `dev` is all zeros: a partition nothing was ever written to. */
export function isBlank(dev: string): boolean {
  const head = readAt(dev, 1024 * 1024, 0);
  return head !== null && head.every((b) => b === 0);
}

/** An ext2/3/4 superblock at 1024 bytes: magic 0xEF53 at offset 56. */
export function hasExtFilesystem(dev: string): boolean {
  const magic = readAt(dev, 2, 1024 + 56);
  return magic !== null && magic.length === 2 && magic.readUInt16LE(0) === 0xef53;
}

/** sgdisk, partx, mkfs.ext4, e2fsck: each gets ten minutes (a large disk's check) before it is killed. */
async function tool(cmd: string[]): Promise<{ code: number; out: string }> {
  const r = await run(cmd, { timeoutMs: 600_000 });
  return { code: r.code, out: `${r.stdout}${r.stderr}`.trim() };
}

export interface PersistReport {
  mountpoint: string;
  dev: string | null;
  /** "mounted": an existing file system; "formatted": made now (first boot, or beyond repair); "tmpfs": no partition. */
  outcome: "mounted" | "formatted" | "tmpfs";
  /** Why it was formatted, or what fsck repaired; null when there is nothing to say. */
  note: string | null;
  grownToBytes: number | null;
  level: "info" | "warn" | "error";
}

/**
 * Grows the last partition of the disk to the disk's end when the image was written to a bigger disk (first boot
 * only: the partition holds no file system yet). sgdisk rewrites the table; partx tells the kernel, which cannot
 * re-read a table while the other partitions are mounted.
 */
async function growToDiskEnd(p: BlockPartition, sys: string): Promise<number | null> {
  const diskSectors = Number(readFileSync(`${sys}/class/block/${p.disk}/size`, "utf8").trim());
  const start = Number(readFileSync(`${sys}/class/block/${p.name}/start`, "utf8").trim());
  const endNow = start + p.sizeBytes / 512;
  // 33 sectors of backup GPT at the end, plus alignment slack: grow only when it is worth it (≥ 64 MiB).
  if (diskSectors - endNow < (64 * 1024 * 1024) / 512) return null;
  const later = listPartitions(sys).filter((q) => q.disk === p.disk && q.number > p.number);
  if (later.length) return null;
  const disk = `/dev/${p.disk}`;
  for (const cmd of [
    ["sgdisk", "-e", disk],
    ["sgdisk", "-d", String(p.number), "-n", `${p.number}:${start}:0`, "-c", `${p.number}:${p.label}`, "-t", `${p.number}:8300`, disk],
    ["partx", "-u", "--nr", String(p.number), disk],
  ]) {
    const r = await tool(cmd);
    if (r.code !== 0) throw new Error(`${cmd.join(" ")}: ${r.out}`);
  }
  return Number(readFileSync(`${sys}/class/block/${p.name}/size`, "utf8").trim()) * 512;
}

async function mkfsExt4(dev: string, label: string): Promise<void> {
  const r = await tool(["mkfs.ext4", "-F", "-q", "-L", label, "-m", "1", "-E", "lazy_itable_init=1,lazy_journal_init=1", dev]);
  if (r.code !== 0) throw new Error(`mkfs.ext4 ${dev}: ${r.out}`);
}

function mountExt4(dev: string, target: string): void {
  mkdirSync(target, { recursive: true });
  mount(dev, target, "ext4", MS.NOATIME | MS.NODEV, "errors=remount-ro");
}

/** Finds, checks (formats when blank or beyond repair) and mounts PERSIST at `mountpoint`. Never throws. */
export async function preparePersist(opts: { mountpoint: string; label?: string; sys?: string; grow?: boolean }): Promise<PersistReport> {
  const label = opts.label ?? "PERSIST";
  const sys = opts.sys ?? "/sys";
  const { mountpoint } = opts;
  const p = findPartition(label, sys);
  const tmpfs = (note: string): PersistReport => {
    try {
      if (!isMounted(mountpoint)) {
        mkdirSync(mountpoint, { recursive: true });
        mount("persist", mountpoint, "tmpfs", MS.NOSUID | MS.NODEV, "mode=0755,size=50%");
      }
    } catch (e) {
      note += `; and the tmpfs fallback failed: ${(e as Error).message}`;
    }
    return { mountpoint, dev: p?.dev ?? null, outcome: "tmpfs", note, grownToBytes: null, level: "error" };
  };
  if (!p) return tmpfs(`no partition labelled ${label}: state is kept in memory only and lost at reboot`);
  if (isMounted(mountpoint)) return { mountpoint, dev: p.dev, outcome: "mounted", note: null, grownToBytes: null, level: "info" };

  let note: string | null = null;
  let level: PersistReport["level"] = "info";
  let grownToBytes: number | null = null;
  try {
    if (!hasExtFilesystem(p.dev)) {
      const blank = isBlank(p.dev);
      if (blank && opts.grow !== false) {
        try {
          grownToBytes = await growToDiskEnd(p, sys);
        } catch (e) {
          note = `could not grow ${label} to the end of the disk (${(e as Error).message}); `;
        }
      }
      await mkfsExt4(p.dev, label);
      mountExt4(p.dev, mountpoint);
      if (!blank) return { mountpoint, dev: p.dev, outcome: "formatted", note: `${label} (${p.dev}) held no ext4 file system (damaged or overwritten): formatted it; what it held is lost`, grownToBytes, level: "error" };
      return { mountpoint, dev: p.dev, outcome: "formatted", note: `${note ?? ""}${label} (${p.dev}) was blank: formatted it (first boot)`, grownToBytes, level: note ? "warn" : "info" };
    }
    // e2fsck: 0 clean, 1 errors fixed, 2 fixed (reboot advised), 4 errors left, 8 operational error.
    const preen = await tool(["e2fsck", "-p", p.dev]);
    let fsck = preen.code;
    if (fsck & 4) {
      const hard = await tool(["e2fsck", "-y", p.dev]);
      fsck = hard.code;
      note = `${label}: e2fsck -p could not repair it; e2fsck -y answered ${hard.code}`;
      level = "warn";
    } else if (fsck & 3) {
      note = `${label}: e2fsck repaired errors`;
      level = "warn";
    }
    if (fsck & 12) throw new Error(`e2fsck left errors (exit ${fsck})`);
    mountExt4(p.dev, mountpoint);
    return { mountpoint, dev: p.dev, outcome: "mounted", note, grownToBytes, level };
  } catch (e) {
    // Beyond repair: the device must come up and stay manageable, so the partition is made new.
    const why = (e as Error).message;
    try {
      await mkfsExt4(p.dev, label);
      mountExt4(p.dev, mountpoint);
      return { mountpoint, dev: p.dev, outcome: "formatted", note: `${label} (${p.dev}) was damaged beyond repair (${why}): formatted it; what it held is lost`, grownToBytes, level: "error" };
    } catch (e2) {
      return tmpfs(`${label} (${p.dev}) is unusable (${why}; formatting failed: ${(e2 as Error).message})`);
    }
  }
}

/** Mounts a FAT partition by label (CONFIG read-write with private file modes, the EFI partition read-only). */
export function mountVfat(label: string, target: string, opts: { readOnly?: boolean; sys?: string } = {}): { dev: string | null; error: string | null } {
  const p = findPartition(label, opts.sys);
  if (!p) return { dev: null, error: `no partition labelled ${label}` };
  try {
    mkdirSync(target, { recursive: true });
    if (!isMounted(target)) mount(p.dev, target, "vfat", MS.NOSUID | MS.NODEV | MS.NOEXEC | (opts.readOnly ? MS.RDONLY : 0), "umask=0077,shortname=mixed,errors=remount-ro");
    return { dev: p.dev, error: null };
  } catch (e) {
    return { dev: p.dev, error: `cannot mount ${label} (${p.dev}) on ${target}: ${(e as Error).message}` };
  }
}

/** Remounts a mounted file system read-write or read-only (the EFI partition, while its environment is written). */
export function remount(target: string, readOnly: boolean, fstypeOptions = "umask=0077,shortname=mixed,errors=remount-ro"): void {
  mount("none", target, null, MS.REMOUNT | MS.NOSUID | MS.NODEV | MS.NOEXEC | (readOnly ? MS.RDONLY : 0), fstypeOptions);
}

export function diskUsage(path: string): { totalBytes: number; freeBytes: number } | null {
  try {
    const s = statfsSync(path);
    return { totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
  } catch {
    return null;
  }
}
