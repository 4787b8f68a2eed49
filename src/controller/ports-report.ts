// The device's own ports (init's, when evebox is PID 1) as EVE reports them: ZInfoDevice.systemAdapter, a
// SystemAdapterInfo holding one DevicePortStatus per configuration (the one in use first, `currentIndex` 0, then
// the last working one), each port a DevicePort with its addressing, state and, for a bond, its BondStatus.
import type { DevicePortReport, DevicePortsReport } from "../model/ports.ts";
import { BondMode, DHCPType, type DevicePort, type SystemAdapterInfo } from "../proto/index.ts";
import { timestamp } from "./report.ts";

/** The kernel's bond mode names, as EVE's BondMode. */
const BOND_MODE: Record<string, BondMode> = {
  "balance-rr": BondMode.BOND_MODE_BALANCE_RR,
  "active-backup": BondMode.BOND_MODE_ACTIVE_BACKUP,
  "balance-xor": BondMode.BOND_MODE_BALANCE_XOR,
  broadcast: BondMode.BOND_MODE_BROADCAST,
  "802.3ad": BondMode.BOND_MODE_802_3AD,
  "balance-tlb": BondMode.BOND_MODE_BALANCE_TLB,
  "balance-alb": BondMode.BOND_MODE_BALANCE_ALB,
};

const DHCP: Record<DevicePortReport["mode"], DHCPType> = { dhcp: DHCPType.Client, static: DHCPType.Static, none: DHCPType.DHCPNone };

/** `a.b.c.d/p` → its network, `w.x.y.z/p`. */
function networkOf(cidr: string): string | undefined {
  const m = cidr.match(/^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/);
  if (!m) return undefined;
  const prefix = Number(m[5]);
  const ip = m.slice(1, 5).reduce((a, o) => a * 256 + Number(o), 0);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const net = (ip & mask) >>> 0;
  return `${[24, 16, 8, 0].map((s) => (net >>> s) & 255).join(".")}/${prefix}`;
}

function devicePort(p: DevicePortReport): DevicePort {
  return {
    ifname: p.ifname,
    name: p.logical,
    isMgmt: p.uplink,
    dhcpType: DHCP[p.mode],
    ...(p.addresses[0] ? { subnet: networkOf(p.addresses[0]) } : {}),
    ...(p.gateway ? { gateway: p.gateway, defaultRouters: [p.gateway] } : {}),
    dnsServers: p.dns,
    ...(p.mac ? { macAddr: p.mac } : {}),
    IPAddrs: p.addresses.map((a) => a.split("/")[0]!),
    up: p.up,
    ...(p.mtu ? { mtu: p.mtu } : {}),
    ...(p.bond
      ? {
          bondStatus: {
            mode: BOND_MODE[p.bond.mode] ?? BondMode.BOND_MODE_UNSPECIFIED,
            ...(p.bond.active ? { activeMember: p.bond.active } : {}),
            miiMonitor: { enabled: p.bond.miimon > 0, pollingInterval: p.bond.miimon },
            members: p.bond.members.map((m) => ({ logicallabel: m.ifname, miiUp: m.up })),
          },
        }
      : {}),
  };
}

export function systemAdapterInfo(r: DevicePortsReport): SystemAdapterInfo {
  return {
    currentIndex: Math.max(0, r.configs.findIndex((c) => c.inUse)),
    status: r.configs.map((c) => ({
      version: 1,
      // EVE's keys say where a configuration came from: the controller's ("zedagent") or the last resort.
      key: c.source.startsWith("config") ? "zedagent" : "lastresort",
      ...(c.lastSucceeded ? { lastSucceeded: timestamp(c.lastSucceeded) } : {}),
      ...(c.lastFailed ? { lastFailed: timestamp(c.lastFailed) } : {}),
      ...(c.lastError ? { lastError: c.lastError } : c.testing ? { lastError: `${c.source}: being tested` } : {}),
      ports: c.ports.map(devicePort),
    })),
  };
}
