import { describe, expect, test } from "bun:test";
import { checkDoc, type HostView } from "./device-check";
import { addNetworkInstance, appsOnNetwork, emptyNetwork, networkInputOf, networkProblemField, removeNetworkInstance, updateNetworkInstance } from "./network-edit";

const U = (n: number) => `5b000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
const HOST: HostView = { memoryKiB: 4 * 1024 * 1024, networks: ["192.168.1.0/24"], ports: [{ name: "eth0", networks: ["192.168.1.0/24"], defaultRoute: true }] };

describe("network instance edits", () => {
  test("a Local instance with everything the form has, read back the same", () => {
    const input = { ...emptyNetwork(), name: "lan", subnet: "10.7.0.0/24", gateway: "10.7.0.1", dhcpStart: "10.7.0.10", dhcpEnd: "10.7.0.99", dns: "1.1.1.1, 9.9.9.9", staticDns: [{ host: "plc.local", addrs: "10.7.0.5" }] };
    const doc = addNetworkInstance(null, input, U(1));
    expect(doc.networkInstances[0]).toEqual({
      uuidandversion: { uuid: U(1), version: "1" },
      displayname: "lan",
      instType: "ZnetInstLocal",
      activate: true,
      port: { name: "uplink" },
      ip: { subnet: "10.7.0.0/24", gateway: "10.7.0.1", dhcpRange: { start: "10.7.0.10", end: "10.7.0.99" }, dns: ["1.1.1.1", "9.9.9.9"] },
      dns: [{ HostName: "plc.local", Address: ["10.7.0.5"] }],
    });
    expect(checkDoc(doc, HOST)).toEqual([]);
    expect(networkInputOf(doc, U(1))).toEqual({ ...input, dns: "1.1.1.1, 9.9.9.9" });
  });

  test("a subnet overlapping the uplink's network is the device's problem at the subnet field", () => {
    const doc = addNetworkInstance(null, { ...emptyNetwork(), name: "bad", subnet: "192.168.1.0/25" }, U(1));
    const problems = checkDoc(doc, HOST);
    expect(problems.map((p) => [networkProblemField(p.path, 0), p.message])).toEqual([["subnet", "192.168.1.0/25 overlaps the device's own network 192.168.1.0/24"]]);
  });

  test("a Switch instance on a port the device lacks is refused at the port field", () => {
    const doc = addNetworkInstance(null, { ...emptyNetwork(), name: "floor", kind: "switch", port: "eth9" }, U(1));
    expect(doc.networkInstances[0].ip).toBeUndefined();
    expect(checkDoc(doc, HOST).map((p) => networkProblemField(p.path, 0))).toEqual(["port"]);
  });

  test("a change bumps the version and keeps fields the form does not show; no uplink is air-gapped", () => {
    const doc = addNetworkInstance(null, { ...emptyNetwork(), name: "lan" }, U(1));
    doc.networkInstances[0].ip = { domain: "plant.local" };
    const next = updateNetworkInstance(doc, U(1), { ...emptyNetwork(), name: "lan2", port: "" });
    expect(next.networkInstances[0]).toMatchObject({ displayname: "lan2", uuidandversion: { version: "2" }, ip: { domain: "plant.local" } });
    expect(next.networkInstances[0].port).toBeUndefined();
    expect(doc.networkInstances[0].displayname).toBe("lan");
  });

  test("delete is refused while an app is on it, naming the app; the device refuses the same document naming it too", () => {
    const doc = addNetworkInstance(null, { ...emptyNetwork(), name: "lan" }, U(1));
    doc.apps = [{ uuidandversion: { uuid: U(2), version: "1" }, displayname: "web", interfaces: [{ networkId: U(1) }] }];
    expect(appsOnNetwork(doc, U(1))).toEqual(["web"]);
    expect(() => removeNetworkInstance(doc, U(1))).toThrow("The app web is on this network");
    const forced = { ...doc, networkInstances: [] };
    expect(checkDoc(forced, HOST).find((p) => p.path === "apps[0].interfaces[0].networkId")?.message).toContain('app "web" is on network instance');
    doc.apps = [];
    expect(removeNetworkInstance(doc, U(1)).networkInstances).toEqual([]);
  });
});
