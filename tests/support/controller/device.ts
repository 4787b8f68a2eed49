// evebox's parts built in-process on a temporary data directory (store, events, config, device, identity,
// controller), as device/run.ts wires them, with timers short enough for tests.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigService } from "../../../src/config/service.ts";
import { DeviceIdentity } from "../../../src/controller/identity.ts";
import { Controller, type ControllerTimers } from "../../../src/controller/sync.ts";
import type { LocCommands } from "../../../src/controller/loc.ts";
import { Device } from "../../../src/device/device.ts";
import { EventBus } from "../../../src/model/events.ts";
import { EMPTY_MODEL } from "../../../src/config/model.ts";
import { Hardware } from "../../../src/hardware/service.ts";
import { prepareDataDirs } from "../../../src/device/run.ts";
import { Store } from "../../../src/store/index.ts";

export const FAST_TIMERS: ControllerTimers = {
  configIntervalMs: 200,
  metricIntervalMs: 60_000,
  logIntervalMs: 60_000,
  flowlogIntervalMs: 60_000,
  infoCheckIntervalMs: 60_000,
  requestTimeoutMs: 800,
  backoffBaseMs: 50,
  backoffMaxMs: 400,
};

export interface TestDevice {
  dataDir: string;
  store: Store;
  events: EventBus;
  config: ConfigService;
  device: Device;
  identity: DeviceIdentity;
  controller: Controller;
  stop(): Promise<void>;
}

export async function startTestDevice(opts: {
  dataDir: string;
  url?: string | null;
  rootPem?: string;
  onboarding?: { cert: string; keyPem: string };
  timers?: Partial<ControllerTimers>;
  outboxMaxBytes?: number;
  checkpointMaxAgeMs?: number | null;
  /** Report the hardware read from this sysfs root (a fake tree: hardware/fake-sysfs.ts). */
  sysfsRoot?: string;
  /** The local commands of a Local Operator Console's compound config. */
  locCommands?: (c: LocCommands) => void;
}): Promise<TestDevice> {
  const dirs = prepareDataDirs(opts.dataDir);
  if (opts.rootPem) writeFileSync(join(dirs.config, "root-certificate.pem"), opts.rootPem);
  if (opts.onboarding) {
    writeFileSync(join(dirs.config, "onboard.cert.pem"), opts.onboarding.cert);
    writeFileSync(join(dirs.config, "onboard.key.pem"), opts.onboarding.keyPem);
  }
  const store = Store.open(join(dirs.persist, "evebox.db"));
  const events = new EventBus(store);
  const config = new ConfigService(store, events);
  // The device's status includes the controller's part and the controller reports that status: it sees the
  // device through a view that answers from `device`, built once the controller exists (as device/run.ts does).
  const hardware = opts.sysfsRoot ? new Hardware({ sysRoot: opts.sysfsRoot, store, consoleListen: null }) : null;
  const view = {
    status: () => device.status(),
    name: () => device.name(),
    log: (l: "debug" | "info" | "warn" | "error", m: string) => device.log(l, m),
    ...(hardware
      ? {
          hardware: () => {
            const h = hardware.status(config.model()?.model ?? EMPTY_MODEL);
            return { bundles: h.bundles, inventory: h.inventory };
          },
        }
      : {}),
  };
  const identity = await DeviceIdentity.loadOrCreate(dirs.config, { dmiSerialPath: join(dirs.config, "no-such-dmi-serial") });
  const controller = Controller.create({
    configDir: dirs.config,
    persistDir: dirs.persist,
    dataDir: dirs.root,
    version: "0.1.0-test",
    store,
    events,
    config,
    device: view,
    identity,
    url: opts.url ?? null,
    timers: { ...FAST_TIMERS, ...opts.timers },
    outboxMaxBytes: opts.outboxMaxBytes,
    checkpointMaxAgeMs: opts.checkpointMaxAgeMs,
    locCommands: opts.locCommands,
  });
  const device: Device = new Device({ store, events, config, version: "0.1.0-test", dataDir: dirs.root, controller, parts: [] });
  await controller.start();
  return {
    dataDir: dirs.root,
    store,
    events,
    config,
    device,
    identity,
    controller,
    async stop() {
      await controller.stop();
      store.close();
    },
  };
}
