// A container app from the shared busybox image without a registry: an Http datastore on loopback serving the
// image's `docker save` archive, and the EdgeDevConfig of one app that runs a given command from it.
import { busyboxArchive } from "./docker.ts";

export interface ImageServer {
  /** The datastore's base URL (http://127.0.0.1:port). */
  url: string;
  sha256: string;
  stop(): void;
}

export async function startImageServer(): Promise<ImageServer> {
  const { bytes, sha256 } = await busyboxArchive();
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) => (new URL(req.url).pathname === "/images/busybox.tar" ? new Response(bytes) : new Response("no", { status: 404 })),
  });
  return { url: `http://127.0.0.1:${server.port}`, sha256, stop: () => server.stop(true) };
}

export interface BusyboxApp {
  uuid: string;
  name: string;
  /** The container's command (EVE_ECO_CMD); by default a shell that sleeps until stopped. */
  cmd?: string;
  /** The archive's name on the datastore (default busybox.tar; any other is a 404). */
  image?: string;
  /** The image's sha256 (default the busybox archive's; a stored image of that digest is never fetched again). */
  sha256?: string;
}

const DS = "6a0a6b52-7f36-4a55-8c3e-2a3f5c0d1e40";

/** A config of busybox container apps, each with its own content tree and image volume, from `server`. */
export function busyboxAppsConfig(server: ImageServer, apps: BusyboxApp[]) {
  // The content tree and the volume of an app: its uuid with the first group replaced.
  const n = (a: BusyboxApp, k: string) => `${k}${k}${a.uuid.slice(8)}`;
  return {
    datastores: [{ id: DS, dType: "DsHttp", fqdn: server.url, dpath: "images" }],
    contentInfo: apps.map((a) => ({ uuid: n(a, "c0c0"), dsId: DS, URL: a.image ?? "busybox.tar", iformat: "CONTAINER", sha256: a.sha256 ?? server.sha256, displayName: `${a.name}-image` })),
    volumes: apps.map((a) => ({ uuid: n(a, "d0d0"), origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: n(a, "c0c0") }, displayName: `${a.name}-root` })),
    apps: apps.map((a) => ({
      uuidandversion: { uuid: a.uuid, version: "1" },
      displayname: a.name,
      activate: true,
      fixedresources: { memory: 65536, maxmem: 65536, vcpus: 1 },
      volumeRefList: [{ uuid: n(a, "d0d0") }],
      userData: Buffer.from(`EVE_ECO_CMD=${a.cmd ?? "sh -c 'trap \"exit 0\" TERM; sleep 3600 & wait'"}`).toString("base64"),
    })),
  };
}
