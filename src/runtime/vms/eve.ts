// How EVE's config fields become parts of a VmSpec, read the way EVE's pillar reads them. Pure helpers for the
// reconciler; enums are accepted as names ("QCOW2", "FML") or numbers, as config documents carry either.
import { readUserData } from "../../config/userdata.ts";
import type { DiskFormat, FirmwareMode } from "./types.ts";

const FORMAT_NAMES = ["FmtUnknown", "RAW", "QCOW", "QCOW2", "VHD", "VMDK", "OVA", "VHDX", "CONTAINER", "ISO", "PVC"];
const VM_MODE_NAMES = ["PV", "HVM", "Filler", "FML", "NOHYPER", "LEGACY"];

const enumName = (value: string | number | undefined, names: string[]) =>
  typeof value === "number" ? (names[value] ?? String(value)) : (value ?? names[0]!);

/**
 * The qemu-img format of a disk content tree (EVE `Format`), and whether it is attached as a CD-ROM (ISO).
 * null: not a VM disk (CONTAINER) or not supported (OVA, a tar of disks and a descriptor; PVC).
 */
export function diskFormatOfContentTree(format: string | number): { format: DiskFormat; cdrom: boolean } | null {
  switch (enumName(format, FORMAT_NAMES)) {
    case "RAW":
      return { format: "raw", cdrom: false };
    case "QCOW":
      return { format: "qcow", cdrom: false };
    case "QCOW2":
      return { format: "qcow2", cdrom: false };
    case "VHD":
      return { format: "vpc", cdrom: false };
    case "VMDK":
      return { format: "vmdk", cdrom: false };
    case "VHDX":
      return { format: "vhdx", cdrom: false };
    case "ISO":
      return { format: "raw", cdrom: true };
    default:
      return null;
  }
}

/** UEFI (OVMF) for FML, as EVE does; legacy BIOS (SeaBIOS) for every other mode. */
export function firmwareModeOf(virtualizationMode: string | number | undefined): FirmwareMode {
  return enumName(virtualizationMode, VM_MODE_NAMES) === "FML" ? "uefi" : "legacy-bios";
}

/**
 * `AppInstanceConfig.userData` as the VM's cloud-init user-data: EVE sends it base64-encoded; a value that is not
 * base64 of text is the text itself (a locally written config may carry it plain). Read by config/userdata.ts,
 * the one parser of userData.
 */
export function decodeUserData(userData: string | undefined): string | undefined {
  return readUserData(userData).text ?? undefined;
}

/** `fixedresources` (EVE `VmConfig`) + the app's `remoteConsole`: the sizing and firmware part of a VmSpec. */
export function vmResourcesOf(
  fixed: { memory?: number; vcpus?: number; virtualizationMode?: string | number; enableVnc?: boolean } | undefined,
  remoteConsole?: boolean,
): { memoryKiB: number; vcpus: number; mode: FirmwareMode; remoteConsole: boolean } {
  return {
    memoryKiB: fixed?.memory ?? 0, // EVE's memory is in KiB
    vcpus: fixed?.vcpus || 1,
    mode: firmwareModeOf(fixed?.virtualizationMode),
    remoteConsole: Boolean(remoteConsole || fixed?.enableVnc),
  };
}

/** The most host CPUs a list may name (a bound on what a config can make evebox allocate, not a host fact). */
export const MAX_CPU_INDEX = 4095;

/**
 * EVE's CPU mask (`VmConfig.cpus`, "d[[,-]d]*": "0-2,5,6"): the host CPUs in order, each once; or why it is not one.
 */
export function parseCpuList(text: string): number[] | string {
  const t = text.trim();
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(t)) return `"${text}" is not a CPU list like "0-2,5" (numbers and ranges, comma-separated)`;
  const out: number[] = [];
  for (const part of t.split(",")) {
    const [a, b] = part.split("-").map(Number) as [number, number | undefined];
    const hi = b ?? a;
    if (hi > MAX_CPU_INDEX) return `"${text}": CPU ${hi} is beyond ${MAX_CPU_INDEX}`;
    if (hi < a) return `"${text}": the range ${part} runs backwards`;
    for (let c = a; c <= hi; c++) if (!out.includes(c)) out.push(c);
  }
  return out;
}

/** A CPU list back in EVE's (and taskset's) form: [0,1,2,5] → "0-2,5". */
export function cpuListText(cpus: number[]): string {
  const sorted = [...new Set(cpus)].sort((x, y) => x - y);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}
