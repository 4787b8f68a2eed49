import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { qcow2 } from "../../tests/support/images.ts";
import { deviceModel } from "../config/model.ts";
import { ContentCache } from "./cache.ts";
import { ImageRefused, ImageStore, imageNameProblem } from "./images.ts";

let dir: string;
let disk: Uint8Array;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "evebox-images-"));
  disk = new Uint8Array(await readFile(await qcow2(join(dir, "src.qcow2"), 8 * 1024 * 1024)));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const hex = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const stream = (...parts: Uint8Array[]) =>
  new ReadableStream<Uint8Array>({
    start(c) {
      for (const p of parts) c.enqueue(p);
      c.close();
    },
  });
/** A body that delivers `bytes` and then fails, as a dropped connection does. */
const dropped = (bytes: Uint8Array) =>
  new ReadableStream<Uint8Array>({
    pull(c) {
      if (bytes.length) {
        c.enqueue(bytes);
        bytes = new Uint8Array(0);
      } else c.error(new Error("connection reset"));
    },
  });

let n = 0;
function store(opts: ConstructorParameters<typeof ImageStore>[1] = {}) {
  return new ImageStore(join(dir, `root${n++}`), { freeBytes: () => 100 * 1024 ** 3, ...opts });
}

async function refused(p: Promise<unknown>): Promise<ImageRefused> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ImageRefused);
    return e as ImageRefused;
  }
  throw new Error("accepted");
}

describe("ImageStore uploads", () => {
  test("one upload in three appends, the second dropped half-way: stored by digest, identical bytes", async () => {
    const s = store();
    const up = await s.createUpload("debian 12", disk.length);
    expect(up).toMatchObject({ name: "debian 12", size: disk.length, offset: 0 });
    const a = 100_000;
    let r = await s.append(up.id, 0, stream(disk.subarray(0, a)));
    expect(r).toMatchObject({ session: { offset: a }, image: null });
    // The connection drops after 50 000 more bytes: they are kept.
    r = await s.append(up.id, a, dropped(disk.slice(a, a + 50_000)));
    expect(r.session.offset).toBe(a + 50_000);
    expect((await s.upload(up.id)).offset).toBe(a + 50_000);
    // A client that lost track and sends from the wrong offset is told where to continue.
    const e = await refused(s.append(up.id, a, stream(disk.subarray(a))));
    expect(e.kind).toBe("conflict");
    expect(e.details.offset).toBe(a + 50_000);
    r = await s.append(up.id, a + 50_000, stream(disk.subarray(a + 50_000)));
    expect(r.image).toMatchObject({ sha256: hex(disk), name: "debian 12", size: disk.length, format: "qcow2", kind: "disk", eveFormat: "QCOW2", virtualSize: 8 * 1024 * 1024 });
    const blob = join(s.rootDir, "blobs", "sha256", hex(disk));
    expect(hex(new Uint8Array(await readFile(blob)))).toBe(hex(disk));
    expect(await s.uploads()).toEqual([]);
    expect(await readdir(join(s.rootDir, "uploads"))).toEqual([]);
    expect((await s.list()).map((i) => i.sha256)).toEqual([hex(disk)]);
    // The content cache sees it: a content tree of this sha256 is not downloaded.
    expect(await new ContentCache(s.rootDir).has(hex(disk))).toBe(true);
  });

  test("a new evebox (no hash in memory) resumes an upload from its file", async () => {
    const root = join(dir, "restart");
    const first = new ImageStore(root, { freeBytes: () => 100 * 1024 ** 3 });
    const up = await first.createUpload("img", disk.length);
    await first.append(up.id, 0, dropped(disk.slice(0, 4096)));
    const second = new ImageStore(root, { freeBytes: () => 100 * 1024 ** 3 });
    expect((await second.upload(up.id)).offset).toBe(4096);
    const r = await second.append(up.id, 4096, stream(disk.subarray(4096)));
    expect(r.image?.sha256).toBe(hex(disk));
  });

  test("an HTML file is refused when complete and nothing of it is kept", async () => {
    const s = store();
    const html = new TextEncoder().encode(`<!doctype html><html><body>${"x".repeat(2000)}</body></html>`);
    const up = await s.createUpload("ubuntu.qcow2", html.length);
    const e = await refused(s.append(up.id, 0, stream(html)));
    expect(e.kind).toBe("unsupported-type");
    expect(e.message).toBe("ubuntu.qcow2: it is an HTML document (a web page, perhaps a download site's error page), not a disk image or a container image tarball; nothing was stored");
    expect(await s.list()).toEqual([]);
    expect(await readdir(join(s.rootDir, "uploads"))).toEqual([]);
    expect(await readdir(join(s.rootDir, "blobs", "sha256")).catch(() => [])).toEqual([]);
    expect((await refused(s.upload(up.id))).kind).toBe("not-found");
  });

  test("the one-shot import, with and without a length; a short body is refused", async () => {
    const s = store();
    expect((await s.importStream("a", stream(disk.subarray(0, 1000), disk.subarray(1000)), disk.length)).sha256).toBe(hex(disk));
    expect((await s.importStream("b", stream(disk), null)).sha256).toBe(hex(disk)); // the same image: the first record stays
    expect((await s.list()).map((i) => i.name)).toEqual(["a"]);
    const e = await refused(s.importStream("c", dropped(disk.slice(0, 10)), disk.length));
    expect(e.message).toContain("ended after 10 of");
    expect(await s.uploads()).toEqual([]);
  });

  test("limits: the name, the size, the free space, the number of open uploads, bytes past the announced size", async () => {
    expect(imageNameProblem("")).toContain("needs a name");
    expect(imageNameProblem("a\nb")).toContain("control character");
    expect(imageNameProblem("x".repeat(129))).toContain("at most 128");
    expect(imageNameProblem("Windows 11 HMI (v2).iso")).toBeNull();
    const s = store({ maxBytes: 1024 * 1024, maxSessions: 2, freeBytes: () => 3 * 1024 ** 3, reserveBytes: 1024 ** 3 });
    expect((await refused(s.createUpload("a\tb", 10))).message).toContain("name: ");
    expect((await refused(s.createUpload("big", 2 * 1024 * 1024))).kind).toBe("too-large");
    const tight = store({ freeBytes: () => 1.5 * 1024 ** 3, reserveBytes: 1024 ** 3 });
    const space = await refused(tight.createUpload("big", 600 * 1024 * 1024));
    expect(space.message).toMatch(/not enough space on the device: 1\.5 GiB free, 600\.0 MiB needed and 1\.0 GiB kept free/);
    const one = await s.createUpload("one", 100);
    await s.createUpload("two", 100);
    expect((await refused(s.createUpload("three", 100))).kind).toBe("too-many");
    const over = await refused(s.append(one.id, 0, stream(new Uint8Array(101))));
    expect(over.message).toContain("more bytes than the 100 announced");
    expect((await s.upload(one.id)).offset).toBe(0);
    await s.cancel(one.id);
    expect((await s.uploads()).map((u) => u.name)).toEqual(["two"]);
  });

  test("a second append to the same upload supersedes a stalled one", async () => {
    const s = store();
    const up = await s.createUpload("img", disk.length);
    let release: () => void = () => {};
    const hanging = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(disk.slice(0, 1000));
      },
      pull: () => new Promise<void>((r) => (release = r)),
    });
    const first = s.append(up.id, 0, hanging);
    // The body pauses: what it sent reaches the disk within a moment (a client asking where to resume sees it).
    let seen = 0;
    for (let i = 0; i < 200 && seen < 1000; i++) {
      await Bun.sleep(10);
      seen = (await s.upload(up.id)).offset;
    }
    expect(seen).toBe(1000);
    const r = await s.append(up.id, 1000, stream(disk.subarray(1000)));
    expect(r.image?.sha256).toBe(hex(disk));
    expect((await first).session.offset).toBe(1000);
    release();
  });

  test("abandoned uploads are swept after the stale time", async () => {
    let now = Date.now();
    const s = store({ staleMs: 1000, now: () => now });
    const up = await s.createUpload("old", 10);
    expect(await s.sweep()).toEqual([]);
    now += 60_000;
    expect(await s.sweep()).toEqual([up.id]);
    expect(await s.uploads()).toEqual([]);
  });
});

describe("ImageStore: use and removal", () => {
  const doc = (sha: string) => ({
    datastores: [{ id: "d1", dType: "DsHttp", fqdn: "http://unreachable.invalid" }],
    contentInfo: [{ uuid: "11111111-1111-4111-8111-111111111111", displayName: "debian", dsId: "d1", URL: "debian.qcow2", iformat: "QCOW2", sha256: sha }],
    volumes: [{ uuid: "22222222-2222-4222-8222-222222222222", displayName: "root", origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: "11111111-1111-4111-8111-111111111111" }, generationCount: 1 }],
    apps: [{ uuidandversion: { uuid: "33333333-3333-4333-8333-333333333333", version: "1" }, displayname: "plc-vm", volumeRefList: [{ uuid: "22222222-2222-4222-8222-222222222222", generationCount: 1 }] }],
  });

  test("delete is refused while a content tree of the config names the image, naming the tree and the app", async () => {
    const s = store();
    const img = await s.importStream("debian", stream(disk), disk.length);
    const model = deviceModel(doc(img.sha256));
    const users = ImageStore.users(model, img.sha256);
    expect(users).toEqual({ contentTrees: [{ uuid: "11111111-1111-4111-8111-111111111111", name: "debian" }], apps: [{ uuid: "33333333-3333-4333-8333-333333333333", name: "plc-vm" }] });
    const e = await refused(s.remove(img.sha256, users));
    expect(e.kind).toBe("conflict");
    expect(e.message).toContain('content tree "debian" (11111111-1111-4111-8111-111111111111)');
    expect(e.message).toContain('app "plc-vm"');
    expect(await s.get(img.sha256)).not.toBeNull();
    // Another config does not use it: removed, blob and record.
    await s.remove(`sha256:${img.sha256}`, ImageStore.users(deviceModel(doc("a".repeat(64))), img.sha256));
    expect(await s.list()).toEqual([]);
    expect(await new ContentCache(s.rootDir).has(img.sha256)).toBe(false);
    expect((await refused(s.remove(img.sha256, { contentTrees: [], apps: [] }))).kind).toBe("not-found");
    expect((await refused(s.remove("../../etc", { contentTrees: [], apps: [] }))).kind).toBe("invalid");
  });

  test("the content cache's garbage collection keeps imported images", async () => {
    const s = store();
    const img = await s.importStream("debian", stream(disk), disk.length);
    const cache = new ContentCache(s.rootDir, { pinned: () => s.digests() });
    await writeFile(join(s.rootDir, "blobs", "sha256", "b".repeat(64)), "old download");
    const r = await cache.gc(new Set());
    expect(r.removed).toEqual([`sha256:${"b".repeat(64)}`]);
    expect(await cache.has(img.sha256)).toBe(true);
  });
});
