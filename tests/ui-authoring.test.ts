// A new operator authors everything from the console, in a real browser against the real binary, on real kernel
// networking inside namespaces, real dnsmasq, real Docker and real QEMU (TCG here):
//
//   [uplink ns]  lan0 203.0.113.1/24 (the LAN the operator's PC and the device's uplink share)
//        │ u-dev
//        │ uplink0 203.0.113.2/24 (default route)
//   [device ns]  evebox (the built binary). The browser reaches the console through a relay (host TCP → unix
//                socket → the namespace's console port). No datastore is reachable: the images are uploaded.
//
// The operator makes a Local network from the Networks page (a subnet overlapping the uplink is refused at its
// field first), uploads the test guest's qcow2 (tests/support/guest) and the busybox image's `docker save`
// tarball on the Storage page, makes a VM on the network from the uploaded qcow2 (memory above the device's
// refused at the field first) and sees it RUNNING with its boot line in the serial console, a container from the
// uploaded tarball with a port map, reached from the LAN through the device's port (the same port mapped again is
// refused at the field), cannot delete the network while apps are on it, checks the 360 px layout, and deletes
// everything. Nothing changes on a refusal or a Cancel.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { isOurQemu } from "../src/runtime/vms/index.ts";
import { launchBrowser } from "./support/browser.ts";
import { busyboxArchive, testDocker } from "./support/docker.ts";
import { ROOT } from "./support/evebox.ts";
import { ensureGuestImage, GUEST_READY } from "./support/guest/image.ts";
import { type NsDevice, startDeviceIn, unixApi } from "./support/netdevice.ts";
import { busybox, type Netns, uplinkPair } from "./support/netns.ts";
import { relay } from "./support/relay.ts";
import { waitFor } from "./support/wait.ts";

const ARTIFACTS = join(ROOT, "tests", ".artifacts");
const PASSWORD = "plant-floor-7-secret";
const SERVE = "sh -c 'trap \"exit 0\" TERM; echo hello-from-app > /tmp/index.html; httpd -p 80 -h /tmp; sleep 3600 & wait'";

let up: Netns;
let dev: Netns;
let dataDir: string;
let disk = "";
let tarball = "";
let evebox: NsDevice;
let hostRelay: Server;
let url = "";
let browser: Browser;
let page: Page;

const api = (method: string, path: string, body?: unknown) => unixApi(evebox.sock, method, path, body);
const status = async () => (await api("GET", "/api/v1/status")).body;
const configHash = async () => (await status())?.device?.configHash ?? null;
const appNamed = async (name: string) => ((await status())?.apps ?? []).find((a: any) => a.name === name);
const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `authoring-${name}.png`), fullPage: true });

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const image = await ensureGuestImage();
  ({ up, dev } = await uplinkPair("aup", "adev"));

  dataDir = mkdtempSync(join(tmpdir(), "evebox-authoring-"));
  const files = `${dataDir}-files`;
  mkdirSync(files, { recursive: true });
  disk = join(files, "guest.qcow2");
  copyFileSync(image.disk, disk);
  tarball = join(files, "busybox.tar");
  writeFileSync(tarball, (await busyboxArchive()).bytes);

  evebox = await startDeviceIn(dev, dataDir);
  // The console inside the namespace, reached from here through a unix socket (the file is shared, loopbacks are not).
  const inner = evebox.out().match(/console on http:\/\/(127\.0\.0\.1:\d+)/)![1]!;
  const sock = `${dataDir}-console.sock`;
  dev.spawn([process.execPath, join(import.meta.dir, "support", "relay.ts"), sock, inner]);
  await waitFor("the console relay", () => existsSync(sock), 10_000);
  hostRelay = await relay({ host: "127.0.0.1", port: 0 }, { path: sock });
  url = `http://127.0.0.1:${(hostRelay.address() as { port: number }).port}`;

  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  let uuids: string[] = [];
  if (evebox) {
    uuids = ((await status().catch(() => null))?.apps ?? []).map((a: any) => a.uuid);
    await api("PUT", "/api/v1/config", {}).catch(() => undefined);
    await waitFor("the apps gone", async () => ((await status())?.apps?.length ? undefined : true), 60_000).catch(() => undefined);
    for (const uuid of uuids) {
      const pidfile = join(dataDir, "run", "vms", uuid, "qemu.pid");
      const pid = existsSync(pidfile) ? Number(readFileSync(pidfile, "utf8").trim()) : 0;
      if (pid && isOurQemu(pid, uuid)) process.kill(pid, "SIGKILL");
    }
    evebox.proc.kill("SIGTERM");
    await evebox.proc.exited;
  }
  // Workloads outlive evebox by design: whatever container or QEMU it left for this test's apps is ended here.
  const docker = testDocker();
  for (const c of await docker.listContainers({ all: true }).catch(() => [])) {
    if (Object.values(c.Labels ?? {}).some((v) => uuids.includes(v))) {
      await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {});
    }
  }
  hostRelay?.close();
  await dev?.destroy();
  await up?.destroy();
  for (const d of [dataDir, `${dataDir}-files`, `${dataDir}-console.sock`]) if (dataDir) rmSync(d, { recursive: true, force: true });
}, 120_000);

async function applyPlan(): Promise<void> {
  await page.locator("#plan").waitFor({ timeout: 20_000 });
  await page.locator("#plan-apply").click();
  await page.locator("#plan").waitFor({ state: "detached", timeout: 20_000 });
}

test("set up, then a Local network from the Networks page: a subnet overlapping the uplink is refused at its field, changing nothing", async () => {
  const token = evebox.out().match(/setup\?token=([A-Za-z0-9_-]+)/)![1]!;
  await page.goto(`${url}/setup?token=${token}`);
  await page.locator("#setup-password").fill(PASSWORD);
  await page.locator("#setup-confirm").fill(PASSWORD);
  await page.locator("#setup-submit").click();
  await page.locator("#dashboard").waitFor({ timeout: 10_000 });
  await page.locator('#nav a[href="/networks"]').click();
  await page.locator("#networks").waitFor();
  await page.locator("#ni-create:not([disabled])").click();
  await page.locator("#ni-name").fill("plant");
  // The uplink's own network: the device's validation, run in the browser, says so at the field.
  await page.locator("#ni-subnet").fill("203.0.113.0/25");
  const before = await configHash();
  await page.locator("#ni-submit").click();
  await page.locator("#ni-subnet-error").waitFor({ timeout: 5_000 });
  expect(await page.locator("#ni-subnet-error").textContent()).toContain("overlaps the device's own network 203.0.113.0/24");
  expect(await page.locator("#ni-subnet").getAttribute("aria-invalid")).toBe("true");
  expect(await page.locator("#plan").count()).toBe(0);
  expect(await configHash()).toBe(before);
  await shot("network-overlap");

  await page.locator("#ni-subnet").fill("198.51.100.0/24");
  await page.locator("#ni-dns").fill("203.0.113.1");
  await page.locator("#ni-dns-add").click();
  await page.locator("#ni-dns-host-0").fill("historian.plant");
  await page.locator("#ni-dns-addrs-0").fill("198.51.100.200");
  await page.locator("#ni-submit").click();
  await page.locator("#plan").waitFor({ timeout: 20_000 });
  expect(await page.locator('#plan .plan-step[data-kind="networkInstance"][data-action="add"]').count()).toBe(1);
  // Cancel changes nothing.
  await page.locator("#plan-cancel").click();
  await page.locator("#plan").waitFor({ state: "detached" });
  expect(await configHash()).toBe(before);
  await page.locator("#ni-submit").click();
  await applyPlan();
  const card = page.locator('section.network[data-network="plant"]');
  await card.locator(".badge", { hasText: "ONLINE" }).waitFor({ timeout: 30_000 });
  expect(await card.textContent()).toContain("198.51.100.0/24");
  expect(await card.locator("dd.mono").first().textContent()).toMatch(/^eb[0-9a-f]{12}$/);
  const ni = (await api("GET", "/api/v1/networks")).body.instances.find((n: any) => n.name === "plant");
  expect(ni).toMatchObject({ state: "ONLINE", subnet: "198.51.100.0/24" });
  await shot("network-created");
}, 90_000);

test("the test guest's qcow2 and the busybox tarball are uploaded on the Storage page", async () => {
  await page.locator('#nav a[href="/storage"]').click();
  for (const [file, name] of [
    [disk, "guest disk"],
    [tarball, "busybox"],
  ] as const) {
    await page.locator("#image-file").setInputFiles(file);
    await page.locator("#image-name").fill(name);
    await page.locator("#image-upload").click();
    expect(await page.locator("#image-uploaded").textContent({ timeout: 60_000 })).toContain(name);
  }
  const images = (await api("GET", "/api/v1/images")).body.images;
  expect(images.map((i: any) => [i.name, i.kind]).sort()).toEqual([
    ["busybox", "container"],
    ["guest disk", "disk"],
  ]);
}, 120_000);

test("a VM from the uploaded qcow2 on that network: memory above the device's is refused at its field; then it runs and its serial console shows it booted", async () => {
  await page.locator('#nav a[href="/apps"]').click();
  await page.locator("#app-create:not([disabled])").click();
  await page.locator("#app-kind-vm").check();
  await page.locator("#app-name").fill("vm1");
  await page.locator("#vm-source-imported").check();
  await page.locator("#vm-imported").selectOption({ index: 1 });
  expect(await page.locator("#vm-imported option:checked").textContent()).toContain("guest disk");
  await page.locator("#app-memory").fill(String(512 * 1024));
  await page.locator("#app-vcpus").fill("1");
  await page.locator("#ifc-add").click();
  await page.locator("#ifc-network-0").selectOption({ label: "plant (Local, 198.51.100.0/24)" });
  const before = await configHash();
  await page.locator("#app-submit").click();
  await page.locator("#app-memory-error").waitFor({ timeout: 5_000 });
  expect(await page.locator("#app-memory-error").textContent()).toContain("is more than the device has");
  expect(await page.locator("#plan").count()).toBe(0);
  expect(await configHash()).toBe(before);
  await shot("vm-memory");

  await page.locator("#app-memory").fill("128");
  await page.locator("#app-submit").click();
  await applyPlan();
  const row = page.locator('tr[data-app="vm1"]');
  await row.waitFor({ timeout: 10_000 });
  await row.locator(".app-state", { hasText: "RUNNING" }).waitFor({ timeout: 150_000 });
  await row.locator("a").first().click();
  await page.locator("#app-detail").waitFor();
  // Under TCG on a loaded machine the guest can take a minute or two to boot.
  // The console replays the serial history on connect: a console whose connection was lost is opened again.
  const ready = page.locator("#console-terminal .xterm-rows", { hasText: GUEST_READY });
  await waitFor("the guest's boot line in the console", async () => {
    if (await ready.count()) return true;
    if (await page.locator("#console-close").count()) await page.locator("#console-close").click({ timeout: 5_000 });
    await page.locator("#console-open").click({ timeout: 10_000 });
    return (await ready.waitFor({ timeout: 30_000 }).then(() => true).catch(() => false)) || undefined;
  }, { timeoutMs: 180_000, everyMs: 10 })
    .catch(async (e) => {
      await shot("vm-console-failed");
      const rows = await page.locator("#app-console").textContent().catch(() => "");
      throw new Error(`${(e as Error).message}\nconsole: ${rows}\nstatus: ${JSON.stringify(await appNamed("vm1"))}\n${evebox.out().slice(-3000)}`);
    });
  await shot("vm-console");
  const vm = await appNamed("vm1");
  expect(vm.state).toBe("RUNNING");
  const ni = (await api("GET", "/api/v1/networks")).body.instances.find((n: any) => n.name === "plant");
  expect(ni.interfaces.map((i: any) => i.appName)).toContain("vm1");
  await page.locator("#console-close").click();
}, 300_000);

test("the VM's settings change on its page: the plan says what restarts it, Cancel changes nothing, a new memory size restarts it", async () => {
  const vm = await appNamed("vm1");
  await page.goto(`${url}/apps/${vm.uuid}`);
  await page.locator("#app-edit").click();
  expect(await page.locator("#vm-settings .restart-note").count()).toBeGreaterThan(0);
  // The start delay applies without a restart.
  await page.locator("#vm-start-delay").fill("2");
  await page.locator("#app-submit").click();
  await page.locator("#plan").waitFor({ timeout: 20_000 });
  expect(await page.locator("#plan").textContent()).toContain("applied without restarting the VM");
  const before = await configHash();
  await page.locator("#plan-cancel").click();
  await page.locator("#plan").waitFor({ state: "detached" });
  expect(await configHash()).toBe(before);
  await page.locator("#vm-start-delay").fill("0");
  await page.locator("#app-memory").fill("160");
  await page.locator("#app-submit").click();
  await page.locator("#plan").waitFor({ timeout: 20_000 });
  expect(await page.locator("#plan").textContent()).toContain("the VM is restarted to apply its new memory");
  const pid = (await appNamed("vm1")).pid;
  expect(pid).toBeGreaterThan(0);
  await applyPlan();
  // Restarted: a new QEMU process, running again.
  await waitFor("vm1 restarted with 160 MiB", async () => {
    const a = await appNamed("vm1");
    return a?.state === "RUNNING" && a.pid && a.pid !== pid ? true : undefined;
  }, 150_000);
  const doc = (await api("GET", "/api/v1/config")).body;
  expect(Number(doc.apps.find((x: any) => x.displayname === "vm1").fixedresources.memory)).toBe(160 * 1024);
  await shot("vm-changed");
}, 180_000);

test("a container from the uploaded tarball with a port map is reached from the LAN through the device's port", async () => {
  await page.locator('#nav a[href="/apps"]').click();
  await page.locator("#app-create:not([disabled])").click();
  await page.locator("#app-kind-container").check();
  await page.locator("#app-name").fill("web-pm");
  await page.locator("#app-source-imported").check();
  await page.locator("#app-imported").selectOption({ index: 1 });
  await page.locator("#app-memory").fill("64");
  await page.locator("#env-add").click();
  await page.locator("#env-key-0").fill("EVE_ECO_CMD");
  await page.locator("#env-value-0").fill(SERVE);
  await page.locator("#ifc-add").click();
  await page.locator("#ifc-network-0").selectOption({ label: "plant (Local, 198.51.100.0/24)" });
  await page.locator("#pm-add-0").click();
  await page.locator("#pm-device-0-0").fill("8080");
  await page.locator("#pm-app-0-0").fill("80");
  await page.locator("#app-submit").click();
  await applyPlan();
  await page.locator('tr[data-app="web-pm"] .app-state', { hasText: "RUNNING" }).waitFor({ timeout: 120_000 });
  const body = await waitFor("the app through the device's port 8080", async () => {
    const r = await up.exec([busybox(), "timeout", "5", busybox(), "wget", "-q", "-O", "-", "http://203.0.113.2:8080/"], { ok: [0, 1, 124] });
    return r.out.includes("hello-from-app") ? r.out : undefined;
  }, 60_000);
  expect(body).toContain("hello-from-app");
  await shot("container-portmap");
}, 180_000);

test("the same device port mapped again, and an address outside the subnet, are refused at their fields, changing nothing", async () => {
  await page.locator("#app-create:not([disabled])").click();
  await page.locator("#app-name").fill("web-two");
  await page.locator("#app-source-imported").check();
  await page.locator("#app-imported").selectOption({ index: 1 });
  await page.locator("#ifc-add").click();
  await page.locator("#ifc-network-0").selectOption({ label: "plant (Local, 198.51.100.0/24)" });
  await page.locator("#ifc-addr-0").fill("10.99.0.5");
  await page.locator("#pm-add-0").click();
  await page.locator("#pm-device-0-0").fill("8080");
  await page.locator("#pm-app-0-0").fill("80");
  const before = await configHash();
  await page.locator("#app-submit").click();
  await page.locator("#pm-device-0-0-error").waitFor({ timeout: 5_000 });
  expect(await page.locator("#pm-device-0-0-error").textContent()).toContain('port 8080/tcp of uplink is already mapped by app "web-pm"');
  expect(await page.locator("#ifc-addr-0-error").textContent()).toContain('10.99.0.5 is outside the subnet 198.51.100.0/24 of network instance "plant"');
  expect(await page.locator("#pm-device-0-0").getAttribute("aria-invalid")).toBe("true");
  expect(await page.locator("#plan").count()).toBe(0);
  expect(await configHash()).toBe(before);
  await shot("portmap-conflict");
  await page.locator("#app-cancel").click();
  expect(await configHash()).toBe(before);
}, 60_000);

test("the network cannot be deleted while apps are on it: the apps are named", async () => {
  await page.locator('#nav a[href="/networks"]').click();
  const card = page.locator('section.network[data-network="plant"]');
  await card.locator(".ni-delete").click();
  await page.locator("#networks-error").waitFor({ timeout: 5_000 });
  const text = await page.locator("#networks-error").textContent();
  expect(text).toContain("vm1");
  expect(text).toContain("web-pm");
  expect(await page.locator("#plan").count()).toBe(0);
  // The device refuses such a document too, naming the app.
  const cfg = (await api("GET", "/api/v1/config")).body;
  const refused = await api("PUT", "/api/v1/config?dryRun=1", { ...cfg, networkInstances: [] });
  expect(refused.status).toBe(400);
  expect(JSON.stringify(refused.body.problems)).toContain('app \\"vm1\\" is on network instance');
}, 30_000);

test("at 360 px the Networks page and the app form stay usable (no sideways scrolling)", async () => {
  await page.setViewportSize({ width: 360, height: 800 });
  const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  await page.locator('section.network[data-network="plant"]').waitFor();
  expect(await overflow()).toBeLessThanOrEqual(0);
  await shot("networks-360");
  await page.goto(`${url}/apps`);
  await page.locator("#app-create:not([disabled])").click();
  await page.locator("#app-kind-vm").check();
  await page.locator("#ifc-add").click();
  await page.locator("#pm-add-0").click();
  expect(await overflow()).toBeLessThanOrEqual(0);
  expect(await page.locator("#app-submit").isVisible()).toBe(true);
  await shot("app-form-360");
  await page.locator("#app-cancel").click();
  await page.setViewportSize({ width: 1280, height: 900 });
}, 30_000);

test("delete everything: both apps, then the network, each through its plan, then the uploaded images", async () => {
  for (const name of ["web-pm", "vm1"]) {
    await page.goto(`${url}/apps`);
    const row = page.locator(`tr[data-app="${name}"]`);
    await row.waitFor();
    await row.locator('button[data-action="delete"]').click();
    await applyPlan();
    await row.waitFor({ state: "detached", timeout: 60_000 });
  }
  await waitFor("no apps left", async () => (((await status())?.apps ?? []).length === 0 ? true : undefined), 60_000);
  await page.locator('#nav a[href="/networks"]').click();
  const card = page.locator('section.network[data-network="plant"]');
  await card.locator(".ni-delete").click();
  await applyPlan();
  await card.waitFor({ state: "detached", timeout: 30_000 });
  const doc = (await api("GET", "/api/v1/config")).body;
  expect(doc.apps ?? []).toEqual([]);
  expect(doc.networkInstances ?? []).toEqual([]);
  expect(doc.volumes ?? []).toEqual([]);
  // And the uploaded images, now that nothing uses them.
  await page.locator('#nav a[href="/storage"]').click();
  for (const name of ["guest disk", "busybox"]) {
    const row = page.locator(`#imported-images tr[data-image="${name}"]`);
    await row.locator("button", { hasText: "Delete" }).click();
    await page.locator("#image-delete-confirm").click();
    await row.waitFor({ state: "detached", timeout: 20_000 });
  }
  expect((await api("GET", "/api/v1/images")).body.images).toEqual([]);
  await shot("deleted");
}, 120_000);
