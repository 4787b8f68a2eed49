// Run as its own process by tests/vms.test.ts: starts the test guest through a QemuRuntime, reads the guest's
// uptime, prints {pid, uptime} as one JSON line and waits to be killed, so the test can show that the VM outlives
// the process that started it.
//   bun tests/support/guest/start-vm.ts <runDir> <disk.qcow2> <appUuid>
import { QemuRuntime } from "../../../src/runtime/vms/index.ts";
import { askGuest } from "./console.ts";
import { GUEST_READY } from "./image.ts";

const [runDir, disk, appUuid] = Bun.argv.slice(2);
if (!runDir || !disk || !appUuid) throw new Error("usage: start-vm.ts <runDir> <disk.qcow2> <appUuid>");
const runtime = new QemuRuntime({ runDir });
const status = await runtime.start(
  {
    appUuid,
    name: "outlives its starter",
    memoryKiB: 128 * 1024,
    vcpus: 1,
    mode: "legacy-bios",
    disks: [{ path: disk, format: "qcow2", readOnly: false }],
    nics: [],
    remoteConsole: false,
  },
  { readyPattern: GUEST_READY, readyTimeoutMs: 90_000 },
);
const uptime = Number((await askGuest(runtime, appUuid, "cut -d' ' -f1 /proc/uptime")).trim());
console.log(JSON.stringify({ pid: status.pid, uptime }));
await new Promise(() => {});
