// The Local Operator Console (EVE's LOC, `loc_config`) against the test controller playing it: while the main
// controller is down, the device takes the config the LOC relays — signed by the controller, checked exactly as
// the controller's own answer (a tampered or older one refused, the running config kept) — runs the LOC's local
// commands once per compound timestamp, sends the LOC its info and metrics, and goes back to the controller once
// it answers again.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { LocCommands } from "../src/controller/loc.ts";
import { sampleConfig } from "./support/configs.ts";
import { makeControllerPki, type ControllerPki } from "./support/controller/pki.ts";
import { TestController } from "./support/controller/server.ts";
import { startTestDevice, type TestDevice } from "./support/controller/device.ts";
import { waitFor } from "./support/wait.ts";
import { cleanup, tempDataDir } from "./support/evebox.ts";

setDefaultTimeout(60_000);
let pki: ControllerPki;
let ctl: TestController;
let loc: TestController;
let d: TestDevice;
let uuid: string;
const dataDir = tempDataDir("evebox-loc-");
const commands: LocCommands[] = [];

const cfg = (name: string, ts: number) => ({ ...sampleConfig(), deviceName: name, locConfig: { locUrl: loc.url }, configTimestamp: { seconds: ts, nanos: 0 } });

beforeAll(async () => {
  pki = await makeControllerPki();
  ctl = await TestController.start(pki);
  d = await startTestDevice({ dataDir, url: ctl.url, rootPem: pki.root.cert, onboarding: pki.onboarding, timers: { metricIntervalMs: 300 }, locCommands: (c) => commands.push(c) });
  uuid = await waitFor("onboarding", () => d.controller.status().deviceUuid);
  loc = await TestController.startLoc(pki, ctl);
  ctl.setConfig(uuid, cfg("from-controller", 1_800_000_000));
  await waitFor("the controller's config", () => d.device.name() === "from-controller");
});

afterAll(async () => {
  await d?.stop();
  await ctl?.close();
  await loc?.close();
  cleanup(dataDir);
});

describe("Local Operator Console", () => {
  test("controller up: the LOC is not asked for config (EVE asks it only when the controller fails)", async () => {
    await waitFor("a few config rounds", () => ctl.count(/\/config$/) >= 3);
    expect(loc.compoundRequests).toEqual([]);
    expect(d.controller.status().loc).toMatchObject({ url: loc.url, configFromLoc: false, lastConfig: null });
  });

  test("controller down: the config the LOC relays runs, its commands once, info and metrics reach the LOC", async () => {
    loc.setConfig(uuid, cfg("from-loc", 1_800_000_100));
    loc.compound = { timestamp: 7, appCmdList: { serverToken: "", appCommands: [{ id: uuid, command: 1, timestamp: 7 }] } };
    await ctl.down();
    await waitFor("the LOC's config", () => d.device.name() === "from-loc", 20_000);
    const s = d.controller.status();
    expect(s.connection).toBe("offline");
    expect(s.loc).toMatchObject({ configFromLoc: true, lastConfig: { hash: loc.configHash(uuid) }, lastError: null });
    expect(d.controller.part().detail).toContain(`running the config from the Local Operator Console ${loc.url}`);
    expect(d.store.configHistory(1)[0]!.note).toContain(`relayed by the Local Operator Console ${loc.url}`);
    // Acknowledged: the next requests carry timestamp 7 and the device's config hash; the commands ran once.
    await waitFor("acknowledged", () => loc.compoundRequests.some((r) => r.lastCmdTimestamp === "7" && r.configHash === loc.configHash(uuid)));
    await waitFor("two more rounds", () => loc.compoundRequests.filter((r) => r.lastCmdTimestamp === "7").length >= 2);
    expect(commands.map((c) => c.timestamp)).toEqual(["7"]);
    expect(commands[0]!.appCmdList?.appCommands?.[0]).toMatchObject({ id: uuid, command: 1 });
    // Signed by the device, decoded by the LOC: device info (with the LOC's name) and metrics.
    await waitFor("info and metrics at the LOC", () => loc.metrics.length >= 1 && loc.infos.some((i) => i.dinfo?.deviceName === "from-loc"));
    expect(d.controller.status().loc.sent.metrics).toBeGreaterThanOrEqual(1);
  });

  test("a config the LOC tampered with, or an older one, is refused; the running config stays", async () => {
    const version = d.store.current()!.version;
    loc.setConfig(uuid, cfg("tampered", 1_800_000_200));
    loc.fault = "tamper";
    await waitFor("refused", () => /not signed by the controller/.test(d.controller.status().loc.lastError?.message ?? ""));
    loc.fault = "none";
    loc.setConfig(uuid, cfg("older", 1_800_000_050));
    await waitFor("refused as older", () => /older than that of the config applied/.test(d.controller.status().loc.lastError?.message ?? ""));
    expect(d.device.name()).toBe("from-loc");
    expect(d.store.current()!.version).toBe(version);
  });

  test("controller back: its config runs again and the LOC is no longer the source", async () => {
    ctl.setConfig(uuid, cfg("controller-again", 1_800_000_300));
    ctl.listen();
    await waitFor("the controller's config again", () => d.device.name() === "controller-again", 20_000);
    await waitFor("online", () => d.controller.status().connection === "online");
    expect(d.controller.status().loc.configFromLoc).toBe(false);
    expect(d.controller.part().detail).not.toContain("Local Operator Console");
  });
});
