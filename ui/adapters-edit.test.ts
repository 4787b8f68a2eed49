import { describe, expect, test } from "bun:test";
import type { HardwareStatus } from "../src/hardware/service.ts";
import { adapterEntries, adaptersOf, offeredAdapters } from "./adapters-edit";
import { addContainerApp, readApp, updateApp } from "./config-edit";

const doc = {
  deviceIoList: [
    { ptype: "PhyIoCOM", logicallabel: "COM1", assigngrp: "COM1", phyaddrs: { serial: "/dev/ttyS0" } },
    { ptype: "PhyIoHDMI", logicallabel: "gpu", assigngrp: "gpu", phyaddrs: { pcilong: "0000:00:02.0" } },
    { ptype: "PhyIoAudio", logicallabel: "gpu-audio", assigngrp: "gpu", phyaddrs: { pcilong: "0000:00:02.1" } },
  ],
};
let n = 0;
const newId = () => `7f000000-0000-4000-8000-${String(++n).padStart(12, "0")}`;
const input = { name: "reader", source: { kind: "registry" as const, registry: "127.0.0.1:5000", repository: "busybox:1" }, memoryMiB: 64, vcpus: 1, env: [], volumes: [] };

describe("an app's adapters in the console", () => {
  test("a new app names its groups, each typed as its first member; an edit replaces or removes them", () => {
    expect(adapterEntries(doc, ["gpu", "COM1", "gpu"])).toEqual([
      { type: "PhyIoHDMI", name: "gpu" },
      { type: "PhyIoCOM", name: "COM1" },
    ]);
    const created = addContainerApp(doc, { ...input, adapters: ["COM1"] }, { newId });
    const uuid = created.apps[0].uuidandversion.uuid;
    expect(created.apps[0].adapters).toEqual([{ type: "PhyIoCOM", name: "COM1" }]);
    expect(readApp(created, uuid)!.adapters).toEqual(["COM1"]);
    const changed = updateApp(created, uuid, { adapters: ["gpu"] });
    expect(adaptersOf(changed, uuid)).toEqual(["gpu"]);
    expect(updateApp(changed, uuid, { adapters: [] }).apps[0].adapters).toBeUndefined();
    // an app without adapters gets no field at all
    expect(addContainerApp(doc, input, { newId }).apps[0].adapters).toBeUndefined();
  });

  test("offered: a free group can be chosen; one held by another app, a management port or a missing device says why not", () => {
    const bundle = (name: string, over: Partial<HardwareStatus["bundles"][number]>) => ({ name, type: "PhyIoCOM", members: [name], usage: "PhyIoUsageNone", usedBy: [], usedByBaseOs: false, notAssignable: null, found: [{ label: name, what: `serial port /dev/${name}` }], macs: [], ...over });
    const hw = {
      bundles: [
        bundle("COM1", {}),
        bundle("COM2", { usedBy: [{ uuid: "a", name: "other" }] }),
        bundle("COM3", { usedBy: [{ uuid: "me", name: "me" }] }),
        bundle("eth0", { type: "PhyIoNetEth", usedByBaseOs: true, notAssignable: "eth0: it is a management port (PhyIoUsageMgmtOnly)" }),
        bundle("USB9", { type: "PhyIoUSB", found: [{ label: "USB9", what: "USB device", missing: "USB device 9:1 is not on this host" }] }),
        bundle("COMS", { usage: "PhyIoUsageShared", usedBy: [{ uuid: "a", name: "other" }] }),
      ],
    } as unknown as HardwareStatus;
    expect(offeredAdapters(hw, "me").map((o) => [o.name, o.unavailable])).toEqual([
      ["COM1", null],
      ["COM2", "in use by other"],
      ["COM3", null],
      ["eth0", "eth0: it is a management port (PhyIoUsageMgmtOnly)"],
      ["USB9", "USB device 9:1 is not on this host"],
      ["COMS", null],
    ]);
  });
});
