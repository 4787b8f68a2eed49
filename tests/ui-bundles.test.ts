// The Bundles page in Chromium against the compiled binary: "Import bundle" uploads the tiny bundle (built by the
// binary's `bundle build`) with a progress bar, the plan shows with the parameters as form fields (the serial
// port and the port as selects of the device's own, the subnet as text), a subnet that collides with the site's
// network is refused at its field by the device and a host-bits one by the page itself, Apply imports it (the
// bundle listed, its app in the config), Upgrade from its row keeps the same objects, and Remove (a ConfirmDialog)
// takes out what it added. Apps do not run
// here (EVEBOX_APPS=off): tests/bundles.test.ts runs them.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { buildTinyBundle, SITE } from "./support/app-bundle.ts";
import { launchBrowser } from "./support/browser.ts";
import { cleanup, ensureBinary, type Evebox, ROOT, startEvebox, tempDataDir } from "./support/evebox.ts";

const ARTIFACTS = join(ROOT, "tests", ".artifacts");
let root: string;
let evebox: Evebox;
let browser: Browser;
let page: Page;
let bundle: string;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  root = tempDataDir("evebox-ui-bundles-");
  bundle = await buildTinyBundle(await ensureBinary(), root, "1.0.0", false);
  evebox = await startEvebox({ dataDir: join(root, "data"), env: { EVEBOX_APPS: "off" } });
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(evebox.output().match(/(http:\/\/\S+\/setup\?token=\S+)/)![1]!);
  await page.locator("#setup-password").fill("bundle-import-secret");
  await page.locator("#setup-confirm").fill("bundle-import-secret");
  await page.locator("#setup-submit").click();
  await page.locator("#dashboard").waitFor({ timeout: 10_000 });
  const r = await page.request.put(`${evebox.url}/api/v1/config`, { data: SITE, headers: { origin: evebox.url } });
  expect(r.status()).toBe(201);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await evebox?.stop();
  cleanup(root);
});

const config = async () => (await (await page.request.get(`${evebox.url}/api/v1/config`)).json()) as Record<string, any>;

test("import: upload with progress, the parameters as fields checked at the field, the plan, Apply", async () => {
  await page.goto(`${evebox.url}/bundles`);
  await page.locator("#bundle-import").click();
  // Slow the upload down so the progress bar is seen moving.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 2 * 1024 * 1024 });
  await page.evaluate(() => {
    const seen: number[] = ((window as any).__progress = []);
    new MutationObserver(() => {
      const p = document.querySelector("#bundle-progress progress") as HTMLProgressElement | null;
      if (p && seen.at(-1) !== p.value) seen.push(p.value);
    }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["value"] });
  });
  await page.locator("#bundle-file").setInputFiles(bundle);
  await page.locator("#bundle-upload").click();
  await page.locator("#bundle-plan").waitFor({ timeout: 60_000 });
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  expect(((await page.evaluate(() => (window as any).__progress)) as number[]).filter((v) => v > 0 && v < 100).length).toBeGreaterThanOrEqual(1);
  expect(await page.locator("#bundle-name").textContent()).toBe("tiny-stack 1.0.0");
  expect(await page.locator("#bundle-signature").textContent()).toContain("Not signed.");

  // The serial port and the port are selects of what the device has.
  const serial = page.locator("select#bundle-param-sensor");
  const serialChoices = await serial.locator("option").allTextContents();
  expect(serialChoices.length).toBeGreaterThan(0);
  expect(serialChoices.every((c) => /^tty/.test(c))).toBe(true);
  expect(await page.locator("select#bundle-param-uplink option").allTextContents()).toContain("uplink");

  // A subnet of the site's network: refused at the field by the device.
  const subnet = page.locator("input#bundle-param-subnet");
  await subnet.fill("10.214.0.0/16");
  await page.locator("#bundle-param-subnet-error").filter({ hasText: "overlaps 10.214.0.0/24 (network instance site-net)" }).waitFor({ timeout: 10_000 });
  expect(await subnet.getAttribute("aria-invalid")).toBe("true");
  expect(await page.locator("#bundle-apply").isDisabled()).toBe(true);
  await page.screenshot({ path: join(ARTIFACTS, "ui-bundles-subnet-refused.png") });
  // Host bits: the page says so at once.
  await subnet.fill("10.213.0.5/24");
  expect(await page.locator("#bundle-param-subnet-error").textContent({ timeout: 5_000 })).toContain("10.213.0.0/24");
  await subnet.fill("10.213.0.0/24");
  await page.locator("#bundle-plan-list").waitFor({ timeout: 10_000 });
  expect(await page.locator("#bundle-param-subnet-error").count()).toBe(0);
  const planText = await page.locator("#bundle-plan-list").textContent();
  expect(planText).toContain("app tiny-keeper");
  expect(planText).toContain("network instance tiny-net");
  await page.screenshot({ path: join(ARTIFACTS, "ui-bundles-plan.png") });

  await page.locator("#bundle-apply").click();
  expect(await page.locator("#bundle-notice").textContent({ timeout: 20_000 })).toContain("Imported tiny-stack 1.0.0");
  const row = page.locator('#bundle-list tr[data-bundle="tiny-stack"]');
  await row.waitFor({ timeout: 10_000 });
  expect(await row.textContent()).toContain("10.213.0.0/24");
  const doc = await config();
  expect(doc.apps.map((a: any) => a.displayname)).toEqual(["tiny-keeper"]);
  expect(doc.networkInstances.map((n: any) => n.displayname).sort()).toEqual(["site-net", "tiny-net"]);
  await page.screenshot({ path: join(ARTIFACTS, "ui-bundles-imported.png"), fullPage: true });
}, 120_000);

test("upgrade from its row: the plan says which version it replaces and that volumes are kept; the same objects after", async () => {
  const before = await config();
  const v2 = await buildTinyBundle(await ensureBinary(), root, "1.1.0", false);
  await page.getByRole("button", { name: "Upgrade bundle tiny-stack" }).click();
  await page.locator("#bundle-file").setInputFiles(v2);
  await page.locator("#bundle-upload").click();
  await page.locator("#bundle-plan").waitFor({ timeout: 60_000 });
  expect(await page.locator("#bundle-name").textContent()).toBe("tiny-stack 1.1.0");
  expect(await page.locator("#bundle-upgrade").textContent()).toContain("upgrade from 1.0.0: volumes are kept");
  await page.locator("#bundle-plan-list").waitFor({ timeout: 10_000 });
  await page.screenshot({ path: join(ARTIFACTS, "ui-bundles-upgrade-plan.png") });
  await page.locator("#bundle-apply").click();
  expect(await page.locator("#bundle-notice").textContent({ timeout: 20_000 })).toContain("Upgraded tiny-stack from 1.0.0 to 1.1.0");
  await page.locator('#bundle-list tr[data-bundle="tiny-stack"]').filter({ hasText: "1.1.0" }).waitFor({ timeout: 10_000 });
  const after = await config();
  const ids = (d: Record<string, any>) => ({ apps: d.apps.map((a: any) => a.uuidandversion.uuid), volumes: d.volumes.map((v: any) => v.uuid).sort() });
  expect(ids(after)).toEqual(ids(before));
}, 120_000);

test("remove: the ConfirmDialog, then only the bundle's objects go", async () => {
  await page.getByRole("button", { name: "Remove bundle tiny-stack" }).click();
  await page.locator("#bundle-remove-confirm").click();
  await page.locator('#bundle-list tr[data-bundle="tiny-stack"]').waitFor({ state: "detached", timeout: 20_000 });
  expect(await page.locator("#bundle-notice").textContent()).toContain("Removed the bundle tiny-stack 1.1.0");
  const doc = await config();
  expect(doc.apps ?? []).toEqual([]);
  expect(doc.networkInstances.map((n: any) => n.displayname)).toEqual(["site-net"]);
  expect(doc.volumes.map((v: any) => v.displayName)).toEqual(["site-data"]);
}, 60_000);
