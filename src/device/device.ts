// The device's read models (status, metrics) that the console, the CLI and the controller report from; run.ts
// builds it once the parts it reports on exist.
import { arch, hostname, totalmem } from "node:os";
import type { ConfigService } from "../config/service.ts";
import type { EventBus } from "../model/events.ts";
import type { AppCommands, ControllerLink, DeviceStatus, ObjectStatus, PartStatus } from "../model/status.ts";
import type { Terminals } from "../model/terminal.ts";
import type { Store } from "../store/store.ts";

const TOTAL_MEMORY = totalmem();
/** How old a cached GET /status body may be when nothing recorded a change (parts' states, the uptime). */
export const STATUS_MAX_AGE_MS = 250;

/** One part's state for GET /status, or several (the app runtime reports runtime, vms and network). */
export type PartSource = () => PartStatus | readonly PartStatus[];

export interface DeviceParts {
  store: Store;
  events: EventBus;
  config: ConfigService;
  version: string;
  dataDir: string;
  /** The controller link; it answers (local mode, or the configured URL) before the controller part starts. */
  controller: ControllerLink;
  /** The other parts' states, in this order after store, config and controller. */
  parts: readonly PartSource[];
  /** The app runtime's commands and consoles (it answers "not running yet" until it runs); absent: none at all. */
  apps?: AppCommands & Terminals;
  /** The metrics history's sampling interval (ms). */
  metricsIntervalMs?: number;
  /** More lines of `/metrics` (Prometheus text) from other parts. */
  metricsLines?: () => string[];
}

type Doc = Record<string, any>;

/**
 * The device's read models: name, mode, GET /status (each part's state, the desired objects joined with the
 * observed ones), /metrics. Built once every part exists; it holds nothing that is filled in later.
 */
export class Device {
  readonly store: Store;
  readonly events: EventBus;
  readonly config: ConfigService;
  readonly version: string;
  readonly dataDir: string;
  readonly startedAt = new Date();
  /** Local app commands and app consoles; null only on a device built without an app runtime (tests). */
  readonly apps: AppCommands | null;
  readonly terminals: Terminals | null;
  readonly metricsIntervalMs: number;
  private readonly controller: ControllerLink;
  private readonly reporters: readonly PartSource[];
  private readonly metricsLines: () => string[];
  private requests = 0;

  constructor(parts: DeviceParts) {
    this.store = parts.store;
    this.events = parts.events;
    this.config = parts.config;
    this.version = parts.version;
    this.dataDir = parts.dataDir;
    this.controller = parts.controller;
    this.reporters = parts.parts;
    this.apps = parts.apps ?? null;
    this.terminals = parts.apps ?? null;
    this.metricsIntervalMs = parts.metricsIntervalMs ?? 10_000;
    this.metricsLines = parts.metricsLines ?? (() => []);
  }

  /** The controller's device_name while it manages the device; else the name set here, else the host name. */
  name(): string {
    if (this.managed()) {
      const n = this.config.model()?.model.device.name;
      if (n) return n;
    }
    return this.store.getSetting("device_name") ?? this.hostname();
  }

  // The host name is a system call and status is a hot path: read at most once a second (it rarely changes).
  private host = { name: "", at: 0 };
  private hostname(): string {
    const now = Date.now();
    if (now - this.host.at > 1000) this.host = { name: hostname(), at: now };
    return this.host.name;
  }

  managed(): boolean {
    return this.controllerUrl() !== null;
  }

  controllerUrl(): string | null {
    return this.controller.url();
  }

  controllerLink(): ControllerLink {
    return this.controller;
  }

  countRequest(): void {
    this.requests++;
  }

  log(level: "debug" | "info" | "warn" | "error", message: string): void {
    this.store.addLogs([{ ts: new Date(), source: "device", objectId: null, level, message }]);
    if (level !== "debug") console.error(`evebox: ${level}: ${message}`);
  }

  // GET /status is polled (the console every few seconds, dashboards, load balancers): its body is made once and
  // answered as is until the store records a change of what it shows (settings, the config, an observed object),
  // an event is published, or STATUS_MAX_AGE_MS pass (the parts' own states and the uptime).
  private statusBody: { json: string; at: number; changes: number; events: number } | null = null;
  private eventsSeen = 0;
  private watching = false;

  /** `status()` serialised, cached as said above: no JSON serialisation per request. */
  statusJson(now = Date.now()): string {
    if (!this.watching) {
      this.watching = true;
      this.events.subscribe(() => void this.eventsSeen++);
    }
    const c = this.statusBody;
    if (c && c.changes === this.store.changes && c.events === this.eventsSeen && now - c.at < STATUS_MAX_AGE_MS) return c.json;
    const json = JSON.stringify(this.status());
    this.statusBody = { json, at: now, changes: this.store.changes, events: this.eventsSeen };
    return json;
  }

  status(): DeviceStatus {
    const cur = this.store.current();
    const desired = cur ? (this.config.currentDoc()?.doc ?? null) : null;
    return {
      device: {
        name: this.name(),
        version: this.version,
        mode: this.managed() ? "managed" : "local",
        controller: this.controllerUrl(),
        uptimeSeconds: Math.floor((Date.now() - this.startedAt.getTime()) / 1000),
        startedAt: this.startedAt.toISOString(),
        hostname: this.hostname(),
        arch: arch(),
        memoryBytes: TOTAL_MEMORY,
        configVersion: cur?.version ?? null,
        configHash: cur?.hash ?? null,
        configSource: cur?.source ?? null,
      },
      parts: this.parts(cur),
      apps: this.objects("app", desired?.apps, (a) => a.uuidandversion?.uuid, (a) => a.displayname),
      networkInstances: this.objects("networkInstance", desired?.networkInstances, (n) => n.uuidandversion?.uuid, (n) => n.displayname),
      volumes: this.objects("volume", desired?.volumes, (v) => v.uuid, (v) => v.displayName),
      contentTrees: this.objects("contentTree", desired?.contentInfo, (c) => c.uuid, (c) => c.displayName || c.URL),
    };
  }

  private parts(cur: ReturnType<Store["current"]>): PartStatus[] {
    const parts: PartStatus[] = [
      { name: "store", state: "ok", detail: this.store.path },
      {
        name: "config",
        state: cur ? "ok" : "idle",
        detail: cur ? `version ${cur.version} from ${cur.source}, ${cur.hash.slice(0, 12)}` : "no config yet",
      },
      this.controller.part(),
    ];
    for (const r of this.reporters) {
      try {
        const p = r();
        if (Array.isArray(p)) parts.push(...p);
        else parts.push(p as PartStatus);
      } catch (e) {
        parts.push({ name: "unknown", state: "error", detail: (e as Error).message });
      }
    }
    return parts;
  }

  /** Desired objects joined with what was last observed of them; objects not yet processed are INITIAL. */
  private objects(kind: string, desired: Doc[] | undefined, id: (o: Doc) => string, name: (o: Doc) => string): ObjectStatus[] {
    const observed = new Map(this.store.observed(kind).map((o) => [o.id, o]));
    const out: ObjectStatus[] = [];
    for (const d of desired ?? []) {
      const uuid = id(d) ?? "";
      const o = observed.get(uuid);
      out.push({ ...(o?.data ?? {}), uuid, name: name(d) ?? "", state: o?.state ?? "INITIAL", error: o?.error ?? null });
      observed.delete(uuid);
    }
    // Objects still observed but no longer desired (being removed).
    for (const o of observed.values()) out.push({ ...(o.data ?? {}), uuid: o.id, name: o.name ?? "", state: o.state, error: o.error });
    return out;
  }

  metricsText(): string {
    const mem = process.memoryUsage();
    const cur = this.store.current();
    const lines = [
      "# HELP evebox_uptime_seconds Seconds since evebox started.",
      "# TYPE evebox_uptime_seconds gauge",
      `evebox_uptime_seconds ${(Date.now() - this.startedAt.getTime()) / 1000}`,
      "# TYPE evebox_resident_memory_bytes gauge",
      `evebox_resident_memory_bytes ${mem.rss}`,
      "# TYPE evebox_heap_used_bytes gauge",
      `evebox_heap_used_bytes ${mem.heapUsed}`,
      "# TYPE evebox_http_requests_total counter",
      `evebox_http_requests_total ${this.requests}`,
      "# TYPE evebox_config_version gauge",
      `evebox_config_version ${cur?.version ?? 0}`,
      "# TYPE evebox_events_stored gauge",
      `evebox_events_stored ${this.store.count("events")}`,
      "# TYPE evebox_logs_stored gauge",
      `evebox_logs_stored ${this.store.count("logs")}`,
      "# HELP evebox_metrics_history_dropped_total Samples the metrics history did not keep (an object over its cap, a failed write).",
      "# TYPE evebox_metrics_history_dropped_total counter",
      `evebox_metrics_history_dropped_total ${this.store.history.droppedCount}`,
      ...this.metricsLines(),
    ];
    return lines.join("\n") + "\n";
  }
}
