// Finding 15 of the hardening issue: a stock Docker engine on the host. dockerd (iptables on, as Debian starts it;
// scripts/provision.sh runs it so, in the host namespace) sets `ip filter` FORWARD's policy to DROP, which drops
// a network instance's forwarded traffic whatever evebox's own tables say. evebox's network part, run here in
// the HOST namespace next to that dockerd, must add accept rules for its bridge to Docker's DOCKER-USER chain
// (comment `evebox`), keep them while the instance exists, and remove them with it.
//
//   [container]  a busybox container (network none) on the instance, attached by evebox's veth, 198.18.77.x
//        │ NI bridge eb…  198.18.77.1/24  (host namespace; NAT to the uplink)
//   [host]  ebt<run>u 198.18.78.2/24 ── veth ── [ebt<run>-up]  u0 198.18.78.1/24: httpd :80, nc :7001
//
// Test nets 198.18.77.0/24 and 198.18.78.0/24 (RFC 2544), clear of the machine's uplink. The second part runs in a
// namespace of its own whose FORWARD policy drops without any DOCKER-USER chain: the instance is refused there,
// with the reason on its status.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { planGraph } from "../../src/network/graph.ts";
import { MODIFIABLE } from "../../src/network/items.ts";
import type { DesiredNetwork } from "../../src/network/manager.ts";
import { NetworkManager } from "../../src/network/manager.ts";
import { readSysctl, writeSysctl } from "../../src/network/sys.ts";
import { Store } from "../../src/store/store.ts";
import { ensureBusyboxImage, testDocker, testLabels } from "../support/docker.ts";
import { waitFor } from "../support/wait.ts";
import { type NsDevice, startDeviceIn, unixApi } from "../support/netdevice.ts";
import { busybox, Netns, RUN, webRoot } from "../support/netns.ts";
import { sh } from "../support/run.ts";

const U = (n: number) => `d0c50000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
const NI = U(1);
const APP = U(2);
const UPLINK = `ebt${RUN}u`;
/** A bridge name no NI has (no uuid hashes to it in this test): rules for it stand for an earlier run's. */
const STALE = "eb0000dead0000";

function doc(withNi: boolean) {
  if (!withNi) return { networkInstances: [], apps: [] };
  return {
    datastores: [{ id: U(10), dType: "DsContainerRegistry", fqdn: "docker://registry.invalid" }],
    contentInfo: [{ uuid: U(11), dsId: U(10), URL: "busybox:1", iformat: "CONTAINER", displayName: "busybox" }],
    volumes: [{ uuid: U(12), origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: U(11) } }],
    networkInstances: [
      {
        uuidandversion: { uuid: NI, version: "1" },
        displayname: "docker-host-lan",
        instType: "ZnetInstLocal",
        activate: true,
        port: { name: UPLINK },
        ip: { subnet: "198.18.77.0/24", gateway: "198.18.77.1", dhcpRange: { start: "198.18.77.10", end: "198.18.77.20" }, dns: ["198.18.78.1"] },
      },
    ],
    apps: [
      {
        uuidandversion: { uuid: APP, version: "1" },
        displayname: "probe",
        activate: true,
        volumeRefList: [{ uuid: U(12) }],
        interfaces: [{ name: "eth0", networkId: NI, acls: [{ id: 1, matches: [{ type: "ip", value: "0.0.0.0/0" }] }] }],
      },
    ],
  };
}

const iptables = async (...args: string[]) => (await sh(["iptables", "-w", "5", ...args])).out;
const ourRules = async () => (await iptables("-S", "DOCKER-USER")).split("\n").filter((l) => l.includes("--comment evebox"));

describe("a network instance next to a stock Docker engine (host namespace)", () => {
  let dir: string;
  let store: Store;
  let nm: NetworkManager;
  let up: Netns;
  let containerId = "";
  let bridge = "";
  const touched = new Set<string>(); // item ids of this test's network (nothing else of the host is acted on)
  const sysctls = ["net/netfilter/nf_conntrack_acct", "net/netfilter/nf_conntrack_timestamp"].map((k) => [k, readSysctl(k)] as const);

  /** One reconcile pass of the network part, as the reconciler does it, limited to this test's items. */
  async function reconcile(d: unknown): Promise<DesiredNetwork> {
    const obs = await nm.observe();
    const desired = nm.desired(d as Record<string, unknown>, [], obs.facts);
    for (const i of desired.items) touched.add(i.id);
    const mine = (id: string) => touched.has(id) || (!!bridge && id.includes(bridge));
    const ops = planGraph(desired.items, obs.items, (t) => MODIFIABLE.has(t)).ops.filter((o) => mine(o.item.id));
    const results = await nm.applyOps(ops, desired, obs.items);
    const failed = results.filter((r) => r.error);
    if (failed.length) throw new Error(failed.map((r) => `${r.op.op} ${r.op.item.id}: ${r.error}`).join("; "));
    return desired;
  }

  /** What the container can reach through the host's FORWARD chain; each probe names itself when it fails. */
  async function probes(timeoutSec = 5): Promise<{ passed: number; of: number; failed: string[] }> {
    const list: [string, string][] = [
      ["ping the uplink peer", "ping -c 1 -W 1 198.18.78.1"],
      ["tcp to the uplink peer", "nc -w 2 198.18.78.1 7001 </dev/null"],
      ["http from the uplink peer", "wget -q -O - http://198.18.78.1/ | grep -q hello-through-docker"],
      ["the uplink peer sees the NAT address", "wget -q -O - http://198.18.78.1/cgi-bin/ip | grep -qx 198.18.78.2"],
    ];
    const failed: string[] = [];
    await Promise.all(list.map(async ([what, cmd]) => {
      const r = await sh(["docker", "exec", containerId, "/bin/busybox", "timeout", String(timeoutSec), "/bin/busybox", "sh", "-c", cmd.replace(/\b(ping|nc|wget|grep)\b/g, "/bin/busybox $1")], { ok: [1, 2, 124, 127, 137, 143] });
      if (r.code !== 0) failed.push(`${what} (${r.code}: ${(r.out + r.err).trim().slice(0, 200)})`);
    }));
    return { passed: list.length - failed.length, of: list.length, failed };
  }

  beforeAll(async () => {
    // The host must be what this test is about: Docker's FORWARD policy DROP and its DOCKER-USER chain.
    const forward = await iptables("-S", "FORWARD");
    if (!forward.includes("-P FORWARD DROP") || !(await iptables("-S")).includes("-N DOCKER-USER")) {
      throw new Error(`this host's dockerd does not manage iptables (FORWARD: ${forward.trim()}); scripts/provision.sh starts it as Debian does`);
    }
    const image = await ensureBusyboxImage();
    dir = mkdtempSync(join(tmpdir(), "evebox-dockerfwd-"));
    store = Store.open(join(dir, "evebox.db"));
    nm = new NetworkManager({ runDir: join(dir, "run", "network"), store, log: () => {} });

    up = await Netns.create("up");
    const tmp = `ebt${RUN}t`;
    await sh(["ip", "link", "add", UPLINK, "type", "veth", "peer", "name", tmp]);
    await sh(["ip", "link", "set", tmp, "netns", up.name]);
    await up.ip("link", "set", tmp, "name", "u0");
    await up.ip("addr", "add", "198.18.78.1/24", "dev", "u0");
    await up.ip("link", "set", "u0", "up");
    await sh(["ip", "addr", "add", "198.18.78.2/24", "dev", UPLINK]);
    await sh(["ip", "link", "set", UPLINK, "up"]);
    const www = webRoot(join(dir, "www"), "hello-through-docker\n");
    const bb = busybox();
    up.spawn([bb, "httpd", "-f", "-p", "198.18.78.1:80", "-h", www]);
    up.spawn([bb, "nc", "-ll", "-p", "7001", "-e", "/bin/true"]);

    const c = await testDocker().createContainer({ Image: image, Cmd: ["/bin/busybox", "sleep", "600"], Labels: testLabels(), HostConfig: { NetworkMode: "none" } });
    await c.start();
    containerId = c.id;
  }, 120_000);

  afterAll(async () => {
    // Everything this test built goes; the host keeps nothing of it (bridge, rules, sysctls, links).
    if (nm) await reconcile(doc(false)).catch(() => undefined);
    // Whatever a failed run may have left of its own rules (by the names only this test uses).
    for (const br of [STALE, bridge].filter(Boolean)) {
      for (const d of ["-i", "-o"]) while ((await sh(["iptables", "-w", "5", "-D", "DOCKER-USER", d, br, "-m", "comment", "--comment", "evebox", "-j", "ACCEPT"], { ok: [1, 2] })).code === 0);
    }
    if (containerId) await testDocker().getContainer(containerId).remove({ force: true }).catch(() => undefined);
    await sh(["ip", "link", "del", UPLINK], { ok: [1] }).catch(() => undefined);
    await up?.destroy();
    for (const [k, v] of sysctls) if (v !== null && readSysctl(k) !== v) writeSysctl(k, v);
    store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  test("its forwarded traffic passes Docker's FORWARD DROP: accept rules for its bridge in DOCKER-USER while it exists, gone after", async () => {
    const before = await ourRules();
    const d = await reconcile(doc(true));
    bridge = d.model.instances[0]!.bridge;
    const iface = d.model.interfaces[0]!;
    const pid = (await testDocker().getContainer(containerId).inspect()).State.Pid;
    await nm.attachContainer([iface], pid, "test@1");
    await reconcile(doc(true)); // a second pass changes nothing (idempotent)

    const p = await probes();
    console.log(`docker-forward: ${p.passed} of ${p.of} connectivity probes pass next to Docker's FORWARD DROP`);
    expect(p.failed).toEqual([]);
    const rules = await ourRules();
    expect(rules.filter((l) => l.includes(bridge)).sort()).toEqual([
      `-A DOCKER-USER -i ${bridge} -m comment --comment evebox -j ACCEPT`,
      `-A DOCKER-USER -o ${bridge} -m comment --comment evebox -j ACCEPT`,
    ]);
    // Before Docker's own RETURN, so that they are ever reached.
    const chain = (await iptables("-S", "DOCKER-USER")).split("\n").filter((l) => l.startsWith("-A"));
    expect(chain.findIndex((l) => l.includes(bridge))).toBeLessThan(chain.findIndex((l) => l === "-A DOCKER-USER -j RETURN"));
    // The policy is still Docker's.
    expect(await iptables("-S", "FORWARD")).toContain("-P FORWARD DROP");

    const states = nm.instanceStates(d, await nm.observe());
    expect(states[0]).toMatchObject({ state: "ONLINE", error: null });

    // Without them (someone flushed them), Docker's policy drops the traffic again; the next pass puts them back.
    for (const dir of ["-i", "-o"]) await iptables("-D", "DOCKER-USER", dir, bridge, "-m", "comment", "--comment", "evebox", "-j", "ACCEPT");
    const without = await probes(2);
    console.log(`docker-forward: ${without.passed} of ${without.of} connectivity probes pass without them`);
    expect(without.passed).toBe(0);
    await reconcile(doc(true));
    expect((await ourRules()).filter((l) => l.includes(bridge)).length).toBe(2);
    expect((await probes()).failed).toEqual([]);

    // The instance goes: its rules go with its bridge; nothing else in DOCKER-USER changed.
    await nm.detach([iface.hostIfname]);
    await reconcile(doc(false));
    expect((await ourRules()).filter((l) => l.includes(bridge))).toEqual([]);
    expect(await ourRules()).toEqual(before.filter((l) => !l.includes(bridge)));
    expect((await sh(["ip", "link", "show", bridge], { ok: [1] })).code).toBe(1);
  }, 120_000);

  test("rules of a bridge that is gone (left by an earlier run) are removed at the next pass", async () => {
    const stale = STALE;
    for (const dir of ["-i", "-o"]) await iptables("-I", "DOCKER-USER", "1", dir, stale, "-m", "comment", "--comment", "evebox", "-j", "ACCEPT");
    touched.add(`dockeruser:${stale}`);
    await reconcile(doc(false));
    expect((await ourRules()).filter((l) => l.includes(stale))).toEqual([]);
  }, 60_000);
});

describe("where the FORWARD policy drops and there is no DOCKER-USER chain", () => {
  let ns: Netns;
  let dataDir: string;
  let device: NsDevice | undefined;

  beforeAll(async () => {
    ns = await Netns.create("nodu");
    await ns.exec(["iptables", "-P", "FORWARD", "DROP"]); // this namespace's own filter table; no Docker here
    await ns.ip("link", "add", "up0", "type", "veth", "peer", "name", "up1");
    await ns.ip("addr", "add", "198.18.79.2/24", "dev", "up0");
    await ns.ip("link", "set", "up0", "up");
    await ns.ip("link", "set", "up1", "up");
    dataDir = mkdtempSync(join(tmpdir(), "evebox-nodu-"));
    device = await startDeviceIn(ns, dataDir);
  }, 120_000);
  afterAll(async () => {
    if (device) {
      device.proc.kill("SIGTERM");
      await device.proc.exited;
    }
    await ns?.destroy();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  test("the instance is refused: ERROR with the reason on its status, nothing built past its bridge", async () => {
    const d: any = {
      networkInstances: [
        { uuidandversion: { uuid: NI, version: "1" }, displayname: "lan", instType: "ZnetInstLocal", activate: true, port: { name: "up0" }, ip: { subnet: "198.18.80.0/24", gateway: "198.18.80.1", dhcpRange: { start: "198.18.80.10", end: "198.18.80.20" } } },
      ],
    };
    const r = await unixApi(device!.sock, "PUT", "/api/v1/config", d);
    expect([200, 201]).toContain(r.status);
    const ni = await waitFor("the NI in ERROR", async () => (await unixApi(device!.sock, "GET", "/api/v1/status")).body?.networkInstances?.find((n: any) => n.uuid === NI && n.state === "ERROR"), 30_000);
    expect(ni.error).toContain("FORWARD policy");
    expect(ni.error).toContain("no DOCKER-USER chain");
    // Not usable, so not half-built: no gateway address, no dnsmasq.
    const bridgeName = ni.bridge ?? ni.data?.bridge;
    expect(await ns.ip("-4", "-o", "addr", "show")).not.toContain("198.18.80.1");
    expect(bridgeName).toMatch(/^eb[0-9a-f]{12}$/);
    // The console's API says the same (GET /networks).
    const nets = (await unixApi(device!.sock, "GET", "/api/v1/networks")).body;
    expect(JSON.stringify(nets)).toContain("no DOCKER-USER chain");
  }, 60_000);
});
