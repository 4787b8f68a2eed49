// runtime/vms against real QEMU (TCG here: /dev/kvm is absent or KVM does not work on this machine), with the
// tiny test guest of tests/support/guest. Every QEMU started here is killed in afterAll.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import {
  isOurQemu,
  prepareDisk,
  QemuRuntime,
  runProbeGuest,
  VmError,
  type VmExit,
  type VmSpec,
} from "../src/runtime/vms/index.ts";
import { askGuest } from "./support/guest/console.ts";
import { ensureGuestImage, GUEST_READY, type GuestImage } from "./support/guest/image.ts";
import { qemuPids } from "./support/qemu-pids.ts";
import { waitFor } from "./support/wait.ts";

const ROOT = join(import.meta.dir, "..");
// Short: QEMU's unix socket paths must stay under 108 bytes.
const WORK = mkdtempSync("/tmp/evebox-vms-");
const RUN = join(WORK, "run");
const logs: string[] = [];
const logger = { info: (m: string) => logs.push(`info ${m}`), warn: (m: string) => logs.push(`warn ${m}`) };
const runtimes: QemuRuntime[] = [];
let guest: GuestImage;

function runtime(): QemuRuntime {
  const rt = new QemuRuntime({ runDir: RUN, logger, pollIntervalMs: 200 });
  runtimes.push(rt);
  return rt;
}

let uuidCounter = 0;
function uuid(): string {
  return `00000000-0000-4000-8000-${(Date.now() % 1e8).toString().padStart(8, "0")}${String(++uuidCounter).padStart(4, "0")}`;
}

function spec(appUuid: string, disk: string, extra: Partial<VmSpec> = {}): VmSpec {
  return {
    appUuid,
    name: `test vm ${appUuid.slice(-4)}`,
    memoryKiB: 128 * 1024,
    vcpus: 1,
    mode: "legacy-bios",
    disks: [{ path: disk, format: "qcow2", readOnly: false }],
    nics: [{ kind: "user" }],
    remoteConsole: false,
    ...extra,
  };
}

async function overlay(name: string): Promise<string> {
  const dest = join(WORK, `${name}.qcow2`);
  await prepareDisk({ baseImage: guest.disk, format: "qcow2", dest, sizeBytes: 64 << 20 });
  return dest;
}

async function expectVmError(p: Promise<unknown>, kind: string): Promise<VmError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(VmError);
    expect((err as VmError).kind).toBe(kind as VmError["kind"]);
    return err as VmError;
  }
  throw new Error(`expected a VmError ${kind}, but it succeeded`);
}

const decode = (b: Uint8Array) => new TextDecoder().decode(b);

beforeAll(async () => {
  guest = await ensureGuestImage();
}, 300_000);

afterAll(async () => {
  for (const rt of runtimes) rt.close();
  // Kill whatever is left under our run directory, by pidfile and by command line.
  const vmsDir = join(RUN, "vms");
  for (const id of existsSync(vmsDir) ? readdirSync(vmsDir) : []) {
    for (const pid of qemuPids(id)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
  }
  for (const id of started) for (const pid of qemuPids(id)) process.kill(pid, "SIGKILL");
  for (const p of helpers) p.kill("SIGKILL");
  await waitFor("the killed QEMUs gone", () => started.every((id) => qemuPids(id).length === 0), 5_000).catch(() => undefined);
  rmSync(WORK, { recursive: true, force: true });
});

/** Every uuid a test started, for afterAll. */
const started: string[] = [];
const helpers: ReturnType<typeof Bun.spawn>[] = [];

describe("accelerator", () => {
  test("the probe picks TCG here and says why KVM was refused; the probe guest itself runs (under TCG)", async () => {
    const rt = runtime();
    const accel = await rt.probeAccelerator();
    const probe = rt.acceleratorProbe()!;
    if (accel === "kvm") {
      // A machine where KVM works: the probe must have run a guest on it.
      expect(probe.reason).toBeNull();
    } else {
      expect(accel).toBe("tcg");
      expect(probe.reason).toMatch(/\/dev\/kvm does not exist|KVM refused/);
    }
    // The probe is only meaningful if its guest runs where KVM is not needed.
    expect(await runProbeGuest("qemu-system-x86_64", "tcg", 20_000)).toEqual({ ok: true, detail: "" });
  }, 30_000);
});

describe("a VM on a qcow2 overlay", () => {
  const rt = runtime();
  const id = uuid();
  started.push(id);
  let disk: string;
  const exits: VmExit[] = [];

  test("prepareDisk: a qcow2 overlay over the image, grown to the volume size, kept on the next call", async () => {
    disk = join(WORK, "main.qcow2");
    const first = await rt.prepareDisk({ baseImage: guest.disk, format: "qcow2", dest: disk, sizeBytes: 96 << 20 });
    expect(first).toEqual({ path: disk, format: "qcow2", virtualSize: 96 << 20, created: true });
    const info = JSON.parse(await Bun.$`qemu-img info --output=json ${disk}`.text());
    expect(info["backing-filename"]).toBe(guest.disk);
    expect(info["backing-filename-format"]).toBe("qcow2");
    const again = await rt.prepareDisk({ baseImage: guest.disk, format: "qcow2", dest: disk, sizeBytes: 128 << 20 });
    expect(again).toEqual({ path: disk, format: "qcow2", virtualSize: 128 << 20, created: false });
  });

  test("boots: the boot line on the serial socket, cloud-init user-data seen by the guest, accounted in its cgroup", async () => {
    const t0 = performance.now();
    const status = await rt.start(spec(id, disk, { cloudInitUserData: "#cloud-config\n# evebox-seed-marker\n" }), {
      readyPattern: GUEST_READY,
      readyTimeoutMs: 90_000,
    });
    console.log(`boot to serial-ready: ${Math.round(performance.now() - t0)} ms`);
    rt.watch(id, (e) => exits.push(e));
    expect(status).toMatchObject({ appUuid: id, state: "running", qmpStatus: "running", accelerator: "tcg" });
    expect(qemuPids(id)).toEqual([status.pid!]);
    // The ready pattern can match before the rest of its line has arrived (a CI run read "EVEBOX-GUEST-READY"
    // without " on /dev/ttyS0"): wait for the whole line.
    await rt.waitForConsole(id, `${GUEST_READY} on /dev/ttyS0`, 10_000);
    const history = decode(rt.openConsole(id).history);
    expect(history).toContain(`${GUEST_READY} on /dev/ttyS0`);
    expect(history).toContain("evebox-guest: user-data: # evebox-seed-marker");

    // Starting it again with the same spec is a no-op.
    expect((await rt.start(spec(id, disk, { cloudInitUserData: "#cloud-config\n# evebox-seed-marker\n" }))).pid).toBe(status.pid);

    const stats = rt.stats(id);
    expect(stats.cpuUsageUsec).toBeGreaterThan(100_000);
    expect(stats.memoryBytes).toBeGreaterThan(16 << 20);
    if (stats.cgroup) {
      expect(readFileSync(join(stats.cgroup, "cgroup.procs"), "utf8").split("\n")).toContain(String(status.pid));
    } else {
      console.log(`no per-VM cgroup here: ${rt.cgroupUnavailableReason()}`);
    }
  }, 120_000);

  test("a command typed on the serial console is answered, and on the virtio console", async () => {
    expect(await askGuest(rt, id, "uname -r")).toMatch(/^6\.1\.0-\d+-cloud-amd64$/);
    await rt.waitForConsole(id, `${GUEST_READY} on /dev/hvc0`, 10_000, "virtio");
    expect(await askGuest(rt, id, "tty", "virtio")).toBe("/dev/hvc0");
    expect(await askGuest(rt, id, "tty", "serial")).toBe("/dev/ttyS0");
  }, 60_000);

  test("viewers share the console: two see the same live output; one opened late still gets the boot line", async () => {
    const a = rt.openConsole(id);
    const b = rt.openConsole(id);
    const read = async (c: ReturnType<typeof rt.openConsole>) => {
      const reader = c.readable.getReader();
      let text = "";
      while (!text.includes("shared-view")) text += decode((await reader.read()).value ?? new Uint8Array());
      reader.releaseLock();
      return text;
    };
    const both = Promise.all([read(a), read(b)]);
    a.write('echo "shared""-view"\n');
    const [ta, tb] = await both;
    expect(ta).toContain("shared-view");
    expect(tb).toContain("shared-view");
    a.close();
    b.close();
    expect(decode(rt.openConsole(id).history)).toContain(GUEST_READY);
  }, 30_000);

  test("ACPI shutdown: the guest's power-button handler powers it off; watch reports it; nothing is left", async () => {
    const c = rt.openConsole(id);
    const reader = c.readable.getReader();
    let seen = "";
    const collecting = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += decode(value);
      }
    })();
    const result = await rt.shutdown(id, 30_000);
    await collecting;
    expect(result.how).toBe("acpi");
    expect(seen).toContain("evebox-guest: ACPI power button, powering off");
    expect(exits).toHaveLength(1);
    expect(exits[0]).toMatchObject({ appUuid: id, reason: "host-shutdown", exitCode: 0, signal: null });
    expect(qemuPids(id)).toEqual([]);
    expect(existsSync(join(RUN, "vms", id))).toBe(false);
    expect((await rt.status(id)).state).toBe("stopped");
    expect(await rt.shutdown(id, 1000)).toEqual({ how: "none", elapsedMs: 0 });
  }, 60_000);
});

describe("shutdown of a guest that ignores the power button", () => {
  test("after the timeout QEMU is told to quit; watch reports a host shutdown; nothing is left", async () => {
    const rt = runtime();
    const id = uuid();
    started.push(id);
    // No bootable disk: SeaBIOS keeps looking for one and never handles ACPI.
    const blank = join(WORK, "ignores-acpi.qcow2");
    await Bun.$`qemu-img create -q -f qcow2 ${blank} 16M`;
    await rt.start(spec(id, blank));
    const exit = new Promise<VmExit>((resolve) => rt.watch(id, resolve));
    const result = await rt.shutdown(id, 1500);
    expect(result.how).toBe("quit");
    expect(result.elapsedMs).toBeGreaterThanOrEqual(1500);
    expect(await exit).toMatchObject({ appUuid: id, reason: "host-shutdown", exitCode: 0 });
    expect(qemuPids(id)).toEqual([]);
    expect(existsSync(join(RUN, "vms", id))).toBe(false);
    expect(logs.some((l) => l.includes(id) && l.includes("did not power off within 1500 ms; quitting QEMU"))).toBe(true);
  }, 30_000);
});

describe("VMs outlive the process that started them", () => {
  const id = uuid();
  started.push(id);
  let adopter: QemuRuntime;
  let pid: number;

  test("started by a process that is then SIGKILLed, the guest keeps running; a new QemuRuntime adopts it; uptime grows", async () => {
    const disk = await overlay("outlive");
    const helper = Bun.spawn([process.execPath, join(ROOT, "tests/support/guest/start-vm.ts"), RUN, disk, id], {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, BUN_BE_BUN: "1" },
    });
    helpers.push(helper);
    const reader = helper.stdout.getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the helper exited: ${await new Response(helper.stderr).text()}`);
      out += decode(value);
    }
    const before = JSON.parse(out) as { pid: number; uptime: number };
    pid = before.pid;
    helper.kill("SIGKILL");
    await helper.exited;
    expect(isOurQemu(pid, id)).toBe(true);
    const ppid = Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
    expect(ppid).not.toBe(helper.pid);

    adopter = runtime();
    const adopted = await adopter.adopt();
    const mine = adopted.find((v) => v.appUuid === id)!;
    expect(mine).toMatchObject({ appUuid: id, pid, state: "running", accelerator: "tcg", name: "outlives its starter" });
    expect(qemuPids(id)).toEqual([pid]); // never restarted
    // The late viewer still sees the boot line: the history comes from QEMU's serial logfile.
    expect(decode(adopter.openConsole(id).history)).toContain(GUEST_READY);
    const u1 = Number(await askGuest(adopter, id, "cut -d' ' -f1 /proc/uptime"));
    await Bun.sleep(1500); // deliberately: the guest's uptime must grow meanwhile
    const u2 = Number(await askGuest(adopter, id, "cut -d' ' -f1 /proc/uptime"));
    expect(u1).toBeGreaterThan(before.uptime);
    expect(u2).toBeGreaterThan(u1 + 1);
    expect(await adopter.adopt()).toEqual([]); // already adopted: nothing new
  }, 150_000);

  test("a second runtime on the same run directory cannot take a VM over and leaves it running", async () => {
    const second = runtime();
    expect(await second.adopt()).toEqual([]); // the first runtime holds the QMP connection
    expect(isOurQemu(pid, id)).toBe(true);
    expect(logs.some((l) => l.startsWith("warn") && l.includes(id) && l.includes("left running, not adopted"))).toBe(true);
    const refused = await expectVmError(second.start(spec(id, "/x")), "invalid-spec");
    expect(refused.message).toContain(`refused: QEMU (pid ${pid}) already runs this VM but is not managed here (adoption failed: QMP`);
    second.close();
  }, 30_000);

  test("a VM whose QEMU died while no runtime was there is cleaned up at adoption, not adopted", async () => {
    const dead = uuid();
    const otherRun = join(WORK, "run-dead");
    const dir = join(otherRun, "vms", dead);
    await Bun.$`mkdir -p ${dir}`;
    // A pid that is certainly not a QEMU of this uuid: a process that has exited.
    const gone = Bun.spawn(["true"]);
    await gone.exited;
    await Bun.write(join(dir, "qemu.pid"), `${gone.pid}\n`);
    await Bun.write(join(dir, "qemu.log"), "qemu-system-x86_64: terminating on signal 15 from pid 1\n");
    await Bun.write(join(dir, "spec.json"), JSON.stringify({ spec: spec(dead, "/x"), specHash: "x", accelerator: "tcg", startedAt: "" }));
    const rt = new QemuRuntime({ runDir: otherRun, logger });
    runtimes.push(rt);
    expect(await rt.adopt()).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    expect(logs.some((l) => l.startsWith("warn") && l.includes(dead) && l.includes("terminating on signal 15"))).toBe(true);
  });

  test("kill -9 of QEMU: watch reports the exit; run directory and cgroup are cleaned up", async () => {
    const cgroup = adopter.stats(id).cgroup;
    const exit = new Promise<VmExit>((resolve) => adopter.watch(id, resolve));
    const t0 = performance.now();
    process.kill(pid, "SIGKILL");
    const e = await exit;
    console.log(`QEMU death noticed after ${Math.round(performance.now() - t0)} ms`);
    expect(e).toMatchObject({ appUuid: id, pid, reason: "crashed", exitCode: null });
    expect(qemuPids(id)).toEqual([]);
    expect(existsSync(join(RUN, "vms", id))).toBe(false);
    if (cgroup) expect(existsSync(cgroup)).toBe(false);
    expect(logs.some((l) => l.startsWith("warn") && l.includes(id) && l.includes("crashed"))).toBe(true);
  }, 30_000);
});

describe("bad input is refused with a clear error and leaves nothing behind", () => {
  const rt = runtime();

  test("prepareDisk refuses a file that is not a disk image", async () => {
    const dest = join(WORK, "never.qcow2");
    const asQcow2 = await expectVmError(rt.prepareDisk({ baseImage: guest.notADisk, format: "qcow2", dest, app: { uuid: uuid(), name: "web" } }), "not-a-disk");
    expect(asQcow2.message).toMatch(/^app "web" \(.*\): .*not-a-disk\.img is not a qcow2 disk image: qemu-img reads it as raw$/);
    const asRaw = await expectVmError(rt.prepareDisk({ baseImage: guest.notADisk, format: "raw", dest }), "not-a-disk");
    expect(asRaw.message).toContain("is not a raw disk image: it is an HTML or XML document");
    // A qcow2 that points at another file (here: an overlay) is not a self-contained content tree.
    const chained = await expectVmError(rt.prepareDisk({ baseImage: await overlay("chained"), format: "qcow2", dest }), "not-a-disk");
    expect(chained.message).toContain(`it has a backing file (${guest.disk})`);
    const missing = await expectVmError(rt.prepareDisk({ baseImage: join(WORK, "nope.img"), format: "raw", dest }), "not-a-disk");
    expect(missing.message).toContain("no such file or directory");
    expect(existsSync(dest)).toBe(false);
  });

  test("a missing kernel is refused before anything starts", async () => {
    const id = uuid();
    const err = await expectVmError(
      rt.start(spec(id, guest.disk, { disks: [], kernel: join(WORK, "missing-vmlinuz"), initrd: guest.initrd, cmdline: "console=ttyS0" })),
      "invalid-spec",
    );
    expect(err.message).toBe(`app "test vm ${id.slice(-4)}" (${id}): refused: kernel: ${join(WORK, "missing-vmlinuz")} does not exist or is not a file`);
    expect(existsSync(join(RUN, "vms", id))).toBe(false);
  });

  test("more memory than the host has is refused before start", async () => {
    const id = uuid();
    const totalKiB = Number(readFileSync("/proc/meminfo", "utf8").match(/MemTotal:\s+(\d+)/)![1]);
    const err = await expectVmError(rt.start(spec(id, guest.disk, { memoryKiB: totalKiB * 2 })), "insufficient-resources");
    expect(err.message).toMatch(/refused: memoryKiB: \d+ KiB \(\d+ MiB\) is more than this host has available \(\d+ MiB available of \d+ MiB\)/);
    expect(qemuPids(id)).toEqual([]);
    expect(existsSync(join(RUN, "vms", id))).toBe(false);
  });

  test("a disk QEMU cannot open: start fails with QEMU's own words; no process, run directory or cgroup left", async () => {
    const id = uuid();
    started.push(id);
    const err = await expectVmError(
      rt.start(spec(id, guest.notADisk, { disks: [{ path: guest.notADisk, format: "qcow2", readOnly: true }] })),
      "start-failed",
    );
    expect(err.message).toContain(`app "test vm ${id.slice(-4)}" (${id}): QEMU exited 1 while starting`);
    expect(err.stderrTail).toContain("Image is not in qcow2 format");
    expect(qemuPids(id)).toEqual([]);
    expect(existsSync(join(RUN, "vms", id))).toBe(false);
    expect(existsSync(`/sys/fs/cgroup/unified/evebox.slice/vm-${id}`) || existsSync(`/sys/fs/cgroup/evebox.slice/vm-${id}`)).toBe(false);
  }, 30_000);

  test("a guest that never boots: the start times out, QEMU is killed, nothing is left", async () => {
    const id = uuid();
    started.push(id);
    const blank = join(WORK, "blank.qcow2");
    await Bun.$`qemu-img create -q -f qcow2 ${blank} 16M`;
    const t0 = performance.now();
    const err = await expectVmError(
      rt.start(spec(id, blank), { readyPattern: GUEST_READY, readyTimeoutMs: 5000 }),
      "boot-timeout",
    );
    expect(performance.now() - t0).toBeLessThan(20_000);
    expect(err.message).toContain(`(${id}): the guest did not boot: no ${GUEST_READY} within 5000 ms on its serial console; it was killed.`);
    expect(qemuPids(id)).toEqual([]);
    expect(existsSync(join(RUN, "vms", id))).toBe(false);
    expect(existsSync(`/sys/fs/cgroup/unified/evebox.slice/vm-${id}`) || existsSync(`/sys/fs/cgroup/evebox.slice/vm-${id}`)).toBe(false);
  }, 30_000);
});

describe("network interfaces", () => {
  // Names carry evebox's own prefixes (eb… bridges, ev… taps), so nothing of the host's is touched.
  const bridge = `ebvm${process.pid % 10000}`;
  const tap = `evvm${process.pid % 10000}`;
  afterAll(async () => {
    await Bun.$`ip link del ${bridge}`.nothrow().quiet();
  });

  test("a tap NIC is created by QEMU, enslaved to its bridge and up before the guest runs; gone with QEMU", async () => {
    await Bun.$`ip link add ${bridge} type bridge`.quiet();
    const rt = runtime();
    const id = uuid();
    started.push(id);
    await rt.start(
      spec(id, "", {
        disks: [],
        kernel: guest.kernel,
        initrd: guest.initrd,
        cmdline: "console=ttyS0 quiet",
        nics: [{ kind: "tap", ifname: tap, mac: "02:00:00:00:00:01", bridge }],
      }),
    );
    const link = JSON.parse(await Bun.$`ip -j link show ${tap}`.text())[0];
    expect(link.master).toBe(bridge);
    expect(link.flags).toContain("UP");
    await rt.kill(id);
    expect((await Bun.$`ip link show ${tap}`.nothrow().quiet()).exitCode).not.toBe(0);
  }, 30_000);
});

describe("UEFI", () => {
  test("OVMF boots the guest's kernel; the VM gets its own copy of the variable store", async () => {
    const rt = runtime();
    const id = uuid();
    started.push(id);
    const vars = join(WORK, `vars-${id}.fd`);
    const t0 = performance.now();
    await rt.start(
      spec(id, "", {
        mode: "uefi",
        memoryKiB: 256 * 1024, // OVMF faults with 128 MiB and a 14 MiB kernel to load
        disks: [],
        nics: [],
        kernel: guest.kernel,
        initrd: guest.initrd,
        cmdline: "console=ttyS0 quiet",
        firmwareVarsPath: vars,
      }),
      { readyPattern: GUEST_READY, readyTimeoutMs: 120_000 },
    );
    console.log(`UEFI boot to serial-ready: ${Math.round(performance.now() - t0)} ms`);
    expect(existsSync(vars)).toBe(true);
    expect(await askGuest(rt, id, "ls -d /sys/firmware/efi")).toBe("/sys/firmware/efi");
    expect((await rt.kill(id))?.reason).toBe("killed");
    expect(qemuPids(id)).toEqual([]);
  }, 150_000);
});
