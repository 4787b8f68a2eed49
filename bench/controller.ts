// bench controller: (1) decode + validate a controller's EdgeDevConfig of 1,000 apps, 1,000 volumes and 100
// network instances, against a bare protobufjs decode of the same bytes, with the count bounds' share and the
// documents of issue 12 (500,000 empty apps refused; 256 and 16,000 network instances validated); (2) the outbox's enqueue and drain rates
// against bare bun:sqlite inserts of the same payloads. Each figure is a ratio against its baseline, same run.
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { scanBinary } from "../src/config/bounds.ts";
import { ConfigService } from "../src/config/service.ts";
import { validateConfig } from "../src/config/validate.ts";
import { DEVICE_ENV } from "../src/config/device-env.ts";
import { Outbox } from "../src/controller/outbox.ts";
import { EventBus } from "../src/model/events.ts";
import { encodeMessage, lookupType } from "../src/proto/index.ts";
import { Store } from "../src/store/index.ts";
import { Report } from "./report.ts";

const EDGE = "org.lfedge.eve.config.EdgeDevConfig";
const uuid = (kind: number, i: number) => `${kind.toString(16).padStart(8, "0")}-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;

function syntheticConfig() {
  const ds = uuid(9, 0);
  const nis = Array.from({ length: 100 }, (_, i) => ({
    uuidandversion: { uuid: uuid(1, i), version: "1" },
    displayname: `ni-${i}`,
    instType: "ZnetInstLocal",
    activate: true,
    ip: { subnet: `10.${Math.floor(i / 250)}.${i % 250}.0/24`, gateway: `10.${Math.floor(i / 250)}.${i % 250}.1`, dhcpRange: { start: `10.${Math.floor(i / 250)}.${i % 250}.10`, end: `10.${Math.floor(i / 250)}.${i % 250}.200` } },
  }));
  const trees = Array.from({ length: 1000 }, (_, i) => ({ uuid: uuid(2, i), dsId: ds, URL: `library/app${i}:1`, iformat: "CONTAINER", displayName: `image-${i}` }));
  const volumes = Array.from({ length: 1000 }, (_, i) => ({
    uuid: uuid(3, i),
    origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: uuid(2, i) },
    displayName: `vol-${i}`,
    maxsizebytes: "104857600",
    generationCount: "1",
  }));
  const apps = Array.from({ length: 1000 }, (_, i) => ({
    uuidandversion: { uuid: uuid(4, i), version: "1" },
    displayname: `app-${i}`,
    activate: true,
    fixedresources: { memory: 65536, maxmem: 65536, vcpus: 1 },
    volumeRefList: [{ uuid: uuid(3, i), generationCount: "1" }],
    interfaces: [{ name: "eth0", networkId: uuid(1, i % 100), acls: [{ matches: [{ type: "protocol", value: "tcp" }, { type: "lport", value: String(8000 + (i % 1000)) }], actions: [{ portmap: true, appPort: 80 }] }] }],
  }));
  return { id: { uuid: uuid(0, 0), version: "1" }, datastores: [{ id: ds, dType: "DsContainerRegistry", fqdn: "docker://registry.local" }], contentInfo: trees, volumes, networkInstances: nis, apps, configTimestamp: { seconds: 1_800_000_000 } };
}

function timeIt(fn: () => void, minMs = 1500): number {
  fn(); // warm up
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs) {
    fn();
    n++;
  }
  return (performance.now() - t0) / n;
}

const dir = mkdtempSync(join(tmpdir(), "evebox-bench-ctl-"));
const report = new Report("evebox controller bench");
try {
  // ---- (1) decode + validate vs raw decode
  const bytes = encodeMessage(EDGE, syntheticConfig());
  const type = lookupType(EDGE);
  const store = Store.open(join(dir, "config.db"));
  const svc = new ConfigService(store, new EventBus(store));
  let problems = 0;
  const raw = timeIt(() => void type.decode(bytes));
  const full = timeIt(() => {
    const parsed = svc.parse(bytes, "application/x-proto-binary");
    problems = validateConfig(parsed.doc, DEVICE_ENV).length;
  });
  const scan = timeIt(() => void scanBinary(type, bytes));
  const kib = (bytes.byteLength / 1024).toFixed(0);
  report
    .add({ what: `decode + verify + validate, ${kib} KiB config (1,000 apps; ${problems} problems)`, value: full, unit: "ms", baseline: { what: "raw protobufjs decode", value: raw }, aim: { on: "ratio", op: "<=", limit: 3 } })
    .add({ what: "  of which the count bounds (wire scan before decoding)", value: scan, unit: "ms", baseline: { what: "raw decode", value: raw } });

  // ---- (1b) the documents of issue 12: refused by the bounds, or validated beyond them
  const emptyApps = new Uint8Array(1_000_000);
  for (let i = 0; i < emptyApps.length; i += 2) emptyApps[i] = 0x22;
  const refuse = timeIt(() => {
    try {
      svc.parse(emptyApps, "application/x-proto-binary");
    } catch {}
  }, 500);
  report.add({ what: "500,000 empty apps (1 MB): refused by the bounds", value: refuse, unit: "ms", baseline: { what: "raw decode above", value: raw }, note: "1.25 GB and ~2.4 s before the bounds" });
  const nis = (n: number) =>
    Array.from({ length: n }, (_, i) => {
      const a = i * 4;
      return { uuidandversion: { uuid: uuid(1, i), version: "1" }, displayname: `ni-${i}`, instType: "ZnetInstLocal", ip: { subnet: `10.${(a >> 16) & 255}.${(a >> 8) & 255}.${a & 255}/30` } };
    });
  const at = { networkInstances: nis(256) };
  const beyond = { networkInstances: nis(16_000) };
  const v256 = timeIt(() => void validateConfig(at, DEVICE_ENV), 500);
  const v16k = timeIt(() => void validateConfig(beyond, DEVICE_ENV), 1000);
  report
    .add({ what: "validateConfig, 256 /30 Local instances (the bound)", value: v256, unit: "ms", baseline: { what: "raw decode above", value: raw } })
    .add({ what: "validateConfig, 16,000 instances (given directly)", value: v16k, unit: "ms", baseline: { what: "256 instances", value: v256 }, note: "n log n; all pairs took 12.7-21.9 s" });
  store.close();

  // ---- (2) outbox enqueue/drain vs raw bun:sqlite inserts, ~1 KiB payloads, one transaction per message
  const N = 5000;
  const payload = new Uint8Array(1024).fill(7);
  const rawDb = new Database(join(dir, "raw.db"), { create: true });
  rawDb.run("PRAGMA journal_mode = WAL");
  rawDb.run("PRAGMA synchronous = NORMAL");
  rawDb.run("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, path TEXT, body BLOB, size INTEGER, created_at INTEGER)");
  const ins = rawDb.prepare("INSERT INTO t (kind, path, body, size, created_at) VALUES (?, ?, ?, ?, ?)");
  let t0 = performance.now();
  for (let i = 0; i < N; i++) ins.run("metrics", "metrics", payload, payload.byteLength, Date.now());
  const rawRate = N / ((performance.now() - t0) / 1000);
  rawDb.close();

  const ostore = Store.open(join(dir, "outbox.db"));
  const outbox = new Outbox(ostore, 64 * 1024 * 1024);
  t0 = performance.now();
  for (let i = 0; i < N; i++) outbox.enqueue(i % 10 === 0 ? "info" : "metrics", "metrics", payload, i % 10 === 0 ? `app:${i % 50}` : null);
  const enqRate = N / ((performance.now() - t0) / 1000);
  const queued = outbox.depth().messages;
  t0 = performance.now();
  let drained = 0;
  for (let m = outbox.peek(); m; m = outbox.peek()) {
    outbox.ack(m.id);
    drained++;
  }
  const drainRate = drained / ((performance.now() - t0) / 1000);
  ostore.close();

  // Bounded: the same load into a 1 MiB outbox, dropping as it goes.
  const bstore = Store.open(join(dir, "bounded.db"));
  const bounded = new Outbox(bstore, 1024 * 1024);
  t0 = performance.now();
  for (let i = 0; i < N; i++) bounded.enqueue("metrics", "metrics", payload);
  const boundedRate = N / ((performance.now() - t0) / 1000);
  const dropped = bounded.counts().dropped.metrics;
  bstore.close();

  report
    .add({ what: `outbox enqueue, ${N} messages of 1 KiB (1 in 10 an info replacing an older one; ${queued} queued)`, value: enqRate, unit: "msgs/s", baseline: { what: "raw bun:sqlite insert", value: rawRate } })
    .add({ what: `outbox enqueue at its 1 MiB bound (${dropped} dropped)`, value: boundedRate, unit: "msgs/s", baseline: { what: "raw insert", value: rawRate } })
    .add({ what: "outbox drain (peek + ack)", value: drainRate, unit: "msgs/s", baseline: { what: "raw insert", value: rawRate } })
    .print();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
