// Soak bench: the compiled binary, managed by the test controller (tests/support/controller), running 20 container
// apps (busybox from a local registry) and 2 VMs (the test guest from an HTTP datastore, QEMU under TCG), while
// 5 clients poll GET /api/v1/status and hold GET /api/v1/events open, and metrics and logs flow to a controller
// that is down half the time (up and down in turns). RSS and open file descriptors of evebox at the start (all
// apps RUNNING) and at the end, growth per hour extrapolated; the aim is no growth beyond noise. The baseline for
// "noise": how far the samples of the second half stray from their own trend line.
//
//   BENCH_SOAK_MINUTES (default 30; CI runs a short one, e.g. 3), BENCH_SOAK_APPS (20), BENCH_SOAK_VMS (2),
//   BENCH_SOAK_FLIP_S (controller up/down period in seconds, default 30).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { makeControllerPki } from "../tests/support/controller/pki.ts";
import { TestController } from "../tests/support/controller/server.ts";
import { ensureBusyboxImage, run, testDocker } from "../tests/support/docker.ts";
import { cleanup, ensureBinary, startEvebox, tempDataDir } from "../tests/support/evebox.ts";
import { ensureGuestImage } from "../tests/support/guest/image.ts";
import { startRegistry } from "../tests/support/registry.ts";
import { waitFor } from "../tests/support/wait.ts";
import { median, Report } from "./report.ts";
import { mkdirSync, writeFileSync } from "node:fs";

const MINUTES = Number(process.env.BENCH_SOAK_MINUTES ?? 30);
const APPS = Number(process.env.BENCH_SOAK_APPS ?? 20);
const VMS = Number(process.env.BENCH_SOAK_VMS ?? 2);
const FLIP_S = Number(process.env.BENCH_SOAK_FLIP_S ?? 30);
const CLIENTS = 5;
const uuid = (kind: number, n: number) => `5a000000-0000-4000-8${kind.toString(16).padStart(3, "0")}-${n.toString(16).padStart(12, "0")}`;
const rssMiB = (pid: number) => Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)![1]) / 1024;
const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
const sha256 = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

const image = await ensureBusyboxImage();
const registry = await startRegistry();
const digest = (await registry.push(image, "soak/busybox:1")).replace("sha256:", "");
const guest = VMS ? await ensureGuestImage() : null;
const qcow = guest ? new Uint8Array(readFileSync(guest.disk)) : new Uint8Array();
const http = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => (new URL(req.url).pathname === "/images/guest.qcow2" ? new Response(qcow) : new Response("no", { status: 404 })) });

function config() {
  const d: any = {
    datastores: [
      { id: uuid(0, 1), dType: "DsContainerRegistry", fqdn: `docker://${registry.host}` },
      { id: uuid(0, 2), dType: "DsHttp", fqdn: `http://127.0.0.1:${http.port}`, dpath: "images" },
    ],
    contentInfo: [{ uuid: uuid(1, 1), dsId: uuid(0, 1), URL: "soak/busybox:1", iformat: "CONTAINER", sha256: digest }],
    volumes: [],
    apps: [],
  };
  const CMD = "sh -c 'trap \"exit 0\" TERM; while true; do echo soak $(date); sleep 5; done & wait'";
  for (let i = 0; i < APPS; i++) {
    d.volumes.push({ uuid: uuid(2, i), origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: uuid(1, 1) } });
    d.apps.push({ uuidandversion: { uuid: uuid(3, i), version: "1" }, displayname: `soak${i}`, activate: true, fixedresources: { memory: 32768, vcpus: 1 }, volumeRefList: [{ uuid: uuid(2, i) }], userData: Buffer.from(`EVE_ECO_CMD=${CMD}`).toString("base64") });
  }
  if (VMS) d.contentInfo.push({ uuid: uuid(1, 2), dsId: uuid(0, 2), URL: "guest.qcow2", iformat: "QCOW2", sha256: sha256(qcow), displayName: "guest" });
  for (let i = 0; i < VMS; i++) {
    d.volumes.push({ uuid: uuid(4, i), origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: uuid(1, 2) }, maxsizebytes: String(96 << 20), generationCount: "1" });
    d.apps.push({ uuidandversion: { uuid: uuid(5, i), version: "1" }, displayname: `soakvm${i}`, activate: true, fixedresources: { memory: 131072, maxmem: 131072, vcpus: 1, virtualizationMode: "HVM" }, volumeRefList: [{ uuid: uuid(4, i) }], interfaces: [] });
  }
  return d;
}

const pki = await makeControllerPki();
const ctl = await TestController.start(pki);
const dataDir = tempDataDir("evebox-soak-");
mkdirSync(join(dataDir, "config"), { recursive: true });
writeFileSync(join(dataDir, "config", "root-certificate.pem"), pki.root.cert);
writeFileSync(join(dataDir, "config", "onboard.cert.pem"), pki.onboarding.cert);
writeFileSync(join(dataDir, "config", "onboard.key.pem"), pki.onboarding.keyPem);
const e = await startEvebox({
  dataDir,
  binary: await ensureBinary(),
  args: ["--controller", ctl.url],
  env: { EVEBOX_CONTROLLER_TIMERS: JSON.stringify({ configIntervalMs: 2000, metricIntervalMs: 5000, logIntervalMs: 5000, infoCheckIntervalMs: 5000, backoffBaseMs: 200, backoffMaxMs: 5000 }) },
});
const sock = join(dataDir, "run", "evebox.sock");
const local = (path: string, init: RequestInit = {}) => fetch(`http://localhost${path}`, { ...init, unix: sock } as RequestInit);
let stopping = false;
const clients: Promise<void>[] = [];
const report = new Report(`evebox soak bench (${APPS} containers + ${VMS} VMs, ${CLIENTS} clients on /status and /events, controller down half the time, ${MINUTES} min)`);
try {
  const deviceUuid = await waitFor("onboarding", async () => [...ctl.devices.values()][0]?.uuid, 60_000);
  ctl.setConfig(deviceUuid, { ...config(), configTimestamp: { seconds: Math.floor(Date.now() / 1000), nanos: 0 } });
  await waitFor(
    "every app RUNNING",
    async () => {
      const s = (await (await local("/api/v1/status")).json()) as any;
      return s.apps.length === APPS + VMS && s.apps.every((a: any) => a.state === "RUNNING") ? true : undefined;
    },
    { timeoutMs: 600_000, detail: () => e.output().slice(-2000) },
  );
  // An API token has an owner: the admin made at setup (the setup token is in run/setup-token).
  const setupToken = readFileSync(join(dataDir, "run", "setup-token"), "utf8").trim();
  const setup = await local("/api/v1/setup", { method: "POST", body: JSON.stringify({ token: setupToken, password: "bench-password-1" }), headers: { "content-type": "application/json" } });
  if (!setup.ok) throw new Error(`setup failed: ${setup.status} ${await setup.text()}`);
  const token = ((await (await local("/api/v1/tokens", { method: "POST", body: JSON.stringify({ name: "soak" }), headers: { "content-type": "application/json" } })).json()) as any).token as string;
  const auth = { authorization: `Bearer ${token}` };
  let polls = 0;
  let events = 0;
  for (let c = 0; c < CLIENTS; c++) {
    // Each client: an event stream held open (re-opened when it ends), and /status every second, as a console does.
    clients.push(
      (async () => {
        while (!stopping) {
          try {
            const r = await fetch(`${e.url}/api/v1/events`, { headers: auth, signal: AbortSignal.timeout(20_000) });
            const reader = r.body!.getReader();
            while (!stopping) {
              const { done } = await reader.read();
              if (done) break;
              events++;
            }
            await reader.cancel().catch(() => undefined);
          } catch {
            // the timeout ends a stream now and then: opened again, like a browser's EventSource
          }
        }
      })(),
      (async () => {
        while (!stopping) {
          await (await fetch(`${e.url}/api/v1/status`, { headers: auth })).arrayBuffer();
          polls++;
          await Bun.sleep(1000);
        }
      })(),
    );
  }
  // Settle, then sample every 10 s.
  await Bun.sleep(10_000);
  const t0 = Date.now();
  const end = t0 + MINUTES * 60_000;
  const samples: { t: number; rss: number; fds: number }[] = [];
  let up = true;
  let nextFlip = t0 + FLIP_S * 1000;
  while (Date.now() < end) {
    samples.push({ t: (Date.now() - t0) / 3_600_000, rss: rssMiB(e.proc.pid), fds: fds(e.proc.pid) });
    if (Date.now() >= nextFlip) {
      if (up) await ctl.down();
      else ctl.listen();
      up = !up;
      nextFlip += FLIP_S * 1000;
    }
    await Bun.sleep(Math.min(10_000, Math.max(0, end - Date.now())));
  }
  if (!up) ctl.listen();
  samples.push({ t: (Date.now() - t0) / 3_600_000, rss: rssMiB(e.proc.pid), fds: fds(e.proc.pid) });

  // The first half warms up (JIT tiers, the heap growing to its working size, SQLite's page cache): the trend is
  // fitted over the second half (least squares), and the noise is how far the samples stray from that line.
  const half = samples.slice(Math.floor(samples.length / 2));
  const fit = (k: "rss" | "fds") => {
    const n = half.length;
    const mt = half.reduce((a, s) => a + s.t, 0) / n;
    const mv = half.reduce((a, s) => a + s[k], 0) / n;
    const slope = half.reduce((a, s) => a + (s.t - mt) * (s[k] - mv), 0) / Math.max(1e-12, half.reduce((a, s) => a + (s.t - mt) ** 2, 0));
    const swing = Math.max(...half.map((s) => Math.abs(s[k] - (mv + slope * (s.t - mt)))));
    const span = half[n - 1]!.t - half[0]!.t;
    return { perHour: slope, overHalf: slope * span, swing };
  };
  const rss = fit("rss");
  const fd = fit("fds");
  const at = (k: "rss" | "fds", xs: typeof samples) => median(xs.map((s) => s[k]));
  const start = samples.slice(0, 3);
  const endS = samples.slice(-3);
  report
    .add({ what: "RSS at the end", value: at("rss", endS), unit: "MiB", baseline: { what: "at the start (all RUNNING)", value: at("rss", start) } })
    .add({ what: "RSS growth over the second half", value: rss.overHalf, unit: "MiB", aim: { on: "value", op: "<=", limit: Math.max(1, 2 * rss.swing) }, note: `${rss.perHour.toFixed(1)} MiB/h extrapolated; aim: within twice the samples' swing around the trend (${rss.swing.toFixed(1)} MiB), i.e. no growth beyond noise` })
    .add({ what: "open fds at the end", value: at("fds", endS), unit: "fds", baseline: { what: "at the start", value: at("fds", start) } })
    .add({ what: "fd growth over the second half", value: fd.overHalf, unit: "fds", aim: { on: "value", op: "<=", limit: Math.max(2, 2 * fd.swing) }, note: `${fd.perHour.toFixed(1)} fds/h extrapolated; swing ${fd.swing.toFixed(1)}` })
    .add({ what: "status polls (5 clients, 1/s each)", value: polls, unit: "polls", note: `${events} event-stream chunks, ${ctl.requests.length} controller requests answered, ${ctl.metrics.length} metrics, ${ctl.logs.length} log bundles received` });
} finally {
  stopping = true;
  await Promise.race([Promise.all(clients), Bun.sleep(25_000)]);
  try {
    const deviceUuid = [...ctl.devices.values()][0]?.uuid;
    if (deviceUuid) {
      ctl.setConfig(deviceUuid, { configTimestamp: { seconds: Math.floor(Date.now() / 1000) + 10, nanos: 0 } });
      await waitFor("the apps removed", async () => (((await (await local("/api/v1/status")).json()) as any).apps.length === 0 ? true : undefined), 180_000).catch(() => undefined);
    }
  } finally {
    await e.stop();
    await ctl.close();
    http.stop(true);
    await registry.stop();
    const left = await testDocker().listContainers({ all: true, filters: { label: ["evebox.app.name"] } });
    const ours = left.filter((c) => c.Labels["evebox.app.name"]?.startsWith("soak")).map((c) => c.Id);
    if (ours.length) await run(["docker", "rm", "-f", ...ours]);
    cleanup(dataDir);
  }
}
report.print();
