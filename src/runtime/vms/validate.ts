// Refusing a VmSpec before anything starts: every problem at once, with the field that has it.
import { existsSync, readFileSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { MAX_SOCKET_PATH, type VmPaths } from "./cmdline.ts";
import type { VmSpec } from "./types.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
/** Linux interface names: up to 15 bytes, no slash, colon or whitespace. */
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const FORMATS = new Set(["raw", "qcow2", "qcow", "vmdk", "vhdx", "vpc"]);
/** EVE's VNC displays: TCP 5900-5999. */
export const MAX_VNC_DISPLAY = 99;
/** Below this a guest cannot even hold its firmware. */
export const MIN_MEMORY_KIB = 16 * 1024;

/** Problems with the spec's shape, independent of the host. */
export function specProblems(spec: VmSpec): string[] {
  const p: string[] = [];
  if (!UUID.test(spec.appUuid ?? "")) p.push(`appUuid: "${spec.appUuid}" is not a UUID`);
  if (!spec.name?.trim()) p.push("name: empty");
  if (!Number.isInteger(spec.memoryKiB) || spec.memoryKiB < MIN_MEMORY_KIB)
    p.push(`memoryKiB: ${spec.memoryKiB} is not a whole number of KiB of at least ${MIN_MEMORY_KIB} (16 MiB)`);
  if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1) p.push(`vcpus: ${spec.vcpus} is not a whole number ≥ 1`);
  if (spec.mode !== "legacy-bios" && spec.mode !== "uefi") p.push(`mode: "${spec.mode}" is neither "legacy-bios" nor "uefi"`);
  if (!spec.disks.length && !spec.kernel) p.push("disks: a VM needs a disk or a kernel to boot");
  spec.disks.forEach((d, i) => {
    if (!d.path) p.push(`disks[${i}].path: empty`);
    if (!FORMATS.has(d.format)) p.push(`disks[${i}].format: "${d.format}" is not one of ${[...FORMATS].join(", ")}`);
  });
  spec.nics.forEach((n, i) => {
    if (n.mac !== undefined && !MAC.test(n.mac)) p.push(`nics[${i}].mac: "${n.mac}" is not a MAC address`);
    if (n.kind === "tap") {
      if (!IFNAME.test(n.ifname ?? "")) p.push(`nics[${i}].ifname: "${n.ifname}" is not an interface name (1-15 of A-Z a-z 0-9 _ . -)`);
      if (n.bridge !== undefined && !IFNAME.test(n.bridge)) p.push(`nics[${i}].bridge: "${n.bridge}" is not an interface name`);
    } else if (n.kind === "user") {
      (n.hostfwd ?? []).forEach((f, j) => {
        for (const [k, port] of [["hostPort", f.hostPort], ["guestPort", f.guestPort]] as const)
          if (!Number.isInteger(port) || port < 1 || port > 65535) p.push(`nics[${i}].hostfwd[${j}].${k}: ${port} is not a port`);
      });
    } else p.push(`nics[${i}].kind: "${(n as { kind: string }).kind}" is neither "user" nor "tap"`);
  });
  if ((spec.initrd || spec.cmdline !== undefined) && !spec.kernel) p.push("kernel: initrd or cmdline given without a kernel");
  if (spec.maxMemoryKiB !== undefined && (!Number.isInteger(spec.maxMemoryKiB) || spec.maxMemoryKiB <= spec.memoryKiB))
    p.push(`maxMemoryKiB: ${spec.maxMemoryKiB} is not a whole number of KiB above memoryKiB (${spec.memoryKiB})`);
  if (spec.vncTcp) {
    const { display, password } = spec.vncTcp;
    if (!spec.remoteConsole) p.push("vncTcp: a TCP VNC port without remoteConsole (no display)");
    if (!Number.isInteger(display) || display < 0 || display > MAX_VNC_DISPLAY) p.push(`vncTcp.display: ${display} is not a display 0-${MAX_VNC_DISPLAY} (TCP port 5900 + display)`);
    if (!password) p.push("vncTcp.password: a TCP VNC port is never opened without a password");
  }
  if (spec.vmmOverheadKiB !== undefined && (!Number.isInteger(spec.vmmOverheadKiB) || spec.vmmOverheadKiB < 1))
    p.push(`vmmOverheadKiB: ${spec.vmmOverheadKiB} is not a whole number of KiB ≥ 1`);
  const aff = spec.cpuAffinity;
  if (aff) {
    if (aff.cpus.some((c) => !Number.isInteger(c) || c < 0)) p.push(`cpus: ${JSON.stringify(aff.cpus)} holds something that is not a CPU number`);
    if (!aff.pinned && !aff.cpus.length) p.push("cpus: an empty CPU list without pinning");
    // pin_cpu: every vCPU on a CPU of its own (EVE's VmConfig).
    if (aff.pinned && aff.cpus.length && aff.cpus.length < (spec.maxVcpus ?? spec.vcpus))
      p.push(`cpus: pin_cpu gives each vCPU a CPU of its own, but the list has ${aff.cpus.length} CPU(s) for ${spec.maxVcpus ?? spec.vcpus} vCPU(s)`);
  }
  return p;
}

export interface HostResources {
  memTotalKiB: number;
  memAvailableKiB: number;
  cpus: number;
}

export function hostResources(): HostResources {
  const info = readFileSync("/proc/meminfo", "utf8");
  const kib = (key: string) => Number(info.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"))?.[1] ?? 0);
  return { memTotalKiB: kib("MemTotal"), memAvailableKiB: kib("MemAvailable"), cpus: availableParallelism() };
}

/** Problems with the spec on this host: missing files, too much memory, too many vCPUs, socket paths too long. */
export function hostProblems(spec: VmSpec, host: HostResources, paths: VmPaths, ovmf: { code: string; vars: string }): string[] {
  const p: string[] = [];
  const mib = (kib: number) => `${Math.round(kib / 1024)} MiB`;
  if (spec.memoryKiB > host.memAvailableKiB)
    p.push(
      `memoryKiB: ${spec.memoryKiB} KiB (${mib(spec.memoryKiB)}) is more than this host has available ` +
        `(${mib(host.memAvailableKiB)} available of ${mib(host.memTotalKiB)})`,
    );
  if (spec.vcpus > host.cpus) p.push(`vcpus: ${spec.vcpus} is more than this host's ${host.cpus} CPUs`);
  const outside = (spec.cpuAffinity?.cpus ?? []).filter((c) => c >= host.cpus);
  if (outside.length) p.push(`cpus: CPU ${outside.join(", ")} is not one of this host's CPUs (0-${host.cpus - 1})`);
  if (spec.maxMemoryKiB && spec.maxMemoryKiB > host.memTotalKiB)
    p.push(`maxMemoryKiB: ${spec.maxMemoryKiB} KiB (${mib(spec.maxMemoryKiB)}) is more memory than this host has (${mib(host.memTotalKiB)})`);
  spec.disks.forEach((d, i) => {
    if (d.path && !isFile(d.path)) p.push(`disks[${i}].path: ${d.path} does not exist or is not a file`);
  });
  if (spec.kernel && !isFile(spec.kernel)) p.push(`kernel: ${spec.kernel} does not exist or is not a file`);
  if (spec.initrd && !isFile(spec.initrd)) p.push(`initrd: ${spec.initrd} does not exist or is not a file`);
  if (spec.mode === "uefi") {
    if (!isFile(ovmf.code)) p.push(`mode: uefi needs the OVMF firmware ${ovmf.code} (Debian package ovmf)`);
    if (!spec.firmwareVarsPath || !existsSync(spec.firmwareVarsPath))
      if (!isFile(ovmf.vars)) p.push(`mode: uefi needs the OVMF variable store template ${ovmf.vars} (Debian package ovmf)`);
  }
  const longest = [paths.qmp, paths.serial, paths.console, paths.vnc].sort((a, b) => Buffer.byteLength(b) - Buffer.byteLength(a))[0]!;
  if (Buffer.byteLength(longest) > MAX_SOCKET_PATH)
    p.push(`run directory: socket path ${longest} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter run directory`);
  return p;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
