// Images imported by hand into the device's content store (GET /api/v1/images), for every page that offers them:
// the Storage page uploads and lists them; the app form offers them as the source of a container (kind
// "container": a docker save or OCI tarball) or of a VM's disk (kind "disk": qcow2, raw, ISO, …).
//
//   const { images } = useImages(api);                      // live list
//   imageSources(images, "vm")                              // the disks, newest first
//   const { doc, contentTreeId } = withImportedImage(doc, image)  // the content tree naming it, in a config
//
// A content tree names an imported image by its sha256 (the tarball's or the disk file's own digest); the device
// then never downloads it, whatever the datastore (src/console/README.md, "Images"). withImportedImage adds one
// datastore for all of them, which is never contacted while the image is on the device.
import { useCallback, useState } from "preact/hooks";
import { ApiError, type ApiClient } from "./api";
import type { Doc } from "./config-edit";
import { useLive } from "./hooks";

type ImageList = Awaited<ReturnType<ApiClient["images"]>>;
/** One imported image as GET /api/v1/images lists it, with the content trees and apps of the current config using it. */
export type ImportedImage = ImageList["images"][number];
export type UploadSession = ImageList["uploads"][number];
export type ImageKind = ImportedImage["kind"];

export interface Images {
  images: ImportedImage[];
  uploads: UploadSession[];
  /** Null until the first answer. */
  loaded: boolean;
  error: string | null;
  refresh: () => Promise<void>;
}

/** The imported images, kept current on the device's events. */
export function useImages(api: Pick<ApiClient, "images" | "eventsUrl">, pollMs = 10_000): Images {
  const [list, setList] = useState<ImageList | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = useCallback(async () => {
    try {
      setList(await api.images());
      setError(null);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  }, [api]);
  const { refresh } = useLive(api.eventsUrl, load, { pollMs });
  return { images: list?.images ?? [], uploads: list?.uploads ?? [], loaded: list !== null, error, refresh };
}

/** What an app of `kind` can be made from: container tarballs for a container, disks for a VM; newest first. */
export function imageSources(images: readonly ImportedImage[], kind: "container" | "vm"): ImportedImage[] {
  const want: ImageKind = kind === "container" ? "container" : "disk";
  return images.filter((i) => i.kind === want).sort((a, b) => b.importedAt.localeCompare(a.importedAt));
}

/** The one datastore the content trees of imported images name: never contacted while the image is stored. */
export const IMPORTED_DATASTORE = Object.freeze({
  id: "8d1e7c3a-5b0f-4e2a-9c6d-1f0a2b3c4d5e",
  dType: "DsHttp",
  fqdn: "http://imported-images.invalid",
  dpath: "",
});

/** A content tree for an imported image (EVE `ContentTree`, proto3 JSON). */
export function contentTreeOf(image: ImportedImage, uuid: string): Doc {
  return {
    uuid,
    displayName: image.name,
    dsId: IMPORTED_DATASTORE.id,
    URL: `imported/${image.sha256}`,
    iformat: image.eveFormat,
    sha256: image.sha256,
    maxSizeBytes: String(image.size),
  };
}

/**
 * `doc` with a content tree for `image` (an existing one of the same sha256 is reused) and the imported-images
 * datastore; returns the content tree's id, for a volume's `origin.downloadContentTreeID`.
 */
export function withImportedImage(doc: Doc | null, image: ImportedImage, newId: () => string = () => crypto.randomUUID()): { doc: Doc; contentTreeId: string } {
  const next: Doc = { ...(doc ?? {}) };
  const trees: Doc[] = [...(next.contentInfo ?? [])];
  const existing = trees.find((t) => String(t.sha256 ?? "").toLowerCase() === image.sha256);
  if (existing) return { doc: next, contentTreeId: String(existing.uuid) };
  const stores: Doc[] = [...(next.datastores ?? [])];
  if (!stores.some((d) => d.id === IMPORTED_DATASTORE.id)) stores.push({ ...IMPORTED_DATASTORE });
  const uuid = newId();
  trees.push(contentTreeOf(image, uuid));
  next.datastores = stores;
  next.contentInfo = trees;
  return { doc: next, contentTreeId: uuid };
}

// ---- the upload: resumable, in chunks, with progress

export interface UploadOptions {
  /** Bytes sent so far of all; called often. */
  onProgress?: (sent: number, total: number) => void;
  /** The connection dropped; the upload goes on by itself from `offset` (after `retryInMs`). */
  onRetry?: (offset: number, retryInMs: number, why: string) => void;
  signal?: AbortSignal;
  /** Bytes per request (default 8 MiB): a dropped connection loses at most the chunk in flight, never what is kept. */
  chunkBytes?: number;
  /** Tries after a dropped connection before giving up (default 20), with growing waits up to 10 s. */
  retries?: number;
  /** Where an open upload's id is remembered, so a reloaded page continues it (default: localStorage). */
  remember?: Pick<Storage, "getItem" | "setItem" | "removeItem"> | null;
}

type UploadApi = Pick<ApiClient, "createImageUpload" | "imageUpload" | "imageUploadUrl">;

/**
 * Uploads `file` as the image `name`: opens an upload session (or continues the one this browser left for the
 * same file), sends it in chunks with PATCH …?offset=, and after a dropped connection asks the device where it
 * stands and sends the rest. Resolves with the stored image; rejects with the device's refusal (an HTML file,
 * a qcow2 with a backing file, no space) — nothing is stored then.
 */
export async function uploadImage(api: UploadApi, file: Blob & { name?: string; lastModified?: number }, name: string, o: UploadOptions = {}): Promise<ImportedImage> {
  const chunk = o.chunkBytes ?? 8 * 1024 * 1024;
  const retries = o.retries ?? 20;
  const memory = o.remember === undefined ? (typeof localStorage !== "undefined" ? localStorage : null) : o.remember;
  const key = `evebox.image-upload:${name}:${file.size}:${file.lastModified ?? 0}`;
  let session: UploadSession | null = null;
  const kept = memory?.getItem(key);
  if (kept) session = await api.imageUpload(kept).catch(() => null);
  if (!session || session.size !== file.size) {
    session = await api.createImageUpload(name, file.size);
    memory?.setItem(key, session.id);
  }
  let offset = session.offset;
  let failures = 0;
  o.onProgress?.(offset, file.size);
  for (;;) {
    if (o.signal?.aborted) throw new ApiError(0, "Upload cancelled.");
    const end = Math.min(file.size, offset + chunk);
    try {
      const answer = await sendBody("PATCH", api.imageUploadUrl(session.id, offset), file.slice(offset, end), (n) => o.onProgress?.(offset + n, file.size), o.signal);
      failures = 0;
      if (answer.status === 201) {
        memory?.removeItem(key);
        o.onProgress?.(file.size, file.size);
        return answer.body as ImportedImage;
      }
      offset = Number((answer.body as UploadSession).offset);
      continue;
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.status === 409 && typeof (e as ApiError & { offset?: number }).offset === "number") {
        offset = (e as ApiError & { offset: number }).offset; // the device kept more (or less) than we thought
        continue;
      }
      if (e.status !== 0 || o.signal?.aborted) {
        if (e.status !== 0) memory?.removeItem(key); // refused: the device dropped the upload
        throw e;
      }
      if (++failures > retries) throw new ApiError(0, `The upload was cut off ${retries} times; it can be continued later (the device keeps what it received).`);
      const wait = Math.min(10_000, 500 * 2 ** (failures - 1));
      o.onRetry?.(offset, wait, e.message);
      await sleep(wait, o.signal);
      // Where does the device stand? (It may have kept part of the chunk that was in flight.)
      try {
        offset = (await api.imageUpload(session.id)).offset;
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) throw new ApiError(404, "The device no longer has this upload (cancelled or abandoned); start it again.");
        // still unreachable: the next round tries again
      }
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });
}

/**
 * A file body through XMLHttpRequest (fetch reports no upload progress): an image chunk, a bundle. A refusal is an
 * ApiError with the device's reason, its `problems`, and an upload's `offset`.
 */
export function sendBody(method: "POST" | "PATCH", url: string, body: Blob, onSent: (bytes: number) => void, signal?: AbortSignal): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => onSent(e.loaded);
    const onAbort = () => xhr.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    xhr.onload = () => {
      signal?.removeEventListener("abort", onAbort);
      let data: Record<string, unknown> = {};
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300) return resolve({ status: xhr.status, body: data });
      const problems = Array.isArray(data.problems) ? (data.problems as { path: string; message: string }[]) : undefined;
      const err = new ApiError(xhr.status, typeof data.error === "string" ? data.error : `The device answered ${xhr.status}.`, problems);
      if (typeof data.offset === "number") Object.assign(err, { offset: data.offset });
      reject(err);
    };
    xhr.onerror = () => (signal?.removeEventListener("abort", onAbort), reject(new ApiError(0, "The connection to the device dropped.")));
    xhr.onabort = () => (signal?.removeEventListener("abort", onAbort), reject(new ApiError(0, "Upload cancelled.")));
    xhr.send(body);
  });
}
