// The metrics history end to end: the compiled binary sampling every second (EVEBOX_METRICS_INTERVAL_MS), a real
// busybox container from an Http datastore, and GET /api/v1/metrics/history for the device and the app.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { putConfig, setUp, waitForApp } from "./support/api.ts";
import { Client, cleanup, type Evebox, startEvebox, tempDataDir } from "./support/evebox.ts";
import { busyboxAppsConfig, type ImageServer, startImageServer } from "./support/image-server.ts";
import { waitFor } from "./support/wait.ts";

const APP = { uuid: "7c000000-0000-4000-8000-00000000a001", name: "busy", cmd: "sh -c 'trap \"exit 0\" TERM; while true; do dd if=/dev/zero of=/tmp/f bs=64k count=64 conv=fsync 2>/dev/null; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1; done'" };

let server: ImageServer;
let evebox: Evebox;
let dataDir: string;
let api: Client;

beforeAll(async () => {
  server = await startImageServer();
  dataDir = tempDataDir("evebox-metrics-");
  evebox = await startEvebox({ dataDir, env: { EVEBOX_METRICS_INTERVAL_MS: "1000" } });
  api = await setUp(evebox, "metrics-test-password");
}, 120_000);

afterAll(async () => {
  if (api) await putConfig(api, busyboxAppsConfig(server, [])).catch(() => undefined);
  if (api) await waitFor("the app removed", async () => ((await api.json("GET", "/api/v1/status")).body.apps.length === 0 ? true : undefined), 60_000).catch(() => undefined);
  await evebox?.stop();
  server?.stop();
  if (dataDir) cleanup(dataDir);
}, 90_000);

const history = async (object: string, range = "1h") => {
  const r = await api.json("GET", `/api/v1/metrics/history?object=${encodeURIComponent(object)}&range=${range}`);
  if (r.status !== 200) throw new Error(`history of ${object}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};
const known = (col: (number | null)[]) => col.filter((v): v is number => v !== null);

describe("metrics history", () => {
  test("the device's history fills every sampling interval: CPU, memory, disk in use", async () => {
    const h = await waitFor("three device samples", async () => {
      const b = await history("device");
      return b.series.ts.length >= 3 ? b : undefined;
    }, { timeoutMs: 20_000, everyMs: 250 });
    expect(h.intervalMs).toBe(1000);
    expect(h.to - h.from).toBe(3_600_000);
    const s = h.series;
    expect(s.ts).toEqual([...s.ts].sort((a: number, b: number) => a - b));
    expect(s.ts.at(-1)).toBeGreaterThan(Date.now() - 10_000);
    // Every column is as long as ts; rates are known from the second sample on.
    for (const col of ["cpuPercent", "memoryBytes", "diskReadBps", "diskWriteBps", "netRxBps", "netTxBps", "diskUsedBytes"]) expect(s[col]).toHaveLength(s.ts.length);
    const cpu = known(s.cpuPercent);
    expect(cpu.length).toBeGreaterThanOrEqual(s.ts.length - 1);
    expect(cpu.every((c) => c >= 0 && c <= 100)).toBe(true);
    expect(Math.min(...known(s.memoryBytes))).toBeGreaterThan(16 * 1024 * 1024);
    expect(Math.min(...known(s.diskUsedBytes))).toBeGreaterThan(0);
    expect(known(s.netRxBps).length).toBeGreaterThan(0);
  });

  test("a running container app gets its own history: CPU, memory, disk writes", async () => {
    let last: unknown = null;
    await putConfig(api, busyboxAppsConfig(server, [APP]));
    await waitForApp(api, APP.name, (a) => a.state === "RUNNING", "RUNNING", 90_000, evebox.output);
    const h = await waitFor("app samples with CPU and disk writes", async () => {
      const b = await history(APP.uuid);
      const s = b.series;
      last = s;
      return known(s.cpuPercent).length >= 2 && known(s.diskWriteBps).some((w) => w > 0) ? b : undefined;
    }, { timeoutMs: 30_000, everyMs: 500, detail: () => `last series: ${JSON.stringify(last)}\n${evebox.output().slice(-2000)}` });
    const s = h.series;
    expect(Math.max(...known(s.cpuPercent))).toBeGreaterThan(0);
    expect(Math.min(...known(s.memoryBytes))).toBeGreaterThan(0);
    expect(s.diskUsedBytes.every((v: number | null) => v === null)).toBe(true);
    // The longer ranges show the same newest samples (no minute has closed yet, or one has and its average shows).
    const day = await history(APP.uuid, "24h");
    expect(day.series.ts.length).toBeGreaterThan(0);
    expect(day.series.ts.at(-1)).toBeGreaterThanOrEqual(s.ts.at(-1) - 1000);
    expect((await history(APP.uuid, "7d")).series.ts.length).toBeGreaterThan(0);
  }, 150_000);

  test("a bad object or range is refused with the field named; /metrics stays and counts the losses", async () => {
    const bad = await api.json("GET", "/api/v1/metrics/history?object=../../etc&range=1h");
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/^object: /);
    const range = await api.json("GET", "/api/v1/metrics/history?object=device&range=1y");
    expect(range.status).toBe(400);
    expect(range.body.error).toMatch(/range/);
    const none = await history("7c000000-0000-4000-8000-0000000000ff");
    expect(none.series.ts).toEqual([]);
    const prom = await (await api.req("GET", "/api/v1/metrics")).text();
    expect(prom).toMatch(/^evebox_metrics_history_dropped_total 0$/m);
    expect(prom).toMatch(/^evebox_uptime_seconds /m);
    const doc = (await api.json("GET", "/api/v1/openapi.json")).body;
    expect(Object.keys(doc.paths["/api/v1/metrics/history"].get.responses)).toContain("200");
  });
});
