// Builds the app runtime (engine client, content cache, volumes, reconciler) for the composition
// root. Loaded lazily after the console is listening, so start-up stays fast.
import { join } from "node:path";
import Docker from "dockerode";
import type { ConfigService } from "../config/service.ts";
import type { EventBus } from "../device/events.ts";
import { ContainerRuntime, DEFAULT_DOCKER_SOCKET } from "../runtime/containers/runtime.ts";
import { ContentCache } from "../storage/cache.ts";
import { VolumeStore } from "../storage/volumes.ts";
import type { Store } from "../store/store.ts";
import { Reconciler } from "./reconciler.ts";

export interface AppRuntimeOptions {
  store: Store;
  config: ConfigService;
  events: EventBus;
  persistDir: string;
  log: (level: "info" | "warn" | "error", message: string) => void;
  dockerSocket?: string;
  /** This device's id, labelled on its containers (see ContainerRuntime). */
  instance: string;
  tickMs?: number;
}

export async function startAppRuntime(o: AppRuntimeOptions): Promise<Reconciler> {
  const docker = new Docker({ socketPath: o.dockerSocket ?? process.env.EVEBOX_DOCKER_SOCKET ?? DEFAULT_DOCKER_SOCKET });
  const reconciler = new Reconciler({
    store: o.store,
    config: o.config,
    events: o.events,
    runtime: new ContainerRuntime(docker, "evebox", { instance: o.instance }),
    cache: new ContentCache(join(o.persistDir, "content")),
    volumes: new VolumeStore(o.persistDir),
    log: o.log,
    tickMs: o.tickMs,
  });
  await reconciler.start();
  return reconciler;
}
