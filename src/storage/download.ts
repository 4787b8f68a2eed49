import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { isIP } from "node:net";
import { dirname } from "node:path";
import { checkServerIdentity, type PeerCertificate } from "node:tls";
import { type DestinationPolicy, DestinationRefused, type ResolvedAddress, resolveDestination } from "./destinations.ts";

export interface DownloadProgress {
  bytesDone: number;
  /** Null while the server has not said how big the content is. */
  bytesTotal: number | null;
}

export interface DownloadOptions {
  url: string;
  /** Final path; bytes go to `<dest>.part` first and are renamed only once complete and verified. */
  dest: string;
  /** Hex sha256 (an optional `sha256:` prefix is accepted). Mismatch deletes the file. */
  expectedSha256?: string;
  maxSizeBytes?: number;
  onProgress?: (progress: DownloadProgress) => void;
  signal?: AbortSignal;
  /** Aborts when no byte arrives for this long, connecting included (default 30 s). */
  timeoutMs?: number;
  /** Injected for tests and proxies; the global `fetch` by default. */
  fetch?: typeof fetch;
  /**
   * Where the download may connect to. Each hop (the URL, then every redirect) is resolved and checked,
   * and the connection is made to the address that was checked. Absent: anywhere.
   */
  destinations?: DestinationPolicy;
}

export interface DownloadResult {
  path: string;
  sha256: string;
  sizeBytes: number;
  /** Bytes of an earlier partial download that were kept (0 when started afresh). */
  resumedFrom: number;
}

export type DownloadFailure = "unreachable" | "refused" | "http" | "size" | "hash" | "timeout" | "interrupted" | "aborted" | "io";

export class DownloadError extends Error {
  constructor(
    readonly kind: DownloadFailure,
    readonly url: string,
    detail: string,
  ) {
    super(`download ${url} failed: ${detail}`);
    this.name = "DownloadError";
  }
}

const PROGRESS_INTERVAL_MS = 100;
const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * Downloads `url` to `dest` over http(s), hashing while it streams. A `<dest>.part` left by an
 * interrupted attempt is continued with a Range request when the server answers 206, and started
 * again when it answers 200. A `DownloadError` names the URL and what went wrong.
 */
export async function download(options: DownloadOptions): Promise<DownloadResult> {
  const { url, dest } = options;
  const expected = options.expectedSha256 ? normalizeSha256(options.expectedSha256, url) : undefined;
  const part = `${dest}.part`;
  await mkdir(dirname(dest), { recursive: true });
  let offset = await sizeOf(part);
  // A second pass happens only when the server rejects or misreports the range we asked for.
  for (let attempt = 0; ; attempt++) {
    const outcome = await fetchOnce(options, part, offset, expected);
    if (outcome !== "restart") return outcome;
    if (attempt > 0) throw new DownloadError("http", url, "the server keeps rejecting the resumed range");
    await rm(part, { force: true });
    offset = 0;
  }
}

async function fetchOnce(
  options: DownloadOptions,
  part: string,
  offset: number,
  expected: string | undefined,
): Promise<DownloadResult | "restart"> {
  const { url, dest, maxSizeBytes } = options;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const controller = new AbortController();
  let timedOut = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
  };
  const onAbort = () => controller.abort();
  if (options.signal?.aborted) throw new DownloadError("aborted", url, "aborted");
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const failure = (err: unknown, bytes: number): DownloadError => {
    if (err instanceof DownloadError) return err;
    if (options.signal?.aborted) return new DownloadError("aborted", url, `aborted after ${bytes} bytes`);
    if (timedOut) return new DownloadError("timeout", url, `no data for ${timeoutMs} ms after ${bytes} bytes`);
    return new DownloadError("interrupted", url, `connection lost after ${bytes} bytes (${describe(err)})`);
  };

  arm();
  try {
    let response: Response;
    try {
      response = await request(options, { "Accept-Encoding": "identity", ...(offset > 0 ? { Range: `bytes=${offset}-` } : {}) }, controller.signal);
    } catch (err) {
      if (err instanceof DownloadError) throw err;
      if (err instanceof DestinationRefused) throw new DownloadError("refused", url, err.message);
      if (options.signal?.aborted) throw new DownloadError("aborted", url, "aborted");
      if (timedOut) throw new DownloadError("timeout", url, `no answer within ${timeoutMs} ms`);
      throw new DownloadError("unreachable", url, `unreachable (${describe(err)})`);
    }

    let resumeFrom = 0;
    let total: number | null = null;
    const length = headerNumber(response.headers.get("content-length"));
    if (response.status === 206 && offset > 0) {
      const range = parseContentRange(response.headers.get("content-range"));
      if (!range || range.start !== offset) {
        await response.body?.cancel();
        return "restart";
      }
      resumeFrom = offset;
      total = range.total ?? (length !== null ? offset + length : null);
    } else if (response.status === 416 && offset > 0) {
      const range = parseContentRange(response.headers.get("content-range"));
      await response.body?.cancel();
      // The partial file already holds the whole content.
      if (range?.total === offset) return await finish(options, part, dest, expected, await hashFile(part), offset, offset);
      return "restart";
    } else if (response.status === 200) {
      total = length;
    } else {
      await response.body?.cancel();
      throw new DownloadError("http", url, `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}`);
    }

    if (maxSizeBytes !== undefined && total !== null && total > maxSizeBytes) {
      await response.body?.cancel();
      await rm(part, { force: true });
      throw new DownloadError("size", url, `size ${total} bytes exceeds the limit of ${maxSizeBytes} bytes`);
    }

    const hash = createHash("sha256");
    if (resumeFrom > 0) await hashInto(hash, part, resumeFrom);
    const file = await open(part, resumeFrom > 0 ? "r+" : "w");
    let bytes = resumeFrom;
    let lastReport = 0;
    const report = (force: boolean) => {
      const now = Date.now();
      if (!options.onProgress || (!force && now - lastReport < PROGRESS_INTERVAL_MS)) return;
      lastReport = now;
      options.onProgress({ bytesDone: bytes, bytesTotal: total });
    };
    try {
      // Drop anything past the resumed offset (a previous writer may have left a torn tail).
      await file.truncate(resumeFrom);
      report(true);
      if (!response.body) throw new DownloadError("http", url, `HTTP ${response.status} without a body`);
      const reader = response.body.getReader();
      try {
        for (;;) {
          let chunk: Awaited<ReturnType<typeof reader.read>>;
          try {
            chunk = await reader.read();
          } catch (err) {
            throw failure(err, bytes);
          }
          if (chunk.done) break;
          arm();
          if (maxSizeBytes !== undefined && bytes + chunk.value.length > maxSizeBytes) {
            controller.abort();
            await file.close();
            await rm(part, { force: true });
            throw new DownloadError("size", url, `more than the limit of ${maxSizeBytes} bytes`);
          }
          hash.update(chunk.value);
          await file.write(chunk.value, 0, chunk.value.length, bytes);
          bytes += chunk.value.length;
          report(false);
        }
      } finally {
        reader.releaseLock();
      }
    } finally {
      await file.close().catch(() => {});
    }
    report(true);
    if (total !== null && bytes !== total) {
      // Keep the part: the next attempt resumes it.
      throw new DownloadError("interrupted", url, `got ${bytes} of ${total} bytes`);
    }
    return await finish(options, part, dest, expected, hash.digest("hex"), bytes, resumeFrom);
  } catch (err) {
    if (err instanceof DownloadError) throw err;
    throw new DownloadError("io", url, describe(err));
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * One GET, redirects followed here rather than by fetch, so that each hop's destination is checked
 * (and connected to at the address that was checked) like the first.
 */
async function request(options: DownloadOptions, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
  let url = new URL(options.url);
  for (let hop = 0; ; hop++) {
    const address = options.destinations ? await resolveDestination(url, options.destinations) : null;
    const [target, init] = pinned(url, address, headers, signal);
    const response = await (options.fetch ?? fetch)(target, init);
    if (!REDIRECTS.has(response.status)) return response;
    await response.body?.cancel();
    const location = response.headers.get("location");
    if (!location) throw new DownloadError("http", options.url, `HTTP ${response.status} without a Location`);
    if (hop >= MAX_REDIRECTS) throw new DownloadError("http", options.url, `more than ${MAX_REDIRECTS} redirects`);
    const next = new URL(location, url);
    if (next.protocol !== "http:" && next.protocol !== "https:") throw new DownloadError("http", options.url, `redirected to a ${next.protocol} URL`);
    url = next;
  }
}

/** The request for `url`, made to `address` when one is given (Host, TLS server name and certificate check stay the URL's). */
function pinned(url: URL, address: ResolvedAddress | null, headers: Record<string, string>, signal: AbortSignal): [string, RequestInit] {
  const init: RequestInit & { tls?: Record<string, unknown> } = { headers, signal, redirect: "manual" };
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (!address || isIP(host)) return [url.href, init];
  const target = new URL(url.href);
  target.hostname = address.family === 6 ? `[${address.address}]` : address.address;
  init.headers = { ...headers, Host: url.host };
  if (url.protocol === "https:") {
    init.tls = { serverName: host, checkServerIdentity: (_: string, cert: PeerCertificate) => checkServerIdentity(host, cert) };
  }
  return [target.href, init];
}

async function finish(
  options: DownloadOptions,
  part: string,
  dest: string,
  expected: string | undefined,
  actual: string,
  size: number,
  resumedFrom: number,
): Promise<DownloadResult> {
  if (expected && actual !== expected) {
    await rm(part, { force: true });
    // What was received is not named (not even its digest): the URL may point anywhere the device can reach.
    throw new DownloadError("hash", options.url, `sha256 mismatch: the content received is not sha256 ${expected} (deleted)`);
  }
  try {
    await rename(part, dest);
  } catch (err) {
    throw new DownloadError("io", options.url, `cannot move ${part} to ${dest} (${describe(err)})`);
  }
  return { path: dest, sha256: actual, sizeBytes: size, resumedFrom };
}

export function normalizeSha256(value: string, context: string): string {
  const hex = value.toLowerCase().replace(/^sha256:/, "");
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`${context}: invalid sha256 ${JSON.stringify(value)}`);
  return hex;
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function hashInto(hash: Hash, path: string, length: number): Promise<void> {
  if (length <= 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1 })) hash.update(chunk as Buffer);
}

export async function hashFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

function headerNumber(value: string | null): number | null {
  if (value === null || !/^\d+$/.test(value.trim())) return null;
  return Number(value);
}

/** `bytes 100-199/1000`, `bytes 100-199/*` or `bytes *\/1000`. */
function parseContentRange(value: string | null): { start: number | null; total: number | null } | null {
  const m = /^bytes (?:(\d+)-\d+|\*)\/(\d+|\*)$/.exec(value?.trim() ?? "");
  if (!m) return null;
  return { start: m[1] !== undefined ? Number(m[1]) : null, total: m[2] === "*" ? null : Number(m[2]) };
}

const NETWORK_ERRORS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ConnectionRefused: "connection refused",
  ECONNRESET: "connection reset",
  ENOTFOUND: "host name not resolved",
  EAI_AGAIN: "host name not resolved",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ETIMEDOUT: "connection timed out",
  CERT_HAS_EXPIRED: "TLS certificate expired",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "TLS certificate not trusted",
  DEPTH_ZERO_SELF_SIGNED_CERT: "TLS certificate self-signed",
};

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string } | null;
  const known = e?.code ? NETWORK_ERRORS[e.code] : undefined;
  if (known) return `${known}, ${e?.code}`;
  const message = e?.message ?? String(err);
  return e?.code && !message.includes(e.code) ? `${e.code}: ${message}` : message;
}
