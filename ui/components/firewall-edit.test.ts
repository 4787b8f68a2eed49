import { expect, test } from "bun:test";
import { aceFromRow, describeRule, emptyRule, readInterfaces, rowFromAce, setInterfaceRules, validateRules } from "./firewall-edit";

const NI = "2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a05";
const APP = "3b4c5d6e-7f80-4912-8a3b-4c5d6e7f8a06";
const ACES = [
  { id: 1, name: "web", matches: [{ type: "ip", value: "203.0.113.1" }, { type: "protocol", value: "tcp" }, { type: "fport", value: "80" }] },
  { matches: [{ type: "protocol", value: "tcp" }, { type: "lport", value: "8080" }], actions: [{ portmap: true, appPort: 80 }] },
  { matches: [{ type: "protocol", value: "icmp" }], actions: [{ limit: true, limitrate: 2, limitunit: "s", limitburst: 4 }], dir: "EGRESS" },
  { matches: [{ type: "host", value: "updates.example.com" }, { type: "eidset", value: "x" }], actions: [{ drop: true }] },
];
const doc = () => ({
  networkInstances: [{ uuidandversion: { uuid: NI }, displayname: "lan", instType: "ZnetInstLocal" }],
  apps: [{ uuidandversion: { uuid: APP }, displayname: "web", interfaces: [{ name: "eth0", networkId: NI, acls: ACES }] }, { uuidandversion: { uuid: "x" } }],
});

test("rules read from the document and written back are the same ACEs", () => {
  const [ifc] = readInterfaces(doc(), APP);
  expect(ifc).toMatchObject({ index: 0, name: "eth0", networkName: "lan", networkKind: "Local" });
  expect(ifc!.rules.map(aceFromRow)).toEqual(ACES);
  expect(ifc!.rules.map(describeRule)).toEqual([
    "tcp, with 203.0.113.1, remote port 80",
    "tcp, device port 8080 → app port 80",
    "icmp",
    "any protocol, with updates.example.com, eidset x",
  ]);
});

test("setting one interface's rules changes nothing else", () => {
  const d = doc();
  const rows = readInterfaces(d, APP)[0]!.rules.slice(1);
  const next = setInterfaceRules(d, APP, 0, rows);
  expect(next.apps[0].interfaces[0].acls).toEqual(ACES.slice(1));
  expect(next.apps[1]).toBe(d.apps[1]);
  expect((d.apps[0] as any).interfaces[0].acls).toHaveLength(4); // the input is not changed
  expect(() => setInterfaceRules(d, "gone", 0, rows)).toThrow(/no longer/);
});

test("the device's checks, in the form: port without protocol, bad address, portmap needs ports, limit needs a rate, one port mapped twice", () => {
  const r = (over: Partial<ReturnType<typeof emptyRule>>) => ({ ...emptyRule(), ...over });
  const problems = validateRules([
    r({ protocol: "", fport: "22" }),
    r({ remote: "10.0.0.0/33" }),
    r({ action: "portmap", lport: "", appPort: "0" }),
    r({ action: "limit", limitRate: "0" }),
    r({ action: "portmap", lport: "8080", appPort: "80" }),
    r({ action: "portmap", lport: "8080", appPort: "81" }),
    r({ protocol: "" }),
  ]);
  expect(problems.map((p) => `${p.row}:${p.field}`)).toEqual(["0:protocol", "1:remote", "2:lport", "2:appPort", "3:limitRate", "6:matches", "5:lport"]);
  expect(validateRules([r({ remote: "203.0.113.0/24", fport: "443" })])).toEqual([]);
});
