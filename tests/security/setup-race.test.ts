// Finding 9: parallel setups with the right token. The token is taken before the password is hashed, so exactly
// one setup succeeds; the others are told (409) that the password is being or has been set, and its password is
// the one that works.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Client, cleanup, type Evebox, startEvebox, tempDataDir } from "../support/evebox.ts";

let dataDir: string;
let evebox: Evebox;

beforeAll(async () => {
  dataDir = tempDataDir("evebox-setup-race-");
  evebox = await startEvebox({ dataDir, env: { EVEBOX_APPS: "off" } });
}, 300_000);

afterAll(async () => {
  await evebox?.stop();
  cleanup(dataDir);
});

test("three parallel setups with the right token: exactly one succeeds, the others get 409", async () => {
  const passwords = ["first-parallel-pw", "second-parallel-pw", "third-parallel-pw"];
  const results = await Promise.all(passwords.map((password) => new Client(evebox.url).json("POST", "/api/v1/setup", { token: evebox.setupToken, password })));
  const statuses = results.map((r) => r.status);
  expect(statuses.filter((s) => s === 200)).toHaveLength(1);
  expect(statuses.filter((s) => s === 409)).toHaveLength(2);
  for (const r of results.filter((r) => r.status === 409)) expect(r.body.error).toMatch(/password (is being set|is already set)/);

  // The winner's password is the admin password; the losers' are not.
  const winner = passwords[statuses.indexOf(200)]!;
  for (const password of passwords) {
    const login = await new Client(evebox.url).json("POST", "/api/v1/login", { password });
    expect({ password, status: login.status }).toEqual({ password, status: password === winner ? 200 : 401 });
  }
});
