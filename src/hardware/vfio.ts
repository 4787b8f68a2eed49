// Handing a PCI function to vfio-pci for a VM, and giving it back to its own driver afterwards, through sysfs
// (a root path: /sys, or a fake tree in tests — this machine has no IOMMU, so the real sequence never runs here).
// The kernel's sequence: driver_override names vfio-pci, the current driver lets go (unbind), drivers_probe binds
// by the override; release is the reverse, and drivers_probe finds the original driver again.
import { readlinkSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";

const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

/** Writes one sysfs attribute (injectable, so a test's fake kernel can act on the writes). */
export type SysfsWrite = (path: string, value: string) => void;
const realWrite: SysfsWrite = (path, value) => writeFileSync(path, value);

export function currentDriver(root: string, address: string): string | null {
  try {
    return basename(readlinkSync(join(root, "bus/pci/devices", address, "driver")));
  } catch {
    return null;
  }
}

function checked(address: string): string {
  if (!PCI_ADDRESS.test(address)) throw new Error(`${JSON.stringify(address)} is not a PCI address`);
  return address;
}

/**
 * Binds every function to vfio-pci (the whole IOMMU group: the caller passes all of it) and returns each one's
 * original driver (null: none was bound), which `releaseFromVfio` restores. A function already on vfio-pci stays.
 */
export function bindToVfio(root: string, addresses: string[], write: SysfsWrite = realWrite): Map<string, string | null> {
  const original = new Map<string, string | null>();
  for (const a of addresses.map(checked)) {
    const drv = currentDriver(root, a);
    original.set(a, drv);
    if (drv === "vfio-pci") continue;
    const dev = join(root, "bus/pci/devices", a);
    write(join(dev, "driver_override"), "vfio-pci");
    if (drv) write(join(root, "bus/pci/drivers", drv, "unbind"), a);
    write(join(root, "bus/pci/drivers_probe"), a);
    const now = currentDriver(root, a);
    if (now !== "vfio-pci") throw new Error(`PCI function ${a}: vfio-pci did not take it (driver now ${now ?? "none"}; is the vfio-pci module loaded?)`);
  }
  return original;
}

/** Gives each function back: off vfio-pci, the override cleared, and probed so its own driver binds again. */
export function releaseFromVfio(root: string, original: ReadonlyMap<string, string | null>, write: SysfsWrite = realWrite): void {
  for (const [a, drv] of original) {
    checked(a);
    if (drv === "vfio-pci") continue; // it was on vfio-pci before us
    const dev = join(root, "bus/pci/devices", a);
    if (currentDriver(root, a) === "vfio-pci") write(join(root, "bus/pci/drivers/vfio-pci/unbind"), a);
    write(join(dev, "driver_override"), "\n");
    if (drv) write(join(root, "bus/pci/drivers_probe"), a);
  }
}
