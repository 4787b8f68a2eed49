import { describe, expect, test } from "bun:test";
import { ApiError, createApiClient } from "./api";

type Call = { url: string; init: RequestInit };

function client(answer: (url: string, init: RequestInit) => Response) {
  const calls: Call[] = [];
  let statusChecks = 0;
  const api = createApiClient({
    fetch: (async (url: string, init: RequestInit) => {
      calls.push({ url, init });
      return answer(url, init);
    }) as typeof fetch,
    onUnauthorized: () => statusChecks++,
  });
  return { api, calls, statusChecks: () => statusChecks };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });

describe("api client: the config, app commands and logs", () => {
  test("reads the config with its ETag, and no config yet is null", async () => {
    const { api } = client(() => json(200, { apps: [] }, { ETag: '"abc"' }));
    expect(await api.config()).toEqual({ doc: { apps: [] }, etag: '"abc"' });
    const none = client(() => json(404, { error: "no config yet" }));
    expect(await none.api.config()).toEqual({ doc: null, etag: null });
  });

  test("a dry run sends the whole document; apply sends If-Match", async () => {
    const { api, calls } = client((url) => json(url.includes("dryRun") ? 200 : 201, { plan: [{ action: "add", kind: "app", id: "x", name: "web" }], hash: "h", version: 3 }));
    const dry = await api.dryRun({ apps: [] });
    expect(dry.plan).toHaveLength(1);
    expect(calls[0]!.url).toBe("/api/v1/config?dryRun=1");
    expect(calls[0]!.init.method).toBe("PUT");
    expect(calls[0]!.init.body).toBe('{"apps":[]}');
    const applied = await api.apply({ apps: [] }, '"abc"');
    expect(applied.version).toBe(3);
    expect(new Headers(calls[1]!.init.headers).get("If-Match")).toBe('"abc"');
    expect(new Headers(calls[1]!.init.headers).get("Content-Type")).toBe("application/json");
    await api.apply({}, null);
    expect(new Headers(calls[2]!.init.headers).get("If-Match")).toBeNull();
  });

  test("problems and statuses come back as ApiError; a 401 reports a lost session", async () => {
    const { api, statusChecks } = client((url) =>
      url.includes("logs") ? json(401, { error: "not logged in" }) : json(400, { error: "invalid config", problems: [{ path: "apps[0].displayname", message: "bad" }] }),
    );
    const e = await api.dryRun({}).then(() => { throw new Error("expected the call to fail"); }, (x: unknown) => x as ApiError);
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(400);
    expect(e.problems).toEqual([{ path: "apps[0].displayname", message: "bad" }]);
    const unauth = await api.logs("u", 0).then(() => { throw new Error("expected the call to fail"); }, (x: unknown) => x as ApiError);
    expect(unauth.status).toBe(401);
    expect(statusChecks()).toBe(1);
  });

  test("commands and logs use the app's path", async () => {
    const { api, calls } = client((url) => (url.includes("logs") ? json(200, { lines: [{ id: 7, ts: "t", level: "info", message: "hi" }] }) : json(200, { ok: true })));
    await api.command("a/b", "restart");
    expect(calls[0]!.url).toBe("/api/v1/apps/a%2Fb/restart");
    expect(calls[0]!.init.method).toBe("POST");
    expect(await api.logs("u1", 5, 100)).toEqual([{ id: 7, ts: "t", level: "info", message: "hi" }]);
    expect(calls[1]!.url).toBe("/api/v1/apps/u1/logs?after=5&limit=100");
  });
});

describe("api client: every page's calls go through it", () => {
  test("controller, networks, firewall, tokens, base OS: paths, methods, bodies", async () => {
    const { api, calls } = client((url) => json(200, url.endsWith("/networks") ? { instances: [{ uuid: "n" }] } : url.includes("firewall") ? { interfaces: [] } : { tokens: [] }));
    await api.controller();
    await api.configureController({ url: "https://c.example" });
    expect(await api.networks()).toEqual([{ uuid: "n" }] as never);
    expect(await api.firewall("a b")).toEqual([]);
    await api.deleteToken("x/y");
    await api.baseosAction("activate");
    await api.baseosRetry("4.0.0");
    await api.configHistory(200);
    expect(calls.map((c) => `${c.init.method} ${c.url}`)).toEqual([
      "GET /api/v1/controller",
      "PUT /api/v1/controller",
      "GET /api/v1/networks",
      "GET /api/v1/apps/a%20b/firewall",
      "DELETE /api/v1/tokens/x%2Fy",
      "POST /api/v1/baseos/activate",
      "POST /api/v1/baseos/retry",
      "GET /api/v1/config/history?limit=200",
    ]);
    expect(calls[1]!.init.body).toBe('{"url":"https://c.example"}');
    expect(calls[6]!.init.body).toBe('{"version":"4.0.0"}');
    expect(calls.every((c) => c.init.credentials === "same-origin")).toBe(true);
  });

  test("a 429 from any call keeps its Retry-After (the controller page's own fetch dropped it)", async () => {
    const { api } = client(() => json(429, { error: "slow down" }, { "Retry-After": "9" }));
    const e = await api.configureController({ url: "https://c.example" }).then(
      () => {
        throw new Error("expected the call to fail");
      },
      (x: unknown) => x as ApiError,
    );
    expect(e.status).toBe(429);
    expect(e.retryAfterSeconds).toBe(9);
  });
});
