// storage/: downloads from a real HTTP server on loopback, the content cache, and registry content
// trees pulled by digest through the real engine from a local docker-registry.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContainerRuntime, type PullProgress } from "../src/runtime/containers/index.ts";
import { ContentCache, type DownloadProgress, download, pullContentTree } from "../src/storage/index.ts";
import { importBusyboxImage, removeImageQuietly, TEST_RUN_ID, testDocker } from "./support/docker.ts";
import { startRegistry, type TestRegistry } from "./support/registry.ts";

const KiB = 1024;
const blob = crypto.getRandomValues(new Uint8Array(512 * KiB));
const blobSha = sha256(blob);
const other = crypto.getRandomValues(new Uint8Array(64 * KiB));
const otherSha = sha256(other);

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

interface Seen {
  path: string;
  range: string | null;
}
const requests: Seen[] = [];

/** Serves `data` honouring `Range: bytes=N-`. */
function serveBytes(req: Request, data: Uint8Array<ArrayBuffer>): Response {
  const m = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
  if (!m) return new Response(data);
  const start = Number(m[1]);
  if (start >= data.length) return new Response(null, { status: 416, headers: { "Content-Range": `bytes */${data.length}` } });
  return new Response(data.subarray(start), {
    status: 206,
    headers: { "Content-Range": `bytes ${start}-${data.length - 1}/${data.length}` },
  });
}

let server: ReturnType<typeof Bun.serve>;
let base: string;
let dir: string;

/**
 * An origin that cuts the connection after 40% of the blob on its first answer and honours Range
 * afterwards. A raw socket, because Bun.serve cannot drop a connection mid-body without logging it
 * as an unhandled error; this way the client also sees a real Content-Length it never gets to.
 */
function startFlakyOrigin(): { url: string; stop(): void } {
  let calls = 0;
  // socket.write may take only part of the bytes (back-pressure); the rest goes out on drain, and
  // the connection is ended only once everything was handed to the kernel.
  const send = (socket: import("bun").Socket<{ buf: string; pending: Uint8Array | null }>, bytes: Uint8Array) => {
    const n = socket.write(bytes);
    socket.data.pending = n < bytes.length ? bytes.subarray(Math.max(0, n)) : null;
    // A short pause before the cut lets the client read what was sent (as on a real link that dies).
    if (!socket.data.pending) setTimeout(() => socket.end(), 150);
  };
  const listener = Bun.listen<{ buf: string; pending: Uint8Array | null }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = { buf: "", pending: null };
      },
      drain(socket) {
        if (socket.data.pending) send(socket, socket.data.pending);
      },
      data(socket, chunk) {
        socket.data.buf += new TextDecoder().decode(chunk);
        if (!socket.data.buf.includes("\r\n\r\n")) return;
        const range = /^range:\s*(.*)$/im.exec(socket.data.buf)?.[1]?.trim() ?? null;
        requests.push({ path: "/flaky", range });
        const enc = new TextEncoder();
        if (calls++ === 0) {
          const head = enc.encode(`HTTP/1.1 200 OK\r\nContent-Length: ${blob.length}\r\nConnection: close\r\n\r\n`);
          send(socket, Buffer.concat([head, blob.subarray(0, Math.floor(blob.length * 0.4))]));
          return;
        }
        const start = Number(/bytes=(\d+)-/.exec(range ?? "")?.[1] ?? 0);
        const head =
          start > 0
            ? `HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${start}-${blob.length - 1}/${blob.length}\r\n`
            : "HTTP/1.1 200 OK\r\n";
        send(socket, Buffer.concat([enc.encode(`${head}Content-Length: ${blob.length - start}\r\nConnection: close\r\n\r\n`), blob.subarray(start)]));
      },
    },
  });
  return { url: `http://127.0.0.1:${listener.port}/flaky`, stop: () => listener.stop(true) };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "evebox-storage-"));
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    error: () => new Response("server error", { status: 500 }),
    fetch(req) {
      const path = new URL(req.url).pathname;
      requests.push({ path, range: req.headers.get("range") });
      switch (path) {
        case "/blob":
          return serveBytes(req, blob);
        case "/other":
          return serveBytes(req, other);
        case "/no-range":
          return new Response(blob); // ignores Range: always 200
        case "/stream-unbounded":
          // No Content-Length: the limit must be enforced on bytes read.
          return new Response(
            new ReadableStream({
              async pull(c) {
                c.enqueue(new Uint8Array(64 * KiB));
                await Bun.sleep(1);
              },
            }),
          );
        case "/stall":
          // Some bytes, then silence.
          return new Response(
            new ReadableStream({
              start(c) {
                c.enqueue(new Uint8Array(KiB));
              },
              pull: () => Bun.sleep(10_000),
            }),
          );
        default:
          return new Response("not here", { status: 404 });
      }
    },
  });
  base = `http://127.0.0.1:${server.port}`;
});

afterAll(async () => {
  server.stop(true);
  await rm(dir, { recursive: true, force: true });
});

describe("download", () => {
  test("downloads, verifies and reports progress", async () => {
    const dest = join(dir, "good");
    const progress: DownloadProgress[] = [];
    const result = await download({ url: `${base}/blob`, dest, expectedSha256: blobSha, onProgress: (p) => progress.push(p) });
    expect(result).toEqual({ path: dest, sha256: blobSha, sizeBytes: blob.length, resumedFrom: 0 });
    expect(sha256(new Uint8Array(await readFile(dest)))).toBe(blobSha);
    expect(existsSync(`${dest}.part`)).toBe(false);
    expect(progress.at(-1)).toEqual({ bytesDone: blob.length, bytesTotal: blob.length });
  });

  test("a wrong sha256 is refused and leaves no file", async () => {
    const dest = join(dir, "bad-hash");
    const wrong = "0".repeat(64);
    const err = await download({ url: `${base}/blob`, dest, expectedSha256: wrong }).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    // What was received is not named: a datastore URL may point at anything the device can reach.
    expect(err.message).toBe(`download ${base}/blob failed: sha256 mismatch: the content received is not sha256 ${wrong} (deleted)`);
    expect(err.message).not.toContain(blobSha);
    expect(existsSync(dest)).toBe(false);
    expect(existsSync(`${dest}.part`)).toBe(false);
  });

  test("over maxSizeBytes is refused, by Content-Length and by bytes read", async () => {
    const byLength = join(dir, "too-big");
    await expect(download({ url: `${base}/blob`, dest: byLength, maxSizeBytes: 100 * KiB })).rejects.toThrow(
      `download ${base}/blob failed: size ${blob.length} bytes exceeds the limit of ${100 * KiB} bytes`,
    );
    expect(existsSync(`${byLength}.part`)).toBe(false);

    const byBytes = join(dir, "too-big-stream");
    const t0 = performance.now();
    await expect(download({ url: `${base}/stream-unbounded`, dest: byBytes, maxSizeBytes: 1024 * KiB })).rejects.toThrow(
      `download ${base}/stream-unbounded failed: more than the limit of ${1024 * KiB} bytes`,
    );
    expect(performance.now() - t0).toBeLessThan(5000); // stopped at the limit, not at the end of an endless stream
    expect(existsSync(byBytes)).toBe(false);
    expect(existsSync(`${byBytes}.part`)).toBe(false);
  });

  test("resumes an interrupted download with a Range request", async () => {
    const flaky = startFlakyOrigin();
    try {
      const dest = join(dir, "resumed");
      const first = await download({ url: flaky.url, dest, expectedSha256: blobSha }).catch((e) => e);
      expect(first).toBeInstanceOf(Error);
      expect(first.message).toMatch(new RegExp(`^download ${flaky.url} failed: (connection lost after|got) \\d+`));
      expect(existsSync(`${dest}.part`)).toBe(true);
      // What is kept is what the client had read when the connection died: most or all of the 40 % sent.
      const kept = (await readFile(`${dest}.part`)).length;
      expect(kept).toBeGreaterThan(0);
      expect(kept).toBeLessThanOrEqual(Math.floor(blob.length * 0.4));

      const before = requests.length;
      const result = await download({ url: flaky.url, dest, expectedSha256: blobSha });
      expect(result.sha256).toBe(blobSha);
      expect(result.resumedFrom).toBe(kept);
      expect(requests.slice(before)).toEqual([{ path: "/flaky", range: `bytes=${kept}-` }]);
      expect(sha256(new Uint8Array(await readFile(dest)))).toBe(blobSha);
    } finally {
      flaky.stop();
    }
  });

  test("starts again when the server ignores Range (200)", async () => {
    const dest = join(dir, "restarted");
    await writeFile(`${dest}.part`, "garbage that must not survive");
    const result = await download({ url: `${base}/no-range`, dest, expectedSha256: blobSha });
    expect(result).toMatchObject({ sha256: blobSha, resumedFrom: 0, sizeBytes: blob.length });
  });

  test("errors say what went wrong: unreachable, HTTP status, stalled", async () => {
    const closed = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = closed.port;
    closed.stop(true);
    const unreachable = `http://127.0.0.1:${port}/blob`;
    await expect(download({ url: unreachable, dest: join(dir, "x") })).rejects.toThrow(
      new RegExp(`^download ${unreachable} failed: unreachable \\(connection refused`),
    );
    await expect(download({ url: `${base}/nope`, dest: join(dir, "y") })).rejects.toThrow(
      `download ${base}/nope failed: HTTP 404 Not Found`,
    );
    await expect(download({ url: `${base}/stall`, dest: join(dir, "z"), timeoutMs: 300 })).rejects.toThrow(
      `download ${base}/stall failed: no data for 300 ms after ${KiB} bytes`,
    );
  });
});

describe("ContentCache", () => {
  test("puts by sha256, serves what it has, and gc removes only what nothing references", async () => {
    const cache = new ContentCache(join(dir, "cache"), { stalePartMs: 60_000 });
    const a = await cache.put({ url: `${base}/blob`, sha256: `sha256:${blobSha}` });
    expect(a).toMatchObject({ digest: `sha256:${blobSha}`, sizeBytes: blob.length, downloaded: true });
    expect(a.path).toBe(join(dir, "cache", "blobs", "sha256", blobSha));
    const [b, again] = await Promise.all([
      cache.put({ url: `${base}/other`, sha256: otherSha }),
      cache.put({ url: `${base}/other`, sha256: otherSha }),
    ]);
    expect(again).toBe(b); // one download for concurrent puts
    expect((await cache.put({ url: `${base}/blob`, sha256: blobSha })).downloaded).toBe(false);
    expect(await cache.has(blobSha)).toBe(true);
    expect(await cache.verify(blobSha)).toBe(true);

    const stale = join(dir, "cache", "blobs", "sha256", `${"1".repeat(64)}.part`);
    const fresh = join(dir, "cache", "blobs", "sha256", `${"2".repeat(64)}.part`);
    await writeFile(stale, "old");
    await writeFile(fresh, "new");
    const hourAgo = new Date(Date.now() - 3600_000);
    await utimes(stale, hourAgo, hourAgo);
    expect(await cache.usage()).toEqual({
      blobs: 2,
      blobBytes: blob.length + other.length,
      partials: 2,
      partialBytes: 6,
    });

    const gc = await cache.gc(new Set([`sha256:${blobSha}`]));
    expect(gc.removed.sort()).toEqual([`${"1".repeat(64)}.part`, `sha256:${otherSha}`].sort());
    expect(gc.freedBytes).toBe(other.length + 3);
    expect(await cache.has(blobSha)).toBe(true);
    expect(await cache.has(otherSha)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
    expect(await cache.usage()).toEqual({ blobs: 1, blobBytes: blob.length, partials: 1, partialBytes: 3 });
  });
});

describe("registry content trees", () => {
  let registry: TestRegistry;
  let runtime: ContainerRuntime;
  const local = `evebox-test/payload:${TEST_RUN_ID}`;
  let digest: string;

  beforeAll(async () => {
    runtime = new ContainerRuntime(testDocker());
    registry = await startRegistry();
    // A unique image with a 4 MiB random layer, pushed and then removed locally, so the pull transfers it.
    await importBusyboxImage(local, 4 * 1024 * KiB);
    digest = await registry.push(local, "evebox/payload:1");
    await removeImageQuietly(`${registry.host}/evebox/payload:1`);
    await removeImageQuietly(local);
  });

  afterAll(async () => {
    await removeImageQuietly(`${registry.host}/evebox/payload@${digest}`);
    await registry.stop();
  });

  test("pulls by digest with progress, and not again once present", async () => {
    const datastore = { fqdn: `docker://${registry.host}` };
    const tree = { url: "evebox/payload:1", sha256: digest };
    const progress: PullProgress[] = [];
    const t0 = performance.now();
    const result = await pullContentTree(runtime, datastore, tree, (p) => progress.push(p));
    const pullMs = performance.now() - t0;
    console.log(`  pull of a ${4} MiB + busybox layer by digest: ${Math.round(pullMs)} ms, ${progress.length} progress events`);
    expect(result.ref).toBe(`${registry.host}/evebox/payload@${digest}`);
    expect(result.pulled).toBe(true);
    expect(result.repoDigests).toContain(`${registry.host}/evebox/payload@${digest}`);
    expect(await runtime.imageExists(result.ref)).toBe(true);
    const last = progress.at(-1)!;
    expect(last.bytesTotal).toBeGreaterThan(4 * 1024 * KiB);
    expect(last.bytesDone).toBe(last.bytesTotal);
    expect(last.layersDone).toBe(last.layersTotal);

    const again = await pullContentTree(runtime, datastore, tree);
    expect(again).toMatchObject({ pulled: false, imageId: result.imageId });
  });

  test("a wrong digest fails with a clear error", async () => {
    const wrong = "0".repeat(64);
    const err = await pullContentTree(runtime, { fqdn: `docker://${registry.host}` }, { url: "evebox/payload:1", sha256: wrong }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toContain(
      `content tree "evebox/payload:1" from docker://${registry.host}: pull image ${registry.host}/evebox/payload@sha256:${wrong} failed: `,
    );
    expect(err.message).toMatch(/manifest unknown|not found/i);
  });
});
