// Builds the real binary once per test run and starts it on a free port with its own data directory.
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

export const ROOT = join(import.meta.dir, "..", "..");
export const BINARY = join(ROOT, "dist", "evebox-linux-x64");

let building: Promise<string> | null = null;

/** Compiles dist/evebox-linux-x64 (with the UI embedded) once per run; EVEBOX_TEST_BINARY skips it. */
export function ensureBinary(): Promise<string> {
  if (process.env.EVEBOX_TEST_BINARY) return Promise.resolve(process.env.EVEBOX_TEST_BINARY);
  building ??= (async () => {
    const p = Bun.spawn([process.execPath, "build.ts", "--target", "x64"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
    if ((await p.exited) !== 0 || !existsSync(BINARY)) throw new Error(`build failed:\n${out}\n${err}`);
    return BINARY;
  })();
  return building;
}

export function tempDataDir(prefix = "evebox-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * What every test device gets unless a test says otherwise: the tests' datastores and registries are
 * servers on loopback, which a device refuses by default (src/storage/destinations.ts).
 */
export const TEST_DEVICE_ENV: Record<string, string> = { EVEBOX_DATASTORE_ALLOW_LOCAL: "1" };

export interface Evebox {
  url: string;
  dataDir: string;
  setupToken: string | null;
  proc: Subprocess<"ignore", "pipe", "pipe">;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<number>;
}

export async function startEvebox(opts: { dataDir: string; args?: string[]; binary?: string; env?: Record<string, string> }): Promise<Evebox> {
  const binary = opts.binary ?? (await ensureBinary());
  const proc = Bun.spawn([binary, "run", "--data", opts.dataDir, "--listen", "127.0.0.1:0", ...(opts.args ?? [])], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    // BUN_BE_BUN would make the compiled binary act as the bun CLI; it must never reach evebox.
    env: { ...process.env, BUN_BE_BUN: undefined, ...TEST_DEVICE_ENV, ...opts.env },
  });
  let out = "";
  const decoder = new TextDecoder();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const reader = s.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out += decoder.decode(value, { stream: true });
    }
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  const deadline = Date.now() + 15_000;
  let url: string | undefined;
  while (Date.now() < deadline) {
    url = out.match(/console on (http:\/\/\S+)/)?.[1];
    if (url) break;
    if (proc.exitCode !== null) throw new Error(`evebox exited with ${proc.exitCode}:\n${out}`);
    await Bun.sleep(10);
  }
  if (!url) {
    proc.kill();
    throw new Error(`evebox did not start within 15 s:\n${out}`);
  }
  await Bun.sleep(20); // let the setup line (printed right after) arrive
  const setupToken = out.match(/setup\?token=([A-Za-z0-9_-]+)/)?.[1] ?? null;
  return {
    url,
    dataDir: opts.dataDir,
    setupToken,
    proc,
    output: () => out,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (proc.exitCode === null) proc.kill(signal);
      return await proc.exited;
    },
  };
}

/** A tiny cookie-keeping HTTP client, like a browser on the console's own origin. */
export class Client {
  cookie = "";
  constructor(readonly base: string) {}

  async req(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    const h: Record<string, string> = { ...headers };
    if (this.cookie) h.cookie = this.cookie;
    let payload: BodyInit | undefined;
    if (body instanceof Uint8Array) payload = body as Uint8Array<ArrayBuffer>;
    else if (typeof body === "string") payload = body;
    else if (body !== undefined) {
      payload = JSON.stringify(body);
      h["content-type"] ??= "application/json";
    }
    if (method !== "GET") h.origin ??= this.base;
    const res = await fetch(this.base + path, { method, headers: h, body: payload, redirect: "manual" });
    const set = res.headers.get("set-cookie");
    if (set) this.cookie = set.split(";")[0]!;
    return res;
  }
  async json(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any }> {
    const res = await this.req(method, path, body, headers);
    return { status: res.status, body: await res.json().catch(() => null) };
  }
}

export function cleanup(dir: string): void {
  if (existsSync(dir) && statSync(dir).isDirectory()) rmSync(dir, { recursive: true, force: true });
}
