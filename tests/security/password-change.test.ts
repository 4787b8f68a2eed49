// Finding 10: a password change ends every other session (the browser that made it stays signed in; API tokens
// keep working), and POST /password is throttled like a login: a wrong current password counts as a failure.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Client, cleanup, type Evebox, startEvebox, tempDataDir } from "../support/evebox.ts";

const OLD = "correct horse battery";
const NEW = "staple battery horse";
let dataDir: string;
let evebox: Evebox;

beforeAll(async () => {
  dataDir = tempDataDir("evebox-pwchange-");
  evebox = await startEvebox({ dataDir, env: { EVEBOX_APPS: "off" } });
}, 300_000);

afterAll(async () => {
  await evebox?.stop();
  cleanup(dataDir);
});

test("a password change ends the other sessions, keeps this one and the API tokens", async () => {
  const a = new Client(evebox.url);
  expect((await a.json("POST", "/api/v1/setup", { token: evebox.setupToken, password: OLD })).status).toBe(200);
  const b = new Client(evebox.url);
  expect((await b.json("POST", "/api/v1/login", { password: OLD })).status).toBe(200);
  const token = (await a.json("POST", "/api/v1/tokens", { name: "script" })).body.token as string;
  const bearer = { authorization: `Bearer ${token}` };

  expect((await a.json("POST", "/api/v1/password", { current: OLD, password: NEW })).status).toBe(200);
  expect((await b.json("GET", "/api/v1/session")).status).toBe(401);
  expect((await a.json("GET", "/api/v1/session")).status).toBe(200);
  expect((await new Client(evebox.url).json("GET", "/api/v1/status", undefined, bearer)).status).toBe(200);
  expect((await new Client(evebox.url).json("POST", "/api/v1/login", { password: OLD })).status).toBe(401);
  expect((await new Client(evebox.url).json("POST", "/api/v1/login", { password: NEW })).status).toBe(200);

  // With a token (no session of its own) every session ends.
  const c = new Client(evebox.url);
  expect((await c.json("POST", "/api/v1/login", { password: NEW })).status).toBe(200);
  expect((await new Client(evebox.url).json("POST", "/api/v1/password", { current: NEW, password: OLD }, bearer)).status).toBe(200);
  expect((await a.json("GET", "/api/v1/session")).status).toBe(401);
  expect((await c.json("GET", "/api/v1/session")).status).toBe(401);
  expect((await new Client(evebox.url).json("GET", "/api/v1/status", undefined, bearer)).status).toBe(200);
});

test("wrong current passwords are throttled like logins (429 with Retry-After), in parallel too", async () => {
  const a = new Client(evebox.url);
  expect((await a.json("POST", "/api/v1/login", { password: OLD })).status).toBe(200);
  const results = await Promise.all(Array.from({ length: 12 }, (_, i) => a.req("POST", "/api/v1/password", { current: `wrong-current-${i}`, password: NEW })));
  const statuses = results.map((r) => r.status);
  expect(statuses.filter((s) => s === 403).length).toBeLessThanOrEqual(6);
  expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(6);
  expect(Number(results.find((r) => r.status === 429)!.headers.get("retry-after"))).toBeGreaterThan(0);
  // The same budget as the login: the right current password waits too.
  expect((await a.json("POST", "/api/v1/password", { current: OLD, password: NEW })).status).toBe(429);
});
