import { expect, test } from "bun:test";
import { ACLAction } from "../proto/index.ts";
import { elementKey } from "./acl/nft.ts";
import { FlowCollector, parseConntrack } from "./flows.ts";
import type { AppInterfaceSpec } from "./model.ts";

const LINES = [
  "ipv4     2 tcp      6 431999 ESTABLISHED src=198.51.100.10 dst=203.0.113.1 sport=40000 dport=80 packets=5 bytes=300 src=203.0.113.1 dst=203.0.113.2 sport=80 dport=40000 packets=4 bytes=900 [ASSURED] mark=11 delta-time=3 use=1 id=101",
  "ipv4     2 tcp      6 431999 ESTABLISHED src=203.0.113.9 dst=203.0.113.2 sport=51000 dport=8080 packets=3 bytes=180 src=198.51.100.10 dst=203.0.113.9 sport=80 dport=51000 packets=2 bytes=2000 [ASSURED] mark=12 use=1 id=102",
  "ipv4     2 udp      17 20 src=10.9.9.9 dst=10.9.9.1 sport=1 dport=2 packets=1 bytes=10 src=10.9.9.1 dst=10.9.9.9 sport=2 dport=1 packets=0 bytes=0 mark=0 use=1 id=103",
].join("\n");

const iface = { appUuid: "app-1", index: 0, name: "eth0", hostIfname: "evabcv0", niUuid: "ni-1", ip: "198.51.100.10" } as AppInterfaceSpec;
const aces = new Map([
  [11, { mark: 11, appUuid: "app-1", index: 0, aceKey: "id:1", aceId: 1, aceName: "web", action: "allow" as const }],
  [12, { mark: 12, appUuid: "app-1", index: 0, aceKey: "id:2", aceId: 2, aceName: "console", action: "portmap" as const }],
]);

test("conntrack lines parse into both directions, mark and age", () => {
  const [a] = parseConntrack(LINES);
  expect(a).toMatchObject({ id: "101", proto: 6, mark: 11, ageSec: 3, orig: { src: "198.51.100.10", dport: 80, bytes: 300 }, reply: { src: "203.0.113.1", bytes: 900 } });
});

test("flows become one FlowMessage per app interface; ended flows are reported once, with an end time", async () => {
  let text = LINES;
  const fc = new FlowCollector(async () => parseConntrack(text));
  const resolve = (mark: number) => aces.get(mark) ?? null;
  const now = 1_700_000_000_000;
  const first = await fc.collect("dev-1", [iface], resolve, (i) => i.ip, () => true, now);
  expect(first).toHaveLength(1);
  expect(first[0]!.scope).toEqual({ uuid: "app-1", intf: "eth0", localIntf: "evabcv0", netInstUUID: "ni-1" });
  const [out, inb] = first[0]!.flows!;
  expect(out).toMatchObject({ inbound: false, aclId: 1, aclName: "web", txBytes: 300, rxBytes: 900, action: ACLAction.ActionAccept, startTime: { seconds: (now - 3000) / 1000 } });
  expect(out!.endTime).toBeUndefined();
  expect(inb).toMatchObject({ inbound: true, aclId: 2, txBytes: 2000, rxBytes: 180 });
  // The outbound flow ends: reported with its end time, then never again.
  text = LINES.split("\n").slice(1).join("\n");
  const second = await fc.collect("dev-1", [iface], resolve, (i) => i.ip, () => true, now + 5000);
  expect(second[0]!.flows!.find((f) => f.aclId === 1)!.endTime).toEqual({ seconds: (now + 5000) / 1000 - 5, nanos: 0 });
  const third = await fc.collect("dev-1", [iface], resolve, (i) => i.ip, () => true, now + 9000);
  expect(third[0]!.flows!.map((f) => f.aclId)).toEqual([2]);
  // disable_flowlog: nothing for that instance.
  expect(await fc.collect("dev-1", [iface], resolve, (i) => i.ip, () => false, now + 9000)).toEqual([]);
});

test("set elements as nft lists them map back to compile's element keys", () => {
  expect(elementKey({ concat: ["10.0.0.1", "tcp", 443] }, ["ipv4_addr", "inet_proto", "inet_service"])).toBe("10.0.0.1 . 6 . 443");
  expect(elementKey({ concat: [{ prefix: { addr: "10.1.0.0", len: 16 } }, 17] }, ["ipv4_addr", "inet_proto"])).toBe("10.1.0.0/16 . 17");
  expect(elementKey("203.0.113.9", ["ipv4_addr"])).toBe("203.0.113.9");
  expect(elementKey({ concat: ["icmp", "uplink0"] }, ["inet_proto", "ifname"])).toBe('1 . "uplink0"');
});
