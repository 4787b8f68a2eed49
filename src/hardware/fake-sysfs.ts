// A fake sysfs tree for the tests of what this machine cannot show (no USB, no CAN, no GPU, no IOMMU): laid out as
// the kernel lays out /sys — device directories under devices/, bus/ and class/ entries linking to them, IOMMU
// groups, driver directories with bind/unbind files — so inventory.ts and vfio.ts read and write it as they would
// the real one. Only tests and `EVEBOX_SYSFS_ROOT` use it; the device reads /sys.
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";

export interface FakeSysfsOptions {
  /** Give the PCI functions IOMMU groups (a host with VT-d on). Default true. */
  iommu?: boolean;
}

/**
 * Writes the tree under `root`: a USB controller (0000:00:14.0) with an FTDI serial adapter (1-2, ttyUSB0) and a
 * licence dongle (1-3); a GPU (0000:00:02.0) with its audio function (0000:00:02.1) in IOMMU group 1; an Ethernet
 * NIC (0000:00:1f.6, eth1, group 7); a PCI CAN controller (0000:00:1d.0, can0); a vcan (vcan0); an on-board UART
 * (ttyS0 at 0x3F8) and a reserved one with no UART (ttyS1, type 0); the management NIC eth0 (0000:00:03.0, group 3).
 */
export function writeFakeSysfs(root: string, opts: FakeSysfsOptions = {}): void {
  const iommu = opts.iommu ?? true;
  const file = (p: string, content: string) => {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), `${content}\n`);
  };
  const dir = (p: string) => mkdirSync(join(root, p), { recursive: true });
  const link = (from: string, to: string) => {
    mkdirSync(dirname(join(root, from)), { recursive: true });
    symlinkSync(relative(dirname(join(root, from)), join(root, to)), join(root, from));
  };
  const pciRoot = "devices/pci0000:00";
  const driver = (name: string) => {
    dir(`bus/pci/drivers/${name}`);
    file(`bus/pci/drivers/${name}/bind`, "");
    file(`bus/pci/drivers/${name}/unbind`, "");
    file(`bus/pci/drivers/${name}/new_id`, "");
  };
  for (const d of ["e1000e", "i915", "snd_hda_intel", "xhci_hcd", "vfio-pci", "virtio-pci", "peak_pci"]) driver(d);
  file("bus/pci/drivers_probe", "");
  const pci = (address: string, cls: string, vendor: string, device: string, drv: string, group: string) => {
    const d = `${pciRoot}/${address}`;
    file(`${d}/class`, cls);
    file(`${d}/vendor`, vendor);
    file(`${d}/device`, device);
    file(`${d}/revision`, "0x01");
    file(`${d}/subsystem_device`, "0x0000");
    file(`${d}/driver_override`, "(null)");
    link(`${d}/driver`, `bus/pci/drivers/${drv}`);
    link(`bus/pci/devices/${address}`, d);
    if (iommu) {
      dir(`kernel/iommu_groups/${group}/devices`);
      link(`${d}/iommu_group`, `kernel/iommu_groups/${group}`);
      link(`kernel/iommu_groups/${group}/devices/${address}`, d);
    }
    return d;
  };
  const net = (devDir: string | null, ifname: string, mac: string, type = 1) => {
    const n = devDir ? `${devDir}/net/${ifname}` : `devices/virtual/net/${ifname}`;
    file(`${n}/type`, String(type));
    file(`${n}/address`, mac);
    if (devDir) link(`${n}/device`, devDir);
    link(`class/net/${ifname}`, n);
  };

  net(pci("0000:00:03.0", "0x020000", "0x1af4", "0x1041", "virtio-pci", "3"), "eth0", "52:54:00:12:34:56");
  net(pci("0000:00:1f.6", "0x020000", "0x8086", "0x15bc", "e1000e", "7"), "eth1", "00:1b:21:aa:bb:cc");
  pci("0000:00:02.0", "0x030000", "0x8086", "0x3e92", "i915", "1");
  pci("0000:00:02.1", "0x040300", "0x8086", "0x280b", "snd_hda_intel", "1");
  net(pci("0000:00:1d.0", "0x0c0900", "0x001c", "0x0003", "peak_pci", "9"), "can0", "", 280);
  net(null, "vcan0", "", 280);
  net(null, "lo", "00:00:00:00:00:00", 772);

  // The USB controller, its root hub and two devices.
  const xhci = pci("0000:00:14.0", "0x0c0330", "0x8086", "0xa36d", "xhci_hcd", "5");
  const usb = (name: string, busnum: number, devnum: number, vendor: string, product: string, cls: string, extra: Record<string, string> = {}) => {
    const d = name.startsWith("usb") ? `${xhci}/${name}` : `${xhci}/usb${busnum}/${name}`;
    file(`${d}/busnum`, String(busnum));
    file(`${d}/devnum`, String(devnum));
    file(`${d}/idVendor`, vendor);
    file(`${d}/idProduct`, product);
    file(`${d}/bDeviceClass`, cls);
    for (const [k, v] of Object.entries(extra)) file(`${d}/${k}`, v);
    link(`bus/usb/devices/${name}`, d);
    return d;
  };
  usb("usb1", 1, 1, "1d6b", "0002", "09", { product: "xHCI Host Controller" });
  const ftdi = usb("1-2", 1, 3, "0403", "6001", "00", { product: "FT232R USB UART", manufacturer: "FTDI", serial: "A50285BI" });
  usb("1-3", 1, 4, "0529", "0620", "00", { product: "Token JC", manufacturer: "Aladdin" });
  // The FTDI adapter's interface and its tty.
  const port = `${ftdi}/1-2:1.0/ttyUSB0`;
  dir(port);
  link("bus/usb/devices/1-2:1.0", `${ftdi}/1-2:1.0`);
  const tty = (name: string, devDir: string, attrs: Record<string, string>) => {
    const t = `${devDir}/tty/${name}`;
    for (const [k, v] of Object.entries(attrs)) file(`${t}/${k}`, v);
    link(`${t}/device`, devDir);
    link(`class/tty/${name}`, t);
  };
  tty("ttyUSB0", port, {});
  // On-board UARTs: ttyS0 has one, ttyS1 is a reserved slot (type 0).
  dir("devices/pnp0/00:01");
  tty("ttyS0", "devices/pnp0/00:01", { port: "0x3F8", irq: "4", type: "4" });
  dir("devices/platform/serial8250");
  tty("ttyS1", "devices/platform/serial8250", { port: "0x2F8", irq: "3", type: "0" });
  // A virtual console: no device behind it.
  dir("devices/virtual/tty/tty1");
  link("class/tty/tty1", "devices/virtual/tty/tty1");
}
