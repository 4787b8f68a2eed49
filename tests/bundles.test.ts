// App bundles end to end, through the compiled binary: a tiny bundle (the busybox image from `docker save`, an app
// with a data volume on a Local network instance, a serial port of this machine) built by `evebox bundle build`,
// then imported through the API into a real evebox with the real Docker engine: the dry run's plan and
// parameters, a tampered copy (one byte of its image changed) refused whole with nothing stored and the running
// config untouched, the apply (app RUNNING, image in the content store by digest), an upgrade that keeps the
// volume's content (the container is recreated: a second line in its boot log), and the removal, which leaves
// the objects that were there before.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { generateKeyPairSync } from "node:crypto";
import { join } from "node:path";
import { readTarIndex } from "../src/storage/tar.ts";
import { deviceStatus, putConfig, setUp, waitForApp } from "./support/api.ts";
import { buildTinyBundle, SITE, tinyManifest, U } from "./support/app-bundle.ts";
import { busyboxArchive, cleanupTestContainers } from "./support/docker.ts";
import { cleanup, type Client, ensureBinary, type Evebox, startEvebox, tempDataDir } from "./support/evebox.ts";
import { sh } from "./support/run.ts";
import { waitFor } from "./support/wait.ts";

const OCTETS = { "content-type": "application/octet-stream" };

/** Whether a process started for this device (dnsmasq of its network instance) still runs. */
function helperRuns(dir: string): boolean {
  return readdirSync("/proc").some((p) => {
    if (!/^\d+$/.test(p) || Number(p) === evebox?.proc?.pid) return false;
    try {
      return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(dir);
    } catch {
      return false;
    }
  });
}

let evebox: Evebox;
let api: Client;
let root: string;
let binary: string;
const build = (version: string, withScratch: boolean) => buildTinyBundle(binary, root, version, withScratch);


const persist = () => join(evebox.dataDir, "persist");
const blobs = () => (existsSync(join(persist(), "content", "blobs", "sha256")) ? readdirSync(join(persist(), "content", "blobs", "sha256")) : []);
const staged = () => (existsSync(join(persist(), "content", "bundles", "staging")) ? readdirSync(join(persist(), "content", "bundles", "staging")) : []);
const volume = (uuid: string) => join(persist(), "volumes", `${uuid}-1`);
const config = async () => (await api.json("GET", "/api/v1/config")).body;
const q = (params: Record<string, string>) => encodeURIComponent(JSON.stringify(params));
let params: Record<string, string>;
let v1: string;

beforeAll(async () => {
  root = tempDataDir("evebox-bundles-");
  binary = await ensureBinary();
  evebox = await startEvebox({ dataDir: join(root, "device") });
  api = await setUp(evebox, "bundles-test-password");
  await putConfig(api, SITE);
  v1 = await build("1.0.0", true);
}, 180_000);

afterAll(async () => {
  // Everything goes, the site's network instance too: its bridge and dnsmasq outlive evebox, as workloads do, so
  // the test waits for them to go before stopping it (a run once left both behind on the host).
  await putConfig(api, {}).catch((e) => console.error(`bundles afterAll: ${(e as Error).message}`));
  await waitFor("the apps to go", async () => ((await deviceStatus(api)).apps.length === 0 ? true : undefined), 60_000).catch(() => undefined);
  await waitFor("the instance's dnsmasq to go", () => (helperRuns(root) ? undefined : true), 30_000).catch(() => undefined);
  await evebox?.stop();
  await cleanupTestContainers();
  cleanup(root);
}, 120_000);

describe("app bundles", () => {
  test("bundle build refuses a placeholder inside a longer string, naming its path", async () => {
    const dir = join(root, "bad");
    mkdirSync(join(dir, "images"), { recursive: true });
    writeFileSync(join(dir, "images", "box.tar"), "x");
    const m = tinyManifest("1.0.0", false) as any;
    m.config.apps[0].displayname = "keeper-{{param.title}}";
    writeFileSync(join(dir, "bundle.json"), JSON.stringify(m));
    const r = await sh([binary, "bundle", "build", dir, "--out", join(root, "bad.bundle")], { ok: [1] });
    expect(r.code).toBe(1);
    expect(r.err).toContain("config.apps[0].displayname");
    expect(existsSync(join(root, "bad.bundle"))).toBe(false);
  });

  test("dry run: the parameters with the device's choices, then the plan with them; nothing applied", async () => {
    const before = await config();
    let r = await api.json("POST", "/api/v1/bundles?dryRun=1", Bun.file(v1), OCTETS);
    expect(r.status).toBe(200);
    expect(r.body.bundle).toEqual({ name: "tiny-stack", version: "1.0.0", description: expect.any(String) });
    expect(r.body.signature.status).toBe("unsigned");
    const byName = Object.fromEntries(r.body.parameters.map((p: any) => [p.name, p]));
    expect(byName.uplink.choices).toContain("uplink");
    expect(byName.sensor.choices.length).toBeGreaterThan(0); // this machine's ttyS ports (hardware inventory)
    expect(r.body.plan).toBeNull(); // the serial port has no default
    expect(r.body.problems.map((p: any) => p.path)).toEqual(["params.sensor"]);
    params = { sensor: byName.sensor.choices[0], title: "Drill 3" };
    // A subnet that collides with the site's network instance is refused at its parameter.
    r = await api.json("POST", `/api/v1/bundles?dryRun=1&staged=${r.body.staged}&params=${q({ ...params, subnet: "10.214.0.0/16" })}`);
    expect(r.status).toBe(200);
    expect(r.body.problems).toEqual([{ path: "params.subnet", message: expect.stringContaining("overlaps 10.214.0.0/24 (network instance site-net)") }]);
    r = await api.json("POST", `/api/v1/bundles?dryRun=1&staged=${r.body.staged}&params=${q(params)}`);
    expect(r.status).toBe(200);
    expect(r.body.problems).toEqual([]);
    expect(r.body.plan.added.map((x: any) => x.collection).sort()).toEqual(["apps", "contentInfo", "datastores", "deviceIoList", "networkInstances", "volumes", "volumes", "volumes"]);
    expect((await config())).toEqual(before);
    expect(blobs()).toEqual([]);
  });

  test("a tampered bundle (one byte of its image changed) is refused whole: nothing stored, the config untouched", async () => {
    const bytes = new Uint8Array(readFileSync(v1));
    const image = (await readTarIndex(v1)).entries.find((e) => e.name.startsWith("images/"))!;
    bytes[image.dataOffset + 1000] ^= 0x01;
    const bad = join(root, "tampered.bundle");
    writeFileSync(bad, bytes);
    const before = await api.json("GET", "/api/v1/config");
    const stagedBefore = staged(); // the dry runs' files, kept for their apply
    const r = await api.json("POST", `/api/v1/bundles?params=${q(params)}`, Bun.file(bad), OCTETS);
    expect(r.status).toBe(400);
    expect(r.body.problems).toEqual([{ path: "images.box", message: expect.stringContaining("not sha256") }]);
    expect(blobs()).toEqual([]);
    expect(staged()).toEqual(stagedBefore);
    const after = await api.json("GET", "/api/v1/config");
    expect(after.headers.get("x-config-version")).toBe(before.headers.get("x-config-version"));
    expect((await api.json("GET", "/api/v1/bundles")).body.bundles).toEqual([]);
  });

  test("a bundle that collides with the site's objects (a volume of the site holds one of its UUIDs) is refused whole, naming it; nothing stored, the config untouched", async () => {
    const site = {
      ...SITE,
      volumes: [...SITE.volumes, { uuid: U.data, origin: { type: "VCOT_BLANK" }, maxsizebytes: "1048576", displayName: "site-scratch", generationCount: "1" }],
    };
    await putConfig(api, site);
    const before = await api.json("GET", "/api/v1/config");
    const r = await api.json("POST", `/api/v1/bundles?params=${q(params)}`, Bun.file(v1), OCTETS);
    expect(r.status).toBe(400);
    expect(r.body.problems).toContainEqual(expect.objectContaining({ message: expect.stringContaining(`${U.data} is already on this device`) }));
    expect(r.body.problems.every((p: any) => p.message.includes("collides"))).toBe(true);
    expect(blobs()).toEqual([]);
    const after = await api.json("GET", "/api/v1/config");
    expect(after.headers.get("x-config-version")).toBe(before.headers.get("x-config-version"));
    expect((await api.json("GET", "/api/v1/bundles")).body.bundles).toEqual([]);
    await putConfig(api, SITE);
  });

  test("apply: the app RUNNING from the image in the content store, the bundle listed with its parameters", async () => {
    const r = await api.json("POST", `/api/v1/bundles?params=${q(params)}`, Bun.file(v1), OCTETS);
    expect(r.status).toBe(201);
    expect(r.body.configVersion).toBeGreaterThan(1);
    const sha = (await busyboxArchive()).sha256;
    expect(blobs()).toContain(sha);
    await waitForApp(api, "tiny-keeper", (a) => a.state === "RUNNING", "tiny-keeper RUNNING", 90_000, evebox.output);
    await waitFor("the marker in the data volume", () => existsSync(join(volume(U.data), "boots")), 30_000);
    const list = (await api.json("GET", "/api/v1/bundles")).body.bundles;
    expect(list).toMatchObject([{ name: "tiny-stack", version: "1.0.0", params: { ...params, uplink: "uplink", subnet: "10.213.0.0/24" }, images: { box: sha } }]);
    const doc = await config();
    expect(doc.networkInstances.map((n: any) => n.displayname).sort()).toEqual(["site-net", "tiny-net"]);
    const version = (await api.json("GET", `/api/v1/config/versions/${r.body.configVersion}`)).body;
    expect(version.author).toContain("admin");
    // The same version again is not an upgrade.
    const again = await api.json("POST", `/api/v1/bundles?params=${q(params)}`, Bun.file(v1), OCTETS);
    expect(again.status).toBe(409);
  }, 120_000);

  test("upgrade: the same UUIDs, the volume's content kept, the dropped volume removed", async () => {
    const marker = readFileSync(join(volume(U.data), "marker"), "utf8");
    const v2 = await build("2.0.0", false);
    const dry = await api.json("POST", `/api/v1/bundles?dryRun=1`, Bun.file(v2), OCTETS);
    expect(dry.status).toBe(200);
    expect(dry.body.upgrade).toEqual({ from: "1.0.0" });
    // The values used before are the upgrade's defaults.
    expect(dry.body.parameters.find((p: any) => p.name === "sensor").value).toBe(params.sensor);
    const r = await api.json("POST", `/api/v1/bundles?staged=${dry.body.staged}&params=${q({ ...params, title: "Drill 4" })}`);
    expect(r.status).toBe(201);
    expect(r.body.plan.removed.map((x: any) => x.id)).toEqual([U.scratch]);
    expect(r.body.plan.changed.map((x: any) => x.id)).toContain(U.app);
    await waitFor("the upgraded app's start", () => readFileSync(join(volume(U.data), "boots"), "utf8").includes("Drill 4") || undefined, 90_000);
    await waitForApp(api, "tiny-keeper", (a) => a.state === "RUNNING", "tiny-keeper RUNNING", 60_000, evebox.output);
    expect(readFileSync(join(volume(U.data), "marker"), "utf8")).toBe(marker);
    expect(readFileSync(join(volume(U.data), "boots"), "utf8")).toBe("Drill 3\nDrill 4\n");
    const doc = await config();
    expect(doc.volumes.map((x: any) => x.displayName).sort()).toEqual(["site-data", "tiny-data", "tiny-root"]);
    expect((await api.json("GET", "/api/v1/bundles")).body.bundles[0].version).toBe("2.0.0");
  }, 150_000);

  test("signatures: a signed bundle is verified once its key is trusted; with signatures required, an unsigned one is refused", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const keyFile = join(root, "operator.pem");
    writeFileSync(keyFile, privateKey.export({ type: "pkcs8", format: "pem" }));
    const signed = await buildTinyBundle(binary, root, "3.0.0", false, keyFile);
    const dry = async (file: string) => api.json("POST", "/api/v1/bundles?dryRun=1", Bun.file(file), OCTETS);
    expect((await dry(signed)).body.signature).toEqual({ status: "untrusted", key: null });
    const added = await api.json("POST", "/api/v1/bundles/keys", { name: "operator", publicKey: publicKey.export({ type: "spki", format: "pem" }) });
    expect(added.status).toBe(201);
    expect((await dry(signed)).body.signature).toEqual({ status: "verified", key: { id: added.body.id, name: "operator" } });
    expect((await api.json("PUT", "/api/v1/bundles/policy", { requireSignature: true })).body).toEqual({ requireSignature: true });
    const refused = await dry(v1);
    expect(refused.status).toBe(400);
    expect(refused.body.problems[0].message).toContain("unsigned, and this device requires bundles signed by a trusted key");
    expect((await dry(signed)).status).toBe(200);
    await api.json("PUT", "/api/v1/bundles/policy", { requireSignature: false });
    expect((await api.json("DELETE", `/api/v1/bundles/keys/${added.body.id}`)).status).toBe(200);
    expect((await dry(signed)).body.signature.status).toBe("untrusted");
  });

  test("remove: the bundle's objects and image go, the site's objects stay", async () => {
    const r = await api.json("DELETE", "/api/v1/bundles/tiny-stack");
    expect(r.status).toBe(200);
    expect(r.body.images).toEqual([(await busyboxArchive()).sha256]);
    const doc = await config();
    expect(doc.networkInstances.map((n: any) => n.uuidandversion.uuid)).toEqual([U.siteNi]);
    expect(doc.volumes.map((v: any) => v.uuid)).toEqual([U.siteVol]);
    expect(doc.apps ?? []).toEqual([]);
    expect(doc.deviceIoList ?? []).toEqual([]);
    expect(blobs()).toEqual([]);
    expect((await api.json("GET", "/api/v1/bundles")).body.bundles).toEqual([]);
    await waitFor("the app to go", async () => ((await deviceStatus(api)).apps.length === 0 ? true : undefined), 60_000);
  }, 90_000);
});
