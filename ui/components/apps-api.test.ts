import { describe, expect, test } from "bun:test";
import { ApiError } from "../api";
import { createAppsApi } from "./apps-api";

type Call = { url: string; init: RequestInit };

function client(answer: (url: string, init: RequestInit) => Response) {
  const calls: Call[] = [];
  let statusChecks = 0;
  const api = createAppsApi({
    fetch: (async (url: string, init: RequestInit) => {
      calls.push({ url, init });
      return answer(url, init);
    }) as typeof fetch,
    shared: {
      status: async () => {
        statusChecks++;
        throw new ApiError(401, "not logged in");
      },
    },
  });
  return { api, calls, statusChecks: () => statusChecks };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });

describe("apps api", () => {
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
    expect((calls[1]!.init.headers as Record<string, string>)["If-Match"]).toBe('"abc"');
    await api.apply({}, null);
    expect((calls[2]!.init.headers as Record<string, string>)["If-Match"]).toBeUndefined();
  });

  test("problems and statuses come back as ApiError; a 401 is confirmed through the shared client", async () => {
    const { api, statusChecks } = client((url) =>
      url.includes("logs") ? json(401, { error: "not logged in" }) : json(400, { error: "invalid config", problems: [{ path: "apps[0].displayname", message: "bad" }] }),
    );
    const e = await api.dryRun({}).catch((x) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(400);
    expect(e.problems).toEqual([{ path: "apps[0].displayname", message: "bad" }]);
    const unauth = await api.logs("u", 0).catch((x) => x);
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
