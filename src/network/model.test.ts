import { describe, expect, test } from "bun:test";
import { dnsmasqFiles, dnsmasqPaths } from "./dnsmasq.ts";
import { appIfname, appMac, bridgeName, EMPTY_FACTS, networkModel, resolvePort } from "./model.ts";

const NI = "6c000000-0000-4000-8000-000000000001";
const app = (n: number, acls: any[] = [], extra: any = {}) => ({
  uuidandversion: { uuid: `6c000000-0000-4000-8000-0000000000${String(n).padStart(2, "0")}` },
  displayname: `app${n}`,
  interfaces: [{ name: "eth0", networkId: NI, acls, ...extra }],
});
const doc = (apps: any[], ip: any = { subnet: "10.20.0.0/24", gateway: "10.20.0.1", dhcpRange: { start: "10.20.0.10", end: "10.20.0.20" } }) => ({
  networkInstances: [{ uuidandversion: { uuid: NI }, displayname: "lan", instType: "ZnetInstLocal", ip }],
  apps,
});

describe("network model", () => {
  test("names, MACs: stable, ours (eb/ev prefixes, locally administered unicast), within 15 characters", () => {
    expect(bridgeName(NI)).toMatch(/^eb[0-9a-f]{12}$/);
    expect(appIfname("x", 15, "veth").length).toBeLessThanOrEqual(15);
    expect(appIfname("x", 0, "tap")).toMatch(/^ev[0-9a-f]{10}t0$/);
    expect(appMac("a", 0)).toBe(appMac("a", 0));
    expect(appMac("a", 0)).not.toBe(appMac("a", 1));
    expect(parseInt(appMac("a", 0).slice(0, 2), 16) & 3).toBe(2);
  });

  test("addresses: from the DHCP range, a static one respected, earlier ones kept when apps are added", () => {
    const m1 = networkModel(doc([app(1), app(2, [], { addr: "10.20.0.15" })]), [], EMPTY_FACTS, { subnets: {}, addrs: {} });
    const a1 = m1.interfaces.find((i) => i.appName === "app1")!.ip!;
    expect(a1).toMatch(/^10\.20\.0\.(1\d|20)$/);
    expect(m1.interfaces.find((i) => i.appName === "app2")!.ip).toBe("10.20.0.15");
    const m2 = networkModel(doc([app(3), app(4), app(1), app(2, [], { addr: "10.20.0.15" })]), [], EMPTY_FACTS, m1.allocations);
    expect(m2.interfaces.find((i) => i.appName === "app1")!.ip).toBe(a1);
    expect(new Set(m2.interfaces.map((i) => i.ip)).size).toBe(4);
  });

  test("an instance without a subnet gets a /24 clear of the device's networks, kept afterwards", () => {
    const facts = { ...EMPTY_FACTS, hostNetworks: ["10.111.0.0/16"] };
    const m = networkModel(doc([app(1)], {}), [], { ...EMPTY_FACTS, hostNetworks: ["10.111.0.0/24", "10.111.1.0/24"] }, { subnets: {}, addrs: {} });
    expect(m.instances[0]!.subnet).toBe("10.111.2.0/24");
    expect(m.instances[0]!.gateway).toBe("10.111.2.1");
    expect(networkModel(doc([app(1)], {}), [], EMPTY_FACTS, m.allocations).instances[0]!.subnet).toBe("10.111.2.0/24");
    expect(networkModel(doc([app(1)], {}), [], facts, { subnets: {}, addrs: {} }).instances[0]!.error).toMatch(/no free \/24/);
  });

  test("ports: logical labels, the shared label uplink, interface names; a missing one is the instance's error", () => {
    const facts = { ...EMPTY_FACTS, interfaces: ["eth0", "wlan0"], defaultRouteIfname: "eth0" };
    const d: any = { deviceIoList: [{ logicallabel: "wan", phyaddrs: { Ifname: "wlan0" } }] };
    expect(resolvePort(d, "wan", facts)).toBe("wlan0");
    expect(resolvePort(d, "uplink", facts)).toBe("eth0");
    expect(resolvePort(d, "eth0", facts)).toBe("eth0");
    expect(resolvePort(d, "eth7", facts)).toBeNull();
    const m = networkModel({ networkInstances: [{ uuidandversion: { uuid: NI }, instType: "ZnetInstSwitch", port: { name: "eth7" } }] }, [], facts, { subnets: {}, addrs: {} });
    expect(m.instances[0]!.error).toMatch(/port\.name: no port "eth7"/);
  });

  test("dnsmasq: a reservation and a name per app interface, static entries, upstream servers, host sets", () => {
    const d: any = doc([app(1), app(2)]);
    d.networkInstances[0].ip.dns = ["192.0.2.53"];
    d.networkInstances[0].dns = [{ HostName: "printer.lan", Address: ["10.20.0.200"] }];
    const m = networkModel(d, [], EMPTY_FACTS, { subnets: {}, addrs: {} });
    const ni = m.instances[0]!;
    const f = dnsmasqFiles(ni, m.interfaces, new Map([["h_abc", "updates.example.com"]]), dnsmasqPaths("/run/x", ni.bridge));
    expect(f.conf).toContain(`interface=${ni.bridge}`);
    expect(f.conf).toContain("dhcp-range=10.20.0.10,10.20.0.20,255.255.255.0,1h");
    expect(f.conf).toContain("server=192.0.2.53");
    expect(f.conf).toContain("nftset=/updates.example.com/4#inet#evebox#h_abc");
    for (const i of m.interfaces) {
      expect(f.dhcpHosts).toContain(`${i.mac},${i.ip},${i.appName},infinite`);
      expect(f.hosts).toContain(`${i.ip} ${i.appName}`);
    }
    expect(f.hosts).toContain("10.20.0.200 printer.lan");
  });
});
