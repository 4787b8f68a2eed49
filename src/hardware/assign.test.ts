import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildDeviceModel } from "../config/model.ts";
import { assignAdapters } from "./assign.ts";
import { writeFakeSysfs } from "./fake-sysfs.ts";
import { readInventory } from "./inventory.ts";

// The fake tree: this machine has no USB, CAN, GPU or IOMMU (fake-sysfs.ts says what it holds).
const roots: string[] = [];
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));
function inventory(iommu = true) {
  const root = mkdtempSync(join(tmpdir(), "evebox-assign-"));
  roots.push(root);
  writeFakeSysfs(root, { iommu });
  return readInventory(root);
}
const INV = inventory();

const U = (n: number) => `7b000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
const IO = [
  { ptype: "PhyIoCOM", logicallabel: "COM1", assigngrp: "COM1", phyaddrs: { serial: "/dev/ttyS0" } },
  { ptype: "PhyIoCOM", logicallabel: "COM9", assigngrp: "COM9", phyaddrs: { serial: "/dev/ttyS9" } },
  { ptype: "PhyIoCOM", logicallabel: "COMS", assigngrp: "COMS", phyaddrs: { serial: "/dev/ttyUSB0" }, usage: "PhyIoUsageShared" },
  { ptype: "PhyIoUSB", logicallabel: "dongle", assigngrp: "USB-dongle", phyaddrs: { usbaddr: "1:3" } },
  { ptype: "PhyIoUSB", logicallabel: "ftdi", assigngrp: "USB-ftdi", phyaddrs: { usbproduct: "0403:6001" } },
  { ptype: "PhyIoUSB", logicallabel: "ghost", assigngrp: "USB-ghost", phyaddrs: { usbaddr: "1:9.2" } },
  { ptype: "PhyIoHDMI", logicallabel: "gpu", assigngrp: "gpu", phyaddrs: { pcilong: "0000:00:02.0" } },
  { ptype: "PhyIoAudio", logicallabel: "gpu-audio", assigngrp: "gpu", phyaddrs: { pcilong: "0000:00:02.1" } },
  { ptype: "PhyIoHDMI", logicallabel: "gpu-alone", assigngrp: "gpu-alone", phyaddrs: { pcilong: "0000:00:02.0" } },
  { ptype: "PhyIoNetEth", logicallabel: "eth1", assigngrp: "eth1", phyaddrs: { pcilong: "0000:00:1f.6", ifname: "eth1" } },
  { ptype: "PhyIoCAN", logicallabel: "can0", assigngrp: "can0", phyaddrs: { ifname: "can0" } },
  { ptype: "PhyIoVCAN", logicallabel: "vcan0", assigngrp: "vcan0", phyaddrs: { ifname: "vcan0" } },
  { ptype: "PhyIoCAN", logicallabel: "can7", assigngrp: "can7", phyaddrs: { ifname: "can7" } },
  { ptype: "PhyIoNetEth", logicallabel: "eth0", assigngrp: "eth0", phyaddrs: { ifname: "eth0" }, usage: "PhyIoUsageMgmtOnly" },
];
function model(apps: { n: number; kind: "container" | "vm"; adapters: string[] }[]) {
  const doc = {
    datastores: [{ id: U(1), dType: "DsHttp", fqdn: "http://127.0.0.1/" }],
    contentInfo: [
      { uuid: U(2), dsId: U(1), URL: "c", iformat: "CONTAINER" },
      { uuid: U(3), dsId: U(1), URL: "d", iformat: "QCOW2", sha256: "ab".repeat(32) },
    ],
    volumes: [
      { uuid: U(4), origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: U(2) } },
      { uuid: U(5), origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: U(3) } },
    ],
    deviceIoList: IO,
    apps: apps.map((a) => ({ uuidandversion: { uuid: U(100 + a.n), version: "1" }, displayname: `app${a.n}`, volumeRefList: [{ uuid: a.kind === "container" ? U(4) : U(5) }], adapters: a.adapters.map((name) => ({ type: "PhyIoNoop", name })) })),
  };
  return buildDeviceModel(doc).model;
}

describe("assigning adapters (a fake sysfs tree with USB, CAN, a GPU and an IOMMU)", () => {
  test("a group goes to the first app; a second one asking is in error naming the first; without the first it gets it", () => {
    const a = assignAdapters(model([{ n: 1, kind: "container", adapters: ["COM1"] }, { n: 2, kind: "container", adapters: ["COM1"] }]), INV);
    expect(a.apps.get(U(101))).toEqual({ devices: { serial: [{ label: "COM1", hostPath: "/dev/ttyS0" }], usb: [], pci: [], can: [] }, groups: ["COM1"], error: null });
    expect(a.apps.get(U(102))!.error).toBe(`adapter COM1: assigned to app app1 (${U(101)})`);
    expect(a.bundles.find((b) => b.name === "COM1")!.usedBy).toEqual([{ uuid: U(101), name: "app1" }]);
    const after = assignAdapters(model([{ n: 2, kind: "container", adapters: ["COM1"] }]), INV, { held: a.held });
    expect(after.apps.get(U(102))!.error).toBeNull();
    expect(after.held.get("COM1")).toEqual([U(102)]);
  });

  test("the app that held a group keeps it, whatever the config's order", () => {
    const m = model([{ n: 1, kind: "container", adapters: ["COM1"] }, { n: 2, kind: "container", adapters: ["COM1"] }]);
    const a = assignAdapters(m, INV, { held: new Map([["COM1", [U(102)]]]) });
    expect(a.apps.get(U(102))!.error).toBeNull();
    expect(a.apps.get(U(101))!.error).toContain("assigned to app app2");
  });

  test("a Shared group goes to every app that asks", () => {
    const a = assignAdapters(model([{ n: 1, kind: "container", adapters: ["COMS"] }, { n: 2, kind: "vm", adapters: ["COMS"] }]), INV);
    expect([a.apps.get(U(101))!.error, a.apps.get(U(102))!.error]).toEqual([null, null]);
    expect(a.held.get("COMS")).toEqual([U(101), U(102)]);
  });

  test("USB by bus and port, and by vendor:product; an address not on the host is refused with that address", () => {
    const a = assignAdapters(model([{ n: 1, kind: "vm", adapters: ["USB-dongle", "USB-ftdi"] }, { n: 2, kind: "vm", adapters: ["USB-ghost"] }]), INV);
    expect(a.apps.get(U(101))!.devices.usb).toEqual([
      { label: "dongle", devPath: "/dev/bus/usb/001/004", ref: { bus: 1, port: "3" } },
      { label: "ftdi", devPath: "/dev/bus/usb/001/003", ref: { vendorId: 0x0403, productId: 0x6001 } },
    ]);
    expect(a.apps.get(U(102))!.error).toBe("adapter USB-ghost: USB device 1:9.2 is not on this host");
  });

  test("a missing serial port is refused with its device node; a pty the config names is taken when it exists", () => {
    const a = assignAdapters(model([{ n: 1, kind: "container", adapters: ["COM9"] }]), INV);
    expect(a.apps.get(U(101))!.error).toBe("adapter COM9: serial port /dev/ttyS9 is not on this host");
    const b = assignAdapters(model([{ n: 1, kind: "container", adapters: ["COM9"] }]), INV, { present: (p) => p === "/dev/ttyS9" });
    expect(b.apps.get(U(101))!.devices.serial).toEqual([{ label: "COM9", hostPath: "/dev/ttyS9" }]);
  });

  test("a GPU with its audio function (one IOMMU group) goes to a VM; the GPU alone is refused: the group is split", () => {
    const a = assignAdapters(model([{ n: 1, kind: "vm", adapters: ["gpu"] }, { n: 2, kind: "vm", adapters: ["gpu-alone"] }]), INV);
    expect(a.apps.get(U(101))!.devices.pci).toEqual([
      { label: "gpu", address: "0000:00:02.0", iommuGroup: "1" },
      { label: "gpu-audio", address: "0000:00:02.1", iommuGroup: "1" },
    ]);
    expect(a.apps.get(U(102))!.error).toBe("adapter gpu-alone: PCI function 0000:00:02.0: its IOMMU group 1 also holds 0000:00:02.1 (Audio device), which is not in adapter group gpu-alone: a group is passed through whole");
  });

  test("without an IOMMU a PCI function is refused with 'no IOMMU'; a container cannot take one either", () => {
    const a = assignAdapters(model([{ n: 1, kind: "vm", adapters: ["eth1"] }]), inventory(false));
    expect(a.apps.get(U(101))!.error).toStartWith("adapter eth1: PCI function 0000:00:1f.6: no IOMMU on this host");
    expect(a.bundles.find((b) => b.name === "eth1")!.notAssignable).toContain("no IOMMU");
    const c = assignAdapters(model([{ n: 1, kind: "container", adapters: ["eth1"] }]), INV);
    expect(c.apps.get(U(101))!.error).toBe("adapter eth1: eth1 (PCI 0000:00:1f.6) is passed through by VFIO: only a VM app can take it");
  });

  test("the console's port is never given away, even by its PCI function", () => {
    const a = assignAdapters(model([{ n: 1, kind: "vm", adapters: ["eth1"] }]), INV, { reserved: new Map([["eth1", "is the port the console listens on"]]) });
    expect(a.apps.get(U(101))!.error).toBe("adapter eth1: eth1: eth1 is the port the console listens on");
    const b = a.bundles.find((x) => x.name === "eth1")!;
    expect([b.usedByBaseOs, b.macs]).toEqual([true, ["00:1b:21:aa:bb:cc"]]);
    expect(a.bundles.find((x) => x.name === "eth0")).toMatchObject({ usedByBaseOs: true, notAssignable: "eth0: it is a management port (PhyIoUsageMgmtOnly)", found: [{ label: "eth0", what: "network port eth0 (52:54:00:12:34:56) on Ethernet controller at 0000:00:03.0" }] });
  });

  test("CAN interfaces go to containers (a VM cannot take one); one not on the host is refused with its name", () => {
    const a = assignAdapters(model([{ n: 1, kind: "container", adapters: ["can0", "vcan0"] }, { n: 2, kind: "container", adapters: ["can7"] }, { n: 3, kind: "vm", adapters: ["can0"] }]), INV);
    expect(a.apps.get(U(101))!.devices.can).toEqual([
      { label: "can0", ifname: "can0" },
      { label: "vcan0", ifname: "vcan0" },
    ]);
    expect(a.apps.get(U(102))!.error).toBe("adapter can7: CAN interface can7 is not on this host");
    expect(a.apps.get(U(103))!.error).toContain("adapter can0: can0 (CAN can0) is moved into a container's network namespace: a VM app cannot take it");
  });

  test("an app in error gets nothing, so its groups stay free for the next", () => {
    const a = assignAdapters(model([{ n: 1, kind: "container", adapters: ["COM1", "COM9"] }, { n: 2, kind: "container", adapters: ["COM1"] }]), INV);
    expect(a.apps.get(U(101))!.groups).toEqual([]);
    expect(a.apps.get(U(102))!.error).toBeNull();
    const skipped = assignAdapters(model([{ n: 1, kind: "container", adapters: ["COM1"] }, { n: 2, kind: "container", adapters: ["COM1"] }]), INV, { skip: new Set([U(101)]) });
    expect(skipped.apps.get(U(102))!.error).toBeNull();
    // …unless it held the group before: then the group stays its own while it is in error.
    const kept = assignAdapters(model([{ n: 1, kind: "container", adapters: ["COM1"] }, { n: 2, kind: "container", adapters: ["COM1"] }]), INV, { skip: new Set([U(101)]), held: new Map([["COM1", [U(101)]]]) });
    expect(kept.apps.get(U(102))!.error).toBe(`adapter COM1: assigned to app app1 (${U(101)})`);
    expect(kept.held.get("COM1")).toEqual([U(101)]);
  });

  test("the bundles say what each member is on this host", () => {
    const a = assignAdapters(model([]), INV);
    expect(a.bundles.find((b) => b.name === "gpu")!.found).toEqual([
      { label: "gpu", what: "VGA compatible controller 8086:3e92 at 0000:00:02.0 (driver i915)" },
      { label: "gpu-audio", what: "Audio device 8086:280b at 0000:00:02.1 (driver snd_hda_intel)" },
    ]);
    expect(a.bundles.find((b) => b.name === "USB-ftdi")!.found[0]!.what).toBe("FTDI FT232R USB UART (0403:6001) at USB 1:2, serial A50285BI");
    expect(a.bundles.find((b) => b.name === "USB-ghost")!.found[0]!.missing).toBe("USB device 1:9.2 is not on this host");
  });
});
