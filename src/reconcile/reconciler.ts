// The apply loop: one apply at a time; a newer config aborts the apply in progress, which ends at
// the next step boundary, and a fresh pass starts from what is then observed. It drives a list of workload
// kinds (containers.ts, vms.ts) the same way: desired, observe, plan, execute, state.
import { hasCipherBlocks, type RevealedSecrets, revealSecrets, type SecretOpener } from "../config/cipher.ts";
import { decodeVolumeRef } from "../metadata/volume-ref.ts";
import { type DeviceModel, EMPTY_MODEL } from "../config/model.ts";
import type { ConfigService } from "../config/service.ts";
import type { PartStatus } from "../model/status.ts";
import type { EventBus } from "../model/events.ts";
import type { NetworkManager } from "../network/manager.ts";
import type { ContentCache } from "../storage/cache.ts";
import type { VolumeStore } from "../storage/volumes.ts";
import type { Store } from "../store/store.ts";
import type { AppSample } from "../telemetry/metrics.ts";
import { AppLogCollector } from "./app-logs.ts";
import { type DesiredState, desiredFromModel, type LocalCommands, withAdapters } from "./desired.ts";
import type { Assignment } from "../hardware/assign.ts";
import { execute } from "./executors.ts";
import type { Observed } from "./observed.ts";
import { describeStep, plan, type PlannedStep, sourceKey } from "./plan.ts";
import type { BackoffClock, BackoffPolicy } from "../lib/backoff.ts";
import { Records } from "./records.ts";
import type { SwState } from "../model/swstate.ts";
import { appState, volumeState } from "./status.ts";
import { AppTerminals } from "./terminals.ts";
import { VmWorkload } from "./vms.ts";
import type { ExecutorContext, FetchBytes, LaneContext, Workload } from "./workload.ts";

export interface ReconcilerDeps {
  store: Store;
  config: ConfigService;
  events: EventBus;
  /**
   * The workload kinds this evebox runs, each with its runtime: containers (`ContainerWorkload`), and VMs
   * (`VmWorkload`) when it runs them — apps of a kind not in the list show that they are not run.
   */
  workloads: Workload[];
  cache: ContentCache;
  volumes: VolumeStore;
  log: (level: "info" | "warn" | "error", message: string) => void;
  /** Network instances, app interfaces and the firewall; absent: apps get the engine's default networking. */
  network?: NetworkManager;
  /** Which app gets which of the host's I/O (hardware/): absent, apps' adapters are not given. */
  hardware?: { assign(model: DesiredState["model"], skip: ReadonlySet<string>): Assignment };
  /** Opens the config's encrypted blocks (datastore credentials, protected user data); absent: they stay closed. */
  secrets?: SecretOpener;
  /** The Local Profile Server's profile override, when one is set (lps/). */
  localProfile?: () => string | null;
  /** A Local Profile Server's VM boot orders, by app uuid (they win over the config's; at a VM's next start). */
  bootOrders?: () => ReadonlyMap<string, "usb" | "nousb">;
  /** Safety-net pass interval (engine events and config changes trigger passes as well). */
  tickMs?: number;
  /** Lanes of a phase run at once (default `LANES`). */
  concurrency?: number;
  stopTimeoutSec?: number;
  /** The clock (and jitter source) every record, backoff and state is computed on (default: the system's). */
  clock?: BackoffClock;
  /** When failed steps are retried and crashed apps restarted (default: records.ts). */
  backoff?: { retry?: BackoffPolicy; crash?: BackoffPolicy };
  /** Why every app is held halted (maintenance mode, a shutdown or reboot command: ops/), or null. */
  halt?: () => string | null;
}

export type AppCommand = "start" | "stop" | "restart" | "purge";

/**
 * Lanes of a phase that run at once. The engine overlaps the waits of concurrent container starts (runc, cgroups,
 * mounts): 20 apps' creates and starts took ~15–25 % longer in lanes of 8 than 20 parallel calls (bench/apps.ts);
 * the bound keeps 1,000 apps from opening 1,000 engine connections at once.
 */
export const LANES = 32;

/** Steps that change only evebox's records, or start a fetch that runs beside the loop. */
const RECORDS_ONLY: ReadonlySet<string> = new Set(["fetchContentTree", "recordCounters"]);

/**
 * How long what such a pass observed stays the next pass's starting point (no workload event since): the engine,
 * the volumes and the network change only through evebox's own steps or with an event, and a change without one
 * (a bridge removed by hand) is seen by the pass after.
 */
const REUSE_OBSERVED_MS = 1_000;

const LOCAL_KEY = "reconcile.local-commands";

export class Reconciler {
  private readonly records: Records;
  private readonly logs: AppLogCollector;
  private readonly now: () => number;
  private readonly bootAt: number;
  private readonly workloads: readonly Workload[];
  /** Passes asked for before start() finished wait for it: VMs are adopted before anything is planned. */
  private started = false;
  private readonly startedSinceBoot = new Set<string>();
  private dirty = false;
  private running: Promise<void> | null = null;
  private current: AbortController | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private wakeTimer: ReturnType<typeof setTimeout> | null = null;
  private unsubscribe: (() => void)[] = [];
  private engineError: string | null = null;
  private networkError: string | null = null;
  private facts: import("../network/model.ts").HostFacts | null = null;
  private lastApply: { at: Date; steps: number; failed: number } | null = null;
  /** The last pass, timer or listener that failed (cleared by a pass that completes). */
  private loopError: { what: string; message: string; at: Date } | null = null;
  private stopped = false;
  private readonly samples = new Map<string, AppSample>();
  /** What a pass of RECORDS_ONLY steps observed, when it ended, and the workload events seen before it observed. */
  private reusable: { observed: Observed; at: number; events: number } | null = null;
  /** Workload events (engine start/die/oom, a VM's exit) so far. */
  private workloadEvents = 0;
  /** Content-tree fetches running beside the loop, by content tree uuid. */
  private readonly fetches = new Map<string, { ac: AbortController; sourceKey: string; done: Promise<void> }>();
  /** The opened secrets of one model (one config version), in memory only, re-opened when the opener's epoch moves. */
  private revealed: { model: DeviceModel; epoch: number; secrets: RevealedSecrets } | null = null;
  passes = 0;

  constructor(private readonly deps: ReconcilerDeps) {
    this.records = new Records(deps.store, { clock: deps.clock, ...deps.backoff });
    this.now = () => this.records.now();
    this.bootAt = this.now();
    this.logs = new AppLogCollector(deps.store, deps.log);
    this.workloads = deps.workloads;
  }

  async start(): Promise<void> {
    // Every callback a timer, the engine or the config calls is guarded: an exception there would end the process.
    // What a previous evebox started (VMs, containers) is taken over before anything is planned: never restarted.
    for (const w of this.workloads) {
      const what = `${w.label} event`;
      await w.start({
        records: this.records,
        onChange: () =>
          this.guarded(what, () => {
            this.workloadEvents++; // the engine (or a VM) changed: what was observed before is not reused
            this.trigger(false);
          }),
        onError: (e) => this.guarded(what, () => this.noteEngineError(e)),
      });
    }
    this.deps.network?.start();
    this.unsubscribe.push(this.deps.config.onChange(() => this.guarded("config change", () => this.trigger(true))));
    this.started = true;
    this.timer = setInterval(() => this.guarded("reconcile tick", () => this.trigger(false)), this.deps.tickMs ?? 15_000);
    this.trigger(false);
  }

  /**
   * Runs `f` for a timer or listener: a throw or a rejection is logged, published as an event and shown in the
   * part's status (`part()`) instead of reaching the event loop, where it would end evebox.
   */
  private guarded(what: string, f: () => unknown): void {
    const fail = (e: unknown) => this.noteLoopError(what, e);
    try {
      const r = f();
      if (r instanceof Promise) r.catch(fail);
    } catch (e) {
      fail(e);
    }
  }

  private noteLoopError(what: string, e: unknown): void {
    const message = `${what}: ${e instanceof Error ? e.message : String(e)}`;
    try {
      if (this.loopError?.message !== message) {
        this.deps.log("error", `reconcile: ${message}`);
        this.deps.events.publish({ type: "reconcile.error", message: `reconcile: ${message}`, data: { what } });
      }
    } catch {
      // the log or the event bus is closing: the status below still says it
    }
    this.loopError = { what, message, at: new Date() };
  }

  /** The latest CPU and memory figures of each running app (for metrics to the controller). */
  appSamples(): AppSample[] {
    return [...this.samples.values()];
  }

  /** Consoles of apps: a shell in a container app, the serial console of a VM app. */
  terminals(): AppTerminals {
    return new AppTerminals({ desired: () => this.desired(), workloads: this.workloads });
  }

  /** The VM workload (accelerator, running VMs, its part), if this reconciler runs VMs. */
  get vms(): VmWorkload | null {
    return this.workloads.find((w): w is VmWorkload => w instanceof VmWorkload) ?? null;
  }

  /** The parts of the workload kinds that have one (`vms`). */
  parts(): PartStatus[] {
    return this.workloads.flatMap((w) => w.part() ?? []);
  }

  /**
   * Samples every running app (CPU, memory, disk and network counters) once, keeps the figures for
   * `appSamples()` and answers them. Called by the metrics history's one timer (telemetry/history.ts).
   */
  async sampleApps(): Promise<AppSample[]> {
    if (!this.started || this.stopped) return [];
    const apps = this.desired().apps;
    // A kind whose sampling fails is reported like any fault of a timer (logged, an event, the part's status).
    let failed = false;
    const all = await Promise.all(
      this.workloads.map(async (w) => {
        try {
          return await w.samples(apps);
        } catch (e) {
          failed = true;
          this.noteLoopError("app statistics", e);
          return [];
        }
      }),
    );
    // Sampling that works again clears its own fault (a pass does not: it would be published again every tick).
    if (!failed && this.loopError?.what === "app statistics") this.loopError = null;
    this.samples.clear();
    for (const list of all) for (const s of list) this.samples.set(s.uuid, s);
    return [...this.samples.values()];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    for (const u of this.unsubscribe) u();
    this.current?.abort();
    for (const f of this.fetches.values()) f.ac.abort();
    await this.running?.catch(() => undefined);
    await Promise.all([...this.fetches.values()].map((f) => f.done));
    this.logs.stopAll();
    // Lets go of the containers and VMs without stopping them: workloads outlive the agent.
    for (const w of this.workloads) w.close();
    this.deps.network?.stop();
  }

  /** Asks for a pass; `supersede` aborts the apply in progress (a newer config arrived). */
  trigger(supersede: boolean): void {
    if (this.stopped) return;
    this.dirty = true;
    if (supersede) this.current?.abort();
    if (!this.started) return;
    this.running ??= this.loop().finally(() => (this.running = null));
  }

  /** Resolves when no pass is pending or running (tests and the CLI use it). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async loop(): Promise<void> {
    while (this.dirty && !this.stopped) {
      this.dirty = false;
      const ac = new AbortController();
      this.current = ac;
      try {
        await this.pass(ac.signal);
        // A pass that went through clears a fault, except the sampling's: that one clears when sampling works again
        // (cleared here, it was published again on the sampler's next tick).
        if (!ac.signal.aborted && this.loopError?.what !== "app statistics") this.loopError = null;
      } catch (e) {
        if (!ac.signal.aborted) this.noteLoopError("pass", e);
        // Retried, not in a tight loop: the next tick (or a change) runs the next pass.
      } finally {
        this.current = null;
        this.passes++;
      }
    }
  }

  /** The network part this reconciler drives (status, leases, counters, flows), if any. */
  get network(): NetworkManager | null {
    return this.deps.network ?? null;
  }

  localCommand(uuid: string, command: AppCommand, by?: string): void {
    // The document's UUIDs are lower case (config/uuids.ts); so is the key the command is kept under.
    uuid = uuid.toLowerCase();
    const app = this.deps.config.model()?.model.apps.find((a) => a.uuid === uuid);
    if (!app) throw new Error(`no app ${uuid} in the current config`);
    const all = this.localCommands();
    const l: LocalCommands = all.get(uuid) ?? {};
    const version = app.version;
    if (command === "start" || command === "stop") l.activate = { value: command === "start", forVersion: version };
    if (command === "restart") l.restarts = (l.restarts ?? 0) + 1;
    if (command === "purge") l.purges = (l.purges ?? 0) + 1;
    all.set(uuid, l);
    this.deps.store.setSetting(LOCAL_KEY, JSON.stringify(Object.fromEntries(all)));
    this.deps.events.publish({ type: "app.command", objectKind: "app", objectId: uuid, message: `${command} requested for app ${app.name}${by ? ` by ${by}` : ""}`, data: { command, by: by ?? null, name: app.name } });
    this.trigger(false);
  }

  private localCommands(): Map<string, LocalCommands> {
    try {
      return new Map(Object.entries(JSON.parse(this.deps.store.getSetting(LOCAL_KEY) ?? "{}")));
    } catch {
      return new Map();
    }
  }

  desired(): DesiredState {
    // The model and its problems are read once per config version (ConfigService.model()): validating 10,000
    // ACEs on every pass would cost more than the rest of the pass.
    const read = this.deps.config.model();
    const problems = read?.problems ?? [];
    const model = read?.model ?? EMPTY_MODEL;
    const secrets = this.revealed?.model === model ? this.revealed.secrets : undefined;
    const desired = desiredFromModel(model, problems, this.localCommands(), secrets, this.deps.localProfile?.());
    const boot = this.deps.bootOrders?.();
    if (boot?.size) desired.lpsBootOrders = boot;
    // Adapters: a group to one app at a time; an app that cannot have its adapters is in error, the others run.
    if (this.deps.hardware) withAdapters(desired, this.deps.hardware.assign(desired.model, new Set(desired.apps.filter((a) => a.error).map((a) => a.uuid))));
    // Held halted device-wide: stopped as an activate=false would stop them, the reason in their status.
    const halt = this.deps.halt?.() ?? null;
    if (halt) for (const a of desired.apps) Object.assign(a, { activate: false, haltedBy: halt });
    // The network model needs the host's facts (its networks, ports), observed with the network.
    if (this.deps.network && this.facts) {
      desired.network = this.deps.network.desired(this.deps.config.currentDoc()?.doc ?? null, problems, this.facts, read?.model ?? null);
      // An app waits for its network instances (EVE's AWAITNETWORKINSTANCE): one that cannot be built
      // holds the app's first start (a running app keeps running) and says why.
      const broken = new Map(desired.network.model.instances.filter((n) => n.error).map((n) => [n.uuid, n]));
      for (const app of desired.apps) {
        const ni = app.interfaces.map((i) => broken.get(i.networkId)).find(Boolean);
        if (ni && !app.error) app.error = `network instance ${ni.name}: ${ni.error}`;
      }
    }
    // Each kind adds its part (a VM's spec: its interfaces on network instances are taps on their bridges).
    for (const w of this.workloads) w.desire(desired, this.deps.network);
    return desired;
  }

  private async observeNetwork(): Promise<Observed["network"]> {
    if (!this.deps.network) return undefined;
    try {
      const o = await this.deps.network.observe();
      this.facts = o.facts;
      this.networkError = null;
      return { items: o.items, attachments: o.attachments };
    } catch (e) {
      if (this.networkError !== (e as Error).message) this.deps.log("warn", `network: cannot observe the device's networking: ${(e as Error).message}`);
      this.networkError = (e as Error).message;
      return undefined;
    }
  }

  private async observe(): Promise<Observed> {
    const [kinds, volumes, network] = await Promise.all([Promise.all(this.workloads.map((w) => w.observe())), this.deps.volumes.list(), this.observeNetwork()]);
    const observed: Observed = {
      network,
      now: this.now(),
      bootAt: this.bootAt,
      containers: [],
      volumes: volumes.map((v) => ({ uuid: v.uuid, generation: v.generationCount })),
      contentTrees: this.records.contentTrees(),
      apps: this.records.apps(),
      startedSinceBoot: this.startedSinceBoot,
      fetching: new Set(this.fetches.keys()),
    };
    for (const k of kinds) Object.assign(observed, k);
    return observed;
  }

  /** `observed` with the records (apps, content trees) and the fetches as they are now. */
  private withRecords(observed: Observed): Observed {
    return { ...observed, now: this.now(), contentTrees: this.records.contentTrees(), apps: this.records.apps(), fetching: new Set(this.fetches.keys()) };
  }

  /** Aborts fetches whose content tree is no longer desired or now comes from elsewhere. */
  private supersedeFetches(desired: DesiredState): void {
    const trees = new Map(desired.contentTrees.map((t) => [t.uuid, t]));
    for (const [uuid, f] of this.fetches) {
      const t = trees.get(uuid);
      if ((!t || sourceKey(t) !== f.sourceKey) && !f.ac.signal.aborted) {
        f.ac.abort();
        this.deps.log("info", `content tree ${uuid}: fetch abandoned (${t ? "its source changed" : "no longer in the config"})`);
      }
    }
  }

  private startFetch(tree: { uuid: string; name: string }, key: string, run: (signal: AbortSignal) => Promise<void>): void {
    if (this.fetches.has(tree.uuid) || this.stopped) return;
    const ac = new AbortController();
    const done = run(ac.signal)
      .catch((e) => {
        if (ac.signal.aborted) return;
        this.deps.events.publish({
          type: "contentTree.fetch-failed",
          objectKind: "contentTree",
          objectId: tree.uuid,
          message: `content tree ${tree.name}: ${(e as Error).message}`,
          data: { reason: (e as Error).message },
        });
      })
      .finally(() => {
        this.fetches.delete(tree.uuid);
        this.trigger(false);
      });
    this.fetches.set(tree.uuid, { ac, sourceKey: key, done });
  }

  /** Opens the current model's cipher blocks once (again when the controller's certificates changed). */
  private async openSecrets(): Promise<void> {
    const model = this.deps.config.model()?.model ?? EMPTY_MODEL;
    const epoch = this.deps.secrets?.epoch() ?? 0;
    if (this.revealed?.model === model && this.revealed.epoch === epoch) return;
    if (!hasCipherBlocks(model)) {
      this.revealed = null;
      return;
    }
    const secrets = await revealSecrets(model, this.deps.secrets ?? null, decodeVolumeRef);
    const failed = [...secrets.datastores.values(), ...secrets.apps.values(), ...(secrets.volumeArtifacts?.values() ?? [])].filter((o) => !o.ok).length;
    if (failed) this.deps.log("warn", `${failed} encrypted block(s) of the config cannot be opened (the objects are in error and say why)`);
    this.revealed = { model, epoch, secrets };
  }

  private async pass(signal: AbortSignal): Promise<void> {
    await this.openSecrets();
    let observed: Observed;
    // What the pass before observed, when its steps changed none of it and it ended just now with no workload event
    // since (the usual case: it started a fetch of an image already present, whose end runs this pass).
    const r = this.reusable;
    const reuse = r && r.events === this.workloadEvents && performance.now() - r.at < REUSE_OBSERVED_MS ? r.observed : null;
    this.reusable = null;
    const events = this.workloadEvents;
    try {
      observed = reuse ? this.withRecords(reuse) : await this.observe();
      this.engineError = null;
    } catch (e) {
      this.noteEngineError(e as Error);
      this.publishStates(this.desired(), null);
      this.scheduleWake(this.now() + 5_000);
      return;
    }
    const desired = this.desired();
    this.supersedeFetches(desired);
    for (const w of this.workloads) for (const uuid of w.noteExits(desired, observed)) this.records.putApp(observed.apps.get(uuid)!);
    const steps = plan(desired, observed, this.workloads);
    this.publishStates(desired, observed);
    if (steps.length) {
      const failed = await this.run(steps, signal);
      this.lastApply = { at: new Date(), steps: steps.length, failed };
      if (signal.aborted) return;
      // Steps that only keep records or start a fetch beside the loop change nothing the engine, the volumes or the
      // network show: the states are published from the records read again, not from everything observed anew
      // (the fetch's end triggers the next pass, which may start from this observation: `reusable`).
      const recordsOnly = steps.every((s) => RECORDS_ONLY.has(s.step.kind));
      observed = recordsOnly ? this.withRecords(observed) : await this.observe();
      // Observed by this pass itself (not reused: never a chain of passes on one observation), still as it is.
      if (recordsOnly && !reuse) this.reusable = { observed, at: performance.now(), events };
      this.publishStates(desired, observed);
      // The engine events of our own steps re-trigger a pass; converge follow-ups (a step that
      // unblocked another lane) promptly as well.
      if (failed === 0 && plan(desired, observed, this.workloads).length) this.dirty = true;
    }
    for (const w of this.workloads) w.followLogs(this.logs, observed);
    const cache = [...desired.contentTrees].filter((t) => t.source.kind === "http" && t.sha256).map((t) => `sha256:${t.sha256}`);
    await this.deps.cache.gc(new Set(cache)).catch(() => undefined);
    this.scheduleWake(this.nextWake(desired, observed));
  }

  private async run(steps: PlannedStep[], signal: AbortSignal): Promise<number> {
    const failedLanes = new Set<string>();
    const ctx: ExecutorContext = {
      cache: this.deps.cache,
      volumes: this.deps.volumes,
      records: this.records,
      signal,
      progress: (uuid, state, progress, bytes) => this.contentTreeProgress(uuid, state, progress, bytes),
      startedSinceBoot: this.startedSinceBoot,
      stopTimeoutSec: this.deps.stopTimeoutSec ?? 10,
      workloads: this.workloads,
      startFetch: (uuid, run) => {
        const step = steps.find((s) => s.step.kind === "fetchContentTree" && s.step.tree.uuid === uuid)!.step as { tree: DesiredState["contentTrees"][number] };
        this.startFetch(step.tree, sourceKey(step.tree), run);
      },
      network: this.deps.network,
      downloadRetryMaxMs: (this.deps.config.model()?.model.settings.downloadRetryS ?? 600) * 1000,
    };
    for (const phase of [0, 1, 2] as const) {
      const lanes = new Map<string, PlannedStep[]>();
      for (const s of steps) if (s.phase === phase) lanes.set(s.lane, [...(lanes.get(s.lane) ?? []), s]);
      const queue = [...lanes.entries()];
      const worker = async () => {
        for (let next = queue.shift(); next; next = queue.shift()) {
          const [lane, laneSteps] = next;
          const laneCtx: LaneContext = {};
          for (const s of laneSteps) {
            if (signal.aborted) return;
            if (s.needs.some((n) => failedLanes.has(n))) {
              failedLanes.add(lane);
              break;
            }
            try {
              await execute(s.step, ctx, laneCtx);
            } catch (e) {
              if (signal.aborted) return;
              failedLanes.add(lane);
              this.deps.events.publish({
                type: "reconcile.step-failed",
                objectKind: lane.split(":")[0],
                objectId: lane.slice(lane.indexOf(":") + 1),
                message: `${describeStep(s.step, this.workloads)}: ${(e as Error).message}`,
                data: { step: describeStep(s.step, this.workloads), reason: (e as Error).message },
              });
              break;
            }
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.deps.concurrency ?? LANES, queue.length) }, worker));
      if (signal.aborted) return failedLanes.size;
    }
    return failedLanes.size;
  }

  private lastProgressWrite = new Map<string, number>();
  /** Bytes of each download at its last written progress, for its speed. */
  private lastProgressBytes = new Map<string, { at: number; done: number }>();
  private contentTreeProgress(uuid: string, state: SwState, progress: number, bytes?: FetchBytes): void {
    const now = this.now();
    const prev = this.deps.store.observedOne("contentTree", uuid);
    if (prev?.state === state && now - (this.lastProgressWrite.get(uuid) ?? 0) < 1000) return;
    this.lastProgressWrite.set(uuid, now);
    // Progress in bytes and the speed since the last write (about a second), for the Activity page.
    const speed: Record<string, number> = {};
    if (bytes) {
      const last = this.lastProgressBytes.get(uuid);
      speed.bytesDone = bytes.done;
      speed.bytesTotal = bytes.total;
      speed.bytesPerSecond = last && now > last.at && bytes.done >= last.done ? Math.round(((bytes.done - last.done) * 1000) / (now - last.at)) : 0;
      this.lastProgressBytes.set(uuid, { at: now, done: bytes.done });
    } else if (state !== "DOWNLOADING") {
      this.lastProgressBytes.delete(uuid);
      speed.bytesPerSecond = 0;
    }
    this.putState("contentTree", uuid, prev?.name ?? uuid, state, null, { ...(prev?.data ?? {}), progress, ...speed });
    // The apps waiting for this image show its state and progress (no pass runs during a long fetch).
    for (const app of this.desired().apps) {
      if (app.imageContentTree !== uuid || app.error) continue;
      const row = this.deps.store.observedOne("app", app.uuid);
      if (row && row.data?.containerId) continue;
      this.putState("app", app.uuid, app.name, state, null, { ...(row?.data ?? {}), kind: app.kind, progress });
    }
  }

  /** Writes each object's state for status; publishes an event when a state or error changes. */
  private publishStates(desired: DesiredState, observed: Observed | null): void {
    const seen = { app: new Set<string>(), contentTree: new Set<string>(), volume: new Set<string>(), networkInstance: new Set<string>() };
    if (desired.network && this.deps.network) {
      for (const ni of this.deps.network.instanceStates(desired.network, observed?.network ? { items: observed.network.items, attachments: observed.network.attachments, facts: this.facts! } : null)) {
        seen.networkInstance.add(ni.uuid);
        this.putState("networkInstance", ni.uuid, ni.name, ni.state as SwState, ni.error, ni.data);
      }
    }
    for (const app of desired.apps) {
      seen.app.add(app.uuid);
      if (!observed) {
        this.putState("app", app.uuid, app.name, "INITIAL", app.error ?? `the container engine is not reachable: ${this.engineError}`, { kind: app.kind });
        continue;
      }
      const s = appState(app, desired, observed, this.workloads);
      this.putState("app", app.uuid, app.name, s.state, s.error, app.haltedBy ? { ...s.data, haltedBy: app.haltedBy } : s.data);
    }
    for (const t of desired.contentTrees) {
      seen.contentTree.add(t.uuid);
      const rec = observed?.contentTrees.get(t.uuid);
      this.putState("contentTree", t.uuid, t.name, rec?.state ?? "INITIAL", t.error ?? rec?.error ?? null, {
        progress: rec?.progress ?? 0,
        sizeBytes: rec?.sizeBytes ?? 0,
        image: rec?.imageRef ?? null,
      });
    }
    for (const v of desired.volumes) {
      seen.volume.add(v.uuid);
      const s = volumeState(v, desired, observed);
      this.putState("volume", v.uuid, v.name, s.state, s.error, s.data);
    }
    for (const kind of ["app", "contentTree", "volume", ...(desired.network ? (["networkInstance"] as const) : [])] as const) {
      for (const o of this.deps.store.observed(kind)) {
        if (seen[kind].has(o.id)) continue;
        const stillThere = kind === "app" && !!observed && this.workloads.some((w) => w.running(observed, o.id));
        if (stillThere) this.putState(kind, o.id, o.name ?? o.id, "HALTING", null, o.data ?? {});
        else {
          this.deps.store.deleteObserved(kind, o.id);
          this.deps.events.publish({ type: `${kind}.removed`, objectKind: kind, objectId: o.id, message: `${kind} ${o.name ?? o.id} removed` });
        }
      }
    }
  }

  private putState(kind: string, id: string, name: string, state: SwState, error: string | null, data: Record<string, unknown>): void {
    const prev = this.deps.store.observedOne(kind, id);
    this.deps.store.putObserved({ kind, id, name, state, error, data });
    if (!prev || prev.state !== state || prev.error !== error) {
      this.deps.events.publish({
        type: `${kind}.state`,
        objectKind: kind,
        objectId: id,
        message: `${kind} ${name}: ${state}${error ? ` — ${error}` : ""}`,
        data: { state, error, previous: prev?.state ?? null },
      });
    }
  }

  private nextWake(desired: DesiredState, observed: Observed): number {
    let at = Infinity;
    for (const r of observed.apps.values()) {
      if (r.nextStartAt > observed.now) at = Math.min(at, r.nextStartAt);
      if (r.error && r.nextRetryAt > observed.now) at = Math.min(at, r.nextRetryAt);
    }
    for (const r of observed.contentTrees.values()) if (r.error && r.nextRetryAt > observed.now) at = Math.min(at, r.nextRetryAt);
    for (const a of desired.apps) {
      const t = this.bootAt + a.startDelaySec * 1000;
      if (a.startDelaySec > 0 && !this.startedSinceBoot.has(a.uuid) && t > observed.now) at = Math.min(at, t);
    }
    return at;
  }

  private scheduleWake(at: number): void {
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    if (!Number.isFinite(at) || this.stopped) return;
    this.wakeTimer = setTimeout(() => this.guarded("wake-up", () => this.trigger(false)), Math.max(50, at - this.now() + 20));
  }

  private noteEngineError(e: Error): void {
    const msg = e.message;
    if (this.engineError !== msg) this.deps.log("warn", `container engine: ${msg}`);
    this.engineError = msg;
  }

  part(): PartStatus {
    if (this.engineError) return { name: "containers", state: "error", detail: `Docker engine not reachable: ${this.engineError}` };
    if (this.loopError) return { name: "containers", state: "error", detail: `reconcile failed at ${this.loopError.at.toISOString()}: ${this.loopError.message}` };
    const a = this.lastApply;
    return {
      name: "containers",
      state: a && a.failed ? "degraded" : "ok",
      detail: a ? `last apply ${a.at.toISOString()}: ${a.steps} step(s), ${a.failed} failed` : "no apply yet",
    };
  }
}
