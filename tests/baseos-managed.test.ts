// Base OS updates on a managed device: the compiled binary on slot files (EVEBOX_BASEOS_*), onboarded to the test
// EVE controller (tests/support/controller). The controller sees both partitions in the ZInfoMsg software list; its
// config's `baseos` (content tree + version) is downloaded, written and held until `activate`; the trial checks that
// the controller is reachable before it commits.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatBootEnv, parseBootEnv } from "../src/baseos/bootenv.ts";
import { bundleOf, testKeys, type TestKeys, tinySquashfs } from "./support/bundles.ts";
import { makeControllerPki } from "./support/controller/pki.ts";
import { TestController } from "./support/controller/server.ts";
import { unixClient } from "./support/api.ts";
import { slotFiles } from "./support/slots.ts";
import { waitFor } from "./support/wait.ts";
import { cleanup, ensureBinary, type Evebox, startEvebox, tempDataDir } from "./support/evebox.ts";

let root: string;
let keys: TestKeys;
let ctl: TestController;
let evebox: Evebox;
let deviceUuid = "";
let bundle: Uint8Array;
let datastore: ReturnType<typeof Bun.serve>;
let configSeconds = Math.floor(Date.now() / 1000);
const CT = "0c5e0000-0000-4000-8000-0000000000c2";
const DS = "0d5e0000-0000-4000-8000-0000000000d2";
const grubenv = () => join(root, "grubenv");
const env = () => parseBootEnv(readFileSync(grubenv()));

/** The trusted local socket (run/evebox.sock): no login needed. */
const local = (method: string, path: string, body?: unknown) => unixClient(join(root, "data", "run", "evebox.sock")).json(method, `/api/v1${path}`, body);

function start(booted: "A" | "B", version: string): Promise<Evebox> {
  return startEvebox({
    dataDir: join(root, "data"),
    args: ["--controller", ctl.url],
    env: {
      EVEBOX_APPS: "off",
      EVEBOX_CONTROLLER_TIMERS: JSON.stringify({ configIntervalMs: 300, infoCheckIntervalMs: 500, backoffBaseMs: 100, backoffMaxMs: 1000 }),
      EVEBOX_BASEOS_SLOTS: `${join(root, "slotA")},${join(root, "slotB")}`,
      EVEBOX_BASEOS_BOOTENV: grubenv(),
      EVEBOX_BASEOS_BOARD: join(root, "board.json"),
      EVEBOX_BASEOS_KEYS: keys.dir,
      EVEBOX_BASEOS_VERSION: version,
      EVEBOX_BASEOS_BOOTED: booted,
      EVEBOX_BASEOS_CHECK_MS: "200",
    },
  });
}

function setConfig(activate: boolean): void {
  ctl.setConfig(deviceUuid, {
    configTimestamp: { seconds: ++configSeconds, nanos: 0 },
    datastores: [{ id: DS, dType: "DsHttp", fqdn: `http://127.0.0.1:${datastore.port}`, dpath: "os" }],
    contentInfo: [{ uuid: CT, dsId: DS, URL: "v2.bin", iformat: "RAW", sha256: createHash("sha256").update(bundle).digest("hex"), displayName: "base os 2.0.0" }],
    baseos: { contentTreeUuid: CT, baseOsVersion: "2.0.0", activate, retryUpdate: { counter: 1 } },
  });
}

/** The newest device info whose software list satisfies `pred`. */
function swInfo(pred: (sw: any[]) => boolean): () => any[] | undefined {
  return () => {
    for (let i = ctl.infos.length - 1; i >= 0; i--) {
      const sw = ctl.infos[i]!.dinfo?.swList as any[] | undefined;
      if (sw && pred(sw)) return sw;
    }
    return undefined;
  };
}

beforeAll(async () => {
  root = tempDataDir("evebox-baseos-managed-");
  keys = await testKeys(root);
  slotFiles(root, { a: { bytes: 16 * 2 ** 20 }, b: { bytes: 16 * 2 ** 20 } });
  bundle = readFileSync(await bundleOf(root, await tinySquashfs(root, "v2"), { version: "2.0.0", board: "qemu-x86_64", arch: "amd64" }, keys));
  datastore = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => (new URL(req.url).pathname === "/os/v2.bin" ? new Response(bundle as Uint8Array<ArrayBuffer>) : new Response("no", { status: 404 })) });
  const pki = await makeControllerPki();
  ctl = await TestController.start(pki);
  mkdirSync(join(root, "data", "config"), { recursive: true });
  writeFileSync(join(root, "data", "config", "root-certificate.pem"), pki.root.cert);
  writeFileSync(join(root, "data", "config", "onboard.cert.pem"), pki.onboarding.cert);
  writeFileSync(join(root, "data", "config", "onboard.key.pem"), pki.onboarding.keyPem);
  await ensureBinary();
  evebox = await start("A", "1.0.0");
  deviceUuid = await waitFor("onboarding", async () => [...ctl.devices.values()][0]?.uuid, 30_000);
}, 240_000);

afterAll(async () => {
  await evebox?.stop();
  await ctl?.close();
  datastore?.stop(true);
  cleanup(root);
});

describe("base OS updates, managed by an EVE controller", () => {
  test("the controller sees both partitions in the software list", async () => {
    const sw = await waitFor("a device info with two partitions", swInfo((s) => s.length === 2), 30_000);
    expect(sw.map((p) => [p.partitionLabel, p.partitionState, p.shortVersion ?? "", !!p.activated])).toEqual([
      ["IMGA", "active", "1.0.0", true],
      ["IMGB", "unused", "", false],
    ]);
  }, 60_000);

  test("the config's baseos is downloaded, written and held until activate; the software list says so", async () => {
    setConfig(false);
    const held = await waitFor("the update written and held", async () => {
      const b = (await local("GET", "/baseos")).body;
      return b.update?.phase === "ready" ? b : undefined;
    }, 30_000, 200);
    expect(held.update).toMatchObject({ source: "config", version: "2.0.0", slot: "B", contentTreeUuid: CT, schedule: { mode: "controller", at: null } });
    expect(held.update.schedule.note).toMatch(/controller's activate/);
    expect(env().evebox_try).toBe("B");
    // BaseOsStatus UPDATING (3), BaseOsSubStatus UPDATE_DEFERRED (7)
    const deferred = await waitFor("IMGB deferred in the software list", swInfo((s) => s[1]?.partitionState === "updating" && s[1]?.subStatus === 7), 30_000);
    expect(deferred[1]).toMatchObject({ partitionLabel: "IMGB", shortVersion: "2.0.0", userStatus: 3 });
    setConfig(true);
    const going = await waitFor("the reboot (recorded off-device)", async () => {
      const b = (await local("GET", "/baseos")).body;
      return b.update?.phase === "rebooting" ? b : undefined;
    }, 30_000, 200);
    expect(going.update.schedule.mode).toBe("controller");
    // UPDATE_REBOOTING (4)
    await waitFor("IMGB rebooting in the software list", swInfo((s) => s[1]?.subStatus === 4), 30_000);
  }, 90_000);

  test("the trial checks that the controller is reachable, then commits", async () => {
    expect((await local("PUT", "/baseos/settings", { testWindowSeconds: 10, stableSeconds: 2 })).status).toBe(200);
    await evebox.stop();
    // The boot loader boots B on trial.
    writeFileSync(grubenv(), formatBootEnv({ ...env(), evebox_try: "", evebox_trying: "B" }));
    evebox = await start("B", "2.0.0");
    // The part starts after the controller link (the console answers before): "starting" until then.
    const trial = await waitFor("the base OS part", async () => {
      const b = (await local("GET", "/baseos")).body;
      return b.available ? b : undefined;
    }, 15_000, 100);
    expect(trial).toMatchObject({ booted: "B", active: "A", outcome: "trying", update: { phase: "testing", source: "config" } });
    const checks = await waitFor("the controller check", async () => {
      const c = (await local("GET", "/baseos")).body.update?.probation?.checks as any[] | undefined;
      return c?.find((x) => x.name === "controller") ? c : undefined;
    }, 15_000, 200);
    expect(checks.map((c: any) => c.name)).toEqual(["evebox", "apps", "controller"]);
    const done = await waitFor("the commit", async () => {
      const b = (await local("GET", "/baseos")).body;
      return b.history[0]?.outcome === "committed" ? b : undefined;
    }, 30_000, 200);
    expect(done).toMatchObject({ booted: "B", active: "B" });
    expect(done.history[0].reason).toMatch(/online with/);
    expect(env()).toMatchObject({ evebox_active: "B", evebox_trying: "" });
    // The version the config asks for runs now: nothing more to do; the controller sees B active.
    await waitFor("IMGB active in the software list", swInfo((s) => s[1]?.partitionState === "active" && s[1]?.shortVersion === "2.0.0" && s[0]?.partitionState === "unused"), 30_000);
  }, 90_000);
});
