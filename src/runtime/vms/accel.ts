// Which accelerator VMs get. /dev/kvm can be there while KVM does not work (nested virtualisation that asserts
// or hangs), so KVM is only trusted after a real guest ran on it: a 512-byte boot sector that SeaBIOS loads and
// that exits QEMU through isa-debug-exit with a known code.
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
const PROBE_EXIT_CODE = 33;

export interface GuestRunResult {
  ok: boolean;
  detail: string;
}

/** Runs the probe guest once with `accel`; ok when it ran to its exit instruction. */
export async function runProbeGuest(qemu: string, accel: Accelerator, timeoutMs: number): Promise<GuestRunResult> {
  const dir = await mkdtemp(join(tmpdir(), "evebox-accel-"));
  try {
    const disk = join(dir, "probe.img");
    await writeFile(disk, probeBootSector());
    let proc;
    try {
      proc = Bun.spawn(
        [
          qemu,
          "-machine", `pc,accel=${accel}`,
          "-nodefaults", "-no-user-config", "-display", "none", "-m", "16",
          "-drive", `file=${disk},format=raw,if=ide`,
          "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ],
        { stdin: "ignore", stdout: "ignore", stderr: "pipe" },
      );
    } catch (err) {
      return { ok: false, detail: `cannot run ${qemu}: ${(err as Error).message}` };
    }
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill("SIGKILL");
    }, timeoutMs);
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(timer);
    const said = stderr.trim().split("\n").slice(-3).join(" / ");
    if (timedOut) return { ok: false, detail: `a test guest under ${accel} did not finish within ${timeoutMs} ms (hung)${said ? `: ${said}` : ""}` };
    if (code === PROBE_EXIT_CODE) return { ok: true, detail: "" };
    const how = proc.signalCode ? `was killed by ${proc.signalCode}` : `exited ${code}`;
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
