// Where the two slots and the boot loader's environment are: the device's partitions (IMGA/IMGB by GPT label,
// GRUB's grubenv on the EFI system partition) or, off-device, plain files (EVEBOX_BASEOS_SLOTS,
// EVEBOX_BASEOS_BOOTENV, EVEBOX_BASEOS_BOARD), so the whole verify/write/read-back/try flow runs anywhere.
import { closeSync, existsSync, fstatSync, fsyncSync, openSync, readdirSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { type BootEnv, BOOTENV_SIZE, formatBootEnv, parseBootEnv, type Slot } from "./bootenv.ts";

export interface SlotBackend {
  kind: "device" | "files";
  /** The slot this system booted from. */
  booted: Slot;
  /** The partition (a block device) or file of a slot. */
  path(slot: Slot): string;
  /** The slot's capacity in bytes. */
  capacity(slot: Slot): number;
  readEnv(): BootEnv;
  writeEnv(env: BootEnv): void;
  /** Block devices: drop the page cache so a read-back reads the medium. */
  dropCaches?(): void;
}

export interface BoardInfo {
  board: string;
  arch: string;
}

export function readBoardInfo(path: string): BoardInfo {
  const b = JSON.parse(readFileSync(path, "utf8")) as { name?: string; board?: string; arch?: string };
  const board = b.name ?? b.board;
  if (!board || !b.arch) throw new Error(`${path}: no board name or arch`);
  return { board, arch: b.arch };
}

/** Overwrites the 1 KiB environment block in place and flushes it (what GRUB's save_env does too). */
export function writeEnvFile(path: string, env: BootEnv): void {
  const block = formatBootEnv(env);
  const fd = openSync(path, "r+");
  try {
    if (fstatSync(fd).size !== BOOTENV_SIZE) throw new Error(`${path} is not a ${BOOTENV_SIZE}-byte environment block`);
    writeSync(fd, block, 0, block.length, 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A partition by its GPT label, through sysfs (there is no udev on the device): /dev/<name> and its size. */
export function partitionByLabel(label: string, sysBlock = "/sys/class/block"): { dev: string; bytes: number } | null {
  for (const d of readdirSync(sysBlock)) {
    let uevent = "";
    try {
      uevent = readFileSync(join(sysBlock, d, "uevent"), "utf8");
    } catch {
      continue;
    }
    if (!new RegExp(`^PARTNAME=${label}$`, "m").test(uevent)) continue;
    const dev = uevent.match(/^DEVNAME=(.+)$/m)?.[1] ?? d;
    const sectors = Number(readFileSync(join(sysBlock, d, "size"), "utf8").trim());
    return { dev: `/dev/${dev}`, bytes: sectors * 512 };
  }
  return null;
}

/** The device's slots: IMGA/IMGB partitions, the grubenv on /efi (remounted read-write only to write it). */
export function deviceBackend(opts: { booted: Slot; grubenv: string; remountEfi: (readOnly: boolean) => void }): SlotBackend {
  const parts = { A: partitionByLabel("IMGA"), B: partitionByLabel("IMGB") };
  if (!parts.A || !parts.B) throw new Error("no IMGA/IMGB partitions found (by GPT label in /sys/class/block)");
  return {
    kind: "device",
    booted: opts.booted,
    path: (s) => parts[s]!.dev,
    capacity: (s) => parts[s]!.bytes,
    readEnv: () => parseBootEnv(readFileSync(opts.grubenv)),
    writeEnv: (env) => {
      opts.remountEfi(false);
      try {
        writeEnvFile(opts.grubenv, env);
      } finally {
        opts.remountEfi(true);
      }
    },
    dropCaches: () => {
      try {
        const fd = openSync("/proc/sys/vm/drop_caches", "w");
        writeSync(fd, "1\n");
        closeSync(fd);
      } catch {
        // best effort: the read-back then may come from the page cache
      }
    },
  };
}

/**
 * Off-device slots as plain files (EVEBOX_BASEOS_SLOTS and EVEBOX_BASEOS_BOOTENV, read by device/env.ts): their
 * sizes are the capacities; the boot environment is created if missing; the booted slot is `booted` (a simulated
 * trial: the one GRUB put in evebox_trying) or else the environment's active one.
 */
export function filesBackend(o: { slots: [string, string]; bootenv: string; booted?: Slot | null }): SlotBackend {
  const [a, b] = o.slots;
  const bootenv = o.bootenv;
  for (const p of [a, b]) if (!existsSync(p)) throw new Error(`EVEBOX_BASEOS_SLOTS: ${p} does not exist`);
  if (!existsSync(bootenv)) {
    const { writeFileSync } = require("node:fs") as typeof import("node:fs");
    writeFileSync(bootenv, formatBootEnv({ evebox_active: "A", evebox_try: "", evebox_trying: "", evebox_cmdline: "" }));
  }
  const files = { A: a, B: b };
  const first = parseBootEnv(readFileSync(bootenv));
  const booted: Slot = o.booted ?? (first.evebox_active === "B" ? "B" : "A");
  return {
    kind: "files",
    booted,
    path: (s) => files[s],
    capacity: (s) => fstatSize(files[s]),
    readEnv: () => parseBootEnv(readFileSync(bootenv)),
    writeEnv: (e) => writeEnvFile(bootenv, e),
  };
}

function fstatSize(path: string): number {
  const fd = openSync(path, "r");
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}
