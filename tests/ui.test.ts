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
