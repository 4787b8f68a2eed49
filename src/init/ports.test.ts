import { describe, expect, test } from "bun:test";
import { defaultPortConfig, portConfigFromDoc } from "./ports.ts";

const NET = "11111111-2222-4333-8444-555555555555";
const ETH = ["eth0", "eth1"];

describe("port configuration from the config", () => {
  test("no systemAdapterList: the default, DHCP on every Ethernet port", () => {
    expect(portConfigFromDoc({}, ETH, "v1")).toEqual({ config: null, problems: [] });
    const d = defaultPortConfig(ETH);
    expect(d.ports.map((p) => [p.ifname, p.mode])).toEqual([["eth0", "dhcp"], ["eth1", "dhcp"]]);
    expect(defaultPortConfig(["eth1", "eth0"].sort()).key).toBe(d.key);
  });

  test("static and DHCP ports, logical names through deviceIoList", () => {
    const doc = {
      deviceIoList: [{ ptype: "PhyIoNetEth", phylabel: "port-a", logicallabel: "uplink0", phyaddrs: { Ifname: "eth1" } }],
      networks: [
        { id: NET, type: "V4", ip: { dhcp: "Static", subnet: "192.168.7.0/24", gateway: "192.168.7.1", dns: ["192.168.7.1", "bad"] }, mtu: 1400 },
        { id: "dhcp-net", type: "V4", ip: { dhcp: "Client" } },
      ],
      systemAdapterList: [
        { name: "uplink0", uplink: true, networkUUID: NET, addr: "192.168.7.20" },
        { name: "eth0", networkUUID: "dhcp-net" },
      ],
    };
    const { config, problems } = portConfigFromDoc(doc, ETH, "config version 3");
    expect(problems).toEqual([]);
    expect(config!.source).toBe("config version 3");
    expect(config!.ports).toEqual([
      { ifname: "eth1", logical: "uplink0", mode: "static", uplink: true, mtu: 1400, static: { address: "192.168.7.20", prefix: 24, gateway: "192.168.7.1", dns: ["192.168.7.1"] } },
      { ifname: "eth0", logical: "eth0", mode: "dhcp", uplink: false },
    ]);
  });

  test("problems name the adapter and what is wrong; nothing is applied", () => {
    const { config, problems } = portConfigFromDoc(
      {
        networks: [{ id: NET, ip: { dhcp: "Static", subnet: "10.0.0.0/33" } }],
        systemAdapterList: [
          { name: "eth9", networkUUID: "nope" },
          { name: "eth0", networkUUID: NET, addr: "10.0.0.5" },
          { name: "eth1", networkUUID: "missing" },
        ],
      },
      ETH,
      "v2",
    );
    expect(config).toBeNull();
    expect(problems).toEqual([
      "systemAdapterList[0] (eth9): this device has no Ethernet port eth9 (it has eth0, eth1)",
      'systemAdapterList[1] (eth0): network 11111111-2222-4333-8444-555555555555 is static but its subnet "10.0.0.0/33" is not an IPv4 CIDR',
      "systemAdapterList[2] (eth1): networkUUID missing is not in networks",
    ]);
  });

  test("a configuration that leaves no port with an address is refused", () => {
    const r = portConfigFromDoc({ systemAdapterList: [{ name: "eth0" }] }, ETH, "v4");
    expect(r.config).toBeNull();
    expect(r.problems[0]).toMatch(/no port has an address/);
  });
});
