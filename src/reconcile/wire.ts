// Builds the app runtime (engine client, content cache, volumes, reconciler) for the composition
// root. Loaded lazily after the console is listening, so start-up stays fast.
import { join } from "node:path";
import Docker from "dockerode";
import type { ConfigService } from "../config/service.ts";
import type { EventBus } from "../model/events.ts";
import { NetworkManager } from "../network/manager.ts";
import { ContainerRuntime, DEFAULT_DOCKER_SOCKET } from "../runtime/containers/runtime.ts";
import { QemuRuntime } from "../runtime/vms/runtime.ts";
import { ContentCache } from "../storage/cache.ts";
import { datastorePolicy } from "../storage/destinations.ts";
import { VolumeStore } from "../storage/volumes.ts";
import type { Store } from "../store/store.ts";
import { ContainerWorkload } from "./containers.ts";
import { Reconciler } from "./reconciler.ts";
import { VmWorkload } from "./vms.ts";

export interface AppRuntimeOptions {
  store: Store;
  config: ConfigService;
  events: EventBus;
  persistDir: string;
  log: (level: "info" | "warn" | "error", message: string) => void;
  dockerSocket?: string;
  /** This device's id, labelled on its containers (see ContainerRuntime). */
  instance: string;
  /** false: no VM runtime (VM apps then say that they are not run). */
  vms?: boolean;
  tickMs?: number;
  /** The device's run/ directory (VM sockets and pidfiles, network state); default: persist/../run. */
  runDir?: string;
  /** false: no network part (apps with interfaces then get the engine's default bridge). */
  network?: boolean;
}

export async function startAppRuntime(o: AppRuntimeOptions): Promise<Reconciler> {
  const docker = new Docker({ socketPath: o.dockerSocket ?? process.env.EVEBOX_DOCKER_SOCKET ?? DEFAULT_DOCKER_SOCKET });
  const network =
    o.network === false
      ? undefined
      : new NetworkManager({ runDir: join(o.runDir ?? join(o.persistDir, "..", "run"), "network"), store: o.store, log: o.log });
  // Datastores on loopback, link-local or the device's own addresses are refused unless a setting allows them.
  const cache = new ContentCache(join(o.persistDir, "content"), { destinations: datastorePolicy((k) => o.store.getSetting(k)) });
  const volumes = new VolumeStore(o.persistDir);
  const vmLog = { info: (m: string) => o.log("info", m), warn: (m: string) => o.log("warn", m) };
  // VMs: `<run>/vms/<uuid>/` (EVEBOX_VMS=off runs none; VM apps then say so).
  const vms =
    o.vms === false || process.env.EVEBOX_VMS === "off"
      ? undefined
      : new VmWorkload({ runtime: new QemuRuntime({ runDir: o.runDir ?? join(o.persistDir, "..", "run"), logger: vmLog }), store: o.store, volumes, cache, log: o.log });
  const containers = new ContainerWorkload({ runtime: new ContainerRuntime(docker, "evebox", { instance: o.instance }) });
  const reconciler = new Reconciler({
    workloads: vms ? [containers, vms] : [containers],
    network,
    store: o.store,
    config: o.config,
    events: o.events,
    cache,
    volumes,
    log: o.log,
    tickMs: o.tickMs,
  });
  await reconciler.start();
  return reconciler;
}
