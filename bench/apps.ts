// Apps bench: 20 apps from the local registry to all RUNNING through evebox, against 20 parallel dockerode
// create+start of the same image and command measured in the same run (rounds alternate, medians compared; 20
// sequential `docker run` shown for scale); the desired state of 1,000 apps per reconcile pass and plan() on it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildDeviceModel } from "../src/config/model.ts";
import { desiredFromConfig, desiredFromModel } from "../src/reconcile/desired.ts";
import { plan } from "../src/reconcile/plan.ts";
import { Store } from "../src/store/store.ts";
import { ensureBusyboxImage, run, testDocker } from "../tests/support/docker.ts";
import { Client, cleanup, ensureBinary, startEvebox, tempDataDir } from "../tests/support/evebox.ts";
import { startRegistry } from "../tests/support/registry.ts";
import { median, Report, spread } from "./report.ts";

const N = Number(process.env.BENCH_APPS ?? 20);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const report = new Report(`evebox apps bench (${N} apps, ${ROUNDS} rounds alternating; medians)`);

const uuid = (kind: number, n: number) => `7c000000-0000-4000-8${kind.toString(16).padStart(3, "0")}-${n.toString(16).padStart(12, "0")}`;
const CMD = "sh -c 'trap \"exit 0\" TERM; sleep 3600 & wait'";

function config(registry: string, digest: string, n: number) {
  const ds = uuid(0, 1);
  const d: any = { datastores: [{ id: ds, dType: "DsContainerRegistry", fqdn: `docker://${registry}` }], contentInfo: [], volumes: [], apps: [] };
  const ct = uuid(1, 1);
  d.contentInfo.push({ uuid: ct, dsId: ds, URL: "bench/busybox:1", iformat: "CONTAINER", sha256: digest });
  for (let i = 0; i < n; i++) {
    d.volumes.push({ uuid: uuid(2, i), origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: ct } });
    d.apps.push({
      uuidandversion: { uuid: uuid(3, i), version: "1" },
      displayname: `bench${i}`,
      activate: true,
      fixedresources: { memory: 32768, vcpus: 1 },
      volumeRefList: [{ uuid: uuid(2, i) }],
      userData: Buffer.from(`EVE_ECO_CMD=${CMD}`).toString("base64"),
    });
  }
  return d;
}

// ---- the desired state per reconcile pass, and plan(), on 1,000 apps (pure; no engine)
{
  const big = config("127.0.0.1:5000", "ab".repeat(32), 1000);
  const time = (fn: () => void, r = 20) => {
    fn(); // warm-up
    const t0 = performance.now();
    for (let i = 0; i < r; i++) fn();
    return (performance.now() - t0) / r;
  };
  // What a reconcile pass does: the version's model is read once (ConfigService.model()); each pass derives
  // the desired state from it. desiredFromConfig (tests' wrapper) builds the model on every call.
  const model = buildDeviceModel(big).model;
  const desired = desiredFromModel(model);
  const observed = { now: Date.now(), bootAt: 0, containers: [], volumes: [], contentTrees: new Map(), apps: new Map(), startedSinceBoot: new Set<string>(), fetching: new Set<string>() };
  const planMs = time(() => void plan(desired, observed));
  const modelMs = time(() => void buildDeviceModel(big));
  const passMs = time(() => void desiredFromModel(model));
  const wrapperMs = time(() => void desiredFromConfig(big));
  report
    .add({ what: "plan() on 1,000 apps", value: planMs, unit: "ms" })
    .add({ what: "desired state per pass, 1,000 apps (model cached per version)", value: passMs, unit: "ms", baseline: { what: "plan()", value: planMs } })
    .add({ what: "  the model, built once per config version", value: modelMs, unit: "ms", baseline: { what: "plan()", value: planMs } })
    .add({ what: "  desiredFromConfig() (model built each call; tests only)", value: wrapperMs, unit: "ms", baseline: { what: "per pass", value: passMs } });
}

// ---- publishing the states of 1,000 apps and their volumes, as a pass does (the previous state read, the new one
// written, one object at a time), against the same rows written by one prepared bun:sqlite statement (the floor)
{
  const dir = mkdtempSync(join(tmpdir(), "evebox-bench-store-"));
  const store = Store.open(join(dir, "evebox.db"));
  const objects = Array.from({ length: 2000 }, (_, i) => ({ kind: i < 1000 ? "app" : "volume", id: uuid(i < 1000 ? 3 : 2, i % 1000) }));
  const data = (i: number, r: number) => ({ kind: "container", containerId: "c".repeat(64), progress: 100, round: r, i });
  const publish = (r: number) => {
    for (const [i, o] of objects.entries()) {
      const prev = store.observedOne(o.kind, o.id);
      store.putObserved({ kind: o.kind, id: o.id, name: prev?.name ?? `bench${i}`, state: "RUNNING", error: null, data: data(i, r) });
    }
  };
  const raw = store.sqlite.query(
    "INSERT INTO observed_objects (kind, id, name, state, error, data, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (kind, id) DO UPDATE SET name = ?3, state = ?4, error = ?5, data = ?6, updated_at = ?7",
  );
  const floor = (r: number) => {
    for (const [i, o] of objects.entries()) raw.run(o.kind, o.id, `bench${i}`, "RUNNING", null, JSON.stringify(data(i, r)), Date.now());
  };
  publish(0);
  store.observed("app"); // a pass reads them: cached from here on
  const times = (fn: (r: number) => void) => Array.from({ length: 5 }, (_, r) => { const t0 = performance.now(); fn(r + 1); return performance.now() - t0; });
  const ours = times(publish);
  const base = times(floor);
  store.close();
  rmSync(dir, { recursive: true, force: true });
  report.add({ what: "states of 1,000 apps + 1,000 volumes published (one pass)", value: median(ours), unit: "ms", baseline: { what: "the same rows, one prepared upsert each", value: median(base) }, note: `${spread(ours)}` });
}

// ---- 20 apps to RUNNING
const image = await ensureBusyboxImage();
const registry = await startRegistry();
const digest = (await registry.push(image, "bench/busybox:1")).replace("sha256:", "");
const ref = `${registry.host}/bench/busybox@sha256:${digest}`;
await run(["docker", "pull", ref]); // both sides start with the image present

const docker = testDocker();
const cmd = ["sh", "-c", 'trap "exit 0" TERM; sleep 3600 & wait'];

/** Baseline: N containers created and started through dockerode, all at once (what evebox's engine calls amount to). */
async function parallelDockerode(round: number): Promise<number> {
  const names = Array.from({ length: N }, (_, i) => `evebox-bench-par-${process.pid}-${round}-${i}`);
  const t0 = performance.now();
  await Promise.all(
    names.map(async (name) => {
      const c = await docker.createContainer({ name, Image: ref, Cmd: cmd, Labels: { "evebox.bench": "1" }, HostConfig: { NetworkMode: "none", Memory: 32 * 2 ** 20 } });
      await c.start();
    }),
  );
  const ms = performance.now() - t0;
  await Promise.all(names.map((n) => docker.getContainer(n).remove({ force: true })));
  return ms;
}

/** evebox: one PUT, then status polled until all RUNNING; then the apps removed again. */
async function throughEvebox(): Promise<number> {
  const dataDir = tempDataDir();
  const e = await startEvebox({ dataDir, binary: await ensureBinary() });
  try {
    const api = new Client(e.url);
    await api.json("POST", "/api/v1/setup", { token: e.setupToken, password: "bench-password" });
    const t0 = performance.now();
    const r = await api.json("PUT", "/api/v1/config", config(registry.host, digest, N));
    if (r.status !== 201) throw new Error(JSON.stringify(r.body));
    for (;;) {
      const s = (await api.json("GET", "/api/v1/status")).body;
      if (s.apps.length === N && s.apps.every((a: any) => a.state === "RUNNING")) break;
      if (performance.now() - t0 > 120_000) throw new Error("apps did not reach RUNNING");
      await Bun.sleep(20);
    }
    const ms = performance.now() - t0;
    await api.json("PUT", "/api/v1/config", {});
    for (let i = 0; i < 600; i++) {
      const left = await docker.listContainers({ all: true, filters: { label: ["evebox.app.name"] } });
      if (!left.some((c) => c.Labels["evebox.app.name"]?.startsWith("bench"))) break;
      await Bun.sleep(100);
    }
    return ms;
  } finally {
    await e.stop();
    cleanup(dataDir);
  }
}

// For scale: sequential docker run -d of the same image and command (once).
let sequentialMs = 0;
{
  const names = Array.from({ length: N }, (_, i) => `evebox-bench-bare-${process.pid}-${i}`);
  const t0 = performance.now();
  for (const name of names) await run(["docker", "run", "-d", "--name", name, "--network", "none", "--label", "evebox.bench=1", ref, ...cmd]);
  sequentialMs = performance.now() - t0;
  await run(["docker", "rm", "-f", ...names]);
}
const eve: number[] = [];
const par: number[] = [];
try {
  for (let r = 0; r < ROUNDS; r++) {
    // Both sides start with the image present (evebox removes it with the last app that used it).
    await run(["docker", "pull", ref]);
    par.push(await parallelDockerode(r));
    eve.push(await throughEvebox());
  }
} finally {
  await registry.stop();
}
report
  .add({ what: `${N} container apps to RUNNING`, value: median(eve), unit: "ms", baseline: { what: `${N} parallel dockerode create+start`, value: median(par) }, aim: { on: "ratio", op: "<=", limit: 1.1 }, note: `evebox ${spread(eve)}, dockerode ${spread(par)}` })
  .add({ what: `  for scale: ${N} sequential docker run`, value: sequentialMs, unit: "ms", baseline: { what: "parallel dockerode", value: median(par) } })
  .print();
