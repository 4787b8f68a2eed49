// The LPS client against an LPS on loopback (a model whose Local network instance is 127.0.0.0/8, so the
// "the LPS is one of the device's apps" rule lets it through): the messages, the token, commands accepted once
// (also across a restart of the client), 404 throttling, the local profile, device commands, and the address rule.
import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildDeviceModel, type DeviceModel } from "../config/model.ts";
import { createLogger } from "../lib/log.ts";
import { EventBus } from "../model/events.ts";
import type { DeviceStatus } from "../model/status.ts";
import { decodeMessage, encodeMessage } from "../proto/index.ts";
import { Store } from "../store/store.ts";
import { LpsClient } from "./client.ts";

const P = "org.lfedge.eve.profile.";
const dir = mkdtempSync(join(tmpdir(), "evebox-lps-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const A = "a0000000-0000-4000-8000-000000000001";
const B = "a0000000-0000-4000-8000-000000000002";

let answers: Record<string, { status: number; type?: string; body?: object }> = {};
let got: { endpoint: string; body: any }[] = [];
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const endpoint = new URL(req.url).pathname.replace("/api/v1/", "");
    const bytes = new Uint8Array(await req.arrayBuffer());
    const types: Record<string, string> = { appinfo: P + "LocalAppInfoList", devinfo: P + "LocalDevInfo", radio: P + "RadioStatus", network: P + "NetworkInfo", appbootinfo: P + "AppBootInfoList", location: "org.lfedge.eve.info.ZInfoLocation" };
    got.push({ endpoint, body: types[endpoint] ? decodeMessage(types[endpoint], bytes) : null });
    const a = answers[endpoint];
    if (!a) return new Response(null, { status: 204 });
    return new Response(a.body ? (encodeMessage(P + a.type!, a.body) as Uint8Array<ArrayBuffer>) : null, { status: a.status });
  },
});
afterAll(() => server.stop(true));

function model(host = `127.0.0.1:${server.port}`, token = "tok", more: Record<string, unknown> = {}): DeviceModel {
  return buildDeviceModel({
    ...more,
    networkInstances: [{ uuidandversion: { uuid: "b0000000-0000-4000-8000-000000000001" }, instType: "ZnetInstLocal", ip: { subnet: "127.0.0.0/8" }, dns: [{ HostName: "lps.local", Address: ["127.0.0.1"] }] }],
    localProfileServer: host,
    profileServerToken: token,
  }).model;
}

const status = (): DeviceStatus =>
  ({ device: { startedAt: new Date(0).toISOString() }, apps: [{ uuid: A, name: "a", state: "RUNNING", error: null, version: "1" }, { uuid: B, name: "b", state: "ERROR", error: "broken", version: "2" }] }) as unknown as DeviceStatus;

function client(store: Store, m: () => DeviceModel | null, extra: Partial<ConstructorParameters<typeof LpsClient>[0]> = {}) {
  const commands: [string, string][] = [];
  const profiles: (string | null)[] = [];
  const c = new LpsClient({
    model: m,
    status,
    deviceUuid: () => "d0000000-0000-4000-8000-000000000001",
    localCommand: (u, cmd) => commands.push([u, cmd]),
    profileChanged: () => profiles.push(c.profile()),
    store,
    events: new EventBus(store),
    log: createLogger("lps", null, { echo: false }),
    timers: { intervalMs: 40, throttledMs: 60_000, requestTimeoutMs: 1000 },
    ...extra,
  });
  return { c, commands, profiles };
}

const until = async (what: string, f: () => unknown, ms = 5000) => {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await Bun.sleep(20);
  }
};

beforeEach(() => {
  answers = {};
  got = [];
});

describe("the LPS client", () => {
  test("posts app info; a restart with the token is done once, also after a restart of the client; a wrong token never", async () => {
    const store = Store.open(join(dir, "a.db"));
    answers.appinfo = { status: 200, type: "LocalAppCmdList", body: { serverToken: "wrong", appCommands: [{ id: A, timestamp: 7, command: 1 }] } };
    let { c, commands } = client(store, () => model());
    c.start();
    await until("app info posted three times", () => got.filter((g) => g.endpoint === "appinfo").length >= 3);
    expect(commands).toEqual([]);
    expect(c.status().error).toContain("invalid token");
    const info = got.find((g) => g.endpoint === "appinfo")!.body;
    expect(info.appsInfo).toEqual([
      { id: A, version: "1", name: "a", state: 7 },
      { id: B, version: "2", name: "b", state: 21, err: { description: "broken", entities: [] } },
    ]);
    answers.appinfo = { status: 200, type: "LocalAppCmdList", body: { serverToken: "tok", appCommands: [{ id: A, timestamp: 7, command: 1 }, { displayname: "b", timestamp: 9, command: 2 }, { id: A, timestamp: 8, command: 2 }] } };
    await until("the commands", () => commands.length >= 2);
    got = [];
    await until("more app info", () => got.filter((g) => g.endpoint === "appinfo").length >= 3);
    // One command per app per answer, each once: a restart of A, a purge of B (found by name).
    expect(commands).toEqual([[A, "restart"], [B, "purge"]]);
    expect(got.filter((g) => g.endpoint === "appinfo").at(-1)!.body.appsInfo[0].lastCmdTimestamp).toBe("7");
    expect(c.status().error).toBeNull();
    c.stop();
    ({ c, commands } = client(store, () => model()));
    c.start();
    got = [];
    await until("app info after the restart", () => got.filter((g) => g.endpoint === "appinfo").length >= 2);
    c.stop();
    expect(commands).toEqual([]);
    store.close();
  });

  test("404 throttles an endpoint; the local profile is taken with the token and cleared by 204", async () => {
    const store = Store.open(join(dir, "b.db"));
    answers.radio = { status: 404 };
    answers.local_profile = { status: 200, type: "LocalProfile", body: { localProfile: "night", serverToken: "tok" } };
    const { c, profiles } = client(store, () => model());
    c.start();
    await until("the profile", () => c.profile() === "night");
    got = [];
    // Rounds pass (devinfo three times): the throttled endpoint is not asked again within its 60 s.
    await until("devinfo three times", () => got.filter((g) => g.endpoint === "devinfo").length >= 3);
    expect(got.filter((g) => g.endpoint === "radio")).toEqual([]);
    expect(c.status().endpoints.radio).toMatchObject({ lastStatus: 404, throttled: true });
    answers.local_profile = { status: 200, type: "LocalProfile", body: { localProfile: "other", serverToken: "bad" } };
    await until("the bad token noticed", () => c.status().error?.includes("local_profile: invalid token"));
    expect(c.profile()).toBe("night");
    delete answers.local_profile;
    await until("the profile cleared", () => c.profile() === null);
    expect(profiles).toEqual(["night", null]);
    c.stop();
    store.close();
  });

  test("device commands: stop the apps; a reboot without power control is refused; each command once", async () => {
    const store = Store.open(join(dir, "c.db"));
    const asked: string[] = [];
    answers.devinfo = { status: 200, type: "LocalDevCmd", body: { serverToken: "tok", timestamp: 3, command: 1 } };
    const { c, commands } = client(store, () => model(), { power: { request: (a) => (asked.push(a), { accepted: true, message: "ok" }) } });
    c.start();
    await until("apps stopped", () => commands.length === 2);
    expect(commands).toEqual([[A, "stop"], [B, "stop"]]);
    const dev = got.find((g) => g.endpoint === "devinfo")!.body;
    expect(dev).toMatchObject({ deviceUuid: "d0000000-0000-4000-8000-000000000001", state: 1, bootTime: {} });
    answers.devinfo = { status: 200, type: "LocalDevCmd", body: { serverToken: "tok", timestamp: 4, command: 3 } };
    await until("reboot asked", () => asked.length === 1);
    await Bun.sleep(200); // the same command again and again: not repeated
    expect(asked).toEqual(["reboot"]);
    expect(commands.length).toBe(2);
    c.stop();
    store.close();
  });

  test("appbootinfo: each VM's boot order and its source; the LPS's setting wins, is kept, and 404 clears it", async () => {
    const store = Store.open(join(dir, "e.db"));
    const V = "a0000000-0000-4000-8000-000000000003";
    const vmDoc = {
      datastores: [{ id: "c0000000-0000-4000-8000-000000000001", dType: "DsHttp", fqdn: "http://127.0.0.1:9", dpath: "x" }],
      contentInfo: [{ uuid: "c0000000-0000-4000-8000-000000000002", dsId: "c0000000-0000-4000-8000-000000000001", URL: "d.qcow2", iformat: "QCOW2", sha256: "ab".repeat(32), displayName: "d" }],
      volumes: [{ uuid: "c0000000-0000-4000-8000-000000000003", origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: "c0000000-0000-4000-8000-000000000002" }, maxsizebytes: "1048576" }],
      apps: [{ uuidandversion: { uuid: V, version: "1" }, displayname: "vm", fixedresources: { memory: 131072, vcpus: 1, bootOrder: "BOOT_ORDER_USB" }, volumeRefList: [{ uuid: "c0000000-0000-4000-8000-000000000003" }] }],
    };
    const { c, profiles } = client(store, () => model(undefined, undefined, vmDoc));
    c.start();
    // A post of the previous test's client can land after `got` was emptied (a CI run saw one: no apps): this
    // client's is the one naming the VM.
    const mine = (g: (typeof got)[number]) => g.endpoint === "appbootinfo" && g.body.appsBootInfo.some((a: any) => a.id === V);
    await until("boot info posted", () => got.some(mine));
    expect(got.find(mine)!.body.appsBootInfo).toEqual([{ id: V, displayname: "vm", bootOrder: 1, source: 2 }]); // USB, from the controller
    answers.appbootinfo = { status: 200, type: "AppBootConfigList", body: { serverToken: "tok", appConfigs: [{ displayname: "vm", usbBoot: 2 }] } };
    await until("the LPS's boot order reported back", () => got.some((g) => g.endpoint === "appbootinfo" && g.body.appsBootInfo[0].source === 1));
    expect(got.filter((g) => g.endpoint === "appbootinfo").at(-1)!.body.appsBootInfo[0]).toMatchObject({ bootOrder: 2, source: 1 }); // NOUSB, from the LPS
    expect([...c.bootOrders()]).toEqual([[V, "nousb"]]);
    expect(profiles.length).toBe(1); // the reconciler is told (the VM gets it at its next start)
    answers.appbootinfo = { status: 200, type: "AppBootConfigList", body: { serverToken: "bad", appConfigs: [{ id: V, usbBoot: 1 }] } };
    await until("bad token noticed", () => c.status().error?.includes("appbootinfo: invalid token"));
    expect([...c.bootOrders()]).toEqual([[V, "nousb"]]);
    answers.appbootinfo = { status: 404 };
    await until("cleared by 404", () => c.bootOrders().size === 0);
    c.stop();
    store.close();
  });

  test("location: posted when the device has one and it changed; without a source (no GNSS here) never", async () => {
    const store = Store.open(join(dir, "f.db"));
    let where: { latitude: number; longitude: number } | null = null;
    const { c } = client(store, () => model(), { location: () => where });
    c.start();
    await until("devinfo twice", () => got.filter((g) => g.endpoint === "devinfo").length >= 2);
    expect(got.filter((g) => g.endpoint === "location")).toEqual([]);
    where = { latitude: 48.1, longitude: 11.6 };
    await until("location posted", () => got.some((g) => g.endpoint === "location"));
    await until("devinfo twice more", () => got.filter((g) => g.endpoint === "devinfo").length >= 4);
    expect(got.filter((g) => g.endpoint === "location").map((g) => g.body)).toEqual([expect.objectContaining({ latitude: 48.1, longitude: 11.6 })]);
    c.stop();
    store.close();
  });

  test("an address off the device's Local network instances is never contacted; a name from their static DNS is", async () => {
    const store = Store.open(join(dir, "d.db"));
    // An LPS of this test's own: the earlier tests' last calls, still in flight when their clients stopped, land
    // on the other one (a fixed wait for them was not enough on a loaded machine).
    let hits = 0;
    const own = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => (hits++, new Response(null, { status: 204 })) });
    try {
      const off = client(store, () => buildDeviceModel({ localProfileServer: `127.0.0.1:${own.port}`, profileServerToken: "tok" }).model);
      off.c.start();
      await until("the refusal", () => off.c.status().error);
      await Bun.sleep(200); // rounds pass: nothing may arrive
      expect(hits).toBe(0);
      expect(off.c.status().error).toContain("is on none of the device's Local network instances");
      off.c.stop();
      const named = client(store, () => model(`lps.local:${own.port}`));
      named.c.start();
      await until("contacted by name", () => hits > 0);
      expect(named.c.status().url).toBe(`http://127.0.0.1:${own.port}`);
      named.c.stop();
    } finally {
      void own.stop(true);
      store.close();
    }
  });

  test("the address is host[:port]; anything else is a problem at localProfileServer", () => {
    expect(buildDeviceModel({ localProfileServer: "10.1.0.5" }).model.localProfileServer).toEqual({ host: "10.1.0.5", port: 8888, token: "" });
    expect(buildDeviceModel({ localProfileServer: "[fd00::5]:9000", profileServerToken: "t" }).model.localProfileServer).toEqual({ host: "fd00::5", port: 9000, token: "t" });
    for (const bad of ["http://10.1.0.5", "10.1.0.5:99999", "a b", "10.1.0.5/x", "host:port"]) {
      const r = buildDeviceModel({ localProfileServer: bad });
      expect(r.model.localProfileServer).toBeNull();
      expect(r.problems.map((p) => p.path)).toEqual(["localProfileServer"]);
    }
  });
});
