// The built evebox binary run inside a network namespace (tests/support/netns.ts), talked to over its unix socket:
// the console's TCP port lives inside the namespace.
import { join } from "node:path";
import type { Subprocess } from "bun";
import { testDocker } from "./docker.ts";
import { waitFor } from "./wait.ts";
import { ensureBinary, TEST_DEVICE_ENV } from "./evebox.ts";
import { type Netns, pump } from "./netns.ts";

export interface NsDevice {
  proc: Subprocess;
  out: () => string;
  sock: string;
}

export async function startDeviceIn(ns: Netns, dataDir: string, opts: { args?: string[]; env?: Record<string, string> } = {}): Promise<NsDevice> {
  const argv = [await ensureBinary(), "run", "--data", dataDir, "--listen", "127.0.0.1:0", ...(opts.args ?? [])];
  // BUN_BE_BUN (set for `bun test` by scripts/run-tests.ts) would make the binary act as bun.
  const proc = ns.spawn(argv, { env: { BUN_BE_BUN: undefined, ...TEST_DEVICE_ENV, ...opts.env } });
  let out = "";
  pump(proc.stdout, (t) => (out += t));
  pump(proc.stderr, (t) => (out += t));
  const sock = join(dataDir, "run", "evebox.sock");
  await waitFor("evebox to listen", () => out.includes("console on"), {
    timeoutMs: 20_000,
    failIf: () => (proc.exitCode !== null ? `evebox exited with ${proc.exitCode}:\n${out}` : null),
  });
  return { proc, out: () => out, sock };
}

/** One call to the local API over the device's unix socket; the body parsed as JSON (null when it is not). */
export async function unixApi(sock: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://localhost${path}`, {
    method,
    unix: sock,
    headers: body !== undefined ? { "content-type": "application/json" } : {},
    body: body !== undefined ? JSON.stringify(body) : undefined,
  } as RequestInit);
  return { status: res.status, body: await res.json().catch(() => null) };
}

/** For afterAll: an empty config (apps and NIs removed), then any container of these apps still there removed by force. */
export async function removeAppsOf(dev: NsDevice, appUuids: string[], timeoutMs = 30_000): Promise<void> {
  await unixApi(dev.sock, "PUT", "/api/v1/config", { apps: [], networkInstances: [] }).catch(() => undefined);
  const labels = appUuids.map((u) => `evebox.app=${u}`);
  const left = () => testDocker().listContainers({ all: true, filters: { label: labels } });
  await waitFor("apps removed", async () => ((await left()).length === 0 ? true : undefined), timeoutMs).catch(() => undefined);
  for (const uuid of appUuids) {
    for (const c of await testDocker().listContainers({ all: true, filters: { label: [`evebox.app=${uuid}`] } })) await testDocker().getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  }
}
