// KVM found unusable by a real guest: device-wide, kept for the rest of this boot (a restarted evebox does not
// try KVM again and lose another start), forgotten at the next boot (the kernel or the host may have changed).
import { readFileSync, renameSync, writeFileSync } from "node:fs";

export interface KvmUnusable {
  reason: string;
  at: string;
  bootId: string;
}

/** This boot's id (the kernel's random boot_id); "" where there is none. */
export function currentBootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "";
  }
}

/** The verdict written earlier in this boot, or null (none, unreadable, or from another boot). */
export function readKvmUnusable(file: string, bootId = currentBootId()): KvmUnusable | null {
  try {
    const v = JSON.parse(readFileSync(file, "utf8")) as KvmUnusable;
    return typeof v.reason === "string" && v.bootId === bootId ? v : null;
  } catch {
    return null;
  }
}

export function writeKvmUnusable(file: string, reason: string, bootId = currentBootId()): KvmUnusable {
  const v: KvmUnusable = { reason, at: new Date().toISOString(), bootId };
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(v), { mode: 0o600 });
  renameSync(tmp, file);
  return v;
}
