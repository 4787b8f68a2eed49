// VLANs, bonds and NI static routes as the device model reads them (netlinks.ts), and the problems a bad one gives.
import { describe, expect, test } from "bun:test";
import { ConfigService } from "./service.ts";
import { buildDeviceModel } from "./model.ts";
import { isIfname, isL2LinkName, l2LinkName } from "./names.ts";
import { NO_ENV, readConfig } from "./validate.ts";

const NI = "7b000000-0000-4000-8000-000000000001";
const NI2 = "7b000000-0000-4000-8000-000000000002";

function parsed(json: unknown) {
  const svc = new ConfigService(null as never, null as never);
  return svc.parse(new TextEncoder().encode(JSON.stringify(json)), "application/json").doc;
}

const ports = {
  deviceIoList: [
    { ptype: "PhyIoNetEth", logicallabel: "eth-a", phylabel: "A", phyaddrs: { Ifname: "eth1" }, usage: "PhyIoUsageMgmtAndApps" },
    { ptype: "PhyIoNetEth", logicallabel: "eth-b", phylabel: "B", phyaddrs: { Ifname: "eth2" }, usage: "PhyIoUsageMgmtAndApps" },
    { ptype: "PhyIoNetEth", logicallabel: "eth-c", phylabel: "C", phyaddrs: { Ifname: "eth3" }, usage: "PhyIoUsageMgmtAndApps", assigngrp: "grp-c" },
  ],
};

const local = (extra: any = {}, uuid = NI) => ({
  uuidandversion: { uuid, version: "1" },
  displayname: "lan",
  instType: "ZnetInstLocal",
  activate: true,
  port: { name: "uplink0" },
  ip: { subnet: "10.30.0.0/24", gateway: "10.30.0.1", dhcpRange: { start: "10.30.0.10", end: "10.30.0.50" } },
  ...extra,
});

const problemsOf = (doc: any) => buildDeviceModel(parsed(doc)).problems.map((p) => `${p.path}: ${p.message}`);

describe("link names", () => {
  test("evebox's own: evv/evg + 12 hex, stable per label, a valid interface name, never the config's text", () => {
    const v = l2LinkName("vlan", "lan.100");
    expect(v).toMatch(/^evv[0-9a-f]{12}$/);
    expect(l2LinkName("vlan", "lan.100")).toBe(v);
    expect(l2LinkName("vlan", "lan.101")).not.toBe(v);
    expect(l2LinkName("bond", "lan.100")).toMatch(/^evg[0-9a-f]{12}$/);
    expect(isIfname(v)).toBe(true);
    expect(isL2LinkName(v)).toBe(true);
    // NI bridges and app interfaces are not among them.
    expect(isL2LinkName("eb0123456789ab")).toBe(false);
    expect(isL2LinkName("ev0123456789v0")).toBe(false);
  });
});

describe("the device model: VLANs and bonds", () => {
  test("a bond of two ports and a VLAN on it; an NI on the VLAN's label resolves to evebox's link", () => {
    const { model, problems } = buildDeviceModel(
      parsed({
        ...ports,
        bonds: [{ logicallabel: "lag0", interfaceName: "bond7", lowerLayerNames: ["eth-a", "eth-b"], bondMode: "BOND_MODE_ACTIVE_BACKUP", mii: { interval: 50, updelay: 100, downdelay: 100 } }],
        vlans: [{ logicallabel: "lan.100", interfaceName: "whatever; rm -rf /", lowerLayerName: "lag0", vlanId: 100 }],
        networkInstances: [local({ port: { name: "lan.100" } })],
      }),
    );
    expect(problems).toEqual([]);
    const [bond] = model.bonds;
    expect(bond).toMatchObject({ label: "lag0", ifname: l2LinkName("bond", "lag0"), mode: "active-backup", modeName: "BOND_MODE_ACTIVE_BACKUP", mii: { interval: 50, updelay: 100, downdelay: 100 }, arp: null, error: null });
    expect(bond!.members.map((m) => m.resolution)).toEqual([expect.objectContaining({ kind: "ifname", ifname: "eth1" }), expect.objectContaining({ kind: "ifname", ifname: "eth2" })]);
    const [vlan] = model.vlans;
    // interface_name is not a host name here: the link is evebox's.
    expect(vlan).toMatchObject({ label: "lan.100", ifname: l2LinkName("vlan", "lan.100"), vlanId: 100, parent: { kind: "ifname", ifname: bond!.ifname, link: { kind: "bond", label: "lag0" } }, error: null });
    expect(model.networkInstances[0]!.port!.resolution).toMatchObject({ kind: "ifname", ifname: vlan!.ifname, link: { kind: "vlan", label: "lan.100" } });
  });

  test("a system adapter on a VLAN: the NI names the adapter, the adapter the VLAN (EVE's layering)", () => {
    const { model, problems } = buildDeviceModel(
      parsed({ ...ports, vlans: [{ logicallabel: "v200", lowerLayerName: "eth-c", vlanId: 200 }], systemAdapterList: [{ name: "shopfloor", lowerLayerName: "v200" }], networkInstances: [local({ port: { name: "shopfloor" } })] }),
    );
    expect(problems).toEqual([]);
    expect(model.networkInstances[0]!.port!.resolution).toMatchObject({ kind: "ifname", ifname: l2LinkName("vlan", "v200") });
    expect(model.vlans[0]!.parent).toMatchObject({ kind: "ifname", ifname: "eth3" });
  });

  test("no monitoring configured: miimon 100 (a bond must see a member go down); ARP monitoring as given", () => {
    const { model } = buildDeviceModel(parsed({ ...ports, bonds: [{ logicallabel: "b1", lowerLayerNames: ["eth-a"] }, { logicallabel: "b2", lowerLayerNames: ["eth-b"], bondMode: "BOND_MODE_BALANCE_XOR", arp: { interval: 200, ipTargets: ["192.0.2.1"] } }] }));
    expect(model.bonds[0]).toMatchObject({ mode: "balance-rr", mii: { interval: 100, updelay: 0, downdelay: 0 }, arp: null });
    expect(model.bonds[1]).toMatchObject({ mode: "balance-xor", mii: null, arp: { interval: 200, targets: ["192.0.2.1"] } });
  });

  test("bad VLANs and bonds: each a problem at its field, and the link's own error", () => {
    const doc = {
      ...ports,
      bonds: [
        { logicallabel: "lag0", lowerLayerNames: [] },
        { logicallabel: "lag1", lowerLayerNames: ["eth-a", "nope/../x"], lacpRate: "LACP_RATE_FAST", arp: { ipTargets: ["fe80::1"] } },
      ],
      vlans: [
        { logicallabel: "v0", lowerLayerName: "eth-a", vlanId: 0 },
        { logicallabel: "v1", lowerLayerName: "eth-b", vlanId: 4095 },
        { logicallabel: "v2", lowerLayerName: "eth-b", vlanId: 7 },
        { logicallabel: "v3", lowerLayerName: "eth-b", vlanId: 7 },
        { logicallabel: "v4", lowerLayerName: "v2", vlanId: 8 },
        { logicallabel: "eth-a", lowerLayerName: "eth-c", vlanId: 9 },
        { logicallabel: "bad label!", lowerLayerName: "eth-c", vlanId: 10 },
      ],
    };
    const p = problemsOf(doc);
    expect(p).toEqual(
      expect.arrayContaining([
        "bonds[0].lowerLayerNames: a bond needs at least one member port",
        expect.stringMatching(/^bonds\[1\]\.lowerLayerNames\[1\]: member "nope\/\.\.\/x": .*neither a label of this config nor an interface name/),
        "bonds[1].lacpRate: a LACP rate applies to an 802.3ad bond only",
        'bonds[1].arp.ipTargets[0]: "fe80::1" is not an IPv4 address',
        "vlans[0].vlanId: VLAN id 0 is out of range (1-4094)",
        "vlans[1].vlanId: VLAN id 4095 is out of range (1-4094)",
        'vlans[3].vlanId: VLAN 7 on "eth-b" is already vlans[2]',
        'vlans[4].lowerLayerName: parent "v2": a VLAN sub-interface of a VLAN sub-interface (QinQ) is not supported',
        'vlans[5].logicallabel: logical label "eth-a" is already used by deviceIoList[0]',
        'vlans[6].logicallabel: "bad label!" is not a logical label (1-64 of A-Z a-z 0-9 _ . : @ + -)',
      ]),
    );
    const { model } = buildDeviceModel(parsed(doc));
    expect(model.vlans[0]!.error).toMatch(/out of range/);
    expect(model.vlans[2]!.error).toBeNull();
    expect(model.bonds[0]!.error).toMatch(/at least one member/);
  });

  test("a bond member with another user is a conflict: the device's own port, an NI's port, a VLAN's parent, an app's passthrough", () => {
    const p = problemsOf({
      ...ports,
      systemAdapterList: [{ name: "eth-a", uplink: true }],
      vlans: [{ logicallabel: "v5", lowerLayerName: "eth-b", vlanId: 5 }],
      bonds: [{ logicallabel: "lag0", lowerLayerNames: ["eth-a", "eth-b", "eth-c"] }],
      networkInstances: [local({ port: { name: "eth-c" } })],
      apps: [{ uuidandversion: { uuid: "7b000000-0000-4000-8000-000000000010", version: "1" }, displayname: "pt", adapters: [{ type: "PhyIoNetEth", name: "grp-c" }] }],
    });
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^bonds\[0\]\.lowerLayerNames\[0\]: member "eth-a" \(eth1\) is a port of the device itself/),
        expect.stringMatching(/^bonds\[0\]\.lowerLayerNames\[1\]: member "eth-b" \(eth2\) is the parent of VLAN "v5"/),
        expect.stringMatching(/^bonds\[0\]\.lowerLayerNames\[2\]: member "eth-c" \(eth3\) is the port of network instance "lan"/),
        expect.stringMatching(/^bonds\[0\]\.lowerLayerNames\[2\]: member "eth-c" \(eth3\) is given to app "pt" \(passthrough\)/),
      ]),
    );
  });

  test("validation: a VLAN's parent and a bond's members must be ports of this device; an NI on a VLAN need not exist yet", () => {
    const env = { ...NO_ENV, interfaceExists: (n: string) => n === "eth1" || n === "uplink0" };
    const doc = parsed({ ...ports, vlans: [{ logicallabel: "v5", lowerLayerName: "eth-a", vlanId: 5 }, { logicallabel: "v6", lowerLayerName: "eth-b", vlanId: 6 }], bonds: [{ logicallabel: "lag0", lowerLayerNames: ["eth-c"] }], networkInstances: [local({ port: { name: "v5" } })] });
    const p = readConfig(doc, env).problems.map((x) => `${x.path}: ${x.message}`);
    expect(p).toEqual(['vlans[1].lowerLayerName: no port "eth-b" on this device (it names interface eth2)', 'bonds[0].lowerLayerNames[0]: no port "eth-c" on this device (it names interface eth3)']);
  });
});

describe("the device model: NI static routes and propagate_connected_routes", () => {
  test("read with their gateway or port; the flag", () => {
    const { model, problems } = buildDeviceModel(
      parsed({
        networkInstances: [
          local({
            propagateConnectedRoutes: true,
            staticRoutes: [
              { destinationNetwork: "192.0.2.0/24", gateway: "203.0.113.3" },
              { destinationNetwork: "198.18.0.0/15", gateway: "10.30.0.5" },
              { destinationNetwork: "0.0.0.0/0", port: "uplink0" },
            ],
          }),
        ],
      }),
    );
    expect(problems).toEqual([]);
    expect(model.networkInstances[0]).toMatchObject({
      propagateConnectedRoutes: true,
      staticRoutes: [
        { dst: "192.0.2.0/24", gateway: "203.0.113.3", port: null },
        { dst: "198.18.0.0/15", gateway: "10.30.0.5", port: null },
        { dst: "0.0.0.0/0", gateway: null, port: "uplink0" },
      ],
    });
  });

  test("an invalid route is a problem of its NI (path and reason), and only of that NI", () => {
    const doc = {
      networkInstances: [
        local({
          staticRoutes: [
            { destinationNetwork: "192.0.2.1/24", gateway: "203.0.113.3" },
            { destinationNetwork: "not-a-net", gateway: "203.0.113.3" },
            { destinationNetwork: "192.0.3.0/24" },
            { destinationNetwork: "192.0.4.0/24", gateway: "0.0.0.0" },
            { destinationNetwork: "10.30.0.0/25", gateway: "203.0.113.3" },
            { destinationNetwork: "192.0.5.0/24", gateway: "10.30.0.255" },
            { destinationNetwork: "192.0.6.0/24", gateway: "203.0.113.3", port: "eth9" },
            { destinationNetwork: "2001:db8::/32", gateway: "2001:db8::1" },
            { destinationNetwork: "192.0.7.0/24", gateway: "203.0.113.3" },
            { destinationNetwork: "192.0.7.0/24", gateway: "203.0.113.4" },
          ],
        }),
        local({ port: undefined, ip: { subnet: "10.31.0.0/24" }, staticRoutes: [{ destinationNetwork: "192.0.2.0/24", gateway: "203.0.113.3" }] }, NI2),
        { uuidandversion: { uuid: "7b000000-0000-4000-8000-000000000003" }, instType: "ZnetInstSwitch", port: { name: "sw0" }, staticRoutes: [{ destinationNetwork: "192.0.2.0/24", gateway: "192.0.2.1" }] },
      ],
    };
    const built = buildDeviceModel(parsed(doc));
    const p = built.problems.map((x) => `${x.objectKind}/${x.objectId.slice(-1)} ${x.path}: ${x.message}`);
    expect(p).toEqual([
      "networkInstance/1 networkInstances[0].staticRoutes[0].destinationNetwork: 192.0.2.1/24 has host bits set",
      'networkInstance/1 networkInstances[0].staticRoutes[1].destinationNetwork: "not-a-net" is not a CIDR network like 192.0.2.0/24',
      "networkInstance/1 networkInstances[0].staticRoutes[2]: a route needs a gateway or a port",
      "networkInstance/1 networkInstances[0].staticRoutes[3].gateway: the gateway is all zeroes",
      "networkInstance/1 networkInstances[0].staticRoutes[4].destinationNetwork: 10.30.0.0/25 overlaps the instance's own subnet 10.30.0.0/24",
      "networkInstance/1 networkInstances[0].staticRoutes[5].gateway: 10.30.0.255 is the network or broadcast address of 10.30.0.0/24",
      'networkInstance/1 networkInstances[0].staticRoutes[6].port: port "eth9" is not this instance\'s port ("uplink0"): an instance routes out of its own port only',
      "networkInstance/1 networkInstances[0].staticRoutes[7].destinationNetwork: 2001:db8::/32: IPv6 routes are not supported (network instances are IPv4 here)",
      "networkInstance/1 networkInstances[0].staticRoutes[7].gateway: 2001:db8::1: an IPv6 gateway on an IPv4 instance",
      "networkInstance/1 networkInstances[0].staticRoutes[9].destinationNetwork: 192.0.7.0/24 is routed twice",
      "networkInstance/2 networkInstances[1].staticRoutes[0].gateway: 203.0.113.3 is outside the subnet 10.31.0.0/24, and an instance without a port can route only through an address inside its subnet (an app)",
      "networkInstance/3 networkInstances[2].staticRoutes: static routes apply to Local network instances (a Switch instance's apps route through the port's own network)",
    ]);
    // The good one is kept.
    expect(built.model.networkInstances[0]!.staticRoutes.map((r) => r.dst)).toEqual(["192.0.7.0/24"]);
  });
});
