// Container apps end to end through PUT /api/v1/config: the compiled binary, the real Docker engine,
// a real registry (Debian docker-registry on loopback) and a real HTTP datastore.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { busyboxArchive, ensureBusyboxImage, testDocker } from "./support/docker.ts";
import { run } from "./support/run.ts";
import { waitFor } from "./support/wait.ts";
import { deviceStatus, putConfig, setUp, waitForApp } from "./support/api.ts";
import { Client, cleanup, type Evebox, startEvebox, tempDataDir } from "./support/evebox.ts";
import { startRegistry, type TestRegistry } from "./support/registry.ts";

const DS = "6a0a6b52-7f36-4a55-8c3e-2a3f5c0d1e10";
const DEAD_DS = "6a0a6b52-7f36-4a55-8c3e-2a3f5c0d1e11";
const HTTP_DS = "6a0a6b52-7f36-4a55-8c3e-2a3f5c0d1e12";
let seq = 0;
const uid = (kind: number) => `7b000000-0000-4000-8${kind.toString(16).padStart(3, "0")}-${(++seq).toString(16).padStart(12, "0")}`;

let registry: TestRegistry;
let digest: string; // hex, without sha256:
let evebox: Evebox;
let dataDir: string;
let api: Client;
let deadPort: number;
let http: ReturnType<typeof Bun.serve>;
let tarSha = "";
let tarBytes: Uint8Array<ArrayBuffer>;
let slowRequests = 0;
let slowCancelled = 0;

interface AppDef {
  name: string;
  env?: Record<string, string>;
  cmd?: string;
  data?: boolean;
  restart?: number;
  purge?: number;
  activate?: boolean;
  source?: "registry" | "dead" | "wrong-digest" | "too-large" | "http" | "slow";
  ids?: { app: string; ct: string; img: string; dat: string };
}

function doc(apps: AppDef[]) {
  const d: any = {
    datastores: [
      { id: DS, dType: "DsContainerRegistry", fqdn: `docker://${registry.host}` },
      { id: DEAD_DS, dType: "DsContainerRegistry", fqdn: `docker://127.0.0.1:${deadPort}` },
      { id: HTTP_DS, dType: "DsHttp", fqdn: `http://127.0.0.1:${http.port}`, dpath: "images" },
    ],
    contentInfo: [],
    volumes: [],
    apps: [],
  };
  for (const a of apps) {
    a.ids ??= { app: uid(1), ct: uid(2), img: uid(3), dat: uid(4) };
    const src = a.source ?? "registry";
    const ct: any = { uuid: a.ids.ct, dsId: DS, URL: "evebox/busybox:1", iformat: "CONTAINER", sha256: digest, displayName: `${a.name}-image` };
    if (src === "dead") ct.dsId = DEAD_DS;
    if (src === "wrong-digest") ct.sha256 = "ab".repeat(32);
    if (src === "too-large") ct.maxSizeBytes = "1000";
    if (src === "http") Object.assign(ct, { dsId: HTTP_DS, URL: "busybox.tar", sha256: tarSha });
    if (src === "slow") Object.assign(ct, { dsId: HTTP_DS, URL: "slow.tar", sha256: "cd".repeat(32) });
    d.contentInfo.push(ct);
    d.volumes.push({ uuid: a.ids.img, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: a.ids.ct }, displayName: `${a.name}-root` });
    const refs: any[] = [{ uuid: a.ids.img }];
    if (a.data) {
      d.volumes.push({ uuid: a.ids.dat, origin: { type: "VCOT_BLANK" }, maxsizebytes: "10485760", displayName: `${a.name}-data`, generationCount: "1" });
      refs.push({ uuid: a.ids.dat, mountDir: "/data" });
    }
    const env = { ...(a.env ?? {}), EVE_ECO_CMD: a.cmd ?? "sh -c 'trap \"exit 0\" TERM; echo started GREETING=$GREETING; sleep 3600 & wait'" };
    d.apps.push({
      uuidandversion: { uuid: a.ids.app, version: "1" },
      displayname: a.name,
      activate: a.activate ?? true,
      fixedresources: { memory: 65536, maxmem: 65536, vcpus: 1 },
      volumeRefList: refs,
      userData: Buffer.from(Object.entries(env).map(([k, v]) => `${k}=${v}`).join("\n")).toString("base64"),
      ...(a.restart ? { restart: { counter: a.restart } } : {}),
      ...(a.purge ? { purge: { counter: a.purge } } : {}),
    });
  }
  return d;
}

const put = (apps: AppDef[]) => putConfig(api, doc(apps));
const status = () => deviceStatus(api);
const waitApp = (name: string, pred: (a: any) => boolean, what: string, timeoutMs = 60_000) => waitForApp(api, name, pred, what, timeoutMs);

async function containersOf(appUuid: string) {
  return testDocker().listContainers({ all: true, filters: { label: [`evebox.app=${appUuid}`] } });
}

beforeAll(async () => {
  const image = await ensureBusyboxImage();
  registry = await startRegistry();
  digest = (await registry.push(image, "evebox/busybox:1")).replace(/^sha256:/, "");
  // An image archive for the Http datastore, served with Range support.
  ({ bytes: tarBytes, sha256: tarSha } = await busyboxArchive());
  http = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    fetch: (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/images/busybox.tar") return new Response(tarBytes as Uint8Array<ArrayBuffer>);
      if (path === "/images/slow.tar") {
        // A datastore that dribbles: 1 KiB every 200 ms of a 100 MiB image, until the client goes away.
        let timer: ReturnType<typeof setInterval>;
        slowRequests++;
        const body = new ReadableStream({
          start(ctrl) {
            timer = setInterval(() => ctrl.enqueue(new Uint8Array(1024)), 200);
          },
          cancel() {
            clearInterval(timer);
            slowCancelled++;
          },
        });
        return new Response(body, { headers: { "content-length": String(100 * 1024 * 1024) } });
      }
      return new Response("no", { status: 404 });
    },
  });
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  deadPort = probe.port;
  probe.stop(true);
  dataDir = tempDataDir();
  evebox = await startEvebox({ dataDir });
  api = await setUp(evebox, "apps-test-password");
}, 300_000);

afterAll(async () => {
  await put([]).catch(() => undefined);
  await waitFor("all apps removed", async () => ((await status()).apps.length === 0 ? true : undefined), 60_000).catch(() => undefined);
  await evebox?.stop();
  await registry?.stop();
  http?.stop(true);
  cleanup(dataDir);
}, 120_000);

const web: AppDef = { name: "web", env: { GREETING: "hello" } };
const worker: AppDef = { name: "worker", env: { GREETING: "w" } };
const store: AppDef = { name: "store", data: true, cmd: "sh -c 'trap \"exit 0\" TERM; echo data-app; sleep 3600 & wait'" };

describe("three apps through PUT /api/v1/config", () => {
  test("all three reach RUNNING, one container each, labelled, with the app's environment and limits", async () => {
    await put([web, worker, store]);
    for (const a of [web, worker, store]) await waitApp(a.name, (x) => x.state === "RUNNING", "RUNNING");
    const [c] = await containersOf(web.ids!.app);
    expect((await containersOf(web.ids!.app)).length).toBe(1);
    const info = await testDocker().getContainer(c!.Id).inspect();
    expect(info.Config.Labels["evebox.managed"]).toBe("true");
    expect(info.Config.Env).toContain("GREETING=hello");
    expect(info.HostConfig.Memory).toBe(65536 * 1024);
    expect(info.HostConfig.RestartPolicy?.Name).toBe("no");
    const logs = await waitFor("web's output in the store", async () => {
      const r = await api.json("GET", `/api/v1/apps/${web.ids!.app}/logs`);
      return r.body.lines.some((l: any) => l.message.includes("started GREETING=hello")) ? r.body.lines : undefined;
    });
    expect(logs.length).toBeGreaterThan(0);
  }, 120_000);

  test("changing one app's environment recreates only that app", async () => {
    const before = { web: (await containersOf(web.ids!.app))[0]!.Id, worker: (await containersOf(worker.ids!.app))[0]!.Id };
    web.env = { GREETING: "changed" };
    const r = await put([web, worker, store]);
    expect(r.plan).toEqual([expect.objectContaining({ action: "change", kind: "app", name: "web" })]);
    await waitFor("web recreated", async () => {
      const cs = await containersOf(web.ids!.app);
      return cs.length === 1 && cs[0]!.Id !== before.web && cs[0]!.State === "running" ? true : undefined;
    }, 60_000);
    const info = await testDocker().getContainer((await containersOf(web.ids!.app))[0]!.Id).inspect();
    expect(info.Config.Env).toContain("GREETING=changed");
    expect((await containersOf(worker.ids!.app))[0]!.Id).toBe(before.worker);
  }, 90_000);

  test("a bumped restart counter restarts the same container", async () => {
    const [c] = await containersOf(worker.ids!.app);
    const startedBefore = (await testDocker().getContainer(c!.Id).inspect()).State.StartedAt;
    worker.restart = 1;
    await put([web, worker, store]);
    const startedAfter = await waitFor("worker restarted", async () => {
      const s = (await testDocker().getContainer(c!.Id).inspect()).State;
      return s.Running && s.StartedAt !== startedBefore ? s.StartedAt : undefined;
    }, 60_000);
    expect(startedAfter).not.toBe(startedBefore);
    expect((await containersOf(worker.ids!.app)).map((x) => x.Id)).toEqual([c!.Id]);
  }, 90_000);

  test("a bumped purge counter gives the app a fresh volume", async () => {
    const [c] = await containersOf(store.ids!.app);
    await run(["docker", "exec", c!.Id, "sh", "-c", "echo precious > /data/file"]);
    const volDir = readdirSync(join(dataDir, "persist", "volumes")).find((n) => n.startsWith(store.ids!.dat.toLowerCase()) && !n.endsWith(".json"))!;
    expect(readFileSync(join(dataDir, "persist", "volumes", volDir, "file"), "utf8")).toBe("precious\n");
    store.purge = 1;
    await put([web, worker, store]);
    const fresh = await waitFor("store recreated", async () => {
      const cs = await containersOf(store.ids!.app);
      return cs.length === 1 && cs[0]!.Id !== c!.Id && cs[0]!.State === "running" ? cs[0] : undefined;
    }, 60_000);
    expect(await run(["docker", "exec", fresh.Id, "sh", "-c", "ls /data | wc -l"])).toBe("0\n");
  }, 90_000);

  test("restarting evebox never restarts the apps: same container ids and start times", async () => {
    const before = await Promise.all([web, worker, store].map(async (a) => {
      const [c] = await containersOf(a.ids!.app);
      return [c!.Id, (await testDocker().getContainer(c!.Id).inspect()).State.StartedAt];
    }));
    expect(await evebox.stop()).toBe(0);
    evebox = await startEvebox({ dataDir });
    api = new Client(evebox.url);
    expect((await api.json("POST", "/api/v1/login", { password: "apps-test-password" })).status).toBe(200);
    for (const a of [web, worker, store]) await waitApp(a.name, (x) => x.state === "RUNNING", "RUNNING after restart");
    await Bun.sleep(1000); // deliberately: give a wrong reconcile the chance to act (nothing may change)
    const after = await Promise.all([web, worker, store].map(async (a) => {
      const cs = await containersOf(a.ids!.app);
      expect(cs.length).toBe(1);
      return [cs[0]!.Id, (await testDocker().getContainer(cs[0]!.Id).inspect()).State.StartedAt];
    }));
    expect(after).toEqual(before);
  }, 120_000);

  test("local commands: stop halts, start runs again, without changing the config", async () => {
    const version = (await status()).device.configVersion;
    expect((await api.json("POST", `/api/v1/apps/${worker.ids!.app}/stop`)).status).toBe(200);
    await waitApp("worker", (x) => x.state === "HALTED", "HALTED", 60_000);
    expect((await api.json("POST", `/api/v1/apps/${worker.ids!.app}/start`)).status).toBe(200);
    await waitApp("worker", (x) => x.state === "RUNNING", "RUNNING again", 60_000);
    expect((await status()).device.configVersion).toBe(version);
    expect((await api.json("POST", `/api/v1/apps/00000000-0000-4000-8000-000000000000/stop`)).status).toBe(404);
  }, 90_000);

  test("removing an app removes its container and its volume", async () => {
    const volumes = join(dataDir, "persist", "volumes");
    expect(readdirSync(volumes).some((n) => n.startsWith(store.ids!.dat.toLowerCase()))).toBe(true);
    await put([web, worker]);
    await waitFor("store gone", async () => ((await containersOf(store.ids!.app)).length === 0 ? true : undefined), 60_000);
    await waitFor("store's volume gone", async () => (readdirSync(volumes).some((n) => n.startsWith(store.ids!.dat.toLowerCase())) ? undefined : true), 30_000);
    await waitFor("store gone from status", async () => ((await status()).apps.some((a: any) => a.name === "store") ? undefined : true), 30_000);
  }, 90_000);
});

describe("bad input: that app shows the error; the others keep running; nothing partial left", () => {
  test("wrong sha256, unreachable datastore, image too large, an image that exits at once", async () => {
    const webId = (await containersOf(web.ids!.app))[0]!.Id;
    const bad: AppDef[] = [
      { name: "wrong-digest", source: "wrong-digest" },
      { name: "unreachable", source: "dead" },
      { name: "too-large", source: "too-large" },
      { name: "crasher", cmd: "sh -c 'echo bye; exit 3'" },
    ];
    await put([web, worker, ...bad]);
    const wrong = await waitApp("wrong-digest", (a) => !!a.error, "an error");
    expect(wrong.state).not.toBe("RUNNING");
    const dead = await waitApp("unreachable", (a) => !!a.error, "an error");
    expect(dead.error).toMatch(new RegExp(`127\\.0\\.0\\.1:${deadPort}`));
    const large = await waitApp("too-large", (a) => !!a.error, "an error");
    expect(large.error).toMatch(/maxSizeBytes/);
    const crash = await waitApp("crasher", (a) => a.state === "BROKEN", "BROKEN");
    expect(crash.error).toMatch(/exited with code 3/);
    for (const a of [wrong, dead, large]) expect((await containersOf(bad.find((b) => b.name === a.name)!.ids!.app)).length).toBe(0);
    // The others kept running, untouched.
    expect((await containersOf(web.ids!.app)).map((c) => c.Id)).toEqual([webId]);
    expect((await status()).apps.find((a: any) => a.name === "web").state).toBe("RUNNING");
    await put([web, worker]);
    await waitFor("bad apps gone", async () => ((await status()).apps.length === 2 ? true : undefined), 60_000);
  }, 120_000);

  test("an image from an Http datastore is downloaded, verified, loaded and run", async () => {
    const fromHttp: AppDef = { name: "from-http", source: "http" };
    await put([web, worker, fromHttp]);
    await waitApp("from-http", (a) => a.state === "RUNNING", "RUNNING", 60_000);
    const cts = (await status()).contentTrees.find((c: any) => c.uuid === fromHttp.ids!.ct);
    expect(cts.state).toBe("LOADED");
    expect(existsSync(join(dataDir, "persist", "content", "blobs", "sha256", tarSha))).toBe(true);
    // Loaded under evebox's own reference; the tag written in the archive stays the host's.
    expect(cts.image).toBe(`evebox-content/${fromHttp.ids!.ct}:${tarSha.slice(0, 12)}`);
    const image = await ensureBusyboxImage();
    const hostTag = await testDocker().getImage(image).inspect();
    await put([web, worker]);
    await waitFor("blob collected", async () => (existsSync(join(dataDir, "persist", "content", "blobs", "sha256", tarSha)) ? undefined : true), 60_000);
    // Removing the app did not take the host's tag (or its image) with it.
    expect((await testDocker().getImage(image).inspect()).Id).toBe(hostTag.Id);
  }, 120_000);
});

describe("one apply at a time, superseded cleanly", () => {
  test("a slow download never holds up the other apps, and a newer config abandons it", async () => {
    const slow: AppDef = { name: "slow", source: "slow" };
    const quick: AppDef = { name: "quick" };
    await put([web, worker, slow]);
    await waitApp("slow", (a) => a.state === "DOWNLOADING", "DOWNLOADING", 30_000);
    // While it dribbles, the loop goes on: a local command on another app is carried out at once.
    expect((await api.json("POST", `/api/v1/apps/${worker.ids!.app}/restart`)).status).toBe(200);
    const [w] = await containersOf(worker.ids!.app);
    const before = (await testDocker().getContainer(w!.Id).inspect()).State.StartedAt;
    await waitFor("worker restarted during the download", async () => {
      const s = (await testDocker().getContainer(w!.Id).inspect()).State;
      return s.Running && s.StartedAt !== before ? true : undefined;
    }, 30_000);
    // A newer config without the slow app and with a new one: the download is abandoned, the new app runs.
    await put([web, worker, quick]);
    await waitApp("quick", (a) => a.state === "RUNNING", "RUNNING", 60_000);
    await waitFor("the slow download's connection closed", async () => (slowCancelled >= slowRequests && slowRequests > 0 ? true : undefined), 30_000);
    expect((await status()).apps.some((a: any) => a.name === "slow")).toBe(false);
    await put([web, worker]);
    await waitFor("quick gone", async () => ((await containersOf(quick.ids!.app)).length === 0 ? true : undefined), 60_000);
  }, 150_000);
});

describe("crash safety", () => {
  test("kill -9 in the middle of an apply, start again: converges with no duplicate containers", async () => {
    const many: AppDef[] = Array.from({ length: 5 }, (_, i) => ({ name: `batch${i}` }));
    const body = doc([web, worker, ...many]);
    const res = await api.req("PUT", "/api/v1/config", body);
    expect(res.status).toBe(201);
    // Killed once the apply is under way: the first of the new containers exists.
    await waitFor("the apply under way", async () => (await Promise.all(many.map((a) => containersOf(a.ids!.app)))).some((cs) => cs.length > 0), 30_000, 20);
    evebox.proc.kill("SIGKILL");
    await evebox.proc.exited;
    evebox = await startEvebox({ dataDir });
    api = new Client(evebox.url);
    expect((await api.json("POST", "/api/v1/login", { password: "apps-test-password" })).status).toBe(200);
    for (const a of many) await waitApp(a.name, (x) => x.state === "RUNNING", "RUNNING after kill -9", 90_000);
    for (const a of [web, worker, ...many]) expect((await containersOf(a.ids!.app)).length).toBe(1);
  }, 180_000);
});
