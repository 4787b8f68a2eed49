// A Local Profile Server for tests, speaking EVE's LPS API (eve docs/LPS.md; protobuf bodies of lf-edge/eve-api's
// proto/profile): it records what the device posts and answers what the test sets. It runs as its own process in
// the network namespace of an app's container (`nsenter -n`), so the device reaches it at that app's address on
// the network instance, as it reaches an LPS app deployed to it. The test and the server share a directory:
// `answers.json` (what to answer, per endpoint) and `requests.jsonl` (what arrived, decoded).
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { decodeMessage, encodeMessage } from "../../src/proto/index.ts";
import { pump } from "./netns.ts";
import { waitFor } from "./wait.ts";

const P = "org.lfedge.eve.profile.";
/** Request and answer message of each endpoint. */
const TYPES: Record<string, [string | null, string]> = {
  local_profile: [null, "LocalProfile"],
  appinfo: ["LocalAppInfoList", "LocalAppCmdList"],
  devinfo: ["LocalDevInfo", "LocalDevCmd"],
  radio: ["RadioStatus", "RadioConfig"],
  network: ["NetworkInfo", "LocalNetworkConfig"],
  location: ["ZInfoLocation", "LocalProfile"],
  appbootinfo: ["AppBootInfoList", "AppBootConfigList"],
};

export interface LpsRequest {
  endpoint: string;
  at: number;
  body: any;
}

export class TestLps {
  private constructor(
    readonly dir: string,
    readonly proc: Subprocess,
  ) {}

  /** Starts the server in the network namespace of process `pid` (an app container's init), on `port`. */
  static async startIn(pid: number, dir: string, port = 8888): Promise<TestLps> {
    writeFileSync(join(dir, "answers.json"), "{}");
    writeFileSync(join(dir, "requests.jsonl"), "");
    const proc = Bun.spawn(["nsenter", "-t", String(pid), "-n", process.execPath, import.meta.path, dir, String(port)], { stdout: "pipe", stderr: "pipe" });
    let out = "";
    pump(proc.stdout, (t) => (out += t));
    pump(proc.stderr, (t) => (out += t));
    await waitFor("the test LPS listening", () => out.includes("listening"), { timeoutMs: 15_000, failIf: () => (proc.exitCode !== null ? `it exited with ${proc.exitCode}: ${out}` : null) });
    return new TestLps(dir, proc);
  }

  /** Answers of an endpoint from now on: a plain object of its answer message, with the HTTP status. */
  answer(endpoint: string, status: number, body?: Record<string, unknown>): void {
    const all = JSON.parse(readFileSync(join(this.dir, "answers.json"), "utf8"));
    all[endpoint] = { status, body };
    writeFileSync(join(this.dir, "answers.json"), JSON.stringify(all));
  }

  requests(endpoint?: string): LpsRequest[] {
    const lines = readFileSync(join(this.dir, "requests.jsonl"), "utf8").split("\n").filter(Boolean);
    return lines.map((l) => JSON.parse(l) as LpsRequest).filter((r) => !endpoint || r.endpoint === endpoint);
  }

  stop(): void {
    if (this.proc.exitCode === null) this.proc.kill("SIGKILL");
  }
}

if (import.meta.main) {
  const [dir, port] = process.argv.slice(2);
  Bun.serve({
    hostname: "0.0.0.0",
    port: Number(port),
    async fetch(req) {
      const endpoint = new URL(req.url).pathname.replace(/^\/api\/v1\//, "");
      const types = TYPES[endpoint];
      if (!types) return new Response("not found", { status: 404 });
      const bytes = new Uint8Array(await req.arrayBuffer());
      const type = types[0]?.startsWith("Z") ? `org.lfedge.eve.info.${types[0]}` : P + types[0];
      const body = types[0] && bytes.byteLength ? decodeMessage(type, bytes) : null;
      appendFileSync(join(dir!, "requests.jsonl"), JSON.stringify({ endpoint, at: Date.now(), body, contentType: req.headers.get("content-type") }, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v)) + "\n");
      const a = JSON.parse(readFileSync(join(dir!, "answers.json"), "utf8"))[endpoint] as { status: number; body?: Record<string, unknown> } | undefined;
      if (!a) return new Response(null, { status: 204 });
      if (!a.body) return new Response(null, { status: a.status });
      return new Response(encodeMessage(P + types[1], a.body) as Uint8Array<ArrayBuffer>, { status: a.status, headers: { "Content-Type": "application/x-proto-binary" } });
    },
  });
  console.log(`lps listening on ${port}`);
}
