// Graphs and Activity in a real browser against the real binary, sampling every second: the dashboard's device
// charts and the app page's charts have data points (drawn by uPlot, loaded on demand), the Activity page lists the
// config that was applied (by whom), the app's state changes, and a failed download with its reason and a link.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { launchBrowser } from "./support/browser.ts";
import { cleanup, type Evebox, ROOT, startEvebox, tempDataDir } from "./support/evebox.ts";
import { busyboxAppsConfig, type ImageServer, startImageServer } from "./support/image-server.ts";
import { waitFor } from "./support/wait.ts";

const ARTIFACTS = join(ROOT, "tests", ".artifacts");
const PASSWORD = "graphs-test-password";
const APP = { uuid: "7d000000-0000-4000-8000-00000000b001", name: "charted", cmd: "sh -c 'trap \"exit 0\" TERM; while true; do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1; done'" };
// A digest not in the content store, so it is fetched (and fails: the datastore has no such file).
const MISSING = { uuid: "7d000000-0000-4000-8000-00000000b002", name: "no-image", image: "missing.tar", sha256: "ab".repeat(32) };

let server: ImageServer;
let evebox: Evebox;
let dataDir: string;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  server = await startImageServer();
  dataDir = tempDataDir("evebox-ui-graphs-");
  evebox = await startEvebox({ dataDir, env: { EVEBOX_METRICS_INTERVAL_MS: "1000" } });
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
}, 120_000);

afterAll(async () => {
  if (page) {
    await api("PUT", "/config", busyboxAppsConfig(server, [])).catch(() => undefined);
    await waitFor("the apps removed", async () => ((await api("GET", "/status")).body?.apps?.length === 0 ? true : undefined), 60_000).catch(() => undefined);
  }
  await browser?.close();
  await evebox?.stop();
  server?.stop();
  if (dataDir) cleanup(dataDir);
}, 90_000);

/** The API with the browser's session (its cookie), as the console itself calls it. */
async function api(method: "GET" | "PUT", path: string, body?: unknown) {
  const res = await page.request.fetch(`${evebox.url}/api/v1${path}`, { method, headers: { origin: evebox.url }, ...(body === undefined ? {} : { data: body }) });
  return { status: res.status(), body: await res.json().catch(() => null) };
}

/** The points a chart drew (its data-points), once it has a canvas. */
async function chartPoints(section: string, metric: string, atLeast: number): Promise<number> {
  const chart = page.locator(`#${section} .chart[data-metric="${metric}"]`);
  await chart.locator("canvas").first().waitFor({ timeout: 15_000 });
  // The 1 h range is fetched again every 10 s: wait for it to have the points, not a fixed time.
  await page.waitForFunction(([sel, n]) => Number(document.querySelector(sel as string)?.getAttribute("data-points") ?? 0) >= (n as number), [`#${section} .chart[data-metric="${metric}"]`, atLeast], { timeout: 30_000 });
  return Number(await chart.getAttribute("data-points"));
}

test("set up, apply a config with a running app and one whose image is missing", async () => {
  const setupUrl = evebox.output().match(/(http:\/\/\S+\/setup\?token=\S+)/)![1]!;
  await page.goto(setupUrl);
  await page.locator("#setup-password").fill(PASSWORD);
  await page.locator("#setup-confirm").fill(PASSWORD);
  await page.locator("#setup-submit").click();
  await page.locator("#dashboard").waitFor({ timeout: 10_000 });
  const put = await api("PUT", "/config", busyboxAppsConfig(server, [APP, MISSING]));
  expect({ status: put.status, body: put.status === 201 ? null : put.body }).toEqual({ status: 201, body: null });
  await waitFor("the app RUNNING", async () => ((await api("GET", "/status")).body.apps.find((a: any) => a.uuid === APP.uuid)?.state === "RUNNING" ? true : undefined), {
    timeoutMs: 90_000,
    everyMs: 250,
    detail: evebox.output,
  });
}, 120_000);

test("the dashboard charts the device's CPU, memory, disk and network, with 1 h / 24 h / 7 d", async () => {
  await page.goto(`${evebox.url}/`);
  for (const metric of ["cpu", "memory", "disk", "network", "disk-used"]) expect(await chartPoints("device-charts", metric, 2)).toBeGreaterThanOrEqual(2);
  expect(await page.locator('#device-charts .chart[data-metric="cpu"] .chart-now').textContent()).toMatch(/%\s*now/);
  // The longer ranges show the newest samples too (no minute has closed, or its average shows).
  await page.locator('#device-charts button[data-range="24h"]').click();
  await page.locator('#device-charts[data-range="24h"]').waitFor();
  expect(await page.locator('#device-charts button[data-range="24h"]').getAttribute("aria-pressed")).toBe("true");
  expect(await chartPoints("device-charts", "cpu", 1)).toBeGreaterThanOrEqual(1);
  // The live activity list on the dashboard has the latest entries (the apps' states by now).
  await page.locator('#dashboard-activity-list li[data-area="app"]').first().waitFor({ timeout: 10_000 });
  expect(await page.locator("#dashboard-activity-list li").count()).toBeGreaterThanOrEqual(1);
  await page.screenshot({ path: join(ARTIFACTS, "ui-graphs-dashboard.png"), fullPage: true });
}, 90_000);

test("the app page charts the app's CPU, memory, disk I/O and network", async () => {
  await page.goto(`${evebox.url}/apps/${APP.uuid}`);
  await page.locator("#app-detail").waitFor({ timeout: 10_000 });
  for (const metric of ["cpu", "memory", "disk", "network"]) expect(await chartPoints("app-charts", metric, 2)).toBeGreaterThanOrEqual(2);
  expect(await page.locator('#app-charts .chart[data-metric="disk-used"]').count()).toBe(0);
  const mem = await page.locator('#app-charts .chart[data-metric="memory"] .chart-now').textContent();
  expect(mem).toMatch(/(KiB|MiB) now/);
  await page.screenshot({ path: join(ARTIFACTS, "ui-graphs-app.png"), fullPage: true });
}, 60_000);

test("the Activity page lists the config apply with who did it, the app's state changes, and the failed download with its reason and a link", async () => {
  await page.goto(`${evebox.url}/`);
  await page.locator('#nav a[href="/activity"]').click();
  await page.locator("#activity-list").waitFor({ timeout: 10_000 });
  const applied = page.locator('#activity-list li[data-type="config.accepted"]').first();
  expect(await applied.textContent()).toMatch(/by admin/);
  expect(await applied.locator('a[href="/config"]').count()).toBe(1);
  const running = page.locator('#activity-list li[data-type="app.state"]', { hasText: `app ${APP.name}: RUNNING` });
  await running.first().waitFor({ timeout: 10_000 });
  expect(await running.first().locator(`a[href="/apps/${APP.uuid}"]`).count()).toBe(1);
  const failed = page.locator('#activity-list li[data-failed="true"]', { hasText: MISSING.name }).first();
  await failed.waitFor({ timeout: 30_000 });
  expect(await failed.locator(".activity-reason").textContent()).toMatch(/^Reason: .*404/);
  expect(await failed.locator("a").count()).toBe(1);
  await page.screenshot({ path: join(ARTIFACTS, "ui-graphs-activity.png"), fullPage: true });
  // A state change arrives live: stop the app from the API and watch the list.
  const stopped = await page.request.fetch(`${evebox.url}/api/v1/apps/${APP.uuid}/stop`, { method: "POST", headers: { origin: evebox.url } });
  expect(stopped.status()).toBe(200);
  await page.locator('#activity-list li[data-type="app.command"]', { hasText: "stop requested" }).first().waitFor({ timeout: 15_000 });
  expect(await page.locator('#activity-list li[data-type="app.command"]').first().textContent()).toMatch(/by admin/);
}, 90_000);

test("at 360 px the charts and the activity stay usable", async () => {
  await page.setViewportSize({ width: 360, height: 800 });
  await page.goto(`${evebox.url}/`);
  await chartPoints("device-charts", "cpu", 1);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(width).toBeLessThanOrEqual(360);
  await page.screenshot({ path: join(ARTIFACTS, "ui-graphs-360.png"), fullPage: true });
}, 60_000);
