// The state each object shows in status, derived from desired + observed (pure). An app's state comes from its
// workload kind (containers.ts, vms.ts).
import type { DesiredApp, DesiredState, DesiredVolume } from "./desired.ts";
import type { Observed } from "./observed.ts";
import { WORKLOAD_KINDS } from "./plan.ts";
import type { ObjectState, WorkloadKind } from "./workload.ts";

export type { ObjectState } from "./workload.ts";
export { noteExits } from "./containers.ts";

export function appState(app: DesiredApp, desired: DesiredState, observed: Observed, kinds: readonly WorkloadKind[] = WORKLOAD_KINDS): ObjectState {
  const data: Record<string, unknown> = { kind: app.kind, activate: app.activate, version: app.version };
  if (app.error) return { state: "INITIAL", error: app.error, data };
  const kind = kinds.find((k) => k.kind === app.kind);
  const label = kind?.label ?? app.kind;
  return (
    kind?.state(app, desired, observed) ?? { state: "INITIAL", error: `${label} apps are not run by this evebox (it was started without the ${label} runtime)`, data }
  );
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

