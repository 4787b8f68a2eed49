// One executor per step kind. Each does one thing against a real engine or the file system and
// records the outcome; failures carry what the operator needs (which app, what failed).
import type { NetworkManager } from "../network/manager.ts";
import { containerKey } from "../network/model.ts";
import type { ContainerRuntime } from "../runtime/containers/runtime.ts";
import type { ContentCache } from "../storage/cache.ts";
import { pullContentTree } from "../storage/registry.ts";
import type { VolumeStore } from "../storage/volumes.ts";
import type { DesiredContentTree } from "./desired.ts";
import type { ContentTreeRecord } from "./observed.ts";
import { sourceKey, type Step } from "./plan.ts";
import type { Records } from "./records.ts";
import { isDiskContentTree, verifyDiskContentTree, VM_EXECUTORS, type VmApps } from "./vms.ts";
import type { SwState } from "../model/swstate.ts";

export interface ExecutorContext {
  runtime: ContainerRuntime;
  cache: ContentCache;
  volumes: VolumeStore;
  records: Records;
  signal: AbortSignal;
  now: () => number;
  /** Live progress of a content tree (state and percent), for status and events. */
  progress: (uuid: string, state: SwState, progress: number) => void;
  /** Apps started since evebox came up (start delays apply only before). */
  startedSinceBoot: Set<string>;
  stopTimeoutSec: number;
  /** Runs a fetch beside the loop (the reconciler tracks and aborts it). */
  startFetch: (uuid: string, run: (signal: AbortSignal) => Promise<void>) => void;
  /** VM apps under QEMU; absent: VM apps are not run. */
  vms?: VmApps;
  /** Network instances and app interfaces; absent: apps with interfaces get the engine's default bridge. */
  network?: NetworkManager;
}

/** Per-lane scratch: a container created earlier in the lane is the one later steps act on. */
export interface LaneContext {
  containerId?: string;
}

type Executor<K extends Step["kind"]> = (step: Extract<Step, { kind: K }>, ctx: ExecutorContext, lane: LaneContext) => Promise<void>;

export function backoffMs(attempts: number, baseMs = 5_000, maxMs = 600_000): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempts - 1));
  return Math.round(exp * (0.8 + Math.random() * 0.4));
}

const fetchContentTree: Executor<"fetchContentTree"> = async ({ tree }, ctx) => {
  ctx.startFetch(tree.uuid, (signal) => fetchNow(tree, { ...ctx, signal }));
};

/** Download (or pull), verify and load one content tree; records its progress, result or error. */
async function fetchNow(tree: DesiredContentTree, ctx: ExecutorContext): Promise<void> {
  const rec: ContentTreeRecord = ctx.records.contentTree(tree.uuid) ?? {
    uuid: tree.uuid,
    state: "INITIAL",
    error: null,
    imageRef: null,
    imageId: null,
    sizeBytes: 0,
    progress: 0,
    attempts: 0,
    nextRetryAt: 0,
    sourceKey: sourceKey(tree),
  };
  rec.sourceKey = sourceKey(tree);
  const set = (state: SwState, progress: number) => {
    const changed = rec.state !== state;
    rec.state = state;
    rec.progress = progress;
    // The record is what app states are derived from: keep it current on each state change.
    if (changed) ctx.records.putContentTree(rec);
    ctx.progress(tree.uuid, state, progress);
  };
  try {
    set("DOWNLOADING", 0);
    if (tree.source.kind === "registry") {
      const result = await pullContentTree(
        ctx.runtime,
        { fqdn: tree.source.fqdn, username: tree.source.username, password: tree.source.password },
        { url: tree.source.url, sha256: tree.sha256 ?? undefined },
        (p) => set("DOWNLOADING", p.bytesTotal ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 0),
        ctx.signal,
        ctx.cache.destinations,
      );
      set("LOADING", 100);
      const info = await ctx.runtime.imageInfo(result.imageId);
      const size = info?.sizeBytes ?? 0;
      if (tree.maxSizeBytes && size > tree.maxSizeBytes) {
        await ctx.runtime.removeImage(result.imageId).catch(() => false);
        throw new Error(`the image is ${mib(size)}, over the content tree's maxSizeBytes ${mib(tree.maxSizeBytes)}: refused and removed`);
      }
      rec.imageRef = result.ref;
      rec.imageId = result.imageId;
      rec.sizeBytes = size;
    } else {
      const entry = await ctx.cache.put({
        url: tree.source.url,
        sha256: tree.sha256!,
        maxSizeBytes: tree.maxSizeBytes ?? undefined,
        signal: ctx.signal,
        onProgress: (p) => set("DOWNLOADING", p.bytesTotal ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 0),
      });
      set("VERIFYING", 100); // the cache verified the sha256 while downloading; record the step
      set("LOADING", 100);
      if (isDiskContentTree(tree)) {
        // A VM disk stays in the cache (the VM's volume is an overlay over it); it must really be a disk.
        await verifyDiskContentTree(tree, entry.path);
        rec.imageRef = null;
        rec.imageId = null;
        rec.sizeBytes = entry.sizeBytes;
        rec.error = null;
        rec.attempts = 0;
        rec.nextRetryAt = 0;
        set("LOADED", 100);
        ctx.records.putContentTree(rec);
        return;
      }
      // Under evebox's own reference: the tags inside the archive are the host's business (see loadImageTarAs).
      const ref = `evebox-content/${tree.uuid.toLowerCase()}:${tree.sha256!.slice(0, 12).toLowerCase()}`;
      let id: string;
      try {
        id = await ctx.runtime.loadImageTarAs(entry.path, ref);
      } catch (e) {
        throw new Error(`not a loadable container image (docker load refused it): ${(e as Error).message}`);
      }
      rec.imageRef = ref;
      rec.imageId = id;
      rec.sizeBytes = entry.sizeBytes;
    }
    rec.error = null;
    rec.attempts = 0;
    rec.nextRetryAt = 0;
    set("LOADED", 100);
  } catch (e) {
    if (ctx.signal.aborted) {
      rec.state = "INITIAL";
      ctx.records.putContentTree(rec);
      throw e;
    }
    rec.error = (e as Error).message;
    rec.attempts++;
    rec.nextRetryAt = ctx.now() + backoffMs(rec.attempts);
    ctx.records.putContentTree(rec);
    throw e;
  }
  ctx.records.putContentTree(rec);
}

const removeContentTree: Executor<"removeContentTree"> = async ({ uuid, imageRef }, ctx) => {
  // Only removed when no container uses it any more; the engine refuses otherwise, which is fine.
  if (imageRef) await ctx.runtime.removeImage(imageRef).catch(() => false);
  ctx.records.deleteContentTree(uuid);
};

const createVolume: Executor<"createVolume"> = async ({ volume }, ctx) => {
  await ctx.volumes.create({ uuid: volume.uuid, generationCount: volume.generation, sizeBytes: volume.sizeBytes, displayName: volume.name });
};

const removeVolume: Executor<"removeVolume"> = async ({ uuid, generation }, ctx) => {
  await ctx.volumes.remove(uuid, generation);
};

const removeContainer: Executor<"removeContainer"> = async ({ containerId }, ctx, lane) => {
  await ctx.runtime.stop(containerId, ctx.stopTimeoutSec).catch(() => undefined);
  await ctx.runtime.remove(containerId);
  if (lane.containerId === containerId) lane.containerId = undefined;
};

const createContainer: Executor<"createContainer"> = async ({ app }, ctx, lane) => {
  const ct = ctx.records.contentTree(app.imageContentTree!);
  if (!ct || ct.state !== "LOADED" || !(ct.imageId ?? ct.imageRef)) throw new Error(`app ${app.name}: its image is not loaded`);
  const mounts = app.mounts.map((m) => ({ source: ctx.volumes.path(m.volumeUuid, m.generation), target: m.target, readOnly: m.readOnly }));
  const rec = ctx.records.app(app.uuid);
  try {
    lane.containerId = await ctx.runtime.create({
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
    });
    if (rec) {
      rec.error = null;
      rec.attempts = 0;
      rec.crashes = 0;
      rec.nextStartAt = 0;
      ctx.records.putApp(rec);
    }
  } catch (e) {
    throw appFailure(ctx, app.uuid, `creating the container failed: ${(e as Error).message}`);
  }
};

const startContainer: Executor<"startContainer"> = async ({ app, containerId }, ctx, lane) => {
  const id = containerId ?? lane.containerId;
  if (!id) throw new Error(`app ${app.name}: no container to start`);
  try {
    await ctx.runtime.start(id);
  } catch (e) {
    throw appFailure(ctx, app.uuid, `starting the container failed: ${(e as Error).message}`);
  }
  ctx.startedSinceBoot.add(app.uuid);
  const rec = ctx.records.app(app.uuid);
  if (rec && rec.error) {
    rec.error = null;
    rec.attempts = 0;
    ctx.records.putApp(rec);
  }
};

const stopContainer: Executor<"stopContainer"> = async ({ containerId }, ctx) => {
  await ctx.runtime.stop(containerId, ctx.stopTimeoutSec);
};

const restartContainer: Executor<"restartContainer"> = async ({ app, containerId }, ctx) => {
  await ctx.runtime.stop(containerId, ctx.stopTimeoutSec);
  try {
    await ctx.runtime.start(containerId);
  } catch (e) {
    throw appFailure(ctx, app.uuid, `restarting the container failed: ${(e as Error).message}`);
  }
  ctx.startedSinceBoot.add(app.uuid);
};

const purgeVolumes: Executor<"purgeVolumes"> = async ({ app }, ctx) => {
  for (const m of app.mounts) await ctx.volumes.purge(m.volumeUuid, m.generation);
};

const recordCounters: Executor<"recordCounters"> = async ({ app }, ctx) => {
  const rec = ctx.records.app(app.uuid) ?? ctx.records.newApp(app.uuid, app.restartCounter, app.purgeCounter);
  rec.restartApplied = app.restartCounter;
  rec.purgeApplied = app.purgeCounter;
  ctx.records.putApp(rec);
};

const forgetApp: Executor<"forgetApp"> = async ({ uuid }, ctx) => {
  ctx.records.deleteApp(uuid);
  ctx.vms?.forget(uuid);
};

const reconcileNetworks: Executor<"reconcileNetworks"> = async ({ ops, network, current }, ctx) => {
  if (!ctx.network) return;
  const results = await ctx.network.applyOps(ops, network, current, ctx.signal);
  const failed = results.filter((r) => r.error && !r.skipped);
  if (failed.length) throw new Error(failed.map((r) => `${r.op.op} ${r.op.item.id}: ${r.error}`).join("; "));
};

const attachInterfaces: Executor<"attachInterfaces"> = async ({ app, interfaces, containerId }, ctx, lane) => {
  if (!ctx.network) return;
  const id = containerId ?? lane.containerId;
  if (!id) throw new Error(`app ${app.name}: no container to attach interfaces to`);
  const info = await ctx.runtime.inspect(id);
  // A container that already exited has no namespace to attach to; supervision restarts it (and attaches then).
  if (!info.State?.Running || !info.State.Pid) return;
  try {
    await ctx.network.attachContainer(interfaces, info.State.Pid, containerKey(info.Id, info.State.StartedAt));
  } catch (e) {
    throw appFailure(ctx, app.uuid, (e as Error).message);
  }
};

const detachInterfaces: Executor<"detachInterfaces"> = async ({ ifnames }, ctx) => {
  await ctx.network?.detach(ifnames);
};

function appFailure(ctx: ExecutorContext, uuid: string, message: string): Error {
  const rec = ctx.records.app(uuid);
  if (rec) {
    rec.error = message;
    rec.attempts++;
    rec.nextRetryAt = ctx.now() + backoffMs(rec.attempts);
    ctx.records.putApp(rec);
  }
  return new Error(message);
}

function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}

const EXECUTORS: { [K in Step["kind"]]: Executor<K> } = {
  fetchContentTree,
  removeContentTree,
  createVolume,
  removeVolume,
  removeContainer,
  createContainer,
  startContainer,
  stopContainer,
  restartContainer,
  purgeVolumes,
  recordCounters,
  forgetApp,
  ...VM_EXECUTORS,
  reconcileNetworks,
  attachInterfaces,
  detachInterfaces,
};

export function execute(step: Step, ctx: ExecutorContext, lane: LaneContext): Promise<void> {
  return (EXECUTORS[step.kind] as Executor<typeof step.kind>)(step as never, ctx, lane);
}
