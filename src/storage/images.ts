// Images brought onto the device by hand (the console's upload, for air-gapped devices): streamed to a temporary
// file while hashed, resumable by offset, detected and checked (image-format.ts) once complete, then moved into
// the content store by digest — the same `blobs/sha256/<hex>` a downloaded content tree lands in, so a content
// tree naming that sha256 is never fetched (ContentCache.has), whatever its datastore.
//
// Layout under the content root (`<persist>/content`):
//   blobs/sha256/<hex>        the image (shared with ContentCache)
//   images/<hex>.json         what was imported: name, format, kind, size, when
//   uploads/<id>.part, .json  an upload in progress: its bytes so far, its name and announced size
import { createHash, type Hash, randomUUID } from "node:crypto";
import { createReadStream, statfsSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { DeviceModel } from "../config/model.ts";
import { displayNameProblem } from "../config/names.ts";
import { normalizeSha256 } from "./download.ts";
import { type ContainerFacts, detectImage, EVE_FORMAT, type ImageFormat, type ImageKind, ImageRefused } from "./image-format.ts";

export { ImageRefused } from "./image-format.ts";
export type { ImageFormat, ImageKind } from "./image-format.ts";

export interface ImportedImage {
  sha256: string;
  name: string;
  size: number;
  format: ImageFormat;
  kind: ImageKind;
  /** The EVE `Format` a content tree of this image names (QCOW2, RAW, ISO, CONTAINER, …). */
  eveFormat: string;
  /** A disk's size as the guest sees it. */
  virtualSize: number | null;
  container: ContainerFacts | null;
  importedAt: string;
}

export interface UploadSession {
  id: string;
  name: string;
  /** The announced size in bytes; the upload is complete when `offset` reaches it. */
  size: number;
  /** Bytes received and kept: the next PATCH starts here. */
  offset: number;
  createdAt: string;
  updatedAt: string;
}

export interface ImageStoreOptions {
  /** The largest image accepted (default 64 GiB). */
  maxBytes?: number;
  /** Free space that must remain on the device after an upload (default 1 GiB). */
  reserveBytes?: number;
  /** Uploads open at once (default 4): each holds disk space. */
  maxSessions?: number;
  /** An upload untouched this long is abandoned and removed (default 24 h). */
  staleMs?: number;
  /** An append that receives no byte for this long ends (default 60 s): its bytes so far are kept. */
  stallMs?: number;
  qemuImg?: string;
  /** Free bytes of the file system holding `dir` (statfs; injected by tests). */
  freeBytes?: (dir: string) => number;
  now?: () => number;
}

export interface AppendResult {
  session: UploadSession;
  /** Set when this append completed the upload: the image as stored. */
  image: ImportedImage | null;
}

/** Who uses an image in the current config: the content trees with its sha256, and the apps that use them. */
export interface ImageUsers {
  contentTrees: { uuid: string; name: string }[];
  apps: { uuid: string; name: string }[];
}

const ID = /^[0-9a-f]{32}$/;
const MAX_NAME = 128;
const FREE_CHECK_EVERY = 64 * 1024 * 1024;
/** Bytes per write to the part file. */
const WRITE_BYTES = 4 * 1024 * 1024;
/** A body that sends nothing for this long has what it sent so far written out. */
const IDLE_FLUSH_MS = 200;

/** The name an upload is shown by: one line of text, 1 to 128 characters. Never part of a path. */
export function imageNameProblem(name: unknown): string | null {
  if (typeof name !== "string" || name.trim() === "") return "an image needs a name (1 to 128 characters)";
  const p = displayNameProblem(name);
  if (p) return p;
  if (name.length > MAX_NAME) return `${name.length} characters: at most ${MAX_NAME}`;
  return null;
}

function mib(n: number): string {
  return n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(1)} GiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

interface Live {
  hash: Hash;
  /** Bytes the hash has seen (equal to the part file's size between appends). */
  hashed: number;
  /** The append running now: a new one supersedes it. */
  running: { abort: AbortController; done: Promise<unknown> } | null;
}

export class ImageStore {
  readonly blobDir: string;
  private readonly recordDir: string;
  private readonly uploadDir: string;
  readonly maxBytes: number;
  private readonly reserveBytes: number;
  private readonly maxSessions: number;
  private readonly staleMs: number;
  private readonly stallMs: number;
  private readonly freeBytes: (dir: string) => number;
  private readonly now: () => number;
  private readonly live = new Map<string, Live>();
  /** Finishing uploads (detection and the move into the store), by session. */
  private readonly finishing = new Set<string>();
  /** The space a one-shot import of unknown length holds (its announced size is the limit). */
  private readonly reserved = new Map<string, number>();

  constructor(
    readonly rootDir: string,
    private readonly opts: ImageStoreOptions = {},
  ) {
    this.blobDir = join(rootDir, "blobs", "sha256");
    this.recordDir = join(rootDir, "images");
    this.uploadDir = join(rootDir, "uploads");
    this.maxBytes = opts.maxBytes ?? 64 * 1024 ** 3;
    this.reserveBytes = opts.reserveBytes ?? 1024 ** 3;
    this.maxSessions = opts.maxSessions ?? 4;
    this.staleMs = opts.staleMs ?? 24 * 3600_000;
    this.stallMs = opts.stallMs ?? 60_000;
    this.freeBytes = opts.freeBytes ?? ((dir) => {
      const s = statfsSync(dir);
      return s.bavail * s.bsize;
    });
    this.now = opts.now ?? Date.now;
  }

  // ---- imported images

  async list(): Promise<ImportedImage[]> {
    const out: ImportedImage[] = [];
    for (const name of await names(this.recordDir, /^[0-9a-f]{64}\.json$/)) {
      const rec = await this.read(name.slice(0, 64));
      if (rec) out.push(rec);
    }
    return out.sort((a, b) => a.importedAt.localeCompare(b.importedAt) || a.name.localeCompare(b.name));
  }

  async get(sha256: string): Promise<ImportedImage | null> {
    return this.read(this.hex(sha256));
  }

  /** The digests of every imported image (`sha256:<hex>`): the content cache keeps these blobs. */
  async digests(): Promise<Set<string>> {
    return new Set((await names(this.recordDir, /^[0-9a-f]{64}\.json$/)).map((n) => `sha256:${n.slice(0, 64)}`));
  }

  /** Removes an image; refused (conflict) while the current config uses it, naming who does. */
  async remove(sha256: string, users: ImageUsers): Promise<ImportedImage> {
    const hex = this.hex(sha256);
    const rec = await this.read(hex);
    if (!rec) throw new ImageRefused("not-found", `no imported image sha256:${hex}`);
    if (users.contentTrees.length) {
      const trees = users.contentTrees.map((t) => `"${t.name}" (${t.uuid})`).join(", ");
      const apps = users.apps.length ? `, used by the app${users.apps.length > 1 ? "s" : ""} ${users.apps.map((a) => `"${a.name}"`).join(", ")}` : "";
      throw new ImageRefused("conflict", `image "${rec.name}" is in use: the content tree${users.contentTrees.length > 1 ? "s" : ""} ${trees} of the current config name${users.contentTrees.length > 1 ? "" : "s"} its sha256${apps}; remove ${users.contentTrees.length > 1 ? "them" : "it"} from the config first`, {
        contentTrees: users.contentTrees,
        apps: users.apps,
      });
    }
    await rm(join(this.recordDir, `${hex}.json`), { force: true });
    await rm(join(this.blobDir, hex), { force: true });
    return rec;
  }

  // ---- uploads

  /** Opens an upload of `size` bytes named `name`: checks the name, the size limit and the free space first. */
  createUpload(name: string, size: number): Promise<UploadSession> {
    return this.open(name, size, size);
  }

  private async open(name: string, size: number, reserve: number): Promise<UploadSession> {
    const problem = imageNameProblem(name);
    if (problem) throw new ImageRefused("invalid", `name: ${problem}`);
    if (!Number.isSafeInteger(size) || size <= 0) throw new ImageRefused("invalid", "size: the file's size in bytes, more than 0");
    if (size > this.maxBytes) throw new ImageRefused("too-large", `${name}: ${mib(size)} is more than the largest image the device accepts (${mib(this.maxBytes)})`);
    await this.sweep();
    const sessions = await this.uploads();
    if (sessions.length >= this.maxSessions)
      throw new ImageRefused("too-many", `${sessions.length} uploads are open already (at most ${this.maxSessions}); finish or cancel one first`, { uploads: sessions.map((s) => ({ id: s.id, name: s.name })) });
    await mkdir(this.uploadDir, { recursive: true });
    const pending = sessions.reduce((n, s) => n + Math.max(0, (this.reserved.get(s.id) ?? s.size) - s.offset), 0);
    this.checkSpace(name, reserve + pending);
    const at = new Date(this.now()).toISOString();
    const session: UploadSession = { id: randomUUID().replace(/-/g, ""), name, size, offset: 0, createdAt: at, updatedAt: at };
    await writeFile(this.partPath(session.id), "");
    await writeJson(join(this.uploadDir, `${session.id}.json`), { id: session.id, name, size, createdAt: at });
    this.live.set(session.id, { hash: createHash("sha256"), hashed: 0, running: null });
    if (reserve !== size) this.reserved.set(session.id, reserve);
    return session;
  }

  async upload(id: string): Promise<UploadSession> {
    const s = await this.session(id);
    if (!s) throw new ImageRefused("not-found", `no upload ${id} (finished, cancelled, or abandoned for ${Math.round(this.staleMs / 3600_000)} h)`);
    return s;
  }

  async uploads(): Promise<UploadSession[]> {
    const out: UploadSession[] = [];
    for (const n of await names(this.uploadDir, /^[0-9a-f]{32}\.json$/)) {
      const s = await this.session(n.slice(0, 32));
      if (s) out.push(s);
    }
    return out;
  }

  async cancel(id: string): Promise<void> {
    await this.upload(id);
    const live = this.live.get(id);
    live?.running?.abort.abort();
    await live?.running?.done.catch(() => {});
    await this.drop(id);
  }

  /**
   * Appends `body` at `offset` (which must be the session's offset: a client that lost track asks `upload(id)`).
   * A dropped connection keeps every byte received. An append to a session with one still running supersedes
   * that one (its client is gone or gave up). The append that reaches `size` finishes the upload: the image is
   * detected, checked and stored by its digest — or refused, and then nothing of it is kept.
   */
  async append(id: string, offset: number, body: ReadableStream<Uint8Array> | null, signal?: AbortSignal): Promise<AppendResult> {
    if (!ID.test(id)) throw new ImageRefused("not-found", `no upload ${JSON.stringify(id).slice(0, 40)}`);
    let live = this.live.get(id);
    if (live?.running) {
      live.running.abort.abort();
      await live.running.done.catch(() => {});
    }
    if (this.finishing.has(id)) throw new ImageRefused("conflict", "this upload is complete and being checked; ask for it again in a moment");
    const session = await this.upload(id);
    if (!Number.isSafeInteger(offset) || offset !== session.offset)
      throw new ImageRefused("conflict", `offset ${offset} is not where the upload stands (${session.offset} bytes received): continue from ${session.offset}`, { offset: session.offset });
    if (!live) {
      live = { hash: createHash("sha256"), hashed: 0, running: null };
      this.live.set(id, live);
    }
    const abort = new AbortController();
    const onOuter = () => abort.abort();
    signal?.addEventListener("abort", onOuter, { once: true });
    const work = this.receive(session, live, body, abort.signal);
    live.running = { abort, done: work };
    let received: UploadSession;
    try {
      received = await work;
    } finally {
      signal?.removeEventListener("abort", onOuter);
      if (live.running?.done === work) live.running = null;
    }
    if (received.offset < received.size) return { session: received, image: null };
    return { session: received, image: await this.finish(received, live) };
  }

  /** The one-shot import: the whole file as one stream (`POST /images?name=`), not resumable. */
  async importStream(name: string, body: ReadableStream<Uint8Array> | null, length: number | null, signal?: AbortSignal): Promise<ImportedImage> {
    // An unknown length is received up to the limit (the free space checked as it goes) and is what arrived.
    const session = await this.open(name, length ?? this.maxBytes, length ?? 0);
    const live = this.live.get(session.id)!;
    const abort = new AbortController();
    const onOuter = () => abort.abort();
    signal?.addEventListener("abort", onOuter, { once: true });
    try {
      const work = this.receive(session, live, body, abort.signal);
      live.running = { abort, done: work };
      const s = await work;
      live.running = null;
      if (length !== null && s.offset < length) throw new ImageRefused("invalid", `${name}: the upload ended after ${s.offset} of ${length} bytes; nothing was stored`);
      if (s.offset === 0) throw new ImageRefused("invalid", `${name}: the file is empty; nothing was stored`);
      return await this.finish({ ...s, size: s.offset }, live);
    } finally {
      signal?.removeEventListener("abort", onOuter);
      await this.drop(session.id);
    }
  }

  // ---- who uses what

  /** The content trees of `model` naming `sha256`, and the apps whose volumes are made from them. */
  static users(model: DeviceModel | null, sha256: string): ImageUsers {
    const hex = sha256.toLowerCase().replace(/^sha256:/, "");
    const trees = (model?.contentTrees ?? []).filter((t) => t.sha256 === hex);
    const treeIds = new Set(trees.map((t) => t.uuid));
    const volumes = new Set((model?.volumes ?? []).filter((v) => v.contentTreeId && treeIds.has(v.contentTreeId)).map((v) => v.uuid));
    const apps = (model?.apps ?? []).filter((a) => a.volumeRefs.some((r) => volumes.has(r.uuid)));
    return {
      contentTrees: trees.map((t) => ({ uuid: t.uuid, name: t.name })),
      apps: apps.map((a) => ({ uuid: a.uuid, name: a.name })),
    };
  }

  // ---- the inside

  private hex(sha256: string): string {
    try {
      return normalizeSha256(sha256, "image");
    } catch {
      throw new ImageRefused("invalid", `not a sha256 (64 hex digits): ${JSON.stringify(sha256).slice(0, 80)}`);
    }
  }

  private partPath(id: string): string {
    return join(this.uploadDir, `${id}.part`);
  }

  private async read(hex: string): Promise<ImportedImage | null> {
    try {
      const rec = JSON.parse(await readFile(join(this.recordDir, `${hex}.json`), "utf8")) as ImportedImage;
      return rec.sha256 === hex ? rec : null;
    } catch {
      return null;
    }
  }

  private async session(id: string): Promise<UploadSession | null> {
    if (!ID.test(id)) return null;
    try {
      const meta = JSON.parse(await readFile(join(this.uploadDir, `${id}.json`), "utf8")) as Omit<UploadSession, "offset" | "updatedAt">;
      const part = await stat(this.partPath(id));
      return { id, name: meta.name, size: meta.size, offset: part.size, createdAt: meta.createdAt, updatedAt: part.mtime.toISOString() };
    } catch {
      return null;
    }
  }

  private checkSpace(name: string, needed: number): void {
    let free: number;
    try {
      free = this.freeBytes(this.rootDir);
    } catch {
      return; // no statfs here: the write itself will say ENOSPC
    }
    if (free - needed < this.reserveBytes)
      throw new ImageRefused("too-large", `${name}: not enough space on the device: ${mib(free)} free, ${mib(needed)} needed and ${mib(this.reserveBytes)} kept free`);
  }

  /**
   * Streams the body into the part file at the session's offset, hashing as it goes; keeps what arrived. The
   * body's small chunks (64 KiB from Bun) are gathered into 4 MiB writes, one in flight while the next fills.
   */
  private async receive(session: UploadSession, live: Live, body: ReadableStream<Uint8Array> | null, signal: AbortSignal): Promise<UploadSession> {
    const part = this.partPath(session.id);
    // The hash covers exactly the bytes kept: after a restart (or a torn append) it is rebuilt from the file.
    if (live.hashed !== session.offset) {
      live.hash = createHash("sha256");
      live.hashed = 0;
      if (session.offset > 0) {
        for await (const chunk of createReadStream(part, { start: 0, end: session.offset - 1 })) live.hash.update(chunk as Buffer);
      }
      live.hashed = session.offset;
    }
    const file = await open(part, "r+");
    /** Bytes on disk, and bytes received (hashed; on disk once the writes in flight are done). */
    let written = session.offset;
    let received = session.offset;
    let sinceCheck = 0;
    const reader = body?.getReader();
    let lastByte = this.now();
    let stalled = false;
    const onAbort = () => void reader?.cancel().catch(() => {});
    signal.addEventListener("abort", onAbort, { once: true });
    const buffers = [new Uint8Array(WRITE_BYTES), new Uint8Array(WRITE_BYTES)];
    let current = 0;
    let fill = 0;
    let lastWrite: Promise<void> = Promise.resolve();
    let chain: Promise<void> = Promise.resolve();
    /** Starts writing the current buffer (after the other one's write is done, so that one is free again). */
    const writeOut = async () => {
      await lastWrite;
      if (fill === 0) return;
      const buf = buffers[current]!;
      const len = fill;
      const at = received - len;
      lastWrite = file.write(buf, 0, len, at).then(({ bytesWritten }) => {
        if (bytesWritten !== len) throw new Error(`short write: ${bytesWritten} of ${len} bytes`);
        written = at + len;
      });
      current = 1 - current;
      fill = 0;
    };
    const flush = () => (chain = chain.then(writeOut));
    const watch = setInterval(
      () => {
        const idle = this.now() - lastByte;
        if (idle >= this.stallMs) {
          stalled = true;
          void reader?.cancel().catch(() => {});
        }
        // Bytes wait in the buffer only while more keep coming: when the body pauses (a client gone without a
        // word, which only the stall timeout ends), they go to disk, so the offset a client resumes from is what arrived.
        else if (idle >= IDLE_FLUSH_MS && fill > 0) void flush().catch(() => {});
      },
      Math.min(IDLE_FLUSH_MS, this.stallMs),
    );
    let failed = false;
    try {
      await file.truncate(written);
      if (!reader) return { ...session, offset: written };
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch {
          break; // the connection dropped: what was received stays, the client resumes from it
        }
        if (chunk.done || signal.aborted || stalled) break;
        lastByte = this.now();
        let bytes = chunk.value;
        if (received + bytes.length > session.size) {
          await reader.cancel().catch(() => {});
          throw new ImageRefused("too-large", `${session.name}: more bytes than the ${session.size} announced`);
        }
        sinceCheck += bytes.length;
        if (sinceCheck >= FREE_CHECK_EVERY) {
          sinceCheck = 0;
          this.checkSpace(session.name, session.size - received);
        }
        live.hash.update(bytes);
        while (bytes.length) {
          const n = Math.min(bytes.length, WRITE_BYTES - fill);
          buffers[current]!.set(bytes.subarray(0, n), fill);
          fill += n;
          received += n;
          bytes = bytes.subarray(n);
          if (fill === WRITE_BYTES) await flush();
        }
      }
      await flush();
      await lastWrite;
    } catch (e) {
      failed = true;
      throw e;
    } finally {
      clearInterval(watch);
      signal.removeEventListener("abort", onAbort);
      if (!failed) live.hashed = written;
      else {
        await chain.catch(() => {});
        await lastWrite.catch(() => {});
        live.hashed = -1; // the hash saw bytes that are not kept: rebuilt from the file next time
      }
      // Nothing past what is on disk and hashed is kept (a write that failed half-way).
      await file.truncate(written).catch(() => {});
      await file.close().catch(() => {});
    }
    return { ...session, offset: written, updatedAt: new Date(this.now()).toISOString() };
  }

  /** The complete upload: detected and checked, then moved into the store by digest, or refused and removed. */
  private async finish(session: UploadSession, live: Live): Promise<ImportedImage> {
    this.finishing.add(session.id);
    try {
      const hex = live.hash.copy().digest("hex");
      const existing = await this.read(hex);
      if (existing) return existing;
      const part = this.partPath(session.id);
      let detected;
      try {
        detected = await detectImage(part, session.name, { qemuImg: this.opts.qemuImg });
      } catch (e) {
        if (e instanceof ImageRefused) await this.drop(session.id);
        throw e;
      }
      await mkdir(this.blobDir, { recursive: true });
      await mkdir(this.recordDir, { recursive: true });
      const blob = join(this.blobDir, hex);
      // The same bytes may be there already (downloaded for a content tree): they are the same image.
      if ((await stat(blob).catch(() => null))?.isFile()) await rm(part, { force: true });
      else await rename(part, blob);
      const image: ImportedImage = {
        sha256: hex,
        name: session.name,
        size: session.size,
        format: detected.format,
        kind: detected.kind,
        eveFormat: EVE_FORMAT[detected.format],
        virtualSize: detected.virtualSize,
        container: detected.container,
        importedAt: new Date(this.now()).toISOString(),
      };
      await writeJson(join(this.recordDir, `${hex}.json`), image);
      await this.drop(session.id);
      return image;
    } finally {
      this.finishing.delete(session.id);
    }
  }

  private async drop(id: string): Promise<void> {
    this.live.delete(id);
    this.reserved.delete(id);
    await rm(this.partPath(id), { force: true });
    await rm(join(this.uploadDir, `${id}.json`), { force: true });
  }

  /** Removes uploads untouched for `staleMs`, and stray files of the upload directory. */
  async sweep(): Promise<string[]> {
    const removed: string[] = [];
    for (const n of await names(this.uploadDir, /./)) {
      const m = /^([0-9a-f]{32})\.(part|json)$/.exec(n);
      if (m && n.endsWith(".json")) {
        const s = await this.session(m[1]!);
        if (s && this.now() - Date.parse(s.updatedAt) <= this.staleMs) continue;
        if (this.live.get(m[1]!)?.running) continue;
        await this.drop(m[1]!);
        removed.push(m[1]!);
      } else if (m && !removed.includes(m[1]!)) {
        if (!(await stat(join(this.uploadDir, `${m[1]}.json`)).catch(() => null))) {
          await rm(join(this.uploadDir, n), { force: true });
          removed.push(m[1]!);
        }
      } else if (n.endsWith(".tmp")) await rm(join(this.uploadDir, n), { force: true });
    }
    return removed;
  }
}

async function names(dir: string, pattern: RegExp): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => pattern.test(n)).sort();
  } catch {
    return [];
  }
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFile(`${path}.tmp`, JSON.stringify(value));
  await rename(`${path}.tmp`, path);
}
