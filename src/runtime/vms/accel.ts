// Which accelerator VMs get. /dev/kvm can be there while KVM does not work (nested virtualisation that asserts
// or hangs), so KVM is only trusted after a real guest ran on it: a boot sector that SeaBIOS loads and that exits
// QEMU through isa-debug-exit with a known code, on the machine type and CPU model real guests get (a host can run
// `-machine pc` with the default CPU under KVM and still abort q35 with `-cpu host`). Even then a guest can die
// under KVM once it really runs: `kvmFailureOf` tells such an end, and the runtime falls back to TCG (kvm-state.ts).
import { existsSync } from "node:fs";
import { mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../../lib/run.ts";
import { cpuModelFor, MACHINE_TYPE } from "./cmdline.ts";
import type { Accelerator } from "./types.ts";

export interface AcceleratorProbe {
  accelerator: Accelerator;
  /** Why KVM was refused (null when KVM is used). */
  reason: string | null;
  probeMs: number;
}

/** The boot sector: `out 0xf4, 0x10` (isa-debug-exit → QEMU exits (0x10 << 1) | 1 = 33), then hlt forever. */
export function probeBootSector(): Uint8Array {
  const code = [0xb0, 0x10, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd]; // mov al,0x10; out 0xf4,al; hlt; jmp $-1
  const sector = new Uint8Array(512);
  sector.set(code);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}
/** The probe disk's size: SeaBIOS on q35 (AHCI) boots neither a one-sector nor a 64 KiB disk. Sparse on disk. */
export const PROBE_DISK_BYTES = 1 << 20;
const PROBE_EXIT_CODE = 33;

export interface GuestRunResult {
  ok: boolean;
  detail: string;
}

/** The probe guest's command line: the machine type and CPU model of real guests (cmdline.ts), a tiny disk. */
export function probeArgs(accel: Accelerator, disk: string): string[] {
  return [
    "-machine", `${MACHINE_TYPE},accel=${accel}`,
    "-cpu", cpuModelFor(accel),
    "-nodefaults", "-no-user-config", "-display", "none", "-m", "16",
    "-drive", `file=${disk},format=raw,if=ide`,
    "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
  ];
}

/** Runs the probe guest once with `accel`; ok when it ran to its exit instruction. */
export async function runProbeGuest(qemu: string, accel: Accelerator, timeoutMs: number): Promise<GuestRunResult> {
  const dir = await mkdtemp(join(tmpdir(), "evebox-accel-"));
  try {
    const disk = join(dir, "probe.img");
    await writeFile(disk, probeBootSector());
    await truncate(disk, PROBE_DISK_BYTES);
    const r = await run([qemu, ...probeArgs(accel, disk)], { timeoutMs });
    if (r.code === 127 && r.stderr.startsWith(`cannot run ${qemu}:`)) return { ok: false, detail: r.stderr };
    const said = r.stderr.trim().split("\n").slice(-3).join(" / ");
    if (r.timedOut) return { ok: false, detail: `a test guest under ${accel} did not finish within ${timeoutMs} ms (hung)${said ? `: ${said}` : ""}` };
    if (r.code === PROBE_EXIT_CODE) return { ok: true, detail: "" };
    const how = r.signal ? `was killed by ${r.signal}` : `exited ${r.code}`;
    return { ok: false, detail: `a test guest under ${accel} ${how}${said ? `: ${said}` : ""}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** KVM when /dev/kvm is usable and a guest really ran on it; TCG otherwise, with the reason. */
export async function probeAccelerator(qemu: string, opts: { timeoutMs?: number; kvmDevice?: string } = {}): Promise<AcceleratorProbe> {
  const t0 = performance.now();
  const done = (accelerator: Accelerator, reason: string | null): AcceleratorProbe => ({
    accelerator,
    reason,
    probeMs: Math.round(performance.now() - t0),
  });
  const dev = opts.kvmDevice ?? "/dev/kvm";
  if (!existsSync(dev)) return done("tcg", `${dev} does not exist (no KVM in this kernel or no access to it)`);
  const r = await runProbeGuest(qemu, "kvm", opts.timeoutMs ?? 10_000);
  return r.ok ? done("kvm", null) : done("tcg", `KVM refused: ${r.detail}`);
}

/** What QEMU says when KVM fails a guest it accepted (nested virtualisation, missing MSRs, emulation failures). */
const KVM_ERROR = /KVM internal error|emulation failure|kvm_buf_set_msrs|failed to (set|get) MSR|kvm run failed|KVM_[A-Z_]+ failed|kvm_[a-z_]+: Assertion|kvm: /i;

/**
 * Why a guest under KVM ended (or stopped) as KVM fails guests, or null when its end says nothing about KVM (a
 * disk QEMU cannot open is not a reason to give up KVM). `log` is QEMU's stderr; `qmpStatus` its run state.
 */
export function kvmFailureOf(x: { exitCode: number | null; signal: string | null; qmpStatus?: string | null; log: string }): string | null {
  const lines = x.log.split("\n").map((l) => l.replace(/^\S*\d{4}-\d\d-\d\dT\S+\s+/, "").replace(/^qemu-system-\S+?: /, "").trim()).filter(Boolean);
  const said = lines.filter((l) => KVM_ERROR.test(l)).slice(0, 2).join(" / ");
  const aborted = x.signal === "SIGABRT" || x.exitCode === 134;
  if (x.qmpStatus === "internal-error") return `the guest stopped with a KVM internal error${said ? `: ${said}` : ""}`;
  if (aborted) return `QEMU aborted (SIGABRT) under KVM${said || lines.length ? `: ${said || lines.at(-1)}` : ""}`;
  if (said) return `${x.exitCode !== null || x.signal ? `QEMU ${x.signal ? `was killed by ${x.signal}` : `exited ${x.exitCode}`} under KVM` : "QEMU reported a KVM error"}: ${said}`;
  return null;
}
