// The console's HTTP surface: thin routes that validate input, call the device, and answer JSON.
import { Hono, type Context, type TypedResponse } from "hono";
import { bodyLimit } from "hono/body-limit";
import { getConnInfo } from "hono/bun";
import { deleteCookie, setCookie } from "hono/cookie";
import { parse as parseCookie } from "hono/utils/cookie";
import { secureHeaders } from "hono/secure-headers";
import { matchedRoutes } from "hono/route";
import { streamSSE } from "hono/streaming";
import { type Auth, describePrincipal, type Principal, SESSION_TTL_MS, userOf } from "../auth/auth.ts";
import { checkRole, declaredNeed, requires, ROLE_CAN, roleAtLeast, ROLES } from "../model/roles.ts";
import { type AuditNote, auditTrail } from "./audit.ts";
import type { ConsoleDevice } from "./device.ts";
import type { DeviceStatus } from "../model/status.ts";
import type { NetworkManager } from "../network/manager.ts";
import type { HardwareStatus } from "../hardware/service.ts";
import { baseosRoutes, type BaseOsRef } from "../baseos/routes.ts";
import { renderApiDocs, type OpenApiDoc } from "./api-docs.ts";
import { consoleSocket } from "./console-socket.ts";
import { imageRoutes } from "./images.ts";
import { bundleRoutes } from "./bundles.ts";
import type { BundleService } from "../bundles/service.ts";
import type { ImageStore } from "../storage/images.ts";
import { createLogger } from "../lib/log.ts";
import { EMPTY_MODEL } from "../config/model.ts";
import { settingsView } from "../config/settings.ts";
import { errorResponse, HttpError, kindOf } from "./errors.ts";
import { describe, jsonAnswer, openApiDocument } from "./openapi.ts";
import {
  AuditQuery,
  ControllerBody,
  NewUserBody,
  PolicyBody,
  RemoveTotpBody,
  TotpCodeBody,
  UserPatchBody,
  DryRunQuery,
  HealthBody,
  HistoryQuery,
  LoginBody,
  LogsQuery,
  ActivityBody,
  ActivityQuery,
  MetricsHistoryBody,
  MetricsHistoryQuery,
  NewTokenBody,
  OkBody,
  PasswordBody,
  RecentEventsQuery,
  SessionBody,
  DeviceSettingsBody,
  SetupBody,
  TokenBody,
} from "./schemas.ts";
import type { UiAssets } from "./ui-assets.ts";
import { RANGES } from "../store/metrics-history.ts";
import { hostView, type HostView } from "../config/device-env.ts";
import { activityNow, NOT_ACTIVITY, toActivity } from "./activity.ts";
import { check } from "./validate.ts";

export { HttpError } from "./errors.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const SESSION_COOKIE = "evebox_session";

/** Reboot and shutdown of the device, where evebox is PID 1 (init/); absent in host mode. */
export interface PowerControl {
  request(action: "reboot" | "shutdown", by: string): { accepted: boolean; message: string };
}

export interface ConsoleOptions {
  auth: Auth;
  device: ConsoleDevice;
  ui: UiAssets | null;
  /** The unix-socket listener: file permissions are the authentication. */
  trustAll?: boolean;
  /** Set the Secure flag on cookies (console served over HTTPS). */
  secureCookies?: boolean;
  maxConfigBytes?: number;
  /** The network part, once the app runtime is up (leases, per-rule counters). */
  network?: () => NetworkManager | null;
  power?: PowerControl;
  /** Base OS updates (A/B slots): the part, or why there is none. */
  baseos?: () => BaseOsRef;
  /** Images imported by hand (upload from the console): the content store by digest. Absent: the routes answer 501. */
  images?: ImageStore;
  /** App bundles (bundles/): import, upgrade, remove; built on first use. Absent: the routes answer 501. */
  bundles?: () => BundleService;
  /** The host's I/O: every device, what it is, who holds it, why it is not assignable (hardware/). */
  hardware?: () => HardwareStatus;
  /** The device's memory, networks and ports, as the console's forms check a document against them (config/device-env.ts). */
  host?: () => HostView;
  /** Who sent a request, where the TCP listener is behind the connection gate (its peer is then the gate). */
  clientAddress?: (req: Request) => string | null;
}

type Env = { Variables: { principal: Principal | null; audit?: AuditNote } };

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export function createConsoleApp(opts: ConsoleOptions): Hono<Env> {
  const { auth, device } = opts;
  const app = new Hono<Env>();
  const log = createLogger("console", device.store);

  app.onError((err, c) => {
    const answer = errorResponse(c, err);
    if (answer) return answer;
    log.error(`${c.req.method} ${c.req.path}: ${(err as Error).message}`);
    return c.json({ error: `internal error: ${(err as Error).message}` }, 500);
  });
  app.notFound((c) => c.json({ error: `no such endpoint: ${c.req.method} ${c.req.path}` }, 404));

  const security = secureHeaders({
    contentSecurityPolicy: {
      defaultSrc: ["'self'"],
      connectSrc: ["'self'"],
      imgSrc: ["'self'", "data:"],
      styleSrc: ["'self'", "'unsafe-inline'"],
      frameAncestors: ["'none'"],
    },
    crossOriginEmbedderPolicy: false,
  });
  app.use("*", security);

  // Who is asking: a session cookie, a bearer token, or the trusted local socket.
  const principalOf = (req: Request): Principal | null => principalFrom(opts, req);
  app.use("/api/*", async (c, next) => {
    const p = principalOf(c.req.raw);
    c.set("principal", p);
    // A cookie is sent by the browser on its own, so state changes must come from our own pages.
    if (UNSAFE.has(c.req.method) && p?.kind !== "token" && p?.kind !== "local-socket") checkOrigin(c);
    await next();
  });
  // Who did what: every state change and console upgrade, after it is answered (console/audit.ts).
  app.use("/api/*", auditTrail(device.store, (c) => clientOf(c, opts)));

  const document = openApiDocument(() => app, device.version);
  app.route("/api/v1", apiRoutes(opts, document));
  // Readable docs of the same document, rendered here (no script: the CSP allows none inline, and the device
  // may have no way to a CDN). Open like the document: both describe the software, not this device.
  app.get("/api/docs", async (c) => c.html(renderApiDocs((await document()) as OpenApiDoc), 200, { "Cache-Control": "no-cache" }));
  app.all("/api/*", (c) => c.json({ error: `no such endpoint: ${c.req.method} ${c.req.path}` }, 404));

  // ---- the browser app: hashed assets, and index.html for every other path (deep links)
  const ui = opts.ui;
  app.get("*", (c) => {
    if (!ui) return c.text("evebox console: the UI bundle is not built (run `bun build.ts --ui-only`); the API is at /api/v1", 503);
    const f = ui.files.get(c.req.path);
    if (f) return c.body(f.blob.stream(), 200, { "Content-Type": f.type, "Cache-Control": "public, max-age=31536000, immutable" });
    if (c.req.path.startsWith("/assets/")) return c.text("not found", 404);
    return c.html(ui.indexHtml, 200, { "Cache-Control": "no-cache" });
  });

  // The hot path: GET /api/v1/status, polled by every open console, answered without the router and the
  // middleware chain: the cached body (Device.statusJson) with the same headers the chain would add (taken once
  // from the security middleware itself). Anything else, and an unauthenticated request (its 401), goes the
  // usual way.
  let hotHeaders: Headers | null = null;
  void Promise.resolve(
    new Hono()
      .use("*", security)
      .get("/", (c) => c.body(null))
      .request("/"),
  ).then((r) => {
    const h = new Headers(r.headers);
    h.set("Content-Type", "application/json");
    hotHeaders = h;
  });
  const chain = app.fetch;
  // The body's bytes, encoded once per body the device makes (statusJson answers the same string until it changes).
  let body = { json: "", bytes: new Uint8Array(0) };
  const encoder = new TextEncoder();
  app.fetch = (req, env, ctx) => {
    if (hotHeaders && req.method === "GET" && pathOf(req.url) === "/api/v1/status" && device.statusJson) {
      const p = principalOf(req);
      // GET /status needs a viewer, the least role; a session that must enrol a second factor first goes the usual way (403).
      if (p && !(p.kind === "session" && p.mustEnrolTotp)) {
        const json = device.statusJson();
        if (json !== body.json) body = { json, bytes: encoder.encode(json) };
        return new Response(body.bytes, { headers: hotHeaders });
      }
    }
    return chain(req, env, ctx);
  };

  return app;
}

/** Who sent `req`: a session cookie, a bearer token, or the trusted local socket. */
function principalFrom(opts: Pick<ConsoleOptions, "auth" | "trustAll">, req: Request): Principal | null {
  if (opts.trustAll) return { kind: "local-socket", role: "admin" };
  const authz = req.headers.get("authorization");
  if (authz?.startsWith("Bearer ")) return opts.auth.tokenFor(authz.slice(7).trim());
  const cookie = req.headers.get("cookie");
  return opts.auth.sessionFor(cookie ? parseCookie(cookie, SESSION_COOKIE)[SESSION_COOKIE] : undefined);
}

/** The path and query of a request URL ("/api/v1/status"), without parsing it whole. */
function pathOf(url: string): string {
  const i = url.indexOf("/", url.indexOf("//") + 2);
  return i < 0 ? "/" : url.slice(i);
}

/** The routes open to anyone; every other route under /api/v1 needs a session or a token. */
const OPEN = new Set(["/health", "/setup", "/login", "/openapi.json"]);

/**
 * The routes under /api/v1, as one chain so that their type (`ConsoleApi`) carries every path, its input and its
 * answers: the UI's client (ui/api.ts) is typed by it. Handlers validate (console/validate.ts), call the device,
 * and answer JSON; refusals are thrown and answered by the app's onError (console/errors.ts).
 */
export function apiRoutes(opts: ConsoleOptions, document: () => Promise<unknown>) {
  const { auth, device } = opts;
  const maxConfigBytes = opts.maxConfigBytes ?? 16 * 1024 * 1024;
  const smallBody = bodyLimit({ maxSize: 64 * 1024, onError: (c) => c.json({ error: "request body too large (limit 64 KiB)" }, 413) });
  const configBody = bodyLimit({
    maxSize: maxConfigBytes,
    onError: (c) => c.json({ error: `config too large (limit ${Math.round(maxConfigBytes / 1024 / 1024)} MiB)` }, 413),
  });
  const startSession = (c: Context<Env>, secret: string) =>
    setCookie(c, SESSION_COOKIE, secret, {
      path: "/",
      httpOnly: true,
      sameSite: "Strict",
      secure: opts.secureCookies ?? false,
      maxAge: Math.floor(SESSION_TTL_MS / 1000),
    });
  const networkPart = () => {
    const n = opts.network?.();
    if (!n) throw new HttpError("conflict", "the network part is not running yet; try again in a moment");
    return n;
  };
  const ok = (description = "done") => ({ 200: jsonAnswer(description, OkBody) });
  const any = (description: string) => ({ 200: jsonAnswer(description) });
  const managedRefusal = "the device is managed by a controller: it is the authority for the config";
  const uuidParam = [{ name: "uuid", in: "path" as const, required: true, schema: { type: "string" as const }, description: "the app's or network instance's UUID" }];
  const oneOf = (name: string, values: string[]) => [{ name, in: "path" as const, required: true, schema: { type: "string" as const, enum: values } }];

  return (
    new Hono<Env>()
      // ---- open endpoints
      .get("/openapi.json", describe({ tag: "api", summary: "This document (OpenAPI 3.1)", open: true, ok: any("the OpenAPI document") }), async (c) =>
        c.json((await document()) as Record<string, unknown>),
      )
      .get("/health", describe({ tag: "auth", summary: "Liveness, version, and whether the admin password is still to be set", open: true, ok: { 200: jsonAnswer("up", HealthBody) } }), (c) =>
        c.json({ ok: true as const, version: device.version, setupRequired: !auth.isSetUp(), deviceName: device.name() }),
      )
      .post(
        "/setup",
        describe({ tag: "auth", summary: "Set the admin password with the setup token; starts a session", open: true, ok: ok("set; the session cookie is in Set-Cookie"), errors: { 400: "a password too short or too long", 403: "wrong setup token", 409: "already set, or being set", 413: "body over 64 KiB", 429: "too many attempts: wait Retry-After seconds" } }),
        smallBody,
        check("json", SetupBody),
        async (c) => {
          const body = c.req.valid("json");
          const r = await auth.setup(body.token, body.password, clientOf(c, opts), body.user);
          startSession(c, r.secret);
          note(c, { user: r.user, object: r.user });
          device.events.publish({ type: "auth.setup", message: `admin ${r.user} set up` });
          return c.json({ ok: true as const });
        },
      )
      .post(
        "/login",
        describe({ tag: "auth", summary: "Log in as a user (the setup admin when `user` is left out), with the second-factor code when the user has one; starts a session", open: true, ok: ok("logged in; the session cookie is in Set-Cookie"), errors: { 401: "wrong user name or password, or the second factor is missing (`totpRequired`) or wrong", 409: "not set up yet", 413: "body over 64 KiB", 429: "too many attempts: wait Retry-After seconds" } }),
        smallBody,
        check("json", LoginBody),
        async (c) => {
          const body = c.req.valid("json");
          const tried = body.user ?? auth.setupAdmin();
          note(c, { user: null, object: tried.slice(0, 64) });
          try {
            const r = await auth.login({ user: body.user, password: body.password, totp: body.totp }, clientOf(c, opts));
            startSession(c, r.secret);
            note(c, { user: r.user, object: r.user });
            return c.json({ ok: true as const, user: r.user, role: r.role });
          } catch (e) {
            if (kindOf(e) === "unauthorized") {
              device.events.publish({ type: "auth.login-failed", message: `failed login as ${tried.slice(0, 64)} from ${clientOf(c, opts)}` });
            }
            throw e;
          }
        },
      )

      // ---- everything below needs a principal, and the role its route declares with requires() (model/roles.ts);
      // a route that declares none needs admin (and fails the route→role table test, console/roles.test.ts).
      .use("*", async (c, next) => {
        if (OPEN.has(c.req.path.replace(/^\/api\/v1/, ""))) return next();
        if (!c.get("principal")) return c.json({ error: "not logged in: log in on the console or send 'Authorization: Bearer <token>'" }, 401);
        const mine = matchedRoutes(c).filter((r) => r.method === c.req.method);
        if (mine.length > 0 && !mine.some((r) => declaredNeed(r.handler))) checkRole("admin", c.get("principal"));
        await next();
      })

      .post("/logout", requires("self"), describe({ tag: "auth", summary: "End this session", ok: ok("logged out") }), (c) => {
        auth.logout(c.get("principal"));
        deleteCookie(c, SESSION_COOKIE, { path: "/" });
        return c.json({ ok: true as const });
      })
      // `power`: whether reboot and shutdown work here (evebox is the device's init).
      .get("/session", requires("self"), describe({ tag: "auth", summary: "Who is asking (user, role, second factor), and whether reboot and shutdown work here", ok: { 200: jsonAnswer("authenticated", SessionBody) } }), (c) => {
        const p = c.get("principal")!;
        const user = userOf(p);
        const row = user ? device.store.user(user) : undefined;
        return c.json({
          authenticated: true as const,
          as: describePrincipal(p),
          user,
          role: p.role,
          via: p.kind,
          totp: !!row?.totpSecret,
          mustEnrolTotp: p.kind === "session" && !!p.mustEnrolTotp,
          requireTotpForAdmins: auth.requireTotpForAdmins(),
          roles: ROLES.map((r) => ({ role: r, can: ROLE_CAN[r] })),
          power: !!opts.power,
        });
      })
      .post(
        "/password",
        requires("self"),
        describe({ tag: "auth", summary: "Change your own password (throttled like a login); ends your other sessions, your API tokens stay", ok: ok("changed"), errors: { 400: "new password too short or too long", 403: "the current password is wrong", 413: "body over 64 KiB", 429: "too many attempts: wait Retry-After seconds" } }),
        smallBody,
        check("json", PasswordBody),
        async (c) => {
          const body = c.req.valid("json");
          const p = c.get("principal")!;
          const user = userOf(p) ?? auth.setupAdmin();
          note(c, { object: user });
          try {
            await auth.changePassword(user, body.current, body.password, clientOf(c, opts), p.kind === "session" ? p.idHash : null);
          } catch (e) {
            if (kindOf(e) === "forbidden") {
              device.events.publish({ type: "auth.password-change-failed", message: `password change with a wrong current password from ${clientOf(c, opts)}` });
            }
            throw e;
          }
          device.events.publish({ type: "auth.password-changed", message: `password of ${user} changed; their other sessions ended (API tokens stay)` });
          return c.json({ ok: true as const });
        },
      )
      .post(
        "/tokens",
        requires("viewer"),
        describe({ tag: "auth", summary: "Create an API token of yours (its secret is shown once), with a role no higher than yours, maybe expiring", ok: { 201: jsonAnswer("created", NewTokenBody) }, errors: { 400: "no name, a name over 100 characters, an unknown role, an expiry in the past", 403: "a role above yours", 413: "body over 64 KiB" } }),
        smallBody,
        check("json", TokenBody),
        (c) => {
          const body = c.req.valid("json");
          const expiresAt = body.expiresAt !== undefined ? parseTime(body.expiresAt, "expiresAt") : body.expiresInDays !== undefined ? new Date(Date.now() + body.expiresInDays * 86_400_000) : null;
          const t = auth.createToken(c.get("principal")!, body.name, body.role, expiresAt);
          note(c, { object: `${t.id} ${t.name}` });
          device.events.publish({ type: "auth.token-created", message: `API token "${t.name}" of ${t.user} created (${t.role})`, data: { id: t.id } });
          return c.json(t, 201);
        },
      )
      // An admin sees every token; anyone else their own.
      .get("/tokens", requires("viewer"), describe({ tag: "auth", summary: "List the API tokens (no secrets): yours, or every user's for an admin", ok: any("`{tokens}`") }), (c) => {
        const p = c.get("principal")!;
        return c.json({ tokens: device.store.tokens(p.role === "admin" ? undefined : (userOf(p) ?? "")) });
      })
      .delete("/tokens/:id", requires("viewer"), describe({ tag: "auth", summary: "Delete an API token (yours; an admin's: any)", ok: ok("deleted"), errors: { 404: "no such token" } }), (c) => {
        const id = c.req.param("id");
        const p = c.get("principal")!;
        const row = device.store.token(id);
        if (!row || (p.role !== "admin" && row.user !== userOf(p))) throw new HttpError("not-found", `no API token with id ${id}`);
        if (!device.store.deleteToken(id)) throw new HttpError("not-found", `no API token with id ${id}`);
        device.events.publish({ type: "auth.token-deleted", message: `API token ${id} deleted` });
        return c.json({ ok: true as const });
      })

      // ---- users and their roles (admin)
      .get("/users", requires("admin"), describe({ tag: "users", summary: "The users, with their role and whether they have a second factor", ok: any("`{users, setupAdmin, requireTotpForAdmins}`") }), (c) =>
        c.json({ users: auth.users(), setupAdmin: auth.setupAdmin(), requireTotpForAdmins: auth.requireTotpForAdmins() }),
      )
      .post(
        "/users",
        requires("admin"),
        describe({ tag: "users", summary: "Add a user with a role (viewer, operator, admin)", ok: { 201: jsonAnswer("added: the user") }, errors: { 400: "a bad name, password or role", 409: "the name is taken", 413: "body over 64 KiB" } }),
        smallBody,
        check("json", NewUserBody),
        async (c) => {
          const body = c.req.valid("json");
          note(c, { object: body.name.slice(0, 64) });
          const u = await auth.createUser(body.name, body.password, body.role);
          device.events.publish({ type: "auth.user-added", message: `user ${u.name} added (${u.role}) by ${describePrincipal(c.get("principal")!)}` });
          return c.json(u, 201);
        },
      )
      .patch(
        "/users/:name",
        requires("admin"),
        describe({ tag: "users", summary: "Change a user's role or set a new password; either ends the user's sessions at once", ok: any("`{user, sessionsEnded}`"), errors: { 400: "a bad password or role", 404: "no such user", 409: "the last admin cannot be demoted", 413: "body over 64 KiB" } }),
        smallBody,
        check("json", UserPatchBody),
        async (c) => {
          const p = c.get("principal")!;
          const name = c.req.param("name");
          const r = await auth.updateUser(name, c.req.valid("json"), p.kind === "session" ? p.idHash : null);
          device.events.publish({ type: "auth.user-changed", message: `user ${name} changed (${r.user.role}) by ${describePrincipal(p)}; ${r.sessionsEnded} session(s) ended` });
          return c.json(r);
        },
      )
      .delete("/users/:name", requires("admin"), describe({ tag: "users", summary: "Remove a user: their sessions end and their tokens are revoked at once", ok: ok("removed"), errors: { 404: "no such user", 409: "the last admin cannot be removed" } }), (c) => {
        const name = c.req.param("name");
        auth.deleteUser(name);
        device.events.publish({ type: "auth.user-removed", message: `user ${name} removed by ${describePrincipal(c.get("principal")!)}; their sessions and tokens ended` });
        return c.json({ ok: true as const });
      })
      .delete("/users/:name/totp", requires("admin"), describe({ tag: "users", summary: "Remove a user's second factor (they lost their authenticator and recovery codes)", ok: ok("removed"), errors: { 404: "no such user" } }), async (c) => {
        await auth.removeTotp(c.req.param("name"), null, clientOf(c, opts));
        return c.json({ ok: true as const });
      })
      .put(
        "/auth/policy",
        requires("admin"),
        describe({ tag: "users", summary: "Require a second factor (TOTP) for every admin, or stop requiring it", ok: any("`{requireTotpForAdmins}`"), errors: { 409: "you have no second factor yourself yet", 413: "body over 64 KiB" } }),
        smallBody,
        check("json", PolicyBody),
        (c) => {
          auth.setRequireTotpForAdmins(c.req.valid("json").requireTotpForAdmins, c.get("principal")!);
          return c.json({ requireTotpForAdmins: auth.requireTotpForAdmins() });
        },
      )

      // ---- your own second factor (TOTP, RFC 6238): enrol with the QR code, confirm with a code, get recovery codes
      .post("/me/totp", requires("self"), describe({ tag: "auth", summary: "Start enrolling a second factor: a new secret, its otpauth URI and QR code (SVG)", ok: any("`{secret, uri, qrSvg}`"), errors: { 409: "already enrolled, or not a user (the local socket)" } }), (c) =>
        c.json(auth.startTotp(selfUser(c.get("principal")))),
      )
      .post(
        "/me/totp/confirm",
        requires("self"),
        describe({ tag: "auth", summary: "Confirm enrolment with a code from the app (throttled like a password); answers the one-time recovery codes, shown once", ok: any("`{recoveryCodes}`"), errors: { 403: "wrong code", 409: "no enrolment under way", 429: "too many attempts: wait Retry-After seconds" } }),
        smallBody,
        check("json", TotpCodeBody),
        (c) => c.json({ recoveryCodes: auth.confirmTotp(selfUser(c.get("principal")), c.req.valid("json").code, clientOf(c, opts)) }),
      )
      .delete(
        "/me/totp",
        requires("self"),
        describe({ tag: "auth", summary: "Remove your second factor (with your password)", ok: ok("removed"), errors: { 403: "wrong password", 409: "required for admins on this device", 429: "too many attempts: wait Retry-After seconds" } }),
        smallBody,
        check("json", RemoveTotpBody),
        async (c) => {
          const p = c.get("principal")!;
          if (p.role === "admin" && auth.requireTotpForAdmins()) throw new HttpError("conflict", "a second factor is required for admins on this device: it cannot be removed (an admin can lift the requirement)");
          await auth.removeTotp(selfUser(p), c.req.valid("json").password, clientOf(c, opts));
          return c.json({ ok: true as const });
        },
      )

      // ---- the audit trail (read only: the API never changes or deletes a record)
      .get(
        "/audit",
        requires("viewer"),
        describe({
          tag: "audit",
          summary: "The audit trail, oldest first: every state change and login with time, user or token, client, action, object, result; ?format=jsonl exports JSON lines",
          ok: { 200: { description: "`{records, lost, next}` (lost: records dropped to keep the trail within its budget), or JSON lines", content: { "application/json": {}, "application/x-ndjson": {} } } },
          errors: { 400: "since: not a time" },
        }),
        check("query", AuditQuery),
        (c) => {
          const q = c.req.valid("query");
          const since = q.since ? parseTime(q.since, "since") : undefined;
          const jsonl = q.format === "jsonl";
          const limit = clampInt(q.limit, 1, jsonl ? 100_000 : 5000, jsonl ? 100_000 : 500);
          const records = device.store.auditRecords({ since, after: clampInt(q.after, 0, Number.MAX_SAFE_INTEGER, 0), user: q.user, action: q.action, result: q.result, limit });
          const out = records.map(({ size: _size, ...r }) => r);
          if (jsonl) {
            return c.body(out.map((r) => JSON.stringify(r)).join("\n") + (out.length ? "\n" : ""), 200, {
              "Content-Type": "application/x-ndjson",
              "Content-Disposition": `attachment; filename="evebox-audit-${new Date().toISOString().slice(0, 10)}.jsonl"`,
            });
          }
          return c.json({ records: out, lost: device.store.auditLost(), next: out.at(-1)?.id ?? null });
        },
      )

      // ---- the desired-state document
      .get(
        "/config",
        requires("viewer"),
        describe({
          tag: "config",
          summary: "The current config: proto3 JSON, or the binary protobuf with Accept: application/x-proto-binary",
          description: "The ETag header is the config's hash (send it back as If-Match on PUT); X-Config-Version its version.",
          ok: { 200: { description: "the config (EdgeDevConfig)", content: { "application/json": {}, "application/x-proto-binary": {} } } },
          errors: { 404: "no config yet" },
        }),
        (c) => {
          const binary = wantsBinary(c.req.header("accept"));
          const cur = device.config.current(binary ? "binary" : "json");
          if (!cur) return c.json({ error: "no config yet: PUT one to /api/v1/config" }, 404);
          c.header("ETag", `"${cur.hash}"`);
          c.header("X-Config-Version", String(cur.version));
          if (binary) return c.body(cur.bytes as Uint8Array<ArrayBuffer>, 200, { "Content-Type": "application/x-proto-binary" });
          return c.json(cur.json as Record<string, unknown>);
        },
      )
      .put(
        "/config",
        requires("admin"),
        describe({
          tag: "config",
          summary: "Apply a config (EdgeDevConfig, proto3 JSON or binary); ?dryRun=1 checks and plans only",
          requestBody: { required: true, content: { "application/json": {}, "application/x-proto-binary": {} } },
          ok: { 200: jsonAnswer("unchanged, or a dry run: the plan"), 201: jsonAnswer("stored as a new version: its version and plan") },
          errors: { 400: "refused: `problems` lists each (path, message)", 409: managedRefusal, 412: "If-Match: the config changed since it was read", 413: "config too large", 415: "not JSON or protobuf" },
        }),
        configBody,
        check("query", DryRunQuery),
        async (c) => {
          if (device.managed()) {
            return c.json(
              { error: `this device is managed by the controller ${device.controllerUrl()}: it is the authority for the config; local start, stop, restart and purge still work` },
              409,
            );
          }
          const ifMatch = c.req.header("if-match");
          const cur = device.store.current();
          if (ifMatch && cur && ifMatch.replace(/"/g, "") !== cur.hash) {
            return c.json({ error: `the config changed since you read it (now version ${cur.version}); reload and try again` }, 412);
          }
          const body = new Uint8Array(await c.req.arrayBuffer());
          const dryRun = isTrue(c.req.valid("query").dryRun);
          const result = device.config.put(body, c.req.header("content-type") ?? "", {
            source: "local",
            author: describePrincipal(c.get("principal")!),
            dryRun,
          });
          return c.json(result, dryRun || result.unchanged ? 200 : 201);
        },
      )
      .get("/config/history", requires("viewer"), describe({ tag: "config", summary: "The stored config versions, newest first", ok: any("`{current, versions}`") }), check("query", HistoryQuery), (c) => {
        const q = c.req.valid("query");
        const limit = clampInt(q.limit, 1, 500, 100);
        const before = q.before ? clampInt(q.before, 1, Number.MAX_SAFE_INTEGER, 0) : undefined;
        const cur = device.store.current();
        return c.json({
          current: cur?.version ?? null,
          versions: device.store.configHistory(limit, before).map((v) => ({ ...v, current: v.version === cur?.version })),
        });
      })
      .get("/config/versions/:version", requires("viewer"), describe({ tag: "config", summary: "One stored config version, with its document", ok: any("the version"), errors: { 404: "no such version" } }), (c) => {
        const v = device.config.version(Number(c.req.param("version")));
        if (!v) throw new HttpError("not-found", `no config version ${c.req.param("version")}`);
        return c.json(v);
      })
      .post(
        "/config/rollback/:version",
        requires("admin"),
        describe({ tag: "config", summary: "Apply a stored version again (as a new version); ?dryRun=1 plans only", ok: any("the result, as PUT /config answers"), errors: { 400: "not a version number, or the version is refused now", 404: "no such version", 409: managedRefusal } }),
        check("query", DryRunQuery),
        (c) => {
          if (device.managed()) return c.json({ error: `this device is managed by the controller ${device.controllerUrl()}: roll back there` }, 409);
          const version = Number(c.req.param("version"));
          if (!Number.isSafeInteger(version) || version < 1) throw new HttpError("invalid", "version: expected a positive integer");
          return c.json(device.config.rollback(version, describePrincipal(c.get("principal")!), isTrue(c.req.valid("query").dryRun)));
        },
      )

      // ---- observed state
      .get("/status", requires("viewer"), describe({ tag: "status", summary: "The device's observed state: parts, apps, networks, volumes, content, base OS", ok: any("DeviceStatus (src/model/status.ts)") }), (c) =>
        // The cached body (the hot path above answers most of these before the router); typed as what it is.
        c.body(device.statusJson?.() ?? JSON.stringify(device.status()), 200, { "Content-Type": "application/json" }) as unknown as TypedResponse<DeviceStatus, 200, "json">,
      )
      // What validation checks a document against on this device, so the console's forms check the same before the plan.
      .get("/host", requires("viewer"), describe({ tag: "status", summary: "The device's memory, own networks and ports: what a config is validated against here", ok: any("`{memoryKiB, networks, ports: [{name, networks, defaultRoute}]}`") }), (c) =>
        c.json((opts.host ?? hostView)()),
      )
      .get(
        "/device/settings",
        requires("viewer"),
        describe({ tag: "device", summary: "The device's global settings (EVE config items): each supported one with its value, default, range, effect and state; the config's other items (unknown, or without effect here); read-only while managed (the controller sets them)", ok: { 200: jsonAnswer("the settings", DeviceSettingsBody) } }),
        (c) => {
          const m = device.config.model()?.model ?? EMPTY_MODEL;
          return c.json({ managed: device.managed(), ...settingsView(m.settings, m.configItemStatus) });
        },
      )
      // Reboot and shutdown are local commands: allowed when managed too, as EVE's local profile server allows.
      .post(
        "/device/:action{reboot|shutdown}",
        requires("operator"),
        describe({ tag: "device", summary: "Reboot or shut the device down (where evebox is PID 1)", parameters: oneOf("action", ["reboot", "shutdown"]), ok: { 202: jsonAnswer("accepted") }, errors: { 409: "refused now (an update is being written)", 501: "not the device's init" } }),
        (c) => {
          if (!opts.power) throw new HttpError("not-implemented", "reboot and shutdown work only where evebox is the device's init (PID 1)");
          const r = opts.power.request(c.req.param("action") as "reboot" | "shutdown", describePrincipal(c.get("principal")!));
          if (!r.accepted) throw new HttpError("conflict", r.message);
          return c.json({ ok: true as const, message: r.message }, 202);
        },
      )
      .post(
        "/apps/:uuid/:command{start|stop|restart|purge}",
        requires("operator"),
        describe({ tag: "apps", summary: "Start, stop, restart or purge an app of the current config (also when managed)", parameters: oneOf("command", ["start", "stop", "restart", "purge"]), ok: ok("queued"), errors: { 404: "no such app in the current config", 409: "the app runtime is not running yet" } }),
        (c) => {
          const uuid = c.req.param("uuid");
          const command = c.req.param("command") as "start" | "stop" | "restart" | "purge";
          if (!device.apps) throw new HttpError("conflict", "the app runtime is not running yet; try again in a moment");
          const doc = device.config.currentDoc()?.doc;
          if (!(doc?.apps ?? []).some((a: { uuidandversion?: { uuid?: string } }) => a.uuidandversion?.uuid === uuid)) {
            throw new HttpError("not-found", `no app ${uuid} in the current config`);
          }
          device.apps.localCommand(uuid, command, describePrincipal(c.get("principal")!));
          return c.json({ ok: true as const });
        },
      )
      // ---- networks: instances (bridges, ports, app interfaces), DHCP leases, per-rule firewall counters
      .get("/networks", requires("viewer"), describe({ tag: "networks", summary: "The network instances, each with its DHCP leases and routes; the VLAN sub-interfaces and bonds the device makes (`ports`), with their state", ok: any("`{instances, ports}`") }), (c) => {
        const n = opts.network?.() ?? null;
        return c.json({ instances: device.status().networkInstances.map((ni) => ({ ...ni, leases: n ? n.leases(ni.uuid) : [] })), ports: n ? n.ports() : [] });
      })
      // ---- hardware: the inventory (sysfs), the assignment groups of deviceIoList and who holds each
      .get("/hardware", requires("viewer"), describe({ tag: "hardware", summary: "The device's I/O (PCI, USB, serial, network, CAN), its assignment groups, which app holds each and why one is not assignable", ok: any("`{inventory, bundles, reserved, held}`"), errors: { 409: "the hardware part is not available" } }), (c) => {
        if (!opts.hardware) throw new HttpError("conflict", "the hardware part is not available on this console");
        return c.json(opts.hardware());
      })
      .get("/networks/:uuid/leases", requires("viewer"), describe({ tag: "networks", summary: "A network instance's DHCP leases", parameters: uuidParam, ok: any("`{leases}`"), errors: { 409: "the network part is not running yet" } }), (c) =>
        c.json({ leases: networkPart().leases(c.req.param("uuid")) }),
      )
      .get("/apps/:uuid/firewall", requires("viewer"), describe({ tag: "apps", summary: "An app's firewall rules per interface, with packet counters", ok: any("`{interfaces}`"), errors: { 409: "the network part is not running yet" } }), async (c) =>
        c.json({ interfaces: await networkPart().firewallOf(c.req.param("uuid")) }),
      )
      .get(
        "/apps/:uuid/:kind{console|vnc}",
        requires("operator"),
        describe({
          tag: "apps",
          summary: "WebSocket: an app's console (a shell, or a VM's serial console), or a VM's display (RFB, for noVNC)",
          parameters: oneOf("kind", ["console", "vnc"]),
          description: "Binary frames carry terminal bytes; text frames JSON control: in {type:\"resize\",cols,rows}, out {type:\"closed\",reason}.",
          ok: { 101: { description: "switching to the WebSocket" } },
          errors: { 404: "no such app", 409: "not running", 426: "not a WebSocket request" },
        }),
        consoleSocket(() => device.terminals, (c) => {
          // The same credentials the upgrade came with, looked up again: a removed user, a demotion, a logout end it.
          const raw = c.req.raw;
          return () => {
            const p = principalFrom(opts, raw);
            return !!p && roleAtLeast(p.role, "operator") && !(p.kind === "session" && p.mustEnrolTotp);
          };
        }),
      )
      .get("/apps/:uuid/logs", requires("viewer"), describe({ tag: "apps", summary: "An app's log lines (its console output, kept on the device)", ok: any("`{lines}`") }), check("query", LogsQuery), (c) => {
        const q = c.req.valid("query");
        const limit = clampInt(q.limit, 1, 5000, 500);
        const after = clampInt(q.after, 0, Number.MAX_SAFE_INTEGER, 0);
        return c.json({ lines: device.store.logsFor("app", c.req.param("uuid"), limit, after) });
      })
      .get("/events/recent", requires("viewer"), describe({ tag: "events", summary: "The latest events, newest first", ok: any("`{events}`") }), check("query", RecentEventsQuery), (c) =>
        c.json({ events: device.store.recentEvents(clampInt(c.req.valid("query").limit, 1, 1000, 100)) }),
      )
      .get(
        "/events",
        requires("viewer"),
        describe({ tag: "events", summary: "Server-sent events: every event as it happens (the type is in the data); a keep-alive every 15 s", ok: { 200: { description: "an event stream", content: { "text/event-stream": {} } } } }),
        (c) => {
          // An event stream is idle by nature between events: no idle timeout for it (it sends keep-alives every 15 s).
          (c.env as { timeout?: (req: Request, seconds: number) => void } | undefined)?.timeout?.(c.req.raw, 0);
          return streamSSE(c, async (stream) => {
            const queue: string[] = [];
            let wake: (() => void) | null = null;
            const unsubscribe = device.events.subscribe((e) => {
              if (queue.length < 1000) queue.push(JSON.stringify(e));
              wake?.();
            });
            stream.onAbort(() => {
              unsubscribe();
              wake?.();
            });
            await stream.writeSSE({ data: JSON.stringify({ type: "hello", version: device.version }) });
            while (!stream.aborted) {
              const next = queue.shift();
              if (next) {
                // Plain messages (no event name): EventSource's onmessage sees them; the type is in the data.
                await stream.writeSSE({ data: next });
                continue;
              }
              await Promise.race([new Promise<void>((r) => (wake = r)), stream.sleep(15_000)]);
              wake = null;
              if (queue.length === 0 && !stream.aborted) await stream.write(": keep-alive\n\n");
            }
            unsubscribe();
          });
        },
      )

      // ---- the controller link (EVE API v2): its state, and enrolling the device (URL, root certificate)
      .get("/controller", requires("viewer"), describe({ tag: "controller", summary: "The controller link: mode, identity, last contact", ok: any("ControllerStatus"), errors: { 404: "controller sync is not running" } }), async (c) =>
        c.json(await controllerOf(device).status()),
      )
      .put(
        "/controller",
        requires("admin"),
        describe({ tag: "controller", summary: "Enroll with a controller (its URL and root certificate), or change them", ok: any("the new ControllerStatus"), errors: { 400: "not an https URL, or not a certificate", 404: "controller sync is not running", 413: "body over 64 KiB" } }),
        smallBody,
        check("json", ControllerBody),
        async (c) => {
          const body = c.req.valid("json");
          const link = controllerOf(device);
          try {
            return c.json(await link.configure({ url: body.url, rootCertificate: body.rootCertificate }));
          } catch (e) {
            throw new HttpError("invalid", (e as Error).message);
          }
        },
      )

      // ---- images uploaded from the browser (air-gapped devices): src/console/README.md, storage/images.ts
      .route("/images", imageRoutes({ images: () => opts.images ?? null, config: device.config, events: device.events }))
      // ---- app bundles (air-gapped stacks): src/bundles/README.md
      .route("/bundles", bundleRoutes({ bundles: () => opts.bundles?.() ?? null, managedBy: () => (device.managed() ? (device.controllerUrl() ?? "(unknown)") : null) }))

      // ---- base OS updates (A/B slots): src/baseos/README.md
      .route("/baseos", baseosRoutes(opts.baseos ?? (() => ({ baseos: null, reason: "not an A/B device" }))))

      .get("/activity", requires("viewer"), describe({ tag: "events", summary: "What the device did and is doing: config versions, downloads, app states, updates, with who caused each", ok: { 200: jsonAnswer("the activity", ActivityBody) } }), check("query", ActivityQuery), (c) => {
        const q = c.req.valid("query");
        const before = q.before ? clampInt(q.before, 1, Number.MAX_SAFE_INTEGER, 0) : undefined;
        return c.json({ entries: device.store.eventsExcept(NOT_ACTIVITY, clampInt(q.limit, 1, 500, 50), before).map(toActivity), now: activityNow(device.status()) });
      })
      .get(
        "/metrics/history",
        requires("viewer"),
        describe({ tag: "status", summary: "The metrics history of the device or an app, for graphs: 1 h, 24 h or 7 days", ok: { 200: jsonAnswer("the series", MetricsHistoryBody) }, errors: { 400: "object is neither `device` nor a UUID, or an unknown range" } }),
        check("query", MetricsHistoryQuery),
        (c) => {
          const q = c.req.valid("query");
          if (q.object !== "device" && !UUID.test(q.object)) throw new HttpError("invalid", `object: expected "device" or an app's UUID, got ${JSON.stringify(q.object.slice(0, 64))}`);
          const range = q.range ?? "1h";
          const to = Date.now();
          return c.json({
            object: q.object,
            range,
            from: to - RANGES[range].ms,
            to,
            intervalMs: device.metricsIntervalMs,
            dropped: device.store.history.droppedCount,
            series: device.store.history.series(q.object.toLowerCase(), range, to),
          });
        },
      )
      .get("/metrics", requires("viewer"), describe({ tag: "status", summary: "Prometheus metrics", ok: { 200: { description: "text exposition format 0.0.4", content: { "text/plain": {} } } } }), (c) =>
        c.text(device.metricsText(), 200, { "Content-Type": "text/plain; version=0.0.4" }),
      )
  );
}

/** The routes under /api/v1 with their inputs and answers: what ui/api.ts types its client by. */
export type ConsoleApi = ReturnType<typeof apiRoutes>;

/** What a handler adds to its request's audit record (console/audit.ts). */
function note(c: Context<Env>, n: AuditNote): void {
  const a = c.get("audit");
  if (a) Object.assign(a, n);
}

/** The user of a self-service route (their own second factor): the local socket has none. */
function selfUser(p: Principal | null): string {
  const u = userOf(p);
  if (!u) throw new HttpError("conflict", "the local socket is not a user: sign in as one to enrol a second factor");
  return u;
}

/** A time in a query or body: ISO 8601, or milliseconds since the epoch. */
function parseTime(s: string, field: string): Date {
  const d = /^\d+$/.test(s) ? new Date(Number(s)) : new Date(s);
  if (Number.isNaN(d.getTime())) throw new HttpError("invalid", `${field}: expected a time (ISO 8601, or milliseconds since 1970)`);
  return d;
}

function controllerOf(device: ConsoleDevice) {
  const link = device.controllerLink();
  if (!link) throw new HttpError("not-found", "controller sync is not running on this device");
  return link;
}

function clientOf(c: Context, opts: Pick<ConsoleOptions, "trustAll" | "clientAddress">): string {
  if (opts.trustAll) return "local-socket";
  if (opts.clientAddress) return opts.clientAddress(c.req.raw) ?? "unknown";
  try {
    return getConnInfo(c).remote.address ?? "unknown";
  } catch {
    return "unknown";
  }
}

function checkOrigin(c: Context): void {
  const origin = c.req.header("origin");
  const host = c.req.header("host");
  if (origin) {
    let ok = false;
    try {
      ok = new URL(origin).host === host;
    } catch {}
    if (!ok) throw new HttpError("forbidden", `cross-origin request refused (Origin ${origin} is not this console)`);
    return;
  }
  const site = c.req.header("sec-fetch-site");
  if (site && site !== "same-origin" && site !== "none") throw new HttpError("forbidden", "cross-site request refused");
}

function wantsBinary(accept: string | undefined): boolean {
  return !!accept && /application\/(x-proto-binary|x-protobuf|protobuf)/.test(accept);
}

function clampInt(s: string | undefined, lo: number, hi: number, dflt: number): number {
  const n = Number(s);
  if (s === undefined || !Number.isFinite(n)) return dflt;
  return Math.max(lo, Math.min(hi, Math.trunc(n)));
}

function isTrue(s: string | undefined): boolean {
  return s === "1" || s === "true";
}
