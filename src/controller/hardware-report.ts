// The device's I/O as EVE reports it: ZInfoDevice.assignableAdapters (one ZioBundle per assignment group, with
// EVE's PhyIoType and PhyIoMemberUsage numbers) and ZInfoHardware.inventory (HardwareInventory: PCI, USB,
// serial, network and CAN devices), from hardware/'s inventory and assignment.
import { release } from "node:os";
import type { BundleStatus, Inventory } from "../hardware/types.ts";
import { NetworkDeviceType, PhyIoMemberUsage, PhyIoType, Severity, type HardwareInventory, type PCIAddress, type ZInfoHardware, type ZioBundle } from "../proto/index.ts";

/** What the controller part is given of the hardware part. */
export interface HardwareFacts {
  bundles: BundleStatus[];
  inventory: Inventory;
}

function enumValue<E extends Record<string, string | number>>(e: E, name: string, dflt: number): number {
  const v = (e as Record<string, string | number>)[name];
  return typeof v === "number" ? v : dflt;
}

export function zioBundle(b: BundleStatus, at: { seconds: number; nanos: number }): ZioBundle {
  // A bundle's error: a member missing from the host, or a host-side reason (no IOMMU, a split IOMMU group).
  const missing = b.found.flatMap((f) => (f.missing ? [f.missing] : []));
  const err = missing.length ? missing.join("; ") : !b.usedByBaseOs && b.notAssignable && b.usage !== "PhyIoUsageDisabled" ? b.notAssignable : null;
  return {
    type: enumValue(PhyIoType, b.type, PhyIoType.PhyIoNoop),
    name: b.name,
    members: b.members,
    usedByAppUUID: b.usedBy[0]?.uuid ?? "",
    usedByBaseOS: b.usedByBaseOs,
    ioAddressList: b.macs.map((macAddress) => ({ macAddress })),
    usage: enumValue(PhyIoMemberUsage, b.usage, PhyIoMemberUsage.PhyIoUsageNone),
    ...(err ? { err: { description: err, severity: Severity.SEVERITY_ERROR, timestamp: at } } : {}),
  };
}

export function pciAddress(address: string): PCIAddress {
  const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(address);
  if (!m) return {};
  return { domain: parseInt(m[1]!, 16), bus: parseInt(m[2]!, 16), device: parseInt(m[3]!, 16), function: parseInt(m[4]!, 16) };
}

export function hardwareInventory(inv: Inventory): HardwareInventory {
  const usbByName = new Map(inv.usb.map((u) => [u.name, u]));
  const parent = (pci: string | null, usb: string | null) => {
    const u = usb ? usbByName.get(usb) : undefined;
    if (u) return { usbParent: { bus: u.bus, port: u.port } };
    if (pci) return { pciParent: pciAddress(pci) };
    return undefined;
  };
  const netType = (k: string) => (k === "ethernet" ? NetworkDeviceType.NETWORK_DEVICE_TYPE_ETHERNET : k === "wifi" ? NetworkDeviceType.NETWORK_DEVICE_TYPE_WIFI : k === "wwan" ? NetworkDeviceType.NETWORK_DEVICE_TYPE_WWAN : NetworkDeviceType.NETWORK_DEVICE_TYPE_UNKNOWN);
  return {
    pciDevices: inv.pci.map((p) => ({
      ...(p.parent ? { parentPciDeviceAddress: pciAddress(p.parent) } : {}),
      driver: p.driver ?? "",
      address: pciAddress(p.address),
      vendorId: p.vendorId,
      deviceId: p.deviceId,
      revision: p.revision,
      subsystemId: p.subsystemId,
      classId: p.classCode,
      subclassId: (p.classCode >> 8) & 0xff,
      iommuGroup: p.iommuGroup ?? "",
    })),
    usbDevices: inv.usb
      .filter((u) => !u.rootHub)
      .map((u) => ({
        ...(u.controllerPci ? { parent: { pciParent: pciAddress(u.controllerPci) } } : {}),
        vendorId: u.vendorId,
        productId: u.productId,
        busPort: { bus: u.bus, port: u.port },
        driver: u.driver ?? "",
        classId: u.classId,
        suggestedAssigngrp: `USB${u.bus}:${u.port}`,
      })),
    serialDevices: inv.serial
      .filter((s) => !s.virtual)
      .map((s) => {
        const p = parent(s.pciParent, s.usbParent);
        return { ...(p ? { parent: p } : {}), ioportRange: s.ioPort ?? "", irq: s.irq ?? 0, devpath: s.devPath };
      }),
    networkDevices: inv.net
      .filter((n) => n.kind !== "virtual")
      .map((n) => {
        const p = parent(n.pciParent, n.usbParent);
        return { ...(p ? { parent: p } : {}), ifname: n.ifname, type: netType(n.kind), macAddress: n.mac ?? "", speedMbps: n.speedMbps ?? 0 };
      }),
    canDevices: inv.can.map((c) => {
      const p = parent(c.pciParent, c.usbParent);
      return { ...(p ? { parent: p } : {}), ifname: c.ifname };
    }),
  };
}

export function hardwareInfo(inv: Inventory): ZInfoHardware {
  return { inventory: hardwareInventory(inv), kernelVersion: release(), evePlatform: "evebox" };
}
