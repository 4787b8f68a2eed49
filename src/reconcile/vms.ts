// VM apps as a workload kind: the VM a desired app asks for (`desiredVms`), the steps that bring the running
// QEMUs there (pure), the state each VM app shows (`vmAppState`), and `VmWorkload`, which runs those steps on the
// QEMU runtime (runtime/vms: adoption, exits, disks, consoles, samples): the only caller of QEMU in reconcile/.
import { join } from "node:path";
import type { AppModel } from "../config/model.ts";
import type { GlobalSettings } from "../config/settings.ts";
import { type EffectiveBootOrder, effectiveBootOrder } from "../config/boot-order.ts";
import { hasDevices } from "../hardware/types.ts";
import {
  type Accelerator,
  type DiskFormat,
  type DiskSpec,
  type FirmwareMode,
  diskFormatOfContentTree,
  type QemuRuntime,
  vmResourcesOf,
  type NicSpec,
  type CpuAffinity,
  memoryPlugProblem,
  parseCpuList,
  type VmCpuPlacement,
  type VmExit,
  type VmSpec,
  vmSpecHash,
  VNC_BASE_PORT,
} from "../runtime/vms/index.ts";
import { systemClock } from "../lib/backoff.ts";
import type { NetworkManager } from "../network/manager.ts";
import type { PartStatus } from "../model/status.ts";
import { type TerminalSession, TerminalUnavailable } from "../model/terminal.ts";
import type { ContentCache } from "../storage/cache.ts";
import type { VolumeStore } from "../storage/volumes.ts";
import type { Store } from "../store/store.ts";
import type { AppSample } from "../telemetry/metrics.ts";
import type { AppLogCollector } from "./app-logs.ts";
import { connectVnc } from "./terminals.ts";
import type { DesiredApp, DesiredContentTree, DesiredState } from "./desired.ts";
import type { Observed } from "./observed.ts";
import type { PlannedStep, Step } from "./plan.ts";
import { CRASH_WINDOW_MS } from "./records.ts";
import {
  downloadContentTree,
  type ExecutorContext,
  type FetchProgress,
  type LoadedContentTree,
  noteStarted,
  type ObjectState,
  type Prepared,
  startDelayed,
  startDelayOver,
  volumeKey,
  waitingForTree,
  type Workload,
  type WorkloadHost,
  type WorkloadKind,
  type WorkloadNeeds,
} from "./workload.ts";


// ---- desired

export interface DesiredVmDisk {
  volumeUuid: string;
  generation: number;
  /** A content tree's image (an overlay over it, or itself for an ISO), or a blank disk. */
  source: { kind: "contentTree"; treeUuid: string; sha256: string; format: DiskFormat; cdrom: boolean } | { kind: "blank" };
  sizeBytes: number;
  /** The file QEMU opens: the volume's qcow2 (overlay or blank), or the verified ISO itself. */
  path: string;
}

export interface DesiredVm {
  uuid: string;
  name: string;
  disks: DesiredVmDisk[];
  spec: VmSpec;
  /** `vmSpecHash(spec)`: a running VM with another hash is restarted with the new spec. */
  specHash: string;
  /** Why this VM cannot run as configured. */
  error: string | null;
  /** Why it cannot be started yet (its NICs are not known): nothing is started, and a running one is left alone. */
  waiting?: string;
  /** VmConfig fields the config sets that this VM runs without, each with why (shown in the app's status). */
  notApplied?: string[];
  /** The effective USB boot order and who set it (EVE: LPS, controller, device property), as the LPS is told. */
  bootOrder: EffectiveBootOrder;
  /** The app interface of each NIC of `spec.nics` (in order), when they are not in config order (interface_order). */
  nicInterfaces?: number[];
  /** EVE's disableLogs: the guest's serial console is not collected as the app's logs (live, no restart). */
  logsDisabled?: boolean;
}

export interface VmExtras {
  maxVcpus?: number;
  mode?: FirmwareMode;
  maxMemoryKiB?: number;
  cpuAffinity?: CpuAffinity;
  vmmOverheadKiB?: number;
  vncTcp?: { display: number; password: string };
  oemLicenseTables?: boolean;
  logsDisabled?: boolean;
  /** VmConfig fields that cannot run as given (an object error of the app). */
  errors: string[];
  notApplied: string[];
}

/**
 * What of VmConfig beyond memory, vCPUs, mode and VNC QEMU applies here: `maxcpus` (hot-pluggable vCPUs),
 * `boot_mode` (UEFI or legacy BIOS, over the virtualization mode's), `maxmem` above `memory` (memory hot-plug
 * headroom), `cpus` (the host CPUs of every QEMU thread) and `pin_cpu` (each vCPU on a host CPU of its own, from
 * `cpus` or picked at start), `vmm_maxmem` (QEMU's memory limit: memory + this, the global
 * `memory.vmm.limit.MiB` first, as EVE), `vncDisplay`/`vncPasswd` (VNC on TCP 5900 + display, only with
 * `app.allow.vnc` and a password), `enable_oem_win_license_key` (the host's license ACPI tables), `disableLogs`.
 * The rest is reported, not silently dropped.
 */
export function vmExtrasOf(r: AppModel["resources"], settings?: Pick<GlobalSettings, "appAllowVnc" | "vmmMemoryLimitMiB">): VmExtras {
  const x = r.vm;
  const notApplied: string[] = [];
  const out: VmExtras = { errors: [], notApplied };
  if (x.maxCpus > Math.max(1, r.vcpus)) out.maxVcpus = x.maxCpus;
  if (x.bootMode === "VM_BOOT_MODE_UEFI") out.mode = "uefi";
  else if (x.bootMode === "VM_BOOT_MODE_LEGACY") out.mode = "legacy-bios";
  if (r.cpuPinning || x.pinCpu) {
    const cpus = r.cpuPinning ? parseCpuList(r.cpuPinning) : [];
    if (typeof cpus === "string") out.errors.push(`fixedresources.cpus: ${cpus}`);
    else out.cpuAffinity = { cpus, pinned: x.pinCpu };
  }
  if (r.maxMemKiB > r.memoryKiB) out.maxMemoryKiB = r.maxMemKiB;
  // EVE: the device's memory.vmm.limit.MiB over the app's vmm_maxmem (KiB); neither: no limit (accounting only).
  const vmm = settings?.vmmMemoryLimitMiB ? settings.vmmMemoryLimitMiB * 1024 : x.vmmMaxMemKiB;
  if (vmm) out.vmmOverheadKiB = vmm;
  if (x.vncDisplay || x.vncPasswd) {
    const what = `vncDisplay/vncPasswd (TCP port ${VNC_BASE_PORT + x.vncDisplay})`;
    if (!r.remoteConsole) notApplied.push(`${what}: VNC is off (enable_vnc / remoteConsole)`);
    else if (!settings?.appAllowVnc) notApplied.push(`${what}: app.allow.vnc is false, so VNC is served only through the console (a unix socket)`);
    else if (!x.vncPasswd) notApplied.push(`${what}: evebox opens no VNC port without a password (vncPasswd); VNC is served only through the console`);
    else out.vncTcp = { display: x.vncDisplay, password: x.vncPasswd };
  }
  if (x.oemWinLicenseKey) out.oemLicenseTables = true;
  if (x.disableLogs) out.logsDisabled = true;
  for (const f of x.set) notApplied.push(`${f}: not used by evebox's VM runtime`);
  return out;
}

/** EVE's network adapter types (PhyIoType.IsNet): directly attached NICs. */
const NET_ADAPTERS = new Set(["PhyIoNetEth", "PhyIoNetWLAN", "PhyIoNetWWAN", "PhyIoNetEthPF", "PhyIoNetEthVF"]);

/**
 * EVE's enforce_network_interface_order: the virtual NICs in the order of their `interface_order` (QEMU gives
 * PCI slots in command-line order, and guests name NICs by slot). Every network interface, virtual or a directly
 * attached network adapter, must have an order of its own (EVE's check), else the app is in error. Directly
 * attached adapters keep their place after the virtual NICs: reported. Null order: config order.
 */
export function interfaceOrderOf(a: AppModel): { order: number[] | null; errors: string[]; notApplied: string[] } {
  const out = { order: null as number[] | null, errors: [] as string[], notApplied: [] as string[] };
  if (!a.resources.vm.enforceInterfaceOrder) return out;
  const seen = new Map<number, string>();
  const claim = (order: number, what: string) => {
    const other = seen.get(order);
    if (other) out.errors.push(`enforce_network_interface_order: ${what} has the same interface_order (${order}) as ${other}`);
    else seen.set(order, what);
  };
  a.interfaces.forEach((ifc) => claim(ifc.order, `interfaces[${ifc.index}] (${ifc.name})`));
  const nets = a.adapters.map((ad, j) => ({ ad, j })).filter(({ ad }) => NET_ADAPTERS.has(ad.type));
  for (const { ad, j } of nets) claim(ad.order, `adapters[${j}] (${ad.name})`);
  if (nets.length) out.notApplied.push(`enforce_network_interface_order: directly attached network adapters (${nets.map(({ ad }) => ad.name).join(", ")}) follow the virtual NICs, whatever their interface_order`);
  out.order = a.interfaces.map((ifc) => ifc.index).sort((x, y) => a.interfaces[x]!.order - a.interfaces[y]!.order);
  return out;
}

/** Where VM disks live: in the volume's directory (`VolumeStore`), or the content cache for an ISO. */
export interface VmDiskPaths {
  volumeDir(uuid: string, generation: number): string;
  blob(sha256: string): string;
}

export const VM_DISK_FILE = "disk.qcow2";

/**
 * The NIC of interface `index` of a VM app: a tap on its network instance's bridge, `null` when the interface is
 * on no network instance (then user-mode networking), `undefined` while the device's networks are not known yet.
 */
export type VmNicOf = (appUuid: string, index: number) => Extract<NicSpec, { kind: "tap" }> | null | undefined;

/**
 * The VM of each VM app, read the way EVE's pillar reads it: every volume is a disk in config order (a
 * content tree's image becomes a qcow2 overlay grown to the volume's `maxsizebytes`, an ISO is a CD-ROM,
 * a blank volume a new qcow2); `fixedresources.memory` is KiB; FML → UEFI, otherwise BIOS; `userData`
 * is cloud-init user-data (NoCloud); `remoteConsole` → VNC; one NIC per interface: a tap on its network
 * instance's bridge (`nicOf`, from network/), user-mode networking without network instances.
 */
export function desiredVms(desired: DesiredState, paths: VmDiskPaths, nicOf?: VmNicOf): Map<string, DesiredVm> {
  const out = new Map<string, DesiredVm>();
  const model = new Map(desired.model.apps.map((a) => [a.uuid, a]));
  const modelVolumes = new Map(desired.model.volumes.map((v) => [v.uuid, v]));
  const volumes = new Map(desired.volumes.map((v) => [v.uuid, v]));
  const trees = new Map(desired.contentTrees.map((t) => [t.uuid, t]));
  for (const app of desired.apps) {
    if (app.kind !== "vm") continue;
    const a = model.get(app.uuid);
    if (!a) continue;
    const errors: string[] = [];
    const r = a.resources;
    const res = vmResourcesOf({ memory: r.memoryKiB, vcpus: r.vcpus, virtualizationMode: r.virtualizationMode }, r.remoteConsole);
    const extras = vmExtrasOf(r, desired.model.settings);
    const boot = effectiveBootOrder(a, desired.model.settings, desired.lpsBootOrders?.get(app.uuid));
    if (extras.mode) res.mode = extras.mode;
    errors.push(...extras.errors);
    if (!res.memoryKiB) errors.push("fixedresources.memory: a VM needs its memory (in KiB)");
    const disks: DesiredVmDisk[] = [];
    a.volumeRefs.forEach((ref, i) => {
      const vol = volumes.get(ref.uuid);
      if (!vol) return; // a missing reference is already an error from validation
      const dir = paths.volumeDir(vol.uuid, vol.generation);
      if (vol.origin === "blank") {
        if (!vol.sizeBytes) errors.push(`volumeRefList[${i}]: blank volume ${vol.name || vol.uuid} needs maxsizebytes to be a VM disk`);
        disks.push({ volumeUuid: vol.uuid, generation: vol.generation, source: { kind: "blank" }, sizeBytes: vol.sizeBytes, path: join(dir, VM_DISK_FILE) });
        return;
      }
      const tree = vol.contentTreeId ? trees.get(vol.contentTreeId) : undefined;
      if (!tree) return;
      const fmt = diskFormatOfContentTree(tree.format);
      if (!fmt) {
        errors.push(`volumeRefList[${i}]: content tree ${tree.name} is ${tree.format}, not a VM disk format (RAW, QCOW, QCOW2, VHD, VMDK, VHDX, ISO)`);
        return;
      }
      if (tree.source.kind !== "http" || !tree.sha256) {
        errors.push(`volumeRefList[${i}]: content tree ${tree.name}: a VM disk comes from an Http(s) datastore with its sha256`);
        return;
      }
      disks.push({
        volumeUuid: vol.uuid,
        generation: vol.generation,
        source: { kind: "contentTree", treeUuid: tree.uuid, sha256: tree.sha256, format: fmt.format, cdrom: fmt.cdrom },
        sizeBytes: vol.sizeBytes,
        path: fmt.cdrom ? paths.blob(tree.sha256) : join(dir, VM_DISK_FILE),
      });
    });
    const diskSpecs: DiskSpec[] = disks.map((d) =>
      d.source.kind === "contentTree" && d.source.cdrom
        ? { path: d.path, format: "raw", readOnly: true, cdrom: true }
        : { path: d.path, format: "qcow2", readOnly: !!modelVolumes.get(d.volumeUuid)?.readOnly },
    );
    // Encrypted user data (cipherData) once opened; until then the app is in error (desired.ts) and has none.
    const opened = a.cipher ? desired.secrets?.apps.get(a.uuid) : undefined;
    const userData = (a.cipher ? (opened?.ok ? opened.value.text : null) : a.userData.text) ?? undefined;
    const first = disks[0];
    let waiting: string | undefined;
    const nicOrder = interfaceOrderOf(a);
    errors.push(...nicOrder.errors);
    const nics: NicSpec[] = (nicOrder.order ?? a.interfaces.map((_, i) => i)).map((i) => {
      const tap = nicOf?.(app.uuid, i);
      if (tap === undefined && nicOf) waiting = "waiting for the device's networking to be observed";
      return tap ?? { kind: "user" as const };
    });
    const spec: VmSpec = {
      appUuid: app.uuid,
      name: app.name,
      memoryKiB: res.memoryKiB,
      vcpus: res.vcpus,
      ...(extras.maxVcpus ? { maxVcpus: extras.maxVcpus } : {}),
      ...(extras.maxMemoryKiB ? { maxMemoryKiB: extras.maxMemoryKiB } : {}),
      ...(extras.cpuAffinity ? { cpuAffinity: extras.cpuAffinity } : {}),
      ...(boot.order ? { bootOrder: boot.order } : {}),
      mode: res.mode,
      disks: diskSpecs,
      ...(userData !== undefined ? { cloudInitUserData: userData } : {}),
      nics,
      remoteConsole: res.remoteConsole,
      ...(extras.vncTcp ? { vncTcp: extras.vncTcp } : {}),
      ...(extras.vmmOverheadKiB ? { vmmOverheadKiB: extras.vmmOverheadKiB } : {}),
      ...(extras.oemLicenseTables ? { oemLicenseTables: true } : {}),
      // UEFI boot entries belong with the app's disks: they survive a reboot of the device.
      ...(res.mode === "uefi" && first ? { firmwareVarsPath: join(paths.volumeDir(first.volumeUuid, first.generation), "OVMF_VARS.fd") } : {}),
      ...(hasDevices(app.devices)
        ? { passthrough: { serial: app.devices.serial.map((s) => s.hostPath), usb: app.devices.usb.map((u) => u.ref), pci: app.devices.pci.map((p) => p.address) } }
        : {}),
    };
    out.set(app.uuid, { uuid: app.uuid, name: app.name, disks, spec, specHash: vmSpecHash(spec), bootOrder: boot, ...(nicOrder.order ? { nicInterfaces: nicOrder.order } : {}), ...(extras.logsDisabled ? { logsDisabled: true } : {}), error: errors.length ? errors.join("; ") : null, ...(waiting ? { waiting } : {}), ...(extras.notApplied.length + nicOrder.notApplied.length ? { notApplied: [...extras.notApplied, ...nicOrder.notApplied] } : {}) });
  }
  return out;
}

// ---- observed

export interface RunningVm {
  appUuid: string;
  name: string;
  pid: number;
  specHash: string;
  accelerator: Accelerator;
  /** Why it runs under TCG (null under KVM). */
  acceleratorReason?: string | null;
  startedAt: string;
  /** Where its threads run (VmConfig cpus / pin_cpu applied). */
  cpus?: VmCpuPlacement;
  /** Its spec's hash without memory (`vmSpecHash(spec, {memory: false})`) and its memory now: a change of memory alone may be plugged live. */
  memoryHash?: string;
  memory?: { kib: number; maxKiB?: number; pluggedKiB?: number; freeSlots?: number };
  /** What of its spec it runs without on this host, each with why (the runtime's; shown with the config's). */
  notApplied?: string[];
  /** Its cgroup's memory limit (vmm_maxmem applied). */
  memoryLimit?: { bytes: number; file: string };
}

/** How a VM's QEMU last ended when nobody asked it to (kept in the store, shown in the app's state). */
export interface VmExitRecord {
  reason: VmExit["reason"];
  at: number;
  ranMs: number;
  detail: string;
}

export interface ObservedVms {
  running: Map<string, RunningVm>;
  lastExits: Map<string, VmExitRecord>;
  /** Why VMs cannot run on this device at all (no QEMU), if so. */
  unavailable: string | null;
}

// ---- plan (pure)

export type VmStep =
  | {
      kind: "startVm";
      app: DesiredApp;
      vm: DesiredVm;
      reason: "first start" | "restart command" | "supervised restart" | "the app's spec changed" | "purge" | "start command";
      /** With "the app's spec changed": why the change needs a restart, when that is not plain (memory). */
      why?: string;
    }
  | { kind: "stopVm"; appUuid: string; name: string; reason: string }
  /** More memory into the running guest (within its maxmem headroom), no restart. */
  | { kind: "plugVmMemory"; app: DesiredApp; vm: DesiredVm; fromKiB: number };

const STEPS = ["startVm", "stopVm", "plugVmMemory"] as const satisfies readonly VmStep["kind"][];

/** The VM apps that can run here: `desired.vms` and `observed.vms` are set when the reconciler runs VMs. */
function vmApps(desired: DesiredState, observed: Observed): DesiredApp[] {
  const vms = desired.vms;
  if (!vms || !observed.vms || observed.vms.unavailable) return [];
  return desired.apps.filter((a) => a.kind === "vm" && !a.error && !vms.get(a.uuid)?.error);
}

function needs(desired: DesiredState, observed: Observed): WorkloadNeeds {
  const apps = vmApps(desired, observed);
  const disks = (a: DesiredApp) => desired.vms!.get(a.uuid)!.disks;
  return {
    // Only the disks of VMs that are to run are fetched (not those of a halted app, activate false).
    contentTrees: apps.filter((a) => a.activate).flatMap((a) => disks(a).flatMap((d) => (d.source.kind === "contentTree" ? [d.source.treeUuid] : []))),
    volumes: apps.flatMap((a) => disks(a).map((d) => ({ uuid: d.volumeUuid, generation: d.generation }))),
  };
}

function planVms(desired: DesiredState, observed: Observed, prepared: Prepared): PlannedStep[] {
  const out: PlannedStep[] = [];
  const vms = desired.vms;
  const obs = observed.vms;
  if (!vms || !obs) return out;
  const add = (phase: PlannedStep["phase"], lane: string, step: Step, needs: string[] = []) => out.push({ phase, lane, needs, step });
  const now = observed.now;

  // ---- phase 0: VMs nobody wants
  const byUuid = new Map(desired.apps.map((a) => [a.uuid, a]));
  for (const vm of obs.running.values()) {
    const app = byUuid.get(vm.appUuid);
    if (!app || app.kind !== "vm") add(0, `app:${vm.appUuid}`, { kind: "stopVm", appUuid: vm.appUuid, name: vm.name, reason: app ? "the app is no longer a VM app" : "the app was removed from the config" });
    else if (app.error || vms.get(app.uuid)?.error) add(0, `app:${vm.appUuid}`, { kind: "stopVm", appUuid: vm.appUuid, name: vm.name, reason: "the app's config is in error" });
  }

  // ---- phase 1: one lane per VM app
  for (const app of vmApps(desired, observed)) {
    const vm = vms.get(app.uuid)!;
    if (vm.waiting) continue;
    const lane = `app:${app.uuid}`;
    const needs = vm.disks.map((d) => `vol:${volumeKey(d.volumeUuid, d.generation)}`);
    const ready = vm.disks.every((d) => d.source.kind === "blank" || prepared.treeReady(d.source.treeUuid));
    const rec = observed.apps.get(app.uuid);
    const running = obs.running.get(app.uuid);
    if (!rec) add(1, lane, { kind: "recordCounters", app });
    const restartPending = app.restartCounter > (rec?.restartApplied ?? app.restartCounter);
    const purgePending = app.purgeCounter > (rec?.purgeApplied ?? app.purgeCounter);
    const retryBlocked = !!rec && rec.error !== null && rec.nextRetryAt > now;
    const stop = (reason: string) => running && add(1, lane, { kind: "stopVm", appUuid: app.uuid, name: app.name, reason }, needs);

    if (purgePending) {
      if (!ready) continue;
      stop("purge");
      add(1, lane, { kind: "purgeVolumes", app }, needs);
      if (app.activate) add(1, lane, { kind: "startVm", app, vm, reason: "purge" }, needs);
      add(1, lane, { kind: "recordCounters", app }, needs);
      continue;
    }
    if (!app.activate) {
      stop("halted (activate is false)");
      if (restartPending) add(1, lane, { kind: "recordCounters", app });
      continue;
    }
    if (running) {
      if (running.specHash !== vm.specHash) {
        // Only memory changed: raised within the headroom it was started with, it is plugged into the guest. Raised
        // to exactly that headroom, the config has none left (maxmem = memory): the same VM as far as QEMU goes.
        const max = running.memory?.maxKiB;
        const live = !vm.spec.maxMemoryKiB && max && vm.spec.memoryKiB === max ? { ...vm.spec, maxMemoryKiB: max } : vm.spec;
        const memoryOnly = !!running.memory && running.memoryHash === vmSpecHash(live, { memory: false });
        if (memoryOnly && running.memory!.kib === vm.spec.memoryKiB && !restartPending) continue;
        const why = memoryOnly ? memoryPlugProblem({ ...vm.spec, memoryKiB: running.memory!.kib, maxMemoryKiB: running.memory!.maxKiB }, vm.spec.memoryKiB, running.memory!.freeSlots ?? 0) : null;
        if (memoryOnly && !why && !restartPending) {
          // A plug that failed is tried again after the app's backoff, not on every pass.
          if (!retryBlocked) add(1, lane, { kind: "plugVmMemory", app, vm, fromKiB: running.memory!.kib });
          continue;
        }
        if (!ready) continue;
        stop("the app's spec changed");
        add(1, lane, { kind: "startVm", app, vm, reason: "the app's spec changed", ...(why ? { why: `${why}: it needs a restart` } : {}) }, needs);
        if (restartPending) add(1, lane, { kind: "recordCounters", app }, needs);
      } else if (restartPending) {
        stop("restart command");
        add(1, lane, { kind: "startVm", app, vm, reason: "restart command" }, needs);
        add(1, lane, { kind: "recordCounters", app }, needs);
      }
      continue;
    }
    // Not running and should be.
    if (!ready) continue;
    if (restartPending) {
      add(1, lane, { kind: "startVm", app, vm, reason: "restart command" }, needs);
      add(1, lane, { kind: "recordCounters", app }, needs);
    } else if (!retryBlocked && (rec?.nextStartAt ?? 0) <= now && startDelayOver(app, observed)) {
      add(1, lane, { kind: "startVm", app, vm, reason: rec && rec.crashes > 0 ? "supervised restart" : "first start" }, needs);
    }
  }
  return out;
}

function describe(s: Step): string {
  if (s.kind === "startVm") return `start VM ${s.app.name} (${s.reason}${s.why ? `: ${s.why}` : ""})`;
  if (s.kind === "plugVmMemory") return `plug memory into VM ${s.app.name} (${Math.round(s.fromKiB / 1024)} → ${Math.round(s.vm.spec.memoryKiB / 1024)} MiB, no restart)`;
  if (s.kind === "stopVm") return `stop VM ${s.name} (${s.reason})`;
  return s.kind;
}

// ---- state

/** Below this, the exit says how soon after its start the VM ended. */
const QUICK_EXIT_MS = CRASH_WINDOW_MS;

/** The state of a VM app, from its VM, its content trees and its record; null when `observed` has no VM view. */
export function vmAppState(app: DesiredApp, desired: DesiredState, observed: Observed): ObjectState | null {
  const obs = observed.vms;
  const vm = desired.vms?.get(app.uuid);
  if (!obs || !vm) return null;
  const data: Record<string, unknown> = {
    kind: app.kind,
    activate: app.activate,
    version: app.version,
    remoteConsole: vm.spec.remoteConsole,
    ...(vm.spec.vncTcp ? { vncPort: VNC_BASE_PORT + vm.spec.vncTcp.display } : {}),
    ...(vm.logsDisabled ? { logs: "not collected (disableLogs)" } : {}),
    ...(vm.notApplied ? { notApplied: vm.notApplied } : {}),
    ...(vm.bootOrder.order ? { bootOrder: vm.bootOrder } : {}),
  };
  if (obs.unavailable) return { state: "INITIAL", error: `VMs cannot run on this device: ${obs.unavailable}`, data };
  if (vm.error) return { state: "INITIAL", error: vm.error, data };
  const rec = observed.apps.get(app.uuid);
  const running = obs.running.get(app.uuid);
  if (vm.waiting && !running) return { state: "INITIAL", error: null, data: { ...data, waiting: vm.waiting } };
  if (running) {
    Object.assign(data, { accelerator: running.accelerator, acceleratorReason: running.acceleratorReason ?? null, pid: running.pid, startedAt: running.startedAt, restarts: rec?.crashes ?? 0 });
    if (running.cpus) data.cpus = running.cpus;
    if (running.memory?.maxKiB) data.memory = { kib: running.memory.kib, pluggedKiB: running.memory.pluggedKiB ?? 0, maxKiB: running.memory.maxKiB };
    else if (vm.spec.maxMemoryKiB) data.memory = { kib: vm.spec.memoryKiB, maxKiB: vm.spec.maxMemoryKiB };
    if (running.memoryLimit) data.memoryLimitBytes = running.memoryLimit.bytes;
    if (running.notApplied) data.notApplied = [...((data.notApplied as string[] | undefined) ?? []), ...running.notApplied];
    if (!app.activate) return { state: "HALTING", error: null, data };
    return { state: "RUNNING", error: rec?.error ?? null, data };
  }
  for (const d of vm.disks) {
    if (d.source.kind !== "contentTree") continue;
    const ct = observed.contentTrees.get(d.source.treeUuid);
    // A halted VM's disks are not fetched (see needs()): it is simply halted.
    if (!app.activate && (!ct || (ct.state === "INITIAL" && !ct.error))) return { state: "HALTED", error: null, data };
    if (!ct || ct.state !== "LOADED") return waitingForTree(d.source.treeUuid, desired, observed, data);
  }
  if (!app.activate) return { state: "HALTED", error: null, data };
  const exit = obs.lastExits.get(app.uuid);
  if (rec && rec.crashes > 0 && exit && !rec.error) {
    const next = rec.nextStartAt > observed.now ? `; restarting in ${Math.ceil((rec.nextStartAt - observed.now) / 1000)} s` : "; restarting";
    const quick = exit.ranMs < QUICK_EXIT_MS ? ` ${(exit.ranMs / 1000).toFixed(1)} s after start` : "";
    return { state: "BROKEN", error: `${exit.detail}${quick}${rec.crashes > 1 ? ` (${rec.crashes} times in a row)` : ""}${next}`, data: { ...data, restarts: rec.crashes } };
  }
  if (!startDelayOver(app, observed)) return startDelayed(app, observed, data);
  return { state: "BOOTING", error: rec?.error ?? null, data };
}

/** The VM kind's pure half (plan.ts plans with it; the workload below adds QEMU). */
export const VM_KIND: WorkloadKind = {
  kind: "vm",
  label: "VM",
  steps: STEPS,
  needs,
  plan: planVms,
  state: vmAppState,
  describe,
};

// ---- the runtime side

const VM_RECORD = "reconcile.vm";
/** How long after a start the firmware's log is watched for a boot that failed. */
const BOOT_WATCH_MS = 5 * 60_000;
const NO_BOOT = /No bootable device|Boot failed: could not read the boot disk\s*$|No bootable option or device was found/;

/** What the VM workload uses of the QEMU runtime (tests pass a stand-in). */
export type VmRuntime = Pick<
  QemuRuntime,
  | "available"
  | "adopt"
  | "probeAccelerator"
  | "acceleratorProbe"
  | "list"
  | "close"
  | "onExit"
  | "start"
  | "shutdown"
  | "kill"
  | "firmwareLog"
  | "createBlankDisk"
  | "prepareDisk"
  | "verifyDisk"
  | "openConsole"
  | "stats"
  | "vncSocket"
  | "plugMemory"
>;

export interface VmWorkloadOptions {
  runtime: VmRuntime;
  store: Store;
  volumes: VolumeStore;
  cache: ContentCache;
  log: (level: "info" | "warn" | "error", message: string) => void;
  /** PCI passthrough: functions bound to vfio-pci before a VM starts, given back to their drivers after it stops. */
  vfio?: VfioControl;
}

/** How the VM workload hands PCI functions to vfio-pci and back (hardware/vfio.ts on the device's sysfs). */
export interface VfioControl {
  bind(addresses: string[]): Map<string, string | null>;
  release(original: ReadonlyMap<string, string | null>): void;
}

/**
 * VM apps on the QEMU runtime: adoption before the first plan, exits turned into crash accounting (restart with
 * the shared backoff, on the host's clock), the disks of a VM prepared before its start, consoles and samples.
 */
export class VmWorkload implements Workload {
  readonly kind = VM_KIND.kind;
  readonly label = VM_KIND.label;
  readonly steps = VM_KIND.steps;
  readonly needs = VM_KIND.needs;
  readonly plan = VM_KIND.plan;
  readonly state = VM_KIND.state;
  readonly describe = VM_KIND.describe;
  readonly runtime: VmRuntime;
  private host: WorkloadHost | null = null;
  private unavailable: string | null = null;
  private readonly bootWatches = new Map<string, ReturnType<typeof setInterval>>();
  private unsubscribe: (() => void) | null = null;
  /** VM apps whose console is not collected as logs (disableLogs), from the last desired state. */
  private logsDisabled = new Set<string>();
  /** When each VM we know of started: how long it ran, once it is gone. */
  private readonly startedAt = new Map<string, number>();

  constructor(private readonly o: VmWorkloadOptions) {
    this.runtime = o.runtime;
  }

  private now(): number {
    return (this.host?.records.clock ?? systemClock).now();
  }

  log(level: "info" | "warn" | "error", message: string): void {
    this.o.log(level, message);
  }

  /** Takes over the VMs a previous evebox started (never restarting one), then reports exits. */
  async start(host: WorkloadHost): Promise<void> {
    this.host = host;
    this.unsubscribe = this.runtime.onExit((e) => this.noteExit(e));
    this.unavailable = this.runtime.available();
    if (this.unavailable) return;
    try {
      const adopted = await this.runtime.adopt();
      for (const vm of adopted) this.o.log("info", `app "${vm.name}" (${vm.appUuid}): VM adopted (QEMU pid ${vm.pid}, ${vm.state}, ${vm.accelerator})`);
    } catch (e) {
      this.o.log("error", `VMs: adoption failed: ${(e as Error).message}`);
    }
    // Known before the first VM starts, and shown in the device's parts.
    void this.runtime.probeAccelerator().catch(() => undefined);
  }

  /** The `vms` part of the device's status: whether VMs can run, and on which accelerator. */
  part(): PartStatus {
    if (this.unavailable) return { name: "vms", state: "error", detail: this.unavailable };
    const probe = this.runtime.acceleratorProbe();
    const accel = !probe ? "accelerator not probed yet" : probe.accelerator === "kvm" ? "KVM" : `TCG, no hardware acceleration${probe.reason ? ` (${probe.reason})` : ""}`;
    const n = this.runtime.list().length;
    return { name: "vms", state: "ok", detail: `${n} VM${n === 1 ? "" : "s"} running; ${accel}` };
  }

  close(): void {
    this.unsubscribe?.();
    for (const t of this.bootWatches.values()) clearInterval(t);
    this.bootWatches.clear();
    this.runtime.close();
  }

  /** A VM's interfaces on network instances are taps on their bridges (unknown until the network is observed). */
  desire(desired: DesiredState, network: NetworkManager | undefined): void {
    const nicOf: VmNicOf | undefined = network ? (uuid, i) => (desired.network ? network.vmNic(uuid, i) : undefined) : undefined;
    desired.vms = desiredVms(desired, { volumeDir: (u, g) => this.o.volumes.path(u, g), blob: (sha) => this.o.cache.path(sha) }, nicOf);
    this.logsDisabled = new Set([...desired.vms.values()].filter((v) => v.logsDisabled).map((v) => v.uuid));
  }

  async observe(): Promise<Partial<Observed>> {
    const running = new Map<string, RunningVm>();
    for (const vm of this.runtime.list()) {
      running.set(vm.appUuid, vm);
      this.startedAt.set(vm.appUuid, Date.parse(vm.startedAt) || this.now());
    }
    const lastExits = new Map<string, VmExitRecord>();
    for (const r of this.o.store.observed(VM_RECORD)) {
      const e = (r.data as { lastExit?: VmExitRecord }).lastExit;
      if (e) lastExits.set(r.id, e);
    }
    return { vms: { running, lastExits, unavailable: this.unavailable } };
  }

  noteExits(): string[] {
    return []; // exits arrive as events (noteExit)
  }

  running(observed: Observed, uuid: string): boolean {
    return !!observed.vms?.running.has(uuid);
  }

  loads(tree: DesiredContentTree): boolean {
    return diskFormatOfContentTree(tree.format) !== null;
  }

  /** A disk image downloaded into the cache (the VM's volume is an overlay over it); it must really be a disk of its format. */
  async loadContentTree(tree: DesiredContentTree, ctx: ExecutorContext, progress: FetchProgress): Promise<LoadedContentTree> {
    const fmt = diskFormatOfContentTree(tree.format);
    if (!fmt) throw new Error(`format ${tree.format} is not a VM disk format`);
    const entry = await downloadContentTree(tree, ctx, progress);
    try {
      await this.runtime.verifyDisk(entry.path, fmt.format, { iso: fmt.cdrom });
    } catch (e) {
      throw new Error((e as Error).message.replace(entry.path, "the downloaded image"));
    }
    return { imageRef: null, imageId: null, sizeBytes: entry.sizeBytes };
  }

  async removeContentTree(): Promise<void> {
    // the cache's garbage collection removes a disk image nothing needs
  }

  async execute(step: Step, ctx: ExecutorContext): Promise<void> {
    if (step.kind === "startVm") return this.startVm(step, ctx);
    if (step.kind === "stopVm") return this.stopVm(step, ctx);
    if (step.kind === "plugVmMemory") {
      try {
        await this.runtime.plugMemory(step.app.uuid, step.vm.spec.memoryKiB);
      } catch (e) {
        throw ctx.records.appFailed(step.app.uuid, (e as Error).message.replace(/^app "[^"]*" \([^)]*\): /, ""));
      }
      return;
    }
    throw new Error(`VMs: no executor for ${step.kind}`);
  }

  private async startVm({ app, vm }: Extract<Step, { kind: "startVm" }>, ctx: ExecutorContext): Promise<void> {
    try {
      await this.prepareDisks(vm);
      // Taps on network instances exist (persistent, with evebox's alias, on the bridge) before QEMU opens them:
      // they outlive QEMU, so a restarted VM or evebox finds the same interface, covered by the same firewall.
      for (const [n, nic] of vm.spec.nics.entries()) {
        if (nic.kind !== "tap") continue;
        const i = vm.nicInterfaces?.[n] ?? n;
        if (!ctx.network) throw new Error(`interface ${i} is on a network instance, but this evebox builds no networks`);
        await ctx.network.createTap(app.uuid, i);
      }
      this.bindPci(app.uuid, vm.spec.passthrough?.pci ?? []);
      await this.runtime.start(vm.spec);
    } catch (e) {
      // A VM that did not start holds no function: each goes back to its driver (the next try binds it again), so
      // an app removed while failing leaves no host NIC or GPU on vfio-pci.
      this.releasePci(app.uuid);
      throw ctx.records.appFailed(app.uuid, (e as Error).message.replace(/^app "[^"]*" \([^)]*\): /, ""));
    }
    this.watchBoot(app.uuid, app.name);
    noteStarted(ctx, app.uuid);
  }

  private async stopVm({ appUuid }: Extract<Step, { kind: "stopVm" }>, ctx: ExecutorContext): Promise<void> {
    const r = await this.runtime.shutdown(appUuid, ctx.stopTimeoutSec * 1000);
    // Not even QMP quit ended it; it is gone now, which is what was asked.
    if (r.how === "kill") this.o.log("warn", `VM ${appUuid}: QEMU did not quit; it was killed`);
    this.releasePci(appUuid);
  }

  /** The VM's PCI functions to vfio-pci; their own drivers kept in the store, so a restarted evebox gives them back. */
  private bindPci(appUuid: string, addresses: string[]): void {
    if (!addresses.length) return;
    if (!this.o.vfio) throw new Error("PCI passthrough is not available in this evebox (no VFIO control)");
    const key = `hardware.vfio.${appUuid.toLowerCase()}`;
    const before = new Map<string, string | null>(JSON.parse(this.o.store.getSetting(key) ?? "[]"));
    const original = this.o.vfio.bind(addresses);
    // A function already on vfio-pci because of us keeps the driver it had before us.
    for (const [a, d] of original) if (!(d === "vfio-pci" && before.has(a))) before.set(a, d);
    this.o.store.setSetting(key, JSON.stringify([...before]));
  }

  private releasePci(appUuid: string): void {
    const key = `hardware.vfio.${appUuid.toLowerCase()}`;
    const text = this.o.store.getSetting(key);
    if (!text || !this.o.vfio) return;
    try {
      this.o.vfio.release(new Map(JSON.parse(text)));
      this.o.store.deleteSetting(key);
    } catch (e) {
      this.o.log("warn", `VM ${appUuid}: giving its PCI functions back to their drivers failed: ${(e as Error).message}`);
    }
  }

  /** Each VM's disks: the volume's qcow2 overlay over its verified image, a blank qcow2, or the ISO as is. */
  private async prepareDisks(vm: DesiredVm): Promise<void> {
    const app = { uuid: vm.uuid, name: vm.name };
    for (const d of vm.disks) {
      if (d.source.kind === "blank") {
        await this.runtime.createBlankDisk({ dest: d.path, sizeBytes: d.sizeBytes, app });
        continue;
      }
      const base = this.o.cache.path(d.source.sha256);
      if (d.source.cdrom) {
        await this.runtime.verifyDisk(base, "raw", { iso: true, app });
        continue;
      }
      await this.runtime.prepareDisk({ baseImage: base, format: d.source.format, dest: d.path, sizeBytes: d.sizeBytes || undefined, app });
    }
  }

  /**
   * A guest that never boots: the firmware says so in its log ("No bootable device."). Then the VM is
   * killed and the app shows the error; the start is retried with backoff.
   */
  private watchBoot(uuid: string, name: string): void {
    this.startedAt.set(uuid, this.now());
    const prev = this.bootWatches.get(uuid);
    if (prev) clearInterval(prev);
    const until = this.now() + BOOT_WATCH_MS;
    const timer = setInterval(() => {
      const running = this.runtime.list().some((v) => v.appUuid === uuid);
      const log = running ? this.runtime.firmwareLog(uuid) : "";
      if (!running || this.now() > until) {
        clearInterval(timer);
        this.bootWatches.delete(uuid);
        return;
      }
      const m = log.match(NO_BOOT);
      if (!m) return;
      clearInterval(timer);
      this.bootWatches.delete(uuid);
      const tried = log.split("\n").filter((l) => /^Boot(ing| failed)/.test(l.trim())).map((l) => l.trim());
      const message = `the guest did not boot: the firmware found no bootable device${tried.length ? ` (${tried.join("; ")})` : ""}; the VM was stopped`;
      this.host?.records.appFailed(uuid, message);
      this.o.log("warn", `app "${name}" (${uuid}): ${message}`);
      void this.runtime.kill(uuid).finally(() => this.host?.onChange());
    }, 500);
    timer.unref?.();
    this.bootWatches.set(uuid, timer);
  }

  /** An exit nobody asked for is counted like a container's: restarted after 1 s, 2 s, 4 s … up to 5 min. */
  private noteExit(e: VmExit): void {
    const now = this.now();
    const began = this.startedAt.get(e.appUuid) ?? now;
    this.startedAt.delete(e.appUuid);
    if (e.reason === "crashed" || e.reason === "guest-shutdown") {
      const ranMs = Math.max(0, now - began);
      const how =
        e.reason === "guest-shutdown"
          ? "the guest powered off"
          : `QEMU exited unexpectedly${e.signal ? ` (${e.signal})` : e.exitCode !== null ? ` (code ${e.exitCode})` : " (killed or crashed)"}`;
      const last = e.logTail.trim().split("\n").filter((l) => !/terminating on signal/.test(l)).slice(-1)[0];
      const detail = `${how}${last && e.reason === "crashed" ? `: ${last.replace(/^\S+ qemu-system-\S+: /, "")}` : ""}`;
      this.o.store.putObserved({ kind: VM_RECORD, id: e.appUuid, name: e.name, state: "-", error: null, data: { lastExit: { reason: e.reason, at: now, ranMs, detail } } });
      const rec = this.host?.records.appCrashed(e.appUuid, ranMs) ?? null;
      this.o.log("warn", `app "${e.name}" (${e.appUuid}): ${detail}; restarting in ${rec ? Math.round((rec.nextStartAt - now) / 1000) : 1} s`);
    }
    this.host?.onChange();
  }

  /** Forgets a removed app's exit record. */
  forget(uuid: string): void {
    this.o.store.deleteObserved(VM_RECORD, uuid);
  }

  /** The serial console of each running VM as its app's log, but not of an app with disableLogs (live). */
  followLogs(logs: AppLogCollector, observed: Observed): void {
    const running = [...(observed.vms?.running.values() ?? [])].filter((vm) => !this.logsDisabled.has(vm.appUuid));
    logs.syncVms(this.runtime, running);
  }

  /** A VM app's serial console (recent output first). */
  async openConsole(app: DesiredApp): Promise<TerminalSession> {
    if (!this.runtime.list().some((v) => v.appUuid === app.uuid)) throw new TerminalUnavailable(409, `app ${app.name}: its VM is not running, so it has no serial console now`);
    const c = this.runtime.openConsole(app.uuid, "serial");
    return { kind: "serial", history: c.history, readable: c.readable, write: (d) => c.write(d), close: () => c.close() };
  }

  /** The VM's VNC unix socket, when it runs with a display (`remoteConsole`). */
  async openDisplay(app: DesiredApp): Promise<TerminalSession> {
    if (!this.runtime.list().some((v) => v.appUuid === app.uuid)) throw new TerminalUnavailable(409, `app ${app.name}: its VM is not running`);
    const path = this.runtime.vncSocket(app.uuid);
    if (!path) throw new TerminalUnavailable(409, `app ${app.name}: its VM has no graphical console (set remoteConsole in the app's config)`);
    return connectVnc(path);
  }

  /** One CPU/memory sample per running VM. */
  async samples(apps: DesiredApp[]): Promise<AppSample[]> {
    const byUuid = new Map(apps.map((a) => [a.uuid, a]));
    const out: AppSample[] = [];
    for (const vm of this.runtime.list()) {
      try {
        const st = this.runtime.stats(vm.appUuid);
        out.push({
          uuid: vm.appUuid,
          name: vm.name,
          version: byUuid.get(vm.appUuid)?.version,
          cpuNs: st.cpuUsageUsec * 1000,
          startedAt: new Date(vm.startedAt),
          memoryUsedBytes: st.memoryBytes,
          memoryLimitBytes: byUuid.get(vm.appUuid)?.memoryBytes,
          diskReadBytes: st.diskReadBytes,
          diskWriteBytes: st.diskWriteBytes,
          netRxBytes: st.network.reduce((n, i) => n + i.rxBytes, 0),
          netTxBytes: st.network.reduce((n, i) => n + i.txBytes, 0),
        });
      } catch {
        // stopped between list and stats
      }
    }
    return out;
  }
}
