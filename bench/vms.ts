// VM benchmarks, as ratios against baselines measured in the same run (`npx bun bench/vms.ts`):
//   - boot to serial-ready of the test guest through QemuRuntime vs the same QEMU command line run bare
//     (spawned directly, its serial socket read directly); runs alternate, medians compared
//   - RSS of the process running the QemuRuntime with 5 VMs (128 MiB each) up and their consoles attached,
//     vs the same process before any VM
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import { buildQemuArgs, prepareDisk, QemuRuntime, type VmSpec, vmPaths } from "../src/runtime/vms/index.ts";
import { ensureGuestImage, GUEST_READY } from "../tests/support/guest/image.ts";

const RUNS = Number(process.env.BENCH_VM_RUNS ?? 5);
const VMS = Number(process.env.BENCH_VMS ?? 5);
const guest = await ensureGuestImage();
const work = mkdtempSync("/tmp/evebox-bench-vms-");
const runDir = join(work, "run");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
let n = 0;
const uuid = () => `00000000-0000-4000-8000-${String(process.pid % 1e6).padStart(6, "0")}${String(++n).padStart(6, "0")}`;

async function vmSpec(appUuid: string): Promise<VmSpec> {
  const disk = join(work, `${appUuid}.qcow2`);
  await prepareDisk({ baseImage: guest.disk, format: "qcow2", dest: disk, sizeBytes: 64 << 20 });
  return {
    appUuid,
    name: `bench ${n}`,
    memoryKiB: 128 * 1024,
    vcpus: 1,
    mode: "legacy-bios",
    disks: [{ path: disk, format: "qcow2", readOnly: false }],
    nics: [{ kind: "user" }],
    remoteConsole: false,
  };
}

/** The runtime's command line, run bare: spawn, read the serial socket until the boot line, kill. */
async function bareBoot(spec: VmSpec): Promise<number> {
  const paths = vmPaths(join(work, "bare"), spec.appUuid);
  await Bun.$`mkdir -p ${paths.dir}`;
  const args = buildQemuArgs(spec, { paths, accelerator: "tcg" });
  const t0 = performance.now();
  const proc = Bun.spawn(["qemu-system-x86_64", ...args], { stdio: ["ignore", "ignore", "inherit"] });
  try {
    let text = "";
    await new Promise<void>((resolve, reject) => {
      const tryConnect = () => {
        const s = createConnection({ path: paths.serial });
        s.on("error", () => (proc.exitCode === null ? setTimeout(tryConnect, 10) : reject(new Error("bare QEMU exited"))));
        s.on("data", (d: Buffer) => {
          text += d.toString("latin1");
          if (text.includes(GUEST_READY)) {
            s.destroy();
            resolve();
          }
        });
      };
      tryConnect();
    });
    return performance.now() - t0;
  } finally {
    proc.kill("SIGKILL");
    await proc.exited;
    rmSync(paths.dir, { recursive: true, force: true });
  }
}

const rt = new QemuRuntime({ runDir });
const accelerator = await rt.probeAccelerator(); // probed once per runtime; not part of a VM's start
if (accelerator !== "tcg") console.log(`note: accelerator is ${accelerator}; the bare runs use TCG`);

async function runtimeBoot(spec: VmSpec): Promise<number> {
  const t0 = performance.now();
  await rt.start(spec, { readyPattern: GUEST_READY, readyTimeoutMs: 120_000 });
  const ms = performance.now() - t0;
  await rt.kill(spec.appUuid);
  return ms;
}

const results: Record<string, number | string> = { accelerator };
try {
  const bare: number[] = [];
  const viaRuntime: number[] = [];
  await bareBoot(await vmSpec(uuid())); // warm the page cache with the image and QEMU
  for (let i = 0; i < RUNS; i++) {
    bare.push(await bareBoot(await vmSpec(uuid())));
    viaRuntime.push(await runtimeBoot(await vmSpec(uuid())));
  }
  results["boot-to-serial-ready ms (QemuRuntime, median)"] = Math.round(median(viaRuntime));
  results["boot-to-serial-ready ms (bare QEMU, median)"] = Math.round(median(bare));
  results["boot ratio runtime/bare (medians)"] = +(median(viaRuntime) / median(bare)).toFixed(2);
  // The fastest run of each is the least disturbed by whatever else the machine runs.
  results["boot ratio runtime/bare (fastest runs)"] = +(Math.min(...viaRuntime) / Math.min(...bare)).toFixed(2);
  results["boot ms all runs (runtime | bare)"] = `${viaRuntime.map(Math.round).join(" ")} | ${bare.map(Math.round).join(" ")}`;

  Bun.gc(true);
  await Bun.sleep(200);
  const rssBefore = process.memoryUsage().rss;
  const specs = await Promise.all(Array.from({ length: VMS }, () => vmSpec(uuid())));
  for (const s of specs) await rt.start(s);
  await Promise.all(specs.map((s) => rt.waitForConsole(s.appUuid, GUEST_READY, 180_000)));
  Bun.gc(true);
  await Bun.sleep(500);
  const rssWith = process.memoryUsage().rss;
  const qemuRss = rt.list().reduce((sum, vm) => sum + rt.stats(vm.appUuid).memoryBytes, 0);
  results["runtime process RSS MiB, no VM"] = +(rssBefore / 2 ** 20).toFixed(1);
  results[`runtime process RSS MiB, ${VMS} VMs running`] = +(rssWith / 2 ** 20).toFixed(1);
  results[`RSS ratio ${VMS} VMs / none`] = +(rssWith / rssBefore).toFixed(2);
  results[`QEMU RSS MiB, ${VMS} VMs together (for scale)`] = +(qemuRss / 2 ** 20).toFixed(0);
  for (const s of specs) await rt.kill(s.appUuid);
} finally {
  for (const vm of rt.list()) await rt.kill(vm.appUuid);
  rt.close();
  rmSync(work, { recursive: true, force: true });
}

const width = Math.max(...Object.keys(results).map((k) => k.length));
console.log(`\nevebox VM bench (${RUNS} boots each way, ${VMS} VMs for RSS)`);
for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(width)}  ${v}`);
