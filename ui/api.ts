// Typed client for evebox's local REST API (/api/v1). Every call is same-origin JSON with the session cookie.
// A 401 on a call that needs a session reports to `onUnauthorized`, so the app can send the user to sign in.

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

  constructor(status: number, message: string, problems?: Problem[], retryAfterSeconds?: number) {
    super(message);
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

export interface ApiClient {
  health(): Promise<Health>;
  setup(token: string, password: string): Promise<void>;
  login(password: string): Promise<void>;
  logout(): Promise<void>;
  /** True when the session cookie is valid, false on 401. */
  session(): Promise<boolean>;
  status(): Promise<DeviceStatus>;
  /** Any other call under the API base: JSON in and out, the same error handling (401 → sign in again). */
  call<T>(method: string, path: string, body?: unknown): Promise<T>;
  /** URL of the server-sent event stream, for EventSource. */
  readonly eventsUrl: string;
}

export interface ApiClientOptions {
  /** Prefix of every API path; "/api/v1" unless testing. */
  base?: string;
  /** Called when a call that needs a session answers 401. */
  onUnauthorized?: () => void;
  fetch?: typeof fetch;
}

interface RequestOptions {
  body?: unknown;
  /** 401 is an expected answer of this call (wrong password, no session): don't report it as a lost session. */
  expect401?: boolean;
}

export function createApiClient(options: ApiClientOptions = {}): ApiClient {
  const base = options.base ?? "/api/v1";
  const fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));

  async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    let res: Response;
    try {
      res = await fetchImpl(base + path, { method, headers, body, credentials: "same-origin" });
    } catch {
      throw new ApiError(0, "The device could not be reached. Check the network connection and try again.");
    }
    const data = await readJson(res);
    if (!res.ok) {
      const error = errorFrom(res, data);
      if (res.status === 401 && !opts.expect401) options.onUnauthorized?.();
      throw error;
    }
    return data as T;
  }

  return {
    eventsUrl: `${base}/events`,
    health: () => request<Health>("GET", "/health"),
    async setup(token, password) {
      await request("POST", "/setup", { body: { token, password } });
    },
    async login(password) {
      await request("POST", "/login", { body: { password }, expect401: true });
    },
    async logout() {
      try {
        await request("POST", "/logout", { expect401: true });
      } catch (e) {
        // Already signed out is what the caller wanted.
        if (!(e instanceof ApiError && e.status === 401)) throw e;
      }
    },
    async session() {
      try {
        await request("GET", "/session", { expect401: true });
        return true;
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) return false;
        throw e;
      }
    },
    status: () => request<DeviceStatus>("GET", "/status"),
    call: <T,>(method: string, path: string, body?: unknown) => request<T>(method, path, { body }),
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
  return new ApiError(res.status, message, problems, retryAfter);
}
