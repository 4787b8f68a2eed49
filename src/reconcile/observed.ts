// What the reconciler knows of the world before it plans: the engine's containers with our labels,
// the volume directories, and its own per-object records (kept in the store across restarts).
import type { Item } from "../network/graph.ts";
import type { Attachment } from "../network/items.ts";
import type { OwnedContainer } from "../runtime/containers/types.ts";
import type { SwState } from "../model/swstate.ts";
import type { ObservedVms } from "./vms.ts";

export interface ContentTreeRecord {
  uuid: string;
  state: SwState;
  error: string | null;
  /** What the engine knows the loaded image as (a ref or an image id). */
  imageRef: string | null;
  imageId: string | null;
  sizeBytes: number;
  progress: number;
  /** Failed attempts in a row, and when the next may start (ms since epoch). */
  attempts: number;
  nextRetryAt: number;
  /** The source this record was loaded from; a changed source means fetch again. */
  sourceKey: string;
}

export interface AppRecord {
  uuid: string;
  /** Counters already acted on. */
  restartApplied: number;
  purgeApplied: number;
  /** Supervision: quick exits in a row, when the next start may happen, the exit already counted. */
  crashes: number;
  nextStartAt: number;
  lastExitCounted: string | null;
  /** An executor failure (create or start refused by the engine, …), with retry backoff. */
  error: string | null;
  attempts: number;
  nextRetryAt: number;
}

export interface Observed {
  now: number;
  /** When this evebox started: the reference for start delays. */
  bootAt: number;
  containers: OwnedContainer[];
  volumes: { uuid: string; generation: number }[];
  contentTrees: Map<string, ContentTreeRecord>;
  apps: Map<string, AppRecord>;
  /** Apps started at least once since this evebox started (start delay applies only before). */
  startedSinceBoot: Set<string>;
  /** Content trees being fetched right now (downloads run beside the loop, not inside a pass). */
  fetching: Set<string>;
  /** Running VMs and how the last ones ended, when the reconciler runs VMs. */
  vms?: ObservedVms;
  /** The network items that exist (bridges, dnsmasq, firewall …) and the app interfaces attached. */
  network?: { items: Item[]; attachments: Attachment[] };
}

export function newAppRecord(uuid: string, restartApplied: number, purgeApplied: number): AppRecord {
  return { uuid, restartApplied, purgeApplied, crashes: 0, nextStartAt: 0, lastExitCounted: null, error: null, attempts: 0, nextRetryAt: 0 };
}
