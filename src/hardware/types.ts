// What the device's I/O is, as read from sysfs (inventory.ts), and what an app is given of it (assign.ts).
// Plain data: the console shows it, the controller reports it (ZioBundle, HardwareInventory), the workloads act on it.

/** One PCI function (`/sys/bus/pci/devices/<address>`). */
export interface PciFunction {
  /** `0000:00:03.0` (EVE's `pcilong`). */
  address: string;
  /** 24-bit class code: base class, subclass, programming interface (`0x020000` is an Ethernet controller). */
  classCode: number;
  /** What the class is, in words ("Ethernet controller", "VGA compatible controller", "USB controller", …). */
  className: string;
  vendorId: number;
  deviceId: number;
  revision: number;
  subsystemId: number;
  /** The bound kernel driver, or null. */
  driver: string | null;
  /** The IOMMU group's number, or null when the host has no IOMMU (or the function is in none). */
  iommuGroup: string | null;
  /** The PCI function above it (a bridge), or null. */
  parent: string | null;
  /** A display controller (class 0x03): passed through as a GPU, with the functions of its IOMMU group. */
  gpu: boolean;
  /** The network interfaces on this function. */
  ifnames: string[];
}

/** One USB device (`/sys/bus/usb/devices/<bus>-<port path>`); root hubs are the controllers. */
export interface UsbDevice {
  /** sysfs name: `1-2.3`. */
  name: string;
  bus: number;
  /** Port path on the bus: `2.3` (empty for a root hub). */
  port: string;
  devnum: number;
  vendorId: number;
  productId: number;
  serial: string | null;
  product: string | null;
  manufacturer: string | null;
  /** Device class (0x09 a hub, 0 per interface). */
  classId: number;
  driver: string | null;
  /** A root hub: the bus's controller (`usb<bus>`). */
  rootHub: boolean;
  /** The PCI function of the bus's controller, when it is one. */
  controllerPci: string | null;
  /** The device node a container is given: `/dev/bus/usb/001/003`. */
  devPath: string;
}

/** One serial port (`/sys/class/tty/<name>` with a device behind it). */
export interface SerialPortInfo {
  name: string;
  /** `/dev/ttyS0`. */
  devPath: string;
  /** The I/O port (`0x3F8`) of an on-board UART, or null. */
  ioPort: string | null;
  irq: number | null;
  /** The USB device it is on (a USB serial adapter), or null. */
  usbParent: string | null;
  pciParent: string | null;
  /** Not found in sysfs, but named by the config and present as a character device (a pty: virtual, tests). */
  virtual?: boolean;
}

export type NetKind = "ethernet" | "wifi" | "wwan" | "can" | "virtual";

/** One network interface (`/sys/class/net/<ifname>`). */
export interface NetPortInfo {
  ifname: string;
  mac: string | null;
  kind: NetKind;
  pciParent: string | null;
  usbParent: string | null;
  speedMbps: number | null;
}

/** One CAN interface (ARPHRD_CAN); `virtual` for vcan (no device behind it). */
export interface CanInterface {
  ifname: string;
  virtual: boolean;
  pciParent: string | null;
  usbParent: string | null;
}

export interface Inventory {
  /** The sysfs root it was read from (`/sys`, or a fake tree in tests). */
  root: string;
  pci: PciFunction[];
  usb: UsbDevice[];
  serial: SerialPortInfo[];
  net: NetPortInfo[];
  can: CanInterface[];
  /** Whether the host has an IOMMU with groups (`/sys/kernel/iommu_groups/*`): PCI passthrough needs it. */
  iommu: boolean;
  readAt: string;
}

/** A USB device as QEMU's usb-host names it: by bus and port path, or by vendor and product. */
export type UsbHostRef = { bus: number; port: string } | { vendorId: number; productId: number };

/** What an app holds of the host's I/O, in the form each workload kind uses. */
export interface AppDevices {
  /** Serial ports: the host's device node. */
  serial: { label: string; hostPath: string }[];
  /** USB devices: the node a container gets and the reference a VM's usb-host gets. */
  usb: { label: string; devPath: string | null; ref: UsbHostRef }[];
  /** PCI functions (a VM only): VFIO. */
  pci: { label: string; address: string; iommuGroup: string }[];
  /** CAN interfaces: moved into a container's network namespace. */
  can: { label: string; ifname: string }[];
}

export const NO_DEVICES: AppDevices = Object.freeze({ serial: [], usb: [], pci: [], can: [] }) as AppDevices;

export function hasDevices(d: AppDevices | undefined): boolean {
  return !!d && d.serial.length + d.usb.length + d.pci.length + d.can.length > 0;
}

/** An assignment group (EVE's IoBundle) as the device shows and reports it. */
export interface BundleStatus {
  /** The assignment group, or the logical label of an entry without one. */
  name: string;
  /** EVE `PhyIoType` by name of its first member. */
  type: string;
  /** Logical labels of its members. */
  members: string[];
  /** EVE `PhyIoMemberUsage` by name (the most restrictive of its members'). */
  usage: string;
  /** The apps holding it (more than one only for a Shared group). */
  usedBy: { uuid: string; name: string }[];
  /** Management keeps it (a management port, the console's port). */
  usedByBaseOs: boolean;
  /** Why no app can be given it, or null when it is assignable. */
  notAssignable: string | null;
  /** The members as found on this host (what each is), or why one is missing. */
  found: { label: string; what: string; missing?: string }[];
  /** MAC addresses of its network members (ZioBundle.ioAddressList). */
  macs: string[];
}
