// Finding 1 of the hardening issue: config text written into dnsmasq's files. A network instance's name, its
// domain or a static DNS name with a newline in it became a dnsmasq directive of its own (`dhcp-script=` runs a
// program as root). Validation refuses such a document with the field's path, through the real binary too; and
// the writer, given such values anyway, writes none of them as a line.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NO_ENV, validateConfig } from "../../src/config/validate.ts";
import { dnsmasqFiles, dnsmasqPaths } from "../../src/network/dnsmasq.ts";
import type { AppInterfaceSpec, NiSpec } from "../../src/network/model.ts";
import { sampleConfig } from "../support/configs.ts";
import { type Device, problemPaths, startDevice } from "./support.ts";

const INJECT = "lan\ndhcp-script=/x.sh\nleasefile-ro\n#";

function paths(doc: any): string[] {
  return validateConfig(doc, NO_ENV).map((p) => p.path);
}

describe("validation refuses config text that would become a line of a file", () => {
  test("a network instance's displayname with a newline", () => {
    const d: any = sampleConfig();
    d.networkInstances[0].displayname = INJECT;
    expect(paths(d)).toContain("networkInstances[0].displayname");
  });

  test("ip.domain with a newline, a space, or a character a host name does not have", () => {
    for (const domain of ["lan\naddress=/#/203.0.113.66", "my lan", "lan/x", "-lan", "a..b"]) {
      const d: any = sampleConfig();
      d.networkInstances[0].ip.domain = domain;
      expect(paths(d)).toContain("networkInstances[0].ip.domain");
    }
    const ok: any = sampleConfig();
    ok.networkInstances[0].ip.domain = "plant.example.lan";
    expect(paths(ok)).toEqual([]);
  });

  test("static DNS entries: the name is a host name, the addresses are addresses", () => {
    const d: any = sampleConfig();
    d.networkInstances[0].dns = [
      { HostName: "printer\naddress=/#/203.0.113.66", Address: ["198.51.100.200"] },
      { HostName: "ok.lan", Address: ["198.51.100.201\n203.0.113.66 evil"] },
    ];
    expect(paths(d)).toEqual(expect.arrayContaining(["networkInstances[0].dns[0].HostName", "networkInstances[0].dns[1].Address[0]"]));
  });

  test("no control character in any display name or other one-line field", () => {
    const d: any = sampleConfig();
    d.volumes[0].displayName = "web\u0000root";
    d.contentInfo[0].displayName = "busy\rbox";
    d.contentInfo[0].URL = "evebox/busybox:1\nINJECT";
    d.datastores[0].fqdn = "docker://127.0.0.1:5000\u2028x";
    d.apps[0].interfaces[0].acls[0].name = "web\n";
    expect(paths(d)).toEqual(
      expect.arrayContaining(["volumes[0].displayName", "contentInfo[0].displayName", "contentInfo[0].URL", "datastores[0].fqdn", "apps[0].interfaces[0].acls[0].name"]),
    );
  });
});

// ---- the writer, as the second line

const NI: NiSpec = {
  uuid: "2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a05",
  name: "plant-lan",
  kind: "local",
  bridge: "eb0123456789ab",
  subnet: "10.9.0.0/24",
  gateway: "10.9.0.1",
  dhcpRange: { start: "10.9.0.10", end: "10.9.0.100" },
  uplink: null,
  dnsServers: ["192.0.2.53"],
  staticDns: [{ host: "printer.lan", addrs: ["10.9.0.200"] }],
  domain: "plant.lan",
  mtu: 1500,
  flowlog: true,
  routes: [],
  hostDefaultVia: null,
  propagated: [],
  appDefaultVia: null,
  routeErrors: [],
  error: null,
};
const IFACE: AppInterfaceSpec = {
  appUuid: "3b4c5d6e-7f80-4912-8a3b-4c5d6e7f8a06",
  appName: "web",
  appKind: "container",
  index: 0,
  name: "eth0",
  niUuid: NI.uuid,
  niKind: "local",
  bridge: NI.bridge,
  hostIfname: "ev0123456789v0",
  mac: "02:00:00:00:00:01",
  ip: "10.9.0.10",
  prefix: 24,
  gateway: "10.9.0.1",
  uplinkIfname: null,
  uplinkLabel: null,
  acls: [],
  routes: [],
  defaultVia: "10.9.0.1",
};
const SETS = [["h_abc", "updates.example.com"]] as [string, string][];

/** Every way a hostile value can reach the writer: one field at a time. */
const MUTATIONS: [string, (ni: NiSpec, i: AppInterfaceSpec, sets: [string, string][]) => void][] = [
  ["name", (ni) => (ni.name = INJECT)],
  ["uuid", (ni) => (ni.uuid = INJECT)],
  ["domain", (ni) => (ni.domain = INJECT)],
  ["dnsServers", (ni) => (ni.dnsServers = ["192.0.2.1\ndhcp-script=/x.sh"])],
  ["staticDns.host", (ni) => (ni.staticDns = [{ host: INJECT, addrs: ["10.9.0.200"] }])],
  ["staticDns.addrs", (ni) => (ni.staticDns = [{ host: "ok.lan", addrs: ["10.9.0.200 ok.lan\ndhcp-script=/x.sh"] }])],
  ["hostSets.host", (_n, _i, sets) => (sets[0] = ["h_abc", "x.example.com/4#inet#evebox#h\ndhcp-script=/x.sh\n#"])],
  ["hostSets.set", (_n, _i, sets) => (sets[0] = ["h\ndhcp-script=/x.sh\n#", "x.example.com"])],
  ["appName", (_n, i) => (i.appName = INJECT)],
  ["mac", (_n, i) => (i.mac = "02:00:00:00:00:01\ndhcp-script=/x.sh")],
  ["ip", (_n, i) => (i.ip = "10.9.0.10,x\ndhcp-script=/x.sh")],
];

const DIRECTIVES = new Set(["interface", "bind-interfaces", "listen-address", "except-interface", "pid-file", "user", "no-hosts", "addn-hosts", "dhcp-hostsfile", "dhcp-leasefile", "dhcp-range", "dhcp-option", "dhcp-authoritative", "domain", "cache-size", "no-resolv", "domain-needed", "server", "nftset"]);

function files(mutate?: (ni: NiSpec, i: AppInterfaceSpec, sets: [string, string][]) => void) {
  const ni = structuredClone(NI);
  const i = structuredClone(IFACE);
  const sets = structuredClone(SETS);
  mutate?.(ni, i, sets);
  return dnsmasqFiles(ni, [i], new Map(sets), dnsmasqPaths("/run/evebox-test/network", ni.bridge));
}

describe("the dnsmasq writer never writes a field as a line of its own", () => {
  const benign = files();
  const lines = (s: string) => s.split("\n");

  for (const [field, mutate] of MUTATIONS) {
    test(`a newline in ${field}`, () => {
      let f;
      try {
        f = files(mutate);
      } catch (e) {
        // Refusing to write at all is as good as writing nothing of it.
        expect((e as Error).message).toMatch(/dnsmasq/);
        return;
      }
      for (const text of [f.conf, f.hosts, f.dhcpHosts]) {
        // The hostile text may survive as part of a comment or a DNS label; never as a directive of its own.
        for (const l of lines(text)) expect(l).not.toMatch(/^\s*(dhcp-script|leasefile-ro|address|conf-file|conf-dir)\b/);
        expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
      }
      // No more lines than a benign document makes, and each conf line is one of the directives evebox writes.
      expect(lines(f.conf).length).toBeLessThanOrEqual(lines(benign.conf).length);
      expect(lines(f.hosts).length).toBeLessThanOrEqual(lines(benign.hosts).length);
      expect(lines(f.dhcpHosts).length).toBeLessThanOrEqual(lines(benign.dhcpHosts).length);
      for (const l of lines(f.conf)) if (l && !l.startsWith("#")) expect(DIRECTIVES.has(l.split("=")[0]!)).toBe(true);
      for (const l of lines(f.hosts)) if (l) expect(l).toMatch(/^[0-9a-f.:]+ [A-Za-z0-9_.-]+$/);
      for (const l of lines(f.dhcpHosts)) if (l) expect(l).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2},[0-9.]+,[a-z0-9-]+,infinite$/);
    });
  }

  test("what it writes is a configuration the real dnsmasq accepts", async () => {
    const dir = mkdtempSync(join(tmpdir(), "evebox-dnsmasq-"));
    try {
      for (const [field, mutate] of [["benign", undefined] as const, ...MUTATIONS.slice(0, 3)]) {
        const conf = join(dir, "test.conf");
        writeFileSync(conf, files(mutate).conf);
        const p = Bun.spawnSync(["dnsmasq", "--test", `--conf-file=${conf}`], { stdout: "pipe", stderr: "pipe" });
        expect(`${field}: ${p.exitCode} ${p.stderr.toString()}`).toBe(`${field}: 0 ${p.stderr.toString()}`);
        expect(p.stderr.toString() + p.stdout.toString()).toMatch(/syntax check OK/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---- the real binary

describe("PUT /api/v1/config with injected text, through the compiled binary", () => {
  let dev: Device;

  beforeAll(async () => {
    dev = await startDevice();
    const first = await dev.put(sampleConfig());
    expect(first.status).toBe(201);
  }, 300_000);

  afterAll(async () => {
    await dev?.stop();
  });

  test("a displayname with dnsmasq directives is refused with its path, also as a dry run; the running version stays", async () => {
    const before = await dev.version();
    expect(before).toBe(1);
    const d: any = sampleConfig({ version: "2" });
    d.networkInstances[0].displayname = INJECT;
    for (const q of ["?dryRun=1", ""]) {
      const r = await dev.put(d, q);
      expect(r.status).toBe(400);
      expect(problemPaths(r.body)).toContain("networkInstances[0].displayname");
      expect(r.body.problems.find((p: any) => p.path === "networkInstances[0].displayname").message).toMatch(/control character/);
    }
    expect(await dev.version()).toBe(before);
  });

  test("ip.domain and static DNS names with newlines are refused with their paths; the running version stays", async () => {
    const d: any = sampleConfig({ version: "3" });
    d.networkInstances[0].ip.domain = "lan\naddress=/#/203.0.113.66";
    d.networkInstances[0].dns = [{ HostName: "printer\naddress=/#/203.0.113.66", Address: ["198.51.100.200"] }];
    for (const q of ["?dryRun=1", ""]) {
      const r = await dev.put(d, q);
      expect(r.status).toBe(400);
      expect(problemPaths(r.body)).toEqual(expect.arrayContaining(["networkInstances[0].ip.domain", "networkInstances[0].dns[0].HostName"]));
    }
    expect(await dev.version()).toBe(1);
    const cur = await dev.api.json("GET", "/api/v1/config");
    expect(cur.body.networkInstances[0].displayname).toBe("plant-lan");
  });
});
