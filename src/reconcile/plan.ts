// plan(desired, observed) → typed steps. Pure: no engine, no clock, no store — everything it needs
// is in its arguments, so it is unit-tested on its own.
import { type GraphOp, type Item, planGraph } from "../network/graph.ts";
import { MODIFIABLE } from "../network/items.ts";
import type { DesiredNetwork } from "../network/manager.ts";
import { type AppInterfaceSpec, containerKey } from "../network/model.ts";
import type { DesiredApp, DesiredContentTree, DesiredState, DesiredVolume } from "./desired.ts";
import type { Observed } from "./observed.ts";
import { describeVmStep, planVms, type VmStep } from "./vms.ts";

export type Step =
  /** Starts a background fetch (download, verify, load); its completion triggers the next pass. */
  | { kind: "fetchContentTree"; tree: DesiredContentTree }
  | { kind: "removeContentTree"; uuid: string; imageRef: string | null }
  | { kind: "createVolume"; volume: DesiredVolume }
  | { kind: "removeVolume"; uuid: string; generation: number }
  | { kind: "removeContainer"; appUuid: string; containerId: string; reason: string }
  | { kind: "createContainer"; app: DesiredApp }
  | { kind: "startContainer"; app: DesiredApp; containerId?: string; reason: "first start" | "restart command" | "supervised restart" | "start command" }
  | { kind: "stopContainer"; app: DesiredApp; containerId: string }
  | { kind: "restartContainer"; app: DesiredApp; containerId: string }
  | { kind: "purgeVolumes"; app: DesiredApp }
  | { kind: "recordCounters"; app: DesiredApp }
  | { kind: "forgetApp"; uuid: string }
  | VmStep
  | { kind: "reconcileNetworks"; ops: GraphOp[]; network: DesiredNetwork; current: Item[] }
  | { kind: "attachInterfaces"; app: DesiredApp; interfaces: AppInterfaceSpec[]; containerId?: string }
  | { kind: "detachInterfaces"; appUuid: string; ifnames: string[] };

/**
 * A step with where it runs: steps of one lane run in order; lanes of one phase run in parallel;
 * phases run one after another. A lane whose `needs` lanes failed in this apply is skipped.
 */
export interface PlannedStep {
  phase: 0 | 1 | 2;
  lane: string;
  needs: string[];
  step: Step;
}

export function sourceKey(t: DesiredContentTree): string {
  return JSON.stringify([t.source.kind === "registry" ? [t.source.fqdn, t.source.url] : t.source.url, t.sha256, t.maxSizeBytes]);
}

export function volumeKey(uuid: string, generation: number): string {
  return `${uuid.toLowerCase()}#${generation}`;
}

export function plan(desired: DesiredState, observed: Observed): PlannedStep[] {
  const out: PlannedStep[] = [];
  const add = (phase: PlannedStep["phase"], lane: string, step: Step, needs: string[] = []) => out.push({ phase, lane, needs, step });
  const now = observed.now;

  // ---- phase 0: the networks (bridges, dnsmasq, firewall …, in dependency order); content trees and
  // volumes the container apps need; containers nobody wants
  if (desired.network && observed.network) {
    const g = planGraph(desired.network.items, observed.network.items, (t) => MODIFIABLE.has(t));
    if (g.ops.length) add(0, "net", { kind: "reconcileNetworks", ops: g.ops, network: desired.network, current: observed.network.items });
  }
  const containerApps = desired.apps.filter((a) => a.kind === "container" && !a.error);
  // Only what an app that is to run needs is fetched: a content tree of a halted app (activate false),
  // or of no app, is not downloaded (a datastore URL is where the device connects to).
  const neededTrees = new Set(containerApps.filter((a) => a.activate).map((a) => a.imageContentTree).filter((x): x is string => !!x));
  const ctReady = new Map<string, boolean>();
  for (const t of desired.contentTrees) {
    if (!neededTrees.has(t.uuid)) continue;
    const rec = observed.contentTrees.get(t.uuid);
    const loaded = rec?.state === "LOADED" && rec.sourceKey === sourceKey(t);
    ctReady.set(t.uuid, loaded);
    if (!loaded && !t.error && !observed.fetching.has(t.uuid) && (!rec || rec.sourceKey !== sourceKey(t) || rec.nextRetryAt <= now)) {
      add(0, `ct:${t.uuid}`, { kind: "fetchContentTree", tree: t });
    }
  }

  const haveVolumes = new Set(observed.volumes.map((v) => volumeKey(v.uuid, v.generation)));
  const volumesById = new Map(desired.volumes.map((v) => [v.uuid, v]));
  const plannedVolumes = new Set<string>();
  for (const app of containerApps) {
    for (const m of app.mounts) {
      const key = volumeKey(m.volumeUuid, m.generation);
      if (haveVolumes.has(key) || plannedVolumes.has(key)) continue;
      plannedVolumes.add(key);
      add(0, `vol:${key}`, { kind: "createVolume", volume: volumesById.get(m.volumeUuid)! });
    }
  }

  const desiredApps = new Map(desired.apps.map((a) => [a.uuid, a]));
  const byApp = new Map<string, typeof observed.containers>();
  for (const c of observed.containers) {
    const app = desiredApps.get(c.appUuid);
    if (!app || app.kind !== "container") {
      add(0, `app:${c.appUuid}`, { kind: "removeContainer", appUuid: c.appUuid, containerId: c.id, reason: app ? "the app is no longer a container app" : "the app was removed from the config" });
      continue;
    }
    byApp.set(c.appUuid, [...(byApp.get(c.appUuid) ?? []), c]);
  }

  // ---- phase 1: one lane per app
  for (const app of containerApps) {
    const lane = `app:${app.uuid}`;
    const ct = app.imageContentTree!;
    const needs = app.mounts.map((m) => `vol:${volumeKey(m.volumeUuid, m.generation)}`);
    // A fetch runs beside the loop; the app's container is made in the pass after its image loaded.
    const imageWillBeReady = ctReady.get(ct) === true;
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

  // ---- phase 2: what nothing desires any more
  const keepVolumes = new Set(desired.volumes.map((v) => volumeKey(v.uuid, v.generation)));
  for (const v of observed.volumes) {
    if (!keepVolumes.has(volumeKey(v.uuid, v.generation))) add(2, `vol:${volumeKey(v.uuid, v.generation)}`, { kind: "removeVolume", uuid: v.uuid, generation: v.generation });
  }
  const keepTrees = new Set(desired.contentTrees.map((t) => t.uuid));
  for (const [uuid, rec] of observed.contentTrees) {
    if (!keepTrees.has(uuid) && !observed.fetching.has(uuid)) add(2, `ct:${uuid}`, { kind: "removeContentTree", uuid, imageRef: rec.imageRef });
  }
  for (const uuid of observed.apps.keys()) {
    if (!desiredApps.has(uuid)) add(2, `app:${uuid}`, { kind: "forgetApp", uuid });
  }
  out.push(...planVms(desired, observed));
  // App interfaces nothing desires any more (a removed app's tap, a leftover of an interrupted attach).
  if (desired.network && observed.network) {
    const wanted = new Set(desired.network.model.interfaces.map((i) => i.hostIfname));
    const stale = new Map<string, string[]>();
    for (const a of observed.network.attachments) {
      if (wanted.has(a.ifname)) continue;
      const k = a.appUuid || "unknown";
      stale.set(k, [...(stale.get(k) ?? []), a.ifname]);
    }
    for (const [appUuid, ifnames] of stale) add(2, `app:${appUuid}`, { kind: "detachInterfaces", appUuid, ifnames });
  }
  return out;
}

function rank(c: { state: string }): number {
  return c.state === "running" ? 2 : c.state === "created" || c.state === "exited" ? 1 : 0;
}

/** EVE's start_delay_in_seconds: only before an app's first start after the device came up. */
export function startDelayOver(app: DesiredApp, observed: Observed): boolean {
  if (app.startDelaySec <= 0 || observed.startedSinceBoot.has(app.uuid)) return true;
  return observed.now >= observed.bootAt + app.startDelaySec * 1000;
}

/** Human-readable form of a step, for events and the dry-run preview. */
export function describeStep(s: Step): string {
  switch (s.kind) {
    case "fetchContentTree":
      return `fetch content tree ${s.tree.name}`;
    case "removeContentTree":
      return `remove content tree ${s.uuid}`;
    case "createVolume":
      return `create volume ${s.volume.name || s.volume.uuid}`;
    case "removeVolume":
      return `remove volume ${s.uuid} (generation ${s.generation})`;
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
    case "purgeVolumes":
      return `purge the volumes of app ${s.app.name}`;
    case "recordCounters":
      return `record restart/purge counters of app ${s.app.name}`;
    case "forgetApp":
      return `forget app ${s.uuid}`;
    case "startVm":
    case "stopVm":
      return describeVmStep(s);
    case "reconcileNetworks":
      return `networks: ${s.ops.map((o) => `${o.op} ${o.item.id}`).join(", ")}`;
    case "attachInterfaces":
      return `attach ${s.interfaces.map((i) => i.name).join(", ")} of app ${s.app.name}`;
    case "detachInterfaces":
      return `detach ${s.ifnames.join(", ")} (app ${s.appUuid})`;
  }
}
