import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildDeviceModel } from "../config/model.ts";
import { Store } from "../store/store.ts";
import type { ObjectProblem } from "../config/problems.ts";
import { MetadataServer } from "./server.ts";
import { type Caller, MetadataService } from "./service.ts";

const A = "3b4c5d6e-7f80-4912-8a3b-4c5d6e7f8a06";
const B = "3b4c5d6e-7f80-4912-8a3b-4c5d6e7f8a07";
const PE = "5e000000-0000-4000-8000-000000000001";
const PE2 = "5e000000-0000-4000-8000-000000000002";
const b64 = (s: string) => Buffer.from(s).toString("base64");
const dir = mkdtempSync(join(tmpdir(), "evebox-meta-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CALLERS: Record<string, Caller> = {
  "10.1.0.2": { appUuid: A, appName: "web", uplinkIfname: "eth0" },
  "10.1.0.3": { appUuid: B, appName: "db", uplinkIfname: null },
};

function service(envelopes: unknown[], problems: ObjectProblem[] = [], now = () => 0) {
  const model = buildDeviceModel({ patchEnvelopes: envelopes }).model;
  return new MetadataService({
    callerAt: (ip) => CALLERS[ip] ?? null,
    model: () => ({ model, problems }),
    device: () => ({ uuid: "6c6cb828-b0be-4166-9daf-ab353430dbc1", name: "dev1" }),
    ipv4Of: (ifname) => (ifname === "eth0" ? "192.0.2.10" : null),
    now,
  });
}

const ENVELOPES = [
  { uuid: PE, version: "2", displayName: "cfg", action: "ACTIVATE", appInstIdsAllowed: [A], artifacts: [{ inline: { fileNameToUse: "a.txt", base64Data: b64("hello a"), base64MetaData: "bWV0YQ==" } }, { inline: { fileNameToUse: "b.yml", base64Data: b64("k: v\n") } }] },
  { uuid: PE2, action: "STORE", appInstIdsAllowed: [A, B], artifacts: [{ inline: { fileNameToUse: "kept.txt", base64Data: b64("not yet") } }] },
];

const get = (s: MetadataService, path: string, ip = "10.1.0.2", method = "GET") => s.fetch(new Request(`http://169.254.169.254${path}`, { method }), ip, 40000);

describe("the metadata service", () => {
  test("an address no app on a Local instance holds gets 403 on every route, whatever it asks", async () => {
    const s = service(ENVELOPES);
    for (const p of ["/eve/v1/network.json", "/eve/v1/patch/description.json", `/eve/v1/patch/download/${PE}/a.txt`, `/eve/v1/patch/download/${PE}`, "/nothing"]) {
      expect((await get(s, p, "10.1.0.99")).status).toBe(403);
    }
  });

  test("network.json names the calling app by its address, with the device and the external address", async () => {
    const s = service(ENVELOPES);
    expect(await (await get(s, "/eve/v1/network.json")).json()).toEqual({
      "caller-ip": "10.1.0.2:40000",
      "external-ipv4": "192.0.2.10",
      hostname: A,
      "app-instance-uuid": A,
      "device-uuid": "6c6cb828-b0be-4166-9daf-ab353430dbc1",
      "device-name": "dev1",
      "project-name": "",
      "project-uuid": "",
      "enterprise-name": "",
      "enterprise-id": "",
    });
    expect((await (await get(s, "/eve/v1/network.json", "10.1.0.3")).json())["app-instance-uuid"]).toBe(B);
    expect(await (await get(s, "/eve/v1/external_ipv4")).text()).toBe("192.0.2.10\n");
    expect((await get(s, "/eve/v1/external_ipv4", "10.1.0.3")).status).toBe(204); // an air-gapped instance
    expect(await (await get(s, "/eve/v1/hostname", "10.1.0.3")).text()).toBe(`${B}\n`);
  });

  test("description.json lists the ACTIVE envelopes naming the caller, with EVE's keys; others get an empty list", async () => {
    const s = service(ENVELOPES);
    const d = await (await get(s, "/eve/v1/patch/description.json")).json();
    expect(d).toEqual([
      {
        PatchID: PE,
        Version: "2",
        BinaryBlobs: [
          { fileName: "a.txt", fileSha: new Bun.CryptoHasher("sha256").update(b64("hello a")).digest("hex"), fileMetaData: "bWV0YQ==", artifactMetaData: "", encArtifactMeta: {}, url: `http://169.254.169.254/eve/v1/patch/download/${PE}/a.txt`, size: b64("hello a").length },
          { fileName: "b.yml", fileSha: new Bun.CryptoHasher("sha256").update(b64("k: v\n")).digest("hex"), fileMetaData: "", artifactMetaData: "", encArtifactMeta: {}, url: `http://169.254.169.254/eve/v1/patch/download/${PE}/b.yml`, size: b64("k: v\n").length },
        ],
        VolumeRefs: null,
      },
    ]);
    // B is named only by a STORE envelope: kept from it.
    expect(await (await get(s, "/eve/v1/patch/description.json", "10.1.0.3")).json()).toEqual([]);
  });

  test("a file is served as EVE serves it (the base64 text); another app's envelope, a STORE one, another name: 404", async () => {
    const s = service(ENVELOPES);
    const r = await get(s, `/eve/v1/patch/download/${PE}/a.txt`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe(b64("hello a"));
    expect((await get(s, `/eve/v1/patch/download/${PE}/a.txt`, "10.1.0.3")).status).toBe(404);
    expect((await get(s, `/eve/v1/patch/download/${PE2}/kept.txt`)).status).toBe(404);
    expect((await get(s, `/eve/v1/patch/download/${PE}/c.txt`)).status).toBe(404);
    expect((await get(s, `/eve/v1/patch/download/${PE}/..%2F..%2Fetc%2Fpasswd`)).status).toBe(404);
  });

  test("a file name with a space, %, #, ? and non-ASCII is served by the url description.json gives", async () => {
    const name = "my file é%#?.txt";
    const s = service([{ uuid: PE, action: "ACTIVATE", appInstIdsAllowed: [A], artifacts: [{ inline: { fileNameToUse: name, base64Data: "aGk=" } }] }]);
    const url = (await (await get(s, "/eve/v1/patch/description.json")).json())[0].BinaryBlobs[0].url;
    expect(url).toBe(`http://169.254.169.254/eve/v1/patch/download/${PE}/${encodeURIComponent(name)}`);
    const r = await s.fetch(new Request(url), "10.1.0.2", 40000);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe("aGk=");
  });

  test("the envelope's zip holds each file (unzip reads it back)", async () => {
    const s = service(ENVELOPES);
    const r = await get(s, `/eve/v1/patch/download/${PE}`);
    expect(r.headers.get("content-type")).toBe("application/zip");
    const zip = join(dir, "pe.zip");
    writeFileSync(zip, new Uint8Array(await r.arrayBuffer()));
    const t = Bun.spawnSync(["unzip", "-t", zip]);
    expect(t.exitCode).toBe(0);
    expect(Bun.spawnSync(["unzip", "-p", zip, "a.txt"]).stdout.toString()).toBe(b64("hello a"));
    expect(Bun.spawnSync(["unzip", "-p", zip, "b.yml"]).stdout.toString()).toBe(b64("k: v\n"));
  });

  test("an envelope with a problem (a controller's config) is in error and not served; reports say why", async () => {
    const s = service(ENVELOPES, [{ objectKind: "patchEnvelope", objectId: PE, path: "patchEnvelopes[0].artifacts[0].inline.fileNameToUse", message: "bad" }]);
    expect(await (await get(s, "/eve/v1/patch/description.json")).json()).toEqual([]);
    expect(s.reports()).toEqual([
      { uuid: PE, name: "cfg", version: "2", state: "PATCH_ERROR", size: b64("hello a").length + b64("k: v\n").length, errors: ["patchEnvelopes[0].artifacts[0].inline.fileNameToUse: bad"] },
      { uuid: PE2, name: "", version: "", state: "PATCH_READY", size: b64("not yet").length, errors: [] },
    ]);
  });

  test("usage is counted per app and envelope: description calls and downloads", async () => {
    const s = service(ENVELOPES);
    await get(s, "/eve/v1/patch/description.json");
    await get(s, `/eve/v1/patch/download/${PE}/a.txt`);
    await get(s, `/eve/v1/patch/download/${PE}`);
    await get(s, `/eve/v1/patch/download/${PE}/nope`);
    expect(s.usageOf(A)).toEqual([{ appUuid: A, uuid: PE, version: "2", apiCalls: 1, downloads: 2 }]);
    expect(s.usageOf(B)).toEqual([]);
  });

  test("appCustomStatus: an app's JSON status is kept as sent, per app (the controller gets it); bounded, JSON only", async () => {
    const s = service(ENVELOPES);
    const post = (ip: string, body: string, type = "application/json") => s.fetch(new Request("http://169.254.169.254/eve/v1/app/appCustomStatus", { method: "POST", body, headers: { "Content-Type": type } }), ip, 1);
    expect((await post("10.1.0.2", '{"status":"b2s="}')).status).toBe(200);
    expect((await post("10.1.0.3", '{"ok":true}')).status).toBe(200);
    expect((await post("10.1.0.3", "text", "text/plain")).status).toBe(415);
    expect((await post("10.1.0.3", "x".repeat(32 * 1024 + 1))).status).toBe(413);
    expect((await post("10.1.0.99", "{}")).status).toBe(403);
    // Another POST path is not answered.
    expect((await s.fetch(new Request("http://169.254.169.254/eve/v1/hostname", { method: "POST", body: "{}", headers: { "Content-Type": "application/json" } }), "10.1.0.2", 1)).status).toBe(405);
    // Only apps of the current config are reported (the model here has none): kept out.
    expect(s.customStatuses()).toEqual([]);
    const model = buildDeviceModel({ apps: [{ uuidandversion: { uuid: A } }, { uuidandversion: { uuid: B } }] }).model;
    const s2 = new MetadataService({ callerAt: (ip) => CALLERS[ip] ?? null, model: () => ({ model, problems: [] }), device: () => ({ uuid: null, name: "" }), ipv4Of: () => null });
    await s2.fetch(new Request("http://169.254.169.254/eve/v1/app/appCustomStatus", { method: "POST", body: '{"a":1}', headers: { "Content-Type": "application/json" } }), "10.1.0.2", 1);
    expect(s2.customStatuses().map((c) => [c.uuid, new TextDecoder().decode(c.data)])).toEqual([[A, '{"a":1}']]);
  });

  test("a volume artifact: kept from the apps (PATCH_RECEIVED) until its content tree is in the store, then its file is served as EVE serves it", async () => {
    const bytes = new Uint8Array(70_000).map((_, i) => (i * 7 + 3) & 0xff); // binary, not text
    const sha = new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
    const blob = join(dir, sha);
    const DS = "5b0a6b52-7f36-4a55-8c3e-2a3f5c0d1e09";
    const CT = "0c5e2b1a-3d4f-4a6b-9c8d-7e6f5a4b3c09";
    const VOL = "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a09";
    const doc = {
      datastores: [{ id: DS, dType: "DsHttp", fqdn: "http://files.example" }],
      contentInfo: [{ uuid: CT, dsId: DS, URL: "m.bin", iformat: "RAW", sha256: sha }],
      volumes: [{ uuid: VOL, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: CT } }],
      patchEnvelopes: [
        { uuid: PE, version: "1", action: "ACTIVATE", appInstIdsAllowed: [A], artifacts: [{ inline: { fileNameToUse: "a.txt", base64Data: b64("hello a") } }, { volumeRef: { imageName: "model", fileNameToUse: "model.bin", blobMetaData: "bWV0YQ==", imageId: VOL }, artifactMetaData: "art" }] },
        { uuid: PE2, action: "STORE", appInstIdsAllowed: [A], artifacts: [{ volumeRef: { imageName: "model", imageId: VOL } }] },
      ],
    };
    const { model, problems } = buildDeviceModel(doc);
    expect(problems).toEqual([]);
    let stored = false;
    const s = new MetadataService({
      callerAt: (ip) => CALLERS[ip] ?? null,
      model: () => ({ model, problems: [] }),
      device: () => ({ uuid: null, name: "" }),
      ipv4Of: () => null,
      artifactFile: (h) => (stored && h === sha ? { path: blob, size: bytes.length } : null),
    });
    expect(await (await get(s, "/eve/v1/patch/description.json")).json()).toEqual([]);
    expect((await get(s, `/eve/v1/patch/download/${PE}/model.bin`)).status).toBe(404);
    expect(s.reports().map((r) => [r.uuid, r.state, r.size])).toEqual([[PE, "PATCH_RECEIVED", b64("hello a").length], [PE2, "PATCH_RECEIVED", 0]]);

    writeFileSync(blob, bytes);
    stored = true;
    expect(s.reports().map((r) => [r.uuid, r.state, r.size])).toEqual([[PE, "PATCH_ACTIVE", b64("hello a").length + bytes.length], [PE2, "PATCH_READY", bytes.length]]);
    const d = await (await get(s, "/eve/v1/patch/description.json")).json();
    expect(d[0].BinaryBlobs[1]).toEqual({ fileName: "model.bin", fileSha: sha, fileMetaData: "bWV0YQ==", artifactMetaData: "art", encArtifactMeta: {}, url: `http://169.254.169.254/eve/v1/patch/download/${PE}/model.bin`, size: bytes.length });
    expect(d[0].VolumeRefs).toEqual([{ fileName: "model.bin", imageName: "model", fileMetaData: "bWV0YQ==", artifactMetaData: "art", encArtifactMeta: {}, imageId: VOL }]);
    const r = await get(s, `/eve/v1/patch/download/${PE}/model.bin`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-length")).toBe(String(bytes.length));
    const got = new Uint8Array(await r.arrayBuffer());
    expect(new Bun.CryptoHasher("sha256").update(got).digest("hex")).toBe(sha);
    // The zip holds both files, the volume's as its bytes; unzip checks each CRC.
    const z = await get(s, `/eve/v1/patch/download/${PE}`);
    const zip = join(dir, "vol.zip");
    const body = new Uint8Array(await z.arrayBuffer());
    expect(z.headers.get("content-length")).toBe(String(body.length));
    writeFileSync(zip, body);
    expect(Bun.spawnSync(["unzip", "-t", zip]).exitCode).toBe(0);
    const fromZip = Bun.spawnSync(["unzip", "-p", zip, "model.bin"]).stdout;
    expect(new Bun.CryptoHasher("sha256").update(fromZip).digest("hex")).toBe(sha);
    expect(Bun.spawnSync(["unzip", "-p", zip, "a.txt"]).stdout.toString()).toBe(b64("hello a"));
    expect(s.usageOf(A)).toEqual([{ appUuid: A, uuid: PE, version: "1", apiCalls: 1, downloads: 2 }]);
  });

  test("the counters and the custom statuses outlive a restart (kept in the store), bounded by the config", async () => {
    const path = join(dir, "restart.db");
    const apps = [{ uuidandversion: { uuid: A } }, { uuidandversion: { uuid: B } }];
    let model = buildDeviceModel({ apps, patchEnvelopes: ENVELOPES }).model;
    const over = (store: Store) =>
      new MetadataService({ callerAt: (ip) => CALLERS[ip] ?? null, model: () => ({ model, problems: [] }), device: () => ({ uuid: null, name: "" }), ipv4Of: () => null, state: store.metadata });
    const status = (s: MetadataService, ip: string, body: string) =>
      s.fetch(new Request("http://169.254.169.254/eve/v1/app/appCustomStatus", { method: "POST", body, headers: { "Content-Type": "application/json" } }), ip, 1);
    let store = Store.open(path);
    const before = over(store);
    await get(before, "/eve/v1/patch/description.json");
    await get(before, "/eve/v1/patch/description.json");
    await get(before, `/eve/v1/patch/download/${PE}/a.txt`);
    expect((await status(before, "10.1.0.2", '{"phase":"one"}')).status).toBe(200);
    expect((await status(before, "10.1.0.2", '{"phase":"two"}')).status).toBe(200);
    expect((await status(before, "10.1.0.3", '{"b":1}')).status).toBe(200);
    store.close();

    // "Restart": a new store on the same file, a new service over it.
    store = Store.open(path);
    const after = over(store);
    expect(after.usageOf(A)).toEqual([{ appUuid: A, uuid: PE, version: "2", apiCalls: 2, downloads: 1 }]);
    const text = (s: MetadataService) => s.customStatuses().map((c) => [c.uuid, new TextDecoder().decode(c.data)]);
    expect(text(after)).toEqual([[A, '{"phase":"two"}'], [B, '{"b":1}']]);
    // It goes on counting from there.
    await get(after, `/eve/v1/patch/download/${PE}`);
    expect(after.usageOf(A)[0]!.downloads).toBe(2);

    // A config without app B and with envelope PE at version 3: B's status and PE v2's counters go from the store.
    model = buildDeviceModel({ apps: apps.slice(0, 1), patchEnvelopes: [{ ...ENVELOPES[0], version: "3" }] }).model;
    expect(after.usageOf(A)).toEqual([]);
    expect(text(after)).toEqual([[A, '{"phase":"two"}']]);
    expect(store.metadata.usage()).toEqual([]);
    expect(store.metadata.statuses().map((s) => s.uuid)).toEqual([A]);
    store.close();
  });

  test("a caller over its budget gets 429 (others are not held back); only GET is answered", async () => {
    let t = 0;
    const s = service(ENVELOPES, [], () => t);
    const codes: number[] = [];
    for (let i = 0; i < 25; i++) codes.push((await get(s, "/eve/v1/hostname")).status);
    expect(codes.filter((c) => c === 200).length).toBe(20);
    expect(codes.at(-1)).toBe(429);
    expect((await get(s, "/eve/v1/hostname", "10.1.0.3")).status).toBe(200);
    t += 1000; // 5 more a second
    expect((await get(s, "/eve/v1/hostname")).status).toBe(200);
    expect((await get(s, "/eve/v1/hostname", "10.1.0.3", "POST")).status).toBe(405);
  });
});

describe("the metadata server", () => {
  test("identifies the caller by the connection's source address, not by anything in the request", async () => {
    const model = buildDeviceModel({ patchEnvelopes: ENVELOPES }).model;
    const s = new MetadataService({ callerAt: (ip) => (ip === "127.0.0.1" ? CALLERS["10.1.0.3"]! : null), model: () => ({ model, problems: [] }), device: () => ({ uuid: null, name: "d" }), ipv4Of: () => null });
    const server = new MetadataServer(s, () => {});
    const port = server.start(0);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/eve/v1/network.json`, { headers: { "X-Forwarded-For": "10.1.0.2", Host: "169.254.169.254" } });
      const body = await r.json();
      expect(body["app-instance-uuid"]).toBe(B);
      expect(body["caller-ip"]).toMatch(/^127\.0\.0\.1:\d+$/);
      const big = await fetch(`http://127.0.0.1:${port}/eve/v1/app/appCustomStatus`, { method: "POST", body: "x".repeat(64 * 1024), headers: { "Content-Type": "application/json" } });
      expect(big.status).toBe(413);
    } finally {
      server.stop();
    }
  });

  test("it listens only while wanted (a Local instance exists), on the port chosen at start", async () => {
    const s = new MetadataService({ callerAt: () => null, model: () => null, device: () => ({ uuid: null, name: "d" }), ipv4Of: () => null });
    const server = new MetadataServer(s, () => {});
    const port = server.start(0);
    const answers = () => fetch(`http://127.0.0.1:${port}/eve/v1/network.json`).then((r) => r.status, () => "refused");
    try {
      expect(await answers()).toBe(403); // an unknown caller
      server.want(false);
      expect(server.listening).toBe(false);
      expect(server.port).toBe(port);
      expect(await answers()).toBe("refused");
      server.want(true);
      server.want(true);
      expect(await answers()).toBe(403);
    } finally {
      server.stop();
    }
    expect(await answers()).toBe("refused");
  });

  test("a taken port: it listens on a free one instead", () => {
    const holder = Bun.serve({ port: 0, hostname: "0.0.0.0", fetch: () => new Response("") });
    const s = new MetadataService({ callerAt: () => null, model: () => null, device: () => ({ uuid: null, name: "d" }), ipv4Of: () => null });
    const server = new MetadataServer(s, () => {});
    try {
      const port = server.start(holder.port!);
      expect(port).not.toBe(holder.port);
      expect(port).toBeGreaterThan(0);
    } finally {
      server.stop();
      void holder.stop(true);
    }
  });
});
