// The composition root: builds every part of evebox once, in order, each given the narrow interfaces it needs,
// starts them in that order and stops them in the reverse one. The order (and why) is in src/device/README.md.
import type { DevicePortsReport } from "../model/ports.ts";
import type { OpenedBlock } from "../config/cipher.ts";
import { existsSync, mkdirSync, readFileSync, accessSync, chmodSync, constants, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Auth } from "../auth/auth.ts";
import { EMPTY_MODEL } from "../config/model.ts";
import { ConfigService } from "../config/service.ts";
import { levelPasses } from "../config/settings.ts";
import { createConsoleApp, type PowerControl } from "../console/app.ts";
import { defaultConnectionLimits, type ConnectionLimits } from "../console/connection-gate.ts";
import type { UiAssets } from "../console/ui-assets.ts";
import { parseControllerAddress } from "../controller/http.ts";
import type { DeviceView } from "../controller/sync.ts";
import { createLogger } from "../lib/log.ts";
import { TookTooLong, within } from "../lib/wait.ts";
import { EventBus } from "../model/events.ts";
import type { PartStatus } from "../model/status.ts";
import { Hardware, isCharDevice } from "../hardware/service.ts";
import { hostView } from "../config/device-env.ts";
import { DeviceOps } from "../ops/device-ops.ts";
import { datastorePolicy } from "../storage/destinations.ts";
import { ImageStore } from "../storage/images.ts";
import type { BundleService } from "../bundles/service.ts";
import { Store, StoreTooNewError } from "../store/index.ts";
import { HistorySampler } from "../telemetry/history.ts";
import { cpuCount, sampleDevice } from "../telemetry/metrics.ts";
import { AppRuntimePart } from "./app-runtime.ts";
import { BaseOsPart, type DeviceSlots } from "./baseos.ts";
import { ControllerPart } from "./controller.ts";
import { LpsPart } from "./lps.ts";
import { Device } from "./device.ts";
import { readSettings, type Settings } from "./env.ts";
import { StartupError } from "./errors.ts";
import { claimSocket, ConsoleListeners } from "./listeners.ts";
import { TrimPolicy } from "./trim.ts";

export { StartupError } from "./errors.ts";
export { parseListen, redirectToHttps } from "./listeners.ts";
export type { DeviceSlots } from "./baseos.ts";

export interface RunOptions {
  dataDir: string;
  listen: string;
  controller: string | null;
  version: string;
  ui: UiAssets | null;
  /** What the environment says (device/env.ts); read from process.env when not given. */
  settings?: Settings;
  /** false: no app runtime (tests of the console alone), whatever the settings say. */
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
  slots?: DeviceSlots | null;
  /** More parts in GET /status (init's: mounts, services, ports, boot), after the base OS part. */
  parts?: readonly (() => PartStatus)[];
  /** The VLANs and bonds the device's own ports stand on (init/ports.ts makes them): the network part leaves them be. */
  portLinks?: () => readonly string[];
  /** The device's own ports (init's), reported to the controller as ZInfoDevice.systemAdapter. */
  portsReport?: () => DevicePortsReport | null;
}

export interface RunningDevice {
  device: Device;
  url: string;
  socketPath: string;
  stop(): Promise<void>;
  /** The device goes down for a reason of init's (the power button, a signal): the next boot's reason (ops/). */
  recordGoingDown(action: "reboot" | "shutdown", why: string): void;
}

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


/** The console's connection limits: the defaults, lowered by the settings (tests and labs). */
function connectionLimits(s: Settings["console"]): ConnectionLimits {
  const d = defaultConnectionLimits();
  return {
    perClient: s.perClient ?? d.perClient,
    total: s.total ?? d.total,
    idleTimeoutMs: s.idleTimeoutS !== null ? Math.min(255, s.idleTimeoutS) * 1000 : d.idleTimeoutMs,
  };
}

/** A part with a lifecycle, as the root starts and stops it. */
/** How long one part may take to stop before the others go on without it. */
const PART_STOP_MS = 20_000;

interface Lifecycle {
  name: string;
  stop(): Promise<void> | void;
}

export async function runDevice(opts: RunOptions): Promise<RunningDevice> {
  const settings = opts.settings ?? readSettings();
  const say = opts.say ?? ((l: string) => console.log(l));

  // 1. Data directories, the local socket's claim, the store and what stands on it alone.
  const dirs = prepareDataDirs(opts.dataDir);
  const socketPath = join(dirs.run, "evebox.sock");
  await claimSocket(socketPath, dirs.root);
  let store: Store;
  try {
    store = Store.open(join(dirs.persist, "evebox.db"));
  } catch (e) {
    if (e instanceof StoreTooNewError) throw new StartupError(e.message);
    throw new StartupError(`cannot open the store in ${dirs.persist}: ${(e as Error).message}`);
  }
  const events = new EventBus(store);
  const config = new ConfigService(store, events);
  // debug.default.loglevel, when the config sets it: the device's lines below it are not kept.
  const keepLogLevel = () => {
    const m = config.model()?.model;
    const set = m?.configItemStatus.some((i) => i.key === "debug.default.loglevel" && i.state === "applied");
    const threshold = set ? m!.settings.logLevel : null;
    store.keepLevel = threshold ? (level) => levelPasses(level, threshold) : null;
  };
  keepLogLevel();
  config.onChange(keepLogLevel);
  // Managed or not is known before the console answers (so a PUT /config is refused from the first request on);
  // the controller part itself (identity, TLS, signing) loads after the console is up.
  let controllerHint: string | null = null;
  try {
    if (opts.controller) controllerHint = parseControllerAddress(opts.controller);
    else if (existsSync(join(dirs.config, "server"))) controllerHint = parseControllerAddress(readFileSync(join(dirs.config, "server"), "utf8"));
  } catch (e) {
    store.close();
    throw new StartupError(`controller: ${(e as Error).message}`);
  }
  const destinations = datastorePolicy((k) => store.getSetting(k) ?? undefined, settings.datastoreAllowLocal);
  // Images uploaded from the console land in the content store the app runtime's cache reads (by digest).
  const images = new ImageStore(join(dirs.persist, "content"));

  // The device's status includes every part's, and two parts report or judge it (the controller to its controller,
  // baseos to decide a trial): they see it through this view, which answers from `device` (built below, after
  // them) and which they call only once started.
  const view: DeviceView = {
    status: () => device.status(),
    name: () => device.name(),
    baseosSwList: () => baseos.swList(),
    hardware: () => {
      const h = hardwareStatus();
      return { bundles: h.bundles, inventory: h.inventory };
    },
    ops: () => ops.report(),
    ...(opts.portsReport ? { ports: opts.portsReport } : {}),
  };

  // Device operations (ops/): the config's reboot and shutdown commands, maintenance mode, why the device booted.
  // Every way down evebox takes records the next boot's reason first.
  const ops: DeviceOps = new DeviceOps({
    store,
    config,
    events,
    log: createLogger("ops", store),
    power: opts.power ?? null,
    appsChanged: () => apps.haltChanged(),
    kernelBoot: sampleDevice({ mounts: [] }).bootTime,
    controller: () => ({ managed: controller.url() !== null, lastContact: controllerContact() }),
  });
  const controllerContact = (): Date | null => {
    try {
      const at = (controller.status() as { lastContact?: string | null }).lastContact;
      return at ? new Date(at) : null;
    } catch {
      return null; // not started yet
    }
  };
  const power = opts.power
    ? {
        request: (action: "reboot" | "shutdown", by: string) => {
          ops.recordGoingDown(action === "reboot" ? "BOOT_REASON_REBOOT_CMD" : "BOOT_REASON_POWEROFF_CMD", `${action} requested by ${by}`);
          return opts.power!.request(action, by);
        },
      }
    : undefined;
  const slots = opts.slots
    ? {
        ...opts.slots,
        reboot: (reason: string) => {
          ops.recordGoingDown("BOOT_REASON_UPDATE", `base-OS update: ${reason}`);
          return opts.slots!.reboot(reason);
        },
      }
    : null;

  // 2. The parts, each one object from here on; each answers "not running yet" until its start() below.
  const appsEnabled = opts.apps !== false && settings.apps;
  // The host's I/O (sysfs) and which app holds which of it; the console's port is never given away.
  const hardware = new Hardware({ sysRoot: settings.sysfsRoot ?? "/sys", store, consoleListen: opts.listen });
  const reconcileLog = createLogger("reconcile", store);
  const apps: AppRuntimePart = new AppRuntimePart({
    enabled: appsEnabled,
    store,
    config,
    events,
    persistDir: dirs.persist,
    runDir: dirs.run,
    instance: instanceId(store),
    dockerSocket: settings.dockerSocket,
    vms: settings.vms,
    network: true,
    nft: settings.nft,
    destinations,
    images,
    // The controller part is built below; its opener is asked only once the app runtime runs.
    secrets: {
      epoch: (): number => controller.secrets.epoch(),
      open: (block, ctx): Promise<OpenedBlock> => controller.secrets.open(block, ctx),
      openBytes: (block, ctx): Promise<Uint8Array> => controller.secrets.openBytes!(block, ctx),
    },
    localProfile: (): string | null => lps.profile(),
    bootOrders: () => lps.bootOrders(),
    ...(opts.portLinks ? { portLinks: opts.portLinks } : {}),
    tickMs: opts.reconcileTickMs,
    hardware,
    log: { reconcile: reconcileLog.log, network: createLogger("network", store).log, vms: createLogger("vms", store).log },
    onError: (m) => reconcileLog.error(m),
    halt: () => ops.haltReason(),
    device: () => ({ uuid: controllerUuid(), name: device.name() }),
    metadataPort: settings.metadataPort,
    sign: (payload) => controller.signForApp(payload),
  });
  const controllerUuid = (): string | null => {
    try {
      return (controller.status() as { deviceUuid?: string | null }).deviceUuid ?? null;
    } catch {
      return null; // not started yet
    }
  };
  const controller: ControllerPart = new ControllerPart({
    configDir: dirs.config,
    persistDir: dirs.persist,
    dataDir: dirs.root,
    version: opts.version,
    store,
    events,
    config,
    device: view,
    url: opts.controller,
    hint: controllerHint,
    timers: settings.controllerTimers,
    checkpointMaxAgeMs: settings.checkpointMaxAgeMs,
    appMetrics: apps,
    flows: apps,
    // A Local Operator Console's local commands, handled as the LPS's (the LPS part is built below).
    locCommands: (c) => void lps.applyLoc(c).catch((e) => createLogger("lps", store).error(`Local Operator Console commands: ${(e as Error).message}`)),
  });
  const baseos: BaseOsPart = new BaseOsPart({
    slots,
    files: settings.baseosFiles,
    persistDir: dirs.persist,
    version: opts.version,
    destinations,
    hooks: {
      publish: (type, message, data) => events.publish({ type, message, data: data ?? null }),
      log: createLogger("baseos", store).log,
      apps: () => {
        const seen = new Map(store.observed("app").map((o) => [o.id, o.updatedAt ? new Date(o.updatedAt as unknown as string | number | Date).getTime() : null]));
        return device.status().apps.map((a) => ({ uuid: a.uuid, name: a.name, state: a.state, observedAt: seen.get(a.uuid) ?? null }));
      },
      managed: () => device.managed(),
      parts: () => device.status().parts.filter((p) => p.name !== "baseos"),
      configDoc: () => (config.currentDoc()?.doc as Record<string, any> | undefined) ?? null,
      testWindowSeconds: () => {
        const m = config.model()?.model;
        return m?.configItemStatus.some((i) => i.key === "timer.test.baseimage.update" && i.state === "applied") ? m.settings.testBaseImageUpdateS : null;
      },
      controller: () => {
        const p = controller.part();
        return { ok: p.state === "ok", detail: p.detail };
      },
    },
  });
  // The metrics history (graphs): one timer reads the device and the running apps.
  const historyLog = createLogger("telemetry", store);
  const sampler = new HistorySampler({
    sink: store.history,
    sources: { device: () => sampleDevice({ mounts: [dirs.persist] }), apps: () => apps.sampleApps(), cpus: cpuCount() },
    intervalMs: settings.metricsIntervalMs ?? undefined,
    onError: (m) => historyLog.warn(m),
  });
  // The pages of the binary only a burst of work touched go back to the kernel once it settles (device/trim.ts).
  const trim = new TrimPolicy({ quiet: () => listeners.quiet(500, 10_000), say });
  const device: Device = new Device({
    store,
    events,
    config,
    version: opts.version,
    dataDir: dirs.root,
    controller,
    parts: [() => baseos.part(), () => ops.part(), ...(opts.parts ?? []), () => apps.parts(), () => lps.parts()],
    // Off (EVEBOX_APPS=off): the console says so (no app runtime), as it always has.
    apps: appsEnabled ? apps : undefined,
    metricsIntervalMs: sampler.intervalMs,
    metricsLines: () => trim.metricsLines(),
  });
  // The Local Profile Server client (loaded once a config names one): app commands, the local profile.
  const lps: LpsPart = new LpsPart({
    config,
    status: () => device.status(),
    deviceUuid: () => (store.sqlite.query("SELECT value FROM controller_state WHERE key = 'uuid'").get() as { value: string } | null)?.value ?? null,
    localCommand: (uuid, command) => apps.localCommand(uuid, command, "local profile server"),
    profileChanged: () => apps.replan(),
    // The same way down as the console's: the next boot's reason is recorded first (ops/).
    power,
    store,
    events,
    log: createLogger("lps", store),
    timers: settings.lpsIntervalMs ? { intervalMs: settings.lpsIntervalMs, requestTimeoutMs: Math.min(10_000, settings.lpsIntervalMs * 5) } : {},
  });

  // 3. The console: it answers from here on (the parts below load meanwhile).
  const auth = new Auth(store, join(dirs.run, "setup-token"));
  const network = () => apps.network();
  const hardwareStatus = () => hardware.status(config.model()?.model ?? EMPTY_MODEL);
  // The bundle importer loads on first use (a device that never imports one never pays for it).
  let bundleService: BundleService | null = null;
  const bundles = () =>
    (bundleService ??= new (require("../bundles/service.ts") as typeof import("../bundles/service.ts")).BundleService({
      store,
      config,
      images,
      events,
      host: () => hostView(),
      inventory: () => hardware.inventory(),
      managedBy: () => (device.managed() ? (device.controllerUrl() ?? "(unknown)") : null),
      stagingDir: join(dirs.persist, "content", "bundles", "staging"),
      isCharDevice,
    }));
  const listeners = new ConsoleListeners({
    listen: opts.listen,
    redirectHttp: opts.redirectHttp,
    tls: opts.tls,
    limits: connectionLimits(settings.console),
    socketPath,
    tcpApp: (clients) =>
      createConsoleApp({
        auth,
        device,
        ui: opts.ui,
        network,
        power,
        secureCookies: !!opts.tls,
        baseos: () => baseos.ref(),
        images,
        bundles,
        hardware: hardwareStatus,
        clientAddress: (req) => clients.get(req) ?? null,
      }),
    localApp: () => createConsoleApp({ auth, device, ui: null, trustAll: true, network, power, baseos: () => baseos.ref(), images, bundles, hardware: hardwareStatus }),
    onRequest: () => device.countRequest(),
  });
  // What has started, in order: stop() runs it backwards.
  const started: Lifecycle[] = [];
  const stopStarted = async () => {
    for (const p of started.splice(0).reverse()) {
      // A part that does not stop does not hold up the others (on the way to a reboot, the store must still be
      // closed and the file systems unmounted): it is named and left behind.
      try {
        await within(`stopping ${p.name}`, PART_STOP_MS, () => p.stop());
      } catch (e) {
        console.error(`evebox: ${e instanceof TookTooLong ? "" : `stopping ${p.name}: `}${(e as Error).message}`);
      }
    }
  };
  try {
    await listeners.start();
  } catch (e) {
    store.close();
    throw e;
  }
  started.push({ name: "the console", stop: () => listeners.stop() });

  const url = listeners.url;
  say(`evebox ${opts.version}: ${device.managed() ? `managed by ${device.controllerUrl()}` : "local mode"}, data in ${dirs.root}`);
  say(`evebox: console on ${url}`);
  const token = auth.prepareSetup();
  if (token) say(`evebox: first start: set the admin password at ${url}/setup?token=${token} (the token is also in ${join(dirs.run, "setup-token")})`);
  events.publish({ type: "device.started", message: `evebox ${opts.version} started` });
  // 4. The controller link (a managed device runs its checkpointed config, offline boot, before the app runtime
  // plans anything), 5. base OS updates (continues what the last boot left), 6. the app runtime (not awaited).
  try {
    await controller.start();
    started.push({ name: "the controller part", stop: () => controller.stop() });
  } catch (e) {
    await stopStarted();
    store.close();
    throw new StartupError(`controller: ${(e as Error).message}`);
  }
  await baseos.start();
  started.push({ name: "the base OS part", stop: () => baseos.stop() });
  ops.start();
  started.push({ name: "device operations", stop: () => ops.stop() });
  // Let the console answer what is already waiting (a browser reloading, a health probe) before the parts below
  // load: evaluating their modules holds the event loop for tens of milliseconds (at most 100 ms after listening).
  // The parts above start first: they are cheap, and their routes (GET /controller, /baseos) answer from the
  // first request instead of "not running yet" (a client asking at once after the console listened got a 409).
  await listeners.quiet();
  // Once the start (and later each config, each app's change) has settled, the pages only it touched go back.
  if (settings.trim) {
    const off = events.subscribe((e) => {
      if (e.type === "config.accepted" || e.type === "app.state") trim.poke();
    });
    started.push({ name: "the start-up trim", stop: () => (off(), trim.stop()) });
  }
  void apps.start().finally(() => settings.trim && trim.poke());
  // Workloads outlive the agent: stopping evebox stops watching them, never the apps themselves.
  started.push({ name: "the app runtime", stop: () => apps.stop() });
  sampler.start();
  started.push({ name: "the metrics history", stop: () => sampler.stop() });
  lps.start();
  started.push({ name: "the local profile server client", stop: () => lps.stop() });

  let stopped = false;
  return {
    device,
    url,
    socketPath,
    recordGoingDown: (action, why) => ops.recordGoingDown(action === "reboot" ? "BOOT_REASON_REBOOT_CMD" : "BOOT_REASON_POWEROFF_CMD", `${action}: ${why}`, { unlessRecorded: true }),
    async stop() {
      if (stopped) return;
      stopped = true;
      events.publish({ type: "device.stopping", message: "evebox stopping" });
      await stopStarted();
      store.close();
    },
  };
}
