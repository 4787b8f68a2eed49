// The compiled binary, end to end over HTTP: setup, login, tokens, the config contract, restart.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sampleConfig, IDS } from "./support/configs.ts";
import { bearer, unixClient } from "./support/api.ts";
import { Client, cleanup, ensureBinary, type Evebox, startEvebox, tempDataDir } from "./support/evebox.ts";

let binary: string;
let dataDir: string;
let evebox: Evebox;
let admin: Client;
const PASSWORD = "correct horse battery";

beforeAll(async () => {
  binary = await ensureBinary();
  dataDir = tempDataDir();
  // This file is about the console and the config contract: no app runtime, so states stay INITIAL.
  evebox = await startEvebox({ dataDir, binary, env: { EVEBOX_APPS: "off" } });
}, 300_000);

afterAll(async () => {
  await evebox?.stop();
  cleanup(dataDir);
});

describe("first start and setup", () => {
  test("prints a setup URL whose token is also in run/setup-token with mode 0600", () => {
    expect(evebox.setupToken).toBeString();
    const path = join(dataDir, "run", "setup-token");
    expect(readFileSync(path, "utf8").trim()).toBe(evebox.setupToken!);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  test("health is open and says setup is required; everything else needs a login", async () => {
    const c = new Client(evebox.url);
    const h = await c.json("GET", "/api/v1/health");
    expect(h).toMatchObject({ status: 200, body: { ok: true, setupRequired: true } });
    expect((await c.json("GET", "/api/v1/status")).status).toBe(401);
    expect((await c.json("GET", "/api/v1/config")).status).toBe(401);
  });

  test("a wrong setup token and a short password are refused", async () => {
    const c = new Client(evebox.url);
    expect((await c.json("POST", "/api/v1/setup", { token: "nope", password: PASSWORD })).status).toBe(403);
    const short = await c.json("POST", "/api/v1/setup", { token: evebox.setupToken, password: "short" });
    expect(short.status).toBe(400);
    expect(short.body.error).toMatch(/at least 8/);
  });

  test("a cross-origin setup is refused", async () => {
    const c = new Client(evebox.url);
    const r = await c.json("POST", "/api/v1/setup", { token: evebox.setupToken, password: PASSWORD }, { origin: "http://evil.example" });
    expect(r.status).toBe(403);
  });

  test("setup with the token sets the password, logs in with an HttpOnly SameSite=Strict cookie, and is once only", async () => {
    admin = new Client(evebox.url);
    const res = await admin.req("POST", "/api/v1/setup", { token: evebox.setupToken, password: PASSWORD });
    expect(res.status).toBe(200);
    const cookie = res.headers.get("set-cookie")!;
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
    expect(existsSync(join(dataDir, "run", "setup-token"))).toBe(false);
    expect((await admin.json("GET", "/api/v1/session")).status).toBe(200);
    const again = await new Client(evebox.url).json("POST", "/api/v1/setup", { token: evebox.setupToken, password: PASSWORD });
    expect(again.status).toBe(409);
    expect((await admin.json("GET", "/api/v1/health")).body.setupRequired).toBe(false);
  });
});

describe("login and tokens", () => {
  test("wrong passwords are refused and then slowed per client", async () => {
    const c = new Client(evebox.url);
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await c.json("POST", "/api/v1/login", { password: `wrong-${i}-password` })).status);
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(statuses).toContain(429);
    const slowed = await c.req("POST", "/api/v1/login", { password: PASSWORD });
    expect(slowed.status).toBe(429);
    expect(Number(slowed.headers.get("retry-after"))).toBeGreaterThan(0);
  });

  test("an API token works as a bearer, is listed without its secret, and stops working when deleted", async () => {
    const created = await admin.json("POST", "/api/v1/tokens", { name: "ci-script" });
    expect(created.status).toBe(201);
    expect(created.body.token).toMatch(/^ebx_/);
    const bearer = { authorization: `Bearer ${created.body.token}` };
    const anon = new Client(evebox.url);
    expect((await anon.json("GET", "/api/v1/status", undefined, bearer)).status).toBe(200);
    expect((await anon.json("GET", "/api/v1/status", undefined, { authorization: "Bearer ebx_nope_nope" })).status).toBe(401);
    const list = await admin.json("GET", "/api/v1/tokens");
    expect(list.body.tokens.map((t: any) => t.name)).toContain("ci-script");
    const secret = created.body.token.slice(`ebx_${created.body.id}_`.length);
    expect(secret.length).toBeGreaterThan(20);
    expect(JSON.stringify(list.body)).not.toContain(secret);
    expect((await admin.json("DELETE", `/api/v1/tokens/${created.body.id}`)).status).toBe(200);
    expect((await anon.json("GET", "/api/v1/status", undefined, bearer)).status).toBe(401);
  });

  test("logout ends the session", async () => {
    const c = new Client(evebox.url);
    c.cookie = admin.cookie;
    expect((await c.json("POST", "/api/v1/logout")).status).toBe(200);
    expect((await c.json("GET", "/api/v1/session")).status).toBe(401);
    admin = await loginWithToken();
  });
});

/** Password logins from this address are throttled by the test above, so carry on with an API token. */
async function loginWithToken(): Promise<Client> {
  // The local socket is trusted (file permissions): make a token there, as an operator on the box would.
  return new Client(evebox.url, { headers: await bearer(unixClient(join(dataDir, "run", "evebox.sock")), "test-admin") });
}

describe("the config contract", () => {
  test("no config yet: GET /config is 404 and status shows none", async () => {
    expect((await admin.json("GET", "/api/v1/config")).status).toBe(404);
    const s = await admin.json("GET", "/api/v1/status");
    expect(s.body.device.configVersion).toBeNull();
    expect(s.body.apps).toEqual([]);
  });

  test("dryRun returns the plan and stores nothing", async () => {
    const r = await admin.json("PUT", "/api/v1/config?dryRun=1", sampleConfig());
    expect(r.status).toBe(200);
    expect(r.body.dryRun).toBe(true);
    expect(r.body.plan.map((s: any) => `${s.action} ${s.kind}`)).toEqual(
      expect.arrayContaining(["add app", "add volume", "add contentTree", "add datastore", "add networkInstance"]),
    );
    expect((await admin.json("GET", "/api/v1/config")).status).toBe(404);
  });

  test("PUT stores a version; GET returns the same document as JSON and as binary", async () => {
    const r = await admin.json("PUT", "/api/v1/config", sampleConfig());
    expect(r.status).toBe(201);
    expect(r.body.version).toBe(1);
    const got = await admin.json("GET", "/api/v1/config");
    expect(got.body.apps[0].displayname).toBe("web");
    expect(got.body.apps[0].interfaces[0].acls[0].matches[1]).toEqual({ type: "lport", value: "8080" });
    expect(got.body.volumes[0].maxsizebytes).toBe("104857600");
    const bin = await admin.req("GET", "/api/v1/config", undefined, { accept: "application/x-proto-binary" });
    expect(bin.headers.get("content-type")).toBe("application/x-proto-binary");
    const bytes = new Uint8Array(await bin.arrayBuffer());
    // Binary in, same hash out: PUT the binary back and it is unchanged.
    const same = await admin.json("PUT", "/api/v1/config", bytes, { "content-type": "application/x-proto-binary" });
    expect(same.status).toBe(200);
    expect(same.body.unchanged).toBe(true);
    expect(same.body.hash).toBe(r.body.hash);
  });

  test("status lists the desired objects with EVE state names", async () => {
    const s = (await admin.json("GET", "/api/v1/status")).body;
    expect(s.device.configVersion).toBe(1);
    expect(s.apps).toEqual([expect.objectContaining({ uuid: IDS.app, name: "web", state: "INITIAL", error: null })]);
    expect(s.networkInstances[0].name).toBe("plant-lan");
    expect(s.volumes[0].uuid).toBe(IDS.volume);
    expect(s.contentTrees[0].uuid).toBe(IDS.contentTree);
  });

  test("bad input is refused whole with every problem and its path; the current config stays", async () => {
    const bad: any = sampleConfig({ appName: "web2" });
    bad.apps[0].fixedresources.memory = "lots"; // wrong type
    bad.apps[0].colour = "blue"; // unknown field
    bad.apps[0].volumeRefList.push({ uuid: "99999999-9999-4999-8999-999999999999" }); // missing reference (semantic)
    bad.networkInstances[0].ip.subnet = "198.51.100.0/33"; // malformed subnet (semantic)
    let r = await admin.json("PUT", "/api/v1/config", bad);
    expect(r.status).toBe(400);
    const paths = r.body.problems.map((p: any) => p.path);
    expect(paths).toEqual(expect.arrayContaining(["apps[0].fixedresources.memory", "apps[0].colour"]));
    // Structural faults stop decoding; with them fixed, the semantic faults are all listed.
    delete bad.apps[0].colour;
    bad.apps[0].fixedresources.memory = 65536;
    bad.apps[0].interfaces[0].acls.push({ matches: [{ type: "lport", value: "22" }] }); // port without protocol
    r = await admin.json("PUT", "/api/v1/config", bad);
    expect(r.status).toBe(400);
    const sem = r.body.problems.map((p: any) => p.path);
    expect(sem).toEqual(
      expect.arrayContaining(["apps[0].volumeRefList[1].uuid", "networkInstances[0].ip.subnet", "apps[0].interfaces[0].acls[2].matches"]),
    );
    expect(r.body.problems.find((p: any) => p.path === "apps[0].interfaces[0].acls[2].matches").message).toMatch(/protocol/);
    const cur = await admin.json("GET", "/api/v1/config");
    expect(cur.body.apps[0].displayname).toBe("web");
    expect(cur.body.apps).toHaveLength(1);
  });

  test("malformed JSON, malformed protobuf and a wrong content type are refused clearly", async () => {
    let r = await admin.json("PUT", "/api/v1/config", "{not json", { "content-type": "application/json" });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatch(/malformed JSON/);
    r = await admin.json("PUT", "/api/v1/config", new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0x0f, 1]), { "content-type": "application/x-proto-binary" });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatch(/malformed protobuf/);
    r = await admin.json("PUT", "/api/v1/config", "x", { "content-type": "text/plain" });
    expect(r.status).toBe(415);
  });

  test("a body over the limit is 413", async () => {
    const big = new Uint8Array(17 * 1024 * 1024).fill(0x20);
    const r = await admin.req("PUT", "/api/v1/config", big, { "content-type": "application/json" });
    expect(r.status).toBe(413);
  });

  test("history lists accepted and rejected versions; rollback makes an old one current as a new version", async () => {
    expect((await admin.json("PUT", "/api/v1/config", sampleConfig({ appName: "web-v2", version: "2" }))).status).toBe(201);
    const h = (await admin.json("GET", "/api/v1/config/history")).body;
    const accepted = h.versions.filter((v: any) => v.status === "accepted").map((v: any) => v.version);
    expect(h.versions.some((v: any) => v.status === "rejected" && v.error)).toBe(true);
    expect(h.current).toBe(accepted[0]);
    const rb = await admin.json("POST", "/api/v1/config/rollback/1");
    expect(rb.status).toBe(200);
    expect(rb.body.plan).toEqual([expect.objectContaining({ action: "change", kind: "app", name: "web" })]);
    expect((await admin.json("GET", "/api/v1/config")).body.apps[0].displayname).toBe("web");
    expect((await admin.json("POST", "/api/v1/config/rollback/9999")).status).toBe(400);
  });

  test("the events stream reports a config change", async () => {
    const ctrl = new AbortController();
    const res = await admin.req("GET", "/api/v1/events", undefined, {});
    expect(res.headers.get("content-type")).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    const put = admin.json("PUT", "/api/v1/config", sampleConfig({ appName: "web-v3", version: "3" }));
    let text = "";
    const deadline = Date.now() + 5000;
    while (!text.includes("config.accepted") && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    await reader.cancel();
    ctrl.abort();
    expect((await put).status).toBe(201);
    expect(text).toContain("config.accepted");
  });
});

describe("the CLI", () => {
  test("evebox status asks the running daemon over its socket", async () => {
    const p = Bun.spawn([binary, "status", "--data", dataDir], { stdout: "pipe", stderr: "pipe" });
    const out = await new Response(p.stdout).text();
    expect(await p.exited).toBe(0);
    expect(out).toMatch(/mode\s+local/);
    expect(out).toContain("web-v3");
    const j = Bun.spawn([binary, "status", "--data", dataDir, "--json"], { stdout: "pipe" });
    expect(JSON.parse(await new Response(j.stdout).text()).apps[0].name).toBe("web-v3");
  });

  test("unknown command or flag: usage on stderr, exit 2", async () => {
    for (const args of [["frobnicate"], ["run", "--bogus"], []]) {
      const p = Bun.spawn([binary, ...args], { stdout: "pipe", stderr: "pipe" });
      const err = await new Response(p.stderr).text();
      expect(await p.exited).toBe(2);
      expect(err).toContain("usage: evebox");
    }
    const v = Bun.spawn([binary, "version"], { stdout: "pipe" });
    expect(await new Response(v.stdout).text()).toMatch(/^evebox \d+\.\d+\.\d+/);
  });

  test("an unwritable data directory: one clear line, exit 1, no stack trace", async () => {
    const file = join(tempDataDir(), "a-file");
    writeFileSync(file, "");
    const p = Bun.spawn([binary, "run", "--data", join(file, "sub"), "--listen", "127.0.0.1:0"], { stdout: "pipe", stderr: "pipe" });
    const err = await new Response(p.stderr).text();
    expect(await p.exited).toBe(1);
    expect(err.trim().split("\n")).toHaveLength(1);
    expect(err).toMatch(/cannot use data directory .* not writable/);
    expect(err).not.toMatch(/\bat .*\.ts:\d+/);
  });

  test("a second evebox on the same data directory is refused", async () => {
    const p = Bun.spawn([binary, "run", "--data", dataDir, "--listen", "127.0.0.1:0"], { stdout: "pipe", stderr: "pipe" });
    const err = await new Response(p.stderr).text();
    expect(await p.exited).toBe(1);
    expect(err).toMatch(/already running/);
  });
});

describe("restart", () => {
  test("after a restart the same current config and the same password work", async () => {
    const before = (await admin.json("GET", "/api/v1/config")).body;
    const beforeVersion = (await admin.json("GET", "/api/v1/status")).body.device.configVersion;
    expect(await evebox.stop()).toBe(0);
    evebox = await startEvebox({ dataDir, binary, env: { EVEBOX_APPS: "off" } });
    expect(evebox.setupToken).toBeNull();
    const c = new Client(evebox.url);
    // Fresh process: the per-client throttle is in memory, so the real password works at once.
    expect((await c.json("POST", "/api/v1/login", { password: PASSWORD })).status).toBe(200);
    expect((await c.json("GET", "/api/v1/config")).body).toEqual(before);
    expect((await c.json("GET", "/api/v1/status")).body.device.configVersion).toBe(beforeVersion);
  });

  test("a store written by a newer evebox is refused with a clear message", async () => {
    await evebox.stop();
    const { Database } = await import("bun:sqlite");
    const db = new Database(join(dataDir, "persist", "evebox.db"));
    const v = (db.query("PRAGMA user_version").get() as any).user_version;
    db.run(`PRAGMA user_version = ${v + 1}`);
    db.close();
    const p = Bun.spawn([binary, "run", "--data", dataDir, "--listen", "127.0.0.1:0"], { stdout: "pipe", stderr: "pipe" });
    const err = await new Response(p.stderr).text();
    expect(await p.exited).toBe(1);
    expect(err).toMatch(/written by a newer evebox/);
    const db2 = new Database(join(dataDir, "persist", "evebox.db"));
    db2.run(`PRAGMA user_version = ${v}`);
    db2.close();
    evebox = await startEvebox({ dataDir, binary, env: { EVEBOX_APPS: "off" } });
  });
});
