import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeFakeSysfs } from "./fake-sysfs.ts";
import { readInventory } from "./inventory.ts";

const roots: string[] = [];
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));
function fake(opts?: Parameters<typeof writeFakeSysfs>[1]): string {
  const root = mkdtempSync(join(tmpdir(), "evebox-sysfs-"));
  roots.push(root);
  writeFakeSysfs(root, opts);
  return root;
}

describe("inventory of a fake sysfs tree (USB, CAN, GPU, IOMMU: none of these exist on the test machine)", () => {
  const inv = readInventory(fake());

  test("PCI functions: class, ids, driver, IOMMU group, the GPU and its audio function", () => {
    expect(inv.pci.map((p) => p.address)).toEqual(["0000:00:02.0", "0000:00:02.1", "0000:00:03.0", "0000:00:14.0", "0000:00:1d.0", "0000:00:1f.6"]);
    const gpu = inv.pci.find((p) => p.address === "0000:00:02.0")!;
    expect(gpu).toMatchObject({ classCode: 0x030000, className: "VGA compatible controller", vendorId: 0x8086, deviceId: 0x3e92, driver: "i915", iommuGroup: "1", gpu: true });
    expect(inv.pci.find((p) => p.address === "0000:00:02.1")).toMatchObject({ className: "Audio device", iommuGroup: "1", gpu: false });
    expect(inv.pci.find((p) => p.address === "0000:00:1f.6")!.ifnames).toEqual(["eth1"]);
    expect(inv.iommu).toBe(true);
  });

  test("USB: the controller's root hub and devices with bus, port path, ids, serial, their controller's PCI address", () => {
    expect(inv.usb.map((u) => u.name)).toEqual(["1-2", "1-3", "usb1"]);
    expect(inv.usb.find((u) => u.name === "1-2")).toMatchObject({ bus: 1, port: "2", devnum: 3, vendorId: 0x0403, productId: 0x6001, serial: "A50285BI", product: "FT232R USB UART", controllerPci: "0000:00:14.0", devPath: "/dev/bus/usb/001/003", rootHub: false });
    expect(inv.usb.find((u) => u.name === "usb1")).toMatchObject({ rootHub: true, controllerPci: "0000:00:14.0" });
  });

  test("serial ports: the UART with its I/O port, the USB adapter's tty with its USB parent; a type-0 slot and virtual consoles are not ports", () => {
    expect(inv.serial.map((s) => s.name)).toEqual(["ttyS0", "ttyUSB0"]);
    expect(inv.serial[0]).toMatchObject({ devPath: "/dev/ttyS0", ioPort: "0x3F8", irq: 4, usbParent: null });
    expect(inv.serial[1]).toMatchObject({ devPath: "/dev/ttyUSB0", usbParent: "1-2", pciParent: "0000:00:14.0" });
  });

  test("network ports and CAN interfaces (a PCI CAN and a vcan)", () => {
    expect(inv.net.map((n) => [n.ifname, n.kind, n.pciParent])).toEqual([
      ["eth0", "ethernet", "0000:00:03.0"],
      ["eth1", "ethernet", "0000:00:1f.6"],
    ]);
    expect(inv.can).toEqual([
      { ifname: "can0", virtual: false, pciParent: "0000:00:1d.0", usbParent: null },
      { ifname: "vcan0", virtual: true, pciParent: null, usbParent: null },
    ]);
  });

  test("without an IOMMU the functions have no group", () => {
    const none = readInventory(fake({ iommu: false }));
    expect(none.iommu).toBe(false);
    expect(none.pci.every((p) => p.iommuGroup === null)).toBe(true);
  });

  test("a missing root is an empty inventory, not an error", () => {
    const inv = readInventory("/nonexistent-sysfs");
    expect([inv.pci, inv.usb, inv.serial, inv.net, inv.can]).toEqual([[], [], [], [], []]);
  });
});

describe("inventory of this machine's real /sys", () => {
  const inv = readInventory("/sys");

  test("its PCI functions, as listed by /sys/bus/pci/devices, with the class and vendor sysfs shows", () => {
    const listed = readdirSync("/sys/bus/pci/devices").sort();
    expect(inv.pci.map((p) => p.address)).toEqual(listed);
    for (const p of inv.pci) {
      expect(p.classCode).toBe(parseInt(readFileSync(`/sys/bus/pci/devices/${p.address}/class`, "utf8"), 16));
      expect(p.vendorId).toBe(parseInt(readFileSync(`/sys/bus/pci/devices/${p.address}/vendor`, "utf8"), 16));
    }
  });

  test("its ttyS ports with a UART (type != 0) are the serial ports found", () => {
    const expected = readdirSync("/sys/class/tty")
      .filter((n) => /^ttyS\d+$/.test(n) && existsSync(`/sys/class/tty/${n}/device`) && readFileSync(`/sys/class/tty/${n}/type`, "utf8").trim() !== "0")
      .sort();
    expect(inv.serial.filter((s) => s.name.startsWith("ttyS")).map((s) => s.name)).toEqual(expected);
  });

  test("its IOMMU: as /sys/kernel/iommu_groups says (none on the CI machine)", () => {
    const groups = existsSync("/sys/kernel/iommu_groups") ? readdirSync("/sys/kernel/iommu_groups").length : 0;
    expect(inv.iommu).toBe(groups > 0);
  });
});
