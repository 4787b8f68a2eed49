import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BOOTENV_SIZE, bootState, formatBootEnv, initialBootEnv, parseBootEnv, slotFromCmdline, withCommitted, withTrialCleared, withTryOnce } from "./bootenv.ts";

const editenv = Bun.which("grub-editenv");

describe("boot environment block", () => {
  test("is 1024 bytes, '#'-padded, and round-trips", () => {
    const env = { ...initialBootEnv("evebox.shell=ttyS1"), evebox_try: "B" };
    const block = formatBootEnv(env);
    expect(block.length).toBe(BOOTENV_SIZE);
    expect(block[BOOTENV_SIZE - 1]).toBe(0x23);
    expect(parseBootEnv(block)).toEqual(env);
    expect(() => formatBootEnv({ x: "a".repeat(2000) })).toThrow(/too large/);
    expect(() => formatBootEnv({ "bad name": "1" })).toThrow(/bad variable name/);
    expect(() => parseBootEnv("not an env")).toThrow(/header/);
  });

  test.skipIf(!editenv)("reads what grub-editenv writes, and grub-editenv reads what it writes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "evebox-grubenv-"));
    try {
      const file = join(dir, "grubenv");
      for (const args of [["create"], ["set", "evebox_active=B", "evebox_try=A", "evebox_cmdline=a\\b c"]]) {
        expect(await Bun.spawn([editenv!, file, ...args]).exited).toBe(0);
      }
      expect(parseBootEnv(readFileSync(file))).toEqual({ evebox_active: "B", evebox_try: "A", evebox_cmdline: "a\\b c" });
      writeFileSync(file, formatBootEnv({ evebox_active: "A", evebox_trying: "B", evebox_cmdline: "x\\y" }));
      const listed = await new Response(Bun.spawn([editenv!, file, "list"], { stdout: "pipe" }).stdout).text();
      expect(listed.trim().split("\n").sort()).toEqual(["evebox_active=A", "evebox_cmdline=x\\y", "evebox_trying=B"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("A/B slot state", () => {
  const base = initialBootEnv();
  test("a committed boot, a pending try, a trial, a trial that fell back, a commit", () => {
    expect(bootState("A", base)).toMatchObject({ booted: "A", active: "A", outcome: "committed", trying: null });
    expect(bootState("A", withTryOnce(base, "B")).outcome).toBe("pending");
    // What GRUB leaves when it boots the try: evebox_try cleared, evebox_trying set.
    const trial = { ...base, evebox_trying: "B" };
    expect(bootState("B", trial)).toMatchObject({ outcome: "trying", trying: "B", active: "A" });
    expect(bootState("A", trial)).toMatchObject({ outcome: "fell-back", trying: "B" });
    expect(bootState("B", withCommitted(trial, "B"))).toMatchObject({ outcome: "committed", active: "B", trying: null });
    expect(bootState("A", withTrialCleared(trial)).outcome).toBe("committed");
  });

  test("the slot comes from the kernel command line", () => {
    expect(slotFromCmdline("console=ttyS0 root=PARTLABEL=IMGB evebox.slot=B quiet")).toBe("B");
    expect(slotFromCmdline("evebox.slot=A")).toBe("A");
    expect(slotFromCmdline("evebox.slot=C evebox.slotx=A")).toBeNull();
  });
});
