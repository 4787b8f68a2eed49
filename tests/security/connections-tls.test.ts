// Finding 6, on a device's shape: the HTTPS console and its plain-HTTP redirect both behind the connection gate.
// TLS goes through the gate unchanged (the console's own certificate), the redirect still answers, and a client
// over its per-client cap is closed without an HTTP answer on the TLS port.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { connect as tlsConnect } from "node:tls";
import { join } from "node:path";
import { runDevice, type RunningDevice } from "../../src/device/run.ts";
import { cleanup, tempDataDir } from "../support/evebox.ts";

let dir: string;
let running: RunningDevice;
let redirectPort: number;
const saved = { ...process.env };

beforeAll(async () => {
  dir = tempDataDir("evebox-conns-tls-");
  const key = join(dir, "key.pem");
  const cert = join(dir, "cert.pem");
  const p = Bun.spawn(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"], { stdout: "ignore", stderr: "ignore" });
  expect(await p.exited).toBe(0);
  process.env.EVEBOX_CONSOLE_MAX_CONNECTIONS_PER_CLIENT = "4";
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  redirectPort = probe.port;
  probe.stop(true);
  running = await runDevice({
    dataDir: join(dir, "data"),
    listen: "127.0.0.1:0",
    controller: null,
    version: "0.0.0-test",
    ui: null,
    apps: false,
    say: () => {},
    tls: { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") },
    redirectHttp: `127.0.0.1:${redirectPort}`,
  });
}, 60_000);

afterAll(async () => {
  await running?.stop();
  process.env = saved;
  cleanup(dir);
});

test("HTTPS through the gate: the console's certificate and its answers", async () => {
  expect(running.url).toStartWith("https://127.0.0.1:");
  const r = await fetch(`${running.url}/api/v1/health`, { tls: { rejectUnauthorized: false } } as RequestInit);
  expect(r.status).toBe(200);
  expect((await r.json()).ok).toBe(true);
});

test("the plain-HTTP redirect answers through its own gate", async () => {
  const r = await fetch(`http://127.0.0.1:${redirectPort}/settings?x=1`, { redirect: "manual" });
  expect(r.status).toBe(308);
  expect(r.headers.get("location")).toBe(`https://127.0.0.1:${new URL(running.url).port}/settings?x=1`);
});

test("over the per-client cap a TLS connection is closed, and the unix socket still answers", async () => {
  const port = Number(new URL(running.url).port);
  const outcomes = await Promise.all(
    Array.from(
      { length: 8 },
      () =>
        new Promise<"secure" | "closed">((resolve) => {
          const s = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => resolve("secure"));
          s.on("error", () => resolve("closed"));
          s.on("close", () => resolve("closed"));
          setTimeout(() => s.destroy(), 3_000);
        }),
    ),
  );
  expect(outcomes.filter((o) => o === "secure").length).toBeLessThanOrEqual(4);
  expect(outcomes.filter((o) => o === "closed").length).toBeGreaterThanOrEqual(4);
  const r = await fetch("http://localhost/api/v1/health", { unix: running.socketPath } as RequestInit);
  expect(r.status).toBe(200);
}, 20_000);
