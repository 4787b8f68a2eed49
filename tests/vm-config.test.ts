// EVE's VmConfig fields beyond sizing on a real QEMU (TCG) with the test guest: memory plugged into the running
// guest within maxmem (QEMU's count and the guest's MemTotal), QEMU's cgroup limited to memory + vmm_maxmem (and
// moved by the plug, gone with the VM), VNC on TCP 5900 + display asking for VNC authentication, and the host's
// Windows license table (a fake MSDM in an injected directory) passed with -acpitable and seen by the guest, with
// the host's SMBIOS identity (a fake sysfs directory);
// without them: no TCP port, and the VM says the host has no table. Every QEMU started here is killed in afterAll.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hostResources, prepareDisk, QemuRuntime, type VmSpec } from "../src/runtime/vms/index.ts";
import { askGuest } from "./support/guest/console.ts";
import { ensureGuestImage, GUEST_READY, type GuestImage } from "./support/guest/image.ts";
import { qemuPids } from "./support/qemu-pids.ts";
import { rfbSecurityTypes } from "./support/vnc.ts";
import { waitFor } from "./support/wait.ts";

const WORK = mkdtempSync("/tmp/evebox-vmcfg-");
const TABLES = join(WORK, "acpi-tables");
const NO_TABLES = join(WORK, "no-acpi-tables");
const DMI = join(WORK, "dmi");
const quiet = { info: () => {}, warn: () => {} };
/** What the first runtime is told the host has available, when set (a plug beyond it is refused). */
let availableKiB: number | null = null;
const rt = new QemuRuntime({
  runDir: join(WORK, "run"),
  logger: quiet,
  pollIntervalMs: 200,
  acpiTablesDir: TABLES,
  dmiDir: DMI,
  hostResources: () => ({ ...hostResources(), ...(availableKiB !== null ? { memAvailableKiB: availableKiB } : {}) }),
});
const bare = new QemuRuntime({ runDir: join(WORK, "run2"), logger: quiet, pollIntervalMs: 200, acpiTablesDir: NO_TABLES, dmiDir: DMI });
const ids = ["00000000-0000-4000-8000-0000000d0001", "00000000-0000-4000-8000-0000000d0002"];
/** VNC displays far from 0 (5900 may be somebody's): 5991 and 5992. */
const DISPLAY = 91;
const MIB = 1024;
let guest: GuestImage;

function spec(appUuid: string, disk: string, extra: Partial<VmSpec>): VmSpec {
  return { appUuid, name: `cfg vm ${appUuid.slice(-1)}`, memoryKiB: 256 * MIB, vcpus: 1, mode: "legacy-bios", disks: [{ path: disk, format: "qcow2", readOnly: false }], nics: [], remoteConsole: false, ...extra };
}

async function overlay(name: string): Promise<string> {
  const dest = join(WORK, `${name}.qcow2`);
  await prepareDisk({ baseImage: guest.disk, format: "qcow2", dest, sizeBytes: 64 << 20 });
  return dest;
}

/** An ACPI table: the 36-byte header (signature, length, revision, checksum, OEM ids) and a body; bytes sum to 0. */
function acpiTable(signature: string, body: Buffer): Buffer {
  const t = Buffer.alloc(36 + body.length);
  t.write(signature, 0, "ascii");
  t.writeUInt32LE(t.length, 4);
  t.writeUInt8(3, 8);
  t.write("EVEBOX", 10, "ascii");
  t.write("TESTMSDM", 16, "ascii");
  body.copy(t, 36);
  t.writeUInt8((256 - (t.reduce((a, b) => a + b, 0) % 256)) % 256, 9);
  return t;
}

/** The guest's memory, every hot-plugged block brought online first (the kernel may leave them offline). */
async function guestMemTotalKiB(uuid: string): Promise<number> {
  const answer = await askGuest(rt, uuid, "for m in /sys/devices/system/memory/memory*; do grep -q offline $m/state && echo online > $m/state; done 2>/dev/null; sed -n 's/^MemTotal: *\\([0-9]*\\) kB/\\1/p' /proc/meminfo");
  return Number(answer.trim());
}

beforeAll(async () => {
  guest = await ensureGuestImage();
  mkdirSync(TABLES, { recursive: true });
  mkdirSync(NO_TABLES, { recursive: true });
  // A Windows license table (MSDM) as firmware carries it: version, data type, the product key.
  const body = Buffer.alloc(20 + 29);
  body.writeUInt32LE(1, 0);
  body.writeUInt32LE(1, 8);
  body.writeUInt32LE(29, 16);
  body.write("EVEBX-TESTK-EYNOT-AREAL-KEY00", 20, "ascii");
  writeFileSync(join(TABLES, "MSDM"), acpiTable("MSDM", body), { mode: 0o400 });
  // The host's SMBIOS identity as sysfs shows it (this machine has none), given with the license table.
  mkdirSync(DMI, { recursive: true });
  writeFileSync(join(DMI, "sys_vendor"), "Evebox Test, Inc.\n");
  writeFileSync(join(DMI, "product_name"), "License Box\n");
}, 300_000);

afterAll(async () => {
  rt.close();
  bare.close();
  for (const id of ids) for (const pid of qemuPids(id)) process.kill(pid, "SIGKILL");
  await waitFor("the QEMUs gone", () => qemuPids(...ids).length === 0, 5_000).catch(() => undefined);
  rmSync(WORK, { recursive: true, force: true });
});

describe("VmConfig on a real QEMU", () => {
  test("memory + vmm_maxmem is QEMU's cgroup limit; VNC on TCP asks for a password; the license table reaches the guest; memory plugged live moves both", async () => {
    const s = spec(ids[0]!, await overlay("a"), {
      memoryKiB: 256 * MIB,
      maxMemoryKiB: 768 * MIB,
      vmmOverheadKiB: 384 * MIB,
      remoteConsole: true,
      vncTcp: { display: DISPLAY, password: "pa55word" },
      oemLicenseTables: true,
    });
    const status = await rt.start(s, { readyPattern: GUEST_READY, readyTimeoutMs: 90_000 });
    const pid = status.pid!;
    const vm = rt.list().find((v) => v.appUuid === ids[0])!;
    expect(vm.notApplied).toBeUndefined();

    // vmm_maxmem: the limit is on the cgroup QEMU runs in (v2 memory.max, or v1 memory.limit_in_bytes on a hybrid host).
    const limit = vm.memoryLimit!;
    expect(limit.bytes).toBe((256 + 384) * MIB * 1024);
    expect(Number(readFileSync(limit.file, "utf8"))).toBe(limit.bytes);
    const cgroupDir = limit.file.slice(0, limit.file.lastIndexOf("/"));
    expect(readFileSync(join(cgroupDir, "cgroup.procs"), "utf8").split("\n")).toContain(String(pid));

    // VNC on TCP 5900 + display: RFB, and VNC authentication (type 2) is the only security type offered.
    expect(await rfbSecurityTypes(5900 + DISPLAY)).toEqual({ version: "RFB 003.008\n", types: [2] });
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).not.toContain("pa55word");

    // The license table: on QEMU's command line, and in the guest's ACPI tables with its key.
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")).toContain(`file=${join(TABLES, "MSDM")}`);
    expect(await askGuest(rt, ids[0]!, "tail -c 29 /sys/firmware/acpi/tables/MSDM")).toBe("EVEBX-TESTK-EYNOT-AREAL-KEY00");
    // With it, as EVE, the host's SMBIOS system identity.
    expect(await askGuest(rt, ids[0]!, "cat /sys/class/dmi/id/sys_vendor /sys/class/dmi/id/product_name | tr '\\n' /")).toBe("Evebox Test, Inc./License Box/");

    // Memory hot-plug: 256 → 512 MiB without a restart.
    const before = await guestMemTotalKiB(ids[0]!);
    expect(await rt.plugMemory(ids[0]!, 512 * MIB)).toEqual({ pluggedKiB: 256 * MIB, memoryKiB: 512 * MIB });
    expect(await rt.memorySize(ids[0]!)).toEqual({ baseKiB: 256 * MIB, pluggedKiB: 256 * MIB });
    expect(rt.list().find((v) => v.appUuid === ids[0])).toMatchObject({ pid, memory: { kib: 512 * MIB, maxKiB: 768 * MIB, pluggedKiB: 256 * MIB, freeSlots: 3 }, memoryLimit: { bytes: (512 + 384) * MIB * 1024 } });
    expect(Number(readFileSync(limit.file, "utf8"))).toBe((512 + 384) * MIB * 1024);
    await waitFor("the guest to see the plugged memory", async () => (await guestMemTotalKiB(ids[0]!)) >= before + 250 * MIB, 30_000);
    // Lowered, or beyond maxmem: refused, nothing changed (the reconciler restarts the VM instead).
    await expect(rt.plugMemory(ids[0]!, 384 * MIB)).rejects.toThrow(/memory lowered from 512 MiB to 384 MiB/);
    await expect(rt.plugMemory(ids[0]!, 1024 * MIB)).rejects.toThrow(/beyond the maxmem it was started with \(768 MiB\)/);
    // More than the host has available: refused too.
    availableKiB = 64 * MIB;
    await expect(rt.plugMemory(ids[0]!, 768 * MIB)).rejects.toThrow(/plugging 262144 KiB \(256 MiB\) is more than this host has available \(64 MiB\)/);
    availableKiB = null;
    expect(await rt.memorySize(ids[0]!)).toEqual({ baseKiB: 256 * MIB, pluggedKiB: 256 * MIB });

    // The limit goes with the VM.
    await rt.shutdown(ids[0]!, 5_000);
    expect(existsSync(cgroupDir)).toBe(false);
  }, 180_000);

  test("without a TCP VNC spec no port answers; a host without license tables: the VM runs without and says so", async () => {
    const s = spec(ids[1]!, await overlay("b"), { remoteConsole: true, oemLicenseTables: true });
    const status = await bare.start(s);
    expect(bare.list().find((v) => v.appUuid === ids[1])!.notApplied).toEqual([
      `enable_oem_win_license_key: this host has no Windows license ACPI table (${join(NO_TABLES, "MSDM")}, ${join(NO_TABLES, "SLIC")} missing)`,
    ]);
    expect(readFileSync(`/proc/${status.pid}/cmdline`, "utf8")).not.toContain("-acpitable");
    expect(readFileSync(`/proc/${status.pid}/cmdline`, "utf8")).not.toContain("-smbios");
    expect(await rfbSecurityTypes(5900 + DISPLAY + 1)).toBe("ECONNREFUSED");
    expect(bare.vncSocket(ids[1]!)).not.toBeNull();
    await bare.kill(ids[1]!);
  }, 60_000);
});
