// Finding 7: the login throttle counts an attempt before the (slow, asynchronous) password check, so parallel
// guesses from one client are throttled too; and a global failure budget caps what many source addresses (each
// with its own per-client budget) can try together.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Client, cleanup, type Evebox, startEvebox, tempDataDir } from "../support/evebox.ts";
import { requestFrom } from "./raw-http.ts";

const PASSWORD = "correct horse battery";
let dataDir: string;
let evebox: Evebox;

beforeAll(async () => {
  dataDir = tempDataDir("evebox-throttle-");
  // 40 connections at once from one address: above the default per-client connection cap (tests/security/connections).
  evebox = await startEvebox({ dataDir, env: { EVEBOX_APPS: "off", EVEBOX_CONSOLE_MAX_CONNECTIONS_PER_CLIENT: "100" } });
  expect((await new Client(evebox.url).json("POST", "/api/v1/setup", { token: evebox.setupToken, password: PASSWORD })).status).toBe(200);
}, 300_000);

afterAll(async () => {
  await evebox?.stop();
  cleanup(dataDir);
});

test("40 parallel wrong passwords from one client: at most 6 are checked, the rest are 429 with Retry-After", async () => {
  const results = await Promise.all(
    Array.from({ length: 40 }, (_, i) => requestFrom("127.0.0.1", evebox.url, "POST", "/api/v1/login", { password: `wrong-parallel-${i}` })),
  );
  const statuses = results.map((r) => r.status);
  expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(6);
  expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(34);
  expect(statuses.every((s) => s === 401 || s === 429)).toBe(true);
  expect(Number(results.find((r) => r.status === 429)!.headers["retry-after"])).toBeGreaterThan(0);
}, 60_000);

test("every loopback address its own budget, but all of them one global budget", async () => {
  // 12 more source addresses, 5 wrong passwords each (each within its per-client budget): 60 failures in all.
  const addresses = Array.from({ length: 12 }, (_, i) => `127.0.0.${i + 2}`);
  const perAddress = await Promise.all(
    addresses.map(async (addr) => {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await requestFrom(addr, evebox.url, "POST", "/api/v1/login", { password: `wrong-${addr}-${i}` });
        statuses.push(r.status);
        if (r.status === 429) expect(r.body.error).toMatch(/several clients/);
      }
      return statuses;
    }),
  );
  const all = perAddress.flat();
  // The global budget is 30 free failures (6 of them spent by the test above), then a doubling wait for everyone
  // (1 s, 2 s, …): 24 + the one that starts the wait, and at most a few more let in as the short waits expire.
  // Per-client budgets alone would let all 60 through.
  expect(all.filter((s) => s === 401).length).toBeLessThanOrEqual(30 - 6 + 1 + 3);
  expect(all.filter((s) => s === 429).length).toBeGreaterThan(0);
}, 60_000);
