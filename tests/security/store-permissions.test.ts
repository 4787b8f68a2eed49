// Finding 13: in a data directory that exists already with mode 0755 (and a store an older evebox left 0644), the
// store, its WAL and shared memory, the device key and the setup token are owner-only, and the data directories are
// tightened to 0700 at start: the `nobody` user reads none of them.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanup, type Evebox, startEvebox, tempDataDir } from "../support/evebox.ts";
import { unixClient } from "../support/api.ts";
import { waitFor } from "../support/wait.ts";

let dataDir: string;
let evebox: Evebox;

beforeAll(async () => {
  dataDir = tempDataDir("evebox-perm-");
  chmodSync(dataDir, 0o755);
  for (const d of ["config", "persist", "run"]) mkdirSync(join(dataDir, d), { mode: 0o755 });
  for (const d of ["config", "persist", "run"]) chmodSync(join(dataDir, d), 0o755);
  // An empty file is an empty SQLite database: what a store made under umask 022 looks like before its first start.
  writeFileSync(join(dataDir, "persist", "evebox.db"), "", { mode: 0o644 });
  chmodSync(join(dataDir, "persist", "evebox.db"), 0o644);
  evebox = await startEvebox({ dataDir, env: { EVEBOX_APPS: "off" } });
  // In local mode the device identity is made when the controller part is first asked (GET /controller, here over
  // the unix socket, which leaves the setup token in place), not at start.
  const r = await unixClient(join(dataDir, "run", "evebox.sock")).json("GET", "/api/v1/controller");
  expect(r.status).toBe(200);
  await waitFor("the device key", () => existsSync(join(dataDir, "config", "device.key.pem")), 15_000);
}, 300_000);

afterAll(async () => {
  await evebox?.stop();
  cleanup(dataDir);
});

const mode = (p: string) => statSync(p).mode & 0o777;

/** Whether the unprivileged `nobody` user can read the file (the test runs as root, as the device does). */
async function nobodyReads(path: string): Promise<boolean> {
  const p = Bun.spawn(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", path], { stdout: "ignore", stderr: "ignore" });
  return (await p.exited) === 0;
}

test("data directories are tightened to 0700 at start", () => {
  for (const d of ["", "config", "persist", "run"]) expect({ dir: d || ".", mode: mode(join(dataDir, d)).toString(8) }).toEqual({ dir: d || ".", mode: "700" });
});

test("the store, its -wal and -shm, the device key and the setup token are 0600", () => {
  const files = ["persist/evebox.db", "persist/evebox.db-wal", "persist/evebox.db-shm", "config/device.key.pem", "run/setup-token"];
  for (const f of files) {
    expect(existsSync(join(dataDir, f))).toBe(true);
    expect({ file: f, mode: mode(join(dataDir, f)).toString(8) }).toEqual({ file: f, mode: "600" });
  }
});

test("nobody reads neither the store (password hash, sessions) nor the device key", async () => {
  if (process.getuid?.() !== 0) return; // setpriv needs root; the modes above are checked either way
  for (const f of ["persist/evebox.db", "persist/evebox.db-wal", "config/device.key.pem", "run/setup-token"]) {
    expect({ file: f, readable: await nobodyReads(join(dataDir, f)) }).toEqual({ file: f, readable: false });
  }
});

test("after a crash, a store, WAL and shared memory left 0644 (by an older evebox) are tightened at the next start", async () => {
  await evebox.stop("SIGKILL"); // SQLite keeps -wal and -shm when the process dies
  const files = ["persist/evebox.db", "persist/evebox.db-wal", "persist/evebox.db-shm"];
  for (const f of files) {
    expect(existsSync(join(dataDir, f))).toBe(true);
    chmodSync(join(dataDir, f), 0o644);
  }
  chmodSync(join(dataDir, "persist"), 0o755);
  evebox = await startEvebox({ dataDir, env: { EVEBOX_APPS: "off" } });
  expect(mode(join(dataDir, "persist")).toString(8)).toBe("700");
  for (const f of files) expect({ file: f, mode: mode(join(dataDir, f)).toString(8) }).toEqual({ file: f, mode: "600" });
}, 60_000);
