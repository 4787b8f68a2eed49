import { closeSync, copyFileSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync, writeFileSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { run } from "../../lib/run.ts";
import { waitFor, WaitTimeout } from "../../lib/wait.ts";
import { type AcceleratorProbe, kvmFailureOf, probeAccelerator } from "./accel.ts";
import { VmCgroups } from "./cgroup.ts";
import { buildQemuArgs, DEFAULT_FIRMWARE, type Firmware, MEMORY_SLOTS, type SmbiosSystem, memoryPlugProblem, VNC_TCP_ID, type VmPaths, vmPaths, vmSpecHash } from "./cmdline.ts";
import { ConsoleBridge, ConsoleTimeout } from "./console.ts";
import {
  checkDiskBeforeStart,
  createBlankDisk,
  type DiskBacking,
  type ImageInfo,
  makeNoCloudSeed,
  prepareDisk,
  type PrepareDiskOptions,
  type PreparedDisk,
  verifyDiskImage,
} from "./disks.ts";
import { VmError } from "./errors.ts";
import { readKvmUnusable, writeKvmUnusable } from "./kvm-state.ts";
import { processIo } from "../proc.ts";
import { QmpClient, type QmpEvent } from "./qmp.ts";
import type {
  Accelerator,
  AdoptedVm,
  ConsolePort,
  CpuAffinity,
  DiskFormat,
  ShutdownResult,
  StartOptions,
  VmConsole,
  VmExit,
  VmLogger,
  VmSpec,
  VmState,
  VmStats,
  VmStatus,
  VmCpuPlacement,
  RunningVmInfo,
} from "./types.ts";
import { cpuListText } from "./eve.ts";
import { hostProblems, hostResources, type HostResources, specProblems } from "./validate.ts";

export interface QemuRuntimeOptions {
  /** evebox's `run/`; each VM gets `<runDir>/vms/<uuid>/`. */
  runDir: string;
  qemu?: string;
  qemuImg?: string;
  logger?: VmLogger;
  firmware?: Firmware;
  /** null turns per-VM cgroups off; by default they are used when the cgroup2 mount is writable. */
  cgroups?: VmCgroups | null;
  /** Recent output kept per console port. */
  consoleRingBytes?: number;
  /** Time QEMU gets to come up (its QMP socket answering). */
  startTimeoutMs?: number;
  /** How often a VM's QEMU pid is checked, besides the QMP connection's end and the child's exit. */
  pollIntervalMs?: number;
  /** Skips the accelerator probe (tests, or a device that knows). */
  accelerator?: Accelerator;
  hostResources?: () => HostResources;
  /**
   * How long a guest under KVM is watched after its start (less once it writes on its serial console) for QEMU
   * aborting or stopping on a KVM error; then it is started again under TCG.
   */
  kvmWatchMs?: number;
  /** Where the host's ACPI tables are (the Windows license tables MSDM and SLIC for `oemLicenseTables`). */
  acpiTablesDir?: string;
  /** Where the host's SMBIOS identity is (`/sys/class/dmi/id`), given to a guest with the license tables. */
  dmiDir?: string;
}

/** The host's SMBIOS system identity from sysfs (`/sys/class/dmi/id`), as QEMU's `-smbios type=1` fields. */
export function hostSmbiosSystem(dir: string): SmbiosSystem {
  const files = { uuid: "product_uuid", manufacturer: "sys_vendor", product: "product_name", version: "product_version", serial: "product_serial", sku: "product_sku", family: "product_family" } as const;
  const out: SmbiosSystem = {};
  for (const [field, file] of Object.entries(files) as [keyof SmbiosSystem, string][]) {
    try {
      // Firmware text: printable characters only (it reaches QEMU's command line, commas doubled there).
      const text = readFileSync(join(dir, file), "latin1").replace(/[^\x20-\x7e]/g, "").trim();
      if (text) out[field] = text;
    } catch {}
  }
  return out;
}

/** The Windows license tables a host's firmware may carry, as EVE looks for them: MSDM, and the older SLIC. */
export const LICENSE_TABLES = ["MSDM", "SLIC"] as const;

/** A start under KVM that KVM failed (the message says how); the runtime retries under TCG. */
class KvmFailed extends Error {}

/** What spec.json in a VM's run directory holds. */
interface RunRecord {
  spec: VmSpec;
  specHash: string;
  accelerator: Accelerator;
  /** Why it runs under TCG (null under KVM; absent in records of older evebox versions). */
  acceleratorReason?: string | null;
  startedAt: string;
  /** The host CPUs it runs on and, pinned, each vCPU's thread and CPU (spec.cpuAffinity applied; absent: any). */
  cpus?: VmCpuPlacement;
  /** What of the spec this VM runs without on this host, each with why (no license table, no memory cgroup). */
  notApplied?: string[];
  /** The memory limit on QEMU's cgroup (spec.vmmOverheadKiB applied): bytes, and the file that holds it. */
  memoryLimit?: { bytes: number; file: string };
  /** Memory plugged into the running guest (QMP pc-dimm), in order; `spec.memoryKiB` counts it. */
  plugged?: { id: string; kib: number }[];
}

type Expecting = "host-shutdown" | "killed" | null;

interface ManagedVm {
  uuid: string;
  name: string;
  record: RunRecord;
  paths: VmPaths;
  pid: number;
  child: Subprocess | null;
  qmp: QmpClient | null;
  serial: ConsoleBridge;
  virtio: ConsoleBridge;
  expecting: Expecting;
  shutdownEvent: { guest: boolean; reason: string } | null;
  poll: Timer | null;
  gone: Promise<VmExit>;
  resolveGone(exit: VmExit): void;
  goneStarted: boolean;
  watchers: Set<(exit: VmExit) => void>;
}

const NO_LOG: VmLogger = { info() {}, warn() {} };

/**
 * VM apps under QEMU. Each VM runs detached (its own session, pidfile, QMP and console sockets under
 * `<runDir>/vms/<uuid>/`), so it outlives this process; a new QemuRuntime finds running VMs with `adopt()`.
 */
export class QemuRuntime {
  readonly runDir: string;
  private readonly qemu: string;
  private readonly qemuImg: string;
  private readonly log: VmLogger;
  private readonly firmware: Firmware;
  private readonly cgroups: VmCgroups | null;
  private readonly ringBytes: number;
  private readonly startTimeoutMs: number;
  private readonly pollIntervalMs: number;
  private readonly host: () => HostResources;
  private readonly kvmWatchMs: number;
  private readonly acpiTablesDir: string;
  private readonly dmiDir: string;
  /** Where "KVM is unusable on this device" is kept for the rest of this boot. */
  private readonly kvmStateFile: string;
  private accel: Promise<AcceleratorProbe> | null = null;
  private accelResult: AcceleratorProbe | null = null;
  private readonly vms = new Map<string, ManagedVm>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly exitListeners = new Set<(exit: VmExit) => void>();
  /** uuid → why adopt() could not take over its running QEMU. */
  private readonly unmanageable = new Map<string, string>();
  private closed = false;

  constructor(opts: QemuRuntimeOptions) {
    this.runDir = opts.runDir;
    this.qemu = opts.qemu ?? "qemu-system-x86_64";
    this.qemuImg = opts.qemuImg ?? "qemu-img";
    this.log = opts.logger ?? NO_LOG;
    this.firmware = opts.firmware ?? DEFAULT_FIRMWARE;
    this.cgroups = opts.cgroups === undefined ? new VmCgroups() : opts.cgroups;
    this.ringBytes = opts.consoleRingBytes ?? 64 * 1024;
    this.startTimeoutMs = opts.startTimeoutMs ?? 15_000;
    this.pollIntervalMs = opts.pollIntervalMs ?? 500;
    this.host = opts.hostResources ?? hostResources;
    this.kvmWatchMs = opts.kvmWatchMs ?? 8000;
    this.kvmStateFile = join(this.runDir, "vm-kvm-unusable.json");
    this.acpiTablesDir = opts.acpiTablesDir ?? "/sys/firmware/acpi/tables";
    this.dmiDir = opts.dmiDir ?? "/sys/class/dmi/id";
    if (opts.accelerator) {
      this.accelResult = { accelerator: opts.accelerator, reason: "set by configuration", probeMs: 0 };
      this.accel = Promise.resolve(this.accelResult);
    }
  }

  // ---- accelerator

  /** KVM if a guest really runs on it, else TCG; probed once. `acceleratorProbe()` tells why. */
  async probeAccelerator(): Promise<Accelerator> {
    const earlier = this.accelResult ? null : readKvmUnusable(this.kvmStateFile);
    if (earlier) {
      this.accelResult = { accelerator: "tcg", reason: `KVM failed a guest earlier in this boot (${earlier.at}): ${earlier.reason}`, probeMs: 0 };
      this.accel = Promise.resolve(this.accelResult);
      this.log.info(`VMs run under TCG: ${this.accelResult.reason}`);
    }
    this.accel ??= probeAccelerator(this.qemu).then((r) => {
      this.accelResult = r;
      if (r.reason) this.log.info(`VMs run under TCG (no hardware acceleration): ${r.reason}`);
      else this.log.info("VMs run under KVM");
      return r;
    });
    return (await this.accel).accelerator;
  }

  acceleratorProbe(): AcceleratorProbe | null {
    return this.accelResult;
  }

  /** Why per-VM accounting falls back to /proc (null when each VM has its cgroup). */
  cgroupUnavailableReason(): string | null {
    return this.cgroups ? this.cgroups.unavailableReason : "turned off";
  }

  /** Why VMs cannot run here (QEMU is not installed), or null. */
  available(): string | null {
    if (Bun.which(this.qemu)) return null;
    return this.qemu === "qemu-system-x86_64" ? "qemu-system-x86_64 is not installed (Debian package qemu-system-x86)" : `${this.qemu} is not installed`;
  }

  // ---- disks

  /** Refuses a file that is not a disk image of `format` (or, with `iso`, an ISO), or that names any other file. */
  verifyDisk(path: string, format: DiskFormat, opts: { iso?: boolean; app?: { uuid: string; name?: string } } = {}): Promise<ImageInfo> {
    return verifyDiskImage(path, format, { ...opts, qemuImg: this.qemuImg });
  }

  prepareDisk(opts: Omit<PrepareDiskOptions, "qemuImg">): Promise<PreparedDisk> {
    return prepareDisk({ ...opts, qemuImg: this.qemuImg });
  }

  /** A blank volume's disk: a new empty qcow2 of `sizeBytes`, kept when it exists. */
  createBlankDisk(opts: { dest: string; sizeBytes: number; app?: { uuid: string; name?: string } }): Promise<void> {
    return createBlankDisk({ ...opts, qemuImg: this.qemuImg });
  }

  // ---- lifecycle

  /**
   * Starts the VM and returns once QEMU runs the guest (or, with `readyPattern`, once the serial console shows
   * it). Starting a VM that runs with the same spec is a no-op. On any failure nothing is left behind: no
   * process, no cgroup, no run directory; the VmError carries QEMU's last words.
   */
  start(spec: VmSpec, opts: StartOptions = {}): Promise<VmStatus> {
    return this.locked(spec.appUuid, () => this.startLocked(spec, opts));
  }

  private async startLocked(spec: VmSpec, opts: StartOptions): Promise<VmStatus> {
    this.assertOpen();
    const app = { uuid: spec.appUuid, name: spec.name };
    const shape = specProblems(spec);
    if (shape.length) throw new VmError("invalid-spec", app, `refused: ${shape.join("; ")}`);
    const paths = vmPaths(this.runDir, spec.appUuid);
    const specHash = vmSpecHash(spec);

    const running = this.vms.get(spec.appUuid);
    if (running) {
      if (running.record.specHash === specHash) return this.status(spec.appUuid);
      throw new VmError("invalid-spec", app, "refused: it runs with another spec; stop it before starting the new one");
    }
    const stray = readPid(paths.pidfile);
    if (stray && isOurQemu(stray, spec.appUuid)) {
      const why = this.unmanageable.get(spec.appUuid);
      throw new VmError(
        "invalid-spec",
        app,
        `refused: QEMU (pid ${stray}) already runs this VM but is not managed here ` +
          (why ? `(adoption failed: ${why}); kill() ends it` : "(call adopt() first)"),
      );
    }

    const onHost = hostProblems(spec, this.host(), paths, { code: this.firmware.ovmfCode, vars: this.firmware.ovmfVarsTemplate });
    const resources = onHost.filter((p) => p.startsWith("memoryKiB:") || p.startsWith("vcpus:"));
    if (onHost.length > resources.length) throw new VmError("invalid-spec", app, `refused: ${onHost.join("; ")}`);
    if (resources.length) throw new VmError("insufficient-resources", app, `refused: ${resources.join("; ")}`);

    // Every disk checked right before QEMU opens it; its backing is stated on the command line.
    const backings: (DiskBacking | null)[] = [];
    for (const d of spec.disks) backings.push(await checkDiskBeforeStart(d, { qemuImg: this.qemuImg, app }));

    let accelerator = await this.probeAccelerator();
    for (;;) {
      try {
        await this.launch(spec, specHash, accelerator, paths, backings, app);
        break;
      } catch (err) {
        // KVM accepted the probe but failed this guest: KVM is unusable on this device; the guest runs under TCG.
        if (!(err instanceof KvmFailed)) throw err;
        this.markKvmUnusable(`app "${spec.name}" (${spec.appUuid}): ${err.message}`);
        accelerator = "tcg";
      }
    }

    if (opts.readyPattern !== undefined) {
      const timeoutMs = opts.readyTimeoutMs ?? 60_000;
      try {
        await this.vms.get(spec.appUuid)!.serial.waitFor(opts.readyPattern, timeoutMs);
      } catch (err) {
        const seen = err instanceof ConsoleTimeout ? err.seen : "";
        const exit = await this.killUnlocked(spec.appUuid); // the start holds this VM's lock
        const lastSerial = seen.trim().split("\n").slice(-10).join("\n");
        throw new VmError(
          "boot-timeout",
          app,
          `the guest did not boot: ${(err as Error).message} on its serial console; it was killed. ` +
            (lastSerial ? `Last serial output:\n${lastSerial}` : "It printed nothing on its serial console."),
          exit?.logTail ?? "",
        );
      }
    }
    return this.status(spec.appUuid);
  }

  /**
   * One attempt at starting QEMU under `accelerator`: run directory, seed, spawn into the cgroup, QMP, consoles,
   * taps, `cont`, and under KVM a watch of the guest's first seconds. Throws `KvmFailed` when KVM failed the guest
   * (the caller retries under TCG); on any failure nothing is left behind.
   */
  private async launch(
    spec: VmSpec,
    specHash: string,
    accelerator: Accelerator,
    paths: VmPaths,
    backings: (DiskBacking | null)[],
    app: { uuid: string; name: string },
  ): Promise<void> {
    await rm(paths.dir, { recursive: true, force: true });
    await mkdir(paths.dir, { recursive: true, mode: 0o700 });
    const record: RunRecord = {
      spec,
      specHash,
      accelerator,
      acceleratorReason: accelerator === "tcg" ? (this.accelResult?.reason ?? null) : null,
      startedAt: new Date().toISOString(),
    };
    let child: Subprocess | null = null;
    let qmp: QmpClient | null = null;
    const serial = this.bridge(paths, "serial");
    const virtio = this.bridge(paths, "virtio");
    try {
      if (spec.mode === "uefi") {
        const vars = spec.firmwareVarsPath ?? paths.firmwareVars;
        if (!existsSync(vars)) copyFileSync(this.firmware.ovmfVarsTemplate, vars);
      }
      let seedImage: string | undefined;
      if (spec.cloudInitUserData !== undefined) {
        await makeNoCloudSeed({ dest: paths.seed, userData: spec.cloudInitUserData, app });
        seedImage = paths.seed;
      }
      const notApplied: string[] = [];
      const acpiTables = spec.oemLicenseTables ? this.licenseTables() : [];
      if (spec.oemLicenseTables && !acpiTables.length)
        notApplied.push(`enable_oem_win_license_key: this host has no Windows license ACPI table (${LICENSE_TABLES.map((t) => join(this.acpiTablesDir, t)).join(", ")} missing)`);
      // As EVE: with the license tables, the host's SMBIOS identity (OEM activation checks the system it names).
      const smbiosSystem = acpiTables.length ? hostSmbiosSystem(this.dmiDir) : undefined;
      const args = buildQemuArgs(spec, { paths, accelerator, firmware: this.firmware, seedImage, backings, paused: true, acpiTables, smbiosSystem });
      // Before QEMU runs, so a QEMU left by an evebox that died during the start is adopted; 0600: it may hold
      // the VNC password.
      writeFileSync(paths.spec, JSON.stringify(record, null, 2), { mode: 0o600 });

      // QEMU is spawned into the VM's cgroup (the shell moves itself in, then execs QEMU), so every page the
      // guest touches is charged there from the start. Accounting is not worth failing a start for.
      const cgroup = this.cgroups?.create(spec.appUuid) ?? null;
      const procs = [cgroup ? this.cgroups!.procsFile(spec.appUuid) : null];
      if (spec.vmmOverheadKiB) {
        // EVE's rule: the whole QEMU process (guest RAM + the VMM's own) within memory + vmm_maxmem.
        const bytes = (spec.memoryKiB + spec.vmmOverheadKiB) * 1024;
        const limit = this.cgroups?.setMemoryLimit(spec.appUuid, bytes) ?? { unavailable: "per-VM cgroups are turned off" };
        if ("file" in limit) {
          record.memoryLimit = { bytes, file: limit.file };
          procs.push(limit.procs);
        } else notApplied.push(`vmm_maxmem (${spec.vmmOverheadKiB} KiB): QEMU's memory is not limited: ${limit.unavailable}`);
      }
      const joins = [...new Set(procs.filter((f): f is string => !!f))];
      const argv = joins.length && existsSync("/bin/sh")
        ? ["/bin/sh", "-c", 'while [ "$1" != -- ]; do { echo $$ > "$1"; } 2>/dev/null; shift; done; shift; exec "$@"', "sh", ...joins, "--", this.qemu, ...args]
        : [this.qemu, ...args];
      const logFd = openSync(paths.log, "a", 0o600);
      try {
        child = Bun.spawn(argv, { detached: true, stdio: ["ignore", logFd, logFd], cwd: paths.dir });
      } catch (err) {
        throw new VmError("start-failed", app, `cannot run ${this.qemu}: ${(err as Error).message}`);
      } finally {
        closeSync(logFd);
      }
      child.unref();
      if (joins.length && argv[0] === this.qemu) {
        for (const f of joins)
          try {
            writeFileSync(f, String(child.pid));
          } catch {}
      }

      qmp = await this.connectQmp(paths, child, app);
      if (record.memoryLimit && !readPidsOf(joins.at(-1)!).includes(child.pid)) {
        notApplied.push(`vmm_maxmem (${spec.vmmOverheadKiB} KiB): QEMU did not join the limited cgroup ${record.memoryLimit.file}`);
        delete record.memoryLimit;
      }
      if (spec.cpuAffinity) record.cpus = await this.placeCpus(spec, spec.cpuAffinity, child.pid, qmp, app);
      // VNC authentication from the first client on: the TCP server refuses everyone until its password is set.
      if (spec.vncTcp) await qmp.execute("set_password", { protocol: "vnc", password: spec.vncTcp.password, display: VNC_TCP_ID });
      if (notApplied.length) record.notApplied = notApplied;
      writeFileSync(paths.spec, JSON.stringify(record, null, 2), { mode: 0o600 });
      await serial.connect(this.startTimeoutMs);
      await virtio.connect(this.startTimeoutMs);
      await this.attachTaps(spec, app);
      await qmp.execute("cont");
      if (accelerator === "kvm") {
        const failed = await this.watchKvmStart(child, qmp, serial, paths);
        if (failed) throw new KvmFailed(failed);
      }
      // From here the VM's exit handling owns the process (an exit between `cont` and this is seen by its poll).
      const vm = this.register(spec, record, paths, child.pid, child, qmp, serial, virtio);
      this.log.info(`app "${spec.name}" (${spec.appUuid}): QEMU pid ${vm.pid} started under ${accelerator}`);
    } catch (err) {
      // Told before the cleanup kills it: how QEMU ended by itself, under KVM, is what says whether KVM failed it.
      let kvm: string | null = err instanceof KvmFailed ? err.message : null;
      if (!kvm && accelerator === "kvm" && child) {
        const ended = child.exitCode !== null || child.signalCode !== null;
        kvm = kvmFailureOf({
          exitCode: ended ? child.exitCode : null,
          signal: ended && child.signalCode ? String(child.signalCode) : null,
          log: logTail(paths.log, 40),
        });
      }
      qmp?.close();
      serial.close();
      virtio.close();
      await this.cleanupFailedStart(spec.appUuid, child);
      const tail = logTail(paths.log);
      await rm(paths.dir, { recursive: true, force: true });
      if (kvm) {
        this.log.warn(`app "${spec.name}" (${spec.appUuid}): KVM failed the guest (${kvm}); starting it again under TCG`);
        throw new KvmFailed(kvm);
      }
      if (err instanceof VmError) throw err;
      throw new VmError("start-failed", app, `QEMU failed to start: ${(err as Error).message}`, tail);
    }
  }

  /**
   * The first seconds of a guest under KVM (until it writes on its serial console, at most `kvmWatchMs`): QEMU
   * gone, stopped in QMP's `internal-error` state, or a KVM error in its log. Returns why KVM failed it, or null.
   */
  private async watchKvmStart(child: Subprocess, qmp: QmpClient, serial: ConsoleBridge, paths: VmPaths): Promise<string | null> {
    let spoke = false;
    serial.waitFor(/\S/, this.kvmWatchMs).then(
      () => (spoke = true),
      () => {},
    );
    const deadline = Date.now() + this.kvmWatchMs;
    while (Date.now() < deadline && !spoke) {
      const ended = child.exitCode !== null || child.signalCode !== null;
      let qmpStatus: string | null = null;
      if (!ended) {
        try {
          qmpStatus = (await qmp.execute<{ status: string }>("query-status")).status;
        } catch {}
      }
      const failed = kvmFailureOf({
        exitCode: ended ? child.exitCode : null,
        signal: ended && child.signalCode ? String(child.signalCode) : null,
        qmpStatus,
        log: logTail(paths.log, 40),
      });
      if (failed) return failed;
      if (ended) return null; // it ended for another reason: the exit path reports it
      await Bun.sleep(100);
    }
    return null;
  }

  /** KVM failed a real guest: every later start on this device (for this boot) runs under TCG, and says why. */
  private markKvmUnusable(reason: string): void {
    const why = `KVM failed a guest: ${reason}; VMs run under TCG until the next boot`;
    this.accelResult = { accelerator: "tcg", reason: why, probeMs: this.accelResult?.probeMs ?? 0 };
    this.accel = Promise.resolve(this.accelResult);
    try {
      writeKvmUnusable(this.kvmStateFile, reason);
    } catch (err) {
      this.log.warn(`cannot record that KVM is unusable in ${this.kvmStateFile}: ${(err as Error).message}`);
    }
    this.log.warn(`VMs run under TCG from now on: ${why}`);
  }

  private bridge(paths: VmPaths, port: ConsolePort): ConsoleBridge {
    return port === "serial"
      ? new ConsoleBridge(paths.serial, { ringBytes: this.ringBytes, logFile: paths.serialLog, logMaxBytes: 1 << 20 })
      : new ConsoleBridge(paths.console, { ringBytes: this.ringBytes });
  }

  /** Waits for QEMU's QMP socket to answer; fails early when QEMU exits. */
  private async connectQmp(paths: VmPaths, child: Subprocess, app: { uuid: string; name: string }): Promise<QmpClient> {
    let answered: { qmp: QmpClient } | { exited: true };
    try {
      answered = await waitFor(
        async () => {
          if (child.exitCode !== null || child.signalCode !== null) return { exited: true as const };
          return existsSync(paths.qmp) ? { qmp: await QmpClient.connect(paths.qmp, { timeoutMs: 2000 }) } : null;
        },
        { timeoutMs: this.startTimeoutMs, intervalMs: 10, what: `QMP on ${paths.qmp}` },
      );
    } catch (err) {
      if (!(err instanceof WaitTimeout)) throw err;
      const last = err.lastError instanceof Error ? err.lastError.message : "";
      throw new VmError("start-failed", app, `QEMU did not answer on ${paths.qmp} within ${this.startTimeoutMs} ms${last ? ` (${last})` : ""}`, logTail(paths.log));
    }
    if ("qmp" in answered) return answered.qmp;
    await child.exited;
    const how = child.signalCode ? `was killed by ${child.signalCode}` : `exited ${child.exitCode}`;
    throw new VmError("start-failed", app, `QEMU ${how} while starting`, logTail(paths.log));
  }

  private async attachTaps(spec: VmSpec, app: { uuid: string; name: string }): Promise<void> {
    for (const nic of spec.nics) {
      if (nic.kind !== "tap") continue;
      const cmd = nic.bridge
        ? ["ip", "link", "set", "dev", nic.ifname, "master", nic.bridge, "up"]
        : ["ip", "link", "set", "dev", nic.ifname, "up"];
      const r = await run(cmd);
      if (r.code !== 0) throw new VmError("start-failed", app, `${cmd.join(" ")} failed: ${r.stderr.trim()}`);
    }
  }

  private async cleanupFailedStart(uuid: string, child: Subprocess | null): Promise<void> {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    this.cgroups?.killAll(uuid);
    if (child) await withTimeout(child.exited, 10_000);
    await this.cgroups?.remove(uuid, 3000);
  }

  /**
   * ACPI power button (QMP `system_powerdown`), then, after `timeoutMs`, QMP `quit` (QEMU flushes its disks and
   * exits), then SIGKILL. Resolves once QEMU is gone and the VM's run directory is removed.
   */
  shutdown(uuid: string, timeoutMs = 30_000): Promise<ShutdownResult> {
    return this.locked(uuid, async () => {
      const t0 = performance.now();
      const vm = this.vms.get(uuid);
      if (!vm) return { how: "none", elapsedMs: 0 };
      vm.expecting = "host-shutdown";
      const elapsed = () => Math.round(performance.now() - t0);
      try {
        await vm.qmp?.execute("system_powerdown");
      } catch {}
      if (await withTimeout(vm.gone, timeoutMs)) return { how: "acpi", elapsedMs: elapsed() };
      this.log.warn(`app "${vm.name}" (${uuid}): the guest did not power off within ${timeoutMs} ms; quitting QEMU`);
      try {
        await vm.qmp?.execute("quit");
      } catch {}
      if (await withTimeout(vm.gone, 5000)) return { how: "quit", elapsedMs: elapsed() };
      vm.expecting = "killed";
      this.killPid(vm);
      await withTimeout(vm.gone, 10_000);
      return { how: "kill", elapsedMs: elapsed() };
    });
  }

  /**
   * SIGKILL to QEMU (and anything left in its cgroup); resolves with the exit once cleaned up. Also ends a QEMU of
   * ours that adopt() could not take over (then it resolves null, as for a VM that is not running).
   */
  kill(uuid: string): Promise<VmExit | null> {
    return this.locked(uuid, () => this.killUnlocked(uuid));
  }

  private async killUnlocked(uuid: string): Promise<VmExit | null> {
    const vm = this.vms.get(uuid);
    if (!vm) {
      await this.killUnmanaged(uuid);
      return null;
    }
    vm.expecting = "killed";
    this.killPid(vm);
    return (await withTimeout(vm.gone, 10_000)) ?? null;
  }

  /** A QEMU of ours (pidfile + uuid on its command line) that this runtime does not manage: kill and clean up. */
  private async killUnmanaged(uuid: string): Promise<void> {
    const paths = vmPaths(this.runDir, uuid);
    const pid = readPid(paths.pidfile);
    if (pid === null || !isOurQemu(pid, uuid)) return;
    this.log.warn(`VM ${uuid}: killing QEMU pid ${pid}, which this runtime does not manage`);
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
    this.cgroups?.killAll(uuid);
    await waitFor(() => !isOurQemu(pid, uuid), { timeoutMs: 5_000, intervalMs: 25, what: `QEMU ${pid} to exit` }).catch(() => {});
    await this.cgroups?.remove(uuid, 3000);
    await rm(paths.dir, { recursive: true, force: true });
    this.unmanageable.delete(uuid);
  }

  private killPid(vm: ManagedVm): void {
    try {
      process.kill(vm.pid, "SIGKILL");
    } catch {}
    this.cgroups?.killAll(vm.uuid);
    // An adopted QEMU is not our child: look for its end more often than the regular poll.
    void (async () => {
      for (let i = 0; i < 100 && !vm.goneStarted; i++) {
        await this.checkGone(vm);
        await Bun.sleep(20);
      }
    })();
  }

  async status(uuid: string): Promise<VmStatus> {
    const vm = this.vms.get(uuid);
    if (!vm) {
      const pid = readPid(vmPaths(this.runDir, uuid).pidfile);
      const alive = pid !== null && isOurQemu(pid, uuid);
      return { appUuid: uuid, state: alive ? "running" : "stopped", qmpStatus: null, pid: alive ? pid : null, accelerator: null };
    }
    let qmpStatus: string | null = null;
    let accelerator: Accelerator | null = vm.record.accelerator;
    try {
      qmpStatus = (await vm.qmp!.execute<{ status: string }>("query-status")).status;
      accelerator = (await vm.qmp!.execute<{ enabled: boolean }>("query-kvm")).enabled ? "kvm" : "tcg";
    } catch {}
    return {
      appUuid: uuid,
      state: foldState(qmpStatus, isOurQemu(vm.pid, uuid)),
      qmpStatus,
      pid: vm.pid,
      accelerator,
      acceleratorReason: accelerator === "tcg" ? (vm.record.acceleratorReason ?? null) : null,
    };
  }

  /**
   * EVE's `cpus`/`pin_cpu` on a VM started paused: every QEMU thread limited to the CPU set (`taskset -a`), then,
   * pinned, vCPU i's thread (QMP `query-cpus-fast`) on its own CPU. Pinned without a list, the set is `vcpus`
   * host CPUs that no other running pinned VM holds. A dedicated CPU another pinned VM holds is refused.
   */
  private async placeCpus(spec: VmSpec, aff: CpuAffinity, pid: number, qmp: QmpClient, app: { uuid: string; name: string }): Promise<VmCpuPlacement> {
    const held = new Map<number, string>();
    for (const other of this.vms.values())
      if (other.uuid !== spec.appUuid && other.record.cpus?.pinned) for (const c of other.record.cpus.set) held.set(c, other.name);
    let set = aff.cpus;
    if (aff.pinned) {
      if (!set.length) {
        set = [...Array(this.host().cpus).keys()].filter((c) => !held.has(c)).slice(0, spec.vcpus);
        if (set.length < spec.vcpus)
          throw new VmError("insufficient-resources", app, `refused: pin_cpu needs ${spec.vcpus} host CPU(s) of its own; ${set.length} are not held by other pinned VMs`);
      }
      const taken = set.filter((c) => held.has(c));
      if (taken.length)
        throw new VmError("insufficient-resources", app, `refused: pin_cpu: CPU ${taken.map((c) => `${c} (app "${held.get(c)}")`).join(", ")} is already dedicated to another pinned VM`);
    }
    const list = cpuListText(set);
    const all = await run(["taskset", "-a", "-p", "-c", list, String(pid)], { timeoutMs: 10_000 });
    if (all.code !== 0) throw new VmError("start-failed", app, `taskset -a -p -c ${list} ${pid} failed: ${(all.stderr || all.stdout).trim()}`);
    const vcpus: VmCpuPlacement["vcpus"] = [];
    if (aff.pinned) {
      const threads = await qmp.execute<{ "cpu-index": number; "thread-id": number }[]>("query-cpus-fast");
      for (const t of [...threads].sort((a, b) => a["cpu-index"] - b["cpu-index"])) {
        const cpu = set[t["cpu-index"] % set.length]!;
        const r = await run(["taskset", "-p", "-c", String(cpu), String(t["thread-id"])], { timeoutMs: 10_000 });
        if (r.code !== 0) throw new VmError("start-failed", app, `taskset -p -c ${cpu} ${t["thread-id"]} (vCPU ${t["cpu-index"]}) failed: ${(r.stderr || r.stdout).trim()}`);
        vcpus.push({ vcpu: t["cpu-index"], thread: t["thread-id"], cpu });
      }
    }
    this.log.info(`app "${spec.name}" (${spec.appUuid}): QEMU on host CPUs ${list}${aff.pinned ? `, vCPUs pinned ${vcpus.map((v) => `${v.vcpu}→${v.cpu}`).join(" ")}` : ""}`);
    return { set, pinned: aff.pinned, vcpus };
  }

  /** QEMU's own count of the guest's memory (QMP `query-memory-size-summary`): boot memory and plugged DIMMs. */
  async memorySize(uuid: string): Promise<{ baseKiB: number; pluggedKiB: number }> {
    const vm = this.vms.get(uuid);
    if (!vm?.qmp) throw new VmError("not-running", { uuid }, "no memory size: this VM is not running");
    const r = await vm.qmp.execute<{ "base-memory": number; "plugged-memory"?: number }>("query-memory-size-summary");
    return { baseKiB: r["base-memory"] / 1024, pluggedKiB: (r["plugged-memory"] ?? 0) / 1024 };
  }

  /** The host's Windows license ACPI tables (EVE's MSDM and SLIC), those it has. */
  licenseTables(): string[] {
    return LICENSE_TABLES.map((t) => join(this.acpiTablesDir, t)).filter((f) => existsSync(f));
  }

  /** The VMs this runtime manages (started or adopted) and still running. */
  list(): RunningVmInfo[] {
    return [...this.vms.values()].map((vm) => {
      const r = vm.record;
      return {
        appUuid: vm.uuid,
        name: vm.name,
        pid: vm.pid,
        specHash: r.specHash,
        memoryHash: vmSpecHash(r.spec, { memory: false }),
        memory: {
          kib: r.spec.memoryKiB,
          ...(r.spec.maxMemoryKiB ? { maxKiB: r.spec.maxMemoryKiB, pluggedKiB: (r.plugged ?? []).reduce((n, p) => n + p.kib, 0), freeSlots: MEMORY_SLOTS - (r.plugged ?? []).length } : {}),
        },
        accelerator: r.accelerator,
        acceleratorReason: r.acceleratorReason ?? null,
        startedAt: r.startedAt,
        ...(r.cpus ? { cpus: r.cpus } : {}),
        ...(r.notApplied ? { notApplied: r.notApplied } : {}),
        ...(r.memoryLimit ? { memoryLimit: r.memoryLimit } : {}),
      };
    });
  }

  /**
   * Memory into a running guest, up to its hot-plug headroom (`maxMemoryKiB`): one DIMM of the difference
   * (QMP `object-add` memory-backend-ram + `device_add` pc-dimm), its memory limit moved with it. Refused
   * (`invalid-spec`, nothing changed) when it would lower the memory, exceed the headroom, use a slot that is not
   * free, or is not a whole number of 2 MiB (QEMU's DIMM alignment): those need a restart. The spec kept for
   * adoption has the new size, so the VM's spec hash is that of a spec asking this much memory.
   */
  plugMemory(uuid: string, memoryKiB: number): Promise<{ pluggedKiB: number; memoryKiB: number }> {
    return this.locked(uuid, async () => {
      const vm = this.vms.get(uuid);
      if (!vm) throw new VmError("not-running", { uuid }, "cannot plug memory: this VM is not running");
      const app = { uuid, name: vm.name };
      const r = vm.record;
      const why = memoryPlugProblem(r.spec, memoryKiB, MEMORY_SLOTS - (r.plugged ?? []).length);
      if (why) throw new VmError("invalid-spec", app, `refused: ${why}`);
      const kib = memoryKiB - r.spec.memoryKiB;
      if (kib === 0) return { pluggedKiB: 0, memoryKiB };
      const host = this.host();
      if (kib > host.memAvailableKiB)
        throw new VmError("insufficient-resources", app, `refused: plugging ${kib} KiB (${Math.round(kib / 1024)} MiB) is more than this host has available (${Math.round(host.memAvailableKiB / 1024)} MiB)`);
      const n = (r.plugged ?? []).reduce((m, p) => Math.max(m, Number(p.id.replace(/\D/g, "")) + 1), 0);
      const id = `dimm${n}`;
      const before = r.memoryLimit ? { ...r.memoryLimit } : null;
      if (r.memoryLimit) {
        // Raised before the guest gets the memory: its pages are charged as it uses them.
        const bytes = (memoryKiB + (r.spec.vmmOverheadKiB ?? 0)) * 1024;
        const limit = this.cgroups?.setMemoryLimit(uuid, bytes);
        if (limit && "file" in limit) r.memoryLimit = { bytes, file: limit.file };
      }
      try {
        await vm.qmp!.execute("object-add", { "qom-type": "memory-backend-ram", id: `mem-${id}`, size: kib * 1024 });
        await vm.qmp!.execute("device_add", { driver: "pc-dimm", id, memdev: `mem-${id}` });
      } catch (err) {
        await vm.qmp!.execute("object-del", { id: `mem-${id}` }).catch(() => {});
        if (before && r.memoryLimit) {
          this.cgroups?.setMemoryLimit(uuid, before.bytes);
          r.memoryLimit = before;
        }
        throw new VmError("start-failed", app, `plugging ${kib} KiB of memory failed: ${(err as Error).message}`);
      }
      r.plugged = [...(r.plugged ?? []), { id, kib }];
      r.spec = { ...r.spec, memoryKiB };
      r.specHash = vmSpecHash(r.spec);
      writeFileSync(vm.paths.spec, JSON.stringify(r, null, 2), { mode: 0o600 });
      this.log.info(`app "${vm.name}" (${uuid}): ${kib} KiB of memory plugged (${id}); the guest has ${memoryKiB} KiB`);
      return { pluggedKiB: kib, memoryKiB };
    });
  }

  /**
   * After a restart of evebox: takes over every VM whose QEMU still runs and answers on QMP, without touching
   * the guest. A run directory whose QEMU is gone is cleaned up (and logged with QEMU's last words). A QEMU of
   * ours that does not answer on QMP is left running and not adopted (logged; start() refuses its uuid with the
   * reason, kill() ends it); a later adopt() tries again.
   */
  async adopt(): Promise<AdoptedVm[]> {
    this.assertOpen();
    const root = `${this.runDir}/vms`;
    let uuids: string[] = [];
    try {
      uuids = readdirSync(root);
    } catch {}
    const adopted: AdoptedVm[] = [];
    for (const uuid of uuids) {
      if (this.vms.has(uuid)) continue;
      const vm = await this.locked(uuid, () => this.adoptOne(uuid));
      if (vm) adopted.push(vm);
    }
    await this.cgroups?.sweep(new Set(this.vms.keys()));
    return adopted;
  }

  private async adoptOne(uuid: string): Promise<AdoptedVm | null> {
    const paths = vmPaths(this.runDir, uuid);
    const pid = readPid(paths.pidfile);
    let record: RunRecord | null = null;
    try {
      record = JSON.parse(readFileSync(paths.spec, "utf8")) as RunRecord;
    } catch {}
    const label = record ? `app "${record.spec.name}" (${uuid})` : `VM ${uuid}`;
    if (pid === null || !isOurQemu(pid, uuid)) {
      this.log.warn(`${label}: its QEMU is gone (found stopped at adoption)${tailSuffix(paths.log)}`);
      this.cgroups?.killAll(uuid);
      await this.cgroups?.remove(uuid, 3000);
      await rm(paths.dir, { recursive: true, force: true });
      return null;
    }
    let qmp: QmpClient | null = null;
    const serial = this.bridge(paths, "serial");
    const virtio = this.bridge(paths, "virtio");
    try {
      if (!record) throw new Error(`${paths.spec} is missing or unreadable`);
      qmp = await QmpClient.connect(paths.qmp, { timeoutMs: 3000 });
      serial.seed(fileTail(paths.serialLog, this.ringBytes));
      await serial.connect(3000);
      await virtio.connect(3000);
    } catch (err) {
      qmp?.close();
      serial.close();
      virtio.close();
      // Never kill a guest for this: its monitor may be held by another client (a second evebox on the same
      // run directory, a debugging session). It stays running; start() refuses its uuid and kill() can end it.
      const why = (err as Error).message;
      this.unmanageable.set(uuid, why);
      this.log.warn(`${label}: QEMU pid ${pid} runs but cannot be managed (${why}); left running, not adopted`);
      return null;
    }
    this.unmanageable.delete(uuid);
    const vm = this.register(record.spec, record, paths, pid, null, qmp, serial, virtio);
    const status = await this.status(uuid);
    this.log.info(`${label}: adopted QEMU pid ${pid} (${status.qmpStatus ?? "status unknown"})`);
    return {
      appUuid: uuid,
      name: vm.name,
      pid,
      state: status.state,
      accelerator: status.accelerator ?? record.accelerator,
      spec: record.spec,
      specHash: record.specHash,
      startedAt: record.startedAt,
    };
  }

  // ---- exits

  /** Calls `onExit` once when this VM's QEMU is gone (after cleanup). Returns an unsubscribe function. */
  watch(uuid: string, onExit: (exit: VmExit) => void): () => void {
    const vm = this.vms.get(uuid);
    if (!vm) throw new VmError("not-running", { uuid }, "cannot watch: this VM is not running under this runtime");
    vm.watchers.add(onExit);
    return () => vm.watchers.delete(onExit);
  }

  /** Calls `listener` for every VM that goes away (whatever the reason). */
  onExit(listener: (exit: VmExit) => void): () => void {
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  private register(
    spec: VmSpec,
    record: RunRecord,
    paths: VmPaths,
    pid: number,
    child: Subprocess | null,
    qmp: QmpClient,
    serial: ConsoleBridge,
    virtio: ConsoleBridge,
  ): ManagedVm {
    let resolveGone!: (exit: VmExit) => void;
    const gone = new Promise<VmExit>((r) => (resolveGone = r));
    const vm: ManagedVm = {
      uuid: spec.appUuid,
      name: spec.name,
      record,
      paths,
      pid,
      child,
      qmp,
      serial,
      virtio,
      expecting: null,
      shutdownEvent: null,
      poll: null,
      gone,
      resolveGone,
      goneStarted: false,
      watchers: new Set(),
    };
    this.vms.set(vm.uuid, vm);
    this.listenQmp(vm, qmp);
    child?.exited.then(() => this.checkGone(vm));
    vm.poll = setInterval(() => void this.checkGone(vm), this.pollIntervalMs);
    vm.poll.unref?.();
    return vm;
  }

  private listenQmp(vm: ManagedVm, qmp: QmpClient): void {
    qmp.setHandlers({
      onEvent: (e: QmpEvent) => {
        if (e.event === "SHUTDOWN") vm.shutdownEvent = { guest: Boolean(e.data?.guest), reason: String(e.data?.reason ?? "") };
      },
      onClose: () => void this.checkGone(vm),
    });
    if (qmp.closed) void this.checkGone(vm);
  }

  /** Runs the exit path once QEMU is really gone: reason, log tail, cleanup, then the watchers. */
  private async checkGone(vm: ManagedVm): Promise<void> {
    if (vm.goneStarted || this.vms.get(vm.uuid) !== vm) return;
    if (vm.child ? vm.child.exitCode === null && vm.child.signalCode === null : isOurQemu(vm.pid, vm.uuid)) {
      // A closed QMP connection with QEMU still there: wait for the next poll, but try to reconnect.
      if (vm.qmp?.closed && !this.closed) this.reconnectQmp(vm);
      return;
    }
    vm.goneStarted = true;
    if (vm.poll) clearInterval(vm.poll);
    const exitCode = vm.child?.exitCode ?? null;
    const signal = vm.child?.signalCode != null ? String(vm.child.signalCode) : null;
    const reason: VmExit["reason"] =
      vm.expecting === "killed"
        ? "killed"
        : vm.expecting === "host-shutdown" || vm.shutdownEvent?.reason === "host-qmp-quit"
          ? "host-shutdown"
          : vm.shutdownEvent?.guest
            ? "guest-shutdown"
            : "crashed";
    const exit: VmExit = { appUuid: vm.uuid, name: vm.name, pid: vm.pid, exitCode, signal, reason, logTail: logTail(vm.paths.log) };
    vm.qmp?.close();
    vm.serial.close();
    vm.virtio.close();
    this.cgroups?.killAll(vm.uuid);
    if (this.cgroups && !(await this.cgroups.remove(vm.uuid, 3000)))
      this.log.warn(`app "${vm.name}" (${vm.uuid}): its cgroup ${this.cgroups.path(vm.uuid)} is not empty yet; adopt() removes it later`);
    await rm(vm.paths.dir, { recursive: true, force: true }).catch(() => {});
    this.vms.delete(vm.uuid);
    const msg = `app "${vm.name}" (${vm.uuid}): QEMU pid ${vm.pid} exited (${reason}${signal ? `, ${signal}` : exitCode !== null ? `, code ${exitCode}` : ""})`;
    if (reason === "crashed") this.log.warn(`${msg}${exit.logTail ? `\nQEMU said:\n${exit.logTail}` : ""}`);
    else this.log.info(msg);
    vm.resolveGone(exit);
    for (const w of [...vm.watchers, ...this.exitListeners]) {
      try {
        w(exit);
      } catch (err) {
        this.log.warn(`a VM exit listener failed: ${(err as Error).message}`);
      }
    }
  }

  private reconnecting = new Set<string>();
  private reconnectQmp(vm: ManagedVm): void {
    if (this.reconnecting.has(vm.uuid)) return;
    this.reconnecting.add(vm.uuid);
    QmpClient.connect(vm.paths.qmp, { timeoutMs: 2000 })
      .then((qmp) => {
        if (vm.goneStarted || this.closed) return qmp.close();
        vm.qmp = qmp;
        this.listenQmp(vm, qmp);
      })
      .catch(() => {})
      .finally(() => this.reconnecting.delete(vm.uuid));
  }

  // ---- consoles and stats

  /**
   * A console of a running VM: the recent output (`history`), live output (`readable`) and `write` for input.
   * Any number of viewers can be open at once; they share the one connection QEMU allows.
   */
  openConsole(uuid: string, port: ConsolePort = "serial"): VmConsole {
    const vm = this.vms.get(uuid);
    if (!vm) throw new VmError("not-running", { uuid }, "cannot open a console: this VM is not running");
    return (port === "serial" ? vm.serial : vm.virtio).open();
  }

  /** Resolves with the console text once `pattern` shows (history included); rejects after `timeoutMs`. */
  waitForConsole(uuid: string, pattern: string | RegExp, timeoutMs: number, port: ConsolePort = "serial"): Promise<string> {
    const vm = this.vms.get(uuid);
    if (!vm) return Promise.reject(new VmError("not-running", { uuid }, "cannot read the console: this VM is not running"));
    return (port === "serial" ? vm.serial : vm.virtio).waitFor(pattern, timeoutMs);
  }

  /** The firmware's log of a running VM (SeaBIOS: its boot attempts and why they failed); "" when none. */
  firmwareLog(uuid: string): string {
    const vm = this.vms.get(uuid);
    if (!vm) return "";
    return new TextDecoder().decode(fileTail(vm.paths.firmwareLog, 16 * 1024));
  }

  /** One sample of the VM's CPU time and memory; from its cgroup, or from /proc of the QEMU pid. */
  /** The VM's VNC unix socket, when it runs with a display (`remoteConsole`). */
  vncSocket(uuid: string): string | null {
    const path = vmPaths(this.runDir, uuid).vnc;
    return existsSync(path) ? path : null;
  }

  stats(uuid: string): VmStats {
    const vm = this.vms.get(uuid);
    if (!vm) throw new VmError("not-running", { uuid, name: undefined }, "no stats: this VM is not running");
    const cg = this.cgroups?.read(uuid) ?? null;
    const proc = procStats(vm.pid);
    const io = processIo(vm.pid);
    const network = vm.record.spec.nics.flatMap((n) => (n.kind === "tap" ? [tapCounters(n.ifname)] : []));
    const more = { diskReadBytes: io.readBytes, diskWriteBytes: io.writeBytes, network };
    if (cg) {
      return {
        appUuid: uuid,
        cpuUsageUsec: cg.cpuUsageUsec,
        memoryBytes: cg.memoryBytes ?? proc.rssBytes,
        source: cg.memoryBytes !== null ? "cgroup" : "proc",
        cgroup: this.cgroups!.path(uuid),
        ...more,
      };
    }
    return { appUuid: uuid, cpuUsageUsec: proc.cpuUsec, memoryBytes: proc.rssBytes, source: "proc", cgroup: null, ...more };
  }

  /**
   * Lets go of every VM without stopping any (QMP and console connections closed, polling stopped): what
   * evebox does when it exits. A new QemuRuntime adopts them.
   */
  close(): void {
    this.closed = true;
    for (const vm of this.vms.values()) {
      if (vm.poll) clearInterval(vm.poll);
      vm.goneStarted = true; // this runtime no longer reports on it
      vm.qmp?.close();
      vm.serial.close();
      vm.virtio.close();
    }
    this.vms.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("QemuRuntime: closed");
  }

  /** One lifecycle operation per VM at a time. */
  private locked<T>(uuid: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(uuid) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.then(
      () => {},
      () => {},
    );
    this.locks.set(uuid, settled);
    settled.then(() => {
      if (this.locks.get(uuid) === settled) this.locks.delete(uuid);
    });
    return next;
  }
}

function foldState(qmpStatus: string | null, alive: boolean): VmState {
  if (!alive) return "stopped";
  switch (qmpStatus) {
    case "running":
      return "running";
    case "shutdown":
    case "guest-panicked":
      return "shutdown";
    case null:
      return "running"; // alive but QMP did not answer
    default:
      return "paused"; // paused, prelaunch, suspended, inmigrate, …
  }
}

function readPidsOf(procs: string): number[] {
  try {
    return readFileSync(procs, "utf8").split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function readPid(pidfile: string): number | null {
  try {
    const pid = Number(readFileSync(pidfile, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Alive (not a zombie) and really our QEMU for this uuid, not a process that reused the pid. */
export function isOurQemu(pid: number, uuid: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    if (stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z") return false;
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(`\0-uuid\0${uuid}\0`);
  } catch {
    return false;
  }
}

function procStats(pid: number): { cpuUsec: number; rssBytes: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks (100 Hz on Linux)
    const rss = Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)?.[1] ?? 0);
    return { cpuUsec: ticks * 10_000, rssBytes: rss * 1024 };
  } catch {
    return { cpuUsec: 0, rssBytes: 0 };
  }
}

/** A tap's counters from the guest's side: what the host side transmitted, the guest received. */
function tapCounters(ifname: string): { name: string; rxBytes: number; txBytes: number } {
  const read = (f: string) => {
    try {
      return Number(readFileSync(`/sys/class/net/${ifname}/statistics/${f}`, "utf8"));
    } catch {
      return 0;
    }
  };
  return { name: ifname, rxBytes: read("tx_bytes"), txBytes: read("rx_bytes") };
}

function fileTail(path: string, bytes: number): Uint8Array {
  try {
    const size = statSync(path).size;
    const fd = openSync(path, "r");
    try {
      const len = Math.min(size, bytes);
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, size - len);
      return new Uint8Array(buf);
    } finally {
      closeSync(fd);
    }
  } catch {
    return new Uint8Array();
  }
}

/** The last lines QEMU wrote (stderr and stdout share the file). */
export function logTail(path: string, lines = 20): string {
  const text = new TextDecoder().decode(fileTail(path, 8192));
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

function tailSuffix(path: string): string {
  const tail = logTail(path, 10);
  return tail ? `; QEMU said:\n${tail}` : "";
}

/** Resolves with the value, or undefined after `ms`. */
async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: Timer | undefined;
  const t = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)));
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}
