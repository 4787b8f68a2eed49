import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kvmFailureOf, PROBE_DISK_BYTES, probeArgs, probeBootSector } from "./accel.ts";
import { buildQemuArgs, vmPaths } from "./cmdline.ts";
import { readKvmUnusable, writeKvmUnusable } from "./kvm-state.ts";

const after = (args: string[], flag: string) => args[args.indexOf(flag) + 1];

describe("the KVM probe runs what real guests run", () => {
  test("same machine type and CPU model as a VM's command line, in both modes", () => {
    for (const accel of ["kvm", "tcg"] as const) {
      const vm = buildQemuArgs(
        { appUuid: "u", name: "n", memoryKiB: 1024, vcpus: 1, mode: "legacy-bios", disks: [], nics: [], remoteConsole: false },
        { paths: vmPaths("/run", "u"), accelerator: accel },
      );
      const probe = probeArgs(accel, "/tmp/p.img");
      expect(after(probe, "-machine")).toBe(after(vm, "-machine"));
      expect(after(probe, "-cpu")).toBe(after(vm, "-cpu"));
    }
    expect(after(probeArgs("kvm", "/d"), "-machine")).toBe("q35,accel=kvm");
    expect(after(probeArgs("kvm", "/d"), "-cpu")).toBe("host");
  });

  test("the probe disk: a boot sector on a sparse 1 MiB disk (SeaBIOS on q35 boots nothing smaller)", () => {
    const disk = probeBootSector();
    expect(disk.length).toBe(512);
    expect(PROBE_DISK_BYTES).toBe(1 << 20);
    expect([disk[510], disk[511]]).toEqual([0x55, 0xaa]);
  });
});

describe("kvmFailureOf: how a guest under KVM ended", () => {
  const MSR =
    "2026-12-02T07:00:00.000000Z qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000000ab\n" +
    "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3061: kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.";

  test("the MSR assertion (SIGABRT, or exit 134 through a shell): KVM failed it, with QEMU's words", () => {
    const r = kvmFailureOf({ exitCode: null, signal: "SIGABRT", log: MSR });
    expect(r).toStartWith("QEMU aborted (SIGABRT) under KVM: ");
    expect(r).toContain("failed to set MSR 0x10a");
    expect(r).not.toContain("2026-12-02T"); // no timestamps in a reason
    expect(kvmFailureOf({ exitCode: 134, signal: null, log: "" })).toBe("QEMU aborted (SIGABRT) under KVM");
  });

  test("a guest stopped in QMP's internal-error state, or 'KVM internal error' in the log (QEMU still running)", () => {
    expect(kvmFailureOf({ exitCode: null, signal: null, qmpStatus: "internal-error", log: "" })).toBe("the guest stopped with a KVM internal error");
    const r = kvmFailureOf({ exitCode: null, signal: null, qmpStatus: "running", log: "KVM internal error. Suberror: 1\nextra data[0]: 0x1\nemulation failure\nEAX=00000006" });
    expect(r).toBe("QEMU reported a KVM error: KVM internal error. Suberror: 1 / emulation failure");
  });

  test("ends that say nothing about KVM are not a reason to give up KVM", () => {
    expect(kvmFailureOf({ exitCode: 1, signal: null, log: "qemu-system-x86_64: -blockdev …: Image is not in qcow2 format" })).toBeNull();
    expect(kvmFailureOf({ exitCode: null, signal: "SIGKILL", log: "" })).toBeNull();
    expect(kvmFailureOf({ exitCode: null, signal: null, qmpStatus: "running", log: "" })).toBeNull();
    expect(kvmFailureOf({ exitCode: 0, signal: null, qmpStatus: null, log: "terminating on signal 15" })).toBeNull();
  });
});

describe("KVM unusable: kept for this boot only", () => {
  test("read back in the same boot, ignored after a reboot or when missing", () => {
    const dir = mkdtempSync(join(tmpdir(), "evebox-kvm-state-"));
    try {
      const file = join(dir, "vm-kvm-unusable.json");
      expect(readKvmUnusable(file, "boot-a")).toBeNull();
      writeKvmUnusable(file, "QEMU aborted (SIGABRT) under KVM", "boot-a");
      expect(readKvmUnusable(file, "boot-a")).toMatchObject({ reason: "QEMU aborted (SIGABRT) under KVM", bootId: "boot-a" });
      expect(readKvmUnusable(file, "boot-b")).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
