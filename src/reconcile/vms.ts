// VM apps in the reconcile loop: the VM a desired app asks for (`desiredVms`), the steps that bring the
// running QEMUs there (`planVms`, pure), the executors of those steps, the state each VM app shows
// (`vmAppState`), and `VmApps`, which holds the QEMU runtime (adoption, exits, consoles, samples).
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  type Accelerator,
  decodeUserData,
  type DiskFormat,
  type DiskSpec,
  diskFormatOfContentTree,
  type QemuRuntime,
  verifyDiskImage,
  vmPaths,
  vmResourcesOf,
  type NicSpec,
  type VmConsole,
  type VmExit,
  type VmSpec,
  vmSpecHash,
} from "../runtime/vms/index.ts";
import type { PartStatus } from "../model/status.ts";
import type { ContentCache } from "../storage/cache.ts";
import type { VolumeStore } from "../storage/volumes.ts";
import type { Store } from "../store/store.ts";
import type { AppSample } from "../telemetry/metrics.ts";
import type { DesiredApp, DesiredContentTree, DesiredState } from "./desired.ts";
import type { AppRecord, Observed } from "./observed.ts";
import { type PlannedStep, type Step, sourceKey, startDelayOver, volumeKey } from "./plan.ts";
import { Records } from "./records.ts";
import type { ObjectState } from "./status.ts";

type Doc = Record<string, any>;

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
export function desiredVms(doc: Doc | null, desired: DesiredState, paths: VmDiskPaths, nicOf?: VmNicOf): Map<string, DesiredVm> {
  const out = new Map<string, DesiredVm>();
  const docApps = new Map<string, Doc>((doc?.apps ?? []).map((a: Doc) => [a.uuidandversion?.uuid ?? "", a]));
  const docVolumes = new Map<string, Doc>((doc?.volumes ?? []).map((v: Doc) => [v.uuid, v]));
  const volumes = new Map(desired.volumes.map((v) => [v.uuid, v]));
  const trees = new Map(desired.contentTrees.map((t) => [t.uuid, t]));
  for (const app of desired.apps) {
    if (app.kind !== "vm") continue;
    const a = docApps.get(app.uuid) ?? {};
    const errors: string[] = [];
    const res = vmResourcesOf(
      { memory: Number(a.fixedresources?.memory ?? 0), vcpus: Number(a.fixedresources?.vcpus ?? 0), virtualizationMode: a.fixedresources?.virtualizationMode, enableVnc: !!a.fixedresources?.enableVnc },
      !!a.remoteConsole,
    );
    if (!res.memoryKiB) errors.push("fixedresources.memory: a VM needs its memory (in KiB)");
    const disks: DesiredVmDisk[] = [];
    (a.volumeRefList ?? []).forEach((ref: Doc, i: number) => {
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
        : { path: d.path, format: "qcow2", readOnly: !!docVolumes.get(d.volumeUuid)?.readonly },
    );
    const userData = decodeUserData(a.userData);
    const first = disks[0];
    let waiting: string | undefined;
    const nics: NicSpec[] = (a.interfaces ?? []).map((_: Doc, i: number) => {
      const tap = nicOf?.(app.uuid, i);
      if (tap === undefined && nicOf) waiting = "waiting for the device's networking to be observed";
      return tap ?? { kind: "user" as const };
    });
    const spec: VmSpec = {
      appUuid: app.uuid,
      name: app.name,
      memoryKiB: res.memoryKiB,
      vcpus: res.vcpus,
      mode: res.mode,
      disks: diskSpecs,
      ...(userData !== undefined ? { cloudInitUserData: userData } : {}),
      nics,
      remoteConsole: res.remoteConsole,
      // UEFI boot entries belong with the app's disks: they survive a reboot of the device.
      ...(res.mode === "uefi" && first ? { firmwareVarsPath: join(paths.volumeDir(first.volumeUuid, first.generation), "OVMF_VARS.fd") } : {}),
    };
    out.set(app.uuid, { uuid: app.uuid, name: app.name, disks, spec, specHash: vmSpecHash(spec), error: errors.length ? errors.join("; ") : null, ...(waiting ? { waiting } : {}) });
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

/** The reconciler's desired and observed state with the VM parts (set when it runs VMs). */
export type DesiredWithVms = DesiredState & { vms?: Map<string, DesiredVm> };
export type ObservedWithVms = Observed & { vms?: ObservedVms };

// ---- plan

export type VmStep =
  | { kind: "startVm"; app: DesiredApp; vm: DesiredVm; reason: "first start" | "restart command" | "supervised restart" | "the app's spec changed" | "purge" | "start command" }
  | { kind: "stopVm"; appUuid: string; name: string; reason: string };

/** A planned step of a VM app: a VM step, or one of the generic ones (fetch, volumes, counters). */
export type PlannedVmStep = Omit<PlannedStep, "step"> & { step: Step | VmStep };

/** The VM apps' steps; `desired.vms` and `observed.vms` must be set (the reconciler sets both when it runs VMs). */
export function planVms(desired: DesiredWithVms, observed: ObservedWithVms): PlannedVmStep[] {
  const out: PlannedVmStep[] = [];
  const vms = desired.vms;
  const obs = observed.vms;
  if (!vms || !obs) return out;
  const add = (phase: PlannedStep["phase"], lane: string, step: PlannedVmStep["step"], needs: string[] = []) => out.push({ phase, lane, needs, step });
  const now = observed.now;
  const apps = desired.apps.filter((a) => a.kind === "vm" && !a.error && !vms.get(a.uuid)?.error && !obs.unavailable);

  // ---- phase 0: the images of VM disks, the volumes' directories, VMs nobody wants
  const treeReady = new Map<string, boolean>();
  // Only the disks of VMs that are to run are fetched (not those of a halted app, activate false).
  const wantedTrees = new Set(apps.filter((a) => a.activate).flatMap((a) => vms.get(a.uuid)!.disks.flatMap((d) => (d.source.kind === "contentTree" ? [d.source.treeUuid] : []))));
  for (const t of desired.contentTrees) {
    if (!wantedTrees.has(t.uuid)) continue;
    const rec = observed.contentTrees.get(t.uuid);
    const loaded = rec?.state === "LOADED" && rec.sourceKey === sourceKey(t);
    treeReady.set(t.uuid, loaded);
    if (!loaded && !t.error && !observed.fetching.has(t.uuid) && (!rec || rec.sourceKey !== sourceKey(t) || rec.nextRetryAt <= now)) {
      add(0, `ct:${t.uuid}`, { kind: "fetchContentTree", tree: t });
    }
  }
  const haveVolumes = new Set(observed.volumes.map((v) => volumeKey(v.uuid, v.generation)));
  const planned = new Set<string>();
  const volumesById = new Map(desired.volumes.map((v) => [v.uuid, v]));
  for (const app of apps) {
    for (const d of vms.get(app.uuid)!.disks) {
      const key = volumeKey(d.volumeUuid, d.generation);
      if (haveVolumes.has(key) || planned.has(key)) continue;
      planned.add(key);
      add(0, `vol:${key}`, { kind: "createVolume", volume: volumesById.get(d.volumeUuid)! });
    }
  }
  const byUuid = new Map(desired.apps.map((a) => [a.uuid, a]));
  for (const vm of obs.running.values()) {
    const app = byUuid.get(vm.appUuid);
    if (!app || app.kind !== "vm") add(0, `app:${vm.appUuid}`, { kind: "stopVm", appUuid: vm.appUuid, name: vm.name, reason: app ? "the app is no longer a VM app" : "the app was removed from the config" });
    else if (app.error || vms.get(app.uuid)?.error) add(0, `app:${vm.appUuid}`, { kind: "stopVm", appUuid: vm.appUuid, name: vm.name, reason: "the app's config is in error" });
  }

  // ---- phase 1: one lane per VM app
  for (const app of apps) {
    const vm = vms.get(app.uuid)!;
    if (vm.waiting) continue;
    const lane = `app:${app.uuid}`;
    const needs = vm.disks.map((d) => `vol:${volumeKey(d.volumeUuid, d.generation)}`);
    const ready = vm.disks.every((d) => d.source.kind === "blank" || treeReady.get(d.source.treeUuid) === true);
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
        if (!ready) continue;
        stop("the app's spec changed");
        add(1, lane, { kind: "startVm", app, vm, reason: "the app's spec changed" }, needs);
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

export function describeVmStep(s: VmStep): string {
  return s.kind === "startVm" ? `start VM ${s.app.name} (${s.reason})` : `stop VM ${s.name} (${s.reason})`;
}

// ---- state

const QUICK_EXIT_MS = 60_000;

/** The state of a VM app, from its VM, its content trees and its record; null when `observed` has no VM view. */
export function vmAppState(app: DesiredApp, desired: DesiredWithVms, observed: ObservedWithVms): ObjectState | null {
  const obs = observed.vms;
  const vm = desired.vms?.get(app.uuid);
  if (!obs || !vm) return null;
  const data: Record<string, unknown> = { kind: app.kind, activate: app.activate, version: app.version, remoteConsole: vm.spec.remoteConsole };
  if (obs.unavailable) return { state: "INITIAL", error: `VMs cannot run on this device: ${obs.unavailable}`, data };
  if (vm.error) return { state: "INITIAL", error: vm.error, data };
  const rec = observed.apps.get(app.uuid);
  const running = obs.running.get(app.uuid);
  if (vm.waiting && !running) return { state: "INITIAL", error: null, data: { ...data, waiting: vm.waiting } };
  if (running) {
    Object.assign(data, { accelerator: running.accelerator, acceleratorReason: running.acceleratorReason ?? null, pid: running.pid, startedAt: running.startedAt, restarts: rec?.crashes ?? 0 });
    if (!app.activate) return { state: "HALTING", error: null, data };
    return { state: "RUNNING", error: rec?.error ?? null, data };
  }
  for (const d of vm.disks) {
    if (d.source.kind !== "contentTree") continue;
    const ct = observed.contentTrees.get(d.source.treeUuid);
    // A halted VM's disks are not fetched (planVms): it is simply halted.
    if (!app.activate && (!ct || (ct.state === "INITIAL" && !ct.error))) return { state: "HALTED", error: null, data };
    if (!ct || ct.state !== "LOADED") {
      const tree = desired.contentTrees.find((t) => t.uuid === (d.source as { treeUuid: string }).treeUuid);
      return {
        state: ct?.state ?? "INITIAL",
        error: ct?.error ? `content tree ${tree?.name ?? d.source.treeUuid}: ${ct.error}` : null,
        data: { ...data, progress: ct?.progress ?? 0 },
      };
    }
  }
  if (!app.activate) return { state: "HALTED", error: null, data };
  const exit = obs.lastExits.get(app.uuid);
  if (rec && rec.crashes > 0 && exit && !rec.error) {
    const next = rec.nextStartAt > observed.now ? `; restarting in ${Math.ceil((rec.nextStartAt - observed.now) / 1000)} s` : "; restarting";
    const quick = exit.ranMs < QUICK_EXIT_MS ? ` ${(exit.ranMs / 1000).toFixed(1)} s after start` : "";
    return { state: "BROKEN", error: `${exit.detail}${quick}${rec.crashes > 1 ? ` (${rec.crashes} times in a row)` : ""}${next}`, data: { ...data, restarts: rec.crashes } };
  }
  if (!startDelayOver(app, observed)) return { state: "START_DELAYED", error: null, data: { ...data, startAt: new Date(observed.bootAt + app.startDelaySec * 1000).toISOString() } };
  return { state: "BOOTING", error: rec?.error ?? null, data };
}

// ---- executors

/** What the VM executors use of executors.ts's ExecutorContext. */
export interface VmExecutorContext {
  vms?: VmApps;
  /** Creates the taps of VM interfaces on network instances (before QEMU opens them). */
  network?: { createTap(appUuid: string, index: number): Promise<unknown> };
  records: Records;
  now: () => number;
  startedSinceBoot: Set<string>;
  stopTimeoutSec: number;
}

type VmExecutor<K extends VmStep["kind"]> = (step: Extract<VmStep, { kind: K }>, ctx: VmExecutorContext) => Promise<void>;

const startVm: VmExecutor<"startVm"> = async ({ app, vm }, ctx) => {
  const vms = ctx.vms;
  if (!vms) throw new Error(`app ${app.name}: VMs are not run by this evebox`);
  try {
    await vms.prepareDisks(vm, ctx.records);
    // Taps on network instances exist (persistent, with evebox's alias, on the bridge) before QEMU opens them:
    // they outlive QEMU, so a restarted VM or evebox finds the same interface, covered by the same firewall.
    for (const [i, nic] of vm.spec.nics.entries()) {
      if (nic.kind !== "tap") continue;
      if (!ctx.network) throw new Error(`interface ${i} is on a network instance, but this evebox builds no networks`);
      await ctx.network.createTap(app.uuid, i);
    }
    await vms.runtime.start(vm.spec);
  } catch (e) {
    throw vmFailure(ctx.records, app.uuid, (e as Error).message.replace(/^app "[^"]*" \([^)]*\): /, ""), ctx.now());
  }
  vms.watchBoot(app.uuid, app.name);
  ctx.startedSinceBoot.add(app.uuid);
  const rec = ctx.records.app(app.uuid);
  if (rec && rec.error) {
    rec.error = null;
    rec.attempts = 0;
    ctx.records.putApp(rec);
  }
};

const stopVm: VmExecutor<"stopVm"> = async ({ appUuid }, ctx) => {
  const vms = ctx.vms;
  if (!vms) return;
  const r = await vms.runtime.shutdown(appUuid, ctx.stopTimeoutSec * 1000);
  if (r.how === "kill") {
    // Not even QMP quit ended it; it is gone now, which is what was asked.
    vms.log("warn", `VM ${appUuid}: QEMU did not quit; it was killed`);
  }
};

/** Executors of the VM step kinds, merged into executors.ts's table. */
export const VM_EXECUTORS: { [K in VmStep["kind"]]: VmExecutor<K> } = { startVm, stopVm };

function vmFailure(records: Records, uuid: string, message: string, now: number): Error {
  const rec = records.app(uuid);
  if (rec) {
    rec.error = message;
    rec.attempts++;
    rec.nextRetryAt = now + Math.round(Math.min(600_000, 5_000 * 2 ** Math.max(0, rec.attempts - 1)) * (0.8 + Math.random() * 0.4));
    records.putApp(rec);
  }
  return new Error(message);
}

/** After an HTTP download: a disk content tree must really be a disk image of its declared format. */
export async function verifyDiskContentTree(tree: DesiredContentTree, path: string): Promise<void> {
  const fmt = diskFormatOfContentTree(tree.format);
  if (!fmt) throw new Error(`format ${tree.format} is not a VM disk format`);
  try {
    await verifyDiskImage(path, fmt.format, { iso: fmt.cdrom });
  } catch (e) {
    throw new Error((e as Error).message.replace(path, "the downloaded image"));
  }
}

export function isDiskContentTree(tree: DesiredContentTree): boolean {
  return diskFormatOfContentTree(tree.format) !== null;
}

// ---- the runtime side

const VM_RECORD = "reconcile.vm";
/** How long after a start the firmware's log is watched for a boot that failed. */
const BOOT_WATCH_MS = 5 * 60_000;
const NO_BOOT = /No bootable device|Boot failed: could not read the boot disk\s*$|No bootable option or device was found/;

export interface VmAppsOptions {
  runtime: QemuRuntime;
  store: Store;
  volumes: VolumeStore;
  cache: ContentCache;
  log: (level: "info" | "warn" | "error", message: string) => void;
}

/**
 * The QEMU runtime as the reconciler uses it: adoption before the first plan, exits turned into crash
 * accounting (restart with backoff, as for containers), the disks of a VM prepared before its start,
 * consoles and CPU/memory samples.
 */
export class VmApps {
  readonly runtime: QemuRuntime;
  private readonly records: Records;
  private unavailable: string | null = null;
  private onChange: () => void = () => {};
  private readonly bootWatches = new Map<string, ReturnType<typeof setInterval>>();
  private unsubscribe: (() => void) | null = null;
  /** When each VM we know of started: how long it ran, once it is gone. */
  private readonly startedAt = new Map<string, number>();

  constructor(private readonly o: VmAppsOptions) {
    this.runtime = o.runtime;
    this.records = new Records(o.store);
  }

  log(level: "info" | "warn" | "error", message: string): void {
    this.o.log(level, message);
  }

  /** Takes over the VMs a previous evebox started (never restarting one), then reports exits. */
  async start(onChange: () => void): Promise<void> {
    this.onChange = onChange;
    this.unsubscribe = this.runtime.onExit((e) => this.noteExit(e));
    if (!Bun.which("qemu-system-x86_64")) {
      this.unavailable = "qemu-system-x86_64 is not installed (Debian package qemu-system-x86)";
      return;
    }
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

  desired(doc: Doc | null, desired: DesiredState, nicOf?: VmNicOf): Map<string, DesiredVm> {
    return desiredVms(doc, desired, { volumeDir: (u, g) => this.o.volumes.path(u, g), blob: (sha) => this.o.cache.path(sha) }, nicOf);
  }

  observe(): ObservedVms {
    const running = new Map<string, RunningVm>();
    for (const vm of this.runtime.list()) {
      running.set(vm.appUuid, vm);
      this.startedAt.set(vm.appUuid, Date.parse(vm.startedAt) || Date.now());
    }
    const lastExits = new Map<string, VmExitRecord>();
    for (const r of this.o.store.observed(VM_RECORD)) {
      const e = (r.data as { lastExit?: VmExitRecord }).lastExit;
      if (e) lastExits.set(r.id, e);
    }
    return { running, lastExits, unavailable: this.unavailable };
  }

  /** Each VM's disks: the volume's qcow2 overlay over its verified image, a blank qcow2, or the ISO as is. */
  async prepareDisks(vm: DesiredVm, _records: Records): Promise<void> {
    const app = { uuid: vm.uuid, name: vm.name };
    for (const d of vm.disks) {
      if (d.source.kind === "blank") {
        await this.runtime.createBlankDisk({ dest: d.path, sizeBytes: d.sizeBytes, app });
        continue;
      }
      const base = this.o.cache.path(d.source.sha256);
      if (d.source.cdrom) {
        await verifyDiskImage(base, "raw", { iso: true, app });
        continue;
      }
      await this.runtime.prepareDisk({ baseImage: base, format: d.source.format, dest: d.path, sizeBytes: d.sizeBytes || undefined, app });
    }
  }

  /**
   * A guest that never boots: the firmware says so in its log ("No bootable device."). Then the VM is
   * killed and the app shows the error; the start is retried with backoff.
   */
  watchBoot(uuid: string, name: string): void {
    this.startedAt.set(uuid, Date.now());
    const prev = this.bootWatches.get(uuid);
    if (prev) clearInterval(prev);
    const until = Date.now() + BOOT_WATCH_MS;
    const timer = setInterval(() => {
      const running = this.runtime.list().some((v) => v.appUuid === uuid);
      const log = running ? this.runtime.firmwareLog(uuid) : "";
      if (!running || Date.now() > until) {
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
      vmFailure(this.records, uuid, message, Date.now());
      this.o.log("warn", `app "${name}" (${uuid}): ${message}`);
      void this.runtime.kill(uuid).finally(() => this.onChange());
    }, 500);
    timer.unref?.();
    this.bootWatches.set(uuid, timer);
  }

  /** An exit nobody asked for is counted like a container's: restarted after 1 s, 2 s, 4 s … up to 5 min. */
  private noteExit(e: VmExit): void {
    const began = this.startedAt.get(e.appUuid) ?? Date.now();
    this.startedAt.delete(e.appUuid);
    if (e.reason === "crashed" || e.reason === "guest-shutdown") {
      const rec: AppRecord | undefined = this.records.app(e.appUuid);
      const ranMs = Math.max(0, Date.now() - began);
      const how =
        e.reason === "guest-shutdown"
          ? "the guest powered off"
          : `QEMU exited unexpectedly${e.signal ? ` (${e.signal})` : e.exitCode !== null ? ` (code ${e.exitCode})` : " (killed or crashed)"}`;
      const last = e.logTail.trim().split("\n").filter((l) => !/terminating on signal/.test(l)).slice(-1)[0];
      const detail = `${how}${last && e.reason === "crashed" ? `: ${last.replace(/^\S+ qemu-system-\S+: /, "")}` : ""}`;
      this.o.store.putObserved({ kind: VM_RECORD, id: e.appUuid, name: e.name, state: "-", error: null, data: { lastExit: { reason: e.reason, at: Date.now(), ranMs, detail } } });
      if (rec) {
        rec.crashes = ranMs < QUICK_EXIT_MS ? rec.crashes + 1 : 1;
        rec.nextStartAt = Date.now() + Math.min(300_000, 1000 * 2 ** Math.min(rec.crashes - 1, 9));
        this.records.putApp(rec);
      }
      this.o.log("warn", `app "${e.name}" (${e.appUuid}): ${detail}; restarting in ${rec ? Math.round((rec.nextStartAt - Date.now()) / 1000) : 1} s`);
    }
    this.onChange();
  }

  /** Forgets a removed app's exit record. */
  forget(uuid: string): void {
    this.o.store.deleteObserved(VM_RECORD, uuid);
  }

  /** The VM's VNC socket, when it runs with a display (`remoteConsole`). */
  vncSocket(uuid: string): string | null {
    const path = vmPaths(this.runtime.runDir, uuid).vnc;
    return existsSync(path) ? path : null;
  }

  /** A VM app's serial console (recent output first). */
  openConsole(uuid: string): VmConsole {
    return this.runtime.openConsole(uuid, "serial");
  }

  /** One CPU/memory sample per running VM. */
  samples(versions: Map<string, string>, memoryLimits: Map<string, number>): AppSample[] {
    const out: AppSample[] = [];
    for (const vm of this.runtime.list()) {
      try {
        const st = this.runtime.stats(vm.appUuid);
        out.push({
          uuid: vm.appUuid,
          name: vm.name,
          version: versions.get(vm.appUuid),
          cpuNs: st.cpuUsageUsec * 1000,
          startedAt: new Date(vm.startedAt),
          memoryUsedBytes: st.memoryBytes,
          memoryLimitBytes: memoryLimits.get(vm.appUuid),
        });
      } catch {
        // stopped between list and stats
      }
    }
    return out;
  }
}
