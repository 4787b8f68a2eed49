import { describe, expect, test } from "bun:test";
import { ApiError, createApiClient } from "./api";

type Call = { url: string; init: RequestInit };

/** A client whose fetch answers from a table, recording calls. */
function client(answer: (url: string) => Response | Error) {
  const calls: Call[] = [];
  let unauthorized = 0;
  const api = createApiClient({
    onUnauthorized: () => unauthorized++,
    fetch: (async (url: string, init: RequestInit) => {
      calls.push({ url, init });
      const a = answer(url);
      if (a instanceof Error) throw a;
      return a;
    }) as typeof fetch,
  });
  return { api, calls, unauthorized: () => unauthorized };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });

async function failure(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw e;
  }
  throw new Error("expected the call to fail");
}

describe("api client", () => {
  test("sends same-origin JSON", async () => {
    const { api, calls } = client(() => json(200, { ok: true }));
    await api.setup("tok", "password1");
    expect(calls[0]!.url).toBe("/api/v1/setup");
    expect(calls[0]!.init.method).toBe("POST");
    expect(calls[0]!.init.credentials).toBe("same-origin");
    expect(new Headers(calls[0]!.init.headers).get("Content-Type")).toBe("application/json");
    expect(JSON.parse(String(calls[0]!.init.body))).toEqual({ token: "tok", password: "password1" });
  });

  test("errors carry status, message and problems", async () => {
    const { api } = client(() =>
      json(400, { error: "invalid setup", problems: [{ path: "password", message: "too short" }] }),
    );
    const error = await failure(api.setup("t", "short"));
    expect(error.status).toBe(400);
    expect(error.message).toBe("invalid setup");
    expect(error.problems).toEqual([{ path: "password", message: "too short" }]);
  });

  test("429 exposes the wait, from the body or Retry-After", async () => {
    const fromBody = await failure(client(() => json(429, { error: "slow down", retryAfterSeconds: 12.2 })).api.login("x"));
    expect(fromBody.retryAfterSeconds).toBe(13);
    const fromHeader = await failure(client(() => json(429, { error: "slow down" }, { "Retry-After": "7" })).api.login("x"));
    expect(fromHeader.retryAfterSeconds).toBe(7);
  });

  test("a non-JSON error still gives a message", async () => {
    const error = await failure(client(() => new Response("oops", { status: 502, statusText: "Bad Gateway" })).api.status());
    expect(error.status).toBe(502);
    expect(error.message).toContain("502");
  });

  test("an unreachable device is status 0", async () => {
    const error = await failure(client(() => new TypeError("Failed to fetch")).api.health());
    expect(error.status).toBe(0);
  });

  test("401 reports a lost session, except where 401 is an answer", async () => {
    const c = client(() => json(401, { error: "unauthorized" }));
    expect(await c.api.session()).toBe(false);
    expect((await failure(c.api.login("wrong"))).status).toBe(401);
    await c.api.logout();
    expect(c.unauthorized()).toBe(0);
    expect((await failure(c.api.status())).status).toBe(401);
    expect(c.unauthorized()).toBe(1);
  });
});
