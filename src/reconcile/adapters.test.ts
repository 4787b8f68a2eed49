import { describe, expect, test } from "bun:test";
import type { Assignment } from "../hardware/assign.ts";
import { containerDevices } from "./containers.ts";
import { desiredFromConfig, withAdapters } from "./desired.ts";

const U = (n: number) => `7e000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
const doc = {
  datastores: [{ id: U(1), dType: "DsContainerRegistry", fqdn: "docker://127.0.0.1:5000" }],
  contentInfo: [{ uuid: U(2), dsId: U(1), URL: "busybox:1", iformat: "CONTAINER" }],
  volumes: [{ uuid: U(3), origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: U(2) } }],
  apps: [1, 2, 3].map((n) => ({ uuidandversion: { uuid: U(10 + n), version: "1" }, displayname: `a${n}`, activate: true, volumeRefList: [{ uuid: U(3) }] })),
};
const devices = {
  serial: [{ label: "COM1", hostPath: "/dev/ttyS0" }, { label: "pty", hostPath: "/dev/pts/4" }],
  usb: [{ label: "dongle", devPath: "/dev/bus/usb/001/004", ref: { bus: 1, port: "3" } }],
  pci: [],
  can: [],
};

describe("adapters in the desired state", () => {
  test("an app's devices change its spec hash; an app without adapters keeps the hash it had; a refused app is in error", () => {
    const before = desiredFromConfig(doc);
    const d = desiredFromConfig(doc);
    const assignment: Assignment = {
      apps: new Map([
        [U(11), { devices, groups: ["COM1"], error: null }],
        [U(12), { devices: { serial: [], usb: [], pci: [], can: [] }, groups: [], error: "adapter COM1: assigned to app a1" }],
      ]),
      bundles: [],
      held: new Map(),
    };
    withAdapters(d, assignment);
    expect(d.apps[0]!.devices).toEqual(devices);
    expect(d.apps[0]!.generation).not.toBe(before.apps[0]!.generation);
    expect([d.apps[1]!.error, d.apps[1]!.generation]).toEqual(["adapter COM1: assigned to app a1", before.apps[1]!.generation]);
    expect([d.apps[2]!.error, d.apps[2]!.generation]).toEqual([null, before.apps[2]!.generation]);
  });

  test("a container gets a ttyS and a USB node as devices at their host paths, a pty bind-mounted as /dev/ttyV<k>", () => {
    expect(containerDevices({ devices })).toEqual({
      devices: [
        { hostPath: "/dev/ttyS0", containerPath: "/dev/ttyS0" },
        { hostPath: "/dev/bus/usb/001/004", containerPath: "/dev/bus/usb/001/004" },
      ],
      binds: [{ source: "/dev/pts/4", target: "/dev/ttyV0", readOnly: false }],
    });
  });
});
