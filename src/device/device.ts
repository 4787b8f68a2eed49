// The composition root's view of the device: the parts wired together once, and the read models
// (status, metrics) that the console, the CLI and later the controller report from.
import { arch, hostname, totalmem } from "node:os";

const TOTAL_MEMORY = totalmem();
import type { ConfigService } from "../config/service.ts";
import type { Terminals } from "../model/terminal.ts";
import type { Store } from "../store/store.ts";
import type { EventBus } from "../model/events.ts";
import type { AppCommands, ControllerLink, DeviceStatus, ObjectStatus, PartReporter, PartStatus } from "../model/status.ts";


export interface DeviceParts {
  store: Store;
  events: EventBus;
  config: ConfigService;
  version: string;
  dataDir: string;
  controller: string | null;
}

type Doc = Record<string, any>;

export class Device {
  readonly store: Store;
  readonly events: EventBus;
  readonly config: ConfigService;
  readonly version: string;
  readonly dataDir: string;
  readonly startedAt = new Date();
  private readonly reporters: PartReporter[] = [];
  private controller: string | null;
  private link: ControllerLink | null = null;
  private requests = 0;
  /** Set once the app runtime is up (it starts after the console, see run.ts). */
  apps: AppCommands | null = null;
  /** App consoles in the browser (WebSocket /api/v1/apps/{uuid}/console); set with the app runtime. */
  terminals: Terminals | null = null;
  /** The base OS slots as EVE's ZInfoDevSW list (baseos/), for the controller's info message. */
  baseosSwList: (() => Record<string, unknown>[]) | null = null;

  constructor(parts: DeviceParts) {
    this.store = parts.store;
    this.events = parts.events;
    this.config = parts.config;
    this.version = parts.version;
    this.dataDir = parts.dataDir;
    this.controller = parts.controller;
  }

  name(): string {
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
    return this.link ? this.link.url() : this.controller;
  }

  /** Wires the controller part: from then on it decides managed mode and reports its own state. */
  attachController(link: ControllerLink): void {
    this.link = link;
  }

  controllerLink(): ControllerLink | null {
    return this.link;
  }

  addPart(reporter: PartReporter): void {
    this.reporters.push(reporter);
  }

  countRequest(): void {
    this.requests++;
  }

  log(level: "debug" | "info" | "warn" | "error", message: string): void {
    this.store.addLogs([{ ts: new Date(), source: "device", objectId: null, level, message }]);
    if (level !== "debug") console.error(`evebox: ${level}: ${message}`);
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
      this.link
        ? this.link.part()
        : this.managed()
          ? { name: "controller", state: "degraded", detail: `configured (${this.controller}); controller sync is not running` }
          : { name: "controller", state: "idle", detail: "local mode: no controller configured" },
    ];
    for (const r of this.reporters) {
      try {
        parts.push(r());
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
    ];
    return lines.join("\n") + "\n";
  }
}
