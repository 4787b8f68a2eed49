// The executors of the steps every kind shares (content trees, volumes, counters, networks); a kind's own steps
// run in its workload (containers.ts, vms.ts). Each does one thing and records the outcome; failures carry what
// the operator needs (which app, what failed).
import type { SwState } from "../model/swstate.ts";
import type { DesiredContentTree } from "./desired.ts";
import type { ContentTreeRecord } from "./observed.ts";
import type { CommonStep, Step } from "./plan.ts";
import { downloadContentTree, type ExecutorContext, type FetchBytes, fileSourceKey, type LaneContext, sourceKey } from "./workload.ts";

export type { ExecutorContext, LaneContext } from "./workload.ts";

type Executor<K extends CommonStep["kind"]> = (step: Extract<CommonStep, { kind: K }>, ctx: ExecutorContext, lane: LaneContext) => Promise<void>;

const fetchContentTree: Executor<"fetchContentTree"> = async ({ tree, asFile }, ctx) => {
  ctx.startFetch(tree.uuid, (signal) => fetchNow(tree, { ...ctx, signal }, asFile === true));
};

/**
 * Download (or pull), verify and load one content tree, by the kind that uses its format — or, `asFile`, only
 * download it into the content store (sha256 checked), for a patch envelope's volume artifact; records its
 * progress, result or error.
 */
async function fetchNow(tree: DesiredContentTree, ctx: ExecutorContext, asFile = false): Promise<void> {
  const key = asFile ? fileSourceKey(tree) : sourceKey(tree);
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
    sourceKey: key,
  };
  rec.sourceKey = key;
  const set = (state: SwState, progress: number, bytes?: FetchBytes) => {
    const changed = rec.state !== state;
    rec.state = state;
    rec.progress = progress;
    // The record is what app states are derived from: keep it current on each state change.
    if (changed) ctx.records.putContentTree(rec);
    ctx.progress(tree.uuid, state, progress, bytes);
  };
  try {
    set("DOWNLOADING", 0);
    if (asFile) {
      const { sizeBytes } = await downloadContentTree(tree, ctx, set);
      Object.assign(rec, { imageRef: null, imageId: null, sizeBytes });
    } else {
      const kind = ctx.workloads.find((w) => w.loads(tree));
      if (!kind) throw new Error(`no workload of this evebox uses content trees of format ${tree.format}`);
      Object.assign(rec, await kind.loadContentTree(tree, ctx, set));
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
    rec.nextRetryAt = ctx.records.now() + Math.min(ctx.records.retryMs(rec.attempts), ctx.downloadRetryMaxMs);
    ctx.records.putContentTree(rec);
    throw e;
  }
  ctx.records.putContentTree(rec);
}

const removeContentTree: Executor<"removeContentTree"> = async (step, ctx) => {
  for (const w of ctx.workloads) await w.removeContentTree(step);
  ctx.records.deleteContentTree(step.uuid);
};

const createVolume: Executor<"createVolume"> = async ({ volume }, ctx) => {
  await ctx.volumes.create({ uuid: volume.uuid, generationCount: volume.generation, sizeBytes: volume.sizeBytes, displayName: volume.name });
};

const removeVolume: Executor<"removeVolume"> = async ({ uuid, generation }, ctx) => {
  await ctx.volumes.remove(uuid, generation);
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
  for (const w of ctx.workloads) w.forget(uuid);
};

const reconcileNetworks: Executor<"reconcileNetworks"> = async ({ ops, network, current }, ctx) => {
  if (!ctx.network) return;
  const results = await ctx.network.applyOps(ops, network, current, ctx.signal);
  const failed = results.filter((r) => r.error && !r.skipped);
  if (failed.length) throw new Error(failed.map((r) => `${r.op.op} ${r.op.item.id}: ${r.error}`).join("; "));
};

const detachInterfaces: Executor<"detachInterfaces"> = async ({ ifnames }, ctx) => {
  await ctx.network?.detach(ifnames);
};

const COMMON: { [K in CommonStep["kind"]]: Executor<K> } = {
  fetchContentTree,
  removeContentTree,
  createVolume,
  removeVolume,
  purgeVolumes,
  recordCounters,
  forgetApp,
  reconcileNetworks,
  detachInterfaces,
};

/** Runs one step: a shared one here, a kind's own in its workload. */
export function execute(step: Step, ctx: ExecutorContext, lane: LaneContext): Promise<void> {
  const common = COMMON[step.kind as CommonStep["kind"]] as Executor<CommonStep["kind"]> | undefined;
  if (common) return common(step as never, ctx, lane);
  const w = ctx.workloads.find((k) => k.steps.includes(step.kind));
  if (!w) return Promise.reject(new Error(`no workload of this evebox runs ${step.kind} steps`));
  return w.execute(step, ctx, lane);
}
