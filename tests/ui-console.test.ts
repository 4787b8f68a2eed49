// App consoles in a real browser: a VM app's page shows its accelerator; "Open serial console" loads xterm.js
// (a chunk of its own, fetched only then) and shows the guest's boot line; a command typed in it is answered.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { launchBrowser } from "./support/browser.ts";
import { waitFor } from "./support/wait.ts";
import { cleanup, type Evebox, ROOT, startEvebox, tempDataDir } from "./support/evebox.ts";
import { ensureGuestImage, GUEST_READY } from "./support/guest/image.ts";
import { qemuPids } from "./support/qemu-pids.ts";

const ARTIFACTS = join(ROOT, "tests", ".artifacts");
const APP = "7d000000-0000-4000-8001-000000000001";
const CT = "7d000000-0000-4000-8002-000000000001";
const VOL = "7d000000-0000-4000-8003-000000000001";
const DS = "7d000000-0000-4000-8004-000000000001";
const DESKTOP = "7d000000-0000-4000-8001-000000000002";
const DESKTOP_VOL = "7d000000-0000-4000-8003-000000000002";
let evebox: Evebox;
let dataDir: string;
let browser: Browser;
let page: Page;
let http: ReturnType<typeof Bun.serve>;

async function api(method: string, path: string, data?: unknown) {
  const r = await page.request.fetch(`${evebox.url}/api/v1${path}`, { method, data, headers: { origin: evebox.url } });
  return { status: r.status(), body: await r.json().catch(() => null) };
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const guest = await ensureGuestImage();
  const disk = new Uint8Array(readFileSync(guest.disk));
  http = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(disk as Uint8Array<ArrayBuffer>) });
  dataDir = tempDataDir("evebox-uic-");
  evebox = await startEvebox({ dataDir });
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  expect((await api("POST", "/setup", { token: evebox.setupToken, password: "console-test-password" })).status).toBe(200);
  const doc = {
    datastores: [{ id: DS, dType: "DsHttp", fqdn: `http://127.0.0.1:${http.port}` }],
    contentInfo: [{ uuid: CT, dsId: DS, URL: "guest.qcow2", iformat: "QCOW2", sha256: new Bun.CryptoHasher("sha256").update(disk).digest("hex"), displayName: "guest" }],
    volumes: [
      { uuid: VOL, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: CT }, displayName: "guest-disk", generationCount: "1" },
      { uuid: DESKTOP_VOL, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: CT }, displayName: "desktop-disk", generationCount: "1" },
    ],
    apps: [
      {
        uuidandversion: { uuid: APP, version: "1" },
        displayname: "edge-router",
        activate: true,
        fixedresources: { memory: 131072, vcpus: 1 },
        volumeRefList: [{ uuid: VOL }],
      },
      {
        uuidandversion: { uuid: DESKTOP, version: "1" },
        displayname: "hmi-desktop",
        activate: true,
        remoteConsole: true,
        fixedresources: { memory: 131072, vcpus: 1 },
        volumeRefList: [{ uuid: DESKTOP_VOL }],
      },
    ],
  };
  const put = await api("PUT", "/config", doc);
  expect(put.status).toBe(201);
  await waitFor(
    "both VM apps RUNNING",
    async () => ((await api("GET", "/status")).body.apps.filter((a: any) => a.state === "RUNNING").length === 2 ? true : undefined),
    90_000,
  );
}, 300_000);

afterAll(async () => {
  await browser?.close();
  if (evebox) {
    await fetch(`${evebox.url}/api/v1/config`).catch(() => undefined);
    await evebox.stop();
  }
  for (const pid of qemuPids(APP, DESKTOP)) process.kill(pid, "SIGKILL");
  http?.stop(true);
  cleanup(dataDir);
}, 60_000);

test("the app page: accelerator shown; the serial console opens in xterm.js (loaded on demand) and answers", async () => {
  const assets: string[] = [];
  page.on("request", (r) => {
    if (r.url().includes("/assets/")) assets.push(new URL(r.url()).pathname);
  });
  await page.goto(`${evebox.url}/apps/${APP}`);
  await page.locator("#app-detail h1", { hasText: "edge-router" }).waitFor({ timeout: 15_000 });
  // The accelerator appears once the app's status carries it (live updates): wait for it rather than race it.
  await waitFor("the accelerator on the app page", async () => (/^(TCG|KVM)/.test((await page.locator("#app-accelerator").textContent({ timeout: 1000 }).catch(() => "")) ?? "") ? true : undefined), 30_000);
  const open = page.locator("#console-open");
  await expect(open.textContent()).resolves.toBe("Open serial console");
  await open.waitFor({ state: "visible" });
  expect(assets.some((a) => a.includes("xterm"))).toBe(false);
  // Without remoteConsole there is no graphical console.
  expect(await page.locator("#app-display").count()).toBe(0);

  await open.click();
  const rows = page.locator("#console-terminal .xterm-rows");
  // The console's recent output comes first: the boot line is there although it was printed long before.
  await waitFor("the boot line in the terminal", async () => ((await rows.textContent())?.includes(GUEST_READY) ? true : undefined), 30_000);
  expect(assets.some((a) => /\/assets\/xterm-[^/]+\.js$/.test(a))).toBe(true);

  await page.locator("#console-terminal .xterm-helper-textarea").focus();
  await page.keyboard.type('echo "web""-$((40+2))"');
  await page.keyboard.press("Enter");
  await waitFor("the guest's answer", async () => ((await rows.textContent())?.includes("web-42") ? true : undefined), 20_000);
  await page.screenshot({ path: join(ARTIFACTS, "app-console-vm.png"), fullPage: true });

  await page.locator("#console-close").click();
  await page.locator("#console-open").waitFor({ timeout: 5_000 });
}, 120_000);

test("at 360 px the console fits the page", async () => {
  await page.setViewportSize({ width: 360, height: 800 });
  await page.locator("#console-open").click();
  await page.locator("#console-terminal .xterm-rows").waitFor({ timeout: 10_000 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: join(ARTIFACTS, "app-console-vm-360.png"), fullPage: true });
}, 30_000);

test("a VM with remoteConsole: the graphical console opens in noVNC (loaded on demand) and shows the VM's screen", async () => {
  await page.setViewportSize({ width: 1280, height: 900 });
  const assets: string[] = [];
  page.on("request", (r) => {
    if (r.url().includes("/assets/")) assets.push(new URL(r.url()).pathname);
  });
  await page.goto(`${evebox.url}/apps/${DESKTOP}`);
  await page.locator("#app-detail h1", { hasText: "hmi-desktop" }).waitFor({ timeout: 15_000 });
  await page.locator("#display-open").click();
  await page.locator("#display-close").waitFor({ timeout: 15_000 });
  await page.locator("#display-cad").waitFor({ timeout: 15_000 }); // shown once noVNC is connected
  expect(assets.some((a) => /\/assets\/rfb-[^/]+\.js$/.test(a))).toBe(true);
  const canvas = page.locator("#display-screen canvas");
  // The VGA text screen (the firmware's and the boot loader's lines): some pixels are not black.
  const lit = await waitFor(
    "something drawn on the VM's screen",
    async () => {
      const n = await canvas.evaluate((c: HTMLCanvasElement) => {
        const ctx = c.getContext("2d");
        if (!ctx || !c.width || !c.height) return 0;
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let lit = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i]! + d[i + 1]! + d[i + 2]! > 60) lit++;
        return lit;
      });
      return n > 100 ? n : undefined;
    },
    20_000,
  );
  expect(lit).toBeGreaterThan(100);
  await page.screenshot({ path: join(ARTIFACTS, "app-display-vm.png"), fullPage: true });
  await page.locator("#display-close").click();
  await page.locator("#display-open").waitFor({ timeout: 5_000 });
}, 60_000);
