// The host's I/O, read from sysfs under a root path (`/sys` on a device; a fake tree in the tests): PCI functions,
// USB devices and their controllers, serial ports, network ports, CAN interfaces, GPUs. Reads only; a file that
// is missing or unreadable is an absent attribute, never an error (sysfs differs between kernels and boards).
import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { CanInterface, Inventory, NetKind, NetPortInfo, PciFunction, SerialPortInfo, UsbDevice } from "./types.ts";

const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
const USB_DEVICE = /^(\d+)-(\d+(?:\.\d+)*)$/;
const ROOT_HUB = /^usb(\d+)$/;

function text(path: string): string | null {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return null;
  }
}

function hex(path: string): number {
  const t = text(path);
  const n = t === null ? NaN : parseInt(t, 16);
  return Number.isFinite(n) ? n : 0;
}

function linkName(path: string): string | null {
  try {
    return basename(readlinkSync(path));
  } catch {
    return null;
  }
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

function real(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

/** The nearest ancestor directory (of a resolved device path) whose name matches, or null. */
function ancestor(path: string | null, re: RegExp): string | null {
  for (let p = path ? dirname(path) : null; p && p !== dirname(p); p = dirname(p)) if (re.test(basename(p))) return basename(p);
  return null;
}

/** The PCI or USB device a resolved sysfs device path sits on (itself included). */
function parents(path: string | null): { pci: string | null; usb: string | null } {
  if (!path) return { pci: null, usb: null };
  const self = basename(path);
  const usb = USB_DEVICE.test(self) ? self : ancestor(path, USB_DEVICE);
  const pci = PCI_ADDRESS.test(self) ? self : ancestor(path, PCI_ADDRESS);
  return { pci, usb };
}

const PCI_CLASSES: Record<number, string> = {
  0x01: "Storage controller",
  0x02: "Network controller",
  0x03: "Display controller",
  0x04: "Multimedia controller",
  0x06: "Bridge",
  0x07: "Communication controller",
  0x0c: "Serial bus controller",
  0xff: "Unassigned class",
};
const PCI_SUBCLASSES: Record<number, string> = {
  0x0100: "SCSI storage controller",
  0x0106: "SATA controller",
  0x0108: "Non-Volatile memory controller",
  0x0200: "Ethernet controller",
  0x0280: "Network controller",
  0x0300: "VGA compatible controller",
  0x0302: "3D controller",
  0x0403: "Audio device",
  0x0600: "Host bridge",
  0x0601: "ISA bridge",
  0x0604: "PCI bridge",
  0x0700: "Serial controller",
  0x0c03: "USB controller",
  0x0c80: "Serial bus controller",
  0x0c09: "CANbus controller",
};

export function pciClassName(classCode: number): string {
  return PCI_SUBCLASSES[classCode >> 8] ?? PCI_CLASSES[classCode >> 16] ?? `class 0x${classCode.toString(16).padStart(6, "0")}`;
}

export function readPci(root: string): PciFunction[] {
  const dir = join(root, "bus/pci/devices");
  return list(dir)
    .filter((a) => PCI_ADDRESS.test(a))
    .map((address): PciFunction => {
      const d = join(dir, address);
      const classCode = hex(join(d, "class"));
      return {
        address,
        classCode,
        className: pciClassName(classCode),
        vendorId: hex(join(d, "vendor")),
        deviceId: hex(join(d, "device")),
        revision: hex(join(d, "revision")),
        subsystemId: hex(join(d, "subsystem_device")),
        driver: linkName(join(d, "driver")),
        iommuGroup: linkName(join(d, "iommu_group")),
        parent: ancestor(real(d), PCI_ADDRESS),
        gpu: classCode >> 16 === 0x03,
        ifnames: list(join(d, "net")),
      };
    });
}

export function readUsb(root: string): UsbDevice[] {
  const dir = join(root, "bus/usb/devices");
  const out: UsbDevice[] = [];
  for (const name of list(dir)) {
    const dev = USB_DEVICE.exec(name);
    const hub = ROOT_HUB.exec(name);
    if (!dev && !hub) continue; // interfaces (`1-2:1.0`)
    const d = join(dir, name);
    const bus = Number(text(join(d, "busnum")) ?? (dev ? dev[1] : hub![1]));
    const devnum = Number(text(join(d, "devnum")) ?? 0);
    const path = real(d);
    const controller = hub ? parents(path ? dirname(path) : null).pci : ancestor(path, PCI_ADDRESS);
    out.push({
      name,
      bus,
      port: dev ? dev[2] : "",
      devnum,
      vendorId: hex(join(d, "idVendor")),
      productId: hex(join(d, "idProduct")),
      serial: text(join(d, "serial")),
      product: text(join(d, "product")),
      manufacturer: text(join(d, "manufacturer")),
      classId: hex(join(d, "bDeviceClass")),
      driver: linkName(join(d, "driver")),
      rootHub: !!hub,
      controllerPci: controller,
      devPath: `/dev/bus/usb/${String(bus).padStart(3, "0")}/${String(devnum).padStart(3, "0")}`,
    });
  }
  return out;
}

const SERIAL_NAMES = /^(ttyS|ttyUSB|ttyACM|ttyAMA|ttyMFD|ttyO|ttymxc|ttyTHS)\d+$/;

export function readSerial(root: string): SerialPortInfo[] {
  const dir = join(root, "class/tty");
  const out: SerialPortInfo[] = [];
  for (const name of list(dir)) {
    if (!SERIAL_NAMES.test(name)) continue;
    const d = join(dir, name);
    if (!existsSync(join(d, "device"))) continue; // no hardware behind it
    // An 8250 port the kernel reserved but found no UART at has type 0 (PORT_UNKNOWN): not a port.
    const type = text(join(d, "type"));
    if (name.startsWith("ttyS") && type !== null && Number(type) === 0) continue;
    const port = text(join(d, "port"));
    const irq = text(join(d, "irq"));
    const p = parents(real(join(d, "device")));
    out.push({
      name,
      devPath: `/dev/${name}`,
      ioPort: port && port !== "0x0" ? port : null,
      irq: irq !== null && Number.isFinite(Number(irq)) ? Number(irq) : null,
      usbParent: p.usb,
      pciParent: p.pci,
    });
  }
  return out;
}

const ARPHRD_ETHER = 1;
const ARPHRD_CAN = 280;

export function readNet(root: string): { net: NetPortInfo[]; can: CanInterface[] } {
  const dir = join(root, "class/net");
  const net: NetPortInfo[] = [];
  const can: CanInterface[] = [];
  for (const ifname of list(dir)) {
    const d = join(dir, ifname);
    const type = Number(text(join(d, "type")) ?? NaN);
    const hasDevice = existsSync(join(d, "device"));
    const p = parents(hasDevice ? real(join(d, "device")) : null);
    if (type === ARPHRD_CAN) {
      can.push({ ifname, virtual: !hasDevice, pciParent: p.pci, usbParent: p.usb });
      continue;
    }
    if (ifname === "lo") continue;
    let kind: NetKind = "virtual";
    if (hasDevice) kind = existsSync(join(d, "wireless")) || existsSync(join(d, "phy80211")) ? "wifi" : type === ARPHRD_ETHER ? "ethernet" : "wwan";
    const speed = Number(text(join(d, "speed")) ?? NaN);
    net.push({ ifname, mac: text(join(d, "address")), kind, pciParent: p.pci, usbParent: p.usb, speedMbps: Number.isFinite(speed) && speed > 0 ? speed : null });
  }
  return { net, can };
}

/** Everything, from one sysfs root. */
export function readInventory(root = "/sys", now: () => Date = () => new Date()): Inventory {
  const { net, can } = readNet(root);
  return {
    root,
    pci: readPci(root),
    usb: readUsb(root),
    serial: readSerial(root),
    net,
    can,
    iommu: list(join(root, "kernel/iommu_groups")).length > 0,
    readAt: now().toISOString(),
  };
}
