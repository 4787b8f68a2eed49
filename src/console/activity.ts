// The Activity log: what the device did and is doing, read from the one event journal (model/events.ts, stored
// by store/) rather than kept a second time. Each event becomes an entry with its area, who caused it, the object
// it is about and, for a failure, the reason; what is under way (downloads with progress and speed, apps
// between states) comes from the status.
import type { DeviceStatus, ObjectStatus } from "../model/status.ts";
import type { EventRow } from "../store/store.ts";

export type ActivityArea = "config" | "app" | "download" | "volume" | "network" | "update" | "device" | "controller" | "image";

export interface ActivityEntry {
  id: number;
  ts: string;
  type: string;
  area: ActivityArea;
  message: string;
  /** Who caused it: the console's user (`admin`), an API token (`token:<name>`), the controller, the local socket; null: the device itself. */
  by: string | null;
  object: { kind: string; id: string } | null;
  failed: boolean;
  /** Why it failed (a step's error, a refused config's first problems). */
  reason: string | null;
}

export interface ActivityNow {
  downloads: { uuid: string; name: string; state: string; progress: number; bytesDone: number | null; bytesTotal: number | null; bytesPerSecond: number | null }[];
  apps: { uuid: string; name: string; state: string }[];
}

/** Events that are not activity: sign-ins and tokens are the audit trail's; progress ticks show under "now". */
export const NOT_ACTIVITY = ["auth.%", "baseos.progress"] as const;

const AREAS: Record<string, ActivityArea> = {
  config: "config",
  app: "app",
  contentTree: "download",
  volume: "volume",
  networkInstance: "network",
  baseos: "update",
  device: "device",
  controller: "controller",
  image: "image",
  reconcile: "device",
};

const FAILED_TYPE = /(failed|rejected|refused|error|fault)$/;
const FAILED_STATES = new Set(["ERROR", "BROKEN"]);
/** States an app passes through on its way somewhere (shown as under way). */
const MOVING = new Set(["DOWNLOADING", "VERIFYING", "LOADING", "CREATING_VOLUME", "BOOTING", "HALTING", "RESTARTING", "PURGING", "START_DELAYED", "AWAITNETWORKINSTANCE"]);
const FETCHING = new Set(["DOWNLOADING", "VERIFYING", "LOADING"]);

export function toActivity(e: EventRow): ActivityEntry {
  const data = (e.data ?? {}) as Record<string, unknown>;
  const prefix = e.type.slice(0, e.type.indexOf(".") < 0 ? e.type.length : e.type.indexOf("."));
  // A failed step is about its object (an app, a content tree): its area is the object's.
  const area = (e.type === "reconcile.step-failed" && e.objectKind ? AREAS[e.objectKind] : AREAS[prefix]) ?? "device";
  const state = typeof data.state === "string" ? data.state : null;
  const error = typeof data.error === "string" && data.error ? data.error : null;
  const failed = FAILED_TYPE.test(e.type) || (e.type.endsWith(".state") && (error !== null || (state !== null && FAILED_STATES.has(state))));
  return {
    id: e.id,
    ts: new Date(e.ts).toISOString(),
    type: e.type,
    area,
    message: e.message,
    by: str(data.author) ?? str(data.by),
    object: e.objectKind && e.objectId ? { kind: e.objectKind, id: e.objectId } : e.type.startsWith("config.") && typeof data.version === "number" ? { kind: "config", id: String(data.version) } : null,
    failed,
    reason: failed ? (str(data.reason) ?? error ?? problemsOf(data.problems) ?? e.message) : null,
  };
}

/** What is under way now: downloads (with bytes and speed when the fetch reports them), apps between states. */
export function activityNow(status: Pick<DeviceStatus, "apps" | "contentTrees">): ActivityNow {
  return {
    downloads: status.contentTrees
      .filter((t) => FETCHING.has(t.state) && !t.error)
      .map((t) => ({
        uuid: t.uuid,
        name: t.name,
        state: t.state,
        progress: num(t, "progress") ?? 0,
        bytesDone: num(t, "bytesDone"),
        bytesTotal: num(t, "bytesTotal"),
        bytesPerSecond: num(t, "bytesPerSecond"),
      })),
    apps: status.apps.filter((a) => MOVING.has(a.state) && !a.error).map((a) => ({ uuid: a.uuid, name: a.name, state: a.state })),
  };
}

function str(v: unknown): string | null {
  return typeof v === "string" && v !== "" ? v : null;
}

function num(o: ObjectStatus, key: string): number | null {
  const v = (o as Record<string, unknown>)[key];
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function problemsOf(v: unknown): string | null {
  if (!Array.isArray(v) || v.length === 0) return null;
  const listed = v.slice(0, 3).map((p: { path?: string; message?: string }) => (p.path ? `${p.path}: ${p.message}` : String(p.message)));
  return listed.join("; ") + (v.length > 3 ? ` (and ${v.length - 3} more)` : "");
}
