// plan(desired, observed) → typed steps. Pure: no engine, no clock, no store — everything it needs
// is in its arguments, so it is unit-tested on its own. What every workload kind shares is planned here (the
// networks, the content trees and volumes the kinds need, removing what nothing desires); each kind plans its
// own apps' lanes (containers.ts, vms.ts).
import { type GraphOp, type Item, planGraph } from "../network/graph.ts";
import { MODIFIABLE } from "../network/items.ts";
import type { DesiredNetwork } from "../network/manager.ts";
import { artifactRefs, volumeArtifactFile } from "../config/patch-envelopes.ts";
import { CONTAINER_KIND, type ContainerStep } from "./containers.ts";
import type { DesiredApp, DesiredContentTree, DesiredState, DesiredVolume } from "./desired.ts";
import type { Observed } from "./observed.ts";
import { VM_KIND, type VmStep } from "./vms.ts";
import { fileSourceKey, sourceKey, volumeKey, type WorkloadKind } from "./workload.ts";

export { sourceKey, startDelayOver, volumeKey } from "./workload.ts";

/** The steps every kind shares. */
export type CommonStep =
  /**
   * Starts a background fetch (download, verify, load); its completion triggers the next pass. `asFile`: only a
   * patch envelope's volume artifact needs it, as a file in the content store (downloaded and checked against its
   * sha256, not loaded by a workload kind).
   */
  | { kind: "fetchContentTree"; tree: DesiredContentTree; asFile?: boolean }
  | { kind: "removeContentTree"; uuid: string; imageRef: string | null }
  | { kind: "createVolume"; volume: DesiredVolume }
  | { kind: "removeVolume"; uuid: string; generation: number }
  | { kind: "purgeVolumes"; app: DesiredApp }
  | { kind: "recordCounters"; app: DesiredApp }
  | { kind: "forgetApp"; uuid: string }
  | { kind: "reconcileNetworks"; ops: GraphOp[]; network: DesiredNetwork; current: Item[] }
  | { kind: "detachInterfaces"; appUuid: string; ifnames: string[] };

export type Step = CommonStep | ContainerStep | VmStep;

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

/** The kinds `plan()` plans when not told otherwise (the reconciler passes its workloads). */
export const WORKLOAD_KINDS: readonly WorkloadKind[] = [CONTAINER_KIND, VM_KIND];

export function plan(desired: DesiredState, observed: Observed, kinds: readonly WorkloadKind[] = WORKLOAD_KINDS): PlannedStep[] {
  const out: PlannedStep[] = [];
  const add = (phase: PlannedStep["phase"], lane: string, step: Step, needs: string[] = []) => out.push({ phase, lane, needs, step });
  const now = observed.now;

  // ---- phase 0: the networks (bridges, dnsmasq, firewall …, in dependency order); the content trees and
  // volumes the kinds' apps need
  if (desired.network && observed.network) {
    const g = planGraph(desired.network.items, observed.network.items, (t) => MODIFIABLE.has(t));
    if (g.ops.length) add(0, "net", { kind: "reconcileNetworks", ops: g.ops, network: desired.network, current: observed.network.items });
  }
  const needs = kinds.map((k) => k.needs(desired, observed));
  // Only what an app that is to run needs is fetched: a content tree of a halted app (activate false),
  // or of no app, is not downloaded (a datastore URL is where the device connects to). A patch envelope's volume
  // artifact needs its volume's content tree too, as a file the metadata server serves (EVE downloads it for the
  // envelope): fetched as a file when no app needs it (a tree an app needs is loaded by its kind, and a disk image
  // fetched as a file only is checked as a disk again before a VM uses it: another source key).
  const neededTrees = new Set(needs.flatMap((n) => n.contentTrees));
  const fileTrees = new Set(desired.model.patchEnvelopes.flatMap((pe) => pe.artifacts.flatMap((a) => (a.file ? [a.file.contentTreeId] : []))));
  // An encrypted volume artifact names its volume once opened (the reconciler opens it with the config's other blocks).
  const refs = artifactRefs(desired.model);
  for (const opened of desired.secrets?.volumeArtifacts?.values() ?? []) {
    const r = opened.ok ? volumeArtifactFile(opened.value.volumeId, refs) : null;
    if (r && "file" in r) fileTrees.add(r.file.contentTreeId);
  }
  const treeReady = new Map<string, boolean>();
  for (const t of desired.contentTrees) {
    const forApps = neededTrees.has(t.uuid);
    if (!forApps && !fileTrees.has(t.uuid)) continue;
    const rec = observed.contentTrees.get(t.uuid);
    const key = forApps ? sourceKey(t) : fileSourceKey(t);
    // What an app's kind loaded is a file in the content store as well (a disk image; a container image is never a volume artifact).
    const loaded = rec?.state === "LOADED" && (rec.sourceKey === key || (!forApps && rec.sourceKey === sourceKey(t)));
    if (forApps) treeReady.set(t.uuid, loaded);
    if (!loaded && !t.error && !observed.fetching.has(t.uuid) && (!rec || rec.sourceKey !== key || rec.nextRetryAt <= now)) {
      add(0, `ct:${t.uuid}`, { kind: "fetchContentTree", tree: t, ...(forApps ? {} : { asFile: true }) });
    }
  }
  const haveVolumes = new Set(observed.volumes.map((v) => volumeKey(v.uuid, v.generation)));
  const volumesById = new Map(desired.volumes.map((v) => [v.uuid, v]));
  const plannedVolumes = new Set<string>();
  for (const v of needs.flatMap((n) => n.volumes)) {
    const key = volumeKey(v.uuid, v.generation);
    const volume = volumesById.get(v.uuid);
    if (!volume || haveVolumes.has(key) || plannedVolumes.has(key)) continue;
    plannedVolumes.add(key);
    add(0, `vol:${key}`, { kind: "createVolume", volume });
  }

  // ---- each kind: phase 0, what of the kind nobody wants; phase 1, one lane per app
  const prepared = { treeReady: (uuid: string) => treeReady.get(uuid) === true };
  for (const k of kinds) out.push(...k.plan(desired, observed, prepared));

  // ---- phase 2: what nothing desires any more
  const keepVolumes = new Set(desired.volumes.map((v) => volumeKey(v.uuid, v.generation)));
  for (const v of observed.volumes) {
    if (!keepVolumes.has(volumeKey(v.uuid, v.generation))) add(2, `vol:${volumeKey(v.uuid, v.generation)}`, { kind: "removeVolume", uuid: v.uuid, generation: v.generation });
  }
  const keepTrees = new Set(desired.contentTrees.map((t) => t.uuid));
  for (const [uuid, rec] of observed.contentTrees) {
    if (!keepTrees.has(uuid) && !observed.fetching.has(uuid)) add(2, `ct:${uuid}`, { kind: "removeContentTree", uuid, imageRef: rec.imageRef });
  }
  const desiredApps = new Set(desired.apps.map((a) => a.uuid));
  for (const uuid of observed.apps.keys()) {
    if (!desiredApps.has(uuid)) add(2, `app:${uuid}`, { kind: "forgetApp", uuid });
  }
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

/** Human-readable form of a step, for events and the dry-run preview. */
export function describeStep(s: Step, kinds: readonly WorkloadKind[] = WORKLOAD_KINDS): string {
  switch (s.kind) {
    case "fetchContentTree":
      return `fetch content tree ${s.tree.name}${s.asFile ? " (a patch envelope's file)" : ""}`;
    case "removeContentTree":
      return `remove content tree ${s.uuid}`;
    case "createVolume":
      return `create volume ${s.volume.name || s.volume.uuid}`;
    case "removeVolume":
      return `remove volume ${s.uuid} (generation ${s.generation})`;
    case "purgeVolumes":
      return `purge the volumes of app ${s.app.name}`;
    case "recordCounters":
      return `record restart/purge counters of app ${s.app.name}`;
    case "forgetApp":
      return `forget app ${s.uuid}`;
    case "reconcileNetworks":
      return `networks: ${s.ops.map((o) => `${o.op} ${o.item.id}`).join(", ")}`;
    case "detachInterfaces":
      return `detach ${s.ifnames.join(", ")} (app ${s.appUuid})`;
  }
  return kinds.find((k) => k.steps.includes(s.kind))?.describe(s) ?? s.kind;
}
