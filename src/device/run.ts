// Starts evebox in host mode: data directories, store, console on TCP and on the local socket.
import { accessSync, chmodSync, constants, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Auth } from "../auth/auth.ts";
import { ConfigService } from "../config/service.ts";
import { createConsoleApp, type PowerControl } from "../console/app.ts";
import { websocket } from "../console/console-socket.ts";
import { ConnectionBudget, ConnectionGate, type ConnectionLimits, defaultConnectionLimits, gateIdleSeconds } from "../console/connection-gate.ts";
import type { UiAssets } from "../console/ui-assets.ts";
import { Store, StoreTooNewError } from "../store/index.ts";
import { parseControllerAddress } from "../controller/http.ts";
import type { Controller, ControllerTimers } from "../controller/sync.ts";
import { Device } from "./device.ts";
import type { BaseOsDeviceWiring } from "../baseos/index.ts";
import type { BaseOsRef } from "../baseos/routes.ts";
import { EventBus } from "../model/events.ts";

export interface RunOptions {
  dataDir: string;
  listen: string;
  controller: string | null;
  version: string;
  ui: UiAssets | null;
  /** false: no app runtime (tests of the console alone). */
  apps?: boolean;
  reconcileTickMs?: number;
  /** Where startup lines go (stdout by default). */
  say?: (line: string) => void;
  /** Serve the console over HTTPS with this certificate and key (PEM): the device's own, on a device. */
  tls?: { cert: string; key: string };
  /** Also listen on this HOST:PORT with plain HTTP that redirects every request to the HTTPS console. */
  redirectHttp?: string;
  /** Reboot and shutdown (POST /api/v1/device/reboot|shutdown): given by init/ when evebox is PID 1. */
  power?: PowerControl;
  /** The device's A/B slots (given by init/); off-device, EVEBOX_BASEOS_* may name files instead. */
  baseos?: BaseOsDeviceWiring;
}

export interface RunningDevice {
  device: Device;
  url: string;
  socketPath: string;
  stop(): Promise<void>;
}

/** A fault that stops evebox with one clear line (no stack trace). */
export class StartupError extends Error {}

export interface DataDirs {
  root: string;
  config: string;
  persist: string;
  run: string;
}

/**
 * Makes the data directories, owner only (0700), and tightens ones that exist already (keys, the store and the
 * setup token are in them). On a device the data directory is `/` and `run/` is the system's `/run`: those two are
 * not evebox's to change, CONFIG and PERSIST are.
 */
export function prepareDataDirs(dataDir: string): DataDirs {
  const root = resolve(dataDir);
  const dirs = { root, config: join(root, "config"), persist: join(root, "persist"), run: join(root, "run") };
  const systemRoot = root === "/";
  if (!systemRoot) {
    try {
      mkdirSync(root, { recursive: true, mode: 0o700 });
      tightenDir(root);
    } catch (e) {
      if (e instanceof StartupError) throw e;
      throw new StartupError(`cannot use data directory ${root}: it is not writable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  for (const d of [dirs.config, dirs.persist, dirs.run]) {
    try {
      mkdirSync(d, { recursive: true, mode: 0o700 });
      if (!(systemRoot && d === dirs.run)) tightenDir(d);
      accessSync(d, constants.W_OK | constants.R_OK | constants.X_OK);
      const probe = join(d, ".evebox-write-test");
      writeFileSync(probe, "");
      rmSync(probe);
    } catch (e) {
      if (e instanceof StartupError) throw e;
      throw new StartupError(`cannot use data directory ${root}: ${d} is not writable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  return dirs;
}

function tightenDir(d: string): void {
  try {
    if ((statSync(d).mode & 0o077) !== 0) chmodSync(d, 0o700);
  } catch (e) {
    throw new StartupError(`cannot make ${d} private to evebox (mode 0700): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** A short random id of this device's store, made once: it tells this evebox's containers from another's. */
function instanceId(store: Store): string {
  let id = store.getSetting("instance_id");
  if (!id) {
    id = Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString("hex");
    store.setSetting("instance_id", id);
  }
  return id;
}

/** Short controller timers for tests and labs: EVEBOX_CONTROLLER_TIMERS='{"configIntervalMs":1000}'. */
function controllerTimersFromEnv(): Partial<ControllerTimers> | undefined {
  const raw = process.env.EVEBOX_CONTROLLER_TIMERS;
  if (!raw) return undefined;
  try {
    const t = JSON.parse(raw) as Record<string, unknown>;
    return Object.fromEntries(Object.entries(t).filter(([, v]) => typeof v === "number" && v > 0)) as Partial<ControllerTimers>;
  } catch {
    throw new StartupError(`EVEBOX_CONTROLLER_TIMERS: not JSON: ${raw}`);
  }
}

/**
 * The console's connection limits; EVEBOX_CONSOLE_MAX_CONNECTIONS_PER_CLIENT, EVEBOX_CONSOLE_MAX_CONNECTIONS and
 * EVEBOX_CONSOLE_IDLE_TIMEOUT_S (seconds without a byte before a connection is closed) lower them for tests and labs.
 */
function connectionLimitsFromEnv(): ConnectionLimits {
  const d = defaultConnectionLimits();
  const num = (name: string) => {
    const raw = process.env[name];
    if (raw === undefined || raw === "") return null;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new StartupError(`${name}: expected a positive integer, got ${raw}`);
    return n;
  };
  const idle = num("EVEBOX_CONSOLE_IDLE_TIMEOUT_S");
  return {
    perClient: num("EVEBOX_CONSOLE_MAX_CONNECTIONS_PER_CLIENT") ?? d.perClient,
    total: num("EVEBOX_CONSOLE_MAX_CONNECTIONS") ?? d.total,
    idleTimeoutMs: idle !== null ? Math.min(255, idle) * 1000 : d.idleTimeoutMs,
  };
}

export function parseListen(listen: string): { hostname: string; port: number } {
  const m = listen.match(/^(?:\[([0-9a-fA-F:]+)\]|([^:]+)):(\d{1,5})$/) ?? listen.match(/^()()(\d{1,5})$/);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new StartupError(`--listen ${listen}: expected HOST:PORT, e.g. 127.0.0.1:8080`);
  return { hostname: m[1] || m[2] || "127.0.0.1", port };
}

export async function runDevice(opts: RunOptions): Promise<RunningDevice> {
  const say = opts.say ?? ((l: string) => console.log(l));
  const dirs = prepareDataDirs(opts.dataDir);
  const listen = parseListen(opts.listen);
  const limits = connectionLimitsFromEnv();
  const socketPath = join(dirs.run, "evebox.sock");
  if (existsSync(socketPath)) {
    const alive = await fetch("http://localhost/api/v1/health", { unix: socketPath } as RequestInit).then(
      () => true,
      () => false,
    );
    if (alive) throw new StartupError(`another evebox is already running with data directory ${dirs.root} (${socketPath} answers)`);
    rmSync(socketPath, { force: true });
  }

  let store: Store;
  try {
    store = Store.open(join(dirs.persist, "evebox.db"));
  } catch (e) {
    if (e instanceof StoreTooNewError) throw new StartupError(e.message);
    throw new StartupError(`cannot open the store in ${dirs.persist}: ${(e as Error).message}`);
  }
  const events = new EventBus(store);
  const config = new ConfigService(store, events);
  // Managed or not is known before the console answers (so a PUT /config is refused from the first
  // request on); the controller part itself (identity, TLS, signing) loads after the console is up.
  let controllerHint: string | null = null;
  try {
    if (opts.controller) controllerHint = parseControllerAddress(opts.controller);
    else if (existsSync(join(dirs.config, "server"))) controllerHint = parseControllerAddress(readFileSync(join(dirs.config, "server"), "utf8"));
  } catch (e) {
    store.close();
    throw new StartupError(`controller: ${(e as Error).message}`);
  }
  const device = new Device({ store, events, config, version: opts.version, dataDir: dirs.root, controller: controllerHint });
  const auth = new Auth(store, join(dirs.run, "setup-token"));
  const baseosRef: BaseOsRef = { baseos: null, reason: "starting" };

  // The network part comes with the app runtime (below); `reconciler` is set there, before any await.
  const network = () => reconciler?.network ?? null;
  const tcpApp = createConsoleApp({
    auth,
    device,
    ui: opts.ui,
    network,
    power: opts.power,
    secureCookies: !!opts.tls,
    baseos: () => baseosRef,
    clientAddress: (req) => clients.get(req) ?? null,
  });
  const localApp = createConsoleApp({ auth, device, ui: null, trustAll: true, network, power: opts.power, baseos: () => baseosRef });
  // The TCP console sits behind the connection gate (per-client and total connection caps, see
  // console/connection-gate.ts); the unix socket does not: it is the trusted local API and must answer even then.
  const budget = new ConnectionBudget(limits);
  const idleTimeout = Math.max(1, Math.min(255, Math.round(limits.idleTimeoutMs / 1000)));
  const ws = { ...websocket, idleTimeout: Math.max(8, idleTimeout), sendPings: true }; // app consoles (GET /api/v1/apps/{uuid}/console)
  const clients = new WeakMap<Request, string>();
  let tcp: ReturnType<typeof Bun.serve> | null = null;
  let gate: ConnectionGate | null = null;
  let redirect: { gate: ConnectionGate; server: ReturnType<typeof Bun.serve> } | null = null;
  const stopListeners = async () => {
    gate?.stop();
    redirect?.gate.stop();
    await Promise.all([tcp?.stop(true), redirect?.server.stop(true)]);
  };
  try {
    let g: ConnectionGate;
    try {
      g = ConnectionGate.listen({ hostname: listen.hostname, port: listen.port, budget, tls: !!opts.tls, idleTimeoutS: gateIdleSeconds(limits.idleTimeoutMs) });
    } catch (e) {
      throw new StartupError(`cannot listen on ${opts.listen}: ${listenError(e)}`);
    }
    gate = g;
    tcp = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      idleTimeout, // seconds; the event stream turns it off for itself (it sends keep-alives)
      maxRequestBodySize: 2 ** 31, // base OS uploads (streamed to PERSIST)
      websocket: ws,
      ...(opts.tls ? { tls: { cert: opts.tls.cert, key: opts.tls.key } } : {}),
      fetch: (req, server) => {
        const client = g.clientOf(server.requestIP(req));
        if (!client) return Response.json({ error: "connect to the console's own address" }, { status: 421, headers: { Connection: "close" } });
        clients.set(req, client);
        device.countRequest();
        return tcpApp.fetch(req, server);
      },
    });
    g.setBackend(tcp.port!);
    if (opts.redirectHttp) {
      const r = parseListen(opts.redirectHttp);
      const httpsPort = g.port;
      let rg: ConnectionGate;
      try {
        rg = ConnectionGate.listen({ hostname: r.hostname, port: r.port, budget, tls: false, idleTimeoutS: gateIdleSeconds(limits.idleTimeoutMs) });
      } catch (e) {
        throw new StartupError(`cannot listen on ${opts.redirectHttp}: ${listenError(e)}`);
      }
      const server = Bun.serve({ hostname: "127.0.0.1", port: 0, idleTimeout, fetch: (req) => redirectToHttps(req, httpsPort) });
      rg.setBackend(server.port!);
      redirect = { gate: rg, server };
    }
  } catch (e) {
    await stopListeners();
    store.close();
    if (e instanceof StartupError) throw e;
    throw new StartupError(`cannot listen on ${opts.listen}: ${(e as Error).message}`);
  }
  const local = Bun.serve({ unix: socketPath, websocket: ws, maxRequestBodySize: 2 ** 31, fetch: (req, server) => localApp.fetch(req, server) });
  chmodSync(socketPath, 0o600);

  const host = gate.hostname.includes(":") ? `[${gate.hostname}]` : gate.hostname;
  const url = `${opts.tls ? "https" : "http"}://${host}:${gate.port}`;
  say(`evebox ${opts.version}: ${device.managed() ? `managed by ${device.controllerUrl()}` : "local mode"}, data in ${dirs.root}`);
  say(`evebox: console on ${url}`);
  const token = auth.prepareSetup();
  if (token) say(`evebox: first start: set the admin password at ${url}/setup?token=${token} (the token is also in ${join(dirs.run, "setup-token")})`);
  device.events.publish({ type: "device.started", message: `evebox ${opts.version} started` });
  // Let the console answer what is already waiting (a browser reloading, a health probe) before the parts below
  // load: evaluating their modules holds the event loop for tens of milliseconds.
  await new Promise((r) => setTimeout(r, 0));
  // The controller link (identity in config/, the URL from --controller or config/server, or later
  // the console). A managed device runs its checkpointed config (offline boot) before the app runtime
  // plans anything.
  let controller: Controller | null = null;
  let reconciler: import("../reconcile/reconciler.ts").Reconciler | null = null;
  try {
    const [{ DeviceIdentity }, { Controller }] = await Promise.all([import("../controller/identity.ts"), import("../controller/sync.ts")]);
    const identity = await DeviceIdentity.loadOrCreate(dirs.config);
    controller = Controller.create({
      configDir: dirs.config,
      persistDir: dirs.persist,
      dataDir: dirs.root,
      version: opts.version,
      store,
      events,
      config,
      device,
      identity,
      url: opts.controller,
      timers: controllerTimersFromEnv(),
      appMetrics: () => reconciler?.appSamples() ?? [],
      flowRecords: async (devUuid) => (await reconciler?.network?.collectFlows(devUuid)) ?? [],
      checkpointMaxAgeMs: process.env.EVEBOX_CHECKPOINT_MAX_AGE_DAYS ? Number(process.env.EVEBOX_CHECKPOINT_MAX_AGE_DAYS) * 86_400_000 : null,
    });
    device.attachController(controller);
    await controller.start();
  } catch (e) {
    await Promise.all([stopListeners(), local.stop(true)]);
    rmSync(socketPath, { force: true });
    store.close();
    throw new StartupError(`controller: ${(e as Error).message}`);
  }

  // Base OS updates (A/B slots): continues what the last boot left (a trial to test, a fallback to report).
  {
    const { createBaseOs } = await import("../baseos/index.ts");
    const { datastorePolicy } = await import("../storage/destinations.ts");
    const r = await createBaseOs(opts.baseos, dirs.persist, opts.version, {
      publish: (type, message, data) => device.events.publish({ type, message, data: data ?? null }),
      log: (level, m) => device.log(level, m),
      apps: () => {
        const seen = new Map(store.observed("app").map((o) => [o.id, o.updatedAt ? new Date(o.updatedAt as unknown as string | number | Date).getTime() : null]));
        return device.status().apps.map((a) => ({ uuid: a.uuid, name: a.name, state: a.state, observedAt: seen.get(a.uuid) ?? null }));
      },
      managed: () => device.managed(),
      parts: () => device.status().parts.filter((p) => p.name !== "baseos"),
      configDoc: () => (device.config.currentDoc()?.doc as Record<string, any> | undefined) ?? null,
      controller: () => {
        const p = device.controllerLink()?.part();
        return { ok: p?.state === "ok", detail: p?.detail ?? "controller sync is not running" };
      },
    }, datastorePolicy((k) => store.getSetting(k) ?? undefined));
    Object.assign(baseosRef, r);
    const b = r.baseos;
    device.baseosSwList = b ? () => b.swList() : null;
    device.addPart(() => (b ? b.part() : { name: "baseos", state: "idle", detail: r.reason ?? "not an A/B device" }));
    b?.start();
  }

  // The app runtime (Docker engine client, reconciler) loads after the console answers.
  const appsReady = opts.apps === false || process.env.EVEBOX_APPS === "off"
    ? Promise.resolve()
    : import("../reconcile/wire.ts")
        .then(({ startAppRuntime }) =>
          startAppRuntime({ store, config, events, persistDir: dirs.persist, runDir: dirs.run, log: (level, m) => device.log(level, m), tickMs: opts.reconcileTickMs, instance: instanceId(store) }),
        )
        .then((r) => {
          reconciler = r;
          device.apps = r;
          device.addPart(() => r.part());
          device.terminals = r.terminals();
          const vms = r.vms;
          if (vms) device.addPart(() => vms.part());
          const network = r.network;
          if (network) device.addPart(() => network.part());
        })
        .catch((e) => device.log("error", `the app runtime did not start: ${(e as Error).message}`));

  let stopped = false;
  return {
    device,
    url,
    socketPath,
    async stop() {
      if (stopped) return;
      stopped = true;
      device.events.publish({ type: "device.stopping", message: "evebox stopping" });
      await appsReady;
      // Workloads outlive the agent: stopping evebox stops watching them, never the apps themselves.
      await (reconciler as import("../reconcile/reconciler.ts").Reconciler | null)?.stop();
      await controller?.stop();
      baseosRef.baseos?.stop();
      await Promise.all([stopListeners(), local.stop(true)]);
      rmSync(socketPath, { force: true });
      store.close();
    },
  };
}

function listenError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE") return "the port is in use (another evebox or another server?)";
  if (code === "EACCES") return "permission denied (a port under 1024 needs root)";
  if (code === "EADDRNOTAVAIL") return "no such address on this machine";
  return `${(e as Error).message}${code ? ` (${code})` : ""}`;
}

/** The plain-HTTP listener's only answer: the same path on the HTTPS console (308 keeps the method). */
export function redirectToHttps(req: Request, httpsPort: number): Response {
  const u = new URL(req.url);
  const host = (req.headers.get("host") ?? u.host).replace(/:\d+$/, "");
  return new Response(null, { status: 308, headers: { Location: `https://${host}${httpsPort === 443 ? "" : `:${httpsPort}`}${u.pathname}${u.search}` } });
}
