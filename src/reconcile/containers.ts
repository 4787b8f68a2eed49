// Container apps as a workload kind: their steps, planned (pure) from the desired apps and the engine's
// containers with our labels; their state; and `ContainerWorkload`, which runs the steps on the container
// runtime (runtime/containers): the only caller of the engine in reconcile/.
import { containerKey } from "../network/model.ts";
import type { AppInterfaceSpec } from "../network/model.ts";
import type { PartStatus } from "../model/status.ts";
import { type TerminalSession, TerminalUnavailable } from "../model/terminal.ts";
import type { ContainerRuntime } from "../runtime/containers/runtime.ts";
import { netnsCounters, processIo } from "../runtime/proc.ts";
import type { OwnedContainer } from "../runtime/containers/types.ts";
import { dockerLoadStream } from "../storage/oci.ts";
import { pullContentTree } from "../storage/registry.ts";
import type { AppSample } from "../telemetry/metrics.ts";
import type { AppLogCollector } from "./app-logs.ts";
import type { DesiredApp, DesiredContentTree, DesiredState } from "./desired.ts";
import type { Observed } from "./observed.ts";
import type { PlannedStep, Step } from "./plan.ts";
import type { BackoffPolicy } from "../lib/backoff.ts";
import { CRASH_BACKOFF, noteCrash } from "./records.ts";
import {
  downloadContentTree,
  storedContentTree,
  type ExecutorContext,
  type FetchProgress,
  type LaneContext,
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

export type ContainerStep =
  | { kind: "removeContainer"; appUuid: string; containerId: string; reason: string }
  | { kind: "createContainer"; app: DesiredApp }
  | { kind: "startContainer"; app: DesiredApp; containerId?: string; reason: "first start" | "restart command" | "supervised restart" | "start command" }
  | { kind: "stopContainer"; app: DesiredApp; containerId: string }
  | { kind: "restartContainer"; app: DesiredApp; containerId: string }
  | { kind: "attachInterfaces"; app: DesiredApp; interfaces: AppInterfaceSpec[]; containerId?: string };

const STEPS = ["removeContainer", "createContainer", "startContainer", "stopContainer", "restartContainer", "attachInterfaces"] as const satisfies readonly ContainerStep["kind"][];

const CONTENT_FORMATS = new Set(["CONTAINER"]);

// ---- plan (pure)

function containerApps(desired: DesiredState): DesiredApp[] {
  return desired.apps.filter((a) => a.kind === "container" && !a.error);
}

function needs(desired: DesiredState): WorkloadNeeds {
  const apps = containerApps(desired);
  return {
    contentTrees: apps.filter((a) => a.activate && a.imageContentTree).map((a) => a.imageContentTree!),
    volumes: apps.flatMap((a) => a.mounts.map((m) => ({ uuid: m.volumeUuid, generation: m.generation }))),
  };
}

function planContainers(desired: DesiredState, observed: Observed, prepared: Prepared): PlannedStep[] {
  const out: PlannedStep[] = [];
  const add = (phase: PlannedStep["phase"], lane: string, step: Step, needs: string[] = []) => out.push({ phase, lane, needs, step });
  const now = observed.now;

  // ---- phase 0: containers nobody wants
  const desiredApps = new Map(desired.apps.map((a) => [a.uuid, a]));
  const byApp = new Map<string, OwnedContainer[]>();
  for (const c of observed.containers) {
    const app = desiredApps.get(c.appUuid);
    if (!app || app.kind !== "container") {
      add(0, `app:${c.appUuid}`, { kind: "removeContainer", appUuid: c.appUuid, containerId: c.id, reason: app ? "the app is no longer a container app" : "the app was removed from the config" });
      continue;
    }
    byApp.set(c.appUuid, [...(byApp.get(c.appUuid) ?? []), c]);
  }

  // ---- phase 1: one lane per app
  for (const app of containerApps(desired)) {
    const lane = `app:${app.uuid}`;
    const needs = app.mounts.map((m) => `vol:${volumeKey(m.volumeUuid, m.generation)}`);
    // A fetch runs beside the loop; the app's container is made in the pass after its image loaded.
    const imageWillBeReady = prepared.treeReady(app.imageContentTree!);
    const rec = observed.apps.get(app.uuid);
    const containers = byApp.get(app.uuid) ?? [];
    if (!rec) {
      // First sight (a new app, or a store that lost its records): take the counters as already applied.
      add(1, lane, { kind: "recordCounters", app });
    }
    const restartApplied = rec?.restartApplied ?? app.restartCounter;
    const purgeApplied = rec?.purgeApplied ?? app.purgeCounter;
    const retryBlocked = !!rec && rec.error !== null && rec.nextRetryAt > now;
    // App interfaces: attached right after each start (a started container has a new network namespace).
    const ifaces = observed.network ? (desired.network?.model.interfaces.filter((i) => i.appUuid === app.uuid) ?? []) : [];
    const attach = (containerId?: string, n: string[] = []) => {
      if (ifaces.length) add(1, lane, { kind: "attachInterfaces", app, interfaces: ifaces, containerId }, n);
    };

    if (app.purgeCounter > purgeApplied) {
      if (!imageWillBeReady) continue;
      for (const c of containers) add(1, lane, { kind: "removeContainer", appUuid: app.uuid, containerId: c.id, reason: "purge" }, needs);
      add(1, lane, { kind: "purgeVolumes", app }, needs);
      add(1, lane, { kind: "createContainer", app }, needs);
      if (app.activate) {
        add(1, lane, { kind: "startContainer", app, reason: "first start" }, needs);
        attach(undefined, needs);
      }
      add(1, lane, { kind: "recordCounters", app }, needs);
      continue;
    }

    // Keep the one container that matches the desired spec (a running one first); remove the rest.
    const matching = containers.filter((c) => c.generation === app.generation).sort((a, b) => rank(b) - rank(a));
    const keep = matching[0];
    for (const c of containers) {
      if (c !== keep) add(1, lane, { kind: "removeContainer", appUuid: app.uuid, containerId: c.id, reason: c.generation === app.generation ? "duplicate container" : "the app's spec changed" }, needs);
    }
    const restartPending = app.restartCounter > restartApplied;

    if (!keep) {
      if (retryBlocked || !imageWillBeReady) continue;
      add(1, lane, { kind: "createContainer", app }, needs);
      if (app.activate && startDelayOver(app, observed)) {
        add(1, lane, { kind: "startContainer", app, reason: "first start" }, needs);
        attach(undefined, needs);
      }
      if (restartPending) add(1, lane, { kind: "recordCounters", app }, needs);
      continue;
    }
    if (!app.activate) {
      if (keep.state === "running" || keep.state === "restarting" || keep.state === "paused") add(1, lane, { kind: "stopContainer", app, containerId: keep.id });
      if (restartPending) add(1, lane, { kind: "recordCounters", app });
      continue;
    }
    if (keep.state === "running") {
      if (restartPending) {
        add(1, lane, { kind: "restartContainer", app, containerId: keep.id });
        attach(keep.id);
        add(1, lane, { kind: "recordCounters", app });
      } else if (ifaces.length && !retryBlocked) {
        const key = containerKey(keep.id, keep.startedAt);
        const attached = ifaces.every((i) => observed.network!.attachments.some((a) => a.ifname === i.hostIfname && a.key === key));
        if (!attached) attach(keep.id);
      }
      continue;
    }
    // Not running and should be.
    if (restartPending) {
      add(1, lane, { kind: "startContainer", app, containerId: keep.id, reason: "restart command" });
      attach(keep.id);
      add(1, lane, { kind: "recordCounters", app });
    } else if (keep.startedAt === null) {
      if (!retryBlocked && startDelayOver(app, observed)) {
        add(1, lane, { kind: "startContainer", app, containerId: keep.id, reason: "first start" });
        attach(keep.id);
      }
    } else if ((rec?.nextStartAt ?? 0) <= now && !retryBlocked) {
      add(1, lane, { kind: "startContainer", app, containerId: keep.id, reason: "supervised restart" });
      attach(keep.id);
    }
  }
  return out;
}

function rank(c: { state: string }): number {
  return c.state === "running" ? 2 : c.state === "created" || c.state === "exited" ? 1 : 0;
}

function describe(s: Step): string {
  switch (s.kind) {
    case "removeContainer":
      return `remove container ${s.containerId.slice(0, 12)} of app ${s.appUuid} (${s.reason})`;
    case "createContainer":
      return `create the container of app ${s.app.name}`;
    case "startContainer":
      return `start app ${s.app.name} (${s.reason})`;
    case "stopContainer":
      return `stop app ${s.app.name}`;
    case "restartContainer":
      return `restart app ${s.app.name}`;
    case "attachInterfaces":
      return `attach ${s.interfaces.map((i) => i.name).join(", ")} of app ${s.app.name}`;
  }
  return s.kind;
}

// ---- state (pure)

/** Below this, the exit says how soon after its start the container ended. */
const QUICK_EXIT_MS = 10_000;

export function containerAppState(app: DesiredApp, desired: DesiredState, observed: Observed): ObjectState {
  const data: Record<string, unknown> = { kind: app.kind, activate: app.activate, version: app.version };
  const rec = observed.apps.get(app.uuid);
  const containers = observed.containers.filter((c) => c.appUuid === app.uuid);
  const c = containers.find((x) => x.generation === app.generation && x.state === "running") ?? containers.find((x) => x.generation === app.generation);
  if (c) Object.assign(data, { containerId: c.id, startedAt: c.startedAt?.toISOString() ?? null, restarts: rec?.crashes ?? 0, image: c.image });

  if (!c) {
    const ct = observed.contentTrees.get(app.imageContentTree ?? "");
    // A halted app's image is not fetched (plan.ts): it is simply halted.
    if (!app.activate && (!ct || (ct.state === "INITIAL" && !ct.error))) return { state: "HALTED", error: null, data };
    if (!ct || ct.state !== "LOADED") return waitingForTree(app.imageContentTree ?? "", desired, observed, data);
    const missingVolume = app.mounts.find((m) => !observed.volumes.some((v) => v.uuid.toLowerCase() === m.volumeUuid.toLowerCase() && v.generation === m.generation));
    if (missingVolume) return { state: "CREATING_VOLUME", error: rec?.error ?? null, data };
    return { state: app.activate ? "BOOTING" : "HALTED", error: rec?.error ?? null, data };
  }
  if (c.state === "running") return { state: app.activate ? "RUNNING" : "HALTING", error: null, data };
  if (!app.activate) return { state: "HALTED", error: null, data };
  if (c.startedAt === null) {
    if (!startDelayOver(app, observed)) return startDelayed(app, observed, data);
    return { state: "BOOTING", error: rec?.error ?? null, data };
  }
  // It ran and stopped although it should run: a crash, restarted by evebox with backoff.
  const ranMs = c.finishedAt && c.startedAt ? c.finishedAt.getTime() - c.startedAt.getTime() : 0;
  const why = c.oomKilled
    ? `killed: out of memory (limit ${Math.round(app.memoryBytes / 1048576)} MiB)`
    : `exited with code ${c.exitCode ?? "?"}${ranMs < QUICK_EXIT_MS ? ` ${(ranMs / 1000).toFixed(1)} s after start` : ""}`;
  const next = rec && rec.nextStartAt > observed.now ? `; restarting in ${Math.ceil((rec.nextStartAt - observed.now) / 1000)} s` : "; restarting";
  return { state: "BROKEN", error: `${why}${rec && rec.crashes > 1 ? ` (${rec.crashes} times in a row)` : ""}${next}`, data };
}

/** Supervision: when a container that should run has exited, count it once and back off (on the observed clock). */
export function noteExits(desired: DesiredState, observed: Observed, crash: BackoffPolicy = CRASH_BACKOFF): string[] {
  const changed: string[] = [];
  for (const app of desired.apps) {
    if (app.kind !== "container" || !app.activate) continue;
    const rec = observed.apps.get(app.uuid);
    const c = observed.containers.find((x) => x.appUuid === app.uuid && x.generation === app.generation);
    if (!rec || !c || c.state !== "exited" || !c.startedAt || !c.finishedAt) continue;
    const key = c.finishedAt.toISOString();
    if (rec.lastExitCounted === key) continue;
    noteCrash(rec, c.finishedAt.getTime() - c.startedAt.getTime(), observed.now, crash);
    rec.lastExitCounted = key;
    changed.push(app.uuid);
  }
  return changed;
}

/** The container kind's pure half (plan.ts plans with it; the workload below adds the engine). */
export const CONTAINER_KIND: WorkloadKind = {
  kind: "container",
  label: "container",
  steps: STEPS,
  needs,
  plan: planContainers,
  state: containerAppState,
  describe,
};

// ---- the runtime side

export interface ContainerWorkloadOptions {
  runtime: ContainerRuntime;
  /** How long to wait before trying again to open the engine's event stream (2 s). */
  watchRetryMs?: number;
}

/** Container apps on the container runtime: engine events, the steps' executors, image loads, logs, stats, shells. */
export class ContainerWorkload implements Workload {
  readonly kind = CONTAINER_KIND.kind;
  readonly label = CONTAINER_KIND.label;
  readonly steps = CONTAINER_KIND.steps;
  readonly needs = CONTAINER_KIND.needs;
  readonly plan = CONTAINER_KIND.plan;
  readonly state = CONTAINER_KIND.state;
  readonly describe = CONTAINER_KIND.describe;
  readonly runtime: ContainerRuntime;
  private host: WorkloadHost | null = null;
  private unsubscribe: (() => void) | null = null;
  private closed = false;
  private readonly watchRetryMs: number;

  constructor(o: ContainerWorkloadOptions) {
    this.runtime = o.runtime;
    this.watchRetryMs = o.watchRetryMs ?? 2000;
  }

  /**
   * Watches the engine's events (start, die, oom …): each asks for a pass. A watch that cannot open (the engine not
   * up yet: as init, evebox starts before dockerd answers) is the host's error and is tried again every
   * `watchRetryMs` until it opens; then a pass catches up with what happened meanwhile.
   */
  async start(host: WorkloadHost): Promise<void> {
    this.host = host;
    this.closed = false;
    if (await this.subscribe(host)) return;
    void (async () => {
      while (!this.closed) {
        await Bun.sleep(this.watchRetryMs);
        if (this.closed) return;
        if (await this.subscribe(host, true)) {
          host.onChange();
          return;
        }
      }
    })();
  }

  private async subscribe(host: WorkloadHost, quiet = false): Promise<boolean> {
    try {
      const unsubscribe = await this.runtime.watch(() => host.onChange(), { onError: (e) => host.onError(e) });
      if (this.closed) unsubscribe();
      else this.unsubscribe = unsubscribe;
      return true;
    } catch (e) {
      if (!quiet) host.onError(e as Error);
      return false;
    }
  }

  close(): void {
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  desire(): void {
    // desiredFromModel (desired.ts) reads everything a container needs.
  }

  async observe(): Promise<Partial<Observed>> {
    return { containers: await this.runtime.listOwned() };
  }

  noteExits(desired: DesiredState, observed: Observed): string[] {
    return noteExits(desired, observed, this.host?.records.crash);
  }

  running(observed: Observed, uuid: string): boolean {
    return observed.containers.some((c) => c.appUuid === uuid);
  }

  loads(tree: DesiredContentTree): boolean {
    return CONTENT_FORMATS.has(tree.format);
  }

  /** A registry image pulled (by digest when the content tree has a sha256), or an image archive downloaded and loaded. */
  async loadContentTree(tree: DesiredContentTree, ctx: ExecutorContext, progress: FetchProgress): Promise<LoadedContentTree> {
    // An image tarball in the content store (imported from the console) is loaded, whatever the datastore says.
    const stored = await storedContentTree(tree, ctx, progress);
    if (tree.source.kind === "registry" && !stored) {
      const result = await pullContentTree(
        this.runtime,
        { fqdn: tree.source.fqdn, username: tree.source.username, password: tree.source.password },
        { url: tree.source.url, sha256: tree.sha256 ?? undefined },
        (p) => progress("DOWNLOADING", p.bytesTotal ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 0, { done: p.bytesDone, total: p.bytesTotal }),
        ctx.signal,
        ctx.cache.destinations,
      );
      progress("LOADING", 100);
      // A pinned image already present was inspected by the pull's own check: its size is known.
      const size = result.sizeBytes ?? (await this.runtime.imageInfo(result.imageId))?.sizeBytes ?? 0;
      if (tree.maxSizeBytes && size > tree.maxSizeBytes) {
        await this.runtime.removeImage(result.imageId).catch(() => false);
        throw new Error(`the image is ${mib(size)}, over the content tree's maxSizeBytes ${mib(tree.maxSizeBytes)}: refused and removed`);
      }
      return { imageRef: result.ref, imageId: result.imageId, sizeBytes: size };
    }
    const entry = stored ?? (await downloadContentTree(tree, ctx, progress));
    // Under evebox's own reference: the tags inside the archive are the host's business (see loadImageTarAs).
    const ref = `evebox-content/${tree.uuid.toLowerCase()}:${tree.sha256!.slice(0, 12).toLowerCase()}`;
    let id: string;
    try {
      // An OCI image layout is given to the engine with a docker save manifest added (storage/oci.ts).
      id = await this.runtime.loadImageTarAs(entry.path, ref, (await dockerLoadStream(entry.path).catch(() => null)) ?? undefined);
    } catch (e) {
      throw new Error(`not a loadable container image (docker load refused it): ${(e as Error).message}`);
    }
    return { imageRef: ref, imageId: id, sizeBytes: entry.sizeBytes };
  }

  async removeContentTree({ imageRef }: { imageRef: string | null }): Promise<void> {
    // Only removed when no container uses it any more; the engine refuses otherwise, which is fine.
    if (imageRef) await this.runtime.removeImage(imageRef).catch(() => false);
  }

  execute(step: Step, ctx: ExecutorContext, lane: LaneContext): Promise<void> {
    switch (step.kind) {
      case "removeContainer":
        return this.removeContainer(step, ctx, lane);
      case "createContainer":
        return this.createContainer(step, ctx, lane);
      case "startContainer":
        return this.startContainer(step, ctx, lane);
      case "stopContainer":
        return this.runtime.stop(step.containerId, ctx.stopTimeoutSec);
      case "restartContainer":
        return this.restartContainer(step, ctx);
      case "attachInterfaces":
        return this.attachInterfaces(step, ctx, lane);
    }
    throw new Error(`containers: no executor for ${step.kind}`);
  }

  private async removeContainer({ containerId }: Extract<Step, { kind: "removeContainer" }>, ctx: ExecutorContext, lane: LaneContext): Promise<void> {
    await this.runtime.stop(containerId, ctx.stopTimeoutSec).catch(() => undefined);
    await this.runtime.remove(containerId);
    if (lane.containerId === containerId) lane.containerId = undefined;
  }

  private async createContainer({ app }: Extract<Step, { kind: "createContainer" }>, ctx: ExecutorContext, lane: LaneContext): Promise<void> {
    const ct = ctx.records.contentTree(app.imageContentTree!);
    if (!ct || ct.state !== "LOADED" || !(ct.imageId ?? ct.imageRef)) throw new Error(`app ${app.name}: its image is not loaded`);
    const dev = containerDevices(app);
    const mounts = [...app.mounts.map((m) => ({ source: ctx.volumes.path(m.volumeUuid, m.generation), target: m.target, readOnly: m.readOnly })), ...dev.binds];
    const rec = ctx.records.app(app.uuid);
    try {
      lane.containerId = await this.runtime.create({
        appUuid: app.uuid,
        name: app.name,
        image: ct.imageId ?? ct.imageRef!,
        env: app.env,
        cmd: app.cmd ?? undefined,
        memoryBytes: app.memoryBytes || undefined,
        cpus: app.nanoCpus || undefined,
        mounts,
        // With the network part, interfaces are veths evebox moves into the container's own namespace.
        networkMode: ctx.network ? "none" : app.networked ? "bridge" : "none",
        generation: app.generation,
        labels: { "evebox.app.version": app.version },
        ...(dev.devices.length ? { devices: dev.devices } : {}),
      });
      if (rec) {
        rec.error = null;
        rec.attempts = 0;
        rec.crashes = 0;
        rec.nextStartAt = 0;
        ctx.records.putApp(rec);
      }
    } catch (e) {
      throw ctx.records.appFailed(app.uuid, `creating the container failed: ${(e as Error).message}`);
    }
  }

  private async startContainer({ app, containerId }: Extract<Step, { kind: "startContainer" }>, ctx: ExecutorContext, lane: LaneContext): Promise<void> {
    const id = containerId ?? lane.containerId;
    if (!id) throw new Error(`app ${app.name}: no container to start`);
    try {
      await this.runtime.start(id);
      await this.moveCan(app, id);
    } catch (e) {
      throw ctx.records.appFailed(app.uuid, `starting the container failed: ${(e as Error).message}`);
    }
    noteStarted(ctx, app.uuid);
  }

  private async restartContainer({ app, containerId }: Extract<Step, { kind: "restartContainer" }>, ctx: ExecutorContext): Promise<void> {
    await this.runtime.stop(containerId, ctx.stopTimeoutSec);
    try {
      await this.runtime.start(containerId);
      await this.moveCan(app, containerId);
    } catch (e) {
      throw ctx.records.appFailed(app.uuid, `restarting the container failed: ${(e as Error).message}`);
    }
    ctx.startedSinceBoot.add(app.uuid);
  }

  /** The app's CAN interfaces into its (new) network namespace: every start makes a new one. */
  private async moveCan(app: DesiredApp, id: string): Promise<void> {
    for (const c of app.devices.can) await this.runtime.moveLinkInto(id, c.ifname);
  }

  private async attachInterfaces({ app, interfaces, containerId }: Extract<Step, { kind: "attachInterfaces" }>, ctx: ExecutorContext, lane: LaneContext): Promise<void> {
    if (!ctx.network) return;
    const id = containerId ?? lane.containerId;
    if (!id) throw new Error(`app ${app.name}: no container to attach interfaces to`);
    const info = await this.runtime.inspect(id);
    // A container that already exited has no namespace to attach to; supervision restarts it (and attaches then).
    if (!info.State?.Running || !info.State.Pid) return;
    try {
      await ctx.network.attachContainer(interfaces, info.State.Pid, containerKey(info.Id, info.State.StartedAt));
    } catch (e) {
      throw ctx.records.appFailed(app.uuid, (e as Error).message);
    }
  }

  followLogs(logs: AppLogCollector, observed: Observed): void {
    logs.sync(this.runtime, observed.containers);
  }

  /** The init pid of each running container (for its namespace's network counters), by container id and start. */
  private readonly pids = new Map<string, number>();

  async samples(): Promise<AppSample[]> {
    let containers;
    try {
      containers = (await this.runtime.listOwned()).filter((c) => c.state === "running");
    } catch {
      return [];
    }
    const out: AppSample[] = [];
    const running = new Set<string>();
    await Promise.all(
      containers.map(async (c) => {
        const key = `${c.id}@${c.startedAt?.getTime() ?? 0}`;
        running.add(key);
        try {
          const st = await this.runtime.stats(c.id);
          let pid = this.pids.get(key);
          if (pid === undefined) {
            pid = (await this.runtime.inspect(c.id)).State?.Pid ?? 0;
            this.pids.set(key, pid);
          }
          const net = pid ? netnsCounters(pid) : [];
          // Without the engine's blkio accounting (cgroup v1 without it), the container's init and what it reaped.
          const io = st.diskReadBytes === null && pid ? processIo(pid) : null;
          out.push({
            uuid: c.appUuid,
            name: c.appName,
            version: c.labels["evebox.app.version"],
            cpuNs: st.cpuTotalNs,
            startedAt: c.startedAt ?? undefined,
            memoryUsedBytes: st.memoryUsedBytes,
            memoryLimitBytes: st.memoryLimitBytes,
            diskReadBytes: st.diskReadBytes ?? io?.readBytes,
            diskWriteBytes: st.diskWriteBytes ?? io?.writeBytes,
            netRxBytes: net.reduce((n, i) => n + i.rxBytes, 0),
            netTxBytes: net.reduce((n, i) => n + i.txBytes, 0),
          });
        } catch {
          // stopped between list and stats
        }
      }),
    );
    for (const id of this.pids.keys()) if (!running.has(id)) this.pids.delete(id);
    return out;
  }

  /** A shell (`/bin/sh`, with a TTY) in the app's running container. */
  async openConsole(app: DesiredApp): Promise<TerminalSession> {
    const containers = await this.runtime.listOwned();
    const c = containers.find((x) => x.appUuid === app.uuid && x.state === "running");
    if (!c) throw new TerminalUnavailable(409, `app ${app.name}: its container is not running, so there is no shell to open`);
    const shell = await this.runtime.openShell(c.id);
    return { kind: "shell", readable: shell.readable, write: shell.write, resize: shell.resize, close: shell.close };
  }

  part(): PartStatus | null {
    return null; // the reconciler's own part is named "containers"
  }

  forget(): void {
    // nothing of a container app is kept beside its record
  }
}

/**
 * The device nodes a container app is given: each at its host path (`/dev/ttyS0`, `/dev/ttyUSB1`,
 * `/dev/bus/usb/001/003`) as a device (its node made in the container, the cgroup allowing it), and nothing else of
 * the host's /dev. A pty (`/dev/pts/<n>`, a virtual serial port) cannot be a device node outside its own devpts
 * (opening one gives EIO), so it is bind-mounted as `/dev/ttyV<k>` — k its place among the app's ptys, from 0.
 */
export function containerDevices(app: Pick<DesiredApp, "devices">): { devices: { hostPath: string; containerPath: string }[]; binds: { source: string; target: string; readOnly: false }[] } {
  let k = 0;
  const devices: { hostPath: string; containerPath: string }[] = [];
  const binds: { source: string; target: string; readOnly: false }[] = [];
  for (const s of app.devices.serial) {
    if (s.hostPath.startsWith("/dev/pts/")) binds.push({ source: s.hostPath, target: `/dev/ttyV${k++}`, readOnly: false });
    else devices.push({ hostPath: s.hostPath, containerPath: s.hostPath });
  }
  for (const u of app.devices.usb) if (u.devPath) devices.push({ hostPath: u.devPath, containerPath: u.devPath });
  return { devices, binds };
}

function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}
