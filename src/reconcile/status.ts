// The state each object shows in status, derived from desired + observed (pure).
import type { DesiredApp, DesiredState, DesiredVolume } from "./desired.ts";
import { type Observed } from "./observed.ts";
import { startDelayOver } from "./plan.ts";
import type { SwState } from "../model/swstate.ts";
import { vmAppState } from "./vms.ts";

export interface ObjectState {
  state: SwState;
  error: string | null;
  data: Record<string, unknown>;
}

const QUICK_EXIT_MS = 10_000;

export function appState(app: DesiredApp, desired: DesiredState, observed: Observed): ObjectState {
  const data: Record<string, unknown> = { kind: app.kind, activate: app.activate, version: app.version };
  if (app.error) return { state: "INITIAL", error: app.error, data };
  if (app.kind === "vm") return vmAppState(app, desired, observed) ?? { state: "INITIAL", error: "VM apps are not run by this evebox (it was started without the VM runtime)", data };
  const rec = observed.apps.get(app.uuid);
  const containers = observed.containers.filter((c) => c.appUuid === app.uuid);
  const c = containers.find((x) => x.generation === app.generation && x.state === "running") ?? containers.find((x) => x.generation === app.generation);
  if (c) Object.assign(data, { containerId: c.id, startedAt: c.startedAt?.toISOString() ?? null, restarts: rec?.crashes ?? 0, image: c.image });

  if (!c) {
    const ct = observed.contentTrees.get(app.imageContentTree ?? "");
    // A halted app's image is not fetched (plan.ts): it is simply halted.
    if (!app.activate && (!ct || (ct.state === "INITIAL" && !ct.error))) return { state: "HALTED", error: null, data };
    if (!ct || ct.state !== "LOADED") {
      const tree = desired.contentTrees.find((t) => t.uuid === app.imageContentTree);
      return {
        state: ct?.state ?? "INITIAL",
        error: ct?.error ? `content tree ${tree?.name ?? app.imageContentTree}: ${ct.error}` : null,
        data: { ...data, progress: ct?.progress ?? 0 },
      };
    }
    const missingVolume = app.mounts.find((m) => !observed.volumes.some((v) => v.uuid.toLowerCase() === m.volumeUuid.toLowerCase() && v.generation === m.generation));
    if (missingVolume) return { state: "CREATING_VOLUME", error: rec?.error ?? null, data };
    return { state: app.activate ? "BOOTING" : "HALTED", error: rec?.error ?? null, data };
  }
  if (c.state === "running") return { state: app.activate ? "RUNNING" : "HALTING", error: null, data };
  if (!app.activate) return { state: "HALTED", error: null, data };
  if (c.startedAt === null) {
    if (!startDelayOver(app, observed)) return { state: "START_DELAYED", error: null, data: { ...data, startAt: new Date(observed.bootAt + app.startDelaySec * 1000).toISOString() } };
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

/**
 * A volume's state: a downloaded one is created once its content tree is LOADED and carries the tree's error
 * (an image refused by the disk check leaves the volume in error, naming the tree and why); others once they exist.
 */
export function volumeState(v: DesiredVolume, desired: DesiredState, observed: Observed | null): ObjectState {
  const data = { generation: v.generation, sizeBytes: v.sizeBytes };
  if (v.origin === "download") {
    const rec = observed?.contentTrees.get(v.contentTreeId ?? "");
    if (rec?.state === "LOADED") return { state: "CREATED_VOLUME", error: null, data };
    const tree = desired.contentTrees.find((t) => t.uuid === v.contentTreeId);
    const why = tree?.error ?? rec?.error ?? null;
    return { state: "INITIAL", error: why ? `content tree ${tree?.name || v.contentTreeId}: ${why}` : null, data };
  }
  const exists = observed?.volumes.some((o) => o.uuid.toLowerCase() === v.uuid.toLowerCase() && o.generation === v.generation);
  return { state: exists ? "CREATED_VOLUME" : "INITIAL", error: null, data };
}

/** Supervision: when a container that should run has exited, count it once and back off. */
export function noteExits(desired: DesiredState, observed: Observed): string[] {
  const changed: string[] = [];
  for (const app of desired.apps) {
    if (app.kind !== "container" || !app.activate) continue;
    const rec = observed.apps.get(app.uuid);
    const c = observed.containers.find((x) => x.appUuid === app.uuid && x.generation === app.generation);
    if (!rec || !c || c.state !== "exited" || !c.startedAt || !c.finishedAt) continue;
    const key = c.finishedAt.toISOString();
    if (rec.lastExitCounted === key) continue;
    const ran = c.finishedAt.getTime() - c.startedAt.getTime();
    rec.crashes = ran < 60_000 ? rec.crashes + 1 : 1;
    rec.nextStartAt = observed.now + Math.min(300_000, 1000 * 2 ** Math.min(rec.crashes - 1, 9));
    rec.lastExitCounted = key;
    changed.push(app.uuid);
  }
  return changed;
}
