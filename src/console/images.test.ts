import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { qcow2 } from "../../tests/support/images.ts";
import { Auth } from "../auth/auth.ts";
import { deviceModel, type DeviceModel } from "../config/model.ts";
import { ImageStore } from "../storage/images.ts";
import { Store } from "../store/store.ts";
import { createConsoleApp } from "./app.ts";
import type { ConsoleDevice } from "./device.ts";

let dir: string;
let disk: Uint8Array<ArrayBuffer>;
let sha: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "evebox-console-images-"));
  disk = new Uint8Array(await readFile(await qcow2(join(dir, "d.qcow2"), 4 << 20)));
  sha = createHash("sha256").update(disk).digest("hex");
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function fixture() {
  const store = Store.open(join(dir, `${Math.random().toString(36).slice(2)}.db`));
  let model: DeviceModel | null = null;
  const events: string[] = [];
  const device = {
    version: "1",
    store,
    events: { publish: (e: { type: string }) => events.push(e.type), subscribe: () => () => {} },
    config: { current: () => null, currentDoc: () => null, model: () => (model ? { version: 1, model, problems: [] } : null) },
    apps: null,
    terminals: null,
    name: () => "box",
    managed: () => false,
    controllerUrl: () => null,
    controllerLink: () => null,
    status: () => ({ networkInstances: [] }),
    metricsText: () => "",
  } as unknown as ConsoleDevice;
  const images = new ImageStore(join(dir, `content-${Math.random().toString(36).slice(2)}`), { freeBytes: () => 1e12 });
  const app = createConsoleApp({ auth: new Auth(store, join(dir, "t")), device, ui: null, trustAll: true, images });
  const call = (method: string, path: string, body?: BodyInit, headers: Record<string, string> = {}) =>
    app.fetch(new Request(`http://device/api/v1${path}`, { method, body, headers: { host: "device", ...headers } }));
  return { call, images, events, setModel: (m: DeviceModel) => (model = m) };
}

const OCTETS = { "content-type": "application/octet-stream" };
const JSONH = { "content-type": "application/json" };

describe("/api/v1/images", () => {
  test("a resumable upload: open, PATCH in two parts (one from a wrong offset), GET the offset, 201 with the image", async () => {
    const { call, events } = fixture();
    let r = await call("POST", "/images/uploads", JSON.stringify({ name: "debian", size: disk.length }), JSONH);
    expect(r.status).toBe(201);
    const session = (await r.json()) as { id: string; offset: number };
    expect(session.offset).toBe(0);
    expect(r.headers.get("location")).toBe(`/api/v1/images/uploads/${session.id}`);
    r = await call("PATCH", `/images/uploads/${session.id}?offset=0`, disk.slice(0, 1000), OCTETS);
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ offset: 1000 });
    r = await call("PATCH", `/images/uploads/${session.id}?offset=5`, disk.slice(5), OCTETS);
    expect(r.status).toBe(409);
    expect(await r.json()).toMatchObject({ offset: 1000 });
    r = await call("GET", `/images/uploads/${session.id}`);
    expect(r.headers.get("upload-offset")).toBe("1000");
    expect(r.headers.get("upload-length")).toBe(String(disk.length));
    r = await call("HEAD", `/images/uploads/${session.id}`);
    expect(r.status).toBe(200);
    expect(r.headers.get("upload-offset")).toBe("1000");
    r = await call("PATCH", `/images/uploads/${session.id}`, disk.slice(1000), { ...OCTETS, "upload-offset": "1000" });
    expect(r.status).toBe(201);
    expect(await r.json()).toMatchObject({ sha256: sha, size: disk.length, format: "qcow2", name: "debian" });
    expect(events).toContain("image.imported");
    r = await call("GET", "/images");
    const list = (await r.json()) as { images: { sha256: string; usedBy: unknown }[]; uploads: unknown[] };
    expect(list.images.map((i) => i.sha256)).toEqual([sha]);
    expect(list.images[0]!.usedBy).toEqual({ contentTrees: [], apps: [] });
    expect(list.uploads).toEqual([]);
  });

  test("POST /images?name= in one request; HTML refused with 415 and nothing stored; not octet-stream is 415; a bad name is 400", async () => {
    const { call, images } = fixture();
    let r = await call("POST", "/images?name=debian", disk, OCTETS);
    expect(r.status).toBe(201);
    expect(await r.json()).toMatchObject({ sha256: sha, size: disk.length, format: "qcow2", name: "debian", kind: "disk" });
    r = await call("POST", "/images?name=page.qcow2", "<!DOCTYPE html><html><body>Not Found</body></html>".repeat(30), OCTETS);
    expect(r.status).toBe(415);
    expect(((await r.json()) as { error: string }).error).toMatch(/^page\.qcow2: it is an HTML document.*nothing was stored$/);
    expect((await images.list()).length).toBe(1);
    r = await call("POST", "/images?name=x", disk, { "content-type": "text/plain" });
    expect(r.status).toBe(415);
    r = await call("POST", `/images?name=${encodeURIComponent("a\nb")}`, disk, OCTETS);
    expect(r.status).toBe(400);
    r = await call("POST", "/images", disk, OCTETS);
    expect(r.status).toBe(400);
  });

  test("DELETE is refused with 409 while a content tree of the current config uses the image, then removes it", async () => {
    const { call, setModel } = fixture();
    expect((await call("POST", "/images?name=debian", disk, OCTETS)).status).toBe(201);
    setModel(
      deviceModel({
        datastores: [{ id: "8d1e7c3a-5b0f-4e2a-9c6d-1f0a2b3c4d5e", dType: "DsHttp", fqdn: "http://x.invalid" }],
        contentInfo: [{ uuid: "11111111-1111-4111-8111-111111111111", displayName: "debian-tree", dsId: "8d1e7c3a-5b0f-4e2a-9c6d-1f0a2b3c4d5e", URL: "x", iformat: "QCOW2", sha256: sha }],
      }),
    );
    let r = await call("DELETE", `/images/${sha}`);
    expect(r.status).toBe(409);
    const body = (await r.json()) as { error: string; contentTrees: unknown[] };
    expect(body.error).toContain('content tree "debian-tree"');
    expect(body.contentTrees).toEqual([{ uuid: "11111111-1111-4111-8111-111111111111", name: "debian-tree" }]);
    setModel(deviceModel({}));
    r = await call("DELETE", `/images/sha256:${sha}`);
    expect(r.status).toBe(200);
    expect((await (await call("GET", "/images")).json()) as unknown).toMatchObject({ images: [] });
    expect((await call("DELETE", `/images/${sha}`)).status).toBe(404);
  });
});
