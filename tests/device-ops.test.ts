// The device side of what a controller runs besides apps, against the test EVE controller (tests/support/controller)
// and the compiled binary in host mode (no app runtime): the config interval the controller sees follows
// timer.config.interval; a reboot command is refused in host mode with the reason, in the status and to the
// controller; device_name, maintenance mode, config items (applied, out of range, unknown), api_capability and
// the boot reason in ZInfoDevice; controllercert_confighash re-fetches the certificates; a cluster is refused as an
// object error while the rest of the config applies. The reboot itself is tested on the booted image
// (tests/image.test.ts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { unixClient } from "./support/api.ts";
import { makeControllerPki } from "./support/controller/pki.ts";
import { TestController } from "./support/controller/server.ts";
import { waitFor } from "./support/wait.ts";
import { cleanup, ensureBinary, type Evebox, startEvebox, tempDataDir } from "./support/evebox.ts";

let root: string;
let ctl: TestController;
let evebox: Evebox;
let deviceUuid = "";
let seconds = Math.floor(Date.now() / 1000);
let version = 1;

const local = (method: string, path: string, body?: unknown) => unixClient(join(root, "data", "run", "evebox.sock")).json(method, `/api/v1${path}`, body);

/** A new config (a later timestamp, a new version) with these fields. */
function setConfig(fields: Record<string, unknown>): void {
  ctl.setConfig(deviceUuid, { id: { version: String(++version) }, configTimestamp: { seconds: ++seconds, nanos: 0 }, ...fields });
}

/** The config the device has applied is the controller's current one. */
async function applied(what: string): Promise<void> {
  const hash = ctl.configHash(deviceUuid);
  await waitFor(`${what}: config applied`, async () => ((await local("GET", "/controller")).body.config?.hash === hash ? true : undefined), 30_000, 100);
}

const configRequests = () => ctl.requests.filter((r) => /\/config$/.test(r.path)).length;

/** Config requests the controller sees in `ms`. */
async function requestsIn(ms: number): Promise<number> {
  const before = configRequests();
  await Bun.sleep(ms); // a measurement over a window, not a synchronisation
  return configRequests() - before;
}

/** The newest device info satisfying `pred`. */
function dinfo(pred: (d: any) => boolean): () => any {
  return () => {
    for (let i = ctl.infos.length - 1; i >= 0; i--) {
      const d = ctl.infos[i]!.dinfo;
      if (d && pred(d)) return d;
    }
    return undefined;
  };
}

beforeAll(async () => {
  root = tempDataDir("evebox-device-ops-");
  const pki = await makeControllerPki();
  ctl = await TestController.start(pki);
  mkdirSync(join(root, "data", "config"), { recursive: true });
  writeFileSync(join(root, "data", "config", "root-certificate.pem"), pki.root.cert);
  writeFileSync(join(root, "data", "config", "onboard.cert.pem"), pki.onboarding.cert);
  writeFileSync(join(root, "data", "config", "onboard.key.pem"), pki.onboarding.keyPem);
  await ensureBinary();
  evebox = await startEvebox({
    dataDir: join(root, "data"),
    args: ["--controller", ctl.url],
    env: {
      EVEBOX_APPS: "off",
      EVEBOX_CONTROLLER_TIMERS: JSON.stringify({ configIntervalMs: 250, infoCheckIntervalMs: 300, logIntervalMs: 300, backoffBaseMs: 100, backoffMaxMs: 1000 }),
    },
  });
  deviceUuid = await waitFor("onboarding", async () => [...ctl.devices.values()][0]?.uuid, 30_000);
}, 120_000);

afterAll(async () => {
  await evebox?.stop();
  await ctl?.close();
  cleanup(root);
});

describe("what a controller runs besides apps (host mode)", () => {
  test("timer.config.interval changes the rate of config requests the controller sees, both ways", async () => {
    setConfig({});
    await applied("no items");
    const fast = await requestsIn(2_000);
    expect(fast).toBeGreaterThanOrEqual(4); // every 250 ms from the environment's timers
    setConfig({ configItems: [{ key: "timer.config.interval", value: "5" }] });
    await applied("interval 5 s");
    // Jittered to 80–100 % of 5 s: one request at most in 3.5 s, where there were ~14.
    const slow = await requestsIn(3_500);
    expect(slow).toBeLessThanOrEqual(1);
    setConfig({});
    await applied("the item removed");
    expect(await requestsIn(2_000)).toBeGreaterThanOrEqual(4);
  }, 60_000);

  test("a reboot counter is refused in host mode, with the reason, in the status and to the controller", async () => {
    setConfig({ reboot: { counter: 1 } });
    await applied("first counter");
    const noted = await waitFor("counter 1 reported", dinfo((d) => d.rebootConfigCounter === 1), 15_000);
    expect(noted.rebootInprogress ?? false).toBe(false);
    setConfig({ reboot: { counter: 2 } });
    await applied("bumped counter");
    const ops = await waitFor("the refusal in the status", async () => {
      const p = (await local("GET", "/status")).body.parts.find((x: any) => x.name === "ops");
      return p?.state === "degraded" ? p : undefined;
    }, 15_000, 100);
    expect(ops.detail).toMatch(/reboot \(counter 2\) refused: evebox is not the device's init here \(host mode\)/);
    const d = await waitFor("counter 2 reported", dinfo((x) => x.rebootConfigCounter === 2), 15_000);
    expect(d.state).toBe(1); // ZDEVICE_STATE_ONLINE: not rebooting
    expect(d.rebootInprogress ?? false).toBe(false);
    await waitFor("the refusal in the device's logs at the controller", () => ctl.logs.some((l) => JSON.stringify(l.entries).includes("refused: evebox is not the device's init here (host mode)")), 15_000);
    // The process is still the same one: nothing restarted.
    expect((await local("GET", "/health")).status).toBe(200);
  }, 60_000);

  test("device_name, maintenance mode, config items and the capability in ZInfoDevice and the console", async () => {
    setConfig({
      deviceName: "press-line-7",
      maintenanceMode: true,
      configItems: [
        { key: "timer.metric.interval", value: "99999" },
        { key: "no.such.setting", value: "1" },
        { key: "debug.default.remote.loglevel", value: "warning" },
      ],
    });
    await applied("identity");
    const st = (await local("GET", "/status")).body;
    expect(st.device.name).toBe("press-line-7");
    expect(st.parts.find((p: any) => p.name === "ops").detail).toMatch(/^maintenance mode/);
    const d = await waitFor("device info with the name and maintenance", dinfo((x) => x.deviceName === "press-line-7" && x.maintenanceMode), 15_000);
    expect(d.state).toBe(3); // ZDEVICE_STATE_MAINTENANCE_MODE
    expect(d.maintenanceModeReasons).toEqual([1]); // USER_REQUESTED
    expect(d.apiCapability).toBe(3); // START_DELAY_IN_SECONDS: retry_update, shutdown, start delay
    expect(d.lastBootReason).toBeGreaterThan(0);
    expect(d.lastRebootReason).toBeString();
    expect(d.configItemStatus.configItems["timer.metric.interval"]).toEqual({ value: "99999", error: "99999 is out of range 5..3600; the default (60) is used" });
    expect(d.configItemStatus.configItems["debug.default.remote.loglevel"]).toEqual({ value: "warning" });
    expect(d.configItemStatus.unknownConfigItems["no.such.setting"]).toEqual({ value: "1", error: "not a setting evebox knows" });
    // The console's settings: read-only while managed, with the same states.
    const s = (await local("GET", "/device/settings")).body;
    expect(s.managed).toBe(true);
    expect(s.settings.find((x: any) => x.key === "timer.metric.interval")).toMatchObject({ state: "invalid", value: "60", configValue: "99999" });
    expect(s.others).toEqual([{ key: "no.such.setting", value: "1", state: "unknown", detail: "not a setting evebox knows" }]);
    setConfig({ deviceName: "press-line-7" });
    await waitFor("maintenance off", dinfo((x) => x.deviceName === "press-line-7" && !x.maintenanceMode && x.state === 1), 15_000);
  }, 60_000);

  test("a new controllercert_confighash fetches the controller's certificates again", async () => {
    setConfig({ controllercertConfighash: "hash-1" });
    await applied("hash 1");
    const before = ctl.count(/\/certs$/);
    setConfig({ controllercertConfighash: "hash-2" });
    await applied("hash 2");
    await waitFor("certificates fetched again", () => ctl.count(/\/certs$/) > before, 15_000);
    // The same hash again: no further fetch.
    const after = ctl.count(/\/certs$/);
    setConfig({ controllercertConfighash: "hash-2", deviceName: "x" });
    await applied("hash 2 again");
    expect(await requestsIn(1_000)).toBeGreaterThan(0);
    expect(ctl.count(/\/certs$/)).toBe(after);
  }, 60_000);

  test("a Kubernetes cluster is refused as an object error; the rest of the config applies", async () => {
    setConfig({ cluster: { clusterName: "k3s", clusterId: "c-1" }, deviceName: "with-a-cluster" });
    await applied("cluster");
    const st = (await local("GET", "/status")).body;
    expect(st.device.name).toBe("with-a-cluster");
    const info = await waitFor("the cluster's error at the controller", () => ctl.infos.find((i) => i.clusterUpdateInfo?.clusterId === "c-1"), 15_000);
    expect(info.ztype).toBe(18); // ZiKubeClusterUpdateStatus
    expect(info.clusterUpdateInfo!.error!.description).toBe("Kubernetes clusters are not supported on this device");
    const c = (await local("GET", "/controller")).body;
    expect(c.config.refused).toBeNull();
    const versions = (await local("GET", "/config/history")).body;
    expect(JSON.stringify(versions)).toContain("Kubernetes clusters are not supported on this device");
  }, 60_000);
});
