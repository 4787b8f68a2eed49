// A/B slots off-device: two plain files as the slots, a GRUB environment block and a board file, for the tests that
// run the base-OS update flow on the compiled binary without rebooting anything (EVEBOX_BASEOS_SLOTS and friends).
import { truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatBootEnv, initialBootEnv } from "../../src/baseos/bootenv.ts";

/** A slot file's content: `bytes` long, filled with `fill`, or sparse zeros when no fill is given. */
export interface SlotContent {
  bytes: number;
  fill?: number;
}

export interface SlotFiles {
  slotA: string;
  slotB: string;
  grubenv: string;
  board: string;
  /** The environment that points evebox at these files. */
  env: Record<string, string>;
}

/** Makes the slot files, a fresh boot environment (A committed, nothing to try) and a qemu-x86_64 board file in `root`. */
export function slotFiles(root: string, slots: { a: SlotContent; b: SlotContent }): SlotFiles {
  const f: Omit<SlotFiles, "env"> = { slotA: join(root, "slotA"), slotB: join(root, "slotB"), grubenv: join(root, "grubenv"), board: join(root, "board.json") };
  for (const [path, c] of [[f.slotA, slots.a], [f.slotB, slots.b]] as const) {
    if (c.fill === undefined) {
      writeFileSync(path, "");
      truncateSync(path, c.bytes);
    } else writeFileSync(path, Buffer.alloc(c.bytes, c.fill));
  }
  writeFileSync(f.grubenv, formatBootEnv(initialBootEnv()));
  writeFileSync(f.board, JSON.stringify({ name: "qemu-x86_64", arch: "amd64" }));
  return { ...f, env: { EVEBOX_BASEOS_SLOTS: `${f.slotA},${f.slotB}`, EVEBOX_BASEOS_BOOTENV: f.grubenv, EVEBOX_BASEOS_BOARD: f.board } };
}
