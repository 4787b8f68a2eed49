// Which app gets which of the host's I/O: the config's assignment groups (deviceIoList, read once in the device
// model) matched against the inventory (sysfs), and given out as EVE does — a group goes whole to one app (a
// Shared group to several), management ports and the console's port never, a PCI function only with an IOMMU and
// its whole IOMMU group. Whatever keeps an app from its adapters is that app's error, with the reason; the other
// apps get theirs. Pure: the inventory and what was held before come in, the assignment goes out.
import { NOT_FOR_APPS, type AppModel, type DeviceModel, type PhysicalIoModel } from "../config/model.ts";
import type { AppDevices, BundleStatus, Inventory, PciFunction, UsbDevice } from "./types.ts";

export interface AssignOptions {
  /** Interfaces the device keeps, with why (the console listens on it, a management port). */
  reserved?: ReadonlyMap<string, string>;
  /** Who held each group before (group → app uuids): a holder keeps it over an app that asks later. */
  held?: ReadonlyMap<string, readonly string[]>;
  /** Apps not to give anything (already in error for another reason). */
  skip?: ReadonlySet<string>;
  /** A serial device node that sysfs does not list (a pty) but that exists as a character device. */
  present?: (path: string) => boolean;
}

export interface AppAssignment {
  devices: AppDevices;
  /** The groups the app holds. */
  groups: string[];
  /** Why the app cannot have its adapters (it must not run), or null. */
  error: string | null;
}

export interface Assignment {
  apps: Map<string, AppAssignment>;
  bundles: BundleStatus[];
  /** group → app uuids, to be passed back as `held` next time. */
  held: Map<string, string[]>;
}

/** What one member of a group is on this host. */
type Resource =
  | { kind: "serial"; hostPath: string }
  | { kind: "usb"; device: UsbDevice }
  | { kind: "pci"; fn: PciFunction }
  | { kind: "can"; ifname: string };

interface Member {
  io: PhysicalIoModel;
  label: string;
  resource: Resource | null;
  what: string;
  missing?: string;
}

interface Bundle {
  status: BundleStatus;
  members: Member[];
  /** Why an app cannot have it (host-side: no IOMMU, a split IOMMU group, the console's port). */
  hostReason: string | null;
}

const PCI_TYPES = new Set(["PhyIoNetEth", "PhyIoNetEthPF", "PhyIoNetEthVF", "PhyIoNetWLAN", "PhyIoNetWWAN", "PhyIoHDMI", "PhyIoAudio", "PhyIoNVMEStorage", "PhyIoSATAStorage", "PhyIoUSBController", "PhyIoOther"]);
const CAN_TYPES = new Set(["PhyIoCAN", "PhyIoVCAN", "PhyIoLCAN"]);
const USB_TYPES = new Set(["PhyIoUSB", "PhyIoUSBDevice"]);
const USAGE_RANK = ["PhyIoUsageShared", "PhyIoUsageNone", "PhyIoUsageDedicated", "PhyIoUsageMgmtAndApps", "PhyIoUsageDisabled", "PhyIoUsageMgmtOnly"];
const hex4 = (n: number) => n.toString(16).padStart(4, "0");

function labelOf(io: PhysicalIoModel): string {
  return io.logicalLabel || io.physicalLabel || `deviceIoList[${io.index}]`;
}

function usbWhat(u: UsbDevice): string {
  const name = [u.manufacturer, u.product].filter(Boolean).join(" ") || "USB device";
  return `${name} (${hex4(u.vendorId)}:${hex4(u.productId)}) at USB ${u.bus}:${u.port}${u.serial ? `, serial ${u.serial}` : ""}`;
}

/** A member as found on the host, or why it is not there. */
function resolveMember(io: PhysicalIoModel, inv: Inventory, present: (path: string) => boolean): Member {
  const label = labelOf(io);
  const a = io.addrs;
  if (io.type === "PhyIoCOM" || (a.serial && !a.pciLong && !a.usbAddr && !a.usbProduct)) {
    if (!a.serial) return { io, label, resource: null, what: "serial port", missing: `serial port ${label} has no device node (phyaddrs.serial)` };
    const port = inv.serial.find((s) => s.devPath === a.serial);
    if (port) return { io, label, resource: { kind: "serial", hostPath: port.devPath }, what: `serial port ${port.devPath}${port.ioPort ? ` (I/O ${port.ioPort}, IRQ ${port.irq})` : port.usbParent ? ` on USB ${port.usbParent}` : ""}` };
    if (present(a.serial)) return { io, label, resource: { kind: "serial", hostPath: a.serial }, what: `serial port ${a.serial} (virtual: not in sysfs)` };
    return { io, label, resource: null, what: "serial port", missing: `serial port ${a.serial} is not on this host` };
  }
  if (CAN_TYPES.has(io.type)) {
    const can = io.ifname ? inv.can.find((c) => c.ifname === io.ifname) : undefined;
    if (can) return { io, label, resource: { kind: "can", ifname: can.ifname }, what: `CAN interface ${can.ifname}${can.virtual ? " (vcan)" : can.pciParent ? ` on PCI ${can.pciParent}` : can.usbParent ? ` on USB ${can.usbParent}` : ""}` };
    return { io, label, resource: null, what: "CAN interface", missing: io.ifname ? `CAN interface ${io.ifname} is not on this host` : `CAN interface ${label} has no interface name (phyaddrs.ifname)` };
  }
  if (USB_TYPES.has(io.type) && !a.pciLong) {
    let dev: UsbDevice | undefined;
    let ref = "";
    if (a.usbAddr) {
      const [bus, port] = a.usbAddr.split(":");
      ref = a.usbAddr;
      dev = inv.usb.find((u) => !u.rootHub && u.bus === Number(bus) && u.port === port);
    } else if (a.usbProduct) {
      const [v, p] = a.usbProduct.split(":").map((x) => parseInt(x!, 16));
      ref = a.usbProduct;
      dev = inv.usb.find((u) => !u.rootHub && u.vendorId === v && u.productId === p);
    } else return { io, label, resource: null, what: "USB device", missing: `USB device ${label} has no address (phyaddrs.usbaddr or usbproduct)` };
    if (dev && a.usbProduct && a.usbAddr && `${hex4(dev.vendorId)}:${hex4(dev.productId)}` !== a.usbProduct) {
      return { io, label, resource: null, what: "USB device", missing: `USB device ${a.usbAddr} is ${hex4(dev.vendorId)}:${hex4(dev.productId)}, not ${a.usbProduct}` };
    }
    if (dev) return { io, label, resource: { kind: "usb", device: dev }, what: usbWhat(dev) };
    return { io, label, resource: null, what: "USB device", missing: `USB device ${ref} is not on this host` };
  }
  if (a.pciLong || PCI_TYPES.has(io.type) || USB_TYPES.has(io.type)) {
    if (!a.pciLong && io.ifname) {
      // A network port named by its interface: passed through as the PCI function it is on.
      const n = inv.net.find((x) => x.ifname === io.ifname);
      if (!n) return { io, label, resource: null, what: "network port", missing: `network interface ${io.ifname} is not on this host` };
      const fn = n.pciParent ? inv.pci.find((p) => p.address === n.pciParent) : undefined;
      const what = `network port ${n.ifname}${n.mac ? ` (${n.mac})` : ""}${fn ? ` on ${fn.className} at ${fn.address}` : ""}`;
      if (!fn) return { io, label, resource: null, what, missing: `network port ${n.ifname} is on no PCI function, so it cannot be passed through` };
      return { io, label, resource: { kind: "pci", fn }, what };
    }
    if (!a.pciLong) return { io, label, resource: null, what: io.type, missing: `${label} is passed through by its PCI address, and has none (phyaddrs.pcilong)` };
    const fn = inv.pci.find((p) => p.address === a.pciLong);
    if (!fn) return { io, label, resource: null, what: "PCI function", missing: `PCI function ${a.pciLong} is not on this host` };
    return { io, label, resource: { kind: "pci", fn }, what: `${fn.className} ${hex4(fn.vendorId)}:${hex4(fn.deviceId)} at ${fn.address}${fn.driver ? ` (driver ${fn.driver})` : ""}${fn.ifnames.length ? `, ${fn.ifnames.join(", ")}` : ""}` };
  }
  return { io, label, resource: null, what: io.type, missing: `${label}: evebox cannot pass through ${io.type} adapters` };
}

function bundlesOf(model: DeviceModel, inv: Inventory, opts: AssignOptions): Map<string, Bundle> {
  const present = opts.present ?? (() => false);
  const reserved = opts.reserved ?? new Map<string, string>();
  const byGroup = new Map<string, PhysicalIoModel[]>();
  for (const io of model.physicalIo) {
    const key = io.assignGroup || `label:${labelOf(io)}`;
    byGroup.set(key, [...(byGroup.get(key) ?? []), io]);
  }
  const out = new Map<string, Bundle>();
  for (const [key, ios] of byGroup) {
    const grouped = !key.startsWith("label:");
    const members = ios.map((io) => resolveMember(io, inv, present));
    const usage = ios.map((i) => i.usage).sort((x, y) => USAGE_RANK.indexOf(y) - USAGE_RANK.indexOf(x))[0] ?? "PhyIoUsageNone";
    let reason: string | null = null;
    let hostReason: string | null = null;
    let usedByBaseOs = false;
    for (const io of ios) {
      const why = NOT_FOR_APPS[io.usage];
      if (why && !reason) reason = `${labelOf(io)}: ${why}`;
      if (io.usage === "PhyIoUsageMgmtOnly" || io.usage === "PhyIoUsageMgmtAndApps") usedByBaseOs = true;
    }
    // The interfaces the device keeps, named directly or through the PCI function they are on.
    for (const m of members) {
      const ifnames = [m.io.ifname, ...(m.resource?.kind === "pci" ? m.resource.fn.ifnames : [])].filter((x): x is string => !!x);
      const kept = ifnames.find((i) => reserved.has(i));
      if (kept && !hostReason) {
        hostReason = `${m.label}: ${kept} ${reserved.get(kept)}`;
        usedByBaseOs = true;
      }
    }
    // PCI: an IOMMU, and the whole IOMMU group in this bundle (bridges aside).
    const pcis = members.flatMap((m) => (m.resource?.kind === "pci" ? [m.resource.fn] : []));
    if (pcis.length && !hostReason) {
      if (!inv.iommu || pcis.some((p) => !p.iommuGroup)) {
        const p = pcis.find((x) => !x.iommuGroup) ?? pcis[0]!;
        hostReason = `PCI function ${p.address}: no IOMMU on this host (PCI passthrough needs VT-d or AMD-Vi, and no IOMMU groups are in ${inv.root}/kernel/iommu_groups)`;
      } else {
        const mine = new Set(pcis.map((p) => p.address));
        for (const p of pcis) {
          const other = inv.pci.find((q) => q.iommuGroup === p.iommuGroup && !mine.has(q.address) && q.classCode >> 8 !== 0x0604);
          if (other) {
            hostReason = `PCI function ${p.address}: its IOMMU group ${p.iommuGroup} also holds ${other.address} (${other.className}), which is not in adapter group ${grouped ? key : labelOf(ios[0]!)}: a group is passed through whole`;
            break;
          }
        }
      }
    }
    const name = grouped ? key : labelOf(ios[0]!);
    out.set(name, {
      members,
      hostReason,
      status: {
        name,
        type: ios[0]!.type,
        members: ios.map(labelOf),
        usage,
        usedBy: [],
        usedByBaseOs,
        notAssignable: reason ?? (grouped ? hostReason : "it has no assignment group (assigngrp)"),
        found: members.map((m) => ({ label: m.label, what: m.what, ...(m.missing ? { missing: m.missing } : {}) })),
        macs: members.flatMap((m) => {
          const ifs = [m.io.ifname, ...(m.resource?.kind === "pci" ? m.resource.fn.ifnames : [])].filter(Boolean);
          return inv.net.filter((n) => ifs.includes(n.ifname) && n.mac).map((n) => n.mac!);
        }),
      },
    });
  }
  return out;
}

/** Why an app of this kind cannot take this member, or null. */
function kindProblem(app: AppModel, m: Member): string | null {
  if (!m.resource) return null;
  if (app.kind === "container" && m.resource.kind === "pci") return `${m.label} (PCI ${m.resource.fn.address}) is passed through by VFIO: only a VM app can take it`;
  if (app.kind === "vm" && m.resource.kind === "can") return `${m.label} (CAN ${m.resource.ifname}) is moved into a container's network namespace: a VM app cannot take it`;
  return null;
}

export function assignAdapters(model: DeviceModel, inv: Inventory, opts: AssignOptions = {}): Assignment {
  const bundles = bundlesOf(model, inv, opts);
  const held = opts.held ?? new Map<string, readonly string[]>();
  const byUuid = new Map(model.apps.map((a) => [a.uuid, a]));
  const holders = new Map<string, string[]>();
  const apps = new Map<string, AppAssignment>();

  // Who asks first: an app that held one of its groups before keeps precedence (a restart of evebox, a new
  // config version with the apps reordered), then the config's order.
  const asking = model.apps.filter((a) => a.adapters.some((ad) => ad.group));
  const heldBefore = (a: AppModel) => a.adapters.some((ad) => held.get(ad.group)?.includes(a.uuid));
  const order = [...asking.filter(heldBefore), ...asking.filter((a) => !heldBefore(a))];

  for (const app of order) {
    const groups = [...new Set(app.adapters.map((ad) => ad.group).filter(Boolean))];
    if (opts.skip?.has(app.uuid)) {
      // In error for another reason: not running, but what it held stays its own (nobody takes it meanwhile).
      for (const g of groups) if (held.get(g)?.includes(app.uuid)) holders.set(g, [...(holders.get(g) ?? []), app.uuid]);
      continue;
    }
    const errors: string[] = [];
    for (const g of groups) {
      const b = bundles.get(g);
      const name = app.adapters.find((ad) => ad.group === g)!.name;
      if (!b) continue; // the model reported it
      if (b.status.notAssignable) {
        errors.push(`adapter ${name}: ${b.status.notAssignable}`);
        continue;
      }
      for (const m of b.members) {
        if (m.missing) errors.push(`adapter ${name}: ${m.missing}`);
        const k = kindProblem(app, m);
        if (k) errors.push(`adapter ${name}: ${k}`);
      }
      const others = (holders.get(g) ?? []).filter((u) => u !== app.uuid);
      if (others.length && b.status.usage !== "PhyIoUsageShared") {
        const h = byUuid.get(others[0]!);
        errors.push(`adapter ${name}: assigned to app ${h?.name ?? others[0]} (${others[0]})`);
      }
    }
    if (errors.length) {
      apps.set(app.uuid, { devices: { serial: [], usb: [], pci: [], can: [] }, groups: [], error: errors.join("; ") });
      continue;
    }
    const devices: AppDevices = { serial: [], usb: [], pci: [], can: [] };
    for (const g of groups) {
      holders.set(g, [...(holders.get(g) ?? []), app.uuid]);
      for (const m of bundles.get(g)!.members) {
        const r = m.resource!;
        if (r.kind === "serial") devices.serial.push({ label: m.label, hostPath: r.hostPath });
        else if (r.kind === "can") devices.can.push({ label: m.label, ifname: r.ifname });
        else if (r.kind === "usb") devices.usb.push({ label: m.label, devPath: r.device.devPath, ref: m.io.addrs.usbAddr ? { bus: r.device.bus, port: r.device.port } : { vendorId: r.device.vendorId, productId: r.device.productId } });
        else devices.pci.push({ label: m.label, address: r.fn.address, iommuGroup: r.fn.iommuGroup! });
      }
    }
    apps.set(app.uuid, { devices, groups, error: null });
  }
  for (const [g, uuids] of holders) {
    const b = bundles.get(g);
    if (b) b.status.usedBy = uuids.map((u) => ({ uuid: u, name: byUuid.get(u)?.name ?? u }));
  }
  return { apps, bundles: [...bundles.values()].map((b) => b.status), held: holders };
}
