// The app form's values beyond a container's image, environment and volumes: its kind, a VM's settings and disks,
// and the network interfaces with their port maps. Each section of the form (this folder) edits one part of them.
import { type InterfaceInput } from "../../interfaces-edit";
import { NAME_RE, type FieldProblem } from "../../config-edit";
import type { VmAppInput, VmChanges, VmDiskFormat, VmView } from "../../vm-edit";
import type { ImportedImage } from "../../images";

let rowIds = 1_000_000;
export const nextRowId = () => ++rowIds;

export interface PortMapRow {
  rowId: number;
  devicePort: string;
  appPort: string;
  protocol: "tcp" | "udp";
}

export interface InterfaceRow {
  rowId: number;
  networkId: string;
  addr: string;
  mac: string;
  portMaps: PortMapRow[];
}

export interface VmValues {
  sourceKind: "tree" | "url" | "imported";
  treeUuid: string;
  /** An uploaded image chosen (its sha256). */
  importedSha: string;
  url: string;
  sha256: string;
  format: VmDiskFormat;
  diskMiB: string;
  firmware: "bios" | "uefi";
  cloudInit: string;
  vnc: boolean;
  startDelay: string;
  /** Extra blank disks; `uuid` for an existing one (its size is fixed). */
  disks: { rowId: number; uuid?: string; size: string; name?: string; locked?: boolean }[];
}

/** A section's view of the form: the values, a setter, and the field helpers. */
export type Setter<T> = (update: (old: T) => T) => void;

export const emptyVm = (): VmValues => ({ sourceKind: "url", treeUuid: "", importedSha: "", url: "", sha256: "", format: "QCOW2", diskMiB: "", firmware: "bios", cloudInit: "", vnc: false, startDelay: "0", disks: [] });

export function vmValuesFrom(view: VmView): VmValues {
  return {
    ...emptyVm(),
    firmware: view.firmware,
    cloudInit: view.cloudInit,
    vnc: view.vnc,
    startDelay: String(view.startDelaySec),
    disks: view.extraDisks.map((d, i) => ({ rowId: nextRowId(), uuid: d.uuid, size: String(d.sizeMiB), name: d.name, locked: view.iso && i === 0 })),
  };
}

export const interfaceRowsFrom = (list: InterfaceInput[]): InterfaceRow[] =>
  list.map((i) => ({ rowId: nextRowId(), networkId: i.networkId, addr: i.addr, mac: i.mac, portMaps: i.portMaps.map((p) => ({ rowId: nextRowId(), ...p })) }));

export const toInterfaces = (rows: InterfaceRow[]): InterfaceInput[] =>
  rows.map((r) => ({ networkId: r.networkId, addr: r.addr, mac: r.mac, portMaps: r.portMaps.map(({ devicePort, appPort, protocol }) => ({ devicePort, appPort, protocol })) }));

const num = (s: string) => (s.trim() === "" ? Number.NaN : Number(s.trim()));

export function toVmInput(name: string, memory: string, vcpus: string, vm: VmValues, interfaces: InterfaceRow[], imported: readonly ImportedImage[] = []): VmAppInput {
  return {
    name: name.trim(),
    source:
      vm.sourceKind === "tree"
        ? { kind: "tree", treeUuid: vm.treeUuid }
        : vm.sourceKind === "imported"
          ? { kind: "imported", image: imported.find((i) => i.sha256 === vm.importedSha) ?? null }
          : { kind: "url", url: vm.url, sha256: vm.sha256, format: vm.format },
    diskMiB: vm.diskMiB.trim() ? num(vm.diskMiB) : 0,
    firmware: vm.firmware,
    memoryMiB: num(memory),
    vcpus: num(vcpus),
    extraDisksMiB: vm.disks.map((d) => num(d.size)),
    cloudInit: vm.cloudInit,
    vnc: vm.vnc,
    startDelaySec: vm.startDelay.trim() ? num(vm.startDelay) : 0,
    interfaces: toInterfaces(interfaces),
  };
}

export function toVmChanges(memory: string, vcpus: string, vm: VmValues, interfaces: InterfaceRow[]): VmChanges {
  return {
    memoryMiB: num(memory),
    vcpus: num(vcpus),
    firmware: vm.firmware,
    cloudInit: vm.cloudInit,
    vnc: vm.vnc,
    startDelaySec: vm.startDelay.trim() ? num(vm.startDelay) : 0,
    extraDisks: vm.disks.map((d) => (d.uuid ? { uuid: d.uuid } : { sizeMiB: num(d.size) })),
    interfaces: toInterfaces(interfaces),
  };
}

const whole = (n: number, lo: number, hi: number) => Number.isInteger(n) && n >= lo && n <= hi;

/** What the form checks of a VM itself (the device's validation checks the document next: device-check.ts). */
export function vmProblems(input: VmAppInput | null, vm: VmValues, mode: "create" | "edit", memoryMiB: number, vcpus: number, names: string[]): FieldProblem[] {
  const out: FieldProblem[] = [];
  if (input) {
    if (!input.name) out.push({ field: "name", message: "Enter a name for the app." });
    else if (!NAME_RE.test(input.name)) out.push({ field: "name", message: "Use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit." });
    else if (names.includes(input.name)) out.push({ field: "name", message: `There is already an app named ${input.name}. Choose another name.` });
  }
  if (mode === "create") {
    if (vm.sourceKind === "tree" && !vm.treeUuid) out.push({ field: "vm.tree", message: "Choose an image." });
    if (vm.sourceKind === "imported" && !(input?.source.kind === "imported" && input.source.image)) out.push({ field: "vm.imported", message: "Choose an image uploaded to the device." });
    if (vm.sourceKind === "url") {
      let url: URL | null = null;
      try {
        url = new URL(vm.url.trim());
      } catch {}
      if (!url || !/^https?:$/.test(url.protocol) || url.pathname === "/") out.push({ field: "url", message: "Enter the image's http:// or https:// address, naming the file." });
      if (!/^(sha256:)?[0-9a-fA-F]{64}$/.test(vm.sha256.trim())) out.push({ field: "sha256", message: "Enter the file's sha256 (64 hexadecimal digits), so the device can verify it." });
    }
    const disk = vm.diskMiB.trim() ? num(vm.diskMiB) : 0;
    const iso = vm.sourceKind === "url" ? vm.format === "ISO" : vm.sourceKind === "imported" && input?.source.kind === "imported" ? input.source.image?.eveFormat === "ISO" : false;
    if (iso ? !whole(disk, 1, 16 * 1024 * 1024) : vm.diskMiB.trim() && !whole(disk, 1, 16 * 1024 * 1024)) {
      out.push({ field: "vm.disk", message: iso ? "An installer needs a disk to install to: its size in MiB." : "The disk size is a whole number of MiB." });
    }
  }
  if (!whole(memoryMiB, 8, 1024 * 1024)) out.push({ field: "memory", message: "Memory is a whole number of MiB, at least 8." });
  if (!whole(vcpus, 1, 256)) out.push({ field: "vcpus", message: "vCPUs is a whole number from 1 to 256." });
  const delay = vm.startDelay.trim() ? num(vm.startDelay) : 0;
  if (!whole(delay, 0, 86_400)) out.push({ field: "vm.startDelay", message: "The start delay is a whole number of seconds (at most a day)." });
  vm.disks.forEach((d, i) => {
    if (!d.uuid && !whole(num(d.size), 1, 16 * 1024 * 1024)) out.push({ field: `vm.disks.${i}`, message: `Disk ${i + 1}: the size is a whole number of MiB, at least 1.` });
  });
  return out;
}
