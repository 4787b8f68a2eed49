// Fuzzing the config validator through the path PUT /api/v1/config takes (ConfigService.put: parse, bounds,
// strict JSON or binary decode, validation, store, listeners). Random and mutated EdgeDevConfig documents,
// binary and proto3 JSON, must be refused with ConfigRejected and nothing else, must stay within a stated
// memory bound, and must never reach a config listener (the reconciler subscribes there) unless valid.
// Seeded: FUZZ_SEED=<n> reproduces a run; a failure names its seed and case.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigRejected } from "../../src/config/problems.ts";
import { ConfigService } from "../../src/config/service.ts";
import { validateConfig } from "../../src/config/validate.ts";
import { DEVICE_ENV } from "../../src/config/device-env.ts";
import { EventBus } from "../../src/model/events.ts";
import { encodeMessage, lookupType } from "../../src/proto/index.ts";
import { Store } from "../../src/store/index.ts";
import { IDS, sampleConfig } from "../support/configs.ts";

const EDGE = "org.lfedge.eve.config.EdgeDevConfig";
const SEED = Number(process.env.FUZZ_SEED ?? 20261202);
const CASES = Number(process.env.FUZZ_CASES ?? 1000);
const BINARY = "application/x-proto-binary";
const JSON_CT = "application/json";
/**
 * The stated bounds. One document, whatever it is (up to the 16 MiB the console takes), raises the resident
 * memory by at most MAX_RSS_PER_DOCUMENT across ConfigService.put (measured after a full GC, on every body over
 * 512 KiB; the 1 MB body of 500,000 empty apps took 1.1 GB before the count bounds; the largest valid document,
 * ~250,000 entries, takes ~130 MiB as binary and ~230 MiB as JSON, which the bound leaves room for). Nothing is retained: the JS
 * heap after a full GC grows by at most MAX_HEAP_RETAINED over the whole run (the accepted documents the
 * listener keeps included).
 */
const MAX_RSS_PER_DOCUMENT = 320 * 1024 * 1024;
const MAX_HEAP_RETAINED = 32 * 1024 * 1024;
/** And no refusal, as the console would answer it, is larger than this. */
const MAX_REFUSAL_BYTES = 128 * 1024;
/** A refusal lists at most this many problems (the rest are counted). */
const MAX_PROBLEMS = 100;
/** The largest body PUT /config takes (the console's limit). */
const MAX_BODY = 16 * 1024 * 1024;

/** mulberry32: small, fast, and the same sequence for the same seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return { next, int, pick: <T>(xs: readonly T[]): T => xs[int(xs.length)]!, chance: (p: number) => next() < p };
}
type Rng = ReturnType<typeof prng>;

/** A valid document richer than the sample: two network instances, ACLs, a port label, config items. */
function richConfig(): Record<string, any> {
  const doc: Record<string, any> = sampleConfig();
  doc.networkInstances.push({
    uuidandversion: { uuid: "2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a15", version: "1" },
    displayname: "cameras",
    instType: "ZnetInstLocal",
    activate: true,
    ip: { subnet: "203.0.113.0/24", gateway: "203.0.113.1", dhcpRange: { start: "203.0.113.10", end: "203.0.113.20" }, dns: ["203.0.113.1"] },
  });
  doc.apps[0].interfaces[0].acls.push({ matches: [{ type: "ip", value: "192.0.2.0/24" }, { type: "protocol", value: "udp" }, { type: "fport", value: "53" }], actions: [{ limit: true, limitrate: 10, limitunit: "s" }] });
  doc.apps[0].interfaces.push({ name: "eth1", networkId: "2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a15", acls: [{ matches: [{ type: "host", value: "camera.local" }] }] });
  doc.configItems = [{ key: "timer.config.interval", value: "60" }];
  doc.deviceIoList = [{ ptype: "PhyIoNetEth", phylabel: "eth0", logicallabel: "uplink", phyaddrs: { Ifname: "eth0" } }];
  return doc;
}

// ---- mutations of a binary document

/** Top-level fields of an encoded message: [start, end) of each tag + payload. */
function topFields(b: Uint8Array): [number, number][] {
  const out: [number, number][] = [];
  let p = 0;
  const varint = () => {
    let v = 0;
    let m = 1;
    for (;;) {
      const c = b[p++]!;
      v += (c & 0x7f) * m;
      if (c < 0x80) return v;
      m *= 128;
    }
  };
  while (p < b.length) {
    const s = p;
    const wt = varint() % 8;
    if (wt === 0) varint();
    else if (wt === 1) p += 8;
    else if (wt === 5) p += 4;
    else if (wt === 2) p += varint();
    else break;
    out.push([s, p]);
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of parts) {
    out.set(x, o);
    o += x.length;
  }
  return out;
}

function mutateBinary(r: Rng, valid: Uint8Array): { what: string; body: Uint8Array } {
  switch (r.int(8)) {
    case 0: {
      const n = r.pick([0, 1, 2, 7, 64, 1000, 65536]);
      return { what: `random ${n} bytes`, body: Uint8Array.from({ length: n }, () => r.int(256)) };
    }
    case 1: {
      const n = r.int(valid.length);
      return { what: `truncated to ${n}`, body: valid.slice(0, n) };
    }
    case 2: {
      const b = valid.slice();
      const flips = 1 + r.int(8);
      for (let i = 0; i < flips; i++) b[r.int(b.length)]! ^= 1 << r.int(8);
      return { what: `${flips} bit flips`, body: b };
    }
    case 3: {
      // One top-level field repeated many times (apps, networkInstances, …): the amplification attack.
      const fields = topFields(valid);
      const [s, e] = r.pick(fields);
      const times = Math.min(r.chance(0.05) ? MAX_BODY : r.pick([2, 10, 300, 5000, 100_000]), Math.floor((MAX_BODY - valid.length) / (e - s)));
      const body = new Uint8Array(valid.length + times * (e - s));
      body.set(valid);
      for (let i = 0, o = valid.length; i < times; i++, o += e - s) body.copyWithin(o, s, e);
      return { what: `field at ${s} repeated ${times} times`, body };
    }
    case 4: {
      // Bytes inserted or deleted in the middle.
      const at = r.int(valid.length);
      if (r.chance(0.5)) return { what: `byte deleted at ${at}`, body: concat([valid.subarray(0, at), valid.subarray(at + 1)]) };
      return { what: `byte inserted at ${at}`, body: concat([valid.subarray(0, at), Uint8Array.of(r.int(256)), valid.subarray(at)]) };
    }
    case 5: {
      // The shape of the 500,000-empty-apps body, at a random count and field.
      const tag = r.pick([0x22, 0x0a, 0x12, 0x1a, 0x2a, 0x32, 0x42, 0x4a, 0x52, 0x5a, 0x62, 0x6a, 0x72, 0x7a]);
      const n = r.chance(0.05) ? MAX_BODY / 2 : r.pick([1, 100, 2000, 500_000]);
      const b = new Uint8Array(2 * n);
      for (let i = 0; i < b.length; i += 2) b[i] = tag;
      return { what: `${n} empty entries of tag 0x${tag.toString(16)}`, body: b };
    }
    case 6: {
      // A nested array blown up, encoded properly.
      const doc = richConfig();
      const [what, arr] = r.pick([
        ["acls", doc.apps[0].interfaces[0].acls],
        ["matches", doc.apps[0].interfaces[0].acls[0].matches],
        ["interfaces", doc.apps[0].interfaces],
        ["dns", doc.networkInstances[1].ip.dns],
        ["volumeRefList", doc.apps[0].volumeRefList],
      ] as [string, unknown[]][]);
      const one = arr[0];
      const n = r.pick([50, 1025, 20_001, 60_000]);
      arr.length = 0;
      for (let i = 0; i < n; i++) arr.push(one);
      return { what: `${what} × ${n}`, body: encodeMessage(EDGE, doc) };
    }
    default: {
      // Two valid documents spliced at random points.
      const a = r.int(valid.length);
      const b = r.int(valid.length);
      return { what: `splice ${a}/${b}`, body: concat([valid.subarray(0, a), valid.subarray(b)]) };
    }
  }
}

// ---- mutations of a JSON document

const ODD_VALUES = [null, 0, -1, 1.5, 2 ** 53, "", "x", "\u0000\n", "a".repeat(70_000), true, [], [1, 2], {}, { a: 1 }, "NaN", "-9223372036854775809"];

/** Every (container, key) in a document, to pick one to mutate. */
function slots(doc: unknown, out: [any, string | number][] = []): [any, string | number][] {
  if (doc && typeof doc === "object") {
    for (const k of Object.keys(doc)) {
      const key = Array.isArray(doc) ? Number(k) : k;
      out.push([doc, key]);
      slots((doc as any)[key], out);
    }
  }
  return out;
}

function mutateJson(r: Rng): { what: string; body: Uint8Array } {
  const doc = richConfig();
  const enc = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
  const all = slots(doc);
  switch (r.int(8)) {
    case 0: {
      const [c, k] = r.pick(all);
      const v = r.pick(ODD_VALUES);
      c[k] = v;
      return { what: `${k} = ${JSON.stringify(v)?.slice(0, 30)}`, body: enc(doc) };
    }
    case 1: {
      const [c, k] = r.pick(all);
      if (Array.isArray(c)) c.splice(Number(k), 1);
      else delete c[k];
      return { what: `${k} removed`, body: enc(doc) };
    }
    case 2: {
      // An array blown up: the JSON form of the amplification attack.
      const arrays = all.filter(([c, k]) => Array.isArray(c[k]) && c[k].length);
      const [c, k] = r.pick(arrays);
      const one = JSON.stringify(c[k][0]);
      const n = Math.min(r.chance(0.1) ? 500_000 : r.pick([3, 300, 1025, 20_001]), Math.floor(MAX_BODY / (one.length + 1)) - 1);
      c[k] = "@@";
      return { what: `${k} × ${n}`, body: enc(JSON.stringify(doc).replace('"@@"', `[${`${one},`.repeat(n - 1)}${one}]`)) };
    }
    case 3: {
      const depth = r.pick([10, 65, 1000, 100_000]);
      const open = r.chance(0.5) ? "[" : '{"a":';
      return { what: `nested ${depth} deep`, body: enc(`{"apps":${open.repeat(depth)}${r.chance(0.5) ? (open === "[" ? "]" : "}").repeat(depth) : ""}}`) };
    }
    case 4: {
      const text = JSON.stringify(doc);
      const n = r.int(text.length);
      return { what: `text truncated to ${n}`, body: enc(text.slice(0, n)) };
    }
    case 5: {
      const text = JSON.stringify(doc);
      const at = r.int(text.length);
      const ch = r.pick(['"', "{", "}", "[", "]", ",", ":", "\\", "0", " ", "\u00ff"]);
      return { what: `${JSON.stringify(ch)} inserted at ${at}`, body: enc(text.slice(0, at) + ch + text.slice(at)) };
    }
    case 6: {
      // A key renamed (unknown field, snake_case, a near-miss), or a whole message replaced by a wrong type.
      const objs = all.filter(([c, k]) => !Array.isArray(c) && typeof k === "string");
      const [c, k] = r.pick(objs);
      const v = c[k];
      delete c[k];
      const nk = r.pick([`${k}x`, (k as string).replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`), "", "__proto__", "constructor"]);
      c[nk] = v;
      return { what: `${k} renamed ${nk}`, body: enc(doc) };
    }
    default: {
      // Many unknown keys in one object.
      const n = r.chance(0.1) ? 1_000_000 : r.pick([10, 300, 100_000]);
      let keys = "";
      for (let i = 0; i < n; i++) keys += `${i ? "," : ""}"k${i}":0`;
      return { what: `${n} unknown keys`, body: enc(`{${keys},"apps":[]}`) };
    }
  }
}

/** Near the largest valid document the bounds allow: 1,024 apps, 256 network instances, 49,152 rules (~250,000 entries). */
function largestConfig(): Record<string, unknown> {
  const u = (k: number, i: number) => `${k.toString(16).padStart(8, "0")}-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;
  const networkInstances = Array.from({ length: 256 }, (_, i) => ({ uuidandversion: { uuid: u(1, i), version: "1" }, displayname: `n${i}`, instType: "ZnetInstLocal", ip: { subnet: `100.64.${i}.0/24` } }));
  const volumes = Array.from({ length: 1024 }, (_, i) => ({ uuid: u(3, i) }));
  const apps = Array.from({ length: 1024 }, (_, a) => ({
    uuidandversion: { uuid: u(4, a), version: "1" },
    displayname: `app${a}`,
    volumeRefList: [{ uuid: u(3, a) }],
    interfaces: [{ name: "eth0", networkId: u(1, a % 256), acls: Array.from({ length: 48 }, (_, k) => ({ matches: [{ type: "ip", value: `10.${a & 255}.${k}.1` }, { type: "protocol", value: "tcp" }, { type: "fport", value: String(1 + k) }], actions: [{ drop: true }] })) }],
  }));
  return { networkInstances, volumes, apps };
}

/** Run first, whatever the seed: what issue 12 found, and the largest document that must still pass. */
const KNOWN = {
  binary: () => {
    const body = new Uint8Array(1_000_000);
    for (let i = 0; i < body.length; i += 2) body[i] = 0x22;
    return [
      { what: "500,000 empty apps (issue 12, finding 4)", body },
      { what: "the largest valid document", body: encodeMessage(EDGE, largestConfig()) },
    ];
  },
  json: () => [
    { what: "500,000 empty apps as JSON", body: new TextEncoder().encode(`{"apps":[${"{},".repeat(499_999)}{}]}`) },
    { what: "the largest valid document as JSON", body: new TextEncoder().encode(JSON.stringify(largestConfig())) },
  ],
};

let dir: string;
let store: Store;
let svc: ConfigService;
/** What the listeners were handed: how often, and the last document (only the last: nothing else is kept). */
const heard = { length: 0, last: null as Record<string, any> | null };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "evebox-fuzz-"));
  store = Store.open(join(dir, "evebox.db"));
  svc = new ConfigService(store, new EventBus(store));
  svc.onChange((c) => {
    heard.length++;
    heard.last = c.doc;
  });
});
afterAll(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe(`config validator fuzz (seed ${SEED}, ${CASES} cases per kind)`, () => {
  test("the mutations start from a valid document, which reaches the listeners", () => {
    const r = svc.put(encodeMessage(EDGE, richConfig()), BINARY, { source: "local", author: "fuzz" });
    expect(r.version).toBeNumber();
    expect(heard.length).toBe(1);
    expect(heard.last!.apps[0].uuidandversion.uuid).toBe(IDS.app);
  });

  for (const kind of ["binary", "json"] as const) {
    test(`${kind}: only ConfigRejected, small refusals, bounded memory, listeners only for valid documents`, () => {
      const r = prng(SEED + (kind === "json" ? 1 : 0));
      const valid = Uint8Array.from(encodeMessage(EDGE, richConfig())); // a copy: Buffer's slice() is a view
      // What the reconciler is handed must be a document validation accepts.
      const listenersBefore = heard.length;
      let accepted = 0;
      let largestAccepted = 0;
      let refused = 0;
      Bun.gc(true);
      const heap0 = process.memoryUsage().heapUsed;
      let worst = { rss: 0, label: "" };
      const corpus = KNOWN[kind]();
      for (let i = 0; i < corpus.length + CASES; i++) {
        const { what, body } = i < corpus.length ? corpus[i]! : kind === "binary" ? mutateBinary(r, valid) : mutateJson(r);
        if (body.length > MAX_BODY) continue; // the console answers 413 before the service sees it
        const big = body.length > 512 * 1024;
        if (big) Bun.gc(true);
        const rss0 = process.memoryUsage().rss;
        const dryRun = r.chance(0.3);
        const label = `seed ${SEED} ${kind} case ${i}: ${what}`;
        const before = heard.length;
        try {
          const res = svc.put(body, kind === "binary" ? BINARY : JSON_CT, { source: "local", author: "fuzz", dryRun });
          accepted++;
          if (what.startsWith("the largest")) largestAccepted++;
          if (dryRun || res.unchanged) expect(heard.length, label).toBe(before);
          else {
            expect(heard.length, label).toBe(before + 1);
            expect(validateConfig(heard.last!, DEVICE_ENV), label).toEqual([]);
          }
        } catch (e) {
          if (!(e instanceof ConfigRejected)) throw new Error(`${label}: threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message ?? e}`);
          refused++;
          expect(heard.length, label).toBe(before);
          const answer = JSON.stringify({ error: e.message, problems: e.problems, problemCount: e.total, truncated: e.truncated });
          expect(answer.length, label).toBeLessThanOrEqual(MAX_REFUSAL_BYTES);
          expect(e.problems.length, label).toBeLessThanOrEqual(MAX_PROBLEMS);
          expect(e.total, label).toBeGreaterThanOrEqual(e.problems.length);
        }
        if (big) {
          const rss = process.memoryUsage().rss - rss0;
          if (rss > worst.rss) worst = { rss, label };
        }
      }
      heard.last = null;
      Bun.gc(true);
      const retained = process.memoryUsage().heapUsed - heap0;
      const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
      console.log(`fuzz ${kind}: ${accepted} accepted, ${refused} refused; largest RSS rise for one document ${mib(worst.rss)} (${worst.label}; bound ${mib(MAX_RSS_PER_DOCUMENT)}), JS heap retained ${mib(retained)} (bound ${mib(MAX_HEAP_RETAINED)})`);
      expect(worst.rss, worst.label).toBeLessThanOrEqual(MAX_RSS_PER_DOCUMENT);
      expect(retained).toBeLessThanOrEqual(MAX_HEAP_RETAINED);
      expect(largestAccepted).toBe(1);
      expect(refused).toBeGreaterThan(CASES / 2);
      expect(heard.length - listenersBefore).toBeLessThanOrEqual(accepted);
    }, 120_000);
  }
});
