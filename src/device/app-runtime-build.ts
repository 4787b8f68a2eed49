// Builds the app runtime from its pieces (engine client, network part, content cache, volumes, VM runtime,
// reconciler): a factory with every setting passed in. Loaded lazily (its modules are heavy) once the console
// answers, by app-runtime.ts.
import { statSync } from "node:fs";
import { join } from "node:path";
import Docker from "dockerode";
import type { SecretOpener } from "../config/cipher.ts";
import type { ConfigService } from "../config/service.ts";
import type { EventBus } from "../model/events.ts";
import type { Hardware } from "../hardware/service.ts";
import { networkInterfaces } from "node:os";
import { bindToVfio, releaseFromVfio } from "../hardware/vfio.ts";
import { diagText } from "../metadata/diag.ts";
import { portMetrics } from "../metadata/netdev.ts";
import { MetadataServer } from "../metadata/server.ts";
import { MetadataService } from "../metadata/service.ts";
import { NetworkManager } from "../network/manager.ts";
import { ContainerWorkload } from "../reconcile/containers.ts";
import { Reconciler } from "../reconcile/reconciler.ts";
import { VmWorkload } from "../reconcile/vms.ts";
import { ContainerRuntime, DEFAULT_DOCKER_SOCKET } from "../runtime/containers/runtime.ts";
import { QemuRuntime } from "../runtime/vms/runtime.ts";
import { ContentCache } from "../storage/cache.ts";
import type { DestinationPolicy } from "../storage/destinations.ts";
import type { ImageStore } from "../storage/images.ts";
import { VolumeStore } from "../storage/volumes.ts";
import type { Store } from "../store/store.ts";

type Log = (level: "info" | "warn" | "error", message: string) => void;

export interface AppRuntimeConfig {
  store: Store;
  config: ConfigService;
  events: EventBus;
  persistDir: string;
  /** The device's run/ directory: VM sockets and pidfiles, network state. */
  runDir: string;
  /** This device's id, labelled on its containers (see ContainerRuntime). */
  instance: string;
  /** The Docker engine's socket; null: the default. */
  dockerSocket: string | null;
  /** false: no VM runtime (VM apps then say that they are not run). */
  vms: boolean;
  /** false: no network part (apps with interfaces then get the engine's default bridge). */
  network: boolean;
  /** How the firewall's transactions are loaded. */
  nft: "libnftables" | "cli";
  /** Which datastores may be fetched from (local ones only when allowed). */
  destinations: DestinationPolicy;
  /** Images imported by hand: in the same content store, kept by the cache's garbage collection. */
  images?: ImageStore;
  /** Opens the config's encrypted blocks (the controller part's). */
  secrets?: SecretOpener;
  /** The local profile server's profile override (the LPS part's). */
  localProfile?: () => string | null;
  /** The LPS's VM boot orders (appbootinfo), by app uuid (the LPS part's, kept in the store). */
  bootOrders?: () => ReadonlyMap<string, "usb" | "nousb">;
  tickMs?: number;
  /** The host's I/O and who holds it (hardware/): apps' adapters are assigned through it. */
  hardware: Hardware;
  /** Loggers by source. */
  log: { reconcile: Log; network: Log; vms: Log };
  /** Why every app is held halted (ops/: maintenance mode, a device command), or null. */
  halt?: () => string | null;
  /** The device as the apps' metadata server names it: its UUID (from its controller; null in local mode) and name. */
  device?: () => { uuid: string | null; name: string };
  /** The metadata server's port (EVEBOX_METADATA_PORT; 0 any free one); null: evebox's (metadata/server.ts). */
  metadataPort?: number | null;
  /** The VLANs and bonds the device's own ports stand on (init's, as PID 1): the network part leaves them be. */
  portLinks?: () => readonly string[];
  /** Signs a payload with the device's key for an app (the metadata server's /eve/v1/tpm/signer: an AuthContainer). */
  sign?: (payload: Uint8Array) => Promise<Uint8Array>;
}

export interface BuiltAppRuntime {
  reconciler: Reconciler;
  network: NetworkManager | null;
  vms: VmWorkload | null;
  /** The apps' metadata server (with the network part only: it is reached through the Local instances). */
  metadata: { service: MetadataService; server: MetadataServer; port: number } | null;
}

/** The pieces, wired; nothing is started (the reconciler's start() starts the network and VM parts it drives). */
export function buildAppRuntime(o: AppRuntimeConfig): BuiltAppRuntime {
  const docker = new Docker({ socketPath: o.dockerSocket ?? DEFAULT_DOCKER_SOCKET });
  const images = o.images;
  const cache = new ContentCache(join(o.persistDir, "content"), { destinations: o.destinations, ...(images ? { pinned: () => images.digests() } : {}) });
  // The metadata server listens first: the firewall's DNAT names its port. It only listens (nothing else starts).
  let network: NetworkManager | null = null;
  const metadata = o.network ? metadataServer(o, () => network, cache) : null;
  network = o.network ? new NetworkManager({ runDir: join(o.runDir, "network"), store: o.store, log: o.log.network, nft: o.nft, metadataPort: metadata?.port ?? null, onLocalInstances: (on) => metadata?.server.want(on), ...(o.portLinks ? { heldLinks: o.portLinks } : {}) }) : null;
  const volumes = new VolumeStore(o.persistDir);
  const vmLog = { info: (m: string) => o.log.vms("info", m), warn: (m: string) => o.log.vms("warn", m) };
  // VMs: `<run>/vms/<uuid>/`.
  const vms = o.vms ? new VmWorkload({
        runtime: new QemuRuntime({ runDir: o.runDir, logger: vmLog }),
        store: o.store,
        volumes,
        cache,
        log: o.log.vms,
        vfio: { bind: (a) => bindToVfio(o.hardware.sysRoot, a), release: (m) => releaseFromVfio(o.hardware.sysRoot, m) },
      }) : null;
  const containers = new ContainerWorkload({ runtime: new ContainerRuntime(docker, "evebox", { instance: o.instance }) });
  const reconciler = new Reconciler({
    workloads: vms ? [containers, vms] : [containers],
    network: network ?? undefined,
    hardware: o.hardware,
    store: o.store,
    config: o.config,
    events: o.events,
    cache,
    volumes,
    log: o.log.reconcile,
    tickMs: o.tickMs,
    secrets: o.secrets,
    halt: o.halt,
    localProfile: o.localProfile,
    bootOrders: o.bootOrders,
  });
  return { reconciler, network, vms, metadata };
}

function metadataServer(o: AppRuntimeConfig, network: () => NetworkManager | null, cache: ContentCache): BuiltAppRuntime["metadata"] {
  const service = new MetadataService({
    callerAt: (ip) => {
      const i = network()?.interfaceAt(ip);
      if (!i) return null;
      const allowToDiscover = o.config.model()?.model.apps.find((a) => a.uuid === i.appUuid)?.interfaces[i.index]?.allowToDiscover === true;
      return { appUuid: i.appUuid, appName: i.appName, uplinkIfname: i.uplinkIfname, allowToDiscover };
    },
    appInterfaces: () => (network()?.current()?.model.interfaces ?? []).flatMap((i) => (i.niKind === "local" && i.ip ? [{ appUuid: i.appUuid, hostIfname: i.hostIfname, ip: i.ip }] : [])),
    // The device's ports: the config's (by the interface each resolves to) and the Local instances' uplinks.
    portMetrics: () => {
      const ports = (o.config.model()?.model.ports ?? []).flatMap((p) => (p.resolution.kind === "ifname" ? [p.resolution.ifname] : []));
      const uplinks = (network()?.current()?.model.interfaces ?? []).flatMap((i) => (i.uplinkIfname ? [i.uplinkIfname] : []));
      return portMetrics([...ports, ...uplinks]);
    },
    diag: () => diagText({ device: o.device?.() ?? { uuid: null, name: "" }, objects: (kind) => o.store.observed(kind) }),
    ...(o.sign ? { sign: o.sign } : {}),
    ...(o.secrets ? { open: (block, ctx) => o.secrets!.open(block, ctx) } : {}),
    model: () => o.config.model(),
    device: () => o.device?.() ?? { uuid: null, name: "" },
    ipv4Of: (ifname) => networkInterfaces()[ifname]?.find((a) => a.family === "IPv4" && !a.internal)?.address ?? null,
    ...(o.secrets ? { secrets: o.secrets } : {}),
    // The apps' use of their envelopes and their custom statuses outlive a restart, as in EVE.
    state: o.store.metadata,
    // A volume artifact's file: its content tree in the content store, by its sha256 (the path is the cache's own).
    artifactFile: (sha256) => {
      try {
        const path = cache.path(sha256);
        const st = statSync(path);
        return st.isFile() ? { path, size: st.size } : null;
      } catch {
        return null;
      }
    },
    log: o.log.network,
  });
  const server = new MetadataServer(service, o.log.network);
  // The port is chosen now (the firewall's DNAT names it); it is listened on only once a Local instance is desired.
  const port = server.start(o.metadataPort ?? undefined);
  server.want(false);
  return { service, server, port };
}
