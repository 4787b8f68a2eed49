import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { summarizeDmesg, takeCrashRecord } from "./pstore.ts";

describe("pstore crash records", () => {
  test("the panic line, with the cause just before it", () => {
    const log = ["Panic#1 Part1", "<6>[   15.40] sysrq: Trigger a crash", "<0>[   15.41] Kernel panic - not syncing: sysrq triggered crash", "<4>[   15.42] CPU: 0 PID: 1"].join("\n");
    expect(summarizeDmesg(log)).toBe("sysrq: Trigger a crash … Kernel panic - not syncing: sysrq triggered crash");
    expect(summarizeDmesg("<0>[ 1.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100")).toBe("Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100");
    expect(summarizeDmesg("nothing here")).toBeNull();
  });
  test("records are read once and removed", () => {
    const dir = mkdtempSync(join(tmpdir(), "evebox-pstore-"));
    writeFileSync(join(dir, "dmesg-efi-1"), "<0>[ 1.0] Kernel panic - not syncing: Attempted to kill init!");
    writeFileSync(join(dir, "dmesg-efi-2"), "older part");
    expect(takeCrashRecord(dir)).toEqual({ summary: "Kernel panic - not syncing: Attempted to kill init!", files: 2 });
    expect(readdirSync(dir)).toEqual([]);
    expect(takeCrashRecord(dir)).toBeNull();
  });
});
