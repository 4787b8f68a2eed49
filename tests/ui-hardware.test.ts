// The Hardware page and the app form's Adapters section in a real browser against the real binary. The device
// reads a fake sysfs tree (EVEBOX_SYSFS_ROOT, src/hardware/fake-sysfs.ts: a USB serial adapter and a dongle, a GPU
// with its audio function, NICs, CAN) so the page has USB, CAN and a GPU to show — this machine has none of them;
// tests/hardware.test.ts runs the same inventory against the real /sys.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { writeFakeSysfs } from "../src/hardware/fake-sysfs.ts";
import { launchBrowser } from "./support/browser.ts";
import { cleanup, type Evebox, ROOT, startEvebox, tempDataDir } from "./support/evebox.ts";

const ARTIFACTS = join(ROOT, "tests", ".artifacts");
const PASSWORD = "hardware-ui-secret-1";
let evebox: Evebox;
let dataDir: string;
let sys: string;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  sys = mkdtempSync(join(tmpdir(), "evebox-ui-sys-"));
  writeFakeSysfs(sys);
  dataDir = tempDataDir();
  // No app runtime: the page and the form are about the configuration and the inventory, nothing is run.
  evebox = await startEvebox({ dataDir, env: { EVEBOX_SYSFS_ROOT: sys, EVEBOX_APPS: "off" } });
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await evebox?.stop();
  cleanup(dataDir);
  rmSync(sys, { recursive: true, force: true });
});

async function api(method: "GET" | "PUT", path: string, body?: unknown) {
  const res = await page.request.fetch(`${evebox.url}/api/v1${path}`, { method, headers: { origin: evebox.url }, ...(body === undefined ? {} : { data: body }) });
  return { status: res.status(), body: await res.json().catch(() => null) };
}

const DEVICE_IO = [
  { ptype: "PhyIoCOM", phylabel: "RS-485", logicallabel: "COM1", assigngrp: "COM1", phyaddrs: { serial: "/dev/ttyS0" }, usage: "PhyIoUsageDedicated" },
  { ptype: "PhyIoUSB", phylabel: "USB 1:2", logicallabel: "ftdi", assigngrp: "USB1:2", phyaddrs: { usbaddr: "1:2" } },
  { ptype: "PhyIoUSB", phylabel: "USB 9:1", logicallabel: "ghost", assigngrp: "USB9:1", phyaddrs: { usbaddr: "9:1" } },
  { ptype: "PhyIoHDMI", phylabel: "GPU", logicallabel: "gpu", assigngrp: "gpu", phyaddrs: { pcilong: "0000:00:02.0" } },
  { ptype: "PhyIoNetEth", phylabel: "Port 0", logicallabel: "eth0", assigngrp: "eth0", phyaddrs: { ifname: "eth0" }, usage: "PhyIoUsageMgmtOnly" },
];

test("the Hardware page: each group with what its members are here, who uses it, and why one cannot be given", async () => {
  const setupUrl = evebox.output().match(/(http:\/\/\S+\/setup\?token=\S+)/)![1]!;
  await page.goto(setupUrl);
  await page.locator("#setup-password").fill(PASSWORD);
  await page.locator("#setup-confirm").fill(PASSWORD);
  await page.locator("#setup-submit").click();
  await page.locator("#dashboard").waitFor({ timeout: 10_000 });
  expect((await api("PUT", "/config", { deviceIoList: DEVICE_IO })).status).toBeLessThan(300);

  await page.locator('#nav a[href="/hardware"]').click();
  await page.locator("#bundles-table").waitFor({ timeout: 10_000 });
  const row = (g: string) => page.locator(`#bundles-table tr[data-group="${g}"]`);
  expect(await row("COM1").textContent()).toContain("serial port /dev/ttyS0 (I/O 0x3F8, IRQ 4)");
  expect(await row("COM1").locator(".badge").textContent()).toBe("free");
  expect(await row("USB1:2").textContent()).toContain("FTDI FT232R USB UART (0403:6001) at USB 1:2, serial A50285BI");
  expect(await row("USB9:1").textContent()).toContain("USB device 9:1 is not on this host");
  expect(await row("USB9:1").locator(".badge").textContent()).toBe("missing");
  // The GPU alone is refused: its audio function shares its IOMMU group.
  expect(await row("gpu").locator(".bundle-reason").textContent()).toContain("its IOMMU group 1 also holds 0000:00:02.1");
  expect(await row("eth0").locator(".bundle-used-by").textContent()).toBe("the device");
  expect(await row("eth0").locator(".badge").textContent()).toBe("kept by the device");
  expect(await page.locator("#usb-table").textContent()).toContain("0403:6001");
  expect(await page.locator('#pci-table tr[data-address="0000:00:02.0"]').textContent()).toContain("VGA compatible controller (GPU)");
  expect(await page.locator("#net-table").textContent()).toContain("CAN (vcan)");
  await page.screenshot({ path: join(ARTIFACTS, "hardware-page.png"), fullPage: true });
}, 60_000);

test("the app form offers only free, assignable groups; the app is given the one chosen, and the pages say it holds it", async () => {
  await page.locator('#nav a[href="/apps"]').click();
  await page.locator("#app-create").click();
  await page.locator("#app-name").fill("modbus-reader");
  await page.locator("#app-source-registry").check();
  await page.locator("#app-registry").fill("127.0.0.1:5000");
  await page.locator("#app-repository").fill("evebox/busybox:latest");
  await page.locator("#app-adapters .adapter-row").first().waitFor({ timeout: 10_000 });
  const check = (g: string) => page.locator(`#app-adapters .adapter-row[data-group="${g}"] .adapter-check`);
  expect(await check("COM1").isEnabled()).toBe(true);
  expect(await check("USB1:2").isEnabled()).toBe(true);
  expect(await check("eth0").isDisabled()).toBe(true);
  expect(await check("USB9:1").isDisabled()).toBe(true);
  expect(await page.locator('#app-adapters .adapter-row[data-group="eth0"] .adapter-why').textContent()).toContain("management port");
  await check("COM1").check();
  await page.screenshot({ path: join(ARTIFACTS, "hardware-app-form.png"), fullPage: true });
  await page.locator("#app-submit").click();
  await page.locator("#plan-apply").click();
  await page.locator("#plan").waitFor({ state: "detached", timeout: 10_000 });

  const config = (await api("GET", "/config")).body;
  const app = config.apps.find((a: { displayname: string }) => a.displayname === "modbus-reader");
  expect(app.adapters).toEqual([{ type: "PhyIoCOM", name: "COM1" }]);
  expect(config.deviceIoList).toHaveLength(DEVICE_IO.length);

  await page.locator('#nav a[href="/hardware"]').click();
  await page.locator('#bundles-table tr[data-group="COM1"] .bundle-used-by a').waitFor({ timeout: 10_000 });
  expect(await page.locator('#bundles-table tr[data-group="COM1"] .bundle-used-by').textContent()).toBe("modbus-reader");
  await page.locator('#bundles-table tr[data-group="COM1"] .bundle-used-by a').click();
  await page.locator("#app-hardware").waitFor({ timeout: 10_000 });
  expect(await page.locator("#app-hardware").textContent()).toContain("COM1: serial port /dev/ttyS0");
}, 60_000);
