// A one-rule change end to end on the built binary: PUT /api/v1/config with one more ACE among 10,000 (over the
// trusted unix socket), until the new ruleset is in the kernel (the `version` chain's hash changes) — config
// parsing, validation and storing, the reconcile pass, the compile and the element update together. Baseline,
// in the same run: the same PUT with ?dryRun=1 (parsed, validated and planned, nothing stored or applied).
// evebox runs in a network namespace of its own (removed at the end); its app never starts (its image is on
// a datastore that does not answer), which leaves its interface's firewall compiled and loaded all the same.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDeviceIn, unixApi } from "../tests/support/netdevice.ts";
import { Netns } from "../tests/support/netns.ts";

const N = Number(process.env.BENCH_ACES ?? 10_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const U = (n: number) => `5e000000-0000-4000-8100-${n.toString(16).padStart(12, "0")}`;
const ace = (i: number) => ({ matches: [{ type: "ip", value: `10.${(i >> 8) & 255}.${i & 255}.${1 + (i % 250)}` }, { type: "protocol", value: "tcp" }, { type: "fport", value: String(1024 + (i % 60000)) }] });
const doc = (acls: unknown[]) => ({
  datastores: [{ id: U(1), dType: "DsHttp", fqdn: "http://127.0.0.1:9", dpath: "none" }],
  contentInfo: [{ uuid: U(2), dsId: U(1), URL: "image", iformat: "CONTAINER", sha256: "ab".repeat(32), displayName: "image" }],
  volumes: [{ uuid: U(3), origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: U(2) } }],
  networkInstances: [{ uuidandversion: { uuid: U(4), version: "1" }, displayname: "bench", instType: "ZnetInstLocal", activate: true, port: { name: "uplink0" }, ip: { subnet: "198.51.100.0/24", gateway: "198.51.100.1", dns: ["203.0.113.1"] } }],
  apps: [{ uuidandversion: { uuid: U(5), version: "1" }, displayname: "bench", activate: true, fixedresources: { memory: 65536, vcpus: 1 }, volumeRefList: [{ uuid: U(3) }], interfaces: [{ name: "eth0", networkId: U(4), acls }] }],
});
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mm = (xs: number[]) => `${median(xs).toFixed(0)} (min ${Math.min(...xs).toFixed(0)})`;

const dev = await Netns.create("bapi");
const data = mkdtempSync(join(tmpdir(), "evebox-bench-api-"));
let device: Awaited<ReturnType<typeof startDeviceIn>> | null = null;
try {
  await dev.ip("link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0p");
  await dev.ip("addr", "add", "203.0.113.2/24", "dev", "uplink0");
  await dev.ip("link", "set", "uplink0", "up");
  await dev.ip("link", "set", "uplink0p", "up");
  device = await startDeviceIn(dev, data);
  const sock = device.sock;
  const version = async () => (await dev.exec(["nft", "list", "chain", "inet", "evebox", "version"], { ok: [1] })).out;
  const aces = Array.from({ length: N }, (_, i) => ace(i));
  const first = await unixApi(sock, "PUT", "/api/v1/config", doc(aces));
  if (first.status !== 201) throw new Error(`PUT /config: ${first.status} ${JSON.stringify(first.body).slice(0, 500)}`);
  for (let i = 0; i < 600 && !(await version()).includes("evebox "); i++) await Bun.sleep(100);
  if (!(await version()).includes("evebox ")) throw new Error(`the firewall was not loaded:\n${device.out().slice(-2000)}`);
  await Bun.sleep(2000);

  const toKernel: number[] = [];
  const answered: number[] = [];
  const dryRun: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const acls = [...aces.slice(0, N / 2), { matches: [{ type: "ip", value: `192.0.2.${10 + r}` }, { type: "protocol", value: "tcp" }, { type: "fport", value: "443" }] }, ...aces.slice(N / 2)];
    let t0 = performance.now();
    const dry = await unixApi(sock, "PUT", "/api/v1/config?dryRun=1", doc(acls));
    if (dry.status !== 200) throw new Error(`PUT /config?dryRun=1: ${dry.status}`);
    dryRun.push(performance.now() - t0);
    const before = await version();
    t0 = performance.now();
    const res = await unixApi(sock, "PUT", "/api/v1/config", doc(acls));
    if (res.status !== 201) throw new Error(`PUT /config: ${res.status}`);
    answered.push(performance.now() - t0);
    for (let i = 0; i < 20_000 && (await version()) === before; i++);
    toKernel.push(performance.now() - t0);
    await Bun.sleep(1500); // the passes that follow a change settle
  }
  const results: Record<string, string | number> = {
    [`PUT /config?dryRun=1 of ${N} ACEs + 1 (parse, validate, plan), ms, median of ${RUNS}`]: mm(dryRun),
    ["PUT /config with one more ACE: answered, ms"]: mm(answered),
    ["PUT /config with one more ACE: in the kernel, ms"]: mm(toKernel),
    ["in the kernel / dry run"]: +(median(toKernel) / median(dryRun)).toFixed(2),
  };
  for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(88)} ${v}`);
} finally {
  if (device) {
    await unixApi(device.sock, "PUT", "/api/v1/config", { apps: [], networkInstances: [] }).catch(() => undefined);
    await Bun.sleep(1000);
    device.proc.kill("SIGTERM");
    await device.proc.exited;
  }
  await dev.destroy();
  rmSync(data, { recursive: true, force: true });
}
