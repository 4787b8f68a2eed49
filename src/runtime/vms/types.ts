import type { Logger } from "../../model/log.ts";

export type Accelerator = "kvm" | "tcg";

/** Legacy BIOS (SeaBIOS) by default; UEFI (OVMF) for EVE's FML mode. */
export type FirmwareMode = "legacy-bios" | "uefi";

/** qemu-img's names for the disk formats of EVE content trees (RAW, QCOW2, VMDK, VHDX, QCOW; ISO is raw). */
export type DiskFormat = "raw" | "qcow2" | "qcow" | "vmdk" | "vhdx" | "vpc";

export interface DiskSpec {
  path: string;
  format: DiskFormat;
  readOnly: boolean;
  /** Attached as a CD-ROM (IDE/AHCI), always read-only. */
  cdrom?: boolean;
  /** Bus of a hard disk: virtio-blk by default; `ide` (AHCI on q35) for guests without virtio drivers. */
  bus?: "virtio" | "ide";
}

export interface HostForward {
  protocol?: "tcp" | "udp";
  /** Host address to listen on; 127.0.0.1 by default. */
  hostAddress?: string;
  hostPort: number;
  guestPort: number;
}

export type NicSpec =
  | { kind: "user"; hostfwd?: HostForward[]; mac?: string; model?: NicModel }
  /** A tap device; created by QEMU when missing. With `bridge`, the runtime enslaves it before the guest runs. */
  | { kind: "tap"; ifname: string; mac: string; bridge?: string; model?: NicModel };

export type NicModel = "virtio" | "e1000";

export interface VmSpec {
  appUuid: string;
  /** The app's display name (error messages, `-name`). */
  name: string;
  memoryKiB: number;
  vcpus: number;
  /** vCPUs the guest may bring online later (QEMU -smp maxcpus); absent: vcpus. */
  maxVcpus?: number;
  /**
   * Memory hot-plug headroom (EVE's `maxmem`, KiB, above `memoryKiB`): QEMU `-m size=…,slots=…,maxmem=…`, so DIMMs
   * can be plugged into the running guest up to this much. Absent: the guest has exactly `memoryKiB`.
   */
  maxMemoryKiB?: number;
  /**
   * Host CPUs of the VM (EVE's VmConfig `cpus` and `pin_cpu`). Every QEMU thread runs only on `cpus`; `pinned`:
   * vCPU i runs on `cpus[i]` alone (a dedicated CPU each), and with `cpus` empty the runtime picks `vcpus` host
   * CPUs no other running pinned VM holds (EVE: "picked automatically").
   */
  cpuAffinity?: CpuAffinity;
  /**
   * USB boot priority (EVE's boot order: LPS, VmConfig.boot_order, app.boot.order): `usb` puts the passed-through
   * USB devices first in the boot order, `nousb` boots only the disks (`-boot strict=on`). Absent: the disks in
   * config order, then whatever the firmware finds. Not in the spec hash: EVE applies it at the VM's next start.
   */
  bootOrder?: "usb" | "nousb";
  mode: FirmwareMode;
  disks: DiskSpec[];
  /** cloud-init user-data; attached as a NoCloud seed (FAT labelled `cidata`) built at start. */
  cloudInitUserData?: string;
  nics: NicSpec[];
  /** VNC on a unix socket (run/vms/<uuid>/vnc.sock) and a VGA device; otherwise no display at all. */
  remoteConsole: boolean;
  /**
   * With `remoteConsole`: VNC also on TCP port 5900 + `display` on every address (EVE's vncDisplay, allowed by
   * app.allow.vnc), with VNC authentication by `password` (EVE's vncPasswd; VNC uses its first 8 characters).
   * Never without a password. The password is set over QMP before the guest runs, never on a command line.
   */
  vncTcp?: { display: number; password: string };
  /**
   * EVE's vmm_maxmem (KiB): memory QEMU itself may use beyond the guest's. The VM's cgroup is limited to
   * `memoryKiB` + this (v2 memory.max, or a v1 memory cgroup); where no cgroup can hold a limit the VM runs
   * without one and says why (`notApplied`).
   */
  vmmOverheadKiB?: number;
  /**
   * EVE's enable_oem_win_license_key: the host's Windows license ACPI tables (MSDM, and the older SLIC) given to
   * the guest (`-acpitable file=…`). A host without them: the VM runs without, and says so (`notApplied`).
   */
  oemLicenseTables?: boolean;
  /** Direct kernel boot. */
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  /**
   * UEFI only: this VM's writable copy of the OVMF variable store (boot entries). Made from the template when
   * missing. Defaults to the VM's run directory, which does not survive a reboot of the device: the reconciler
   * should point it next to the app's volumes.
   */
  firmwareVarsPath?: string;
  /** The host's I/O passed through (the app's adapters): absent when none. */
  passthrough?: PassthroughSpec;
}

export interface CpuAffinity {
  cpus: number[];
  pinned: boolean;
}

/** Where a running VM's threads were put: the CPU set and, pinned, each vCPU's thread id and CPU. */
export interface VmCpuPlacement {
  set: number[];
  pinned: boolean;
  vcpus: { vcpu: number; thread: number; cpu: number }[];
}

/** Host devices a VM is given: serial ports on its serial ports after the console's, USB by usb-host, PCI by VFIO. */
export interface PassthroughSpec {
  /** Host serial device nodes (checked paths): the guest's second, third … serial port (ttyS1, ttyS2, …). */
  serial: string[];
  /** USB devices: by bus and port path (follows the port across replugs), or by vendor and product id. */
  usb: ({ bus: number; port: string } | { vendorId: number; productId: number })[];
  /** PCI functions (bound to vfio-pci before the start): `0000:01:00.0`. */
  pci: string[];
}

/** A VM the runtime runs (`QemuRuntime.list()`). */
export interface RunningVmInfo {
  appUuid: string;
  name: string;
  pid: number;
  specHash: string;
  /** `vmSpecHash(spec, {memory: false})`: equal to a desired spec's, the two differ at most in memory. */
  memoryHash: string;
  /** The guest's memory now (KiB, hot-plugged included) and, with headroom, how much more it can take live. */
  memory: { kib: number; maxKiB?: number; pluggedKiB?: number; freeSlots?: number };
  accelerator: Accelerator;
  acceleratorReason: string | null;
  startedAt: string;
  cpus?: VmCpuPlacement;
  /** What of its spec it runs without on this host, each with why. */
  notApplied?: string[];
  /** The memory limit of its cgroup (vmmOverheadKiB): bytes and the file holding it. */
  memoryLimit?: { bytes: number; file: string };
}

/** QMP's run state, folded: `stopped` = no QEMU process. */
export type VmState = "running" | "paused" | "shutdown" | "stopped";

export interface VmStatus {
  appUuid: string;
  state: VmState;
  /** QMP's own status string (`running`, `paused`, `prelaunch`, `shutdown`, `guest-panicked`, …). */
  qmpStatus: string | null;
  pid: number | null;
  accelerator: Accelerator | null;
  /** Why it runs under TCG: KVM absent, refused by the probe, or found unusable by a guest (null under KVM). */
  acceleratorReason?: string | null;
}

export interface AdoptedVm {
  appUuid: string;
  name: string;
  pid: number;
  state: VmState;
  accelerator: Accelerator;
  /** The spec it was started with, and its hash (`vmSpecHash`), to compare with the desired one. */
  spec: VmSpec;
  specHash: string;
  startedAt: string;
}

export interface VmExit {
  appUuid: string;
  name: string;
  pid: number;
  /** Known when QEMU was this process's child; null for an adopted QEMU. */
  exitCode: number | null;
  signal: string | null;
  /**
   * `guest-shutdown` (the guest powered off), `host-shutdown` (our shutdown or quit), `killed` (our kill),
   * `crashed` (none of those: killed by someone else or QEMU died).
   */
  reason: "guest-shutdown" | "host-shutdown" | "killed" | "crashed";
  /** The last lines QEMU wrote to its log (stderr). */
  logTail: string;
}

export interface VmStats {
  appUuid: string;
  /** Cumulative CPU time of the VM's processes (all vCPU and I/O threads). */
  cpuUsageUsec: number;
  /** Memory in use: the cgroup's memory.current when the memory controller is on, else QEMU's RSS. */
  memoryBytes: number;
  source: "cgroup" | "proc";
  cgroup: string | null;
  /** Bytes QEMU read from and wrote to storage (its /proc/<pid>/io: the guest's disk I/O). */
  diskReadBytes: number;
  diskWriteBytes: number;
  /** Counters of the VM's taps, seen from the guest (a tap's tx is what the guest received). */
  network: { name: string; rxBytes: number; txBytes: number }[];
}

export interface StartOptions {
  /**
   * Wait until the serial console shows this, then return; on timeout the VM is killed, its run directory
   * removed and a `VmError` (`boot-timeout`) thrown with the serial output seen so far.
   */
  readyPattern?: string | RegExp;
  readyTimeoutMs?: number;
}

export interface ShutdownResult {
  /** `acpi`: the guest powered off by itself; `quit`: QEMU quit after the timeout; `kill`: SIGKILL. `none`: not running. */
  how: "acpi" | "quit" | "kill" | "none";
  elapsedMs: number;
}

export type ConsolePort = "serial" | "virtio";

export interface VmConsole {
  /** Recent output (bounded ring) at the time of opening. */
  history: Uint8Array;
  /** Live output from the moment of opening (after `history`); ends when the VM stops or `close()`. */
  readable: ReadableStream<Uint8Array>;
  write(data: string | Uint8Array): void;
  close(): void;
}

/** What the VM runtime logs through: two levels of the device's Logger. */
export type VmLogger = Pick<Logger, "info" | "warn">;
