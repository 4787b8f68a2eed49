import { describe, expect, test } from "bun:test";
import type { DevicePortsReport } from "../model/ports.ts";
import { BondMode, DHCPType, decodeMessage, encodeMessage, ZInfoTypes, type ZInfoMsg } from "../proto/index.ts";
import { systemAdapterInfo } from "./ports-report.ts";

const report: DevicePortsReport = {
  configs: [
    {
      key: "k2",
      source: "config version 7",
      inUse: true,
      testing: false,
      lastSucceeded: new Date("2026-12-04T10:00:00.250Z"),
      lastFailed: null,
      lastError: null,
      ports: [
        { ifname: "eth0", logical: "eth0", uplink: true, mode: "dhcp", addresses: ["10.0.2.15/24"], gateway: "10.0.2.2", dns: ["10.0.2.3"], up: true, mac: "52:54:00:12:34:56", mtu: 1500 },
        {
          ifname: "evg0123456789ab",
          logical: "lag0",
          uplink: false,
          mode: "static",
          addresses: ["203.0.113.2/24"],
          gateway: null,
          dns: [],
          up: true,
          mac: "52:54:00:e0:00:03",
          mtu: 1500,
          bond: { mode: "active-backup", active: "eth3", members: [{ ifname: "eth3", up: true }, { ifname: "eth4", up: false }], miimon: 100 },
        },
      ],
    },
    { key: "k1", source: "default (DHCP on every Ethernet port)", inUse: false, testing: false, lastSucceeded: null, lastFailed: new Date("2026-12-04T09:00:00Z"), lastError: "eth0: no DHCP lease", ports: [] },
  ],
};

describe("the device's ports as ZInfoDevice.systemAdapter", () => {
  test("each configuration a DevicePortStatus, the one in use current; ports with addressing, state and bond status; through the wire", () => {
    const info = systemAdapterInfo(report);
    // Through protobuf and back: every field has its upstream number and type.
    const msg: ZInfoMsg = { ztype: ZInfoTypes.ZiDevice, devId: "d", dinfo: { systemAdapter: info } };
    const back = decodeMessage<ZInfoMsg>("org.lfedge.eve.info.ZInfoMsg", encodeMessage("org.lfedge.eve.info.ZInfoMsg", msg));
    const sa = back.dinfo!.systemAdapter!;
    expect(sa.currentIndex ?? 0).toBe(0);
    expect(sa.status!.map((s) => [s.key, s.lastError ?? ""])).toEqual([["zedagent", ""], ["lastresort", "eth0: no DHCP lease"]]);
    expect(Number(sa.status![0]!.lastSucceeded!.seconds)).toBe(Date.parse("2026-12-04T10:00:00Z") / 1000);
    expect(Number(sa.status![1]!.lastFailed!.seconds)).toBe(Date.parse("2026-12-04T09:00:00Z") / 1000);
    const [eth0, lag] = sa.status![0]!.ports!;
    expect(eth0).toMatchObject({ ifname: "eth0", name: "eth0", isMgmt: true, dhcpType: DHCPType.Client, subnet: "10.0.2.0/24", gateway: "10.0.2.2", defaultRouters: ["10.0.2.2"], dnsServers: ["10.0.2.3"], IPAddrs: ["10.0.2.15"], up: true, macAddr: "52:54:00:12:34:56", mtu: 1500 });
    expect(lag).toMatchObject({ name: "lag0", dhcpType: DHCPType.Static, subnet: "203.0.113.0/24", IPAddrs: ["203.0.113.2"] });
    expect(lag!.isMgmt ?? false).toBe(false);
    expect(lag!.bondStatus).toMatchObject({ mode: BondMode.BOND_MODE_ACTIVE_BACKUP, activeMember: "eth3", miiMonitor: { enabled: true, pollingInterval: 100 } });
    expect(lag!.bondStatus!.members!.map((m) => [m.logicallabel, m.miiUp ?? false])).toEqual([["eth3", true], ["eth4", false]]);
  });

  test("a configuration being tested says so; the current index follows the one in use", () => {
    const info = systemAdapterInfo({ configs: [{ ...report.configs[1]!, inUse: false }, { ...report.configs[0]!, testing: true, lastSucceeded: null }] });
    expect(info.currentIndex).toBe(1);
    expect(info.status![1]!.lastError).toBe("config version 7: being tested");
  });
});
