// A workload kind: how the apps of one kind (containers, VMs) are planned, run and shown. The reconciler drives a
// list of them the same way — desired, observe, plan, execute, state — around what all kinds share: the content
// trees and volumes they need (fetched and created once, in plan.ts), the records with their counters, failures
// and crash backoff (records.ts), the lanes, the start delay, events and logs.
import { stat } from "node:fs/promises";
import type { NetworkManager } from "../network/manager.ts";
import type { PartStatus } from "../model/status.ts";
import type { SwState } from "../model/swstate.ts";
import type { TerminalSession } from "../model/terminal.ts";
import type { ContentCache } from "../storage/cache.ts";
import type { VolumeStore } from "../storage/volumes.ts";
import type { AppSample } from "../telemetry/metrics.ts";
import type { AppLogCollector } from "./app-logs.ts";
import type { AppKind, DesiredApp, DesiredContentTree, DesiredState } from "./desired.ts";
import type { ContentTreeRecord, Observed } from "./observed.ts";
import type { PlannedStep, Step } from "./plan.ts";
import type { Records } from "./records.ts";

export interface ObjectState {
  state: SwState;
  error: string | null;
  data: Record<string, unknown>;
}

/** What the apps of a kind need before they can start: content trees to fetch (of apps that are to run), volumes. */
export interface WorkloadNeeds {
  contentTrees: string[];
  volumes: { uuid: string; generation: number }[];
}

/** What plan.ts prepared for every kind: whether a needed content tree is loaded (from its current source). */
export interface Prepared {
  treeReady(uuid: string): boolean;
}

/** The pure half of a workload kind: what `plan()` and the app states need. No engine, no clock, no store. */
export interface WorkloadKind {
  readonly kind: Exclude<AppKind, "unknown">;
  /** How the kind is named in messages ("container", "VM"). */
  readonly label: string;
  /** The step kinds this kind plans and executes. */
  readonly steps: readonly Step["kind"][];
  needs(desired: DesiredState, observed: Observed): WorkloadNeeds;
  /** The kind's own steps: phase 0 removes what nobody wants, phase 1 is one lane per app (`app:<uuid>`). */
  plan(desired: DesiredState, observed: Observed, prepared: Prepared): PlannedStep[];
  /** The state an app of this kind shows; null when this evebox does not observe this kind. */
  state(app: DesiredApp, desired: DesiredState, observed: Observed): ObjectState | null;
  describe(step: Step): string;
}

/** What the reconciler gives each workload when it starts: the shared records (with the clock and backoff), its triggers. */
export interface WorkloadHost {
  records: Records;
  /** Something changed (an exit, an engine event): a pass is wanted. */
  onChange(): void;
  /** The engine's event stream failed. */
  onError(e: Error): void;
}

/** What executors get: the shared parts (the records hold the clock and the backoff), the apply's signal. */
export interface ExecutorContext {
  cache: ContentCache;
  volumes: VolumeStore;
  records: Records;
  signal: AbortSignal;
  /** Live progress of a content tree (state and percent), for status and events. */
  progress: (uuid: string, state: SwState, progress: number, bytes?: FetchBytes) => void;
  /** Apps started since evebox came up (start delays apply only before). */
  startedSinceBoot: Set<string>;
  stopTimeoutSec: number;
  /** Runs a fetch beside the loop (the reconciler tracks and aborts it). */
  startFetch: (uuid: string, run: (signal: AbortSignal) => Promise<void>) => void;
  /** Network instances and app interfaces; absent: apps with interfaces get the engine's default bridge. */
  network?: NetworkManager;
  workloads: readonly Workload[];
  /** The longest wait before a failed download is tried again (timer.download.retry). */
  downloadRetryMaxMs: number;
}

/** Per-lane scratch: a container created earlier in the lane is the one later steps act on. */
export interface LaneContext {
  containerId?: string;
}

/** What a loaded content tree leaves in its record. */
export type LoadedContentTree = Pick<ContentTreeRecord, "imageRef" | "imageId" | "sizeBytes">;

/** How a content tree's fetch reports its progress. */
export type FetchProgress = (state: SwState, progress: number, bytes?: FetchBytes) => void;
/** Bytes fetched so far and in all (0 while unknown): the Activity page's download progress and speed. */
export interface FetchBytes {
  done: number;
  total: number;
}

/** A workload kind with its runtime (`runtime/containers`, `runtime/vms`): the only place that calls it. */
export interface Workload extends WorkloadKind {
  /** Takes over what a previous evebox started (never restarting it) and starts watching it. Before the first plan. */
  start(host: WorkloadHost): Promise<void>;
  /** Lets go of the workloads without stopping them: they outlive the agent. */
  close(): void;
  /** Adds the kind's part of the desired state (the VMs' specs, from `desired.model`) to what desired.ts read. */
  desire(desired: DesiredState, network: NetworkManager | undefined): void;
  /** The kind's part of what is observed (`containers`, `vms`). */
  observe(): Promise<Partial<Observed>>;
  /** Exits of apps that should run, counted once (the records changed are saved by the caller). */
  noteExits(desired: DesiredState, observed: Observed): string[];
  execute(step: Step, ctx: ExecutorContext, lane: LaneContext): Promise<void>;
  /** Whether the kind makes content trees of this format usable. */
  loads(tree: DesiredContentTree): boolean;
  /** Fetches (or, from an Http(s) datastore, downloads into the cache) and loads one content tree. */
  loadContentTree(tree: DesiredContentTree, ctx: ExecutorContext, progress: FetchProgress): Promise<LoadedContentTree>;
  /** Removes what loading a content tree left in the engine (an image). */
  removeContentTree(rec: { uuid: string; imageRef: string | null }): Promise<void>;
  /** Whether the app still has something running (a removed app shows HALTING until it is gone). */
  running(observed: Observed, uuid: string): boolean;
  /** Follows the output of the kind's running apps into the store. */
  followLogs(logs: AppLogCollector, observed: Observed): void;
  /** One CPU/memory sample per running app. */
  samples(apps: DesiredApp[]): Promise<AppSample[]>;
  /** An app's console: a shell in its container, a VM's serial console. */
  openConsole(app: DesiredApp): Promise<TerminalSession>;
  /** An app's graphical console (VNC), for kinds that have one. */
  openDisplay?(app: DesiredApp): Promise<TerminalSession>;
  /** The kind's own part in the device's status, if it has one. */
  part(): PartStatus | null;
  /** A removed app's kind-specific records. */
  forget(uuid: string): void;
}

export function sourceKey(t: DesiredContentTree): string {
  return JSON.stringify([t.source.kind === "registry" ? [t.source.fqdn, t.source.url] : t.source.url, t.sha256, t.maxSizeBytes]);
}

/** The source key of a content tree fetched only as a file (a patch envelope's volume artifact), not loaded by a kind. */
export function fileSourceKey(t: DesiredContentTree): string {
  return `${sourceKey(t)}#file`;
}

export function volumeKey(uuid: string, generation: number): string {
  return `${uuid.toLowerCase()}#${generation}`;
}

/** EVE's start_delay_in_seconds: only before an app's first start after the device came up. */
export function startDelayOver(app: DesiredApp, observed: Observed): boolean {
  if (app.startDelaySec <= 0 || observed.startedSinceBoot.has(app.uuid)) return true;
  return observed.now >= observed.bootAt + app.startDelaySec * 1000;
}

/** The START_DELAYED state of an app whose first start waits. */
export function startDelayed(app: DesiredApp, observed: Observed, data: Record<string, unknown>): ObjectState {
  return { state: "START_DELAYED", error: null, data: { ...data, startAt: new Date(observed.bootAt + app.startDelaySec * 1000).toISOString() } };
}

/** The state of an app waiting for a content tree: the tree's state, its error, its progress. */
export function waitingForTree(treeUuid: string, desired: DesiredState, observed: Observed, data: Record<string, unknown>): ObjectState {
  const ct = observed.contentTrees.get(treeUuid);
  const tree = desired.contentTrees.find((t) => t.uuid === treeUuid);
  return {
    state: ct?.state ?? "INITIAL",
    error: ct?.error ? `content tree ${tree?.name ?? treeUuid}: ${ct.error}` : null,
    data: { ...data, progress: ct?.progress ?? 0 },
  };
}

/** The end of every start: the start delay is over for the app, and an earlier failure too. */
export function noteStarted(ctx: ExecutorContext, uuid: string): void {
  ctx.startedSinceBoot.add(uuid);
  ctx.records.appStarted(uuid);
}

/**
 * A content tree whose sha256 is in the content store already — downloaded before, or imported by hand from the
 * console (storage/images.ts) — is never fetched again, whatever its datastore: a config naming an imported image
 * runs offline. Null when it is not there.
 */
export async function storedContentTree(tree: DesiredContentTree, ctx: ExecutorContext, progress: FetchProgress): Promise<{ path: string; sizeBytes: number } | null> {
  if (!tree.sha256 || !(await ctx.cache.has(tree.sha256))) return null;
  const path = ctx.cache.path(tree.sha256);
  const sizeBytes = (await stat(path)).size;
  if (tree.maxSizeBytes && sizeBytes > tree.maxSizeBytes) throw new Error(`the stored image is ${sizeBytes} bytes, over the content tree's maxSizeBytes ${tree.maxSizeBytes}`);
  progress("VERIFYING", 100); // stored only once verified (downloads and uploads alike)
  progress("LOADING", 100);
  return { path, sizeBytes };
}

/** A content tree from an Http(s) datastore, downloaded into the cache (sha256 checked while it downloads), unless stored already. */
export async function downloadContentTree(tree: DesiredContentTree, ctx: ExecutorContext, progress: FetchProgress): Promise<{ path: string; sizeBytes: number }> {
  const stored = await storedContentTree(tree, ctx, progress);
  if (stored) return stored;
  if (tree.source.kind !== "http") throw new Error(`content tree ${tree.name}: not from an Http(s) datastore`);
  const entry = await ctx.cache.put({
    url: tree.source.url,
    sha256: tree.sha256!,
    maxSizeBytes: tree.maxSizeBytes ?? undefined,
    signal: ctx.signal,
    onProgress: (p) => progress("DOWNLOADING", p.bytesTotal ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 0, { done: p.bytesDone, total: p.bytesTotal ?? 0 }),
  });
  progress("VERIFYING", 100); // the cache verified the sha256 while downloading; record the step
  progress("LOADING", 100);
  return entry;
}
