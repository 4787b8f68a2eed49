// The calls the Apps pages make beyond the shared client (api.ts): the config document with its ETag, dry runs
// and applies with If-Match, the local app commands and the app logs. Same conventions as api.ts: same-origin
// JSON, a non-2xx answer throws ApiError with the server's `error` and `problems`, a network failure is status 0.
import { ApiError, type ApiClient, type Problem } from "../api";
import type { Doc, PlanStep } from "../config-edit";

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

export interface AppsApi {
  config(): Promise<CurrentConfig>;
  dryRun(doc: Doc): Promise<DryRunResult>;
  apply(doc: Doc, etag: string | null): Promise<ApplyResult>;
  command(uuid: string, command: AppCommand): Promise<void>;
  logs(uuid: string, after: number, limit?: number): Promise<LogLine[]>;
}

export interface AppsApiOptions {
  base?: string;
  fetch?: typeof fetch;
  /**
   * The shared client: a 401 here is confirmed through it (`status()`), which sends the user to sign in the
   * same way as any other lost session.
   */
  shared?: Pick<ApiClient, "status">;
}

export function createAppsApi(options: AppsApiOptions = {}): AppsApi {
  const base = options.base ?? "/api/v1";
  const fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));

  async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const h: Record<string, string> = { Accept: "application/json", ...headers };
    let payload: string | undefined;
    if (body !== undefined) {
      h["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetchImpl(base + path, { method, headers: h, body: payload, credentials: "same-origin" });
    } catch {
      throw new ApiError(0, "The device could not be reached. Check the network connection and try again.");
    }
    const text = await res.text().catch(() => "");
    let data: unknown;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      data = undefined;
    }
    return { res, data };
  }

  function fail(res: Response, data: unknown): never {
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
    if (res.status === 401) void options.shared?.status().catch(() => {});
    throw new ApiError(res.status, message, problems);
  }

  return {
    async config() {
      const { res, data } = await call("GET", "/config");
      if (res.status === 404) return { doc: null, etag: null };
      if (!res.ok) fail(res, data);
      return { doc: (data ?? {}) as Doc, etag: res.headers.get("ETag") };
    },
    async dryRun(doc) {
      const { res, data } = await call("PUT", "/config?dryRun=1", doc);
      if (!res.ok) fail(res, data);
      const d = (data ?? {}) as Partial<DryRunResult>;
      return { plan: d.plan ?? [], unchanged: !!d.unchanged, hash: d.hash ?? "" };
    },
    async apply(doc, etag) {
      const { res, data } = await call("PUT", "/config", doc, etag ? { "If-Match": etag } : {});
      if (!res.ok) fail(res, data);
      const d = (data ?? {}) as Partial<ApplyResult>;
      return { version: d.version ?? null, hash: d.hash ?? "", plan: d.plan ?? [], unchanged: !!d.unchanged };
    },
    async command(uuid, command) {
      const { res, data } = await call("POST", `/apps/${encodeURIComponent(uuid)}/${command}`);
      if (!res.ok) fail(res, data);
    },
    async logs(uuid, after, limit = 500) {
      const { res, data } = await call("GET", `/apps/${encodeURIComponent(uuid)}/logs?after=${after}&limit=${limit}`);
      if (!res.ok) fail(res, data);
      const lines = (data as { lines?: LogLine[] } | undefined)?.lines;
      return Array.isArray(lines) ? lines : [];
    },
  };
}
