// The compiled binary against oversized configs (issue 12, findings 4 and 5): a 1 MB body of 500,000 empty
// apps must not cost a gigabyte or answer 100 MB, and 16,000 network instances must not stall the event loop.
// Speed figures are in bench/controller.ts; here only outcomes, and a generous 2 s for /health to answer.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { Client, cleanup, ensureBinary, type Evebox, startEvebox, tempDataDir } from "../support/evebox.ts";

const PASSWORD = "correct horse battery";
let dataDir: string;
let evebox: Evebox;
let admin: Client;

/** Peak resident memory of the evebox process so far (VmHWM), in MiB. */
function peakRssMiB(): number {
  const kb = Number(readFileSync(`/proc/${evebox.proc.pid}/status`, "utf8").match(/^VmHWM:\s+(\d+) kB/m)?.[1]);
  return kb / 1024;
}

beforeAll(async () => {
  const binary = await ensureBinary();
  dataDir = tempDataDir("evebox-bounds-");
  evebox = await startEvebox({ dataDir, binary, env: { EVEBOX_APPS: "off" } });
  admin = new Client(evebox.url);
  const setup = await admin.json("POST", "/api/v1/setup", { token: evebox.setupToken, password: PASSWORD });
  expect(setup.status).toBe(200);
}, 300_000);

afterAll(async () => {
  await evebox?.stop();
  cleanup(dataDir);
});

describe("oversized configs through PUT /api/v1/config", () => {
  test("500,000 empty apps in 1 MB of protobuf: 400 naming the bound, a small answer, no gigabyte of memory", async () => {
    const body = new Uint8Array(1_000_000);
    for (let i = 0; i < body.length; i += 2) body[i] = 0x22; // field 4 (apps), length 0
    const before = peakRssMiB();
    const res = await admin.req("PUT", "/api/v1/config", body, { "content-type": "application/x-proto-binary" });
    const text = await res.text();
    expect(res.status).toBe(400);
    expect(text.length).toBeLessThan(64 * 1024);
    const answer = JSON.parse(text);
    expect(answer.problems.map((p: any) => `${p.path}: ${p.message}`)).toContain("apps: 500000 entries: at most 1024");
    expect(answer.problems.length).toBeLessThanOrEqual(100);
    expect(answer.problemCount).toBe(answer.problems.length);
    expect(answer.truncated).toBe(false);
    const after = peakRssMiB();
    console.log(`500,000 empty apps: ${text.length} bytes answered; evebox peak RSS ${before.toFixed(0)} → ${after.toFixed(0)} MiB`);
    // Before the bounds: 1.25 GB (OOM-killed under a 1 GiB cgroup).
    expect(after - before).toBeLessThan(256);
    expect((await admin.json("GET", "/api/v1/config")).status).toBe(404); // the running config (none) stays
  }, 60_000);

  test("16,000 network instances are refused by the bound while /health keeps answering", async () => {
    const nis = Array.from({ length: 16_000 }, (_, i) => {
      const a = i * 4;
      return {
        uuidandversion: { uuid: `00000001-0000-4000-8000-${i.toString(16).padStart(12, "0")}`, version: "1" },
        displayname: `ni${i}`,
        instType: "ZnetInstLocal",
        ip: { subnet: `10.${(a >> 16) & 255}.${(a >> 8) & 255}.${a & 255}/30` },
      };
    });
    const t0 = performance.now();
    let putDone = false;
    const put = admin.json("PUT", "/api/v1/config", { networkInstances: nis }).finally(() => (putDone = true));
    // Ask for /health over and over while the PUT is in flight; the slowest answer is what a stall shows.
    const latencies: number[] = [];
    do {
      const h0 = performance.now();
      const health = await fetch(`${evebox.url}/api/v1/health`, { signal: AbortSignal.timeout(60_000) });
      expect(health.status).toBe(200);
      await health.arrayBuffer();
      latencies.push(performance.now() - h0);
    } while (!putDone);
    const r = await put;
    const slowest = Math.max(...latencies);
    console.log(`16,000 network instances: PUT answered in ${(performance.now() - t0).toFixed(0)} ms; /health answered ${latencies.length} times meanwhile, the slowest in ${slowest.toFixed(0)} ms`);
    expect(r.status).toBe(400);
    expect(r.body.problems.map((p: any) => `${p.path}: ${p.message}`)).toContain("networkInstances: 16000 entries: at most 256");
    // Before: /health waited 19.9 s behind validation. 2 s is generous for a loaded 2-core CI machine.
    expect(slowest).toBeLessThan(2000);
  }, 60_000);

  test("a document at the bound (256 network instances) is still accepted", async () => {
    const nis = Array.from({ length: 256 }, (_, i) => ({
      uuidandversion: { uuid: `00000002-0000-4000-8000-${i.toString(16).padStart(12, "0")}`, version: "1" },
      displayname: `ni${i}`,
      instType: "ZnetInstLocal",
      ip: { subnet: `100.64.${i}.0/24` },
    }));
    const r = await admin.json("PUT", "/api/v1/config?dryRun=1", { networkInstances: nis });
    expect(r.status).toBe(200);
    expect(r.body.plan.filter((s: any) => s.kind === "networkInstance")).toHaveLength(256);
  }, 60_000);
});
