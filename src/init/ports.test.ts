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

  describe("a port on one of the config's VLANs or bonds", () => {
    const ETH4 = ["eth0", "eth1", "eth2", "eth3"];
    const nets = [
      { id: NET, type: "V4", ip: { dhcp: "Static", subnet: "198.51.100.0/24", dns: [] } },
      { id: "dhcp-net", type: "V4", ip: { dhcp: "Client" } },
    ];
    const bond = { logicallabel: "lag0", lowerLayerNames: ["eth2", "eth3"], bondMode: "BOND_MODE_ACTIVE_BACKUP", mii: { interval: 100 } };

    test("a VLAN: the port is evebox's link on its parent, which the configuration makes first", () => {
      const { config, problems } = portConfigFromDoc(
        {
          networks: nets,
          vlans: [{ logicallabel: "mgmt.100", interfaceName: "ignored0", lowerLayerName: "eth1", vlanId: 100 }],
          systemAdapterList: [{ name: "eth0", uplink: true, networkUUID: "dhcp-net" }, { name: "mgmt.100", networkUUID: NET, addr: "198.51.100.2" }],
        },
        ETH4,
        "v5",
      );
      expect(problems).toEqual([]);
      const port = config!.ports[1]!;
      expect(port).toMatchObject({ logical: "mgmt.100", mode: "static", link: "VLAN 100 on eth1" });
      expect(port.ifname).toMatch(/^evv[0-9a-f]{12}$/);
      expect(config!.links!.map((l) => [l.kind, l.ifname, l.parent, l.vlanId])).toEqual([["vlan", port.ifname, "eth1", 100]]);
    });

    test("a bond, and a VLAN on it: the bond comes first; the key changes with the bond's mode", () => {
      const doc = (mode: string) => ({
        networks: nets,
        bonds: [{ ...bond, bondMode: mode }],
        vlans: [{ logicallabel: "lag0.7", lowerLayerName: "lag0", vlanId: 7 }],
        systemAdapterList: [{ name: "lag0", uplink: true, networkUUID: "dhcp-net" }, { name: "lag0.7", networkUUID: NET, addr: "198.51.100.9" }],
      });
      const { config, problems } = portConfigFromDoc(doc("BOND_MODE_ACTIVE_BACKUP"), ETH4, "v6");
      expect(problems).toEqual([]);
      expect(config!.ports.map((p) => [p.logical, p.mode, p.link])).toEqual([
        ["lag0", "dhcp", "bond (active-backup) of eth2, eth3"],
        ["lag0.7", "static", `VLAN 7 on ${config!.ports[0]!.ifname}`],
      ]);
      expect(config!.links!.map((l) => l.kind)).toEqual(["bond", "vlan"]);
      expect(config!.links![0]).toMatchObject({ members: ["eth2", "eth3"], mode: "active-backup", mii: { interval: 100 } });
      expect(portConfigFromDoc(doc("BOND_MODE_BALANCE_XOR"), ETH4, "v6").config!.key).not.toBe(config!.key);
    });

    test("a VLAN port on a bond that is not a port itself still gets its bond made", () => {
      const { config } = portConfigFromDoc(
        { networks: nets, bonds: [bond], vlans: [{ logicallabel: "lag0.7", lowerLayerName: "lag0", vlanId: 7 }], systemAdapterList: [{ name: "lag0.7", networkUUID: NET, addr: "198.51.100.9" }] },
        ETH4,
        "v7",
      );
      expect(config!.links!.map((l) => `${l.kind} ${l.label}`)).toEqual(["bond lag0", "vlan lag0.7"]);
    });

    test("refused: a member of the bond as a port of its own, a VLAN on a port the device lacks", () => {
      const member = portConfigFromDoc(
        { networks: nets, bonds: [bond], systemAdapterList: [{ name: "lag0", networkUUID: "dhcp-net" }, { name: "eth2", networkUUID: NET, addr: "198.51.100.3" }] },
        ETH4,
        "v8",
      );
      expect(member.config).toBeNull();
      // The model's reading of the bond says so (config/netlinks.ts): the bond is in error, so is its port.
      expect(member.problems).toEqual(['systemAdapterList[0] (lag0): the bond "lag0" cannot be made: member "eth2" (eth2) is a port of the device itself (systemAdapterList[1] "eth2"): a bond member is the bond\'s only']);
      const missing = portConfigFromDoc(
        { networks: nets, vlans: [{ logicallabel: "v9", lowerLayerName: "eth9", vlanId: 9 }], systemAdapterList: [{ name: "eth0", networkUUID: "dhcp-net" }, { name: "v9", networkUUID: NET, addr: "198.51.100.4" }] },
        ETH4,
        "v9",
      );
      expect(missing.config).toBeNull();
      expect(missing.problems).toEqual(['systemAdapterList[1] (v9): the VLAN "v9" cannot be made: parent port "eth9" is not on this device']);
    });
  });
});

describe("the port manager going down", () => {
  test("nothing is applied after stop(), not even a config change offered a moment later", async () => {
    const { PortManager } = await import("./ports.ts");
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "evebox-ports-"));
    const started: string[] = [];
    const settings = new Map<string, string>();
    const pm = new PortManager({
      supervisor: { has: () => false, start: (s: { name: string }) => void started.push(s.name), stop: async () => undefined } as any,
      settings: { get: (k) => settings.get(k) ?? null, set: (k, v) => void settings.set(k, v) },
      runDir: dir,
      hostname: () => "test",
      controllerUrl: () => null,
      log: () => undefined,
      event: () => undefined,
      testWindowMs: 50,
      sys: join(dir, "sys"),
    });
    try {
      pm.stop();
      // No such port on this machine: an apply would only try `ip` on it, and record it as the current one.
      await pm.offer({ key: "k1", source: "config version 9", ports: [{ ifname: "evtest9", logical: "evtest9", mode: "dhcp", uplink: true }] });
      expect(pm.status().current).toBeNull();
      expect(started).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
