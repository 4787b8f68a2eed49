// Apps bench: 20 apps from the local registry to all RUNNING through evebox, vs 20 sequential
// `docker run` of the same image measured in the same run; and plan() on 1,000 apps.
import { desiredFromConfig } from "../src/reconcile/desired.ts";
import { plan } from "../src/reconcile/plan.ts";
import { ensureBusyboxImage, run, testDocker } from "../tests/support/docker.ts";
import { Client, cleanup, ensureBinary, startEvebox, tempDataDir } from "../tests/support/evebox.ts";
import { startRegistry } from "../tests/support/registry.ts";

const N = Number(process.env.BENCH_APPS ?? 20);
const results: Record<string, number | string> = {};
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

// ---- plan() on 1,000 apps (pure; no engine)
{
  const big = config("127.0.0.1:5000", "ab".repeat(32), 1000);
  const desired = desiredFromConfig(big);
  const observed = { now: Date.now(), bootAt: 0, containers: [], volumes: [], contentTrees: new Map(), apps: new Map(), startedSinceBoot: new Set<string>(), fetching: new Set<string>() };
  plan(desired, observed); // warm-up
  const t0 = performance.now();
  const R = 20;
  for (let i = 0; i < R; i++) plan(desired, observed);
  results["plan() on 1,000 apps, ms"] = +((performance.now() - t0) / R).toFixed(2);
  const t1 = performance.now();
  for (let i = 0; i < R; i++) desiredFromConfig(big);
  results["desiredFromConfig() on 1,000 apps, ms"] = +((performance.now() - t1) / R).toFixed(2);
}

// ---- 20 apps to RUNNING
const image = await ensureBusyboxImage();
const registry = await startRegistry();
const digest = (await registry.push(image, "bench/busybox:1")).replace("sha256:", "");
const ref = `${registry.host}/bench/busybox@sha256:${digest}`;
await run(["docker", "pull", ref]); // both sides start with the image present

// Baseline: sequential docker run -d of the same image and command.
{
  const names = Array.from({ length: N }, (_, i) => `evebox-bench-bare-${process.pid}-${i}`);
  const t0 = performance.now();
  for (const name of names) await run(["docker", "run", "-d", "--name", name, "--network", "none", "--label", "evebox.bench=1", ref, "sh", "-c", 'trap "exit 0" TERM; sleep 3600 & wait']);
  results["sequential docker run x20, ms"] = Math.round(performance.now() - t0);
  await run(["docker", "rm", "-f", ...names]);
}

// evebox: one PUT, then poll status until all RUNNING.
{
  const dataDir = tempDataDir();
  const e = await startEvebox({ dataDir, binary: await ensureBinary() });
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
  results[`evebox ${N} apps to RUNNING, ms`] = Math.round(performance.now() - t0);
  results["ratio evebox / sequential docker run"] = +(results[`evebox ${N} apps to RUNNING, ms`] as number / (results["sequential docker run x20, ms"] as number)).toFixed(2);
  await api.json("PUT", "/api/v1/config", {});
  for (let i = 0; i < 600; i++) {
    const left = await testDocker().listContainers({ all: true, filters: { label: ["evebox.app.name"] } });
    if (!left.some((c) => c.Labels["evebox.app.name"]?.startsWith("bench"))) break;
    await Bun.sleep(100);
  }
  await e.stop();
  cleanup(dataDir);
}
await registry.stop();

const width = Math.max(...Object.keys(results).map((k) => k.length));
console.log("\nevebox apps bench");
for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(width)}  ${v}`);
