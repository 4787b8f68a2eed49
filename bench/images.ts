// npm run bench -- images: uploading a 1 GiB image into the device's content store through the console (over TCP
// on loopback, behind the connection gate, as a browser sends it) against `cat` of the same file to the same
// disk, in the same run. Two ways: the one-request POST /api/v1/images, and the resumable session in 8 MiB
// PATCHes as the Storage page sends it. Both are hashed while streamed and checked (qemu-img info) at the end;
// `cat` only copies. Also evebox's resident memory while receiving against its idle one: the body is streamed to
// disk, never held.
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bearer, setUp } from "../tests/support/api.ts";
import { cleanup, startEvebox } from "../tests/support/evebox.ts";
import { median, Report, spread } from "./report.ts";

const SIZE = Number(process.env.BENCH_IMAGE_BYTES ?? 1024 ** 3);
const ROUNDS = Number(process.env.BENCH_IMAGE_ROUNDS ?? 3);
const CHUNK = 8 * 1024 * 1024;
const MiB = 1024 * 1024;

const root = mkdtempSync(join(tmpdir(), "evebox-bench-images-"));
const source = join(root, "disk.raw");
const data = join(root, "device");

/** User + system CPU seconds of a process so far. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks (USER_HZ 100)
}

function rssKiB(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)![1]);
}

/** A raw disk of random bytes (nothing compresses or dedupes), an empty first sector as a blank disk has. */
async function makeSource(): Promise<void> {
  const fh = await open(source, "w");
  const block = new Uint8Array(64 * MiB);
  for (let off = 0; off < SIZE; off += block.length) {
    for (let i = 0; i < block.length; i += 65536) crypto.getRandomValues(block.subarray(i, i + 65536));
    if (off === 0) block.fill(0, 0, 4096);
    await fh.write(block, 0, Math.min(block.length, SIZE - off), off);
  }
  await fh.close();
}

async function timed<T>(f: () => Promise<T>): Promise<{ s: number; value: T }> {
  const t0 = performance.now();
  const value = await f();
  return { s: (performance.now() - t0) / 1000, value };
}

/** `cat source > dest` on the device's disk: MiB/s and CPU seconds per GiB. */
async function catToDisk(): Promise<{ rate: number; cpu: number }> {
  const dest = join(data, "persist", "cat-copy.raw");
  const { s, value: cpu } = await timed(async () => {
    const p = Bun.spawn(["cat", source], { stdout: Bun.file(dest), stderr: "inherit" });
    if ((await p.exited) !== 0) throw new Error("cat failed");
    const u = p.resourceUsage()!.cpuTime;
    return Number(u.user + u.system) / 1e6; // microseconds
  });
  rmSync(dest, { force: true });
  return { rate: SIZE / MiB / s, cpu: (cpu * 1024 ** 3) / SIZE };
}

let stopDevice: (() => Promise<unknown>) | null = null;
try {
  await makeSource();
  // Warm the page cache once: both sides then read the source from memory, and the disk sees only the writes.
  await new Response(Bun.file(source).stream()).arrayBuffer().catch(() => undefined);
  const evebox = await startEvebox({ dataDir: data, env: { EVEBOX_APPS: "off" } });
  stopDevice = () => evebox.stop();
  const api = await setUp(evebox, "bench-images-password");
  const auth = await bearer(api, "bench");
  const pid = evebox.proc.pid;
  const idle = rssKiB(pid);
  let peak = idle;
  const sampler = setInterval(() => (peak = Math.max(peak, rssKiB(pid))), 50);

  const remove = async (sha: string) => {
    const r = await fetch(`${evebox.url}/api/v1/images/${sha}`, { method: "DELETE", headers: auth });
    if (r.status !== 200) throw new Error(`DELETE: ${r.status} ${await r.text()}`);
  };
  /** MiB/s and evebox's CPU seconds per GiB of one upload. */
  const measured = async (upload: () => Promise<string>): Promise<{ rate: number; cpu: number }> => {
    const c0 = cpuSeconds(pid);
    const { s, value } = await timed(upload);
    const cpu = ((cpuSeconds(pid) - c0) * 1024 ** 3) / SIZE;
    await remove(value);
    return { rate: SIZE / MiB / s, cpu };
  };
  const oneRequest = () =>
    measured(async () => {
      const r = await fetch(`${evebox.url}/api/v1/images?name=bench`, { method: "POST", body: Bun.file(source), headers: { ...auth, "content-type": "application/octet-stream" } });
      const body = (await r.json()) as { sha256?: string; error?: string };
      if (r.status !== 201) throw new Error(`POST: ${r.status} ${body.error}`);
      return body.sha256!;
    });
  /** The same one request on the trusted unix socket: no connection gate in between (what the gate costs). */
  const overSocket = () =>
    measured(async () => {
      const r = await fetch("http://device/api/v1/images?name=bench", { method: "POST", body: Bun.file(source), headers: { "content-type": "application/octet-stream" }, unix: join(data, "run", "evebox.sock") } as RequestInit);
      const body = (await r.json()) as { sha256?: string; error?: string };
      if (r.status !== 201) throw new Error(`POST (socket): ${r.status} ${body.error}`);
      return body.sha256!;
    });
  const resumable = () =>
    measured(async () => {
      let r = await fetch(`${evebox.url}/api/v1/images/uploads`, { method: "POST", body: JSON.stringify({ name: "bench", size: SIZE }), headers: { ...auth, "content-type": "application/json" } });
      const { id } = (await r.json()) as { id: string };
      const file = Bun.file(source);
      for (let off = 0; off < SIZE; off += CHUNK) {
        r = await fetch(`${evebox.url}/api/v1/images/uploads/${id}?offset=${off}`, { method: "PATCH", body: file.slice(off, Math.min(SIZE, off + CHUNK)), headers: { ...auth, "content-type": "application/octet-stream" } });
        if (r.status !== 200 && r.status !== 201) throw new Error(`PATCH: ${r.status} ${await r.text()}`);
        if (r.status === 201) return ((await r.json()) as { sha256: string }).sha256;
        await r.arrayBuffer();
      }
      throw new Error("the upload never completed");
    });

  const cat: { rate: number; cpu: number }[] = [];
  const post: { rate: number; cpu: number }[] = [];
  const patch: { rate: number; cpu: number }[] = [];
  const socket: { rate: number; cpu: number }[] = [];
  // Alternating, so that the machine's noise falls on all three alike.
  for (let i = 0; i < ROUNDS; i++) {
    cat.push(await catToDisk());
    post.push(await oneRequest());
    patch.push(await resumable());
    socket.push(await overSocket());
  }
  clearInterval(sampler);
  await evebox.stop();
  const gib = (SIZE / 1024 ** 3).toFixed(SIZE % 1024 ** 3 ? 2 : 0);
  const rate = (xs: { rate: number }[]) => xs.map((x) => x.rate);
  const cpu = (xs: { cpu: number }[]) => xs.map((x) => x.cpu);
  const catRate = { what: "cat", value: median(rate(cat)) };
  const catCpu = { what: "cat", value: median(cpu(cat)) };
  new Report(`images: a ${gib} GiB image uploaded through the console vs cat of it to the same disk (medians of ${ROUNDS})`)
    .add({ what: "upload, one request (POST /images)", value: median(rate(post)), unit: "MiB/s", baseline: catRate, aim: { on: "ratio", op: ">=", limit: 0.15 }, note: spread(rate(post), " MiB/s") })
    .add({ what: "upload, resumable (8 MiB PATCHes)", value: median(rate(patch)), unit: "MiB/s", baseline: catRate, aim: { on: "ratio", op: ">=", limit: 0.15 }, note: spread(rate(patch), " MiB/s") })
    .add({ what: "evebox CPU per GiB, one request", value: median(cpu(post)), unit: "s", baseline: catCpu, note: "receiving through the gate, hashing, writing, qemu-img info" })
    .add({ what: "evebox CPU per GiB, resumable", value: median(cpu(patch)), unit: "s", baseline: catCpu })
    .add({ what: "upload, one request on the unix socket", value: median(rate(socket)), unit: "MiB/s", baseline: catRate, note: `no connection gate; ${spread(rate(socket), " MiB/s")}` })
    .add({ what: "evebox CPU per GiB, unix socket", value: median(cpu(socket)), unit: "s", baseline: catCpu, note: "the difference to the TCP line is the gate's pipe" })
    .add({ what: "cat to the same disk", value: median(rate(cat)), unit: "MiB/s", note: spread(rate(cat), " MiB/s") })
    .add({ what: "evebox RSS peak while receiving", value: peak / 1024, unit: "MiB", baseline: { what: "idle", value: idle / 1024 }, aim: { on: "value", op: "<=", limit: idle / 1024 + 128 }, note: "streamed: never the whole body" })
    .print();
  if (statSync(join(data, "persist", "content")).isDirectory()) cleanup(data);
} finally {
  await stopDevice?.().catch(() => undefined); // also when a round failed: no evebox is left running
  rmSync(root, { recursive: true, force: true });
}
