// Static routes, propagated connected routes, VLANs and bonds in the network model, dnsmasq's option 121 and
// the graph items (pure: host facts are given).
import { describe, expect, test } from "bun:test";
import { compileFirewall } from "./acl/compile.ts";
import { dnsmasqFiles, dnsmasqPaths } from "./dnsmasq.ts";
import { planGraph } from "./graph.ts";
import { desiredItems, MODIFIABLE } from "./items.ts";
import { bondAttrs, bondCreateArgv, vlanCreateArgv } from "./links.ts";
import { EMPTY_FACTS, type HostFacts, networkModel } from "./model.ts";
import { l2LinkName } from "../config/names.ts";

const NI = "6d000000-0000-4000-8000-000000000001";
const NI2 = "6d000000-0000-4000-8000-000000000002";
const APP = (n: number) => `6d000000-0000-4000-8000-0000000000${String(n).padStart(2, "0")}`;
const app = (n: number, addr?: string, networkId = NI) => ({ uuidandversion: { uuid: APP(n) }, displayname: `app${n}`, interfaces: [{ name: "eth0", networkId, ...(addr ? { addr } : {}) }] });
const ni = (extra: any = {}, uuid = NI) => ({
  uuidandversion: { uuid },
  displayname: uuid === NI ? "lan" : "other",
  instType: "ZnetInstLocal",
  port: { name: "uplink0" },
  ip: { subnet: uuid === NI ? "10.40.0.0/24" : "10.41.0.0/24", gateway: uuid === NI ? "10.40.0.1" : "10.41.0.1", dhcpRange: { start: uuid === NI ? "10.40.0.10" : "10.41.0.10", end: uuid === NI ? "10.40.0.50" : "10.41.0.50" } },
  ...extra,
});
const FACTS: HostFacts = { ...EMPTY_FACTS, interfaces: ["uplink0", "eth1", "eth2"], gateways: { uplink0: "203.0.113.1" }, connected: { uplink0: ["203.0.113.0/24"] }, defaultRouteIfname: "uplink0" };
const NONE = { subnets: {}, addrs: {} };

describe("static routes", () => {
  test("through a gateway the port reaches: into the instance's table, and to the apps through the bridge (option 121)", () => {
    const m = networkModel({ networkInstances: [ni({ staticRoutes: [{ destinationNetwork: "192.0.2.0/24", gateway: "203.0.113.3" }] })], apps: [app(1)] }, [], FACTS, NONE);
    const spec = m.instances[0]!;
    expect(spec.error).toBeNull();
    expect(spec.routeErrors).toEqual([]);
    expect(spec.routes).toEqual([{ dst: "192.0.2.0/24", via: "203.0.113.3" }]);
    expect(spec.propagated).toEqual([{ dst: "192.0.2.0/24", via: "10.40.0.1" }]);
    expect(m.interfaces[0]!.routes).toEqual([{ dst: "192.0.2.0/24", via: "10.40.0.1" }]);
    const items = desiredItems(m, compileFirewall(m.instances, m.interfaces), FACTS, "/run/x");
    const route = items.find((i) => i.type === "route")!;
    expect(route.attrs).toMatchObject({ uplink: "uplink0", via: "203.0.113.1", connected: ["203.0.113.0/24"], static: ["192.0.2.0/24 via 203.0.113.3"] });
    const f = dnsmasqFiles(spec, m.interfaces, new Map(), dnsmasqPaths("/run/x", spec.bridge));
    // The subnet on-link, the route, and the default again (RFC 3442: a client that takes 121 ignores the router option).
    expect(f.conf).toContain("dhcp-option=option:classless-static-route,10.40.0.0/24,0.0.0.0,192.0.2.0/24,10.40.0.1,0.0.0.0/0,10.40.0.1\n");
    expect(f.conf).toContain("dhcp-option=option:router,10.40.0.1\n");
  });

  test("no routes to give: no option 121 (the router option alone, as before)", () => {
    const m = networkModel({ networkInstances: [ni()], apps: [app(1)] }, [], FACTS, NONE);
    const f = dnsmasqFiles(m.instances[0]!, m.interfaces, new Map(), dnsmasqPaths("/run/x", m.instances[0]!.bridge));
    expect(f.conf).not.toContain("classless-static-route");
    expect(m.interfaces[0]!.routes).toEqual([]);
  });

  test("through an app of the instance: only given to the apps, and the gateway app gets none through itself", () => {
    const m = networkModel({ networkInstances: [ni({ staticRoutes: [{ destinationNetwork: "172.20.0.0/16", gateway: "10.40.0.5" }] })], apps: [app(1, "10.40.0.5"), app(2)] }, [], FACTS, NONE);
    const spec = m.instances[0]!;
    expect(spec.routes).toEqual([]);
    expect(spec.propagated).toEqual([{ dst: "172.20.0.0/16", via: "10.40.0.5" }]);
    const gwApp = m.interfaces.find((i) => i.appName === "app1")!;
    const other = m.interfaces.find((i) => i.appName === "app2")!;
    expect(gwApp.routes).toEqual([]);
    expect(other.routes).toEqual([{ dst: "172.20.0.0/16", via: "10.40.0.5" }]);
    const f = dnsmasqFiles(spec, m.interfaces, new Map(), dnsmasqPaths("/run/x", spec.bridge));
    expect(f.dhcpHosts).toContain(`${gwApp.mac},set:evgw0,10.40.0.5,app1,infinite`);
    expect(f.conf).toContain("dhcp-option=tag:!evgw0,option:classless-static-route,10.40.0.0/24,0.0.0.0,172.20.0.0/16,10.40.0.5,0.0.0.0/0,10.40.0.1\n");
    expect(f.conf).toContain("dhcp-option=tag:evgw0,option:classless-static-route,10.40.0.0/24,0.0.0.0,0.0.0.0/0,10.40.0.1\n");
  });

  test("a static default route through an app: the apps' default gateway (router and 121), the gateway app's own default is left alone", () => {
    const m = networkModel({ networkInstances: [ni({ port: undefined, staticRoutes: [{ destinationNetwork: "0.0.0.0/0", gateway: "10.40.0.5" }] })], apps: [app(1, "10.40.0.5"), app(2)] }, [], FACTS, NONE);
    const spec = m.instances[0]!;
    expect(spec.appDefaultVia).toBe("10.40.0.5");
    expect(m.interfaces.find((i) => i.appName === "app2")!.defaultVia).toBe("10.40.0.5");
    expect(m.interfaces.find((i) => i.appName === "app1")!.defaultVia).toBeNull();
    const f = dnsmasqFiles(spec, m.interfaces, new Map(), dnsmasqPaths("/run/x", spec.bridge));
    expect(f.conf).toContain("dhcp-option=option:router,10.40.0.5\n");
    // The metadata server stays on the bridge (its DNAT is there), for the gateway app too.
    expect(f.conf).toContain("dhcp-option=tag:!evgw0,option:classless-static-route,10.40.0.0/24,0.0.0.0,169.254.169.254/32,10.40.0.1,0.0.0.0/0,10.40.0.5\n");
    expect(f.conf).toContain("dhcp-option=tag:evgw0,option:classless-static-route,10.40.0.0/24,0.0.0.0,169.254.169.254/32,10.40.0.1\n");
    expect(m.interfaces.find((i) => i.appName === "app2")!.routes).toEqual([{ dst: "169.254.169.254/32", via: "10.40.0.1" }]);
    expect(m.interfaces.find((i) => i.appName === "app1")!.routes).toEqual([{ dst: "169.254.169.254/32", via: "10.40.0.1" }]);
  });

  test("with the bridge as the apps' default gateway no metadata route is given (the default goes there anyway)", () => {
    const m = networkModel({ networkInstances: [ni({ staticRoutes: [{ destinationNetwork: "192.0.2.0/24", gateway: "203.0.113.3" }] })], apps: [app(1)] }, [], FACTS, NONE);
    expect(m.instances[0]!.propagated.map((r) => r.dst)).not.toContain("169.254.169.254/32");
  });

  test("a static default route out of the port replaces the port's gateway in the instance's table", () => {
    const m = networkModel({ networkInstances: [ni({ staticRoutes: [{ destinationNetwork: "0.0.0.0/0", gateway: "203.0.113.9" }] })], apps: [] }, [], FACTS, NONE);
    expect(m.instances[0]!.hostDefaultVia).toBe("203.0.113.9");
    const items = desiredItems(m, compileFirewall(m.instances, m.interfaces), FACTS, "/run/x");
    expect(items.find((i) => i.type === "route")!.attrs.via).toBe("203.0.113.9");
  });

  test("a route naming only the port goes through the port's gateway; with none, on the port's link", () => {
    const doc = { networkInstances: [ni({ staticRoutes: [{ destinationNetwork: "192.0.2.0/24", port: "uplink0" }] })] };
    expect(networkModel(doc, [], FACTS, NONE).instances[0]!.routes).toEqual([{ dst: "192.0.2.0/24", via: "203.0.113.1" }]);
    const m = networkModel(doc, [], { ...FACTS, gateways: {} }, NONE);
    expect(m.instances[0]!.routes).toEqual([{ dst: "192.0.2.0/24", via: null }]);
    const route = desiredItems(m, compileFirewall(m.instances, m.interfaces), { ...FACTS, gateways: {} }, "/run/x").find((i) => i.type === "route")!;
    expect(route.attrs).toMatchObject({ connected: ["192.0.2.0/24", "203.0.113.0/24"], static: [] });
  });

  test("a gateway the port does not reach: the instance's error with the reason; the route is left out, other instances unaffected", () => {
    const m = networkModel({ networkInstances: [ni({ staticRoutes: [{ destinationNetwork: "192.0.2.0/24", gateway: "198.51.100.7" }, { destinationNetwork: "192.0.3.0/24", gateway: "203.0.113.3" }] }), ni({}, NI2)] }, [], FACTS, NONE);
    const [a, b] = m.instances;
    expect(a!.routeErrors).toEqual(["staticRoutes[0] 192.0.2.0/24: gateway 198.51.100.7 is not reachable through port uplink0 (uplink0: 203.0.113.0/24)"]);
    expect(a!.routes).toEqual([{ dst: "192.0.3.0/24", via: "203.0.113.3" }]);
    expect(a!.error).toBeNull();
    expect(b!.routeErrors).toEqual([]);
  });

  test("an allocated subnet: a gateway outside it on an instance without a port is refused at the host", () => {
    const m = networkModel({ networkInstances: [ni({ port: undefined, ip: {}, staticRoutes: [{ destinationNetwork: "192.0.2.0/24", gateway: "192.168.77.1" }] })] }, [], FACTS, NONE);
    expect(m.instances[0]!.routeErrors[0]).toMatch(/outside the subnet 10\.111\.0\.0\/24, and an instance without a port routes only through its apps/);
  });
});

describe("propagate_connected_routes", () => {
  test("the port's connected networks go to the apps through the bridge; off: they do not", () => {
    const facts = { ...FACTS, connected: { uplink0: ["203.0.113.0/24", "198.51.100.0/26"] } };
    const on = networkModel({ networkInstances: [ni({ propagateConnectedRoutes: true })], apps: [app(1)] }, [], facts, NONE);
    expect(on.instances[0]!.propagated).toEqual([
      { dst: "203.0.113.0/24", via: "10.40.0.1" },
      { dst: "198.51.100.0/26", via: "10.40.0.1" },
    ]);
    expect(on.interfaces[0]!.routes).toHaveLength(2);
    const f = dnsmasqFiles(on.instances[0]!, on.interfaces, new Map(), dnsmasqPaths("/run/x", on.instances[0]!.bridge));
    expect(f.conf).toContain("option:classless-static-route,10.40.0.0/24,0.0.0.0,203.0.113.0/24,10.40.0.1,198.51.100.0/26,10.40.0.1,0.0.0.0/0,10.40.0.1");
    const off = networkModel({ networkInstances: [ni()], apps: [app(1)] }, [], facts, NONE);
    expect(off.instances[0]!.propagated).toEqual([]);
  });
});

describe("VLANs and bonds on the host", () => {
  const io = { deviceIoList: [{ ptype: "PhyIoNetEth", logicallabel: "a", phyaddrs: { Ifname: "eth1" } }, { ptype: "PhyIoNetEth", logicallabel: "b", phyaddrs: { Ifname: "eth2" } }] };
  const lag = l2LinkName("bond", "lag0");
  const vlan = l2LinkName("vlan", "lan.100");
  // A bond, a VLAN on it, and a Switch NI on the VLAN.
  const switchOnVlan = {
    ...io,
    bonds: [{ logicallabel: "lag0", lowerLayerNames: ["a", "b"], bondMode: "BOND_MODE_ACTIVE_BACKUP" }],
    vlans: [{ logicallabel: "lan.100", lowerLayerName: "lag0", vlanId: 100 }],
    networkInstances: [{ uuidandversion: { uuid: NI }, displayname: "sw", instType: "ZnetInstSwitch", port: { name: "lan.100" } }],
  };

  test("items: the bond, its members, a VLAN on it, a Switch NI on the VLAN — each built after what it needs", () => {
    const m = networkModel(switchOnVlan, [], FACTS, NONE);
    expect(m.links.map((l) => [l.kind, l.ifname, l.error])).toEqual([["bond", lag, null], ["vlan", vlan, null]]);
    expect(m.instances[0]!.uplink).toEqual({ label: "lan.100", ifname: vlan });
    const items = desiredItems(m, compileFirewall(m.instances, m.interfaces), FACTS, "/run/x");
    const byId = new Map(items.map((i) => [i.id, i]));
    expect(byId.get(`bond:${lag}`)!.attrs).toEqual({ mode: "active-backup", miimon: 100, updelay: 0, downdelay: 0, arpInterval: 0, arpTargets: [], lacpRate: null });
    expect(byId.get("bondmember:eth1")!.deps).toEqual([`bond:${lag}`]);
    expect(byId.get(`vlan:${vlan}`)).toMatchObject({ deps: [`bond:${lag}`], attrs: { parent: lag, vlanId: 100 } });
    expect(byId.get(`port:${vlan}`)!.deps).toContain(`vlan:${vlan}`);
    const order = planGraph(items, [], (t) => MODIFIABLE.has(t)).ops.map((o) => o.item.id);
    expect(order.indexOf(`bond:${lag}`)).toBeLessThan(order.indexOf("bondmember:eth1"));
    expect(order.indexOf(`bond:${lag}`)).toBeLessThan(order.indexOf(`vlan:${vlan}`));
    expect(order.indexOf(`vlan:${vlan}`)).toBeLessThan(order.indexOf(`port:${vlan}`));
    // Gone from the config: every one of them is deleted, dependents first.
    const gone = planGraph([], items, (t) => MODIFIABLE.has(t)).ops.map((o) => `${o.op} ${o.item.id}`);
    expect(gone.indexOf(`delete port:${vlan}`)).toBeLessThan(gone.indexOf(`delete vlan:${vlan}`));
    expect(gone.indexOf(`delete vlan:${vlan}`)).toBeLessThan(gone.indexOf(`delete bond:${lag}`));
  });

  test("a changed mode recreates the bond and re-enslaves its members", () => {
    const l = (mode: string) => networkModel({ ...io, bonds: [{ logicallabel: "lag0", lowerLayerNames: ["a", "b"], bondMode: mode }] }, [], FACTS, NONE);
    const items = (m: ReturnType<typeof l>) => desiredItems(m, compileFirewall(m.instances, m.interfaces), FACTS, "/run/x");
    const ops = planGraph(items(l("BOND_MODE_802_3AD")), items(l("BOND_MODE_ACTIVE_BACKUP")), (t) => MODIFIABLE.has(t)).ops.map((o) => `${o.op} ${o.item.id}`);
    expect([...ops].sort()).toEqual([`create bond:${lag}`, "create bondmember:eth1", "create bondmember:eth2", `delete bond:${lag}`, "delete bondmember:eth1", "delete bondmember:eth2"]);
    // Members released before the bond goes; the new bond made before they join it.
    expect(ops.indexOf("delete bondmember:eth1")).toBeLessThan(ops.indexOf(`delete bond:${lag}`));
    expect(ops.indexOf(`delete bond:${lag}`)).toBeLessThan(ops.indexOf(`create bond:${lag}`));
    expect(ops.indexOf(`create bond:${lag}`)).toBeLessThan(ops.indexOf("create bondmember:eth2"));
  });

  test("links the device's own ports stand on (held by init) get no items: not made, changed or removed here; an NI on one does not wait for it", () => {
    const m = networkModel(switchOnVlan, [], FACTS, NONE);
    const all = desiredItems(m, compileFirewall(m.instances, m.interfaces), FACTS, "/run/x");
    const held = desiredItems(m, compileFirewall(m.instances, m.interfaces), FACTS, "/run/x", undefined, new Set([lag]));
    const ids = (items: typeof all) => items.map((i) => i.id).filter((id) => /^(bond|bondmember|vlan):/.test(id)).sort();
    expect(ids(all)).toEqual([`bond:${lag}`, "bondmember:eth1", "bondmember:eth2", `vlan:${vlan}`]);
    expect(ids(held)).toEqual([`vlan:${vlan}`]);
    expect(held.find((i) => i.id === `vlan:${vlan}`)!.deps).toEqual([]);
    // Holding the VLAN too: the Switch NI's port no longer waits for a vlan item of this part's.
    const both = desiredItems(m, compileFirewall(m.instances, m.interfaces), FACTS, "/run/x", undefined, new Set([lag, vlan]));
    expect(ids(both)).toEqual([]);
    expect(both.find((i) => i.id === `port:${vlan}`)!.deps).not.toContain(`vlan:${vlan}`);
  });

  test("a VLAN whose parent is not on this device: its error, and an NI on it is in error naming it", () => {
    const m = networkModel({ ...io, vlans: [{ logicallabel: "v9", lowerLayerName: "eth9", vlanId: 9 }], networkInstances: [ni({ port: { name: "v9" } })] }, [], FACTS, NONE);
    expect(m.links[0]!.error).toBe('parent port "eth9" is not on this device');
    expect(m.instances[0]!.error).toBe('port.name: VLAN "v9": parent port "eth9" is not on this device');
    expect(desiredItems(m, compileFirewall(m.instances, m.interfaces), FACTS, "/run/x").some((i) => i.type === "vlan")).toBe(false);
  });

  test("the commands: names are evebox's, values numbers or checked addresses", () => {
    expect(vlanCreateArgv(vlan, { parent: "eth1", vlanId: 100 })).toEqual(["link", "add", "link", "eth1", "name", vlan, "type", "vlan", "id", "100"]);
    const a = bondAttrs({ kind: "bond", label: "x", ifname: lag, parent: null, vlanId: null, members: [], mode: "802.3ad", lacpRate: "fast", mii: { interval: 100, updelay: 250, downdelay: 0 }, arp: null, error: null });
    expect(a.updelay).toBe(200);
    expect(bondCreateArgv(lag, a)).toEqual(["link", "add", lag, "type", "bond", "mode", "802.3ad", "miimon", "100", "updelay", "200", "downdelay", "0", "lacp_rate", "fast"]);
    const arp = bondAttrs({ kind: "bond", label: "x", ifname: lag, parent: null, vlanId: null, members: [], mode: "active-backup", lacpRate: null, mii: null, arp: { interval: 500, targets: ["192.0.2.2", "192.0.2.1"] }, error: null });
    expect(bondCreateArgv(lag, arp)).toEqual(["link", "add", lag, "type", "bond", "mode", "active-backup", "arp_interval", "500", "arp_ip_target", "192.0.2.1,192.0.2.2"]);
  });
});
