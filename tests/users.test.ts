// Users and roles on the compiled binary with a real container app: an operator restarts it and is refused the
// config; a viewer's console upgrade is refused; removing a user ends their open session and revokes their tokens
// at once; and the audit trail holds each of these, with the right user. (The full route → role table is a unit
// test: src/console/roles.test.ts.)
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { openConsole, ask } from "./support/app-console.ts";
import { busyboxArchive, testDocker } from "./support/docker.ts";
import { bearer as newToken, removeAllApps, setUp, waitForApp } from "./support/api.ts";
import { Client, cleanup, type Evebox, startEvebox, tempDataDir } from "./support/evebox.ts";
import { waitFor } from "./support/wait.ts";

const APP = "7e000000-0000-4000-8101-000000000001";
const CT = "7e000000-0000-4000-8102-000000000001";
const VOL = "7e000000-0000-4000-8103-000000000001";
const DS = "7e000000-0000-4000-8104-000000000001";
let evebox: Evebox;
let dataDir: string;
let admin: Client;
let http: ReturnType<typeof Bun.serve>;
let config: Record<string, unknown>;

const wsUpgrade = (headers: Record<string, string>) =>
  fetch(`${evebox.url}/api/v1/apps/${APP}/console`, {
    headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", ...headers },
  });

async function audit(query = ""): Promise<any[]> {
  const r = await admin.json("GET", `/api/v1/audit${query}`);
  expect(r.status).toBe(200);
  return r.body.records;
}

beforeAll(async () => {
  const { bytes: tar, sha256: sha } = await busyboxArchive();
  http = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(tar as Uint8Array<ArrayBuffer>) });
  dataDir = tempDataDir();
  evebox = await startEvebox({ dataDir });
  admin = await setUp(evebox, "the admin password");
  config = {
    datastores: [{ id: DS, dType: "DsHttp", fqdn: `http://127.0.0.1:${http.port}` }],
    contentInfo: [{ uuid: CT, dsId: DS, URL: "busybox.tar", iformat: "CONTAINER", sha256: sha, displayName: "users-image" }],
    volumes: [{ uuid: VOL, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: CT }, displayName: "users-root" }],
    apps: [
      {
        uuidandversion: { uuid: APP, version: "1" },
        displayname: "shift-app",
        activate: true,
        fixedresources: { memory: 65536, vcpus: 1 },
        volumeRefList: [{ uuid: VOL }],
        userData: Buffer.from(`EVE_ECO_CMD=sh -c 'trap "exit 0" TERM; sleep 3600 & wait'\n`).toString("base64"),
      },
    ],
  };
  expect((await admin.json("PUT", "/api/v1/config", config)).status).toBe(201);
  for (const [name, role] of [["olga", "operator"], ["vera", "viewer"]]) {
    const r = await admin.json("POST", "/api/v1/users", { name, password: `${name} password`, role });
    expect(r.status).toBe(201);
  }
  await waitForApp(admin, "shift-app", (x) => x.state === "RUNNING", "RUNNING", 90_000);
}, 300_000);

afterAll(async () => {
  if (admin) await removeAllApps(admin).catch(() => undefined);
  await evebox?.stop();
  http?.stop(true);
  cleanup(dataDir);
}, 90_000);

describe("roles on a running device", () => {
  test("login without a user name is the setup admin; a config version names its author", async () => {
    const r = await new Client(evebox.url).json("POST", "/api/v1/login", { password: "the admin password" });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ user: "admin", role: "admin" });
    const history = await admin.json("GET", "/api/v1/config/history");
    expect(history.body.versions[0].author).toBe("admin");
  });

  test("an operator restarts an app (its container starts again) and gets 403 on PUT /config", async () => {
    const op = new Client(evebox.url);
    expect((await op.json("POST", "/api/v1/login", { user: "olga", password: "olga password" })).status).toBe(200);
    const [c] = await testDocker().listContainers({ all: true, filters: { label: [`evebox.app=${APP}`] } });
    const before = (await testDocker().getContainer(c!.Id).inspect()).State.StartedAt;
    const restart = await op.json("POST", `/api/v1/apps/${APP}/restart`);
    expect(restart.status).toBe(200);
    await waitFor("the app's container restarted", async () => {
      const s = (await testDocker().getContainer(c!.Id).inspect()).State;
      return s.Running && s.StartedAt !== before ? true : undefined;
    }, 60_000);
    const put = await op.json("PUT", "/api/v1/config", config);
    expect(put.status).toBe(403);
    expect(put.body).toMatchObject({ requiredRole: "admin", role: "operator" });
    expect(put.body.error).toContain("needs the admin role");
    expect((await op.json("GET", "/api/v1/users")).status).toBe(403);
    // The operator's shell is allowed.
    const shell = await openConsole(evebox.url, APP, { cookie: op.cookie, origin: evebox.url });
    try {
      expect(await ask(shell, "echo operator-shell")).toBe("operator-shell");
    } finally {
      shell.close();
    }
  }, 120_000);

  test("a viewer's WebSocket console upgrade is refused (403 naming operator); the viewer still reads status", async () => {
    const viewer = new Client(evebox.url);
    expect((await viewer.json("POST", "/api/v1/login", { user: "vera", password: "vera password" })).status).toBe(200);
    const ws = await wsUpgrade({ cookie: viewer.cookie, origin: evebox.url });
    expect(ws.status).toBe(403);
    expect(await ws.json()).toMatchObject({ requiredRole: "operator", role: "viewer" });
    const token = await newToken(viewer, "viewer script");
    expect((await wsUpgrade(token)).status).toBe(403);
    expect((await viewer.json("GET", "/api/v1/status")).status).toBe(200);
    expect((await viewer.json("POST", `/api/v1/apps/${APP}/stop`)).status).toBe(403);
  });

  test("a wrong password is refused and recorded", async () => {
    const r = await new Client(evebox.url).json("POST", "/api/v1/login", { user: "vera", password: "not hers at all" });
    expect(r.status).toBe(401);
  });

  test("demoting a user (operator to viewer) ends their session and open consoles at once; their token keeps working, as a viewer", async () => {
    expect((await admin.json("POST", "/api/v1/users", { name: "dana", password: "dana password", role: "operator" })).status).toBe(201);
    const op = new Client(evebox.url);
    expect((await op.json("POST", "/api/v1/login", { user: "dana", password: "dana password" })).status).toBe(200);
    const token = await newToken(op, "dana's script");
    const shell = await openConsole(evebox.url, APP, { cookie: op.cookie, origin: evebox.url });
    const scripted = await openConsole(evebox.url, APP, token);
    expect(await ask(shell, "echo before-demotion")).toBe("before-demotion");
    const r = await admin.json("PATCH", "/api/v1/users/dana", { role: "viewer" });
    expect(r.status).toBe(200);
    expect(r.body.sessionsEnded).toBe(1);
    expect((await op.json("GET", "/api/v1/session")).status).toBe(401);
    for (const c of [shell, scripted]) {
      try {
        expect((await c.closed).code).toBe(1008);
      } finally {
        c.close();
      }
    }
    // The token lives on with the user's new, lower role: it reads, and may no longer stop an app or open a console.
    expect((await new Client(evebox.url).json("GET", "/api/v1/status", undefined, token)).status).toBe(200);
    const stop = await new Client(evebox.url).json("POST", `/api/v1/apps/${APP}/stop`, undefined, token);
    expect(stop.status).toBe(403);
    expect((await wsUpgrade(token)).status).toBe(403);
    expect((await admin.json("DELETE", "/api/v1/users/dana")).status).toBe(200);
  });

  test("removing a user ends their open session, their open consoles and revokes their tokens at once", async () => {
    const op = new Client(evebox.url);
    expect((await op.json("POST", "/api/v1/login", { user: "olga", password: "olga password" })).status).toBe(200);
    const token = await newToken(op, "olga's script");
    expect((await op.json("GET", "/api/v1/session")).status).toBe(200);
    // An open console of hers, by session, and one by her token.
    const shell = await openConsole(evebox.url, APP, { cookie: op.cookie, origin: evebox.url });
    const scripted = await openConsole(evebox.url, APP, token);
    expect(await ask(shell, "echo still-here")).toBe("still-here");
    expect((await new Client(evebox.url).json("GET", "/api/v1/status", undefined, token)).status).toBe(200);
    // The last admin stays.
    expect((await admin.json("DELETE", "/api/v1/users/admin")).status).toBe(409);
    expect((await admin.json("DELETE", "/api/v1/users/olga")).status).toBe(200);
    expect((await op.json("GET", "/api/v1/session")).status).toBe(401);
    // The consoles she had open are closed too (policy violation), with the reason.
    for (const c of [shell, scripted]) {
      try {
        expect((await c.closed).code).toBe(1008);
        expect(c.controls()).toContainEqual({ type: "closed", reason: "your session or token ended, or your role no longer allows consoles" });
      } finally {
        c.close();
      }
    }
    expect((await new Client(evebox.url).json("GET", "/api/v1/status", undefined, token)).status).toBe(401);
    const tokens = (await admin.json("GET", "/api/v1/tokens")).body.tokens;
    expect(tokens.some((t: any) => t.user === "olga")).toBe(false);
  });

  test("the audit trail holds each of these with the right user, and exports as JSON lines", async () => {
    const records = await audit();
    const find = (pred: (r: any) => boolean, what: string) => {
      const r = records.find(pred);
      if (!r) throw new Error(`no audit record of ${what} in ${JSON.stringify(records.map((x) => [x.user, x.action, x.object, x.status]))}`);
      return r;
    };
    find((r) => r.action === "POST /api/v1/setup" && r.user === "admin" && r.result === "ok", "the setup");
    find((r) => r.action === "POST /api/v1/login" && r.user === "olga" && r.status === 200, "olga's login");
    find((r) => r.action === "POST /api/v1/login" && r.user === null && r.object === "vera" && r.status === 401, "vera's failed login");
    find((r) => r.action === "POST /api/v1/apps/{uuid}/{command}" && r.object === `${APP} restart` && r.user === "olga" && r.status === 200, "olga's restart");
    const refused = find((r) => r.action === "PUT /api/v1/config" && r.user === "olga", "olga's refused config");
    expect(refused).toMatchObject({ result: "refused", status: 403 });
    expect(refused.detail).toContain("needs the admin role");
    find((r) => r.action === "GET /api/v1/apps/{uuid}/{kind}" && r.user === "vera" && r.status === 403, "vera's refused console");
    find((r) => r.action === "GET /api/v1/apps/{uuid}/{kind}" && r.user === "vera" && r.token !== null && r.status === 403, "vera's token's refused console");
    find((r) => r.action === "GET /api/v1/apps/{uuid}/{kind}" && r.user === "olga" && r.result === "ok", "olga's shell");
    find((r) => r.action === "DELETE /api/v1/users/{name}" && r.object === "olga" && r.user === "admin" && r.status === 200, "olga's removal");
    find((r) => r.action === "DELETE /api/v1/users/{name}" && r.object === "admin" && r.status === 409, "the refused removal of the last admin");
    find((r) => r.action === "PUT /api/v1/config" && r.user === "admin" && r.status === 201, "the admin's config");
    for (const r of records) expect(typeof r.client).toBe("string");

    // Filters and paging.
    expect((await audit("?user=olga")).every((r) => r.user === "olga")).toBe(true);
    expect((await audit("?result=refused")).every((r) => r.result === "refused")).toBe(true);
    const last = records.at(-1)!;
    expect((await audit(`?since=${encodeURIComponent(new Date(last.ts).toISOString())}`)).map((r) => r.id)).toContain(last.id);
    expect((await admin.json("GET", "/api/v1/audit?since=yesterday")).status).toBe(400);
    // JSON lines: one record a line.
    const res = await fetch(`${evebox.url}/api/v1/audit?format=jsonl`, { headers: { cookie: admin.cookie } });
    expect(res.headers.get("content-type")).toContain("application/x-ndjson");
    const lines = (await res.text()).trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThanOrEqual(records.length);
    expect(lines[0]).toMatchObject({ id: records[0].id, action: records[0].action });
    // The API has no way to change the trail.
    expect((await admin.json("DELETE", "/api/v1/audit")).status).toBe(404);
  });
});
