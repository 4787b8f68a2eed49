// Builds the real binary once per test run and starts it on a free port with its own data directory.
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { waitFor } from "./wait.ts";

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
  const exited = () => (proc.exitCode !== null ? `evebox exited with ${proc.exitCode}` : null);
  let url: string;
  try {
    url = await waitFor("evebox's console", () => out.match(/console on (http:\/\/\S+)/)?.[1], { timeoutMs: 15_000, everyMs: 10, failIf: exited });
    // The setup link is printed right after the listening line, when the device still needs its setup.
    if ((await fetch(`${url}/api/v1/health`).then((r) => r.json())).setupRequired) {
      await waitFor("the setup link", () => /setup\?token=[A-Za-z0-9_-]+\s/.test(out), { timeoutMs: 5_000, everyMs: 10, failIf: exited });
    }
  } catch (e) {
    proc.kill();
    throw new Error(`${(e as Error).message}\n${out}`);
  }
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

/**
 * A tiny cookie-keeping HTTP client, like a browser on the console's own origin. `insecureTls` accepts the device's
 * self-signed certificate (the image tests reach the console over HTTPS); `timeoutMs` bounds each request; `headers`
 * go with every request (a bearer token).
 */
export class Client {
  cookie = "";
  constructor(
    readonly base: string,
    readonly opts: { insecureTls?: boolean; timeoutMs?: number; headers?: Record<string, string> } = {},
  ) {}

  async req(method: string, path: string, body?: unknown, headers: Record<string, string> = {}, timeoutMs = this.opts.timeoutMs): Promise<Response> {
    const h: Record<string, string> = { ...this.opts.headers, ...headers };
    if (this.cookie) h.cookie = this.cookie;
    let payload: BodyInit | undefined;
    if (body instanceof Uint8Array) payload = body as Uint8Array<ArrayBuffer>;
    else if (typeof body === "string" || body instanceof Blob) payload = body; // a Blob: Bun.file, streamed
    else if (body !== undefined) {
      payload = JSON.stringify(body);
      h["content-type"] ??= "application/json";
    }
    if (method !== "GET") h.origin ??= this.base;
    const init: RequestInit & { tls?: { rejectUnauthorized: boolean } } = { method, headers: h, body: payload, redirect: "manual" };
    if (timeoutMs) init.signal = AbortSignal.timeout(timeoutMs);
    if (this.opts.insecureTls) init.tls = { rejectUnauthorized: false };
    const res = await fetch(this.base + path, init);
    const set = res.headers.get("set-cookie");
    if (set) this.cookie = set.split(";")[0]!;
    return res;
  }
  async json(method: string, path: string, body?: unknown, headers?: Record<string, string>, timeoutMs?: number): Promise<{ status: number; body: any; headers: Headers }> {
    const res = await this.req(method, path, body, headers, timeoutMs);
    return { status: res.status, body: await res.json().catch(() => null), headers: res.headers };
  }
}

export function cleanup(dir: string): void {
  if (existsSync(dir) && statSync(dir).isDirectory()) rmSync(dir, { recursive: true, force: true });
}
