import { describe, expect, test } from "bun:test";
import { encodeMessage, lookupType } from "../proto/index.ts";
import { FIELD_BOUNDS, MAX_ACES_PER_DEVICE, MAX_NETWORK_INSTANCES, MAX_TOTAL_ENTRIES, scanBinary, scanJson } from "./bounds.ts";
import { MAX_PROBLEMS } from "./problems.ts";

const EDGE = "org.lfedge.eve.config.EdgeDevConfig";
const type = lookupType(EDGE);
const lines = (r: { problems: { path: string; message: string }[] }) => r.problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message));

/** `"\x22\x00"` n times: field 4 (apps), length 0. */
function emptyApps(n: number): Uint8Array {
  const b = new Uint8Array(2 * n);
  for (let i = 0; i < b.length; i += 2) b[i] = 0x22;
  return b;
}

describe("binary: entries counted on the wire", () => {
  test("500,000 empty apps are refused with the bound, without decoding", () => {
    const r = scanBinary(type, emptyApps(500_000));
    expect(lines(r)).toContain(`apps: 500000 entries: at most ${FIELD_BOUNDS["EdgeDevConfig.apps"]}`);
  });

  test("a valid document within the bounds passes", () => {
    const bytes = encodeMessage(EDGE, { apps: [{ displayname: "a", interfaces: [{ acls: [{ matches: [{ type: "ip", value: "10.0.0.1" }] }] }] }] });
    expect(scanBinary(type, bytes)).toEqual({ problems: [], total: 0 });
  });

  test("nested fields are bounded per message, with the path of the message", () => {
    const acls = Array.from({ length: 20_001 }, () => ({}));
    const bytes = encodeMessage(EDGE, { apps: [{}, { interfaces: [{}, { acls }] }] });
    expect(lines(scanBinary(type, bytes))).toContain("apps[1].interfaces[1].acls: 20001 entries: at most 20000");
  });

  test("firewall rules are bounded per device too", () => {
    const acls = Array.from({ length: 10_000 }, () => ({ matches: [{ type: "ip", value: "10.0.0.1" }] }));
    const apps = Array.from({ length: 6 }, () => ({ interfaces: [{ acls }] }));
    expect(lines(scanBinary(type, encodeMessage(EDGE, { apps })))).toContain(`60000 acls entries in all: at most ${MAX_ACES_PER_DEVICE}`);
  });

  test("packed scalars count their elements", () => {
    const irqs = Array.from({ length: 2000 }, (_, i) => i);
    const bytes = encodeMessage(EDGE, { apps: [{ fixedresources: { irqs } }] });
    expect(lines(scanBinary(type, bytes))).toContain("apps[0].fixedresources.irqs: 2000 entries: at most 1024");
  });

  test("map entries count", () => {
    const phyaddrs = Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`k${i}`, "v"]));
    const bytes = encodeMessage(EDGE, { deviceIoList: [{ phyaddrs }] });
    expect(lines(scanBinary(type, bytes))).toContain("deviceIoList[0].phyaddrs: 1500 entries: at most 1024");
  });

  test("a truncated body is still counted up to where it breaks off", () => {
    const b = new Uint8Array([...emptyApps(5000), 0x22, 0x05]);
    expect(lines(scanBinary(type, b))).toContain("apps: 5000 entries: at most 1024");
  });

  test("a known field with another wire type is refused (protobufjs would decode bytes the scan skipped)", () => {
    // apps (field 4) as a varint: 0x20.
    expect(lines(scanBinary(type, new Uint8Array([0x20, 0x05])))).toEqual(["apps: wire type 0 for a field of type AppInstanceConfig (expected 2)"]);
    // a group start (wire type 3) of an unknown field
    expect(lines(scanBinary(type, new Uint8Array([0xfb, 0x7f])))[0]).toMatch(/wire type 3 \(group\)/);
  });

  test("deep nesting is refused", () => {
    let disks: Record<string, unknown> = {};
    for (let i = 0; i < 40; i++) disks = { children: [disks] };
    expect(lines(scanBinary(type, encodeMessage(EDGE, { disks }))).join("\n")).toMatch(/nested more than 32 messages deep/);
  });

  test("the problem list is bounded: the first 100 are kept and the rest counted", () => {
    const apps = Array.from({ length: 300 }, () => ({ interfaces: [{ acls: [{ matches: Array.from({ length: 65 }, () => ({})) }] }] }));
    const r = scanBinary(type, encodeMessage(EDGE, { apps }));
    expect(r.problems).toHaveLength(MAX_PROBLEMS);
    expect(r.total).toBe(300);
  });
});

describe("JSON: entries counted on the text", () => {
  test("500,000 empty apps are refused with the bound, before JSON.parse", () => {
    const text = `{"apps":[${Array(500_000).fill("{}").join(",")}]}`;
    expect(lines(scanJson(type, text))).toContain("apps: 500000 entries: at most 1024");
  });

  test("16,000 network instances are refused by the network instance bound", () => {
    const nis = Array.from({ length: 16_000 }, (_, i) => ({ displayname: `n${i}`, ip: { subnet: "10.0.0.0/30" } }));
    expect(lines(scanJson(type, JSON.stringify({ networkInstances: nis })))).toContain(`networkInstances: 16000 entries: at most ${MAX_NETWORK_INSTANCES}`);
  });

  test("nested paths, snake_case keys, strings with brackets and escapes", () => {
    const doc = { apps: [{ displayname: 'a "[{,' }, { interfaces: [{ acls: Array(20_001).fill({ matches: [{ value: "]}\\" }] }) }] }] };
    expect(lines(scanJson(type, JSON.stringify(doc)))).toEqual(["apps[1].interfaces[0].acls: 20001 entries: at most 20000"]);
    const snake = `{"network_instances":[${Array(300).fill("{}").join(",")}]}`;
    expect(lines(scanJson(type, snake))).toContain("networkInstances: 300 entries: at most 256");
  });

  test("a valid document passes; maps count their keys; unknown arrays and huge objects are bounded", () => {
    expect(scanJson(type, JSON.stringify({ apps: [{ displayname: "a", interfaces: [{ acls: [{ matches: [{ type: "ip" }] }] }] }], deviceIoList: [{ phyaddrs: { Ifname: "eth0" } }] }))).toEqual({ problems: [], total: 0 });
    const phyaddrs = Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`k${i}`, "v"]));
    expect(lines(scanJson(type, JSON.stringify({ deviceIoList: [{ phyaddrs }] })))).toContain("deviceIoList[0].phyaddrs: 1500 entries: at most 1024");
    expect(lines(scanJson(type, JSON.stringify({ nope: Array(2000).fill(0) })))).toContain("nope: 2000 entries: at most 1024");
    expect(lines(scanJson(type, JSON.stringify(phyaddrs)))).toContain("(document): 1500 keys: at most 256");
  });

  test("keys that name Object's own properties are unknown fields, not a crash", () => {
    for (const key of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      expect(scanJson(type, `{"${key}":[{"a":[1]}],"apps":[{"${key}":{}}]}`)).toEqual({ problems: [], total: 0 });
    }
  });

  test("all entries together are bounded", () => {
    const acls = Array.from({ length: 5000 }, () => ({ matches: Array(20).fill({}) }));
    const apps = Array.from({ length: 4 }, () => ({ interfaces: [{ acls }] }));
    expect(lines(scanJson(type, JSON.stringify({ apps })))).toContain(`420008 entries of repeated fields in all: at most ${MAX_TOTAL_ENTRIES}`);
  });

  test("deep nesting is refused", () => {
    expect(lines(scanJson(type, "[".repeat(100_000))).join()).toMatch(/nested more than 64/);
  });
});
