// A network instance's ZInfo as EVE's zedagent fills it: bridge, port, MTU and routes, through the project's protos.
import { describe, expect, test } from "bun:test";
import { decodeMessage, encodeMessage, ZInfoTypes, type ZInfoMsg } from "../proto/index.ts";
import { infoItems, niRoutesInfo } from "./report.ts";

const NI = "7d000000-0000-4000-8000-000000000001";
const APP = "7d000000-0000-4000-8000-000000000002";
const ni = {
  uuid: NI,
  name: "lan",
  state: "ONLINE",
  error: null,
  bridge: "eb0123456789ab",
  gateway: "10.50.0.1",
  mtu: 1500,
  uplink: { label: "uplink0", ifname: "uplink0" },
  interfaces: [{ app: APP, appName: "router", ip: "10.50.0.5" }],
  routes: [
    { dst: "192.0.2.0/24", via: "10.50.0.1", to: "apps+table", tableVia: "203.0.113.3" },
    { dst: "172.20.0.0/16", via: "10.50.0.5", to: "apps" },
    { dst: "203.0.113.0/24", via: "10.50.0.1", to: "apps" },
  ],
};

describe("ZInfoNetworkInstance", () => {
  test("ports and ip_routes: out of the port with its next hop, through an app with the app's UUID", () => {
    expect(niRoutesInfo(ni)).toEqual({
      ports: ["uplink0"],
      ipRoutes: [
        { destinationNetwork: "192.0.2.0/24", gateway: "203.0.113.3", port: "uplink0" },
        { destinationNetwork: "172.20.0.0/16", gateway: "10.50.0.5", gatewayApp: APP },
        { destinationNetwork: "203.0.113.0/24", gateway: "10.50.0.1" },
      ],
    });
    expect(niRoutesInfo({ ...ni, uplink: null, routes: [] })).toEqual({});
  });

  test("the message: bridge name and address, MTU, port and routes survive the wire", () => {
    const status = { device: { name: "d", version: "1", mode: "managed" }, parts: [], apps: [], volumes: [], contentTrees: [], networkInstances: [ni] } as never;
    const facts = { devId: "d", version: "1", serial: "", softSerial: "", deviceName: "d", bootTime: new Date(0), storageBytes: 0, dataDir: "/tmp", memoryBytes: 0, firstBoot: false, objectErrors: new Map() };
    const item = infoItems(status, facts).find((i) => i.key === `ni:${NI}`)!;
    const back = decodeMessage<ZInfoMsg>("org.lfedge.eve.info.ZInfoMsg", encodeMessage("org.lfedge.eve.info.ZInfoMsg", item.msg));
    expect(back.ztype).toBe(ZInfoTypes.ZiNetworkInstance);
    expect(back.niinfo).toMatchObject({ bridgeName: "eb0123456789ab", bridgeIPAddr: "10.50.0.1", mtu: 1500, ports: ["uplink0"] });
    expect(back.niinfo!.ipRoutes!.map((r) => [r.destinationNetwork, r.gateway, r.port ?? "", r.gatewayApp ?? ""])).toEqual([
      ["192.0.2.0/24", "203.0.113.3", "uplink0", ""],
      ["172.20.0.0/16", "10.50.0.5", "", APP],
      ["203.0.113.0/24", "10.50.0.1", "", ""],
    ]);
  });
});
