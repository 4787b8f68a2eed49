// The Storage page's image upload in Chromium against the compiled binary: a qcow2 uploaded with a progress bar
// (the upload throttled through the DevTools protocol so the bar has time to move), one of its requests cut off
// and resumed by the page by itself, the sha256 and format shown; an HTML file refused at the field with nothing
// stored; Delete refused while a content tree of the config uses the image, then allowed. Mobile width too.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { launchBrowser } from "./support/browser.ts";
import { cleanup, type Evebox, ROOT, startEvebox, tempDataDir } from "./support/evebox.ts";
import { qcow2 } from "./support/images.ts";
import { waitFor } from "./support/wait.ts";

const ARTIFACTS = join(ROOT, "tests", ".artifacts");
const DS = "6b0a6b52-7f36-4a55-8c3e-2a3f5c0d1e41";
const CT = "7e200000-0000-4000-8000-000000000001";
let root: string;
let evebox: Evebox;
let browser: Browser;
let page: Page;
let disk: string;
let diskSha: string;
let html: string;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  root = tempDataDir("evebox-ui-images-");
  // 24 MiB of file (3 requests of 8 MiB): a preallocated qcow2.
  disk = join(root, "plc-runtime.qcow2");
  await qcow2(disk, 24 * 1024 * 1024, undefined, ["-o", "preallocation=full"]);
  diskSha = createHash("sha256").update(readFileSync(disk)).digest("hex");
  html = join(root, "debian-12.qcow2");
  writeFileSync(html, `<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>${"<p>mirror</p>".repeat(100)}</body></html>\n`);
  evebox = await startEvebox({ dataDir: join(root, "data"), env: { EVEBOX_APPS: "off" } });
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(evebox.output().match(/(http:\/\/\S+\/setup\?token=\S+)/)![1]!);
  await page.locator("#setup-password").fill("storage-upload-secret");
  await page.locator("#setup-confirm").fill("storage-upload-secret");
  await page.locator("#setup-submit").click();
  await page.locator("#dashboard").waitFor({ timeout: 10_000 });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await evebox?.stop();
  cleanup(root);
});


/**
 * Chooses a file; the page fills the name field from it a render later: waited for, so a name typed next is not
 * overwritten by it (a CI run read the field before it was filled).
 */
async function chooseFile(path: string): Promise<void> {
  await page.locator("#image-file").setInputFiles(path);
  await waitFor(`the name field to show ${basename(path)}`, async () => ((await page.locator("#image-name").inputValue()) === basename(path) ? true : undefined), 10_000);
}

test("a qcow2 upload shows its progress, survives a dropped request, and ends with its sha256 and format", async () => {
  await page.goto(`${evebox.url}/storage`);
  await page.locator("#image-file").waitFor({ timeout: 10_000 });
  // ~12 MB/s up: the 24 MiB take about two seconds, long enough to see the bar move.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 12 * 1024 * 1024 });
  // The second chunk's request is cut off once; the page must ask the device where it stands and go on.
  let patches = 0;
  let cut = 0;
  await page.route("**/api/v1/images/uploads/*", async (route) => {
    if (route.request().method() === "PATCH" && ++patches === 2 && cut++ === 0) return route.abort("connectionreset");
    return route.continue();
  });
  // Every value the progress bar shows, as the page shows it.
  await page.evaluate(() => {
    const seen: number[] = ((window as any).__progress = []);
    new MutationObserver(() => {
      const p = document.querySelector("#image-progress progress") as HTMLProgressElement | null;
      if (p && seen.at(-1) !== p.value) seen.push(p.value);
    }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["value"] });
  });
  await chooseFile(disk);
  expect(await page.locator("#image-name").inputValue()).toBe("plc-runtime.qcow2");
  await page.locator("#image-name").fill("PLC runtime");
  await page.locator("#image-upload").click();
  await page.locator("#image-progress").waitFor({ timeout: 10_000 });
  await page.screenshot({ path: join(ARTIFACTS, "ui-images-progress.png") });
  const notice = await page.locator("#image-uploaded").textContent({ timeout: 60_000 });
  expect(notice).toContain("PLC runtime");
  expect(notice).toContain("qcow2 disk");
  expect(notice).toContain(diskSha);
  const seen = (await page.evaluate(() => (window as any).__progress)) as number[];
  expect(seen.filter((v) => v > 0 && v < 100).length).toBeGreaterThanOrEqual(3);
  expect(cut).toBe(1);
  expect(patches).toBeGreaterThanOrEqual(4);
  await page.unroute("**/api/v1/images/uploads/*");
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  const row = page.locator('#imported-images tr[data-image="PLC runtime"]');
  await row.waitFor({ timeout: 10_000 });
  expect(await row.textContent()).toContain(`${(statSync(disk).size / 1024 / 1024).toFixed(1)} MiB`);
  const stored = join(root, "data", "persist", "content", "blobs", "sha256", diskSha);
  expect(statSync(stored).size).toBe(statSync(disk).size);
  await page.screenshot({ path: join(ARTIFACTS, "ui-images-done.png"), fullPage: true });
}, 90_000);

test("an HTML file uploaded as an image is refused at the field, and nothing is stored", async () => {
  await chooseFile(html);
  await page.locator("#image-name").fill("debian 12");
  await page.locator("#image-upload").click();
  const error = await page.locator("#image-upload-error").textContent({ timeout: 20_000 });
  expect(error).toMatch(/debian 12: it is an HTML document.*nothing was stored/);
  expect(await page.locator("#image-file").getAttribute("aria-invalid")).toBe("true");
  await page.screenshot({ path: join(ARTIFACTS, "ui-images-html-refused.png") });
  const list = await (await page.request.get(`${evebox.url}/api/v1/images`)).json();
  expect(list.images.map((i: any) => i.name)).toEqual(["PLC runtime"]);
  expect(list.uploads).toEqual([]);
}, 30_000);

test("Delete is refused while a content tree uses the image, naming it; allowed once the config no longer does", async () => {
  const put = async (doc: unknown) => {
    const r = await page.request.put(`${evebox.url}/api/v1/config`, { data: doc, headers: { origin: evebox.url } });
    expect([200, 201]).toContain(r.status());
  };
  await put({
    datastores: [{ id: DS, dType: "DsHttp", fqdn: "http://imported-images.invalid" }],
    contentInfo: [{ uuid: CT, displayName: "plc-disk", dsId: DS, URL: "plc.qcow2", iformat: "QCOW2", sha256: diskSha }],
  });
  const row = page.locator('#imported-images tr[data-image="PLC runtime"]');
  const usedBy = (want: string) => waitFor(`"used by" to show ${want}`, async () => ((await row.locator("td").nth(3).textContent()) === want ? true : undefined), 15_000);
  await usedBy("plc-disk");
  await row.getByRole("button", { name: "Delete image PLC runtime" }).click();
  await page.locator("#image-delete-confirm").click();
  const refusal = await page.locator("#image-delete [role=alert]").textContent({ timeout: 10_000 });
  expect(refusal).toContain('content tree "plc-disk"');
  await page.screenshot({ path: join(ARTIFACTS, "ui-images-delete-refused.png") });
  await page.locator("#image-delete-cancel").click();
  await put({});
  await usedBy("nothing");
  await row.getByRole("button", { name: "Delete image PLC runtime" }).click();
  await page.locator("#image-delete-confirm").click();
  await row.waitFor({ state: "detached", timeout: 10_000 });
  expect((await (await page.request.get(`${evebox.url}/api/v1/images`)).json()).images).toEqual([]);
}, 60_000);

test("an unfinished upload is listed and can be cancelled", async () => {
  const r = await page.request.post(`${evebox.url}/api/v1/images/uploads`, { data: { name: "half.iso", size: 4096 }, headers: { origin: evebox.url } });
  expect(r.status()).toBe(201);
  await page.goto(`${evebox.url}/storage`);
  const item = page.locator('#open-uploads li[data-upload="half.iso"]');
  await item.waitFor({ timeout: 10_000 });
  await item.getByRole("button", { name: "Cancel the upload of half.iso" }).click();
  await item.waitFor({ state: "detached", timeout: 10_000 });
  expect((await (await page.request.get(`${evebox.url}/api/v1/images/uploads`)).json()).uploads).toEqual([]);
}, 30_000);

test("at 360 px the upload form stays usable", async () => {
  await page.setViewportSize({ width: 360, height: 780 });
  await page.goto(`${evebox.url}/storage`);
  // The page renders again as its data arrives: the box is read once the form is laid out (null while it is not).
  const box = await waitFor("the upload form laid out", async () => (await page.locator("#image-upload").boundingBox()) ?? undefined, 10_000);
  expect(box.x + box.width).toBeLessThanOrEqual(360);
  const scroll = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(scroll).toBeLessThanOrEqual(360);
  await page.screenshot({ path: join(ARTIFACTS, "ui-images-mobile.png"), fullPage: true });
}, 30_000);
