// The one client of evebox's local REST API (/api/v1): Hono's `hc` on the server's own route types
// (`ConsoleApi`, src/console/app.ts), so a path, its input and its answer are checked against the routes. Every
// call is same-origin JSON with the session cookie; a non-2xx answer throws ApiError with the server's `error`,
// `problems` and the wait of a 429 (body `retryAfterSeconds` or `Retry-After`); a network failure is status 0.
// A 401 on a call that needs a session reports to `onUnauthorized`, so the app can send the user to sign in.
import { hc, type ClientResponse } from "hono/client";
import type { SuccessStatusCode } from "hono/utils/http-status";
import type { ConsoleApi } from "../src/console/app.ts";
import type { Doc, PlanStep } from "./config-edit";
import type { HostView } from "../src/config/device-env.ts";
import type { HardwareStatus } from "../src/hardware/service.ts";

export type { HardwareStatus };

export interface Problem {
  path: string;
  message: string;
}

/** A failed API call. `status` is the HTTP status, or 0 when the device could not be reached at all. */
export class ApiError extends Error {
  readonly status: number;
  readonly problems?: Problem[];
  /** Seconds to wait before retrying, from a 429 answer (body `retryAfterSeconds` or `Retry-After`). */
  readonly retryAfterSeconds?: number;
  /** The answer's other fields: `totpRequired` of a login, `requiredRole` of a refusal by role. */
  readonly details: Record<string, unknown> = {};

  constructor(status: number, message: string, problems?: Problem[], retryAfterSeconds?: number, details?: Record<string, unknown>) {
    super(message);
    if (details) this.details = details;
    this.name = "ApiError";
    this.status = status;
    if (problems && problems.length > 0) this.problems = problems;
    if (retryAfterSeconds !== undefined) this.retryAfterSeconds = retryAfterSeconds;
  }
}

export interface Health {
  ok: true;
  version: string;
  setupRequired: boolean;
  deviceName: string;
}

// The device's read models are the server's own types (src/model/), not a copy that could drift.
import type { DeviceStatus, ObjectStatus, PartStatus } from "../src/model/status.ts";
export type { DeviceStatus, PartStatus };
export type DeviceMode = DeviceStatus["device"]["mode"];
export type PartState = PartStatus["state"];
export type DeviceInfo = DeviceStatus["device"];
/** An app as GET /status lists it; `state` is EVE's app state name, e.g. "RUNNING", "HALTED". */
export type AppStatus = ObjectStatus;
export type StatusItem = ObjectStatus;

export interface CurrentConfig {
  /** The current EdgeDevConfig as proto3 JSON; null when the device has none yet (404). */
  doc: Doc | null;
  /** The ETag of that document (its hash, quoted), for If-Match; null when there is none. */
  etag: string | null;
}

export interface DryRunResult {
  plan: PlanStep[];
  unchanged: boolean;
  hash: string;
}

export interface ApplyResult {
  version: number | null;
  hash: string;
  plan: PlanStep[];
  unchanged: boolean;
}

export type AppCommand = "start" | "stop" | "restart" | "purge";

export interface LogLine {
  id: number;
  ts: string | number;
  level: string;
  message: string;
}

export type Role = "viewer" | "operator" | "admin";

export interface UserInfo {
  name: string;
  role: Role;
  createdAt: string | number;
  updatedAt: string | number;
  totp: boolean;
  recoveryCodesLeft: number;
}

export interface AuditRecord {
  id: number;
  ts: string | number;
  user: string | null;
  token: string | null;
  client: string;
  action: string;
  object: string | null;
  result: "ok" | "refused" | "failed";
  status: number;
  detail: string | null;
}

export interface AuditFilter {
  user?: string;
  action?: string;
  result?: "" | "ok" | "refused" | "failed";
  /** A time the browser can parse (datetime-local) */
  since?: string;
  limit?: number;
}

function auditQuery(q: AuditFilter): Record<string, string> {
  const out: Record<string, string> = {};
  if (q.user) out.user = q.user;
  if (q.action) out.action = q.action;
  if (q.result) out.result = q.result;
  if (q.since) {
    const d = new Date(q.since);
    if (!Number.isNaN(d.getTime())) out.since = d.toISOString();
  }
  if (q.limit) out.limit = String(q.limit);
  return out;
}

export interface ApiClientOptions {
  /** Prefix of every API path; "/api/v1" unless testing. */
  base?: string;
  /** Called when a call that needs a session answers 401. */
  onUnauthorized?: () => void;
  fetch?: typeof fetch;
}

interface SendOptions {
  /** 401 is an expected answer of this call (wrong password, no session): don't report it as a lost session. */
  expect401?: boolean;
}

/** The body of a call's successful answers, as the route declares them. */
type OkBody<R> = R extends ClientResponse<infer T, infer S, infer _F> ? (S extends SuccessStatusCode ? T : never) : never;

const UNREACHABLE = "The device could not be reached. Check the network connection and try again.";
const JSON_BODY = { "Content-Type": "application/json" };

export type ApiClient = ReturnType<typeof createApiClient>;
/** What the Apps pages and the config change flow need of the client. */
export type AppsApi = Pick<ApiClient, "config" | "dryRun" | "apply" | "command" | "logs">;

export function createApiClient(options: ApiClientOptions = {}) {
  const base = options.base ?? "/api/v1";
  const fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
  const rpc = hc<ConsoleApi>(base, {
    headers: { Accept: "application/json" },
    fetch: async (input: RequestInfo | URL, init?: RequestInit) => {
      try {
        return await fetchImpl(input, { ...init, credentials: "same-origin" });
      } catch {
        throw new ApiError(0, UNREACHABLE);
      }
    },
  });
  const enc = encodeURIComponent;

  /** Runs one call; a non-2xx answer throws ApiError (a 401 also reports a lost session unless expected). */
  async function send<R extends ClientResponse<unknown, number, string>>(call: Promise<R>, opts: SendOptions = {}): Promise<{ data: OkBody<R>; res: R }> {
    const res = await call;
    const data = await readJson(res as unknown as Response);
    if (!res.ok) {
      const error = errorFrom(res as unknown as Response, data);
      if (res.status === 401 && !opts.expect401) options.onUnauthorized?.();
      throw error;
    }
    return { data: data as OkBody<R>, res };
  }
  const get = async <R extends ClientResponse<unknown, number, string>>(call: Promise<R>, opts?: SendOptions) => (await send(call, opts)).data;

  return {
    /** URL of the server-sent event stream, for EventSource. */
    eventsUrl: `${base}/events`,
    /** The typed routes themselves (Hono's client), for a call that has no method here yet: wrap it in `send`. */
    rpc,
    send,

    // ---- sign-in
    health: () => get(rpc.health.$get()),
    async setup(token: string, password: string) {
      await send(rpc.setup.$post({ json: { token, password } }));
    },
    /** Signs in; `user` left out means the admin made at setup. A user with a second factor needs `totp`. */
    async login(password: string, user?: string, totp?: string) {
      await send(rpc.login.$post({ json: { password, ...(user ? { user } : {}), ...(totp ? { totp } : {}) } }), { expect401: true });
    },
    async logout() {
      try {
        await send(rpc.logout.$post(), { expect401: true });
      } catch (e) {
        // Already signed out is what the caller wanted.
        if (!(e instanceof ApiError && e.status === 401)) throw e;
      }
    },
    /** True when the session cookie is valid, false on 401. */
    async session() {
      try {
        await send(rpc.session.$get(), { expect401: true });
        return true;
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) return false;
        throw e;
      }
    },
    /** Who is signed in, and whether reboot and shutdown work here. */
    sessionInfo: () => get(rpc.session.$get()),
    async changePassword(current: string, password: string) {
      await send(rpc.password.$post({ json: { current, password } }));
    },
    tokens: async () => (await get(rpc.tokens.$get())).tokens,
    createToken: (name: string, role?: Role, expiresInDays?: number) =>
      get(rpc.tokens.$post({ json: { name, ...(role ? { role } : {}), ...(expiresInDays ? { expiresInDays } : {}) } })),

    // ---- users (admin), your own second factor, the audit trail
    users: () => get(rpc.users.$get()) as Promise<{ users: UserInfo[]; setupAdmin: string; requireTotpForAdmins: boolean }>,
    addUser: (name: string, password: string, role: Role) => get(rpc.users.$post({ json: { name, password, role } })),
    changeUser: (name: string, change: { role?: Role; password?: string }) => get(rpc.users[":name"].$patch({ param: { name: enc(name) }, json: change })),
    async removeUser(name: string) {
      await send(rpc.users[":name"].$delete({ param: { name: enc(name) } }));
    },
    async resetTotp(name: string) {
      await send(rpc.users[":name"].totp.$delete({ param: { name: enc(name) } }));
    },
    setPolicy: (requireTotpForAdmins: boolean) => get(rpc.auth.policy.$put({ json: { requireTotpForAdmins } })),
    startTotp: () => get(rpc.me.totp.$post()) as Promise<{ secret: string; uri: string; qrSvg: string }>,
    confirmTotp: async (code: string) => (await get(rpc.me.totp.confirm.$post({ json: { code } }))).recoveryCodes as string[],
    async removeTotp(password: string) {
      await send(rpc.me.totp.$delete({ json: { password } }));
    },
    audit: (q: AuditFilter) => get(rpc.audit.$get({ query: auditQuery(q) })) as Promise<{ records: AuditRecord[]; lost: number; next: number | null }>,
    /** The same records as JSON lines, for a download link. */
    auditExportUrl: (q: AuditFilter) => `${base}/audit?${new URLSearchParams({ ...auditQuery(q), format: "jsonl" }).toString()}`,
    async deleteToken(id: string) {
      await send(rpc.tokens[":id"].$delete({ param: { id: enc(id) } }));
    },

    // ---- state and commands
    status: () => get(rpc.status.$get()) as Promise<DeviceStatus>,
    deviceSettings: () => get(rpc.device.settings.$get()),
    power: (action: "reboot" | "shutdown") => get(rpc.device[":action{reboot|shutdown}"].$post({ param: { action } })),
    async command(uuid: string, command: AppCommand) {
      await send(rpc.apps[":uuid"][":command{start|stop|restart|purge}"].$post({ param: { uuid: enc(uuid), command } }));
    },
    async logs(uuid: string, after: number, limit = 500): Promise<LogLine[]> {
      const lines = (await get(rpc.apps[":uuid"].logs.$get({ param: { uuid: enc(uuid) }, query: { after: String(after), limit: String(limit) } }))).lines as unknown;
      return Array.isArray(lines) ? (lines as LogLine[]) : [];
    },
    networks: async () => (await get(rpc.networks.$get())).instances,
    /** The network instances and the VLAN sub-interfaces and bonds the device makes (`ports`), in one answer. */
    networksAndPorts: async () => {
      const b = await get(rpc.networks.$get());
      return { instances: b.instances, ports: (b as { ports?: unknown }).ports ?? [] };
    },
    /** The device's memory, own networks and ports: what the forms check a document against (ui/device-check.ts). */
    host: () => get(rpc.host.$get()) as Promise<HostView>,
    /** The metrics history of `device` or an app, in columns (src/store/README.md says what each range holds). */
    metricsHistory: (object: string, range: "1h" | "24h" | "7d") => get(rpc.metrics.history.$get({ query: { object, range } })),
    /** What the device did (newest first, `before` an entry's id for older ones) and what it is doing now. */
    activity: (limit: number, before?: number) => get(rpc.activity.$get({ query: { limit: String(limit), ...(before ? { before: String(before) } : {}) } })),
    /** The device's I/O, its assignment groups and who holds each (GET /hardware). */
    hardware: () => get(rpc.hardware.$get()) as Promise<HardwareStatus>,
    firewall: async (uuid: string) => (await get(rpc.apps[":uuid"].firewall.$get({ param: { uuid: enc(uuid) } }))).interfaces,

    // ---- the config
    async config(): Promise<CurrentConfig> {
      try {
        const { data, res } = await send(rpc.config.$get());
        return { doc: (data ?? {}) as Doc, etag: res.headers.get("ETag") };
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) return { doc: null, etag: null };
        throw e;
      }
    },
    async dryRun(doc: Doc): Promise<DryRunResult> {
      const d = (await get(rpc.config.$put({ query: { dryRun: "1" } }, { headers: JSON_BODY, init: { body: JSON.stringify(doc) } }))) as Partial<DryRunResult>;
      return { plan: d.plan ?? [], unchanged: !!d.unchanged, hash: d.hash ?? "" };
    },
    async apply(doc: Doc, etag: string | null): Promise<ApplyResult> {
      const headers: Record<string, string> = etag ? { ...JSON_BODY, "If-Match": etag } : JSON_BODY;
      const d = (await get(rpc.config.$put({ query: {} }, { headers, init: { body: JSON.stringify(doc) } }))) as Partial<ApplyResult>;
      return { version: d.version ?? null, hash: d.hash ?? "", plan: d.plan ?? [], unchanged: !!d.unchanged };
    },
    configHistory: (limit: number) => get(rpc.config.history.$get({ query: { limit: String(limit) } })),
    configVersion: (version: number) => get(rpc.config.versions[":version"].$get({ param: { version: String(version) } })),

    // ---- the controller link
    controller: () => get(rpc.controller.$get()),
    configureController: (body: { url?: string; rootCertificate?: string }) => get(rpc.controller.$put({ json: body })),

    // ---- images imported by hand (the upload itself is ui/images.ts: XMLHttpRequest, for its progress)
    images: () => get(rpc.images.$get()),
    createImageUpload: (name: string, size: number) => get(rpc.images.uploads.$post({ json: { name, size } })),
    imageUpload: (id: string) => get(rpc.images.uploads[":id"].$get({ param: { id: enc(id) } })),
    async cancelImageUpload(id: string) {
      await send(rpc.images.uploads[":id"].$delete({ param: { id: enc(id) } }));
    },
    /** The URL an upload's bytes are sent to (PATCH …?offset=). */
    imageUploadUrl: (id: string, offset: number) => `${base}/images/uploads/${enc(id)}?offset=${offset}`,
    async deleteImage(sha256: string) {
      await send(rpc.images[":sha256"].$delete({ param: { sha256: enc(sha256) } }));
    },

    // ---- app bundles (the file's upload itself is ui/bundles.ts: XMLHttpRequest, for its progress)
    bundles: () => get(rpc.bundles.$get()),
    /** The plan of a staged bundle with these parameter values (a dry run; nothing changes). */
    inspectBundle: (staged: string, params: Record<string, string>) => get(rpc.bundles.$post({ query: { dryRun: "1", staged, params: JSON.stringify(params) } })),
    applyBundle: (staged: string, params: Record<string, string>) => get(rpc.bundles.$post({ query: { staged, params: JSON.stringify(params) } })),
    removeBundle: (name: string) => get(rpc.bundles[":name"].$delete({ param: { name: enc(name) } })),
    /** Where a bundle file is sent for its dry run (POST, application/octet-stream). */
    bundleUploadUrl: `${base}/bundles?dryRun=1`,

    // ---- base OS updates
    baseos: () => get(rpc.baseos.$get()),
    async baseosAction(action: "activate" | "cancel") {
      await send(rpc.baseos[action].$post());
    },
    baseosRetry: (version?: string) => get(rpc.baseos.retry.$post({ json: { version } })),
    baseosSettings: (settings: Record<string, unknown>) => get(rpc.baseos.settings.$put({ json: settings })),
  };
}

async function readJson(res: Response): Promise<unknown> {
  const text = await res.text().catch(() => "");
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function errorFrom(res: Response, data: unknown): ApiError {
  const body = (typeof data === "object" && data !== null ? data : {}) as Record<string, unknown>;
  const message =
    typeof body.error === "string" && body.error.trim() !== ""
      ? body.error
      : `The device answered ${res.status}${res.statusText ? ` ${res.statusText}` : ""}.`;
  const problems = Array.isArray(body.problems)
    ? body.problems
        .filter((p): p is Problem => typeof p === "object" && p !== null && typeof p.message === "string")
        .map((p) => ({ path: String(p.path ?? ""), message: p.message }))
    : undefined;
  let retryAfter: number | undefined;
  if (typeof body.retryAfterSeconds === "number" && Number.isFinite(body.retryAfterSeconds)) {
    retryAfter = body.retryAfterSeconds;
  } else {
    const header = Number(res.headers.get("Retry-After"));
    if (res.headers.has("Retry-After") && Number.isFinite(header)) retryAfter = header;
  }
  if (retryAfter !== undefined) retryAfter = Math.max(0, Math.ceil(retryAfter));
  return new ApiError(res.status, message, problems, retryAfter, body);
}
