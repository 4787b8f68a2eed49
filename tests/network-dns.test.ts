// The network instance's DNS on an offline device, with the real dnsmasq in a network namespace: the config
// evebox writes (src/network/dnsmasq.ts), an upstream server that never answers (its packets vanish into a bridge
// without ports, as on a site whose uplink is down). Another app's name must be answered at once for both A and AAAA: a
// client that connects by name asks both, and an AAAA forwarded upstream held every connection ~15 s.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dnsmasqFiles, dnsmasqPaths } from "../src/network/dnsmasq.ts";
import type { AppInterfaceSpec, NiSpec } from "../src/network/model.ts";
import { Netns } from "./support/netns.ts";
import { waitFor } from "./support/wait.ts";

const BRIDGE = "ebdns0test0001";
const NI: NiSpec = {
  uuid: "2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a77",
  name: "offline-lan",
  kind: "local",
  bridge: BRIDGE,
  subnet: "198.51.100.0/24",
  gateway: "198.51.100.1",
  dhcpRange: { start: "198.51.100.10", end: "198.51.100.100" },
  uplink: null,
  dnsServers: ["203.0.113.53"],
  staticDns: [],
  domain: "",
  mtu: 1500,
  flowlog: false,
  routes: [],
  hostDefaultVia: null,
  propagated: [],
  appDefaultVia: null,
  routeErrors: [],
  error: null,
};
const BROKER: AppInterfaceSpec = {
  appUuid: "3b4c5d6e-7f80-4912-8a3b-4c5d6e7f8a77",
  appName: "broker",
  appKind: "container",
  index: 0,
  name: "eth0",
  niUuid: NI.uuid,
  niKind: "local",
  bridge: BRIDGE,
  hostIfname: "ev0123456789v7",
  mac: "02:00:00:00:00:77",
  ip: "198.51.100.20",
  prefix: 24,
  gateway: NI.gateway,
  uplinkIfname: null,
  uplinkLabel: null,
  acls: [],
  routes: [],
  defaultVia: NI.gateway,
};

let ns: Netns;
let dir: string;
const canRun = process.getuid?.() === 0 && Bun.which("dnsmasq") !== null && Bun.which("python3") !== null;

/** One query from inside the namespace: [rcode, answer count, seconds]; rcode "timeout" after 5 s. */
async function ask(name: string, qtype: "A" | "AAAA"): Promise<{ rcode: string; answers: number; seconds: number }> {
  const py = `
import socket, struct, sys, time
name, qtype = sys.argv[1], {"A": 1, "AAAA": 28}[sys.argv[2]]
q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0" + struct.pack(">HH", qtype, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
t = time.monotonic(); s.sendto(q, ("${NI.gateway}", 53))
try:
    r = s.recv(512); print(r[3] & 15, struct.unpack(">H", r[6:8])[0], time.monotonic() - t)
except socket.timeout:
    print("timeout", 0, time.monotonic() - t)
`;
  const out = (await ns.exec(["python3", "-c", py, name, qtype])).out.trim().split(/\s+/);
  return { rcode: out[0]!, answers: Number(out[1]), seconds: Number(out[2]) };
}

beforeAll(async () => {
  if (!canRun) return;
  ns = await Netns.create("dns");
  // The instance's bridge with its address; the upstream's route leads into a second bridge without ports, where
  // packets vanish without an answer or an error (this kernel has no dummy links).
  await ns.ip("link", "add", BRIDGE, "type", "bridge");
  await ns.ip("addr", "add", `${NI.gateway}/24`, "dev", BRIDGE);
  await ns.ip("link", "set", BRIDGE, "up");
  await ns.ip("link", "add", "void0", "type", "bridge");
  await ns.ip("addr", "add", "192.0.2.2/24", "dev", "void0");
  await ns.ip("link", "set", "void0", "up");
  await ns.ip("route", "add", "default", "via", "192.0.2.1", "dev", "void0");
  dir = mkdtempSync(join(tmpdir(), "evebox-dns-"));
  const p = dnsmasqPaths(dir, BRIDGE);
  mkdirSync(p.dir, { recursive: true });
  const f = dnsmasqFiles(NI, [BROKER], new Map(), p);
  writeFileSync(p.conf, f.conf);
  writeFileSync(p.hosts, f.hosts);
  writeFileSync(p.dhcpHosts, f.dhcpHosts);
  ns.spawn(["dnsmasq", "--keep-in-foreground", `--conf-file=${p.conf}`]);
  await waitFor("dnsmasq to answer", async () => ((await ask("gateway", "A")).answers === 1 ? true : undefined), 10_000);
}, 30_000);

afterAll(async () => {
  await ns?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test.skipIf(!canRun)("another app's name: its A record and an empty AAAA answer at once, nothing waits for the upstream", async () => {
  const a = await ask("broker", "A");
  expect(a).toMatchObject({ rcode: "0", answers: 1 });
  const aaaa = await ask("broker", "AAAA");
  // Answered by dnsmasq itself (no address of that kind); forwarded, it would get no answer within the 5 s asked.
  expect(aaaa.rcode).not.toBe("timeout");
  expect(aaaa.answers).toBe(0);
}, 20_000);

test.skipIf(!canRun)("a name of no app and no dot is not sent upstream either: answered at once", async () => {
  const r = await ask("nosuchapp", "A");
  expect(r.rcode).not.toBe("timeout");
  expect(r.answers).toBe(0);
}, 20_000);
