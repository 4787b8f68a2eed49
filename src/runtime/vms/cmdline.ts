// The QEMU command line of a VM app, built in one place from a VmSpec; pure, so it is unit-tested without QEMU.
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { Accelerator, DiskFormat, DiskSpec, NicSpec, PassthroughSpec, VmSpec } from "./types.ts";

/** Where a VM's runtime files live: `<runDir>/vms/<uuid>/`. */
export interface VmPaths {
  dir: string;
  pidfile: string;
  qmp: string;
  serial: string;
  console: string;
  vnc: string;
  /** QEMU's stdout and stderr for its whole life (it runs detached, so nobody else reads them). */
  log: string;
  /** Everything the guest wrote on its serial port (QEMU's chardev logfile), trimmed by the runtime. */
  serialLog: string;
  /** The firmware's own log (SeaBIOS writes it to the debug port 0x402): why a guest did not boot. */
  firmwareLog: string;
  /** The spec it was started with (JSON), for adoption after a restart of evebox. */
  spec: string;
  seed: string;
  firmwareVars: string;
}

export function vmPaths(runDir: string, appUuid: string): VmPaths {
  const dir = join(runDir, "vms", appUuid);
  return {
    dir,
    pidfile: join(dir, "qemu.pid"),
    qmp: join(dir, "qmp.sock"),
    serial: join(dir, "serial.sock"),
    console: join(dir, "console.sock"),
    vnc: join(dir, "vnc.sock"),
    log: join(dir, "qemu.log"),
    serialLog: join(dir, "serial.log"),
    firmwareLog: join(dir, "firmware.log"),
    spec: join(dir, "spec.json"),
    seed: join(dir, "cidata.img"),
    firmwareVars: join(dir, "OVMF_VARS.fd"),
  };
}

/** sockaddr_un.sun_path holds 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH = 107;

export interface Firmware {
  /** OVMF code (read-only pflash) and the template of its variable store. */
  ovmfCode: string;
  ovmfVarsTemplate: string;
}

export const DEFAULT_FIRMWARE: Firmware = {
  ovmfCode: "/usr/share/OVMF/OVMF_CODE_4M.fd",
  ovmfVarsTemplate: "/usr/share/OVMF/OVMF_VARS_4M.fd",
};

export interface QemuArgsOptions {
  paths: VmPaths;
  accelerator: Accelerator;
  firmware?: Firmware;
  /** The NoCloud seed image, when the spec has user-data (built by the runtime before start). */
  seedImage?: string;
  /**
   * Per disk (same order as `spec.disks`): the backing file the runtime checked (`checkDiskBeforeStart`), or
   * null. Stated on the command line, so QEMU never follows a name from an image's header.
   */
  backings?: ({ path: string; format: DiskFormat } | null)[];
  /** Start with the vCPUs stopped (`-S`), so the runtime can attach consoles and cgroups before the guest runs. */
  paused?: boolean;
  /** Host ACPI tables for the guest (the Windows license tables the runtime found for `oemLicenseTables`). */
  acpiTables?: string[];
  /** SMBIOS type 1 (system) fields for the guest: the host's own, with its license tables (`smbiosSystemOf`). */
  smbiosSystem?: SmbiosSystem;
}

/** SMBIOS type 1 fields, as QEMU's `-smbios type=1` names them. */
export type SmbiosSystem = Partial<Record<"uuid" | "manufacturer" | "product" | "version" | "serial" | "sku" | "family", string>>;

/** The `-smbios` value of `fields` (empty ones left out), or null when none is set. */
export function smbiosArg(fields: SmbiosSystem): string | null {
  const parts = Object.entries(fields).filter(([, v]) => v).map(([k, v]) => `${k}=${qemuValue(v!)}`);
  return parts.length ? `type=1,${parts.join(",")}` : null;
}

/** The machine type of every VM, in both modes, as EVE (the KVM probe runs this too). */
export const MACHINE_TYPE = "q35";

/** The CPU model of a VM: the host's under KVM; under TCG `max` (x86-64-v2+ guests need more than `qemu64`). */
export function cpuModelFor(accelerator: Accelerator): string {
  return accelerator === "kvm" ? "host" : "max";
}

/** QEMU's option syntax: a comma inside a value is written twice. */
export function qemuValue(value: string): string {
  return value.replaceAll(",", ",,");
}

/** Arguments after the QEMU binary. */
export function buildQemuArgs(spec: VmSpec, opts: QemuArgsOptions): string[] {
  const { paths } = opts;
  const firmware = opts.firmware ?? DEFAULT_FIRMWARE;
  const v = qemuValue;
  const args: string[] = [
    "-name", `guest=${v(spec.name)},debug-threads=on`,
    "-uuid", spec.appUuid,
    // q35 for both modes, as EVE does; SeaBIOS is QEMU's default firmware for it.
    "-machine", `${MACHINE_TYPE},accel=${opts.accelerator}`,
    "-cpu", cpuModelFor(opts.accelerator),
    "-smp", spec.maxVcpus ? `${spec.vcpus},maxcpus=${spec.maxVcpus}` : String(spec.vcpus),
    "-m", memoryArg(spec),
    "-nodefaults",
    "-no-user-config",
    "-msg", "timestamp=on",
    "-pidfile", paths.pidfile,
    "-qmp", `unix:${v(paths.qmp)},server=on,wait=off`,
    // Serial port 0 on a unix socket, also logged to a file so a restarted evebox can show recent output.
    "-chardev", `socket,id=serial0,path=${v(paths.serial)},server=on,wait=off,logfile=${v(paths.serialLog)},logappend=on`,
    "-serial", "chardev:serial0",
    // A virtio console (hvc0 in a Linux guest) on its own socket.
    "-device", "virtio-serial-pci,id=virtio-serial0",
    "-chardev", `socket,id=console0,path=${v(paths.console)},server=on,wait=off`,
    "-device", "virtconsole,chardev=console0,id=console0,name=org.lfedge.eve.console.0",
    // The firmware's debug port to a file: "No bootable device." shows there, not on the serial console.
    "-chardev", `file,id=firmware0,path=${v(paths.firmwareLog)}`,
    "-device", "isa-debugcon,iobase=0x402,chardev=firmware0",
  ];
  if (spec.remoteConsole) {
    args.push("-vnc", `unix:${v(paths.vnc)}`);
    // A second VNC server (id vnc-tcp): its password comes over QMP (set_password) before `cont`; until then
    // VNC authentication with password=on refuses every client.
    if (spec.vncTcp) args.push("-vnc", `0.0.0.0:${spec.vncTcp.display},password=on,id=${VNC_TCP_ID}`);
    args.push("-device", "VGA");
  } else args.push("-display", "none");
  for (const table of opts.acpiTables ?? []) args.push("-acpitable", `file=${v(table)}`);
  const smbios = opts.smbiosSystem ? smbiosArg(opts.smbiosSystem) : null;
  if (smbios) args.push("-smbios", smbios);

  if (spec.mode === "uefi") {
    args.push(
      "-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${v(firmware.ovmfCode)}`,
      "-drive", `if=pflash,format=raw,unit=1,file=${v(spec.firmwareVarsPath ?? paths.firmwareVars)}`,
    );
  }

  // USB first: the passed-through USB devices take the first boot indexes (passthroughArgs), the disks follow.
  const usbFirst = spec.bootOrder === "usb" ? (spec.passthrough?.usb.length ?? 0) : 0;
  let bootIndex = usbFirst;
  if (spec.bootOrder === "nousb") args.push("-boot", "strict=on");
  spec.disks.forEach((disk, i) => args.push(...diskArgs(disk, i, bootIndex++, opts.backings?.[i] ?? null)));
  if (opts.seedImage) {
    // NoCloud reads any block device whose filesystem is labelled cidata; not bootable.
    args.push(...blockdev("cidata", { path: opts.seedImage, format: "raw" }, true, null), "-device", "virtio-blk-pci,drive=cidata");
  }
  spec.nics.forEach((nic, i) => args.push(...nicArgs(nic, i)));
  if (spec.passthrough) args.push(...passthroughArgs(spec.passthrough, spec.bootOrder === "usb"));

  if (spec.kernel) args.push("-kernel", spec.kernel);
  if (spec.initrd) args.push("-initrd", spec.initrd);
  if (spec.cmdline !== undefined && spec.kernel) args.push("-append", spec.cmdline);
  if (opts.paused) args.push("-S");
  return args;
}

/** The QEMU id of the TCP VNC server (`vncTcp`), for QMP `set_password`. */
export const VNC_TCP_ID = "vnc-tcp";

/** EVE's VNC ports: 5900 + vncDisplay. */
export const VNC_BASE_PORT = 5900;

/** DIMM slots for memory hot-plug: enough for a few plugs, each slot costs the guest a little ACPI table. */
export const MEMORY_SLOTS = 4;

/** `-m`: the boot memory, and with `maxMemoryKiB` above it the hot-plug headroom (rounded up to 2 MiB, QEMU's DIMM alignment). */
export function memoryArg(spec: VmSpec): string {
  if (!spec.maxMemoryKiB || spec.maxMemoryKiB <= spec.memoryKiB) return `${spec.memoryKiB}k`;
  const max = Math.ceil(spec.maxMemoryKiB / 2048) * 2048;
  return `size=${spec.memoryKiB}k,slots=${MEMORY_SLOTS},maxmem=${max}k`;
}

/** QEMU's DIMM alignment (x86): a plugged DIMM is a whole number of these. */
export const DIMM_ALIGN_KIB = 2048;

/**
 * Why a running VM started with `spec` cannot be brought to `memoryKiB` by plugging one DIMM (null: it can):
 * memory is never unplugged, the headroom (`maxMemoryKiB`) and the free DIMM slots bound it.
 */
export function memoryPlugProblem(spec: VmSpec, memoryKiB: number, freeSlots: number): string | null {
  const mib = (k: number) => `${Math.round(k / 1024)} MiB`;
  const now = spec.memoryKiB;
  if (memoryKiB === now) return null;
  if (memoryKiB < now) return `memory lowered from ${mib(now)} to ${mib(memoryKiB)}: memory is not taken out of a running guest`;
  if (!spec.maxMemoryKiB) return `memory raised from ${mib(now)} to ${mib(memoryKiB)}: the VM was started without maxmem (no hot-plug headroom)`;
  const max = Math.ceil(spec.maxMemoryKiB / DIMM_ALIGN_KIB) * DIMM_ALIGN_KIB;
  if (memoryKiB > max) return `memory raised from ${mib(now)} to ${mib(memoryKiB)}: beyond the maxmem it was started with (${mib(spec.maxMemoryKiB)})`;
  if ((memoryKiB - now) % DIMM_ALIGN_KIB) return `memory raised by ${memoryKiB - now} KiB: a plugged DIMM is a whole number of 2 MiB`;
  if (freeSlots < 1) return `memory raised from ${mib(now)} to ${mib(memoryKiB)}: all ${MEMORY_SLOTS} memory slots are used`;
  return null;
}

/** Formats whose driver takes a `backing` (QEMU opens the header's backing file unless it is given, even as null). */
const HAS_BACKING = new Set<DiskFormat>(["qcow2", "qcow", "vmdk"]);

/**
 * A disk as `-blockdev` nodes: the file node and the format node on it, with the format always stated (QEMU never
 * probes) and the backing always stated (the checked one, or none), so the header's names are never followed.
 */
function blockdev(node: string, disk: { path: string; format: DiskFormat }, readOnly: boolean, backing: { path: string; format: DiskFormat } | null): string[] {
  const cache = { direct: false, "no-flush": false }; // cache=writeback
  const nodes = (name: string, d: { path: string; format: DiskFormat }, ro: boolean, back: string | null | undefined) => [
    { driver: "file", filename: d.path, "node-name": `${name}-file`, "read-only": ro, discard: "unmap", cache },
    {
      driver: d.format,
      file: `${name}-file`,
      "node-name": name,
      "read-only": ro,
      discard: "unmap",
      cache,
      ...(HAS_BACKING.has(d.format) ? { backing: back ?? null } : {}),
    },
  ];
  const out: Record<string, unknown>[] = [];
  if (backing) out.push(...nodes(`${node}-base`, backing, true, null));
  out.push(...nodes(node, disk, readOnly, backing ? `${node}-base` : null));
  return out.flatMap((n) => ["-blockdev", JSON.stringify(n)]);
}

function diskArgs(disk: DiskSpec, i: number, bootIndex: number, backing: { path: string; format: DiskFormat } | null): string[] {
  if (disk.cdrom) return [...blockdev(`disk${i}`, disk, true, backing), "-device", `ide-cd,drive=disk${i},bootindex=${bootIndex}`];
  const device = disk.bus === "ide" ? "ide-hd" : "virtio-blk-pci";
  return [...blockdev(`disk${i}`, disk, disk.readOnly, backing), "-device", `${device},drive=disk${i},bootindex=${bootIndex},write-cache=on`];
}

function nicArgs(nic: NicSpec, i: number): string[] {
  // No option ROM: VM apps boot from their disks, and loading iPXE costs seconds under TCG.
  const device = `${nic.model === "e1000" ? "e1000" : "virtio-net-pci"},netdev=net${i},romfile=${nic.mac ? `,mac=${nic.mac}` : ""}`;
  if (nic.kind === "tap") return ["-netdev", `tap,id=net${i},ifname=${nic.ifname},script=no,downscript=no`, "-device", device];
  const fwd = (nic.hostfwd ?? [])
    .map((f) => `,hostfwd=${f.protocol ?? "tcp"}:${f.hostAddress ?? "127.0.0.1"}:${f.hostPort}-:${f.guestPort}`)
    .join("");
  return ["-netdev", `user,id=net${i}${fwd}`, "-device", device];
}

/** The host's serial ports after the console's (ttyS1 …), USB devices on an xHCI controller, PCI functions by VFIO. */
export function passthroughArgs(p: PassthroughSpec, usbBootFirst = false): string[] {
  const v = qemuValue;
  const args: string[] = [];
  p.serial.forEach((path, i) => args.push("-chardev", `serial,id=hostserial${i},path=${v(path)}`, "-serial", `chardev:hostserial${i}`));
  if (p.usb.length) args.push("-device", "qemu-xhci,id=xhci");
  p.usb.forEach((u, i) => {
    const id = "bus" in u ? `hostbus=${u.bus},hostport=${u.port}` : `vendorid=0x${u.vendorId.toString(16).padStart(4, "0")},productid=0x${u.productId.toString(16).padStart(4, "0")}`;
    args.push("-device", `usb-host,bus=xhci.0,${id},id=hostusb${i}${usbBootFirst ? `,bootindex=${i}` : ""}`);
  });
  p.pci.forEach((address, i) => args.push("-device", `vfio-pci,host=${address},id=hostpci${i}`));
  return args;
}

/**
 * A stable hash of everything in the spec that needs a new QEMU when it changes (adoption compares it).
 * `{memory: false}` leaves `memoryKiB` out: two specs with the same such hash differ at most in memory, which a
 * running VM with hot-plug headroom (`maxMemoryKiB`) can take in part without a restart.
 */
export function vmSpecHash(spec: VmSpec, opts: { memory?: boolean } = {}): string {
  const canonical = {
    appUuid: spec.appUuid,
    name: spec.name,
    memoryKiB: opts.memory === false ? null : spec.memoryKiB,
    vcpus: spec.vcpus,
    // Only when set: the hash of a VM without it is what it always was.
    ...(spec.maxVcpus ? { maxVcpus: spec.maxVcpus } : {}),
    ...(spec.maxMemoryKiB ? { maxMemoryKiB: spec.maxMemoryKiB } : {}),
    ...(spec.cpuAffinity ? { cpuAffinity: spec.cpuAffinity } : {}),
    mode: spec.mode,
    disks: spec.disks.map((d) => [d.path, d.format, d.readOnly, d.cdrom ?? false, d.bus ?? "virtio"]),
    cloudInitUserData: spec.cloudInitUserData ?? null,
    nics: spec.nics.map((n) =>
      n.kind === "user"
        ? ["user", n.mac ?? null, n.model ?? "virtio", (n.hostfwd ?? []).map((f) => [f.protocol ?? "tcp", f.hostAddress ?? "127.0.0.1", f.hostPort, f.guestPort])]
        : ["tap", n.ifname, n.mac, n.bridge ?? null, n.model ?? "virtio"],
    ),
    remoteConsole: spec.remoteConsole,
    // Only when set: the hash of a VM without them is what it always was (adoption compares it).
    ...(spec.vncTcp ? { vncTcp: spec.vncTcp } : {}),
    ...(spec.vmmOverheadKiB ? { vmmOverheadKiB: spec.vmmOverheadKiB } : {}),
    ...(spec.oemLicenseTables ? { oemLicenseTables: true } : {}),
    kernel: spec.kernel ?? null,
    initrd: spec.initrd ?? null,
    cmdline: spec.cmdline ?? null,
    firmwareVarsPath: spec.firmwareVarsPath ?? null,
    // Only when there is some: the hash of a VM without adapters is what it always was (adoption compares it).
    ...(spec.passthrough ? { passthrough: spec.passthrough } : {}),
  };
  return createHash("sha256").update(JSON.stringify(canonical)).digest("hex").slice(0, 16);
}
