// Which roles may call each route: one line per route below. The test walks every route the console app has
// (app.routes), so a route without a line here fails — add one when you add a route.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Auth, type Principal } from "../auth/auth.ts";
import { declaredNeed, ROLES, type Role, type RouteNeed } from "../model/roles.ts";
import { Store } from "../store/store.ts";
import { Hono } from "hono";
import { apiRoutes, createConsoleApp } from "./app.ts";
import { errorResponse } from "./errors.ts";
import type { ConsoleDevice } from "./device.ts";

/**
 * The least role each route needs ("open": no sign-in at all; "self": any signed-in user, also one who must enrol
 * a second factor first). Key: METHOD and the path as the OpenAPI document writes it.
 */
export const ROUTE_ROLES: Record<string, "open" | RouteNeed> = {
  "GET /api/v1/openapi.json": "open",
  "GET /api/v1/health": "open",
  "POST /api/v1/setup": "open",
  "POST /api/v1/login": "open",
  "POST /api/v1/logout": "self",
  "GET /api/v1/session": "self",
  "POST /api/v1/password": "self",
  "POST /api/v1/me/totp": "self",
  "POST /api/v1/me/totp/confirm": "self",
  "DELETE /api/v1/me/totp": "self",
  "POST /api/v1/tokens": "viewer",
  "GET /api/v1/tokens": "viewer",
  "DELETE /api/v1/tokens/{id}": "viewer",
  "GET /api/v1/users": "admin",
  "POST /api/v1/users": "admin",
  "PATCH /api/v1/users/{name}": "admin",
  "DELETE /api/v1/users/{name}": "admin",
  "DELETE /api/v1/users/{name}/totp": "admin",
  "PUT /api/v1/auth/policy": "admin",
  "GET /api/v1/audit": "viewer",
  "GET /api/v1/config": "viewer",
  "PUT /api/v1/config": "admin",
  "GET /api/v1/config/history": "viewer",
  "GET /api/v1/config/versions/{version}": "viewer",
  "POST /api/v1/config/rollback/{version}": "admin",
  "GET /api/v1/status": "viewer",
  "GET /api/v1/host": "viewer",
  "GET /api/v1/device/settings": "viewer",
  "GET /api/v1/activity": "viewer",
  "POST /api/v1/device/{action}": "operator",
  "POST /api/v1/apps/{uuid}/{command}": "operator",
  "GET /api/v1/networks": "viewer",
  "GET /api/v1/hardware": "viewer",
  "GET /api/v1/networks/{uuid}/leases": "viewer",
  "GET /api/v1/apps/{uuid}/firewall": "viewer",
  "GET /api/v1/apps/{uuid}/{kind}": "operator",
  "GET /api/v1/apps/{uuid}/logs": "viewer",
  "GET /api/v1/events/recent": "viewer",
  "GET /api/v1/events": "viewer",
  "GET /api/v1/controller": "viewer",
  "PUT /api/v1/controller": "admin",
  "GET /api/v1/baseos": "viewer",
  "POST /api/v1/baseos/upload": "admin",
  "PUT /api/v1/baseos/settings": "admin",
  "POST /api/v1/baseos/activate": "admin",
  "POST /api/v1/baseos/cancel": "admin",
  "POST /api/v1/baseos/retry": "admin",
  "GET /api/v1/metrics": "viewer",
  "GET /api/v1/metrics/history": "viewer",
  "GET /api/v1/images": "viewer",
  "POST /api/v1/images": "admin",
  "DELETE /api/v1/images/{sha256}": "admin",
  "POST /api/v1/images/uploads": "admin",
  "GET /api/v1/images/uploads": "viewer",
  "GET /api/v1/images/uploads/{id}": "viewer",
  "PATCH /api/v1/images/uploads/{id}": "admin",
  "DELETE /api/v1/images/uploads/{id}": "admin",
  "GET /api/v1/bundles": "viewer",
  "POST /api/v1/bundles": "admin",
  "DELETE /api/v1/bundles/{name}": "admin",
  "GET /api/v1/bundles/keys": "viewer",
  "POST /api/v1/bundles/keys": "admin",
  "DELETE /api/v1/bundles/keys/{id}": "admin",
  "PUT /api/v1/bundles/policy": "admin",
};

const dir = mkdtempSync(join(tmpdir(), "evebox-roles-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function fixture() {
  const store = Store.open(join(dir, `${Math.random().toString(36).slice(2)}.db`));
  const auth = new Auth(store, join(dir, "setup-token"), { perClientFree: 1e6, globalFree: 1e6, maxDelayMs: 1, forgetAfterMs: 1, concurrentHashes: 2, waitingHashes: 1000 });
  const device = {
    version: "1.2.3",
    store,
    events: { publish() {}, subscribe: () => () => {} },
    config: { current: () => null, currentDoc: () => null, version: () => null, put: () => ({ unchanged: true }), rollback: () => ({}) },
    apps: null,
    terminals: null,
    name: () => "box",
    managed: () => true, // so PUT /config and rollback answer 409 instead of acting
    controllerUrl: () => "https://controller.invalid",
    controllerLink: () => null,
    status: () => ({ networkInstances: [] }),
    metricsText: () => "",
  } as unknown as ConsoleDevice;
  const app = createConsoleApp({ auth, device, ui: null });
  const token = auth.prepareSetup()!;
  await auth.setup(token, "admin password", "local-socket");
  const bearer: Record<Role, string> = { admin: "", operator: "", viewer: "" };
  for (const role of ROLES) {
    if (role !== "admin") await auth.createUser(role, "a password", role);
    const owner: Principal = { kind: "session", idHash: "-", user: role === "admin" ? "admin" : role, role };
    bearer[role] = auth.createToken(owner, `${role} token`).token;
  }
  return { app, store, auth, bearer };
}

/** The app's routes under /api/v1, each as the table keys it. */
function routesOf(app: { routes: { method: string; path: string; handler: unknown }[] }) {
  const byKey = new Map<string, RouteNeed[]>();
  for (const r of app.routes) {
    if (!r.path.startsWith("/api/v1/") || r.method === "ALL") continue;
    const key = `${r.method} ${r.path.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, "{$1}")}`;
    const needs = byKey.get(key) ?? [];
    const need = declaredNeed(r.handler);
    if (need) needs.push(need);
    byKey.set(key, needs);
  }
  return byKey;
}

/** A concrete path for a route: each parameter's first allowed value, or a made-up one. */
function concrete(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)(\{([^}|]*)[^}]*\})?/g, (_m, name: string, _re, first: string | undefined) => first ?? `no-such-${name}`);
}

describe("the route → role table", () => {
  test("every route of the app has a line in the table, and declares that role where it is defined", async () => {
    const { app } = await fixture();
    const routes = routesOf(app);
    expect(routes.size).toBeGreaterThan(40);
    const problems: string[] = [];
    for (const [key, needs] of routes) {
      const want = ROUTE_ROLES[key];
      if (want === undefined) {
        problems.push(`route ${key} has no role entry in src/console/roles.test.ts (ROUTE_ROLES): add one, e.g. "${key}": "viewer" | "operator" | "admin"`);
        continue;
      }
      if (want === "open") {
        if (needs.length) problems.push(`route ${key} is open in ROUTE_ROLES but declares requires("${needs[0]}")`);
      } else if (needs.length !== 1 || needs[0] !== want) {
        problems.push(`route ${key} needs "${want}" in ROUTE_ROLES but declares ${needs.length ? `requires("${needs.join('"), requires("')}")` : "no requires(): put requires(\"" + want + "\") first among its handlers"}`);
      }
    }
    for (const key of Object.keys(ROUTE_ROLES)) if (!routes.has(key)) problems.push(`ROUTE_ROLES has ${key}, which the app does not route: remove the line`);
    expect(problems).toEqual([]);
  }, 30_000);

  test("each role is let through exactly the routes the table gives it; the others answer 403 naming the role", async () => {
    const { app, bearer } = await fixture();
    const problems: string[] = [];
    for (const r of app.routes) {
      if (!r.path.startsWith("/api/v1/") || r.method === "ALL" || !declaredNeed(r.handler)) continue;
      const key = `${r.method} ${r.path.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, "{$1}")}`;
      const want = ROUTE_ROLES[key];
      if (want === undefined || want === "open") continue; // the first test names it
      // The right paths for routes that act on the caller: a session is needed to end one.
      if (key === "POST /api/v1/logout") continue;
      for (const role of ROLES) {
        const res = await app.fetch(
          new Request(`http://device${concrete(r.path)}`, {
            method: r.method,
            headers: { host: "device", authorization: `Bearer ${bearer[role]}`, "content-type": "application/json" },
            body: r.method === "GET" ? undefined : "{}",
          }),
        );
        const allowed = want === "self" || ROLES.indexOf(role) >= ROLES.indexOf(want);
        const body = res.status === 403 ? ((await res.json()) as { error: string; requiredRole?: string }) : null;
        const refusedForRole = body !== null && body.requiredRole !== undefined;
        if (allowed && refusedForRole) problems.push(`${key}: a ${role} was refused (${body!.error})`);
        if (!allowed && !refusedForRole) problems.push(`${key}: a ${role} got ${res.status}, expected 403 (needs ${want})`);
        if (!allowed && refusedForRole && (body!.requiredRole !== want || !body!.error.includes(`needs the ${want} role`))) {
          problems.push(`${key}: the 403 for a ${role} names ${body!.requiredRole}, not ${want}`);
        }
      }
    }
    expect(problems).toEqual([]);
  }, 30_000);

  test("a route that declares no role needs admin (fail closed)", async () => {
    const { auth, store } = await fixture();
    const device = { version: "1", store, events: { publish() {}, subscribe: () => () => {} }, name: () => "box" } as unknown as ConsoleDevice;
    const api = apiRoutes({ auth, device, ui: null }, async () => ({})).get("/undeclared", (c) => c.json({ ok: true }));
    const as = (role: Role) =>
      new Hono<{ Variables: { principal: Principal | null } }>()
        .use("*", async (c, next) => {
          c.set("principal", { kind: "token", id: "t", name: "t", user: role, role });
          await next();
        })
        .route("/api/v1", api)
        .onError((e, c) => errorResponse(c, e) ?? c.text("bug", 500));
    for (const role of ["viewer", "operator"] as const) {
      const res = await as(role).fetch(new Request("http://device/api/v1/undeclared"));
      expect(res.status).toBe(403);
      expect(((await res.json()) as { requiredRole: string }).requiredRole).toBe("admin");
    }
    expect((await as("admin").fetch(new Request("http://device/api/v1/undeclared"))).status).toBe(200);
  }, 30_000);

  test("the OpenAPI document names each route's role", async () => {
    const { app } = await fixture();
    const doc = (await (await app.fetch(new Request("http://device/api/v1/openapi.json", { headers: { host: "device" } }))).json()) as any;
    expect(doc.paths["/api/v1/apps/{uuid}/{command}"].post["x-evebox-role"]).toBe("operator");
    expect(doc.paths["/api/v1/config"].put["x-evebox-role"]).toBe("admin");
    expect(doc.paths["/api/v1/status"].get["x-evebox-role"]).toBe("viewer");
  }, 30_000);
});
