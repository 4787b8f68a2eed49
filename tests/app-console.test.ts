// The console WebSocket of a container app on the compiled binary and the real Docker engine: a shell in the
// app's running container; who may open it (cookie or token, the console's own origin) and what it refuses.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ask, openConsole } from "./support/app-console.ts";
import { busyboxArchive } from "./support/docker.ts";
import { waitFor } from "./support/wait.ts";
import { bearer as newToken, removeAllApps, setUp, waitForApp } from "./support/api.ts";
import { type Client, cleanup, type Evebox, startEvebox, tempDataDir } from "./support/evebox.ts";

const APP = "7e000000-0000-4000-8001-000000000001";
const HALTED = "7e000000-0000-4000-8001-000000000002";
const DS = "7e000000-0000-4000-8004-000000000001";
let evebox: Evebox;
let dataDir: string;
let api: Client;
let bearer: Record<string, string>;
let http: ReturnType<typeof Bun.serve>;

function app(uuid: string, name: string, activate: boolean, sha: string, n: number) {
  const ct = `7e000000-0000-4000-8002-00000000000${n}`;
  const vol = `7e000000-0000-4000-8003-00000000000${n}`;
  return {
    ct: { uuid: ct, dsId: DS, URL: "busybox.tar", iformat: "CONTAINER", sha256: sha, displayName: `${name}-image` },
    vol: { uuid: vol, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: ct }, displayName: `${name}-root` },
    app: {
      uuidandversion: { uuid, version: "1" },
      displayname: name,
      activate,
      fixedresources: { memory: 65536, vcpus: 1 },
      volumeRefList: [{ uuid: vol }],
      userData: Buffer.from(`EVE_ECO_CMD=sh -c 'trap "exit 0" TERM; sleep 3600 & wait'\n`).toString("base64"),
    },
  };
}

beforeAll(async () => {
  const { bytes: tar, sha256: sha } = await busyboxArchive();
  http = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(tar as Uint8Array<ArrayBuffer>) });
  dataDir = tempDataDir();
  evebox = await startEvebox({ dataDir });
  api = await setUp(evebox, "console-socket-password");
  bearer = await newToken(api, "console");
  const a = app(APP, "shell-app", true, sha, 1);
  const h = app(HALTED, "halted-app", false, sha, 2);
  const r = await api.json("PUT", "/api/v1/config", {
    datastores: [{ id: DS, dType: "DsHttp", fqdn: `http://127.0.0.1:${http.port}` }],
    contentInfo: [a.ct, h.ct],
    volumes: [a.vol, h.vol],
    apps: [a.app, h.app],
  });
  expect(r.status).toBe(201);
  await waitForApp(api, "shell-app", (x) => x.state === "RUNNING", "RUNNING", 90_000);
}, 300_000);

afterAll(async () => {
  if (api) await removeAllApps(api).catch(() => undefined);
  await evebox?.stop();
  http?.stop(true);
  cleanup(dataDir);
}, 90_000);

describe("a container app's console", () => {
  test("a shell in its container over the WebSocket (bearer token): a command is answered; resize reaches the TTY", async () => {
    const c = await openConsole(evebox.url, APP, bearer);
    try {
      c.type("echo hi-$((40+2))\n");
      await c.waitFor(/hi-42/);
      expect(await ask(c, "cat /proc/1/cmdline | tr '\\0' ' '")).toContain("sleep 3600");
      c.send(JSON.stringify({ type: "resize", cols: 100, rows: 30 }));
      await waitFor("the TTY resized", async () => ((await ask(c, "busybox stty size")) === "30 100" ? true : undefined), 10_000);
      c.type("exit\n");
      expect((await c.closed).code).toBe(1000);
      expect(c.controls()).toContainEqual({ type: "closed", reason: "the shell exited" });
    } finally {
      c.close();
    }
  }, 60_000);

  test("with the console's session cookie from its own origin", async () => {
    const c = await openConsole(evebox.url, APP, { cookie: api.cookie, origin: evebox.url });
    try {
      expect(await ask(c, "echo cookie-ok")).toBe("cookie-ok");
    } finally {
      c.close();
    }
  }, 30_000);

  test("refused: no credentials (401), another origin (403), not a WebSocket (426), no such app (404), a halted app (409)", async () => {
    const ws = (headers: Record<string, string>, uuid = APP) =>
      fetch(`${evebox.url}/api/v1/apps/${uuid}/console`, { headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", ...headers } });
    expect((await ws({})).status).toBe(401);
    const cross = await ws({ cookie: api.cookie, origin: "http://evil.example" });
    expect(cross.status).toBe(403);
    expect((await cross.json()).error).toMatch(/cross-origin/);
    expect((await fetch(`${evebox.url}/api/v1/apps/${APP}/console`, { headers: bearer })).status).toBe(426);
    const none = await ws(bearer, "7e000000-0000-4000-8001-0000000000ff");
    expect(none.status).toBe(404);
    const halted = await ws(bearer, HALTED);
    expect(halted.status).toBe(409);
    expect((await halted.json()).error).toMatch(/halted-app: its container is not running/);
  }, 30_000);
});
