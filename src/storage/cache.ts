import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { DestinationPolicy } from "./destinations.ts";
import { type DownloadProgress, download, hashFile, normalizeSha256 } from "./download.ts";

export interface CachePutOptions {
  url: string;
  /** The content's sha256 (hex, or `sha256:<hex>`): its address in the cache. */
  sha256: string;
  maxSizeBytes?: number;
  onProgress?: (progress: DownloadProgress) => void;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface CacheEntry {
  /** `sha256:<hex>` */
  digest: string;
  path: string;
  sizeBytes: number;
  /** False when the blob was already there and nothing was fetched. */
  downloaded: boolean;
}

export interface CacheUsage {
  blobs: number;
  blobBytes: number;
  partials: number;
  partialBytes: number;
}

export interface GcResult {
  removed: string[];
  freedBytes: number;
}

export interface ContentCacheOptions {
  /** A `.part` untouched for this long is an abandoned download (default 24 h). */
  stalePartMs?: number;
  /** Where content may be fetched from (see destinations.ts); absent: anywhere. */
  destinations?: DestinationPolicy;
  /** Digests kept whatever the config references: the images imported by hand (ImageStore.digests). */
  pinned?: () => Promise<Set<string>>;
}

/**
 * Content trees stored by sha256 at `<root>/blobs/sha256/<hex>`. A blob is only ever there complete
 * and verified (downloads land in `<hex>.part` first), so `has` needs no re-hashing.
 */
export class ContentCache {
  private readonly dir: string;
  private readonly stalePartMs: number;
  /** Where content may be fetched from; registry pulls are checked against it too (registry.ts). */
  readonly destinations: DestinationPolicy | undefined;
  /** Concurrent puts of one digest share one download. */
  private readonly inFlight = new Map<string, Promise<CacheEntry>>();
  private readonly pinned: (() => Promise<Set<string>>) | undefined;

  constructor(
    readonly rootDir: string,
    options: ContentCacheOptions = {},
  ) {
    this.dir = join(rootDir, "blobs", "sha256");
    this.stalePartMs = options.stalePartMs ?? 24 * 3600_000;
    this.destinations = options.destinations;
    this.pinned = options.pinned;
  }

  path(digest: string): string {
    return join(this.dir, normalizeSha256(digest, "content cache"));
  }

  async has(digest: string): Promise<boolean> {
    try {
      return (await stat(this.path(digest))).isFile();
    } catch {
      return false;
    }
  }

  /** Downloads the blob unless it is already there; resumes an earlier partial download. */
  put(options: CachePutOptions): Promise<CacheEntry> {
    const hex = normalizeSha256(options.sha256, `content ${options.url}`);
    const running = this.inFlight.get(hex);
    if (running) return running;
    const work = this.fetchBlob(hex, options).finally(() => this.inFlight.delete(hex));
    this.inFlight.set(hex, work);
    return work;
  }

  /** Re-hashes a stored blob; a corrupt one is removed so the next put fetches it again. */
  async verify(digest: string): Promise<boolean> {
    const path = this.path(digest);
    const expected = normalizeSha256(digest, "content cache");
    let actual: string;
    try {
      actual = await hashFile(path);
    } catch {
      return false;
    }
    if (actual === expected) return true;
    await rm(path, { force: true });
    return false;
  }

  /**
   * Removes every blob not in `referenced` (digests with or without `sha256:`) nor pinned, and `.part` files
   * untouched for longer than the stale threshold. Downloads in progress are left alone.
   */
  async gc(referenced: Set<string>, now = Date.now()): Promise<GcResult> {
    const pinned = this.pinned ? await this.pinned() : new Set<string>();
    const keep = new Set([...referenced, ...pinned].map((d) => normalizeSha256(d, "content cache gc")));
    const result: GcResult = { removed: [], freedBytes: 0 };
    for (const name of await this.list()) {
      const hex = name.replace(/\.part$/, "");
      if (this.inFlight.has(hex)) continue;
      const path = join(this.dir, name);
      let info: Awaited<ReturnType<typeof stat>>;
      try {
        info = await stat(path);
      } catch {
        continue;
      }
      const isPart = name.endsWith(".part");
      const remove = isPart ? now - info.mtimeMs > this.stalePartMs : !keep.has(hex);
      if (!remove) continue;
      await rm(path, { force: true, recursive: true });
      result.removed.push(isPart ? name : `sha256:${hex}`);
      result.freedBytes += info.size;
    }
    return result;
  }

  async usage(): Promise<CacheUsage> {
    const usage: CacheUsage = { blobs: 0, blobBytes: 0, partials: 0, partialBytes: 0 };
    for (const name of await this.list()) {
      const size = await stat(join(this.dir, name)).then(
        (s) => s.size,
        () => null,
      );
      if (size === null) continue;
      if (name.endsWith(".part")) {
        usage.partials++;
        usage.partialBytes += size;
      } else {
        usage.blobs++;
        usage.blobBytes += size;
      }
    }
    return usage;
  }

  private async fetchBlob(hex: string, options: CachePutOptions): Promise<CacheEntry> {
    const path = join(this.dir, hex);
    const existing = await stat(path).catch(() => null);
    if (existing?.isFile()) return { digest: `sha256:${hex}`, path, sizeBytes: existing.size, downloaded: false };
    await mkdir(this.dir, { recursive: true });
    const result = await download({
      url: options.url,
      dest: path,
      expectedSha256: hex,
      maxSizeBytes: options.maxSizeBytes,
      onProgress: options.onProgress,
      signal: options.signal,
      timeoutMs: options.timeoutMs,
      destinations: this.destinations,
    });
    return { digest: `sha256:${hex}`, path, sizeBytes: result.sizeBytes, downloaded: true };
  }

  private async list(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter((n) => /^[0-9a-f]{64}(\.part)?$/.test(n));
    } catch {
      return [];
    }
  }
}
