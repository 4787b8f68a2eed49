// The real console in a real browser: setup with the printed URL, the dashboard, logout, login, deep links.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { launchBrowser } from "./support/browser.ts";
import { cleanup, type Evebox, ROOT, startEvebox, tempDataDir } from "./support/evebox.ts";

const ARTIFACTS = join(ROOT, "tests", ".artifacts");
let evebox: Evebox;
let dataDir: string;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  dataDir = tempDataDir();
  evebox = await startEvebox({ dataDir });
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await evebox?.stop();
  cleanup(dataDir);
});

test("setup from the printed URL, then the dashboard shows the device", async () => {
  const setupUrl = evebox.output().match(/(http:\/\/\S+\/setup\?token=\S+)/)![1]!;
  await page.goto(setupUrl);
  await page.locator("#setup-password").fill("oil-rig-7-secret");
  await page.locator("#setup-confirm").fill("oil-rig-7-secret");
  await page.locator("#setup-submit").click();
  await page.locator("#dashboard").waitFor({ timeout: 10_000 });
  const status = await (await page.request.get(`${evebox.url}/api/v1/status`)).json();
  await expect(page.locator("#device-name").textContent()).resolves.toContain(status.device.name);
  await expect(page.locator("#device-version").textContent()).resolves.toContain(status.device.version);
  await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
}, 60_000);

test("logout, a wrong password shows an error, the right one shows the dashboard", async () => {
  await page.locator("#logout").click();
  await page.locator("#login-password").waitFor({ timeout: 10_000 });
  await page.locator("#login-password").fill("not-the-password");
  await page.locator("#login-submit").click();
  await expect(page.locator(".form-error").first().textContent({ timeout: 10_000 })).resolves.toMatch(/wrong password/i);
  await page.locator("#login-password").fill("oil-rig-7-secret");
  await page.locator("#login-submit").click();
  await page.locator("#dashboard").waitFor({ timeout: 10_000 });
  await page.screenshot({ path: join(ARTIFACTS, "dashboard-after-login.png") });
}, 60_000);

test("a deep link loads the app, and the session cookie is not readable by scripts", async () => {
  const res = await page.goto(`${evebox.url}/apps`);
  expect(res?.status()).toBe(200);
  await page.locator("nav").first().waitFor({ timeout: 10_000 });
  expect(await page.evaluate(() => document.cookie)).not.toContain("evebox_session");
}, 60_000);

test("settings: a wrong current password is refused, the new one works; a token is shown once, works and is revoked; power is off here", async () => {
  await page.goto(`${evebox.url}/settings`);
  await page.locator("#settings").waitFor({ timeout: 10_000 });
  // Power: this evebox is a program on a host, not the device's init.
  await page.locator("#power-unavailable").waitFor({ timeout: 10_000 });
  expect(await page.locator("#power-reboot").isDisabled()).toBe(true);

  await page.locator("#pw-current").fill("not-the-password");
  await page.locator("#pw-new").fill("hvac-plant-9-secret");
  await page.locator("#pw-repeat").fill("hvac-plant-9-secret");
  await page.locator("#pw-submit").click();
  await expect(page.locator("#pw-error").textContent({ timeout: 10_000 })).resolves.toMatch(/current password is wrong/i);
  await page.locator("#pw-current").fill("oil-rig-7-secret");
  await page.locator("#pw-submit").click();
  await page.locator("#pw-done").waitFor({ timeout: 10_000 });
  // Other sessions end with a password change, API tokens do not: the form says both.
  expect(await page.locator("#pw-note").textContent()).toMatch(/signs out every other browser; API tokens are not affected/);
  expect(await page.locator("#pw-done").textContent()).toMatch(/other browser .* signed out; this one stays signed in\. API tokens keep working/);
  const login = (password: string) => fetch(`${evebox.url}/api/v1/login`, { method: "POST", headers: { "content-type": "application/json", origin: evebox.url }, body: JSON.stringify({ password }) });
  expect((await login("oil-rig-7-secret")).status).toBe(401);
  expect((await login("hvac-plant-9-secret")).status).toBe(200);

  await page.locator("#token-name").fill("scada-poller");
  await page.locator("#token-create").click();
  const token = (await page.locator("#token-value").textContent({ timeout: 10_000 }))!.trim();
  expect(token).toMatch(/^ebx_/);
  await page.locator('tr[data-token="scada-poller"]').waitFor({ timeout: 10_000 });
  const asScript = () => fetch(`${evebox.url}/api/v1/status`, { headers: { authorization: `Bearer ${token}` } });
  expect((await asScript()).status).toBe(200);
  await page.screenshot({ path: join(ARTIFACTS, "settings.png"), fullPage: true });
  await page.locator('tr[data-token="scada-poller"] button').click();
  await page.locator("#revoke-confirm").click();
  await page.locator('tr[data-token="scada-poller"]').waitFor({ state: "detached", timeout: 10_000 });
  expect((await asScript()).status).toBe(401);
}, 60_000);

test("configuration: history, a refused upload with its problems, an upload applied after its plan, roll back, download", async () => {
  const ds = "5b0a6b52-7f36-4a55-8c3e-2a3f5c0d1e02";
  const tree = (uuid: string, name: string) => ({ uuid, dsId: ds, URL: `evebox/${name}:1`, iformat: "CONTAINER", displayName: name });
  const v1 = { datastores: [{ id: ds, dType: "DsContainerRegistry", fqdn: "docker://127.0.0.1:5999" }], contentInfo: [tree("0c5e2b1a-3d4f-4a6b-9c8d-7e6f5a4b3c03", "busybox")] };
  const v2 = { ...v1, contentInfo: [...v1.contentInfo, tree("0c5e2b1a-3d4f-4a6b-9c8d-7e6f5a4b3c04", "telegraf")] };
  const put = await page.request.fetch(`${evebox.url}/api/v1/config`, { method: "PUT", headers: { origin: evebox.url, "content-type": "application/json" }, data: JSON.stringify(v1) });
  expect(put.status()).toBe(201);
  const first = (await put.json()).version as number;

  await page.goto(`${evebox.url}/config`);
  await page.locator(`#config-versions tr[data-version="${first}"]`).waitFor({ timeout: 10_000 });
  expect(await page.locator("#config-current").textContent()).toContain(String(first));

  // A document with a misspelt field: refused, every problem with its field, nothing changed.
  await page.locator("#config-file").setInputFiles({ name: "bad.json", mimeType: "application/json", buffer: Buffer.from(JSON.stringify({ contentInfo: [{ uuid: "0c5e2b1a-3d4f-4a6b-9c8d-7e6f5a4b3c03", URl: "x" }] })) });
  await expect(page.locator("#config-problems").textContent({ timeout: 10_000 })).resolves.toMatch(/URl/);
  expect((await (await page.request.get(`${evebox.url}/api/v1/config/history`)).json()).current).toBe(first);

  // A good document: its plan first, then applied.
  await page.locator("#config-file").setInputFiles({ name: "plant-7.json", mimeType: "application/json", buffer: Buffer.from(JSON.stringify(v2)) });
  await page.locator("#plan").waitFor({ timeout: 10_000 });
  expect((await page.locator("#plan .plan-step").allTextContents()).join("\n")).toContain("telegraf");
  await page.locator("#plan-apply").click();
  await expect(page.locator("#config-message").textContent({ timeout: 10_000 })).resolves.toMatch(/plant-7\.json: now configuration version \d+/);
  const second = (await (await page.request.get(`${evebox.url}/api/v1/config/history`)).json()).current as number;
  expect(second).toBeGreaterThan(first);

  // Roll back to the first: planned (the second content tree goes), then applied as a new version.
  await page.locator(`#config-versions tr[data-version="${first}"] button[data-action="rollback"]`).click();
  await page.locator("#plan").waitFor({ timeout: 10_000 });
  expect((await page.locator("#plan .plan-step").allTextContents()).join("\n")).toMatch(/Remove.*telegraf/);
  await page.locator("#plan-apply").click();
  await expect(page.locator("#config-message").textContent({ timeout: 10_000 })).resolves.toMatch(/version \d+/);
  const cfg = await (await page.request.get(`${evebox.url}/api/v1/config`)).json();
  expect(cfg.contentInfo.map((t: { displayName: string }) => t.displayName)).toEqual(["busybox"]);
  await page.screenshot({ path: join(ARTIFACTS, "configuration.png"), fullPage: true });

  // Download: the current document, as the API gives it.
  const [dl] = await Promise.all([page.waitForEvent("download"), page.locator("#config-download").click()]);
  expect(JSON.parse(await Bun.file((await dl.path())!).text())).toEqual(cfg);
}, 60_000);

test("settings: the device's settings are shown with their defaults and, in local mode, saved into the config's items", async () => {
  await page.goto(`${evebox.url}/settings`);
  const row = page.locator('tr[data-setting="timer.config.interval"]');
  await row.waitFor({ timeout: 10_000 });
  expect(await row.getAttribute("data-state")).toBe("default");
  expect(await row.locator("td").first().textContent()).toBe("60");
  await row.locator("input").fill("120");
  await page.locator('tr[data-setting="timer.metric.interval"] input').fill("4");
  await page.locator("#settings-save").click();
  await page.locator("#settings-saved").waitFor({ timeout: 10_000 });
  await page.locator('tr[data-setting="timer.config.interval"][data-state="applied"]').waitFor({ timeout: 10_000 });
  expect(await page.locator('tr[data-setting="timer.config.interval"] td').first().textContent()).toBe("120");
  // Out of range: kept in the config, never fatal, the default in effect and the reason shown.
  const bad = page.locator('tr[data-setting="timer.metric.interval"][data-state="invalid"]');
  await bad.waitFor({ timeout: 10_000 });
  expect(await bad.textContent()).toContain("4 is out of range 5..3600");
  const cfg = await (await page.request.get(`${evebox.url}/api/v1/config`)).json();
  expect(cfg.configItems).toEqual([
    { key: "timer.config.interval", value: "120" },
    { key: "timer.metric.interval", value: "4" },
  ]);
  await page.screenshot({ path: join(ARTIFACTS, "settings-device.png"), fullPage: true });
}, 60_000);
