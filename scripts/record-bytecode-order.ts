// Records which functions a start of evebox runs, for the binary's bytecode layout (build.ts, `bytecodeOrder`):
// Bun puts the bytecode a recorded run used together at the front of the embedded code, so a start reads less of
// the binary (idle RSS ~2.3 MiB less, bench/README.md, fourth pass). The profile holds hashes of functions'
// syntax, not code, and still applies after the code changes (functions changed since are placed after the
// recorded ones); `bytecodeOrderStats()` of `bun:jsc` says how much of it a run hit. Record again when the start
// changes much.
//
//   bun scripts/record-bytecode-order.ts      builds dist/evebox-linux-x64, runs it once, writes scripts/evebox.order
//
// The run: a first start, setup, one app's config (the app runtime, the network, the reconciler's pass), GET
// /status over TCP with a token, 2 s of idle, then SIGTERM (the profile is written on exit). One profile serves
// every target.
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sampleConfig } from "../tests/support/configs.ts";

const root = join(import.meta.dir, "..");
const out = join(root, "scripts", "evebox.order");
const binary = join(root, "dist", "evebox-linux-x64");

const build = Bun.spawnSync([process.execPath, "build.ts", "--target", "x64"], { cwd: root, stdout: "inherit", stderr: "inherit" });
if (build.exitCode !== 0) throw new Error("build.ts failed");

const dir = mkdtempSync(join(tmpdir(), "evebox-order-"));
const recorded = join(dir, "evebox.order");
const data = join(dir, "data");
const sock = join(data, "run", "evebox.sock");

/** Starts the binary on a free port and waits for its first 200. */
async function start(env: Record<string, string>) {
  const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const url = `http://127.0.0.1:${probe.port}`;
  probe.stop(true);
  const proc = Bun.spawn([binary, "run", "--data", data, "--listen", url.slice("http://".length)], {
    stdout: "ignore",
    stderr: "inherit",
    env: { ...process.env, BUN_BE_BUN: undefined, EVEBOX_DATASTORE_ALLOW_LOCAL: "1", ...env },
  });
  for (let t0 = Date.now(); ; ) {
    try {
      if ((await fetch(`${url}/api/v1/health`)).status === 200) break;
    } catch {}
    if (proc.exitCode !== null || Date.now() - t0 > 15_000) throw new Error("evebox did not answer");
    await Bun.sleep(10);
  }
  return { proc, url };
}

async function local(path: string, method = "GET", body?: unknown) {
  const r = await fetch(`http://localhost${path}`, {
    method,
    unix: sock,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: { "content-type": "application/json" },
  } as RequestInit);
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return r.json() as Promise<Record<string, unknown>>;
}

async function stop(proc: Bun.Subprocess) {
  proc.kill("SIGTERM");
  await proc.exited;
}

// The recorded run ends at idle: what only a stop or the config's removal runs stays out of the front.
const rec = await start({ BUN_BYTECODE_ORDER_OUT: recorded });
try {
  const setupToken = readFileSync(join(data, "run", "setup-token"), "utf8").trim();
  await local("/api/v1/setup", "POST", { token: setupToken, password: "record-order-1" });
  const { token } = (await local("/api/v1/tokens", "POST", { name: "order" })) as { token: string };
  await local("/api/v1/config", "PUT", sampleConfig());
  // Under load, as the bench asks: 16 clients, 2,000 requests.
  const status = async () => {
    for (let i = 0; i < 125; i++) await (await fetch(`${rec.url}/api/v1/status`, { headers: { authorization: `Bearer ${token}` } })).arrayBuffer();
  };
  await Promise.all(Array.from({ length: 16 }, status));
  await Bun.sleep(2000);
} finally {
  await stop(rec.proc);
}
// The network instance outlives evebox, as workloads do: a second run, not recorded, removes it.
const clean = await start({});
try {
  await local("/api/v1/config", "PUT", {});
  await Bun.sleep(3000);
} finally {
  await stop(clean.proc);
}
renameSync(recorded, out);
rmSync(dir, { recursive: true, force: true });
console.log(`order ${out} ${(statSync(out).size / 1024).toFixed(0)} KiB`);
