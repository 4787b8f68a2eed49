// evebox as a Local Profile Server client (eve docs/LPS.md): the built binary in a network namespace with a Local
// network instance; the config deploys an "lps" app on it and names that app's address as the local profile
// server. The test LPS (tests/support/lps.ts) runs in the lps app's own network namespace, so the device reaches
// it as it reaches an LPS app. It sees app info, device info, radio and network state arrive; its restart command
// restarts another app once (a wrong token does nothing); its local profile stops an app outside that profile; its
// appbootinfo answer comes back as the apps' boot order with source LPS; nothing is ever posted to …/location (no GNSS).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBusyboxImage, testDocker } from "./support/docker.ts";
import { TestLps } from "./support/lps.ts";
import { type NsDevice, startDeviceIn, unixApi } from "./support/netdevice.ts";
import { Netns } from "./support/netns.ts";
import { startRegistry, type TestRegistry } from "./support/registry.ts";
import { waitFor } from "./support/wait.ts";

const U = (n: number) => `1b5e0000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
const DS = U(1);
const CT = U(2);
const NI = U(3);
const APPS = { lps: U(10), worker: U(11) };
const VOLS = { lps: U(20), worker: U(21) };
const TOKEN = "lps-token-" + Math.random().toString(16).slice(2);
const LPS_IP = "198.51.100.20";

let dev: Netns;
let registry: TestRegistry;
let digest: string;
let dataDir: string;
let evebox: NsDevice;
let lps: TestLps;

const api = (method: string, path: string, body?: unknown) => unixApi(evebox.sock, method, path, body);
const appStatus = async (uuid: string) => ((await api("GET", "/api/v1/status")).body?.apps ?? []).find((a: any) => a.uuid === uuid);

function doc(extra: { workerProfiles?: string[]; globalProfile?: string } = {}) {
  const app = (name: keyof typeof APPS, iface: Record<string, unknown> | null, profiles?: string[]) => ({
    uuidandversion: { uuid: APPS[name], version: "1" },
    displayname: name,
    activate: true,
    fixedresources: { memory: 65536, vcpus: 1 },
    volumeRefList: [{ uuid: VOLS[name] }],
    ...(iface ? { interfaces: [iface] } : {}),
    ...(profiles ? { profileList: profiles } : {}),
    userData: Buffer.from("EVE_ECO_CMD=sleep 3600").toString("base64"),
  });
  return {
    datastores: [{ id: DS, dType: "DsContainerRegistry", fqdn: `docker://${registry.host}` }],
    contentInfo: [{ uuid: CT, dsId: DS, URL: "evebox/busybox:lps", iformat: "CONTAINER", sha256: digest, displayName: "busybox" }],
    volumes: Object.values(VOLS).map((uuid) => ({ uuid, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: CT } })),
    networkInstances: [
      {
        uuidandversion: { uuid: NI, version: "1" },
        displayname: "apps",
        instType: "ZnetInstLocal",
        activate: true,
        port: { name: "uplink0" },
        ip: { subnet: "198.51.100.0/24", gateway: "198.51.100.1", dhcpRange: { start: "198.51.100.100", end: "198.51.100.150" } },
      },
    ],
    apps: [app("lps", { name: "eth0", networkId: NI, addr: LPS_IP, acls: [{ id: 1, matches: [{ type: "ip", value: "0.0.0.0/0" }] }] }), app("worker", null, extra.workerProfiles)],
    localProfileServer: LPS_IP,
    profileServerToken: TOKEN,
    ...(extra.globalProfile ? { globalProfile: extra.globalProfile } : {}),
  };
}

async function put(d: unknown): Promise<void> {
  const r = await api("PUT", "/api/v1/config", d);
  if (r.status !== 201 && r.status !== 200) throw new Error(`PUT /config: ${r.status} ${JSON.stringify(r.body)}`);
}

async function running(uuid: string): Promise<any> {
  return waitFor(`app ${uuid} RUNNING`, async () => {
    const a = await appStatus(uuid);
    return a?.state === "RUNNING" ? a : undefined;
  }, { timeoutMs: 90_000, detail: () => evebox.out().slice(-2000) });
}

/** The posts of an endpoint that arrived after `since` (ms). */
const postsSince = (endpoint: string, since: number) => lps.requests(endpoint).filter((r) => r.at > since);

beforeAll(async () => {
  const image = await ensureBusyboxImage();
  registry = await startRegistry();
  digest = (await registry.push(image, "evebox/busybox:lps")).replace(/^sha256:/, "");
  dev = await Netns.create("lps");
  // An uplink that goes nowhere (no dummy module here): one end of a veth pair, the other end up beside it.
  await dev.ip("link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0-end");
  await dev.ip("addr", "add", "203.0.113.2/24", "dev", "uplink0");
  await dev.ip("link", "set", "uplink0", "up");
  await dev.ip("link", "set", "uplink0-end", "up");
  dataDir = mkdtempSync(join(tmpdir(), "evebox-lps-"));
  evebox = await startDeviceIn(dev, dataDir, { env: { EVEBOX_VMS: "off", EVEBOX_LPS_INTERVAL_MS: "300" } });
  await put(doc());
  await running(APPS.lps);
  await running(APPS.worker);
  const [c] = await testDocker().listContainers({ filters: { label: [`evebox.app=${APPS.lps}`] } });
  const pid = (await testDocker().getContainer(c!.Id).inspect()).State.Pid;
  lps = await TestLps.startIn(pid, mkdtempSync(join(tmpdir(), "evebox-lps-server-")));
}, 240_000);

afterAll(async () => {
  lps?.stop();
  if (evebox) {
    await api("PUT", "/api/v1/config", { apps: [], networkInstances: [] }).catch(() => undefined);
    await waitFor("apps removed", async () => (((await api("GET", "/api/v1/status")).body?.apps ?? []).length === 0 ? true : undefined), 60_000).catch(() => undefined);
    // Whatever is left (a removal cut short) goes too: each app's containers by its own label.
    for (const uuid of Object.values(APPS)) {
      for (const c of await testDocker().listContainers({ all: true, filters: { label: [`evebox.app=${uuid}`] } })) await testDocker().getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    }
    evebox.proc.kill("SIGTERM");
    await evebox.proc.exited;
  }
  await dev?.destroy();
  await registry?.stop();
  if (lps) rmSync(lps.dir, { recursive: true, force: true });
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}, 120_000);

describe("the local profile server", () => {
  test("is told the apps, the device, the radios and the network, in protobuf, at the lps app's address", async () => {
    const info = await waitFor("app info with both apps running", () => {
      const r = lps.requests("appinfo").at(-1);
      const apps = r?.body?.appsInfo ?? [];
      return apps.length === 2 && apps.every((a: any) => a.state === 7) ? r : undefined;
    }, 30_000);
    expect(info.body.appsInfo.map((a: any) => a.name).sort()).toEqual(["lps", "worker"]);
    expect(info.body.appsInfo.find((a: any) => a.name === "worker").id).toBe(APPS.worker);
    expect((info as any).contentType).toBe("application/x-proto-binary");
    await waitFor("device info", () => lps.requests("devinfo").find((r) => r.body?.state === 1 && r.body?.bootTime), 30_000);
    await waitFor("radio status", () => lps.requests("radio")[0], 30_000);
    const net = await waitFor("network info", () => lps.requests("network")[0], 30_000);
    // No system adapters in this config: an empty NetworkInfo, which is zero bytes on the wire.
    expect(net.body).toBeNull();
    expect((net as any).contentType).toBe("application/x-proto-binary");
    await waitFor("the local profile asked", () => lps.requests("local_profile")[0], 30_000);
    const part = (await api("GET", "/api/v1/status")).body.parts.find((p: any) => p.name === "lps");
    expect(part).toMatchObject({ state: "ok" });
    expect(part.detail).toContain(`http://${LPS_IP}:8888`);
  });

  test("a restart command with a wrong token does nothing and is reported", async () => {
    const before = (await appStatus(APPS.worker)).startedAt;
    lps.answer("appinfo", 200, { serverToken: "not-the-token", appCommands: [{ id: APPS.worker, timestamp: 5, command: 1 }] });
    const since = Date.now();
    await waitFor("three app info posts answered", () => postsSince("appinfo", since).length >= 3, 30_000);
    const part = await waitFor("the refusal shown", async () => {
      const p = (await api("GET", "/api/v1/status")).body.parts.find((x: any) => x.name === "lps");
      return p?.detail?.includes("invalid token") ? p : undefined;
    }, 10_000);
    expect(part.state).toBe("degraded");
    expect((await appStatus(APPS.worker)).startedAt).toBe(before);
  });

  test("appinfo's restart command restarts the app once, and app info reports its timestamp", async () => {
    const before = await appStatus(APPS.worker);
    lps.answer("appinfo", 200, { serverToken: TOKEN, appCommands: [{ id: APPS.worker, timestamp: 1700000000123, command: 1 }] });
    const after = await waitFor("the worker restarted", async () => {
      const a = await appStatus(APPS.worker);
      return a?.state === "RUNNING" && a.startedAt !== before.startedAt ? a : undefined;
    }, { timeoutMs: 60_000, detail: () => evebox.out().slice(-1500) });
    // The same command keeps coming back: it was accepted once, so nothing more happens.
    const since = Date.now();
    const reported = await waitFor("the command's timestamp in app info", () => {
      const posts = postsSince("appinfo", since);
      const w = posts.at(-1)?.body?.appsInfo?.find((a: any) => a.id === APPS.worker);
      return posts.length >= 4 && w?.lastCmdTimestamp === "1700000000123" ? w : undefined;
    }, 30_000);
    expect(reported.state).toBe(7);
    expect((await appStatus(APPS.worker)).startedAt).toBe(after.startedAt);
    const part = (await api("GET", "/api/v1/status")).body.parts.find((p: any) => p.name === "lps");
    expect(part.state).toBe("ok");
  });

  test("appbootinfo: every app's boot order and its source; the LPS's own comes back as source LPS; no location is sent (no GNSS)", async () => {
    const first = await waitFor("boot info with both apps", () => lps.requests("appbootinfo").find((r) => r.body?.appsBootInfo?.length === 2), 30_000);
    const w = first.body.appsBootInfo.find((a: any) => a.id === APPS.worker);
    expect(w).toMatchObject({ id: APPS.worker, displayname: "worker" });
    expect([w.bootOrder ?? 0, w.source ?? 0]).toEqual([0, 0]); // unspecified (zero values are not on the wire)
    lps.answer("appbootinfo", 200, { serverToken: TOKEN, appConfigs: [{ displayname: "worker", usbBoot: 2 }] });
    const since = Date.now();
    await waitFor("worker NOUSB from the LPS", () => postsSince("appbootinfo", since).find((r) => r.body?.appsBootInfo?.some((a: any) => a.id === APPS.worker && a.bootOrder === 2 && a.source === 1)), 30_000);
    expect(lps.requests("location")).toEqual([]);
    lps.answer("appbootinfo", 204);
  });

  test("a local profile overrides the global one: an app outside it stops, and runs again when it is cleared", async () => {
    lps.answer("appinfo", 204);
    await put(doc({ workerProfiles: ["production"], globalProfile: "production" }));
    await running(APPS.worker);
    lps.answer("local_profile", 200, { localProfile: "maintenance", serverToken: TOKEN });
    await waitFor("the worker halted", async () => ["HALTED", "HALTING"].includes((await appStatus(APPS.worker))?.state) || undefined, 60_000);
    expect((await appStatus(APPS.lps)).state).toBe("RUNNING"); // no profile list: every profile
    lps.answer("local_profile", 204);
    await running(APPS.worker);
  });
});
