import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Auth } from "../auth/auth.ts";
import { Store } from "../store/store.ts";
import { createConsoleApp } from "./app.ts";
import type { ConsoleDevice } from "./device.ts";

const dir = mkdtempSync(join(tmpdir(), "evebox-console-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fixture() {
  const store = Store.open(join(dir, `${Math.random().toString(36).slice(2)}.db`));
  const auth = new Auth(store, join(dir, "setup-token"));
  const device = {
    version: "1.2.3",
    store,
    events: { publish() {}, subscribe: () => () => {} },
    config: { current: () => null, currentDoc: () => null, version: () => null },
    apps: null,
    terminals: null,
    name: () => "box",
    managed: () => false,
    controllerUrl: () => null,
    controllerLink: () => null,
    status: () => ({ networkInstances: [] }),
    metricsText: () => "",
    log() {},
  } as unknown as ConsoleDevice;
  const app = createConsoleApp({ auth, device, ui: null });
  const local = createConsoleApp({ auth, device, ui: null, trustAll: true });
  const call = (a: typeof app, method: string, path: string, body?: string, headers: Record<string, string> = {}) =>
    a.fetch(new Request(`http://device${path}`, { method, body, headers: { host: "device", ...headers } }));
  return { app, local, call, auth };
}

describe("the OpenAPI document", () => {
  test("covers every method and path the app routes under /api/v1", async () => {
    const { app, call } = fixture();
    const doc = (await (await call(app, "GET", "/api/v1/openapi.json")).json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe("3.1.0");
    const routed = new Set(
      app.routes
        .filter((r) => r.path.startsWith("/api/v1/") && r.method !== "ALL")
        .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:([A-Za-z][A-Za-z0-9_]*)(\{[^}]*\})?/g, "{$1}")}`),
    );
    expect(routed.size).toBeGreaterThan(30);
    const documented = new Set(Object.entries(doc.paths).flatMap(([p, item]) => Object.keys(item).map((m) => `${m} ${p}`)));
    const missing = [...routed].filter((r) => !documented.has(r));
    expect(missing).toEqual([]);
    expect(documented.has("post /api/v1/login")).toBe(true);
    expect(documented.has("put /api/v1/baseos/settings")).toBe(true);
  });

  test("carries the request schemas, and which routes are open", async () => {
    const { app, call } = fixture();
    const doc = (await (await call(app, "GET", "/api/v1/openapi.json")).json()) as any;
    const setup = doc.paths["/api/v1/setup"].post;
    expect(setup.security).toEqual([]);
    expect(setup.requestBody.content["application/json"].schema.required).toEqual(["token", "password"]);
    expect(doc.paths["/api/v1/status"].get.security).toBeUndefined();
    expect(doc.paths["/api/v1/apps/{uuid}/logs"].get.parameters.map((p: any) => `${p.in} ${p.name}`).sort()).toEqual(["path uuid", "query after", "query limit"]);
  });

  test("is open, and /api/docs renders it as HTML without scripts", async () => {
    const { app, call } = fixture();
    expect((await call(app, "GET", "/api/v1/openapi.json")).status).toBe(200);
    expect((await call(app, "GET", "/api/v1/status")).status).toBe(401);
    const docs = await call(app, "GET", "/api/docs");
    expect(docs.status).toBe(200);
    expect(docs.headers.get("content-type")).toContain("text/html");
    const html = await docs.text();
    expect(html).toContain("/api/v1/config/rollback/{version}");
    expect(html).not.toContain("<script");
    expect(docs.headers.get("content-security-policy")).toContain("default-src 'self'");
  });
});

describe("validation and errors", () => {
  test("a body that does not fit the schema is a 400 naming the field", async () => {
    const { app, call } = fixture();
    const json = { "content-type": "application/json", origin: "http://device" };
    let r = await call(app, "POST", "/api/v1/login", JSON.stringify({ password: 5 }), json);
    expect(r.status).toBe(400);
    expect(((await r.json()) as any).error).toMatch(/^password: /);
    r = await call(app, "POST", "/api/v1/login", "null", json);
    expect(r.status).toBe(400);
    expect(((await r.json()) as any).error).toMatch(/^expected a JSON object in the request body: /);
    r = await call(app, "POST", "/api/v1/login", "{nope", json);
    expect(r.status).toBe(400);
    expect(((await r.json()) as any).error).toBeString();
    r = await call(app, "POST", "/api/v1/login", JSON.stringify({ password: "x" }), { origin: "http://device" });
    expect(r.status).toBe(400);
    expect(((await r.json()) as any).error).toMatch(/Content-Type: application\/json/);
  });

  test("domain errors keep their status and shape: 409, 403 cross-origin, 413, 404, 501", async () => {
    const { app, local, call } = fixture();
    const json = { "content-type": "application/json", origin: "http://device" };
    let r = await call(app, "POST", "/api/v1/login", JSON.stringify({ password: "whatever1" }), json);
    expect(r.status).toBe(409); // not set up
    r = await call(app, "POST", "/api/v1/login", JSON.stringify({ password: "whatever1" }), { ...json, origin: "http://evil" });
    expect(r.status).toBe(403);
    expect(((await r.json()) as any).error).toMatch(/cross-origin/);
    r = await call(app, "POST", "/api/v1/login", JSON.stringify({ password: "x".repeat(70 * 1024) }), json);
    expect(r.status).toBe(413);
    expect(await r.json()).toEqual({ error: "request body too large (limit 64 KiB)" });
    r = await call(local, "DELETE", "/api/v1/tokens/nope");
    expect(r.status).toBe(404);
    expect(await r.json()).toEqual({ error: "no API token with id nope" });
    r = await call(local, "POST", "/api/v1/device/reboot");
    expect(r.status).toBe(501);
    r = await call(local, "GET", "/api/v1/baseos");
    expect(((await r.json()) as any).reason ?? "").toBeString();
    r = await call(local, "PUT", "/api/v1/baseos/settings", JSON.stringify({}), json);
    expect(r.status).toBe(501);
    expect(((await r.json()) as any).error).toBe("not an A/B device");
    r = await call(local, "GET", "/api/v1/nope");
    expect(r.status).toBe(404);
  });

  test("a throttled login answers 429 with Retry-After and retryAfterSeconds", async () => {
    const { app, call, auth } = fixture();
    const token = auth.prepareSetup()!;
    const json = { "content-type": "application/json", origin: "http://device" };
    expect((await call(app, "POST", "/api/v1/setup", JSON.stringify({ token, password: "correct horse" }), json)).status).toBe(200);
    let last: Response | null = null;
    for (let i = 0; i < 30; i++) {
      last = await call(app, "POST", "/api/v1/login", JSON.stringify({ password: "wrong password" }), json);
      if (last.status === 429) break;
      expect(last.status).toBe(401);
    }
    expect(last!.status).toBe(429);
    const body = (await last!.json()) as any;
    expect(body.retryAfterSeconds).toBeGreaterThan(0);
    expect(last!.headers.get("retry-after")).toBe(String(body.retryAfterSeconds));
  }, 30_000); // up to 30 argon2 checks: more than 5 s on a loaded 2-core machine
});

describe("GET /api/v1/status, the hot path", () => {
  test("answers the device's cached body with the headers of the middleware chain; without a principal the chain's 401", async () => {
    const { auth, call } = fixture();
    let bodies = 0;
    const store = Store.open(join(dir, `${Math.random().toString(36).slice(2)}.db`));
    const device = {
      version: "1.2.3",
      store,
      events: { publish() {}, subscribe: () => () => {} },
      config: { current: () => null, currentDoc: () => null, version: () => null },
      apps: null,
      terminals: null,
      name: () => "box",
      managed: () => false,
      controllerUrl: () => null,
      controllerLink: () => null,
      status: () => ({ from: "status()" }),
      statusJson: () => JSON.stringify({ from: "statusJson()", n: ++bodies }),
      metricsText: () => "",
    } as unknown as ConsoleDevice;
    const app = createConsoleApp({ auth, device, ui: null });
    await auth.setup(auth.prepareSetup(), "the admin password", "c");
    const { token } = auth.createToken({ kind: "local-socket", role: "admin" }, "t");
    await Bun.sleep(0); // the hot path's headers are taken from the middleware once, right after construction
    const bearer = { authorization: `Bearer ${token}` };
    const hot = await call(app, "GET", "/api/v1/status", undefined, bearer);
    expect(hot.status).toBe(200);
    expect(await hot.json()).toEqual({ from: "statusJson()", n: 1 });
    // The same security headers as a route through the chain.
    const chained = await call(app, "GET", "/api/v1/session", undefined, bearer);
    for (const h of ["content-security-policy", "x-frame-options", "x-content-type-options", "strict-transport-security", "referrer-policy"]) {
      expect(hot.headers.get(h)).toBe(chained.headers.get(h));
    }
    expect(hot.headers.get("content-security-policy")).toContain("default-src 'self'");
    expect(hot.headers.get("content-type")).toBe("application/json");
    const anon = await call(app, "GET", "/api/v1/status");
    expect(anon.status).toBe(401);
    expect((await call(app, "GET", "/api/v1/status", undefined, { authorization: "Bearer ebx_nope_nope" })).status).toBe(401);
    // With a query, through the router: the same answer.
    const routed = await call(app, "GET", "/api/v1/status?x=1", undefined, bearer);
    expect(await routed.json()).toEqual({ from: "statusJson()", n: 2 });
  });
});
