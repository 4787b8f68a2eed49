// The predictive-maintenance example (examples/predictive-maintenance/) end to end on the compiled binary:
// its two images built from Debian packages in this run (mmdebstrap, docker import; cached by input hash), the
// bundle built by the binary's `bundle build` and imported through /api/v1/bundles into a real evebox with the
// real Docker engine (the console's Import dialog shown up to its plan, for the walkthrough's screenshot), the
// simulated vibration sensor writing to a pty pair the collector is given through `adapters`, and the LAN side
// seen from a namespace of its own:
//
//   [lan ns]    lan0 192.0.2.1/24: the operator's browser, and a web server standing for "the internet"
//        │ veth
//   [device ns] uplink0 192.0.2.2/24: evebox with the stack's Local NI (pm-net, 10.77.0.0/24) NATed to uplink0;
//               pm-broker, pm-collector (/dev/ttyV0 = the pty), pm-analytics (volume /data), pm-dashboard
//               (port map uplink0:8080 → 8080)
//   [host]      socat's pty pair; the sensor simulator (bun) writing to one end
//
// Checked: the dry run's parameters (the device's serial port and ports as choices) and plan; every app RUNNING;
// the dashboard reachable from the LAN through the port map, the broker not (neither by the device's address nor
// routed to its own), no app reaching beyond the stack's network; the features the analytics reports equal to the
// ones of the bursts the simulator sent; no alert before the fault starts and an alert within ALERT_WITHIN_MS of
// it; the analytics' history kept across a restart of the app and an upgrade of the bundle (a new container, the
// same volume); the bundle removed cleanly (config, containers, volumes, images). Screenshots of the console and
// the dashboard land in tests/.artifacts/pm-*.png (with EVEBOX_PM_SCREENSHOTS=1 also in the example's
// screenshots/ folder, which the README shows).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { chromium, type Browser } from "playwright-core";
import { buildImages, bundleSource, type BuiltExampleImage, EXAMPLE_DIR } from "../examples/predictive-maintenance/build.ts";
import { kurtosis, rms } from "../examples/predictive-maintenance/sensor/signal.ts";
import { CHROMIUM } from "./support/browser.ts";
import { testDocker } from "./support/docker.ts";
import { ensureBinary, ROOT } from "./support/evebox.ts";
import { type NsDevice, startDeviceIn, unixApi } from "./support/netdevice.ts";
import { busybox, Netns, pump, vethBetween } from "./support/netns.ts";
import { sh } from "./support/run.ts";
import { waitFor } from "./support/wait.ts";

/** The simulation: 10 machine minutes per wall second, a burst every 0.5 s; the bearing defect starts at 2 h. */
const TIME_SCALE = 600;
const INTERVAL_S = 0.5;
const ONSET_H = 2;
const LIFE_H = 6;
/** From the start of the defect (wall clock) to the alert, at most. The method raises it ~4 machine hours in: ~24 s. */
const ALERT_WITHIN_MS = 120_000;
const SUBNET = "10.77.0.0/24";
const TITLE = "Spindle 7";
const DASHBOARD = "http://192.0.2.2:8080";
const PASSWORD = "pm-test-password";
const SENSOR_LABEL = "SENSOR";

const bundle = JSON.parse(readFileSync(join(EXAMPLE_DIR, "bundle.json"), "utf8"));
const appUuid = (name: string): string => bundle.config.apps.find((a: any) => a.displayname === name).uuidandversion.uuid;
const NI = bundle.config.networkInstances[0].uuidandversion.uuid;
const ARTIFACTS = join(ROOT, "tests", ".artifacts");
const SHOTS = process.env.EVEBOX_PM_SCREENSHOTS === "1" ? join(EXAMPLE_DIR, "screenshots") : null;

let lan: Netns;
let dev: Netns;
let dir: string;
let dataDir: string;
let evebox: NsDevice;
let images: BuiltExampleImage[];
let socat: Subprocess;
let sensorEnd: string;
let deviceEnd: string;
let sim: Subprocess<"ignore", "pipe", "pipe"> | null = null;
let simOut = "";
let simStartedAt = 0;
let browser: Browser | null = null;
let dashboardPage: import("playwright-core").Page | null = null;
const timings: Record<string, number> = {};
let deployedAt = 0;
let v1: string;
let consoleBrowser: Browser | null = null;
let consolePage: import("playwright-core").Page | null = null;
let consoleUrl = "";

const api = (method: string, path: string, body?: unknown) => unixApi(evebox.sock, method, path, body);

async function put(doc: unknown): Promise<void> {
  const r = await api("PUT", "/api/v1/config", doc);
  if (r.status !== 200 && r.status !== 201) throw new Error(`PUT /api/v1/config: ${r.status} ${JSON.stringify(r.body)}`);
}

/** The device's own part of the config: the pty as a serial port (a deviceIoList entry, as a site declares its ports). */
const baseConfig = () => ({
  deviceIoList: [{ ptype: "PhyIoCOM", phylabel: SENSOR_LABEL, logicallabel: SENSOR_LABEL, assigngrp: SENSOR_LABEL, phyaddrs: { serial: deviceEnd }, usage: "PhyIoUsageDedicated" }],
});

/** POST /api/v1/bundles with a bundle file as the body (over the unix socket: the trusted local admin). */
async function postBundle(query: string, file?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://localhost/api/v1/bundles?${query}`, {
    method: "POST",
    unix: evebox.sock,
    ...(file ? { headers: { "content-type": "application/octet-stream" }, body: Bun.file(file) } : {}),
  } as RequestInit);
  return { status: res.status, body: await res.json().catch(() => null) };
}

/** The bundle file of the example at `version` (bundle.json changed by `edit`), built by the binary's `bundle build`. */
async function buildBundle(version: string, edit: (m: any) => void = () => undefined): Promise<string> {
  const src = join(dir, `src-${version}`);
  await bundleSource(src);
  const m = JSON.parse(readFileSync(join(src, "bundle.json"), "utf8"));
  m.version = version;
  edit(m);
  writeFileSync(join(src, "bundle.json"), JSON.stringify(m, null, 2));
  const out = join(dir, `predictive-maintenance-${version}.bundle`);
  const r = await sh([await ensureBinary(), "bundle", "build", src, "--out", out]);
  expect(r.out).toContain(`bundle predictive-maintenance ${version}`);
  return out;
}

const PARAMS = { uplink: "uplink0", sensor: SENSOR_LABEL, subnet: SUBNET, title: TITLE };
const q = (params: Record<string, string>) => encodeURIComponent(JSON.stringify(params));

/** GET from the LAN namespace (busybox wget): the body, or null when the connection fails. */
async function fromLan(url: string, timeoutSec = 3): Promise<string | null> {
  // busybox 1.35's wget crashes with -T: its own timeout applet bounds it instead.
  const r = await lan.exec([busybox(), "timeout", String(timeoutSec), busybox(), "wget", "-q", "-O", "-", url], { ok: [1, 4, 8, 124, 137, 143] });
  return r.code === 0 ? r.out : null;
}

/** Whether a TCP connection to host:port opens from the LAN namespace. */
async function lanConnects(host: string, port: number): Promise<boolean> {
  const r = await lan.exec([busybox(), "timeout", "4", busybox(), "nc", "-w", "2", host, String(port), "-e", busybox(), "true"], { ok: [1, 124, 137, 143] });
  return r.code === 0;
}

async function dashboardState(): Promise<any> {
  const body = await fromLan(`${DASHBOARD}/api/state`);
  return body ? JSON.parse(body) : null;
}

async function containerOf(app: string): Promise<string> {
  return waitFor(`the container of ${app}`, async () => {
    const cs = await testDocker().listContainers({ filters: { label: [`evebox.app=${appUuid(app)}`] } });
    return cs[0]?.State === "running" ? cs[0].Id : undefined;
  }, 60_000);
}

/**
 * Runs Python inside an app's container (the stack image has no shell): whether a TCP connection to host:port
 * opens. The name is resolved to IPv4 first, as the stack's apps do (pmlib.resolve_v4 says why).
 */
async function appConnects(app: string, host: string, port: number): Promise<string> {
  const id = await containerOf(app);
  const code = `import socket\ntry:\n  socket.create_connection((socket.gethostbyname(${JSON.stringify(host)}), ${port}), timeout=2).close(); print("open")\nexcept Exception as e:\n  print("closed", type(e).__name__)`;
  const r = await sh(["docker", "exec", id, "python3", "-c", code], { ok: [1], timeoutMs: 20_000 });
  return r.out.trim();
}

/** A name as an app resolves it (through its network instance's DNS). */
async function resolveInApp(app: string, name: string): Promise<string> {
  const id = await containerOf(app);
  return (await sh(["docker", "exec", id, "python3", "-c", `import socket; print(socket.gethostbyname(${JSON.stringify(name)}))`], { timeoutMs: 20_000 })).out.trim();
}

async function allRunning(what: string, timeoutMs = 150_000): Promise<any[]> {
  const names = bundle.config.apps.map((a: any) => a.displayname);
  let last: unknown;
  return waitFor(what, async () => {
    const apps = (await api("GET", "/api/v1/status")).body.apps.filter((a: any) => names.includes(a.name));
    last = apps.map((a: any) => ({ name: a.name, state: a.state, error: a.error }));
    return apps.length === names.length && apps.every((a: any) => a.state === "RUNNING") ? apps : undefined;
  }, { timeoutMs, detail: () => `apps: ${JSON.stringify(last)}\n${evebox.out().slice(-3000)}` });
}

async function shot(page: import("playwright-core").Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `pm-${name}.png`);
  await page.screenshot({ path, fullPage: true });
  if (SHOTS) {
    mkdirSync(SHOTS, { recursive: true });
    copyFileSync(path, join(SHOTS, `${name}.png`));
  }
}

/** A Chromium inside a namespace: `ip netns exec` in front of it. */
async function browserIn(ns: Netns): Promise<Browser> {
  const wrapper = join(dir, `chromium-${ns.name}`);
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns.name} ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  return chromium.launch({ executablePath: wrapper, headless: true, args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"] });
}

beforeAll(async () => {
  let t = performance.now();
  images = await buildImages({ log: (l) => console.log(`pm images: ${l}`) });
  timings.images = performance.now() - t;
  console.log(`pm images: ${images.map((i) => `${i.name} ${(i.size / 2 ** 20).toFixed(1)} MB${i.cached ? " (cached)" : ""}`).join(", ")} in ${(timings.images / 1000).toFixed(1)} s`);

  dir = mkdtempSync(join(tmpdir(), "evebox-pm-"));
  const a = join(dir, "device-end");
  const b = join(dir, "sensor-end");
  socat = Bun.spawn(["socat", `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdout: "ignore", stderr: "pipe" });
  await waitFor("socat's pty pair", () => existsSync(a) && existsSync(b), { timeoutMs: 10_000, failIf: () => (socat.exitCode !== null ? `socat exited with ${socat.exitCode}` : null) });
  deviceEnd = realpathSync(a);
  sensorEnd = realpathSync(b);

  lan = await Netns.create("pmlan");
  dev = await Netns.create("pmdev");
  await vethBetween(dev, "uplink0", lan, "lan0");
  await lan.ip("addr", "add", "192.0.2.1/24", "dev", "lan0");
  await dev.ip("addr", "add", "192.0.2.2/24", "dev", "uplink0");
  await dev.ip("route", "add", "default", "via", "192.0.2.1");
  // "The internet": a web server beyond the device's uplink, which no app of the stack may reach.
  mkdirSync(join(dir, "www"));
  writeFileSync(join(dir, "www", "index.html"), "the internet\n");
  lan.spawn([busybox(), "httpd", "-f", "-p", "192.0.2.1:80", "-h", join(dir, "www")]);

  dataDir = join(dir, "data");
  mkdirSync(dataDir);
  evebox = await startDeviceIn(dev, dataDir);
  const token = readFileSync(join(dataDir, "run", "setup-token"), "utf8").trim();
  expect((await api("POST", "/api/v1/setup", { token, password: PASSWORD })).status).toBe(200);
  await put(baseConfig());

  t = performance.now();
  v1 = await buildBundle("1.0.0");
  timings.bundleBuild = performance.now() - t;
}, 600_000);

afterAll(async () => {
  sim?.kill();
  await sim?.exited;
  await consoleBrowser?.close().catch(() => undefined);
  if (simOut) console.log(simOut.trim().split("\n").slice(-2).join("\n"));
  await browser?.close().catch(() => undefined);
  if (evebox) {
    await put({}).catch(() => undefined);
    await waitFor("the stack removed", async () => ((await api("GET", "/api/v1/status")).body.apps.length === 0 ? true : undefined), 60_000).catch(() => undefined);
    evebox.proc.kill("SIGTERM");
    await evebox.proc.exited;
  }
  await lan?.destroy();
  await dev?.destroy();
  socat?.kill();
  // Processes just killed (dnsmasq of the device's namespace) may still write a file as the tree goes: again until gone.
  if (dir) await waitFor("the test's directory removed", () => (rmSync(dir, { recursive: true, force: true }), !existsSync(dir)), 15_000).catch((e) => console.log(`pm: ${e.message}`));
  console.log(`pm timings: ${Object.entries(timings).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(", ")}`);
}, 120_000);

describe("the predictive-maintenance stack on a device", () => {
  test("imported as a bundle: the console's dialog shows the plan with the site's choices; the API's dry run, then the apply; all four apps RUNNING, the sensor's port in the collector", async () => {
    // The console's Import bundle dialog, up to the plan (the walkthrough's screenshot); applied below through the API.
    consoleBrowser = await browserIn(dev);
    const url = evebox.out().match(/console on (http:\/\/127\.0\.0\.1:\d+)/)?.[1];
    expect(url).toBeDefined();
    consoleUrl = url!;
    consolePage = await consoleBrowser.newPage({ viewport: { width: 1280, height: 900 } });
    const page = consolePage;
    await page.goto(`${consoleUrl}/login`);
    expect(await page.evaluate(async (password) => (await fetch("/api/v1/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ password }) })).status, PASSWORD)).toBe(200);
    await page.goto(`${consoleUrl}/bundles`);
    await page.locator("#bundle-import").click();
    await page.locator("#bundle-file").setInputFiles(v1);
    await page.locator("#bundle-upload").click();
    await page.locator("#bundle-plan").waitFor({ timeout: 60_000 });
    expect(await page.locator("#bundle-name").textContent()).toBe("predictive-maintenance 1.0.0");
    expect(await page.locator("select#bundle-param-sensor option").allTextContents()).toContain(SENSOR_LABEL);
    await page.locator("select#bundle-param-sensor").selectOption(SENSOR_LABEL);
    await page.locator("select#bundle-param-uplink").selectOption("uplink0");
    await page.locator("input#bundle-param-title").fill(TITLE);
    await page.locator("#bundle-plan-list").waitFor({ timeout: 15_000 });
    await page.waitForFunction(() => document.querySelector("#bundle-plan-list")?.textContent?.includes("pm-dashboard"), null, { timeout: 10_000 });
    await shot(page, "console-import");
    await page.locator("#bundle-apply").scrollIntoViewIfNeeded();
    await shot(page, "console-import-plan");
    await page.getByRole("button", { name: "Cancel" }).last().click();

    const t = performance.now();
    const dry = await postBundle("dryRun=1", v1);
    expect(dry.status).toBe(200);
    expect(dry.body.bundle).toMatchObject({ name: "predictive-maintenance", version: "1.0.0" });
    const byName = Object.fromEntries(dry.body.parameters.map((p: any) => [p.name, p]));
    expect(byName.sensor.choices).toContain(SENSOR_LABEL);
    expect(byName.uplink.choices).toContain("uplink0");
    expect(dry.body.problems.map((p: any) => p.path)).toEqual(["params.sensor"]); // no default: the site must choose
    const applied = await postBundle(`staged=${dry.body.staged}&params=${q(PARAMS)}`);
    expect(applied.status).toBe(201);
    expect(applied.body.plan.added.filter((x: any) => x.collection === "apps").length).toBe(4);
    await allRunning("the stack's four apps RUNNING");
    timings.deploy = performance.now() - t;
    deployedAt = performance.now();
    const listed = (await api("GET", "/api/v1/bundles")).body.bundles;
    expect(listed).toMatchObject([{ name: "predictive-maintenance", version: "1.0.0", params: PARAMS, images: Object.fromEntries(images.map((i) => [i.name, i.sha256])) }]);
    const id = await containerOf("pm-collector");
    const info = await testDocker().getContainer(id).inspect();
    expect(info.Mounts.filter((m) => m.Destination.startsWith("/dev/")).map((m) => [m.Source, m.Destination])).toEqual([[deviceEnd, "/dev/ttyV0"]]);
    const hw = (await api("GET", "/api/v1/hardware")).body;
    expect(hw.bundles.find((g: any) => g.name === SENSOR_LABEL).usedBy).toEqual([{ uuid: appUuid("pm-collector"), name: "pm-collector" }]);
  }, 240_000);

  test("the dashboard is on the LAN through the port map; the broker is not, nor any app's own address; no app reaches beyond the stack", async () => {
    const page = await waitFor("the dashboard's page from the LAN", () => fromLan(`${DASHBOARD}/`).then((b) => b ?? undefined), 30_000);
    expect(page).toContain(`<h1>${TITLE}</h1>`);
    timings.page = performance.now() - deployedAt;
    expect(await lanConnects("192.0.2.2", 8080)).toBe(true);
    // Routed to the stack's own network (a LAN host with a route through the device): still nothing.
    const broker = await resolveInApp("pm-dashboard", "pm-broker");
    const dashboard = await resolveInApp("pm-dashboard", "pm-dashboard");
    expect(broker).toMatch(/^10\.77\.0\.\d+$/);
    timings.resolved = performance.now() - deployedAt;
    await lan.ip("route", "add", SUBNET, "via", "192.0.2.2");
    // Inside the stack the broker is there (by its name, through the NI's DNS); the device itself reaches "the
    // internet" (the path exists). Then what must fail, all at once (each waits out its connect timeout).
    expect(await appConnects("pm-dashboard", "pm-broker", 1883)).toBe("open");
    timings.brokerOpen = performance.now() - deployedAt;
    expect((await dev.exec([busybox(), "timeout", "3", busybox(), "wget", "-q", "-O", "-", "http://192.0.2.1/"])).out).toBe("the internet\n");
    const refused = await Promise.all([
      lanConnects("192.0.2.2", 1883),
      lanConnects(broker, 1883),
      lanConnects(dashboard, 8080),
      // (the broker's image has no Python to try with; its ACL is the same one)
      ...["pm-dashboard", "pm-collector", "pm-analytics"].map((app) => appConnects(app, "192.0.2.1", 80)),
    ]);
    timings.negatives = performance.now() - deployedAt;
    expect(refused.slice(0, 3)).toEqual([false, false, false]);
    for (const r of refused.slice(3)) expect(r).toMatch(/^closed/);
  }, 90_000);

  test("the sensor's bursts reach the analytics unchanged: its RMS and kurtosis per burst equal the simulator's", async () => {
    // The three clients on the broker first (each publishes on connect), so the baseline is learned from the start.
    await waitFor("the dashboard hearing the analytics and the collector", async () => {
      const s = await dashboardState();
      return s?.broker && s.state && s.collector ? s : undefined;
    }, { timeoutMs: 60_000, detail: () => evebox.out().slice(-2000) });
    timings.connected = performance.now() - deployedAt;
    const log = join(dir, "sensor.jsonl");
    sim = Bun.spawn([process.execPath, join(EXAMPLE_DIR, "sensor", "simulator.ts"), "--port", sensorEnd, "--time-scale", String(TIME_SCALE), "--interval", String(INTERVAL_S), "--onset", String(ONSET_H), "--life", String(LIFE_H), "--log", log], {
      stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, BUN_BE_BUN: "1" },
    }) as unknown as Subprocess<"ignore", "pipe", "pipe">;
    simStartedAt = Date.now();
    pump(sim.stderr, (t) => (simOut += t));
    const state = await waitFor("the analytics' baseline, from the LAN through the dashboard", async () => {
      const s = await dashboardState();
      return s?.state?.baseline && s.state.history.length >= 3 && s.signal ? s : undefined;
    }, { timeoutMs: 60_000, detail: () => `sensor: ${simOut.slice(-500)}\n${evebox.out().slice(-2000)}` });
    expect(state.title).toBe(TITLE);
    expect(state.broker).toBe(true);
    expect(state.collector.device).toBe("/dev/ttyV0");
    expect(state.collector.rejected).toBe(0);
    expect(state.state.status).toBe("ok");
    const sent = new Map(readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l)).map((e: any) => [e.seq, e]));
    const points = state.state.history as any[];
    for (const p of points) {
      const s = sent.get(p.seq);
      expect(s).toBeDefined();
      expect(p.rms).toBeCloseTo(s.rms, 2);
      expect(p.kurtosis).toBeCloseTo(s.kurtosis, 3);
    }
    // The live signal is the samples of a burst as sent (the simulator's own features of them agree).
    const sig = state.signal;
    expect(sig.rate).toBe(5120);
    expect(sig.samples.length).toBe(512);
    expect(rms(sig.samples)).toBeGreaterThan(50);
    expect(kurtosis(sig.samples)).toBeGreaterThan(1);
    timings.baseline = Date.now() - simStartedAt;

    // The operator's browser on the LAN, while the machine is healthy.
    browser = await browserIn(lan);
    dashboardPage = await browser.newPage({ viewport: { width: 1200, height: 860 } });
    await dashboardPage.goto(`${DASHBOARD}/`);
    await dashboardPage.locator('body[data-status="ok"]').waitFor({ timeout: 15_000 });
    // A few scored bursts into the trend (the page shows "… N windows analysed"), still before the defect.
    await dashboardPage.waitForFunction(() => Number(/(\d+) windows analysed/.exec(document.querySelector("#health-note")?.textContent ?? "")?.[1] ?? 0) >= 18, null, { timeout: 20_000 });
    await shot(dashboardPage, "dashboard-healthy");
  }, 90_000);

  test(`the alert: none before the defect starts, raised within ${ALERT_WITHIN_MS / 1000} s of it; a remaining-life estimate before it; shown on the dashboard`, async () => {
    const page = dashboardPage!;

    const onsetAt = simStartedAt + ((ONSET_H * 3600) / TIME_SCALE) * 1000;
    const seenRul: number[] = [];
    const alerted = await waitFor("the alert", async () => {
      const s = (await dashboardState())?.state;
      if (!s) return undefined;
      if (s.rulHours != null && !s.alert.active) seenRul.push(s.rulHours);
      return s.alert.active ? s : undefined;
    }, { timeoutMs: ALERT_WITHIN_MS + Math.max(0, onsetAt - Date.now()), everyMs: 1000, detail: () => `sensor: ${simOut.slice(-500)}` });
    const tookMs = Date.now() - onsetAt;
    timings.alertAfterOnset = tookMs;
    console.log(`pm: alert ${(tookMs / 1000).toFixed(1)} s (wall) after the defect started; machine time ${(alerted.alert.raisedAtMs / 3.6e6).toFixed(2)} h; remaining-life estimates before it: ${seenRul.slice(-5).map((h) => h.toFixed(2)).join(", ")} h`);
    expect(tookMs).toBeLessThan(ALERT_WITHIN_MS);
    // Before the defect started, a healthy score throughout (the analytics' own history of every burst).
    const beforeOnset = (alerted.history as any[]).filter((p) => p.t < ONSET_H * 3.6e6 && p.smoothed != null);
    expect(alerted.history[0].n).toBe(1);
    expect(beforeOnset.length, JSON.stringify(alerted.history.slice(0, 16))).toBeGreaterThan(3);
    expect(beforeOnset.filter((p) => p.smoothed <= 60)).toEqual([]);
    expect(alerted.alert.raisedAtMs).toBeGreaterThan(ONSET_H * 3.6e6);
    expect(alerted.health).toBeLessThanOrEqual(30);
    // A finite, positive estimate was given while the health fell, before the alert.
    expect(seenRul.some((h) => h > 0 && h < 100)).toBe(true);

    await page.locator('body[data-status="alert"]').waitFor({ timeout: 15_000 });
    expect(await page.locator("#alert").textContent()).toContain("ALERT since machine time");
    const n = alerted.windows as number;
    await page.waitForFunction((n) => Number(/(\d+) windows analysed/.exec(document.querySelector("#health-note")?.textContent ?? "")?.[1] ?? 0) >= n + 4, n, { timeout: 20_000 });
    await shot(page, "dashboard-alert");
    await page.close();
  }, ALERT_WITHIN_MS + 60_000);

  test("the console: the stack's apps RUNNING, the sensor's port held by the collector, the bundle listed (screenshots)", async () => {
    const page = consolePage!;
    await page.goto(`${consoleUrl}/apps`);
    for (const a of bundle.config.apps) await page.getByText(a.displayname, { exact: true }).first().waitFor({ timeout: 15_000 });
    await page.getByText("RUNNING").first().waitFor();
    await shot(page, "console-apps");
    await page.goto(`${consoleUrl}/hardware`);
    await page.getByText(SENSOR_LABEL).first().waitFor({ timeout: 15_000 });
    await page.getByText("pm-collector").first().waitFor({ timeout: 15_000 });
    await shot(page, "console-hardware");
    await page.goto(`${consoleUrl}/bundles`);
    const row = page.locator('#bundle-list tr[data-bundle="predictive-maintenance"]');
    await row.waitFor({ timeout: 15_000 });
    expect(await row.textContent()).toContain(SUBNET);
    await shot(page, "console-bundles");
  }, 60_000);

  test("the analytics' history is kept across a restart of the app, and across an upgrade of it (a new container, the same volume)", async () => {
    const uuid = appUuid("pm-analytics");
    const before = (await dashboardState()).state;
    expect(before.alert.active).toBe(true);
    const r = await api("POST", `/api/v1/apps/${uuid}/restart`);
    expect(r.status).toBeLessThan(300);
    const after = await waitFor("the analytics started again", async () => {
      const s = (await dashboardState())?.state;
      return s && s.starts === before.starts + 1 ? s : undefined;
    }, 60_000);
    expect(after.windows).toBeGreaterThanOrEqual(before.windows);
    expect(after.baseline).toEqual(before.baseline);
    expect(after.alert).toEqual(before.alert);
    expect(after.history.length).toBeGreaterThanOrEqual(Math.min(before.history.length, 240));

    // The bundle upgraded to 1.1.0 (the analytics app's version and settings change): evebox makes a new
    // container on the same volume; the site's choices of 1.0.0 are the upgrade's defaults.
    const oldContainer = await containerOf("pm-analytics");
    const v2 = await buildBundle("1.1.0", (m) => {
      const a = m.config.apps.find((x: any) => x.displayname === "pm-analytics");
      a.uuidandversion.version = "2";
      a.userData.env.PM_NOTE = "upgraded";
    });
    const dry = await postBundle("dryRun=1", v2);
    expect(dry.status).toBe(200);
    expect(dry.body.upgrade).toEqual({ from: "1.0.0" });
    expect(dry.body.problems).toEqual([]);
    expect(dry.body.parameters.find((p: any) => p.name === "sensor").value).toBe(SENSOR_LABEL);
    const r2 = await postBundle(`staged=${dry.body.staged}&params=${q(PARAMS)}`);
    expect(r2.status).toBe(201);
    expect(r2.body.plan.removed).toEqual([]);
    expect(r2.body.plan.changed.map((x: any) => x.id)).toContain(appUuid("pm-analytics"));
    const upgraded = await waitFor("the upgraded analytics", async () => {
      const s = (await dashboardState())?.state;
      return s && s.starts === before.starts + 2 ? s : undefined;
    }, 90_000);
    expect(await containerOf("pm-analytics")).not.toBe(oldContainer);
    expect(upgraded.windows).toBeGreaterThanOrEqual(after.windows);
    expect(upgraded.baseline).toEqual(before.baseline);
    expect(upgraded.alert).toEqual(before.alert);
    await allRunning("the stack RUNNING after the upgrade", 60_000);
  }, 180_000);

  test("removed through the API: the apps, their containers, the network, the volumes and the images go; the device's serial port stays declared", async () => {
    sim?.kill();
    const r = await api("DELETE", "/api/v1/bundles/predictive-maintenance");
    expect(r.status).toBe(200);
    expect([...r.body.images].sort()).toEqual(images.map((i) => i.sha256).sort());
    expect((await api("GET", "/api/v1/bundles")).body.bundles).toEqual([]);
    // The config is the site's again: only its serial port.
    const doc = (await api("GET", "/api/v1/config")).body;
    expect(doc.deviceIoList.map((d: any) => d.logicallabel)).toEqual([SENSOR_LABEL]);
    expect([doc.apps ?? [], doc.networkInstances ?? [], doc.volumes ?? [], doc.contentInfo ?? []]).toEqual([[], [], [], []]);
    expect((await api("GET", "/api/v1/images")).body.images.filter((i: any) => images.some((x) => x.sha256 === i.sha256))).toEqual([]);
    await waitFor("the stack's apps gone", async () => ((await api("GET", "/api/v1/status")).body.apps.length === 0 ? true : undefined), 90_000);
    const ours = bundle.config.apps.map((x: any) => x.uuidandversion.uuid as string);
    await waitFor("no container of the stack", async () => {
      const left = await Promise.all(ours.map((u: string) => testDocker().listContainers({ all: true, filters: { label: [`evebox.app=${u}`] } })));
      return left.every((l) => l.length === 0) ? true : undefined;
    }, 60_000);
    const status = (await api("GET", "/api/v1/status")).body;
    expect(status.networkInstances.filter((n: any) => n.uuid === NI)).toEqual([]);
    const volumeIds = new Set(bundle.config.volumes.map((v: any) => v.uuid));
    await waitFor("the stack's volumes gone", async () => {
      const vols = (await api("GET", "/api/v1/status")).body.volumes.filter((v: any) => volumeIds.has(v.uuid));
      const dirs = existsSync(join(dataDir, "persist", "volumes")) ? readdirSync(join(dataDir, "persist", "volumes")).filter((d) => [...volumeIds].some((u) => d.startsWith(u as string))) : [];
      return vols.length === 0 && dirs.length === 0 ? true : undefined;
    }, 60_000);
    expect(await fromLan(`${DASHBOARD}/`, 2)).toBeNull();
    const sensor = (await api("GET", "/api/v1/hardware")).body.bundles.find((g: any) => g.name === SENSOR_LABEL);
    expect(sensor.usedBy).toEqual([]);
  }, 120_000);
});
