// Users, roles and the second factor in a real browser on the compiled binary: an admin adds users on the Users
// page; a user enrols TOTP on their Settings page from the QR code's secret (the code is computed here, with
// otpauth, from the secret the page shows) and signs in with a code; a viewer sees the controls they may not use
// disabled with the reason, and no Users page; the Audit page shows who did it.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Secret, TOTP } from "otpauth";
import type { Browser, Page } from "playwright-core";
import { setUp } from "./support/api.ts";
import { launchBrowser } from "./support/browser.ts";
import { Client, cleanup, type Evebox, ROOT, startEvebox, tempDataDir } from "./support/evebox.ts";
import { waitFor } from "./support/wait.ts";

const ARTIFACTS = join(ROOT, "tests", ".artifacts");
let evebox: Evebox;
let dataDir: string;
let browser: Browser;
let admin: Client;

/** The RFC 6238 code of `secret` at `at` (SHA-1, 6 digits, 30 s), computed by the test, not by evebox. */
const code = (secret: string, at = Date.now()) => TOTP.generate({ secret: Secret.fromBase32(secret), algorithm: "SHA1", digits: 6, period: 30, timestamp: at });

async function signIn(page: Page, user: string, password: string) {
  await page.goto(`${evebox.url}/login`);
  // The form may render again as the page's first answers arrive, dropping what was typed (a CI run then signed in
  // with empty fields): the fields are filled until they read back what was typed.
  const u = page.locator("#login-user");
  const p = page.locator("#login-password");
  await waitFor("the login form to keep what is typed", async () => {
    await u.fill(user);
    await p.fill(password);
    return (await u.inputValue()) === user && (await p.inputValue()) === password ? true : undefined;
  }, 10_000);
  await page.locator("#login-submit").click();
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  dataDir = tempDataDir();
  evebox = await startEvebox({ dataDir });
  admin = await setUp(evebox, "plant admin password");
  browser = await launchBrowser();
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await evebox?.stop();
  cleanup(dataDir);
});

test("an admin adds an engineer and a viewer on the Users page", async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await signIn(page, "", "plant admin password");
  await page.locator("#dashboard").waitFor({ timeout: 15_000 });
  await expect(page.locator("#header-role").textContent()).resolves.toBe("admin");
  await page.locator('nav a[href="/users"]').click();
  await page.locator("#users-table").waitFor({ timeout: 10_000 });
  for (const [name, role] of [["erik", "admin"], ["vera", "viewer"]] as const) {
    await page.locator("#user-name").fill(name);
    await page.locator("#user-password").fill(`${name} password`);
    await page.locator("#user-role").selectOption(role);
    await page.locator("#user-add").click();
    await page.locator(`tr[data-user="${name}"]`).waitFor({ timeout: 10_000 });
  }
  const users = (await admin.json("GET", "/api/v1/users")).body.users.map((u: any) => `${u.name}:${u.role}`);
  expect(users).toEqual(["admin:admin", "erik:admin", "vera:viewer"]);
  await page.screenshot({ path: join(ARTIFACTS, "users.png"), fullPage: true });
  await page.close();
}, 60_000);

test("TOTP: enrol from the QR code's secret, keep the recovery codes, then sign in with a code", async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await signIn(page, "erik", "erik password");
  await page.locator("#dashboard").waitFor({ timeout: 15_000 });
  await page.goto(`${evebox.url}/settings`);
  await page.locator("#totp-start").click();
  await page.locator("#totp-qr").waitFor({ timeout: 10_000 });
  // The QR code is an SVG made on the device (a data: image: nothing loaded from elsewhere).
  expect(await page.locator("#totp-qr").getAttribute("src")).toStartWith("data:image/svg+xml;base64,");
  expect(await page.locator("#totp-qr").evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0)).toBe(true);
  const secret = (await page.locator("#totp-secret").textContent())!.trim();
  expect(secret).toMatch(/^[A-Z2-7]{32}$/);
  await page.screenshot({ path: join(ARTIFACTS, "totp-enrol.png"), fullPage: true });
  const enrolledAt = Date.now();
  await page.locator("#totp-code").fill(code(secret, enrolledAt));
  await page.locator("#totp-confirm").click();
  await page.locator("#totp-recovery").waitFor({ timeout: 10_000 });
  const recovery = await page.locator("#totp-recovery li").allTextContents();
  expect(recovery).toHaveLength(10);
  await expect(page.locator("#totp-state").textContent()).resolves.toMatch(/^On/);

  // Sign out; the password alone is not enough now: the page asks for the code.
  await page.locator("#logout").click();
  await page.locator("#login-password").waitFor({ timeout: 10_000 });
  await signIn(page, "erik", "erik password");
  await page.locator("#login-totp").waitFor({ timeout: 10_000 });
  await page.screenshot({ path: join(ARTIFACTS, "login-totp.png") });
  // A wrong code is refused with a message; the code of the next time step (the confirming one is spent) works.
  await page.locator("#login-totp").fill(code(secret, enrolledAt) === "000000" ? "111111" : "000000");
  await page.locator("#login-submit").click();
  await expect(page.locator("#login-error").textContent({ timeout: 10_000 })).resolves.toMatch(/wrong or already used code/i);
  await page.locator("#login-totp").fill(code(secret, Math.max(Date.now(), enrolledAt + 30_000)));
  await page.locator("#login-submit").click();
  await page.locator("#dashboard").waitFor({ timeout: 15_000 });
  await expect(page.locator("#header-user").textContent()).resolves.toContain("erik");

  // A recovery code works once, in a fresh browser.
  const other = await browser.newPage();
  await signIn(other, "erik", "erik password");
  await other.locator("#login-totp").fill(recovery[0]!);
  await other.locator("#login-submit").click();
  await other.locator("#dashboard").waitFor({ timeout: 15_000 });
  await other.close();
  const users = (await admin.json("GET", "/api/v1/users")).body.users;
  expect(users.find((u: any) => u.name === "erik")).toMatchObject({ totp: true, recoveryCodesLeft: 9 });
  await page.close();
}, 120_000);

test("a viewer: no Users page, controls they may not use are disabled with the reason, and the server refuses anyway", async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await signIn(page, "vera", "vera password");
  await page.locator("#dashboard").waitFor({ timeout: 15_000 });
  await expect(page.locator("#header-role").textContent()).resolves.toBe("viewer");
  expect(await page.locator('nav a[href="/users"]').count()).toBe(0);
  expect(await page.locator('nav a[href="/audit"]').count()).toBe(1);
  await page.goto(`${evebox.url}/config`);
  await page.locator("#config-file").waitFor({ state: "attached", timeout: 10_000 });
  expect(await page.locator("#config-file").isDisabled()).toBe(true);
  // The session is read once the page loads: until then every gated control is off ("Checking what you may do…").
  await page.locator(".role-reason", { hasText: "Needs the admin role; you are a viewer." }).first().waitFor({ timeout: 10_000 });
  await page.goto(`${evebox.url}/settings`);
  await page.locator("#power-gate .role-reason", { hasText: "Needs the operator role" }).waitFor({ timeout: 10_000 });
  expect(await page.locator("#power-reboot").isDisabled()).toBe(true);
  await expect(page.locator("#power-gate .role-reason").textContent()).resolves.toBe("Needs the operator role; you are a viewer.");
  await page.screenshot({ path: join(ARTIFACTS, "settings-viewer.png"), fullPage: true });
  // Storage: a viewer sees the imported images but cannot upload or remove one.
  await page.goto(`${evebox.url}/storage`);
  await page.locator("#images-gate .role-reason", { hasText: "Needs the admin role" }).waitFor({ timeout: 10_000 });
  expect(await page.locator("#image-file").isDisabled()).toBe(true);
  // The same request from this browser's session is refused by the server, naming the role.
  const refused = await page.evaluate(async () => {
    const r = await fetch("/api/v1/config", { method: "PUT", headers: { "content-type": "application/json" }, body: "{}" });
    return { status: r.status, body: await r.json() };
  });
  expect(refused).toMatchObject({ status: 403, body: { requiredRole: "admin", role: "viewer" } });
  await page.goto(`${evebox.url}/users`);
  await page.locator("#users-refused").waitFor({ timeout: 10_000 });
  await page.close();
}, 60_000);

test("the Audit page shows the enrolment, the sign-ins (a failed one too) and the refusal, with the right users, and filters them", async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await signIn(page, "", "plant admin password");
  await page.locator("#dashboard").waitFor({ timeout: 15_000 });
  await page.locator('nav a[href="/audit"]').click();
  await page.locator("#audit-table").waitFor({ timeout: 10_000 });
  const rows = () =>
    page.locator("#audit-table tbody tr").evaluateAll((trs) => trs.map((tr) => ({ action: tr.getAttribute("data-action"), user: tr.getAttribute("data-user"), result: tr.getAttribute("data-result"), text: tr.textContent ?? "" })));
  const all = await rows();
  const has = (action: string, user: string, result: string, text = "") => all.some((r) => r.action === action && r.user === user && r.result === result && r.text.includes(text));
  expect(has("POST /api/v1/me/totp/confirm", "erik", "ok")).toBe(true);
  expect(has("POST /api/v1/login", "erik", "ok")).toBe(true);
  expect(has("POST /api/v1/login", "", "refused", "erik")).toBe(true); // the wrong code: not signed in, object erik
  expect(has("PUT /api/v1/config", "vera", "refused", "needs the admin role")).toBe(true);
  expect(has("POST /api/v1/users", "admin", "ok", "vera")).toBe(true);
  await page.screenshot({ path: join(ARTIFACTS, "audit.png"), fullPage: true });

  await page.locator("#audit-user").fill("vera");
  await page.locator("#audit-result").selectOption("refused");
  await page.locator("#audit-apply").click();
  await waitFor("the filtered audit trail", async () => {
    const r = await rows();
    return r.length > 0 && r.every((x) => x.user === "vera" && x.result === "refused") ? r : undefined;
  }, 10_000);
  // The export link carries the same filters and answers JSON lines.
  const href = (await page.locator("#audit-export").getAttribute("href"))!;
  expect(href).toContain("format=jsonl");
  const lines = (await (await page.request.get(`${evebox.url}${href}`)).text()).trim().split("\n").map((l) => JSON.parse(l));
  expect(lines.length).toBeGreaterThan(0);
  expect(lines.every((l) => l.user === "vera" && l.result === "refused")).toBe(true);
  await page.close();
}, 60_000);
