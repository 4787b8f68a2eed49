// The QEMU processes of VM apps, found by their command line (evebox's own check, isOurQemu), for the tests that
// check a VM was not restarted, or kill what a failed test left behind.
import { readdirSync } from "node:fs";
import { isOurQemu } from "../../src/runtime/vms/index.ts";

/** Every running QEMU of any of these app uuids. */
export function qemuPids(...appUuids: string[]): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => appUuids.some((uuid) => isOurQemu(pid, uuid)));
}
