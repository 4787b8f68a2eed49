// The Apps page in a real browser against the real binary: create a container app from a local registry (the
// plan first, then apply), see its row, change it on its own page (including a config changed meanwhile), check
// the small-screen layout, and delete it through the plan. The app must also reach RUNNING on the Docker engine and
// answer stop/start (EVEBOX_E2E_DOCKER=0 skips that part).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { SW_STATES } from "../src/model/swstate.ts";
import { launchBrowser } from "./support/browser.ts";
import { testDocker } from "./support/docker.ts";
import { cleanup, type Evebox, ROOT, startEvebox, tempDataDir } from "./support/evebox.ts";
import { startRegistryWithBusybox, type TestRegistry } from "./support/registry.ts";

const ARTIFACTS = join(ROOT, "tests", ".artifacts");
// npm test provisions dockerd, so the engine part always runs; EVEBOX_E2E_DOCKER=0 skips it for UI-only work.
const DOCKER_E2E = process.env.EVEBOX_E2E_DOCKER !== "0";
const APP = "hello-web";
const PASSWORD = "oil-rig-7-secret";

let evebox: Evebox;
let dataDir: string;
let browser: Browser;
let page: Page;
let registry: TestRegistry & { busyboxDigest: string };
let appUuid = "";
// The states an app passes through from its creation to RUNNING, or ends in when that fails.
const SETUP_STATES: string[] = SW_STATES.slice(0, SW_STATES.indexOf("RUNNING") + 1).concat(["ERROR", "BROKEN"]);

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  registry = await startRegistryWithBusybox();
  dataDir = tempDataDir();
  evebox = await startEvebox({ dataDir });
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await evebox?.stop();
  // Workloads outlive evebox by design: remove whatever container it made for this test's app.
  if (appUuid) {
    const docker = testDocker();
    const all = await docker.listContainers({ all: true }).catch(() => []);
    const ours = all.filter((c) => Object.values(c.Labels ?? {}).includes(appUuid));
    await Promise.all(ours.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {})));
  }
  await registry?.stop();
  cleanup(dataDir);
});

const row = () => page.locator(`tr[data-app="${APP}"]`);

async function api(method: "GET" | "PUT", path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await page.request.fetch(`${evebox.url}/api/v1${path}`, {
    method,
    headers: { origin: evebox.url, ...headers },
    ...(body === undefined ? {} : { data: body }),
  });
  return { status: res.status(), headers: res.headers(), body: await res.json().catch(() => null) };
}

test("set up, then the Apps page is empty and offers to create one", async () => {
  const setupUrl = evebox.output().match(/(http:\/\/\S+\/setup\?token=\S+)/)![1]!;
  await page.goto(setupUrl);
  await page.locator("#setup-password").fill(PASSWORD);
  await page.locator("#setup-confirm").fill(PASSWORD);
  await page.locator("#setup-submit").click();
  await page.locator("#dashboard").waitFor({ timeout: 10_000 });
  await page.locator('#nav a[href="/apps"]').click();
  await page.locator("#apps").waitFor({ timeout: 10_000 });
  expect(new URL(page.url()).pathname).toBe("/apps");
  // The list loads after the page shows ("Loading apps…"): wait for its answer, not for the first paint.
  await page.locator("#apps", { hasText: "No apps yet" }).waitFor({ timeout: 10_000 });
  expect(await page.locator("#app-create").isEnabled()).toBe(true);
}, 60_000);

test("the form checks its fields and shows each problem next to its field", async () => {
  await page.locator("#app-create").click();
  await page.locator("#app-name").fill("-not a name");
  await page.locator("#app-repository").fill("");
  await page.locator("#app-memory").fill("2");
  await page.locator("#app-submit").click();
  await page.locator("#app-form-error").waitFor({ timeout: 5_000 });
  expect(await page.locator("#app-name").getAttribute("aria-invalid")).toBe("true");
  expect(await page.locator("#app-name-error").textContent()).toContain("letters, digits");
  expect(await page.locator("#app-memory").getAttribute("aria-invalid")).toBe("true");
  expect(await page.locator("#app-repository").getAttribute("aria-invalid")).toBe("true");
  // The first faulty field has the focus.
  expect(await page.evaluate(() => document.activeElement?.id)).toBe("app-name");
  expect(await page.locator("#plan").count()).toBe(0);
  await page.screenshot({ path: join(ARTIFACTS, "apps-form-problems.png"), fullPage: true });
  await page.locator("#app-cancel").click();
  await page.locator("#app-form").waitFor({ state: "detached" });
}, 30_000);

test("an image tarball URL is planned as an http datastore and a content tree; cancel changes nothing", async () => {
  await page.locator("#app-create").click();
  await page.locator("#app-name").fill("from-url");
  await page.locator("#app-source-url").check();
  expect(await page.locator("#app-registry").count()).toBe(0);
  await page.locator("#app-url").fill("http://127.0.0.1:8000/images/app.tar");
  await page.locator("#app-sha256").fill("ab".repeat(32));
  await page.locator("#app-submit").click();
  await page.locator("#plan").waitFor({ timeout: 10_000 });
  const steps = (await page.locator("#plan .plan-step").allTextContents()).join("\n");
  expect(steps).toContain("Add datastore http://127.0.0.1:8000");
  expect(steps).toContain("app.tar");
  await page.locator("#plan-cancel").click();
  await page.locator("#plan").waitFor({ state: "detached" });
  await page.locator("#app-cancel").click();
  await page.locator("#app-form").waitFor({ state: "detached" });
  // The focus goes back to the button that opened the form (after the dialog's close has rendered).
  await page.waitForFunction(() => document.activeElement?.id === "app-create", null, { timeout: 5_000 }).catch(() => {});
  expect(await page.evaluate(() => document.activeElement?.id)).toBe("app-create");
  expect((await api("GET", "/config")).status).toBe(404);
}, 30_000);

test("create a container app from the local registry: the plan first, then apply, then its row", async () => {
  await page.locator("#app-create").click();
  await page.locator("#app-name").fill(APP);
  await page.locator("#app-source-registry").check();
  await page.locator("#app-registry").fill(registry.host);
  await page.locator("#app-repository").fill("evebox/busybox:latest");
  await page.locator("#app-sha256").fill(registry.busyboxDigest);
  await page.locator("#app-memory").fill("64");
  await page.locator("#app-vcpus").fill("1");
  await page.locator("#env-add").click();
  await page.locator(".env-row").nth(0).locator(".env-key").fill("GREETING");
  await page.locator(".env-row").nth(0).locator(".env-value").fill("hello from evebox");
  await page.locator("#env-add").click();
  await page.locator(".env-row").nth(1).locator(".env-key").fill("EVE_ECO_CMD");
  await page.locator(".env-row").nth(1).locator(".env-value").fill("sleep 3600");
  await page.locator("#volume-add").click();
  await page.locator("#volume-size-0").fill("16");
  await page.locator("#volume-dir-0").fill("/data");
  await page.screenshot({ path: join(ARTIFACTS, "apps-create-form.png"), fullPage: true });

  // Review: the plan lists every object the app needs; nothing is stored yet.
  await page.locator("#app-submit").click();
  await page.locator("#plan").waitFor({ timeout: 10_000 });
  const steps = await page.locator("#plan .plan-step").allTextContents();
  expect(steps.length).toBe(5);
  expect(steps[0]).toContain(`Add app ${APP}`);
  expect(steps.join("\n")).toContain("datastore docker://" + registry.host);
  expect(steps.join("\n")).toContain("evebox/busybox:latest");
  expect(steps.filter((s) => s.startsWith("Add volume"))).toHaveLength(2);
  expect(await page.evaluate(() => (document.querySelector("#plan") as HTMLDialogElement).open)).toBe(true);
  await page.screenshot({ path: join(ARTIFACTS, "apps-plan.png") });
  expect((await api("GET", "/config")).status).toBe(404);

  // Cancel keeps the form (Escape, like the button); then review again and apply.
  await page.keyboard.press("Escape");
  await page.locator("#plan").waitFor({ state: "detached" });
  expect(await page.locator("#app-name").inputValue()).toBe(APP);
  await page.locator("#app-submit").click();
  await page.locator("#plan-apply").click();
  await page.locator("#plan").waitFor({ state: "detached", timeout: 10_000 });

  await row().waitFor({ timeout: 15_000 });
  // Any state on the way from INITIAL to RUNNING (or a failure): on a slow machine the row can first show a
  // state between two steps (LOADED, CREATED_VOLUME, INSTALLED...), which an earlier list of words missed.
  const state = (await row().locator(".app-state .state-name").textContent())!.trim();
  expect(SETUP_STATES).toContain(state);
  expect(await row().locator(".app-image").textContent()).toContain(`${registry.host}/evebox/busybox:latest`);
  expect(await page.locator("#apps .status-line").textContent()).toContain(`${APP} was added`);
  await page.screenshot({ path: join(ARTIFACTS, "apps-list.png"), fullPage: true });

  // What the device stored follows EVE's conventions.
  const config = (await api("GET", "/config")).body;
  const app = config.apps.find((a: { displayname: string }) => a.displayname === APP);
  appUuid = app.uuidandversion.uuid;
  expect(app.activate).toBe(true);
  expect(app.fixedresources).toMatchObject({ memory: 64 * 1024, maxmem: 64 * 1024, vcpus: 1 });
  expect(Buffer.from(app.userData, "base64").toString()).toBe("GREETING=hello from evebox\nEVE_ECO_CMD=sleep 3600\n");
  expect(app.volumeRefList[1].mountDir).toBe("/data");
  expect(config.datastores[0]).toMatchObject({ dType: "DsContainerRegistry", fqdn: `docker://${registry.host}` });
  expect(config.contentInfo[0]).toMatchObject({ URL: "evebox/busybox:latest", iformat: "CONTAINER", sha256: registry.busyboxDigest.replace("sha256:", "") });
}, 60_000);

test.skipIf(!DOCKER_E2E)("the app reaches RUNNING on the engine, and stop / start work", async () => {
  await page.waitForFunction(
    (name) => document.querySelector(`tr[data-app="${name}"] .app-state`)?.textContent?.includes("RUNNING"),
    APP,
    { timeout: 60_000, polling: 250 },
  );
  await page.screenshot({ path: join(ARTIFACTS, "apps-running.png"), fullPage: true });
  await row().locator('button[data-action="stop"]').click();
  await page.waitForFunction((name) => document.querySelector(`tr[data-app="${name}"] .app-state`)?.textContent?.includes("HALTED"), APP, {
    timeout: 30_000,
  });
  await row().locator('button[data-action="start"]').click();
  await page.waitForFunction((name) => document.querySelector(`tr[data-app="${name}"] .app-state`)?.textContent?.includes("RUNNING"), APP, {
    timeout: 60_000,
  });
}, 180_000);

test("purge asks first and names the volume whose data is lost", async () => {
  await row().locator('button[data-action="purge"]').click();
  await page.locator("#purge").waitFor({ timeout: 5_000 });
  const text = (await page.locator("#purge").textContent())!;
  expect(text).toContain(`${APP}-data`);
  expect(text).toContain("/data");
  expect(await page.evaluate(() => document.activeElement?.id)).toBe("purge-cancel");
  await page.locator("#purge-cancel").click();
  await page.locator("#purge").waitFor({ state: "detached" });
}, 30_000);

test("the Storage page lists the app's image and its volumes with the app that mounts them", async () => {
  await page.goto(`${evebox.url}/storage`);
  const volume = page.locator(`tr[data-volume="${APP}-data"]`);
  await volume.waitFor({ timeout: 10_000 });
  expect(await volume.textContent()).toContain(APP);
  expect(await volume.locator("td").nth(2).textContent()).toBe("blank");
  const trees = page.locator("#content-trees tbody tr");
  expect(await trees.count()).toBe(1);
  if (DOCKER_E2E) {
    await page.waitForFunction(() => document.querySelector("#content-trees tbody tr .badge")?.textContent === "LOADED", undefined, { timeout: 30_000, polling: 250 });
    expect(await trees.first().textContent()).toContain("evebox/busybox");
  }
  await page.screenshot({ path: join(ARTIFACTS, "storage.png"), fullPage: true });
  await volume.locator("a").first().click();
  await page.waitForURL(`**/apps/${appUuid}`, { timeout: 10_000 });
  await page.goto(`${evebox.url}/apps`);
  await row().waitFor({ timeout: 10_000 });
}, 60_000);

test("change the app on its page: the plan explains the change, and a config changed meanwhile is re-planned", async () => {
  await row().locator(".app-name a").click();
  await page.locator("#app-detail").waitFor({ timeout: 10_000 });
  expect(new URL(page.url()).pathname).toBe(`/apps/${appUuid}`);
  await page.locator("#app-logs").waitFor();
  expect(await page.locator("#logs-follow").isChecked()).toBe(true);
  await page.locator("#app-edit").click();
  await page.locator("#app-memory").fill("96");
  await page.locator(".env-row").nth(0).locator(".env-value").fill("changed");
  await page.locator("#app-submit").click();
  await page.locator("#plan").waitFor({ timeout: 10_000 });
  const plan = (await page.locator("#plan").textContent())!;
  expect(plan).toContain(`Change app ${APP}`);
  expect(plan).toContain("memory 64 MiB → 96 MiB");
  expect(plan).toContain("environment: GREETING changed");
  expect(plan).not.toContain("changed\n"); // values are not shown

  // Someone else changes the config before Apply: the device answers 412 and the plan is made again.
  const current = await api("GET", "/config");
  // (and hands the app a patch envelope, which its page then lists)
  const envelope = { uuid: "5e000000-0000-4000-8000-0000000000aa", version: "3", displayName: "site settings", action: "ACTIVATE", appInstIdsAllowed: [appUuid], artifacts: [{ inline: { fileNameToUse: "settings.yml", base64Data: btoa("k: v\n") } }] };
  const other = { ...current.body, configItems: [{ key: "timer.config.interval", value: "120" }], patchEnvelopes: [envelope] };
  expect((await api("PUT", "/config", other, { "If-Match": current.headers.etag! })).status).toBe(201);
  await page.locator("#plan-apply").click();
  await page.locator("#plan .notice").waitFor({ timeout: 10_000 });
  expect(await page.locator("#plan .notice").textContent()).toContain("changed while you were reviewing");
  await page.screenshot({ path: join(ARTIFACTS, "apps-plan-replanned.png") });
  await page.locator("#plan-apply").click();
  await page.locator("#plan").waitFor({ state: "detached", timeout: 10_000 });
  await page.waitForFunction(() => document.querySelector("#app-facts")?.textContent?.includes("96 MiB memory"), undefined, { timeout: 10_000 });

  const config = (await api("GET", "/config")).body;
  const app = config.apps.find((a: { displayname: string }) => a.displayname === APP);
  expect(app.uuidandversion.version).toBe("2");
  expect(app.fixedresources.memory).toBe(96 * 1024);
  expect(config.configItems).toEqual([{ key: "timer.config.interval", value: "120" }]); // the other change is kept
  expect(config.patchEnvelopes.map((p: { uuid: string }) => p.uuid)).toEqual([envelope.uuid]);
  const envelopes = (await page.locator("#app-patch-envelopes").textContent())!;
  expect(envelopes).toContain("site settings · version 3 · served to the app");
  expect(envelopes).toContain("settings.yml");
  await page.screenshot({ path: join(ARTIFACTS, "app-detail.png"), fullPage: true });
}, 60_000);

test("at 360 px wide the list fits without sideways scrolling", async () => {
  await page.setViewportSize({ width: 360, height: 740 });
  await page.goto(`${evebox.url}/apps`);
  await row().waitFor({ timeout: 10_000 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: join(ARTIFACTS, "apps-360.png"), fullPage: true });
  // The dialogs fit too.
  await row().locator('button[data-action="purge"]').click();
  await page.locator("#purge").waitFor({ timeout: 5_000 });
  const box = (await page.locator("#purge").boundingBox())!;
  expect(box.x).toBeGreaterThanOrEqual(0);
  expect(box.x + box.width).toBeLessThanOrEqual(360);
  await page.screenshot({ path: join(ARTIFACTS, "apps-360-purge.png") });
  await page.keyboard.press("Escape");
  await page.locator("#purge").waitFor({ state: "detached" });
  await page.setViewportSize({ width: 1280, height: 900 });
}, 30_000);

test("delete goes through the plan too, and the row goes away", async () => {
  await row().locator('button[data-action="delete"]').click();
  await page.locator("#plan").waitFor({ timeout: 10_000 });
  const steps = await page.locator("#plan .plan-step").allTextContents();
  expect(steps[0]).toContain(`Remove app ${APP}`);
  expect(steps.join("\n")).toContain("Remove datastore");
  expect(steps.filter((s) => s.startsWith("Remove volume"))).toHaveLength(2);
  expect(await page.locator("#plan-apply").textContent()).toBe("Delete");
  await page.locator("#plan-apply").click();
  await page.locator("#plan").waitFor({ state: "detached", timeout: 10_000 });
  await row().waitFor({ state: "detached", timeout: 60_000 });
  const config = (await api("GET", "/config")).body;
  expect(config.apps ?? []).toEqual([]);
  expect(config.volumes ?? []).toEqual([]);
  expect(config.contentInfo ?? []).toEqual([]);
  expect(config.datastores ?? []).toEqual([]);
}, 90_000);

test("on a device managed by a controller, creating is disabled with the reason", async () => {
  const managedDir = tempDataDir();
  const managed = await startEvebox({ dataDir: managedDir, args: ["--controller", "https://127.0.0.1:9"], env: { EVEBOX_APPS: "off" } });
  const other = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  try {
    await other.goto(managed.output().match(/(http:\/\/\S+\/setup\?token=\S+)/)![1]!);
    await other.locator("#setup-password").fill(PASSWORD);
    await other.locator("#setup-confirm").fill(PASSWORD);
    await other.locator("#setup-submit").click();
    await other.locator("#dashboard").waitFor({ timeout: 10_000 });
    await other.goto(`${managed.url}/apps`);
    await other.locator("#apps-managed").waitFor({ timeout: 10_000 });
    expect(await other.locator("#apps-managed").textContent()).toContain("managed by its controller");
    expect(await other.locator("#app-create").isDisabled()).toBe(true);
    await other.screenshot({ path: join(ARTIFACTS, "apps-managed.png") });
  } finally {
    await other.close();
    await managed.stop();
    cleanup(managedDir);
  }
}, 60_000);
