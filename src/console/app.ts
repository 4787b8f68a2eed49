// The console's HTTP surface: thin routes that validate input, call the device, and answer JSON.
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { getConnInfo } from "hono/bun";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { secureHeaders } from "hono/secure-headers";
import { streamSSE } from "hono/streaming";
import { type Auth, AuthError, describePrincipal, type Principal, SESSION_TTL_MS } from "../auth/auth.ts";
import type { ConsoleDevice } from "./device.ts";
import { errorBody } from "./errors.ts";
import { createLogger } from "../lib/log.ts";
import { DomainError } from "../model/errors.ts";
import type { NetworkManager } from "../network/manager.ts";
import { baseosRoutes, type BaseOsRef } from "../baseos/routes.ts";
import { consoleSocket } from "./console-socket.ts";
import type { UiAssets } from "./ui-assets.ts";

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
  /** Who sent a request, where the TCP listener is behind the connection gate (its peer is then the gate). */
  clientAddress?: (req: Request) => string | null;
}

type Env = { Variables: { principal: Principal | null } };

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export function createConsoleApp(opts: ConsoleOptions): Hono<Env> {
  const { auth, device } = opts;
  const maxConfigBytes = opts.maxConfigBytes ?? 16 * 1024 * 1024;
  const app = new Hono<Env>();
  const log = createLogger("console", device.store);

  // Every refusal of every part (a config's problems, a login, base OS updates, app consoles) is a DomainError,
  // answered here through the one kind → status mapping; anything else is a fault of evebox, logged.
  app.onError((err, c) => {
    if (err instanceof DomainError) {
      const { status, headers, body } = errorBody(err);
      for (const [k, v] of Object.entries(headers)) c.header(k, v);
      return c.json(body, status);
    }
    log.error(`${c.req.method} ${c.req.path}: ${(err as Error).message}`);
    return c.json({ error: `internal error: ${(err as Error).message}` }, 500);
  });
  app.notFound((c) => c.json({ error: `no such endpoint: ${c.req.method} ${c.req.path}` }, 404));

  app.use(
    "*",
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'self'"],
        connectSrc: ["'self'"],
        imgSrc: ["'self'", "data:"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        frameAncestors: ["'none'"],
      },
      crossOriginEmbedderPolicy: false,
    }),
  );

  // Who is asking: a session cookie, a bearer token, or the trusted local socket.
  app.use("/api/*", async (c, next) => {
    let p: Principal | null = null;
    if (opts.trustAll) p = { kind: "local-socket" };
    else {
      const authz = c.req.header("authorization");
      if (authz?.startsWith("Bearer ")) p = auth.tokenFor(authz.slice(7).trim());
      else p = auth.sessionFor(getCookie(c, SESSION_COOKIE));
    }
    c.set("principal", p);
    // A cookie is sent by the browser on its own, so state changes must come from our own pages.
    if (UNSAFE.has(c.req.method) && p?.kind !== "token" && p?.kind !== "local-socket") checkOrigin(c);
    await next();
  });

  const requireAuth: MiddlewareHandler<Env> = async (c, next) => {
    if (!c.get("principal")) return c.json({ error: "not logged in: log in on the console or send 'Authorization: Bearer <token>'" }, 401);
    await next();
  };
  const smallBody = bodyLimit({ maxSize: 64 * 1024, onError: (c) => c.json({ error: "request body too large (limit 64 KiB)" }, 413) });
  const configBody = bodyLimit({
    maxSize: maxConfigBytes,
    onError: (c) => c.json({ error: `config too large (limit ${Math.round(maxConfigBytes / 1024 / 1024)} MiB)` }, 413),
  });

  const api = new Hono<Env>();

  // ---- open endpoints
  api.get("/health", (c) => c.json({ ok: true, version: device.version, setupRequired: !auth.isSetUp(), deviceName: device.name() }));

  api.post("/setup", smallBody, async (c) => {
    const body = await jsonBody(c);
    const secret = await auth.setup(body.token, body.password, clientOf(c, opts));
    startSession(c, secret);
    device.events.publish({ type: "auth.setup", message: "admin password set" });
    return c.json({ ok: true });
  });

  api.post("/login", smallBody, async (c) => {
    const body = await jsonBody(c);
    try {
      const secret = await auth.login(body.password, clientOf(c, opts));
      startSession(c, secret);
      return c.json({ ok: true });
    } catch (e) {
      if (e instanceof AuthError && e.kind === "unauthorized") {
        device.events.publish({ type: "auth.login-failed", message: `failed login from ${clientOf(c, opts)}` });
      }
      throw e;
    }
  });

  // ---- everything below needs a principal
  api.use("*", async (c, next) => {
    const path = c.req.path.replace(/^\/api\/v1/, "");
    if (path === "/health" || path === "/setup" || path === "/login") return next();
    return requireAuth(c, next);
  });

  api.post("/logout", (c) => {
    auth.logout(c.get("principal"));
    deleteCookie(c, SESSION_COOKIE, { path: "/" });
    return c.json({ ok: true });
  });
  // `power`: whether reboot and shutdown work here (evebox is the device's init).
  api.get("/session", (c) => c.json({ authenticated: true, as: describePrincipal(c.get("principal")!), power: !!opts.power }));

  api.post("/password", smallBody, async (c) => {
    const body = await jsonBody(c);
    const p = c.get("principal")!;
    try {
      await auth.changePassword(body.current, body.password, clientOf(c, opts), p.kind === "session" ? p.idHash : null);
    } catch (e) {
      if (e instanceof AuthError && e.kind === "forbidden") {
        device.events.publish({ type: "auth.password-change-failed", message: `password change with a wrong current password from ${clientOf(c, opts)}` });
      }
      throw e;
    }
    device.events.publish({ type: "auth.password-changed", message: "admin password changed; other sessions ended (API tokens stay)" });
    return c.json({ ok: true });
  });

  api.post("/tokens", smallBody, async (c) => {
    const body = await jsonBody(c);
    const t = auth.createToken(body.name);
    device.events.publish({ type: "auth.token-created", message: `API token "${t.name}" created`, data: { id: t.id } });
    return c.json(t, 201);
  });
  api.get("/tokens", (c) => c.json({ tokens: device.store.tokens() }));
  api.delete("/tokens/:id", (c) => {
    if (!device.store.deleteToken(c.req.param("id"))) throw new DomainError("not-found", `no API token with id ${c.req.param("id")}`);
    device.events.publish({ type: "auth.token-deleted", message: `API token ${c.req.param("id")} deleted` });
    return c.json({ ok: true });
  });

  // ---- the desired-state document
  api.get("/config", (c) => {
    const binary = wantsBinary(c.req.header("accept"));
    const cur = device.config.current(binary ? "binary" : "json");
    if (!cur) return c.json({ error: "no config yet: PUT one to /api/v1/config" }, 404);
    c.header("ETag", `"${cur.hash}"`);
    c.header("X-Config-Version", String(cur.version));
    if (binary) return c.body(cur.bytes as Uint8Array<ArrayBuffer>, 200, { "Content-Type": "application/x-proto-binary" });
    return c.json(cur.json);
  });

  api.put("/config", configBody, async (c) => {
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
    const dryRun = ["1", "true"].includes(c.req.query("dryRun") ?? "");
    const result = device.config.put(body, c.req.header("content-type") ?? "", {
      source: "local",
      author: describePrincipal(c.get("principal")!),
      dryRun,
    });
    return c.json(result, dryRun || result.unchanged ? 200 : 201);
  });

  api.get("/config/history", (c) => {
    const limit = clampInt(c.req.query("limit"), 1, 500, 100);
    const before = c.req.query("before") ? clampInt(c.req.query("before"), 1, Number.MAX_SAFE_INTEGER, 0) : undefined;
    const cur = device.store.current();
    return c.json({
      current: cur?.version ?? null,
      versions: device.store.configHistory(limit, before).map((v) => ({ ...v, current: v.version === cur?.version })),
    });
  });

  api.get("/config/versions/:version", (c) => {
    const v = device.config.version(Number(c.req.param("version")));
    if (!v) throw new DomainError("not-found", `no config version ${c.req.param("version")}`);
    return c.json(v);
  });

  api.post("/config/rollback/:version", (c) => {
    if (device.managed()) return c.json({ error: `this device is managed by the controller ${device.controllerUrl()}: roll back there` }, 409);
    const version = Number(c.req.param("version"));
    if (!Number.isSafeInteger(version) || version < 1) throw new DomainError("invalid", "version: expected a positive integer");
    const dryRun = ["1", "true"].includes(c.req.query("dryRun") ?? "");
    return c.json(device.config.rollback(version, describePrincipal(c.get("principal")!), dryRun));
  });

  // ---- observed state
  api.get("/status", (c) => c.json(device.status()));
  // Reboot and shutdown are local commands: allowed when managed too, as EVE's local profile server allows.
  api.post("/device/:action{reboot|shutdown}", (c) => {
    if (!opts.power) throw new DomainError("not-implemented", "reboot and shutdown work only where evebox is the device's init (PID 1)");
    const r = opts.power.request(c.req.param("action") as "reboot" | "shutdown", describePrincipal(c.get("principal")!));
    if (!r.accepted) throw new DomainError("conflict", r.message);
    return c.json({ ok: true, message: r.message }, 202);
  });
  api.post("/apps/:uuid/:command{start|stop|restart|purge}", (c) => {
    const uuid = c.req.param("uuid");
    const command = c.req.param("command") as "start" | "stop" | "restart" | "purge";
    if (!device.apps) throw new DomainError("conflict", "the app runtime is not running yet; try again in a moment");
    const doc = device.config.currentDoc()?.doc;
    if (!(doc?.apps ?? []).some((a: { uuidandversion?: { uuid?: string } }) => a.uuidandversion?.uuid === uuid)) {
      throw new DomainError("not-found", `no app ${uuid} in the current config`);
    }
    device.apps.localCommand(uuid, command);
    return c.json({ ok: true });
  });
  // ---- networks: instances (bridges, ports, app interfaces), DHCP leases, per-rule firewall counters
  const networkPart = () => {
    const n = opts.network?.();
    if (!n) throw new DomainError("conflict", "the network part is not running yet; try again in a moment");
    return n;
  };
  api.get("/networks", (c) => {
    const n = opts.network?.() ?? null;
    return c.json({ instances: device.status().networkInstances.map((ni) => ({ ...ni, leases: n ? n.leases(ni.uuid) : [] })) });
  });
  api.get("/networks/:uuid/leases", (c) => c.json({ leases: networkPart().leases(c.req.param("uuid")) }));
  api.get("/apps/:uuid/firewall", async (c) => c.json({ interfaces: await networkPart().firewallOf(c.req.param("uuid")) }));
  api.get("/apps/:uuid/:kind{console|vnc}", consoleSocket(() => device.terminals));
  api.get("/apps/:uuid/logs", (c) => {
    const limit = clampInt(c.req.query("limit"), 1, 5000, 500);
    const after = clampInt(c.req.query("after"), 0, Number.MAX_SAFE_INTEGER, 0);
    return c.json({ lines: device.store.logsFor("app", c.req.param("uuid"), limit, after) });
  });
  api.get("/events/recent", (c) => c.json({ events: device.store.recentEvents(clampInt(c.req.query("limit"), 1, 1000, 100)) }));

  api.get("/events", (c) => {
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
  });

  // ---- the controller link (EVE API v2): its state, and enrolling the device (URL, root certificate)
  api.get("/controller", (c) => c.json(controllerOf(device).status()));
  api.put("/controller", smallBody, async (c) => {
    const body = await jsonBody(c);
    const link = controllerOf(device);
    try {
      return c.json(await link.configure({ url: body.url, rootCertificate: body.rootCertificate }));
    } catch (e) {
      throw new DomainError("invalid", (e as Error).message);
    }
  });

  // ---- base OS updates (A/B slots): src/baseos/README.md
  api.route("/baseos", baseosRoutes(opts.baseos ?? (() => ({ baseos: null, reason: "not an A/B device" }))));

  api.get("/metrics", (c) => c.text(device.metricsText(), 200, { "Content-Type": "text/plain; version=0.0.4" }));

  app.route("/api/v1", api);
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

  function startSession(c: Context<Env>, secret: string) {
    setCookie(c, SESSION_COOKIE, secret, {
      path: "/",
      httpOnly: true,
      sameSite: "Strict",
      secure: opts.secureCookies ?? false,
      maxAge: Math.floor(SESSION_TTL_MS / 1000),
    });
  }

  return app;
}

function controllerOf(device: ConsoleDevice) {
  const link = device.controllerLink();
  if (!link) throw new DomainError("not-found", "controller sync is not running on this device");
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
    if (!ok) throw new DomainError("forbidden", `cross-origin request refused (Origin ${origin} is not this console)`);
    return;
  }
  const site = c.req.header("sec-fetch-site");
  if (site && site !== "same-origin" && site !== "none") throw new DomainError("forbidden", "cross-site request refused");
}

async function jsonBody(c: Context): Promise<Record<string, unknown>> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new DomainError("invalid", "expected a JSON object in the request body");
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw new DomainError("invalid", "expected a JSON object in the request body");
  return body as Record<string, unknown>;
}

function wantsBinary(accept: string | undefined): boolean {
  return !!accept && /application\/(x-proto-binary|x-protobuf|protobuf)/.test(accept);
}

function clampInt(s: string | undefined, lo: number, hi: number, dflt: number): number {
  const n = Number(s);
  if (s === undefined || !Number.isFinite(n)) return dflt;
  return Math.max(lo, Math.min(hi, Math.trunc(n)));
}
