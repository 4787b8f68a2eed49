// The Updates page in Chromium against the compiled binary with its A/B slots as plain files (the same off-device
// mode as tests/baseos-api.test.ts; real boots are tests/baseos.test.ts): the slots, the reboot schedule, a
// refused upload with its reason, a good upload written and waiting for its reboot, and cancel.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { parseBootEnv } from "../src/baseos/bootenv.ts";
import { launchBrowser } from "./support/browser.ts";
import { bundleOf, testKeys, tinySquashfs } from "./support/bundles.ts";
import { cleanup, type Evebox, ROOT, startEvebox, tempDataDir } from "./support/evebox.ts";
import { slotFiles } from "./support/slots.ts";

const ARTIFACTS = join(ROOT, "tests", ".artifacts");
const BOARD = { board: "qemu-x86_64", arch: "amd64" };
let root: string;
let evebox: Evebox;
let browser: Browser;
let page: Page;
let good: string;
let stranger: string;

const slot = (s: "A" | "B") => join(root, `slot${s}`);
const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  root = tempDataDir("evebox-ui-updates-");
  const keys = await testKeys(root);
  const slots = slotFiles(root, { a: { bytes: 8 * 2 ** 20, fill: 0xaa }, b: { bytes: 8 * 2 ** 20, fill: 0 } });
  const sq = await tinySquashfs(root, "v2");
  good = await bundleOf(root, sq, { ...BOARD, version: "2.0.0" }, keys);
  stranger = await bundleOf(root, sq, { ...BOARD, version: "2.0.0" }, await testKeys(root, "stranger"), "stranger");
  evebox = await startEvebox({
    dataDir: join(root, "data"),
    env: {
      EVEBOX_APPS: "off",
      ...slots.env,
      EVEBOX_BASEOS_KEYS: keys.dir,
      EVEBOX_BASEOS_VERSION: "1.0.0",
    },
  });
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(evebox.output().match(/(http:\/\/\S+\/setup\?token=\S+)/)![1]!);
  await page.locator("#setup-password").fill("hvac-plant-9-secret");
  await page.locator("#setup-confirm").fill("hvac-plant-9-secret");
  await page.locator("#setup-submit").click();
  await page.locator("#dashboard").waitFor({ timeout: 10_000 });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await evebox?.stop();
  cleanup(root);
});

test("the slots: A runs 1.0.0 and is committed, B is unused", async () => {
  await page.goto(`${evebox.url}/updates`);
  await page.locator("#slots").waitFor({ timeout: 10_000 });
  expect(await page.locator("#running-version").textContent()).toBe("1.0.0");
  expect(await page.locator('#slots tr[data-slot="A"] [data-state]').getAttribute("data-state")).toBe("active");
  expect(await page.locator('#slots tr[data-slot="A"] th').textContent()).toContain("committed");
  expect(await page.locator('#slots tr[data-slot="B"] [data-state]').getAttribute("data-state")).toBe("unused");
}, 30_000);

test("the schedule is saved; a bad setting is refused with its reason", async () => {
  await page.locator("#window-duration").fill("5000");
  await page.locator("#schedule-save").click();
  await expect(page.locator("#schedule-error").textContent({ timeout: 10_000 })).resolves.toMatch(/durationMinutes/);
  await page.locator("#window-duration").fill("90");
  await page.locator("#reboot-hold").check();
  await page.locator("#schedule-save").click();
  await page.locator("#schedule-saved").waitFor({ timeout: 10_000 });
  const res = await page.request.get(`${evebox.url}/api/v1/baseos`);
  expect((await res.json()).settings).toMatchObject({ reboot: "hold", window: { durationMinutes: 90 } });
}, 30_000);

test("an update signed by another key is refused with the reason; slot B is untouched", async () => {
  const before = sha(slot("B"));
  await page.locator("#update-file").setInputFiles(stranger);
  await page.locator("#upload-submit").click();
  await expect(page.locator("#upload-error").textContent({ timeout: 20_000 })).resolves.toMatch(/signature/);
  await page.waitForFunction(() => document.querySelector("#update-history tbody tr")?.getAttribute("data-outcome") === "refused", undefined, { timeout: 10_000 });
  expect(sha(slot("B"))).toBe(before);
  expect(parseBootEnv(readFileSync(join(root, "grubenv"))).evebox_try).toBe("");
}, 60_000);

test("a good update is uploaded with progress, written to B and tried at the next boot; held until the operator reboots; cancel withdraws it", async () => {
  await page.locator("#update-file").setInputFiles(good);
  await page.locator("#upload-submit").click();
  await page.locator("#upload-accepted").waitFor({ timeout: 20_000 });
  await page.waitForFunction(() => document.querySelector("#current-update")?.getAttribute("data-phase") === "ready", undefined, { timeout: 30_000, polling: 200 });
  expect(await page.locator("#update-title").textContent()).toContain("2.0.0");
  expect(await page.locator("#update-activate").isVisible()).toBe(true);
  expect(await page.locator('#slots tr[data-slot="B"] [data-state]').getAttribute("data-state")).toBe("updating");
  // Written and read back: the boot loader is asked to try B once at the next boot.
  expect(parseBootEnv(readFileSync(join(root, "grubenv"))).evebox_try).toBe("B");
  await page.screenshot({ path: join(ARTIFACTS, "updates-ready.png"), fullPage: true });
  // "Reboot into it now": off-device the reboot is only recorded.
  await page.locator("#update-activate").click();
  await page.waitForFunction(() => document.querySelector("#current-update")?.getAttribute("data-phase") === "rebooting", undefined, { timeout: 10_000, polling: 200 });
  expect(parseBootEnv(readFileSync(join(root, "grubenv"))).evebox_try).toBe("B");

  await page.locator("#update-cancel").click();
  await page.locator("#current-update").waitFor({ state: "detached", timeout: 10_000 });
  await page.waitForFunction(() => document.querySelector("#update-history tbody tr")?.getAttribute("data-outcome") === "cancelled", undefined, { timeout: 10_000 });
  expect(parseBootEnv(readFileSync(join(root, "grubenv"))).evebox_try).toBe("");
}, 60_000);
