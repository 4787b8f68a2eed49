import { describe, expect, test } from "bun:test";
import { MAX_ACES_PER_INTERFACE, NO_ENV, validateConfig, type ValidationEnv } from "./validate.ts";

const U = (n: number) => `7a000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
const ENV: ValidationEnv = { interfaceExists: (n) => ["eth0", "eth1", "wlan0"].includes(n), hostNetworks: () => ["192.0.2.0/24", "172.17.0.0/16"] };

function doc(over: { nis?: any[]; interfaces?: any[]; apps?: any[] } = {}) {
  return {
    datastores: [{ id: U(1), dType: "DsContainerRegistry", fqdn: "docker://127.0.0.1:5000" }],
    contentInfo: [{ uuid: U(2), dsId: U(1), URL: "a:1", iformat: "CONTAINER" }],
    volumes: [{ uuid: U(3), origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: U(2) } }],
    networkInstances: over.nis ?? [
      { uuidandversion: { uuid: U(10) }, displayname: "lan", instType: "ZnetInstLocal", port: { name: "eth0" }, ip: { subnet: "10.1.0.0/24", gateway: "10.1.0.1" } },
    ],
    apps: over.apps ?? [
      {
        uuidandversion: { uuid: U(20) },
        displayname: "web",
        volumeRefList: [{ uuid: U(3) }],
        interfaces: over.interfaces ?? [{ name: "eth0", networkId: U(10), acls: [] }],
      },
    ],
  };
}

const paths = (d: any, env = ENV) => validateConfig(d, env).map((p) => `${p.path}: ${p.message}`);

describe("network instances", () => {
  test("a good Local and Switch instance pass", () => {
    const d = doc({
      nis: [
        { uuidandversion: { uuid: U(10) }, instType: "ZnetInstLocal", port: { name: "eth0" }, ip: { subnet: "10.1.0.0/24", gateway: "10.1.0.1", dhcpRange: { start: "10.1.0.10", end: "10.1.0.20" } } },
        { uuidandversion: { uuid: U(11) }, instType: "ZnetInstSwitch", port: { name: "eth1" } },
        { uuidandversion: { uuid: U(12) }, instType: "ZnetInstLocal", port: { name: "uplink" } }, // shared label, subnet allocated
      ],
    });
    expect(paths(d)).toEqual([]);
  });

  test("overlapping subnets, a bad CIDR, host bits, a clash with the device's own networks", () => {
    const d = doc({
      nis: [
        { uuidandversion: { uuid: U(10) }, instType: "ZnetInstLocal", ip: { subnet: "10.1.0.0/16" } },
        { uuidandversion: { uuid: U(11) }, instType: "ZnetInstLocal", ip: { subnet: "10.1.2.0/24" } },
        { uuidandversion: { uuid: U(12) }, instType: "ZnetInstLocal", ip: { subnet: "10.9.0.0/33" } },
        { uuidandversion: { uuid: U(13) }, instType: "ZnetInstLocal", ip: { subnet: "10.8.0.1/24" } },
        { uuidandversion: { uuid: U(14) }, instType: "ZnetInstLocal", ip: { subnet: "172.17.5.0/24" } },
      ],
      apps: [],
    });
    const p = paths(d);
    expect(p).toContainEqual(expect.stringMatching(/^networkInstances\[1\]\.ip\.subnet: 10\.1\.2\.0\/24 overlaps 10\.1\.0\.0\/16/));
    expect(p).toContainEqual(expect.stringMatching(/^networkInstances\[2\]\.ip\.subnet: .*not a CIDR/));
    expect(p).toContainEqual(expect.stringMatching(/^networkInstances\[3\]\.ip\.subnet: .*host bits/));
    expect(p).toContainEqual(expect.stringMatching(/^networkInstances\[4\]\.ip\.subnet: .*overlaps the device's own network 172\.17\.0\.0\/16/));
  });

  test("an uplink that does not exist, a Switch without a port, an unsupported type, a port bridged twice", () => {
    const d = doc({
      nis: [
        { uuidandversion: { uuid: U(10) }, instType: "ZnetInstLocal", port: { name: "eth9" }, ip: { subnet: "10.1.0.0/24" } },
        { uuidandversion: { uuid: U(11) }, instType: "ZnetInstSwitch" },
        { uuidandversion: { uuid: U(12) }, instType: "ZnetInstCloud" },
        { uuidandversion: { uuid: U(13) }, instType: "ZnetInstSwitch", port: { name: "eth1" } },
        { uuidandversion: { uuid: U(14) }, instType: "ZnetInstSwitch", port: { name: "eth1" } },
      ],
      apps: [],
    });
    const p = paths(d);
    expect(p).toContain('networkInstances[0].port.name: no port "eth9" on this device');
    expect(p).toContainEqual(expect.stringMatching(/^networkInstances\[1\]\.port\.name: a Switch network instance needs/));
    expect(p).toContainEqual(expect.stringMatching(/^networkInstances\[2\]\.instType: ZnetInstCloud is not supported/));
    expect(p).toContainEqual(expect.stringMatching(/^networkInstances\[4\]\.port\.name: port eth1 is already bridged/));
    // Away from the device (NO_ENV) a port name cannot be checked, and is not.
    expect(paths(d, NO_ENV).some((x) => x.includes("eth9"))).toBe(false);
  });

  test("a logical label resolves through deviceIoList to its interface", () => {
    const d: any = doc({ nis: [{ uuidandversion: { uuid: U(10) }, instType: "ZnetInstLocal", port: { name: "wan" }, ip: { subnet: "10.1.0.0/24" } }] });
    d.deviceIoList = [{ logicallabel: "wan", phyaddrs: { Ifname: "wlan0" } }];
    expect(paths(d)).toEqual([]);
    d.deviceIoList[0].phyaddrs.Ifname = "wwan7";
    expect(paths(d)).toContain('networkInstances[0].port.name: no port "wan" on this device (it names interface wwan7)');
  });

  test("gateway on the network address, a reversed DHCP range", () => {
    const d = doc({ nis: [{ uuidandversion: { uuid: U(10) }, instType: "ZnetInstLocal", ip: { subnet: "10.1.0.0/24", gateway: "10.1.0.0", dhcpRange: { start: "10.1.0.50", end: "10.1.0.10" } } }] });
    const p = paths(d);
    expect(p).toContainEqual(expect.stringMatching(/^networkInstances\[0\]\.ip\.gateway: .*network or broadcast/));
    expect(p).toContainEqual(expect.stringMatching(/^networkInstances\[0\]\.ip\.dhcpRange: start 10\.1\.0\.50 is after end/));
  });
});

describe("app interfaces and ACLs", () => {
  test("a port without a protocol, a bad CIDR, a portmap without lport, a bad MAC, a static address on the gateway", () => {
    const d = doc({
      interfaces: [
        {
          name: "eth0",
          networkId: U(10),
          addr: "10.1.0.1",
          macAddress: "03:00:00:00:00:01",
          acls: [
            { matches: [{ type: "fport", value: "22" }] },
            { matches: [{ type: "ip", value: "10.0.0.0/40" }] },
            { matches: [{ type: "protocol", value: "tcp" }], actions: [{ portmap: true, appPort: 80 }] },
          ],
        },
      ],
    });
    const p = paths(d);
    expect(p).toContainEqual(expect.stringMatching(/^apps\[0\]\.interfaces\[0\]\.acls\[0\]\.matches: a port match .* needs a protocol/));
    expect(p).toContainEqual(expect.stringMatching(/^apps\[0\]\.interfaces\[0\]\.acls\[1\]\.matches\[0\]\.value: .*not an IP address or CIDR/));
    expect(p).toContainEqual(expect.stringMatching(/^apps\[0\]\.interfaces\[0\]\.acls\[2\]\.actions\[0\]\.portmap: .*lport/));
    expect(p).toContainEqual(expect.stringMatching(/^apps\[0\]\.interfaces\[0\]\.macAddress: .*multicast/));
    expect(p).toContainEqual(expect.stringMatching(/^apps\[0\]\.interfaces\[0\]\.addr: 10\.1\.0\.1 is the gateway/));
  });

  test("one device port mapped twice is refused at the second mapping", () => {
    const pm = (port: string) => ({ matches: [{ type: "protocol", value: "tcp" }, { type: "lport", value: port }], actions: [{ portmap: true, appPort: 80 }] });
    const d = doc({ interfaces: [{ name: "eth0", networkId: U(10), acls: [pm("8080"), pm("8081"), pm("8080")] }] });
    expect(paths(d)).toEqual([expect.stringMatching(/^apps\[0\]\.interfaces\[0\]\.acls\[2\]: port 8080\/tcp of eth0 is already mapped by app "web" \(apps\[0\]\.interfaces\[0\]\.acls\[0\]\)$/)]);
  });

  test("one device port mapped by two apps is refused at the second app, naming the first", () => {
    const pm = { matches: [{ type: "protocol", value: "tcp" }, { type: "lport", value: "8080" }], actions: [{ portmap: true, appPort: 80 }] };
    const app = (n: number, name: string) => ({ uuidandversion: { uuid: U(n) }, displayname: name, volumeRefList: [{ uuid: U(3) }], interfaces: [{ name: "eth0", networkId: U(10), acls: [pm] }] });
    expect(paths(doc({ apps: [app(20, "web"), app(21, "api")] }))).toEqual([expect.stringMatching(/^apps\[1\]\.interfaces\[0\]\.acls\[0\]: port 8080\/tcp of eth0 is already mapped by app "web" \(apps\[0\]\.interfaces\[0\]\.acls\[0\]\)$/)]);
  });

  test("an app on a network instance that is not in the config (deleted while in use) is refused, naming the app", () => {
    const d = doc({ nis: [] });
    expect(paths(d)).toEqual([`apps[0].interfaces[0].networkId: app "web" is on network instance ${U(10)}, which is not in this config (remove the app's interface on it first)`]);
  });

  test("100,000 rules on one interface are refused, naming the field and the bound", () => {
    const acls = Array.from({ length: 100_000 }, (_, i) => ({ matches: [{ type: "ip", value: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }] }));
    const p = paths(doc({ interfaces: [{ name: "eth0", networkId: U(10), acls }] }));
    expect(p).toEqual([`apps[0].interfaces[0].acls: 100000 rules: at most ${MAX_ACES_PER_INTERFACE} per interface (compile large lists to CIDRs or split them)`]);
  });

  test("interface names become the container's: they must be interface names, once each", () => {
    const d = doc({ interfaces: [{ name: "eth0", networkId: U(10) }, { name: "eth0", networkId: U(10) }, { name: "a/b", networkId: U(10) }] });
    const p = paths(d);
    expect(p).toContainEqual(expect.stringMatching(/^apps\[0\]\.interfaces\[1\]\.name: two interfaces of this app are named eth0/));
    expect(p).toContainEqual(expect.stringMatching(/^apps\[0\]\.interfaces\[2\]\.name: "a\/b" is not an interface name/));
  });
});

describe("text that reaches the host", () => {
  test("a control character anywhere is refused at its field and held against its object; free text for the guest may hold newlines", () => {
    const d: any = doc();
    d.networkInstances[0].displayname = "lan\ndhcp-script=/x.sh";
    d.apps[0].userData = "#cloud-config\nruncmd:\n  - echo hi\n";
    d.configItems = [{ key: "timer.config.interval", value: "60\n" }];
    const problems = validateConfig(d, NO_ENV);
    expect(problems.map((p) => [p.path, p.objectKind, p.objectId])).toEqual([
      ["networkInstances[0].displayname", "networkInstance", U(10)],
      ["configItems[0].value", "device", ""],
    ]);
  });

  test("domain, static DNS names, mount directories, URLs", () => {
    const d: any = doc();
    d.networkInstances[0].ip.domain = "my lan";
    d.networkInstances[0].dns = [{ HostName: "printer lan", Address: ["10.1.0.9", "nope"] }];
    d.apps[0].volumeRefList[0].mountDir = "/data/../../etc";
    d.contentInfo[0].URL = "a:1 b";
    d.datastores[0].dpath = "x y";
    expect(validateConfig(d, NO_ENV).map((p) => p.path).sort()).toEqual(
      [
        "networkInstances[0].ip.domain",
        "networkInstances[0].dns[0].HostName",
        "networkInstances[0].dns[0].Address[1]",
        "apps[0].volumeRefList[0].mountDir",
        "contentInfo[0].URL",
        "datastores[0].dpath",
      ].sort(),
    );
  });
});

describe("resources", () => {
  const withMemory = (kib: number) => {
    const d = doc({ interfaces: [] });
    (d.apps[0] as any).fixedresources = { memory: kib, maxmem: kib, vcpus: 1 };
    return d;
  };
  const host: ValidationEnv = { ...ENV, hostMemoryKiB: () => 2 * 1024 * 1024 };

  test("memory above the device's is refused at the field, with both sizes", () => {
    expect(paths(withMemory(4 * 1024 * 1024), host)).toEqual(["apps[0].fixedresources.memory: memory 4194304 KiB (4096 MiB) is more than the device has (2048 MiB)"]);
  });

  test("a VNC display beyond 99 (TCP port 5900 + display) is refused at the field", () => {
    const d = withMemory(1024 * 1024);
    (d.apps[0] as any).fixedresources.vncDisplay = 100;
    expect(paths(d, host)).toEqual(["apps[0].fixedresources.vncDisplay: 100 is not a VNC display 0-99 (TCP port 5900 + display)"]);
    (d.apps[0] as any).fixedresources.vncDisplay = 99;
    expect(paths(d, host)).toEqual([]);
  });

  test("memory within the device's passes; a device that cannot tell checks nothing", () => {
    expect(paths(withMemory(1024 * 1024), host)).toEqual([]);
    expect(paths(withMemory(64 * 1024 * 1024), ENV)).toEqual([]);
    expect(paths(withMemory(64 * 1024 * 1024), NO_ENV)).toEqual([]);
  });
});
