// The kernel's last words from the boot before: pstore records (EFI variables on UEFI boards, written by
// efi_pstore — loaded by every evebox initramfs — when the kernel panics). Read once per boot and removed, so a
// record seen at a fallback was written by the trial that just failed.
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

export interface CrashRecord {
  /** The panic line and the one naming its cause, e.g. "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100". */
  summary: string;
  files: number;
}

/** The panic in a pstore dmesg record: the "Kernel panic" line, and what came just before when it says why. */
export function summarizeDmesg(text: string): string | null {
  const lines = text.split("\n").map((l) => l.replace(/^<\d+>\s*/, "").replace(/^\[\s*\d+\.\d+\]\s*/, "").trim());
  const i = lines.findIndex((l) => /Kernel panic - not syncing/.test(l));
  if (i < 0) {
    const oops = lines.find((l) => /BUG:|Oops|general protection fault/.test(l));
    return oops ?? null;
  }
  const why = lines.slice(Math.max(0, i - 40), i).reverse().find((l) => /sysrq: Trigger a crash|BUG:|Oops|watchdog: |soft lockup|hung_task/.test(l));
  return [why, lines[i]].filter(Boolean).join(" … ");
}

/** Reads and removes the dmesg records under `dir` (a mounted pstore). */
export function takeCrashRecord(dir = "/sys/fs/pstore"): CrashRecord | null {
  if (!existsSync(dir)) return null;
  const files = readdirSync(dir).filter((f) => f.startsWith("dmesg-"));
  if (!files.length) return null;
  let summary: string | null = null;
  // Part 1 is the newest part of the log (the panic itself).
  for (const f of files.sort()) {
    try {
      summary ??= summarizeDmesg(readFileSync(join(dir, f), "utf8"));
    } catch {
      // unreadable: removed below all the same
    }
    rmSync(join(dir, f), { force: true });
  }
  return { summary: summary ?? "a kernel crash record without a panic line", files: files.length };
}
