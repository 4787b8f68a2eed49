// The device's own ports as init runs them when evebox is PID 1 (init/ports.ts): what the controller part reports
// as ZInfoDevice.systemAdapter (EVE's DevicePortConfigList: the configurations tried, the one in use, each port's
// addressing and state). Types only: init produces it, controller/ports-report.ts encodes it.

export interface DevicePortsReport {
  /** The configuration in use first, then the last working one when that is another. */
  configs: DevicePortConfigReport[];
}

export interface DevicePortConfigReport {
  /** Stable key of the configuration (a hash of its ports). */
  key: string;
  /** Where it came from: "config version N", "default (DHCP on every Ethernet port)". */
  source: string;
  inUse: boolean;
  /** Being tested now (applied, not yet known to work). */
  testing: boolean;
  lastSucceeded: Date | null;
  lastFailed: Date | null;
  lastError: string | null;
  ports: DevicePortReport[];
}

export interface DevicePortReport {
  ifname: string;
  /** EVE's logical label. */
  logical: string;
  /** A management port (the config's `uplink`). */
  uplink: boolean;
  mode: "dhcp" | "static" | "none";
  /** CIDR, e.g. 10.0.2.15/24. */
  addresses: string[];
  gateway: string | null;
  dns: string[];
  up: boolean;
  mac: string | null;
  mtu: number | null;
  /** A bond port: its kernel mode, active member, members and MII monitoring interval (ms, 0: none). */
  bond?: { mode: string; active: string | null; members: { ifname: string; up: boolean }[]; miimon: number };
}
