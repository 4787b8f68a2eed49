// The boot loader's environment block (GRUB's grubenv, on the EFI system partition) and the A/B slot
// contract evebox shares with the GRUB configuration written by rootfs/build.ts:
//   evebox_active   the committed slot, "A" or "B"
//   evebox_try      a slot to boot once: GRUB clears it before booting that slot, so a boot that fails
//                   (panic, watchdog, evebox exiting) comes back on the active slot by itself
//   evebox_trying   set by GRUB to the slot it booted for a try; evebox commits it (active := trying) or,
//                   when running on the other slot, knows the try failed
//   evebox_cmdline  extra kernel arguments (debugging aids such as evebox.shell=ttyS1)
// The block is exactly 1024 bytes: "# GRUB Environment Block\n", "name=value\n" lines, '#' padding.
import { readFileSync } from "node:fs";

export const BOOTENV_SIZE = 1024;
const HEADER = "# GRUB Environment Block\n";

export type Slot = "A" | "B";
export type BootEnv = Record<string, string>;

export class BootEnvError extends Error {}

export function parseBootEnv(block: Uint8Array | string): BootEnv {
  const text = typeof block === "string" ? block : new TextDecoder().decode(block);
  if (!text.startsWith(HEADER)) throw new BootEnvError("not a GRUB environment block (header missing)");
  const env: BootEnv = {};
  for (const line of text.slice(HEADER.length).split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    // GRUB escapes a backslash in a value with a backslash.
    env[line.slice(0, eq)] = line.slice(eq + 1).replace(/\\(.)/g, "$1");
  }
  return env;
}

export function formatBootEnv(env: BootEnv): Uint8Array {
  let body = HEADER;
  for (const [k, v] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new BootEnvError(`boot environment: bad variable name ${JSON.stringify(k)}`);
    if (v.includes("\n")) throw new BootEnvError(`boot environment: ${k} holds a line break`);
    body += `${k}=${v.replace(/\\/g, "\\\\")}\n`;
  }
  const bytes = new TextEncoder().encode(body);
  if (bytes.length > BOOTENV_SIZE) throw new BootEnvError(`boot environment too large: ${bytes.length} bytes (the block holds ${BOOTENV_SIZE})`);
  const block = new Uint8Array(BOOTENV_SIZE).fill(0x23); // '#'
  block.set(bytes);
  return block;
}

export function readBootEnv(path: string): BootEnv {
  return parseBootEnv(readFileSync(path));
}

/** The block a new image starts with: slot A committed, nothing to try. */
export function initialBootEnv(extraCmdline = ""): BootEnv {
  return { evebox_active: "A", evebox_try: "", evebox_trying: "", evebox_cmdline: extraCmdline };
}

export function otherSlot(s: Slot): Slot {
  return s === "A" ? "B" : "A";
}

export function activeSlot(env: BootEnv): Slot {
  return env.evebox_active === "B" ? "B" : "A";
}

/** Ask the boot loader to boot `slot` once, at the next boot. */
export function withTryOnce(env: BootEnv, slot: Slot): BootEnv {
  return { ...env, evebox_try: slot };
}

/** Make `slot` the committed one (after its trial went well). */
export function withCommitted(env: BootEnv, slot: Slot): BootEnv {
  return { ...env, evebox_active: slot, evebox_try: "", evebox_trying: "" };
}

/** Forget a finished trial (after reporting its outcome). */
export function withTrialCleared(env: BootEnv): BootEnv {
  return { ...env, evebox_trying: "" };
}

export interface BootState {
  /** The slot this system was booted from (the kernel's evebox.slot=). */
  booted: Slot;
  /** The committed slot. */
  active: Slot;
  /**
   * "committed": booted the active slot, no trial pending;
   * "trying": booted a slot on trial (not yet committed);
   * "fell-back": a trial of the other slot did not come up, and the active slot booted again;
   * "pending": a try is set for the next boot.
   */
  outcome: "committed" | "trying" | "fell-back" | "pending";
  trying: Slot | null;
}

export function bootState(booted: Slot, env: BootEnv): BootState {
  const active = activeSlot(env);
  const trying = env.evebox_trying === "A" || env.evebox_trying === "B" ? (env.evebox_trying as Slot) : null;
  const pendingTry = env.evebox_try === "A" || env.evebox_try === "B";
  let outcome: BootState["outcome"] = "committed";
  if (trying && trying === booted && booted !== active) outcome = "trying";
  else if (trying && trying !== booted) outcome = "fell-back";
  else if (pendingTry) outcome = "pending";
  return { booted, active, outcome, trying };
}

/** The slot named on a kernel command line (evebox.slot=A|B), or null. */
export function slotFromCmdline(cmdline: string): Slot | null {
  const m = cmdline.match(/(?:^|\s)evebox\.slot=([AB])(?:\s|$)/);
  return m ? (m[1] as Slot) : null;
}
