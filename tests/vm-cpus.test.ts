// EVE's VmConfig cpus / pin_cpu and maxmem on a real QEMU (TCG): each vCPU thread (QMP query-cpus-fast) on the
// host CPU asked, read back from the kernel (/proc/<pid>/task/<tid>/status Cpus_allowed_list); QEMU's other
// threads on the whole mask; memory hot-plug headroom accepted by QEMU with the guest booting; CPUs this host
// lacks, and CPUs another pinned VM holds, refused. Every QEMU started here is killed in afterAll.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { prepareDisk, QemuRuntime, VmError, type VmSpec } from "../src/runtime/vms/index.ts";
import { askGuest } from "./support/guest/console.ts";
import { ensureGuestImage, GUEST_READY, type GuestImage } from "./support/guest/image.ts";
import { qemuPids } from "./support/qemu-pids.ts";
import { waitFor } from "./support/wait.ts";

const WORK = mkdtempSync("/tmp/evebox-vmcpu-");
const rt = new QemuRuntime({ runDir: join(WORK, "run"), logger: { info: () => {}, warn: () => {} }, pollIntervalMs: 200 });
const ids = ["00000000-0000-4000-8000-0000000c0001", "00000000-0000-4000-8000-0000000c0002", "00000000-0000-4000-8000-0000000c0003"];
let guest: GuestImage;

function spec(appUuid: string, disk: string, extra: Partial<VmSpec>): VmSpec {
  return { appUuid, name: `cpu vm ${appUuid.slice(-1)}`, memoryKiB: 128 * 1024, vcpus: 1, mode: "legacy-bios", disks: [{ path: disk, format: "qcow2", readOnly: false }], nics: [], remoteConsole: false, ...extra };
}

async function overlay(name: string): Promise<string> {
  const dest = join(WORK, `${name}.qcow2`);
  await prepareDisk({ baseImage: guest.disk, format: "qcow2", dest, sizeBytes: 64 << 20 });
  return dest;
}

/** Each thread of a process: its name (QEMU's debug-threads: "CPU 0/TCG") and the CPUs the kernel lets it run on. */
function threads(pid: number): { tid: number; name: string; cpus: string }[] {
  return readdirSync(`/proc/${pid}/task`).map((t) => {
    const status = readFileSync(`/proc/${pid}/task/${t}/status`, "utf8");
    return { tid: Number(t), name: status.match(/^Name:\s+(.*)$/m)![1]!, cpus: status.match(/^Cpus_allowed_list:\s+(.*)$/m)![1]! };
  });
}

beforeAll(async () => {
  guest = await ensureGuestImage();
}, 300_000);

afterAll(async () => {
  rt.close();
  for (const id of ids) for (const pid of qemuPids(id)) process.kill(pid, "SIGKILL");
  await waitFor("the QEMUs gone", () => qemuPids(...ids).length === 0, 5_000).catch(() => undefined);
  rmSync(WORK, { recursive: true, force: true });
});

describe("vCPU pinning and memory hot-plug headroom", () => {
  test("pin_cpu with cpus 1,0: vCPU 0 on CPU 1, vCPU 1 on CPU 0, the rest of QEMU on 0-1; maxmem on QEMU's -m; the guest boots", async () => {
    expect(availableParallelism()).toBeGreaterThanOrEqual(2); // the CI machine has 2 cores
    const s = spec(ids[0]!, await overlay("a"), { vcpus: 2, memoryKiB: 256 * 1024, cpuAffinity: { cpus: [1, 0], pinned: true }, maxMemoryKiB: 1024 * 1024 });
    const status = await rt.start(s, { readyPattern: GUEST_READY, readyTimeoutMs: 90_000 });
    const pid = status.pid!;
    const placed = rt.list().find((v) => v.appUuid === ids[0])!.cpus!;
    expect(placed).toMatchObject({ set: [1, 0], pinned: true });
    expect(placed.vcpus.map((v) => [v.vcpu, v.cpu])).toEqual([[0, 1], [1, 0]]);
    const all = threads(pid);
    for (const v of placed.vcpus) {
      const t = all.find((x) => x.tid === v.thread)!;
      expect(t.name).toBe(`CPU ${v.vcpu}/TCG`);
      expect(t.cpus).toBe(String(v.cpu));
    }
    // Every other thread (main loop, I/O, RCU…) on the whole mask.
    for (const t of all.filter((x) => !placed.vcpus.some((v) => v.thread === x.tid))) expect(t.cpus).toBe("0-1");
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")).toContain("size=262144k,slots=4,maxmem=1048576k");
    expect(await askGuest(rt, ids[0]!, "grep -c ^processor /proc/cpuinfo")).toContain("2");
  }, 150_000);

  test("a CPU the host lacks is refused before start; pin_cpu with no CPU left is refused; nothing keeps running", async () => {
    const disk = await overlay("b");
    const bad = await rt.start(spec(ids[1]!, disk, { cpuAffinity: { cpus: [0, availableParallelism() + 3], pinned: false } })).catch((e) => e);
    expect(bad).toBeInstanceOf(VmError);
    expect((bad as VmError).kind).toBe("invalid-spec");
    expect((bad as VmError).message).toContain(`cpus: CPU ${availableParallelism() + 3} is not one of this host's CPUs`);
    // The first VM holds CPUs 0 and 1: of n CPUs, n - 2 are left for a pinned VM asking n - 1.
    const want = availableParallelism() - 1;
    const none = await rt.start(spec(ids[2]!, disk, { vcpus: want, cpuAffinity: { cpus: [], pinned: true } })).catch((e) => e);
    expect(none).toBeInstanceOf(VmError);
    expect((none as VmError).message).toContain(`pin_cpu needs ${want} host CPU(s) of its own; ${want - 1} are not held by other pinned VMs`);
    expect(qemuPids(ids[1]!, ids[2]!)).toEqual([]);
    await rt.shutdown(ids[0]!, 5_000);
  }, 60_000);
});
