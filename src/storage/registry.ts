import type { ImageInfo, PullProgress, PullResult, RegistryAuth } from "../runtime/containers/types.ts";
import { type DestinationPolicy, resolveDestination } from "./destinations.ts";

// Content trees in a container-registry datastore, as EVE names them: the datastore's fqdn is
// `docker://<host[:port]>[/prefix]`, the content tree's URL is `repository[:tag]`, and its sha256,
// when set, is the image's manifest digest, so the image is pulled by digest and cannot change under us.

export interface RegistryDatastore {
  /** `docker://127.0.0.1:5000`, `docker://index.docker.io`, or a bare host. */
  fqdn: string;
  username?: string;
  password?: string;
}

export interface RegistryContentTree {
  /** `repository:tag`, `repository`, or `repository@sha256:<hex>`. */
  url: string;
  /** Hex manifest digest (a `sha256:` prefix is accepted). */
  sha256?: string;
}

/** What the pull needs of the container runtime (ContainerRuntime satisfies it). */
export interface ImagePuller {
  pull(ref: string, onProgress?: (p: PullProgress) => void, options?: { auth?: RegistryAuth; signal?: AbortSignal }): Promise<PullResult>;
  imageInfo(ref: string): Promise<ImageInfo | null>;
}

export interface RegistryPullResult extends PullResult {
  /** False when pinned by digest and already present: no registry was contacted. */
  pulled: boolean;
  /** The image's size, when the engine said it already (a pinned image present): no second inspect needed. */
  sizeBytes?: number;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DOCKER_HUB = new Set(["index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"]);

/** The engine reference for a content tree: `host/repo@sha256:<hex>` when pinned, `host/repo:tag` otherwise. */
export function resolveRegistryRef(datastore: Pick<RegistryDatastore, "fqdn">, tree: RegistryContentTree): string {
  const what = `content tree ${JSON.stringify(tree.url)} in datastore ${JSON.stringify(datastore.fqdn)}`;
  const location = datastore.fqdn
    .trim()
    .replace(/^(docker|oci|https?):\/\//i, "")
    .replace(/\/+$/, "");
  if (!location) throw new Error(`${what}: the datastore has no host`);
  const [rawHost = "", ...prefix] = location.split("/");
  const host = DOCKER_HUB.has(rawHost.toLowerCase()) ? "docker.io" : rawHost.toLowerCase();
  if (!/^[a-z0-9.-]+(:\d+)?$/.test(host)) throw new Error(`${what}: invalid registry host ${JSON.stringify(rawHost)}`);

  let rest = tree.url.trim().replace(/^\/+/, "");
  if (rest.toLowerCase().startsWith(`${host}/`) || rest.toLowerCase().startsWith(`${rawHost.toLowerCase()}/`)) {
    rest = rest.slice(rest.indexOf("/") + 1); // the URL already names the registry
  }
  let urlDigest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    urlDigest = rest.slice(at + 1).toLowerCase();
    rest = rest.slice(0, at);
    if (!/^sha256:[0-9a-f]{64}$/.test(urlDigest)) throw new Error(`${what}: invalid digest ${JSON.stringify(urlDigest)}`);
  }
  let tag = "latest";
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new Error(`${what}: invalid tag ${JSON.stringify(tag)}`);
  }
  const repository = [...prefix, ...rest.split("/")].join("/");
  if (!repository || !repository.split("/").every((c) => COMPONENT.test(c))) {
    throw new Error(`${what}: invalid repository ${JSON.stringify(repository)} (lowercase letters, digits, . _ - and /)`);
  }

  let digest = urlDigest;
  if (tree.sha256) {
    const pinned = `sha256:${tree.sha256.toLowerCase().replace(/^sha256:/, "")}`;
    if (!/^sha256:[0-9a-f]{64}$/.test(pinned)) throw new Error(`${what}: invalid sha256 ${JSON.stringify(tree.sha256)}`);
    if (urlDigest && urlDigest !== pinned) {
      throw new Error(`${what}: the URL's digest ${urlDigest} differs from the content tree's sha256 ${pinned}`);
    }
    digest = pinned;
  }
  return digest ? `${host}/${repository}@${digest}` : `${host}/${repository}:${tag}`;
}

/**
 * Pulls a registry content tree through the container runtime, by digest when the content tree has
 * a sha256. A pinned image already present is not pulled again, so a device offline keeps working.
 * With `destinations`, the registry's host is resolved and checked before the engine is asked to pull
 * (the engine resolves again and follows redirects itself: this check is what evebox can do).
 */
export async function pullContentTree(
  runtime: ImagePuller,
  datastore: RegistryDatastore,
  tree: RegistryContentTree,
  onProgress?: (p: PullProgress) => void,
  signal?: AbortSignal,
  destinations?: DestinationPolicy,
): Promise<RegistryPullResult> {
  const ref = resolveRegistryRef(datastore, tree);
  const what = `content tree ${JSON.stringify(tree.url)} from ${datastore.fqdn}`;
  const pinned = ref.includes("@sha256:");
  try {
    if (pinned) {
      const local = await runtime.imageInfo(ref);
      if (local) return { ref, imageId: local.id, repoDigests: local.repoDigests, pulled: false, sizeBytes: local.sizeBytes };
    }
    if (destinations) {
      const host = ref.slice(0, ref.indexOf("/"));
      await resolveDestination(new URL(`https://${host === "docker.io" ? "registry-1.docker.io" : host}`), destinations, datastore.fqdn);
    }
    const auth =
      datastore.username !== undefined
        ? { username: datastore.username, password: datastore.password ?? "", serveraddress: ref.slice(0, ref.indexOf("/")) }
        : undefined;
    const result = await runtime.pull(ref, onProgress, { auth, signal });
    return { ...result, pulled: true };
  } catch (err) {
    throw new Error(`${what}: ${(err as Error).message}`);
  }
}
