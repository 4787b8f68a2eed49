// The importer on a real store, config service and content store (no engine): a bundle built by build.ts, staged,
// inspected and refused for what the pure tests cannot see — the file's own digests, a collision with the
// current config, a managed device, a staged id that is a path. Running apps is tests/bundles.test.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigService } from "../config/service.ts";
import { NO_ENV } from "../config/validate.ts";
import { EventBus } from "../model/events.ts";
import { ImageStore } from "../storage/images.ts";
import { readTarIndex } from "../storage/tar.ts";
import { Store } from "../store/store.ts";
import { buildBundle } from "./build.ts";
import { BundleService } from "./service.ts";

const VOL = "77777777-7777-4777-8777-777777777777";
let root: string;
let store: Store;
let config: ConfigService;
let managed: string | null = null;
let svc: BundleService;
let file: string;

const fileStream = (path: string) => new Response(readFileSync(path)).body;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "evebox-bundle-svc-"));
  const src = join(root, "src");
  mkdirSync(join(src, "images"), { recursive: true });
  writeFileSync(join(src, "images", "box.tar"), new Uint8Array(3000).fill(7));
  writeFileSync(
    join(src, "bundle.json"),
    JSON.stringify({
      format: 1,
      name: "svc",
      version: "1.0.0",
      description: "",
      parameters: { title: { kind: "string", label: "t", default: "x", pattern: "^[a-z]+$" } },
      images: { box: { file: "images/box.tar" } },
      config: {
        datastores: [{ id: "11111111-1111-4111-8111-111111111111", dType: "DsHttp", fqdn: "http://offline.invalid", dpath: "b" }],
        contentInfo: [{ uuid: "22222222-2222-4222-8222-222222222222", dsId: "11111111-1111-4111-8111-111111111111", URL: "b.tar", iformat: "CONTAINER", sha256: "{{image.box}}", displayName: "svc-box" }],
        volumes: [{ uuid: VOL, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: "22222222-2222-4222-8222-222222222222" }, displayName: "svc-root" }],
        apps: [{ uuidandversion: { uuid: "55555555-5555-4555-8555-555555555555", version: "1" }, displayname: "svc-app", activate: true, fixedresources: { memory: 65536, maxmem: 65536, vcpus: 1 }, volumeRefList: [{ uuid: VOL }], userData: { env: { TITLE: "{{param.title}}" } } }],
      },
    }),
  );
  file = join(root, "svc.bundle");
  await buildBundle(src, file);
  store = Store.open(":memory:");
  const events = new EventBus(store);
  config = new ConfigService(store, events, NO_ENV);
  svc = new BundleService({
    store,
    config,
    images: new ImageStore(join(root, "content"), { freeBytes: () => 1e12 }),
    events,
    host: () => ({ memoryKiB: null, networks: [], ports: [] }),
    inventory: () => ({ root: "/sys", pci: [], usb: [], serial: [], net: [], can: [], iommu: false, readAt: "" }),
    managedBy: () => managed,
    stagingDir: join(root, "staging"),
    freeBytes: () => 1e12,
  });
});

afterAll(() => {
  store.close();
  rmSync(root, { recursive: true, force: true });
});

describe("BundleService", () => {
  test("a built bundle stages and plans: every object added, nothing applied", async () => {
    const id = await svc.stage(fileStream(file), null);
    const r = await svc.inspect(id, null);
    expect(r.problems).toEqual([]);
    expect(r.plan!.added.map((x) => x.collection).sort()).toEqual(["apps", "contentInfo", "datastores", "volumes"]);
    expect(r.images).toEqual([{ name: "box", sha256: expect.stringMatching(/^[0-9a-f]{64}$/), size: 3000, present: false }]);
    expect(store.current()).toBeNull();
  });

  test("one changed byte of an image refuses the bundle, naming the image", async () => {
    const bytes = new Uint8Array(readFileSync(file));
    const img = (await readTarIndex(file)).entries.find((e) => e.name.startsWith("images/"))!;
    bytes[img.dataOffset + 10] ^= 1;
    const id = await svc.stage(new Response(bytes).body, bytes.length);
    await expect(svc.inspect(id, null)).rejects.toMatchObject({ kind: "invalid", details: { problems: [{ path: "images.box", message: expect.stringContaining("not sha256") }] } });
  });

  test("a volume UUID the current config uses already (not from this bundle) is a collision", async () => {
    config.put(new TextEncoder().encode(JSON.stringify({ volumes: [{ uuid: VOL, origin: { type: "VCOT_BLANK" }, displayName: "plant-data" }] })), "application/json", { source: "local", author: "t" });
    const id = await svc.stage(fileStream(file), null);
    const r = await svc.inspect(id, null);
    expect(r.problems.map((p) => p.message).join()).toContain(`volume ${VOL} is already on this device (volume "plant-data"`);
    await expect(svc.apply(id, null, "t")).rejects.toMatchObject({ kind: "invalid" });
    expect(store.current()!.version).toBe(1);
    config.put(new TextEncoder().encode("{}"), "application/json", { source: "local", author: "t" });
  });

  test("a parameter value with a line break is refused at its parameter", async () => {
    const id = await svc.stage(fileStream(file), null);
    const r = await svc.inspect(id, { title: "abc\ndef" });
    expect(r.plan).toBeNull();
    expect(r.problems).toEqual([{ path: "params.title", message: expect.stringContaining("control character") }]);
  });

  test("a managed device refuses import and removal, naming its controller", async () => {
    managed = "https://controller.example";
    const id = await svc.stage(fileStream(file), null);
    await expect(svc.apply(id, null, "t")).rejects.toMatchObject({ kind: "conflict", message: expect.stringContaining("managed by the controller https://controller.example") });
    await expect(svc.remove("svc", "t")).rejects.toMatchObject({ kind: "conflict" });
    managed = null;
  });

  test("a staged id that is a path is refused; a body over its announced length is refused and not kept", async () => {
    await expect(svc.inspect("../../etc/passwd", null)).rejects.toMatchObject({ kind: "invalid" });
    const before = readdirSync(join(root, "staging")).length;
    await expect(svc.stage(new Response(new Uint8Array(2000)).body, 1000)).rejects.toMatchObject({ kind: "too-large" });
    expect(readdirSync(join(root, "staging")).length).toBe(before);
  });
});
