// Object-level encryption end to end (eve docs/OBJECT-LEVEL-ENCRYPTION.md): the compiled binary onboards to the
// test controller, sends its ECDH certificate (ATTEST_REQ_CERT), and runs a container app whose registry password
// only exists encrypted for it (a datastore's cipherData under a cipherContexts entry) from a real registry that
// asks for basic auth. A block that cannot be opened is the object's error; the password is nowhere in clear.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { unixClient } from "./support/api.ts";
import { makeControllerPki } from "./support/controller/pki.ts";
import { TestController } from "./support/controller/server.ts";
import { testDocker } from "./support/docker.ts";
import { cleanup, type Evebox, startEvebox, tempDataDir } from "./support/evebox.ts";
import { startRegistryWithBusybox, type TestRegistry } from "./support/registry.ts";
import { sh } from "./support/run.ts";
import { waitFor } from "./support/wait.ts";

const USER = "fleet-puller";
const PASSWORD = "pw-" + crypto.randomUUID();
const SECRET_ENV = "token-" + crypto.randomUUID();
const DS = "0e5e0000-0000-4000-8000-0000000000d1";
const CT = "0e5e0000-0000-4000-8000-0000000000c1";
const VOL = "0e5e0000-0000-4000-8000-0000000000b1";
const APP = "0e5e0000-0000-4000-8000-0000000000a1";

let root: string;
let ctl: TestController;
let registry: TestRegistry & { busyboxDigest: string };
let evebox: Evebox;
let deviceUuid = "";
let seconds = Math.floor(Date.now() / 1000);

const local = (method: string, path: string) => unixClient(join(root, "data", "run", "evebox.sock")).json(method, `/api/v1${path}`);
const status = async () => (await local("GET", "/status")).body as any;
const app = async () => (await status()).apps.find((a: any) => a.uuid === APP);
const tree = async () => (await status()).contentTrees.find((c: any) => c.uuid === CT);

/** The app from the authenticated registry; the datastore's credentials as `ds` gives them. */
function setConfig(ds: Record<string, unknown>, extra: { cipherContexts?: unknown[]; appCipher?: unknown } = {}): void {
  ctl.setConfig(deviceUuid, {
    configTimestamp: { seconds: ++seconds, nanos: 0 },
    ...(extra.cipherContexts ? { cipherContexts: extra.cipherContexts } : {}),
    datastores: [{ id: DS, dType: "DsContainerRegistry", fqdn: `docker://${registry.host}`, ...ds }],
    contentInfo: [{ uuid: CT, dsId: DS, URL: "evebox/busybox:latest", iformat: "CONTAINER", sha256: registry.busyboxDigest.replace(/^sha256:/, ""), displayName: "busybox" }],
    volumes: [{ uuid: VOL, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: CT }, displayName: "root" }],
    apps: [
      {
        uuidandversion: { uuid: APP, version: String(seconds) },
        displayname: "private-app",
        activate: true,
        fixedresources: { memory: 65536, maxmem: 65536, vcpus: 1 },
        volumeRefList: [{ uuid: VOL }],
        ...(extra.appCipher ? { cipherData: extra.appCipher } : { userData: Buffer.from("EVE_ECO_CMD=sleep 3600").toString("base64") }),
      },
    ],
  });
}

/** Every file under `dir` (the store, its WAL, the checkpoint, the logs) that holds `needle`. */
function filesHolding(dir: string, needle: string): string[] {
  const hits: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && statSync(p).size < 64 * 2 ** 20 && readFileSync(p).includes(needle)) hits.push(p);
    }
  };
  walk(dir);
  return hits;
}

beforeAll(async () => {
  root = tempDataDir("evebox-encryption-");
  registry = await startRegistryWithBusybox({ auth: { username: USER, password: PASSWORD } });
  // The push left the image in this engine under the registry's name: the device would find it there and never ask
  // the registry (a pinned image present is not pulled again). Forget those names; the pull must authenticate.
  for (const ref of [`${registry.host}/evebox/busybox:latest`, `${registry.host}/evebox/busybox@${registry.busyboxDigest}`]) await sh(["docker", "rmi", ref], { ok: [1] });
  expect((await sh(["docker", "image", "inspect", `${registry.host}/evebox/busybox@${registry.busyboxDigest}`], { ok: [1] })).code).not.toBe(0);
  const pki = await makeControllerPki();
  ctl = await TestController.start(pki);
  const config = join(root, "data", "config");
  mkdirSync(config, { recursive: true });
  writeFileSync(join(config, "root-certificate.pem"), pki.root.cert);
  writeFileSync(join(config, "onboard.cert.pem"), pki.onboarding.cert);
  writeFileSync(join(config, "onboard.key.pem"), pki.onboarding.keyPem);
  evebox = await startEvebox({
    dataDir: join(root, "data"),
    args: ["--controller", ctl.url],
    env: { EVEBOX_VMS: "off", EVEBOX_CONTROLLER_TIMERS: JSON.stringify({ configIntervalMs: 300, infoCheckIntervalMs: 500, backoffBaseMs: 100, backoffMaxMs: 1000 }) },
  });
  deviceUuid = await waitFor("onboarding", async () => [...ctl.devices.values()][0]?.uuid, 30_000);
}, 240_000);

afterAll(async () => {
  if (deviceUuid && evebox) {
    ctl.setConfig(deviceUuid, { configTimestamp: { seconds: ++seconds, nanos: 0 } });
    await waitFor("the app removed", async () => ((await status()).apps.length === 0 ? true : undefined), 60_000).catch(() => undefined);
  }
  await evebox?.stop();
  await ctl?.close();
  await registry?.stop();
  cleanup(root);
}, 120_000);

describe("object-level encryption with a controller", () => {
  test("the device sends its own ECDH certificate (ATTEST_REQ_CERT), apart from its device certificate", async () => {
    const rec = await waitFor("the ECDH certificate at the controller", async () => [...ctl.devices.values()].find((d) => d.ecdhCert), 30_000);
    const sent = new TextDecoder().decode(rec.ecdhCert);
    expect(sent).toBe(readFileSync(join(root, "data", "config", "ecdh.cert.pem"), "utf8"));
    expect(sent).not.toBe(rec.certPem);
    expect(statSync(join(root, "data", "config", "ecdh.key.pem")).mode & 0o777).toBe(0o600);
    // The device notes the controller's answer a moment after the controller kept the certificate.
    const c = await waitFor("the device knows it was sent", async () => {
      const c = (await local("GET", "/controller")).body as any;
      return c.ecdhCertificate?.sent ? c : undefined;
    });
    expect(c.ecdhCertificate).toMatchObject({ sent: true, detail: null, hash: createHash("sha256").update(rec.ecdhCert!).digest("hex").slice(0, 32) });
  });

  test("without the credentials the registry refuses the pull", async () => {
    setConfig({});
    let last: unknown;
    const t = await waitFor("the pull refused", async () => {
      const s = await status();
      last = { app: s.apps, tree: s.contentTrees };
      const t = s.contentTrees.find((c: any) => c.uuid === CT);
      return t?.error ? t : undefined;
    }, { timeoutMs: 60_000, detail: () => JSON.stringify(last) });
    expect(t.error).toMatch(/no basic auth credentials|unauthorized|authentication required/i);
    expect((await app())?.state).not.toBe("RUNNING");
  });

  test("a block that cannot be opened is the content tree's error with the reason, and reported to the controller", async () => {
    const bad = ctl.encrypt(deviceUuid, { dsAPIKey: USER, dsPassword: PASSWORD }, "hash");
    setConfig({ cipherData: bad.block }, { cipherContexts: [bad.context] });
    const t = await waitFor("the block's error", async () => {
      const t = await tree();
      return t?.error?.includes("cipherData") ? t : undefined;
    }, 60_000);
    expect(t.error).toContain("its encrypted credentials (cipherData) cannot be opened: the decrypted data does not match the block's clearTextSha256");
    await waitFor("the controller told", () => ctl.infos.some((i) => JSON.stringify(i).includes("clearTextSha256")), 30_000);
    expect((await status()).parts.find((p: any) => p.name === "runtime")?.state).not.toBe("error");
  });

  test("an encrypted registry password lets the app pull from the authenticated registry; its encrypted user data reaches the container", async () => {
    const creds = ctl.encrypt(deviceUuid, { dsAPIKey: USER, dsPassword: PASSWORD });
    // The app's user data in its own block under the same context (EVE's protectedUserData: base64 text).
    const ud = ctl.encrypt(deviceUuid, { protectedUserData: Buffer.from(`APP_TOKEN=${SECRET_ENV}\nEVE_ECO_CMD=sleep 3600`).toString("base64") });
    ud.block.cipherContextId = creds.context.contextId;
    setConfig({ cipherData: creds.block }, { cipherContexts: [creds.context], appCipher: ud.block });
    const a = await waitFor("the app running", async () => {
      const a = await app();
      return a?.state === "RUNNING" ? a : undefined;
    }, 120_000);
    expect(a.error ?? null).toBeNull();
    const [c] = await testDocker().listContainers({ filters: { label: [`evebox.app=${APP}`] } });
    expect(c).toBeDefined();
    const info = await testDocker().getContainer(c!.Id).inspect();
    expect(info.Config.Env).toContain(`APP_TOKEN=${SECRET_ENV}`);
    expect(info.Config.Cmd).toEqual(["sleep", "3600"]);
    // Kept encrypted: in the store, its WAL, the checkpoint, the logs — and the container's labels.
    expect(filesHolding(join(root, "data"), PASSWORD)).toEqual([]);
    expect(filesHolding(join(root, "data"), SECRET_ENV)).toEqual([]);
    expect(JSON.stringify(info.Config.Labels)).not.toContain(PASSWORD);
  });
});
