// The device's own validation, run in the browser: a form builds the document it would send and checks it with
// the very code the device checks it with (src/config/validate.ts, pure and bundled), against what the device
// reported of itself (GET /api/v1/host: its memory, networks and ports). So a conflict — a device port already
// mapped, an address outside its subnet, a subnet overlapping the uplink or another instance, memory above the
// device's — shows at the field before the plan, with the device's words; there is no second copy of the rules.
import type { HostView } from "../src/config/device-env.ts";
import type { ObjectProblem } from "../src/config/problems.ts";
import { readConfig, type ValidationEnv } from "../src/config/validate.ts";

export type { HostView };

export type Doc = Record<string, any>;

/** The device as validation asks it, from what it reported (nothing known: nothing checked against it). */
export function envOf(host: HostView | null): ValidationEnv {
  if (!host) return { interfaceExists: () => null, hostNetworks: () => [], hostMemoryKiB: () => null };
  const names = new Set(host.ports.map((p) => p.name));
  return {
    // A port the console was not told about may still exist (a name the host view leaves out): only known names are sure.
    interfaceExists: (name) => (names.has(name) ? true : host.ports.length ? false : null),
    hostNetworks: () => host.networks,
    hostMemoryKiB: () => host.memoryKiB,
  };
}

/** The problems the device would find in `doc` (each with its field path). */
export function checkDoc(doc: Doc, host: HostView | null): ObjectProblem[] {
  return readConfig(doc, envOf(host)).problems;
}

/** Only the problems that are about one object (by kind and uuid): what a form editing it shows. */
export function problemsOf(doc: Doc, host: HostView | null, kind: ObjectProblem["objectKind"], uuid: string): ObjectProblem[] {
  return checkDoc(doc, host).filter((p) => p.objectKind === kind && p.objectId === uuid);
}
