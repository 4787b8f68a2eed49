// The console as a device serves it (no QEMU needed): HTTPS with the device's own key in a serving certificate,
// plain HTTP answering only with redirects, and the reboot/shutdown routes wired to init's power hook.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { DeviceIdentity } from "../src/controller/identity.ts";
import { redirectToHttps, type RunningDevice, runDevice } from "../src/device/run.ts";
import { consoleTls } from "../src/init/console-tls.ts";
import { freePort } from "../board-support/qemu-x86_64/qemu.ts";

let dir: string;
let running: RunningDevice;
let hostMode: RunningDevice;
let httpsPort: number;
let httpPort: number;
let fingerprint: string;
const requests: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "evebox-image-console-"));
  mkdirSync(join(dir, "device", "config"), { recursive: true });
  const identity = await DeviceIdentity.loadOrCreate(join(dir, "device", "config"));
  const tls = await consoleTls(identity, "evebox-test");
  fingerprint = tls.fingerprint;
  httpsPort = await freePort();
  httpPort = await freePort();
  const quiet = () => {};
  running = await runDevice({
    dataDir: join(dir, "device"),
    listen: `127.0.0.1:${httpsPort}`,
    controller: null,
    version: "test",
    ui: null,
    apps: false,
    say: quiet,
    tls,
    redirectHttp: `127.0.0.1:${httpPort}`,
    power: {
      request(action, by) {
        requests.push(`${action} by ${by}`);
        return requests.length === 1 ? { accepted: true, message: `${action} in progress` } : { accepted: false, message: "a reboot is already in progress" };
      },
    },
  });
  hostMode = await runDevice({ dataDir: join(dir, "host"), listen: "127.0.0.1:0", controller: null, version: "test", ui: null, apps: false, say: quiet });
});

afterAll(async () => {
  await running?.stop();
  await hostMode?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function call(base: string, method: string, path: string, body?: unknown, cookie = "") {
  const res = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { "content-type": "application/json", origin: base, ...(cookie ? { cookie } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    tls: { rejectUnauthorized: false },
  } as RequestInit);
  return { status: res.status, body: await res.json().catch(() => null), cookie: res.headers.get("set-cookie")?.split(";")[0] ?? cookie };
}

describe("the device's console", () => {
  test("is served over HTTPS with the certificate whose fingerprint the physical console shows", async () => {
    expect(running.url).toBe(`https://127.0.0.1:${httpsPort}`);
    const cert = await new Promise<any>((resolve, reject) => {
      const s = tlsConnect({ host: "127.0.0.1", port: httpsPort, rejectUnauthorized: false, servername: "evebox-test" }, () => {
        resolve(s.getPeerCertificate());
        s.end();
      });
      s.on("error", reject);
    });
    expect(cert.fingerprint256).toBe(fingerprint);
    expect(cert.subjectaltname).toContain("DNS:evebox-test");
    expect((await call(running.url, "GET", "/health")).body.ok).toBe(true);
  });

  test("the same certificate is kept across starts, and made again for another host name", async () => {
    const identity = await DeviceIdentity.loadOrCreate(join(dir, "device", "config"));
    const again = await consoleTls(identity, "evebox-test");
    expect(again).toMatchObject({ created: false, fingerprint });
    const renamed = await consoleTls(identity, "evebox-other");
    expect(renamed.created).toBe(true);
    expect(renamed.fingerprint).not.toBe(fingerprint);
    await consoleTls(identity, "evebox-test"); // back, for the other tests
  });

  test("plain HTTP answers every request with a redirect to the same path over HTTPS", async () => {
    const res = await fetch(`http://127.0.0.1:${httpPort}/apps/x?y=1`, { method: "POST", redirect: "manual" });
    expect(res.status).toBe(308);
    expect(res.headers.get("location")).toBe(`https://127.0.0.1:${httpsPort}/apps/x?y=1`);
    expect(redirectToHttps(new Request("http://10.0.2.15/setup?token=t", { headers: { host: "10.0.2.15" } }), 443).headers.get("location")).toBe("https://10.0.2.15/setup?token=t");
    expect(redirectToHttps(new Request("http://[fe80::1]:80/", { headers: { host: "[fe80::1]:80" } }), 443).headers.get("location")).toBe("https://[fe80::1]/");
  });

  test("POST /device/reboot needs a login, is accepted once (202), then refused while one is in progress", async () => {
    expect((await call(running.url, "POST", "/device/reboot")).status).toBe(401);
    const token = (await Bun.file(join(dir, "device", "run", "setup-token")).text()).trim();
    expect((await call(running.url, "POST", "/setup", { token, password: "console-test-pw" })).status).toBe(200);
    const login = await call(running.url, "POST", "/login", { password: "console-test-pw" });
    expect(login.status).toBe(200);
    const first = await call(running.url, "POST", "/device/reboot", undefined, login.cookie);
    expect(first).toMatchObject({ status: 202, body: { ok: true, message: "reboot in progress" } });
    const second = await call(running.url, "POST", "/device/shutdown", undefined, login.cookie);
    expect(second.status).toBe(409);
    expect(second.body.error).toContain("already in progress");
    expect(requests).toEqual(["reboot by admin", "shutdown by admin"]);
  });

  test("in host mode there is nothing to reboot: 501, said plainly", async () => {
    const r = await fetch(`http://localhost/api/v1/device/shutdown`, { method: "POST", unix: hostMode.socketPath } as RequestInit);
    expect(r.status).toBe(501);
    expect((await r.json()).error).toContain("PID 1");
  });
});
