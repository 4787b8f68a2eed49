// Network instances and the app firewall end to end, on real kernel networking inside namespaces:
//
//   [uplink ns]  lan0 bridge 203.0.113.1/24: dnsmasq (DNS for server.test, DHCP .100-.150), httpd :80,
//                a listener on :22, a stream sink on :9000
//        │ u-dev                          │ u-sw
//        │ uplink0 203.0.113.2/24         │ swport0 (no address)
//   [device ns]  evebox (the built binary, or EVEBOX_TEST_BINARY) with a Local NI 198.51.100.0/24 NATed to
//                uplink0 and a Switch NI on swport0; its app containers are Docker's, each in its own
//                namespace, attached by veth.
//
// The test talks to evebox over its unix socket (the console's TCP port lives inside the device namespace).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { chromium } from "playwright-core";
import { CHROMIUM } from "./support/browser.ts";
import { ensureBusyboxImage, testDocker } from "./support/docker.ts";
import { waitFor } from "./support/wait.ts";
import { ROOT } from "./support/evebox.ts";
import { type NsDevice, startDeviceIn, unixApi } from "./support/netdevice.ts";
import { busybox, Netns, pump, uplinkLocalNi, vethBetween, webRoot } from "./support/netns.ts";
import { run, sh } from "./support/run.ts";
import { startRegistry, type TestRegistry } from "./support/registry.ts";

const U = (n: number) => `6e7e0000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
const DS = U(1);
const CT = U(2);
const NI_LOCAL = U(3);
const NI_SWITCH = U(4);
const APPS = { web: U(10), keeper: U(11), sw: U(12) };
const VOLS = { web: U(20), keeper: U(21), sw: U(22) };

let up: Netns;
let dev: Netns;
let registry: TestRegistry;
let digest: string;
let dataDir: string;
let evebox: NsDevice;
let sink: Subprocess<"ignore", "pipe", "pipe">;
let sinkText = "";

const SERVE = "sh -c 'trap \"exit 0\" TERM; echo hello-from-app > /tmp/index.html; httpd -p 80 -h /tmp; sleep 3600 & wait'";

function doc(extra: { webAcls?: any[] } = {}) {
  const app = (name: keyof typeof APPS, networkId: string, acls: any[]) => ({
    uuidandversion: { uuid: APPS[name], version: "1" },
    displayname: name,
    activate: true,
    fixedresources: { memory: 65536, vcpus: 1 },
    volumeRefList: [{ uuid: VOLS[name] }],
    interfaces: [{ name: "eth0", networkId, acls }],
    userData: Buffer.from(`EVE_ECO_CMD=${SERVE}`).toString("base64"),
  });
  return {
    datastores: [{ id: DS, dType: "DsContainerRegistry", fqdn: `docker://${registry.host}` }],
    contentInfo: [{ uuid: CT, dsId: DS, URL: "evebox/busybox:net", iformat: "CONTAINER", sha256: digest, displayName: "busybox" }],
    volumes: Object.values(VOLS).map((uuid) => ({ uuid, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: CT } })),
    networkInstances: [
      uplinkLocalNi(NI_LOCAL, { dns: [{ HostName: "static.test", Address: ["203.0.113.77"] }] }),
      { uuidandversion: { uuid: NI_SWITCH, version: "1" }, displayname: "plant-floor", instType: "ZnetInstSwitch", activate: true, port: { name: "swport0" } },
    ],
    apps: [
      // Only tcp/80 to the server, a portmap 8080 → 80, and ping limited to 2 per second.
      app(
        "web",
        NI_LOCAL,
        extra.webAcls ?? [
          { id: 1, name: "web to server", matches: [{ type: "ip", value: "203.0.113.1" }, { type: "protocol", value: "tcp" }, { type: "fport", value: "80" }] },
          { id: 2, name: "console", matches: [{ type: "protocol", value: "tcp" }, { type: "lport", value: "8080" }], actions: [{ portmap: true, appPort: 80 }] },
          { id: 3, name: "ping", matches: [{ type: "protocol", value: "icmp" }], actions: [{ limit: true, limitrate: 2, limitunit: "s", limitburst: 2 }] },
          { id: 4, name: "by name", matches: [{ type: "host", value: "server.test" }, { type: "protocol", value: "tcp" }, { type: "fport", value: "2222" }] },
        ],
      ),
      // Everything but ssh to the server: a drop before a broad allow (first match wins).
      app("keeper", NI_LOCAL, [
        { id: 1, matches: [{ type: "ip", value: "203.0.113.1" }, { type: "protocol", value: "tcp" }, { type: "fport", value: "22" }], actions: [{ drop: true }] },
        { id: 2, matches: [{ type: "ip", value: "0.0.0.0/0" }] },
      ]),
      app("sw", NI_SWITCH, [{ id: 1, matches: [{ type: "ip", value: "203.0.113.0/24" }] }]),
    ],
  };
}

const api = (method: string, path: string, body?: unknown) => unixApi(evebox.sock, method, path, body);
const startDevice = () => startDeviceIn(dev, dataDir);

async function containerOf(name: keyof typeof APPS): Promise<string> {
  return waitFor(`container of ${name}`, async () => {
    const cs = await testDocker().listContainers({ filters: { label: [`evebox.app=${APPS[name]}`] } });
    return cs[0]?.State === "running" ? cs[0].Id : undefined;
  }, 60_000);
}

async function inApp(name: keyof typeof APPS, cmd: string, timeoutSec = 4): Promise<{ code: number; out: string }> {
  const id = await containerOf(name);
  const r = await sh(["docker", "exec", id, "/bin/busybox", "timeout", String(timeoutSec), "/bin/busybox", "sh", "-c", cmd], { ok: [1, 2, 124, 127, 137, 143] });
  return { code: r.code, out: r.out + r.err };
}

async function addressOf(name: keyof typeof APPS): Promise<string> {
  return waitFor(`${name}'s eth0 address`, async () => {
    const r = await inApp(name, "/bin/busybox ip -4 -o addr show dev eth0");
    return r.out.match(/inet (\d+\.\d+\.\d+\.\d+)/)?.[1];
  }, 60_000);
}

beforeAll(async () => {
  const image = await ensureBusyboxImage();
  registry = await startRegistry();
  digest = (await registry.push(image, "evebox/busybox:net")).replace(/^sha256:/, "");
  up = await Netns.create("up");
  dev = await Netns.create("dev");
  await up.ip("link", "add", "lan0", "type", "bridge");
  await up.ip("addr", "add", "203.0.113.1/24", "dev", "lan0");
  await up.ip("link", "set", "lan0", "up");
  await vethBetween(dev, "uplink0", up, "u-dev");
  await vethBetween(dev, "swport0", up, "u-sw");
  await up.ip("link", "set", "u-dev", "master", "lan0");
  await up.ip("link", "set", "u-sw", "master", "lan0");
  await dev.ip("addr", "add", "203.0.113.2/24", "dev", "uplink0");
  await dev.ip("route", "add", "default", "via", "203.0.113.1");

  dataDir = mkdtempSync(join(tmpdir(), "evebox-net-"));
  const www = webRoot(join(dataDir, "..", `${dataDir.split("/").pop()}-www`), "hello-from-server\n");
  const bb = busybox();
  up.spawn(["dnsmasq", "-k", "--conf-file=/dev/null", "--interface=lan0", "--bind-interfaces", "--no-resolv", "--no-hosts", "--user=root", "--pid-file=",
    "--address=/server.test/203.0.113.1", `--dhcp-range=203.0.113.100,203.0.113.150,255.255.255.0,1h`, `--dhcp-leasefile=${join(www, "leases")}`]);
  up.spawn([bb, "httpd", "-f", "-p", "203.0.113.1:80", "-h", www]);
  up.spawn([bb, "nc", "-ll", "-p", "22", "-e", "/bin/true"]);
  up.spawn([bb, "nc", "-ll", "-p", "2222", "-e", "/bin/true"]);
  sink = up.spawn([bb, "nc", "-l", "-p", "9000"], { stdin: "pipe" });
  pump(sink.stdout, (t) => (sinkText += t));

  evebox = await startDevice();
  const r = await api("PUT", "/api/v1/config", doc());
  if (r.status !== 201 && r.status !== 200) throw new Error(`PUT /config: ${r.status} ${JSON.stringify(r.body)}`);
}, 180_000);

afterAll(async () => {
  if (evebox) {
    await api("PUT", "/api/v1/config", { apps: [], networkInstances: [] }).catch(() => undefined);
    await waitFor("apps removed", async () => ((await testDocker().listContainers({ all: true, filters: { label: Object.values(APPS).map((u) => `evebox.app=${u}`) } })).length === 0 ? true : undefined), 60_000).catch(() => undefined);
    for (const uuid of Object.values(APPS)) {
      for (const c of await testDocker().listContainers({ all: true, filters: { label: [`evebox.app=${uuid}`] } })) await testDocker().getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    }
    evebox.proc.kill("SIGTERM");
    await evebox.proc.exited;
  }
  await dev?.destroy();
  await up?.destroy();
  await registry?.stop();
  if (dataDir) {
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(`${dataDir}-www`, { recursive: true, force: true });
  }
}, 120_000);

describe("a Local network instance", () => {
  test("is built: bridge, gateway address, dnsmasq, firewall; shown ONLINE", async () => {
    const ni = await waitFor("the Local NI ONLINE", async () => {
      const s = (await api("GET", "/api/v1/status")).body;
      return s?.networkInstances?.find((n: any) => n.uuid === NI_LOCAL && n.state === "ONLINE");
    }, 90_000);
    expect(ni.bridge).toMatch(/^eb[0-9a-f]{12}$/);
    expect(await dev.ip("-4", "-o", "addr", "show", "dev", ni.bridge)).toContain("198.51.100.1/24");
    expect((await dev.exec(["nft", "list", "chain", "inet", "evebox", "version"])).out).toMatch(/evebox [0-9a-f]+/);
  }, 120_000);

  test("an app gets its reserved address by DHCP, and DNS answers (its own name, static entries, upstream)", async () => {
    const ip = await addressOf("web");
    expect(ip).toMatch(/^198\.51\.100\.(1\d|[2-5]\d|60)$/);
    // The container is configured statically; its DHCP server hands out the very same address.
    const lease = await inApp("web", "/bin/busybox udhcpc -i eth0 -q -n -t 3 -T 1 -s /bin/true 2>&1", 10);
    expect(lease.out).toContain(`lease of ${ip} obtained`);
    expect((await inApp("web", "/bin/busybox nslookup server.test")).out).toContain("203.0.113.1");
    expect((await inApp("web", "/bin/busybox nslookup static.test")).out).toContain("203.0.113.77");
    expect((await inApp("web", "/bin/busybox nslookup keeper")).out).toContain(await addressOf("keeper"));
  }, 120_000);

  test("an app reaches the server through NAT (the server sees the device's uplink address)", async () => {
    const r = await inApp("web", "/bin/busybox wget -q -O - http://203.0.113.1/cgi-bin/ip");
    expect(r.out.trim()).toBe("203.0.113.2");
  }, 60_000);

  test("an ACL allowing only tcp/80 to the server: 80 connects, 22 does not", async () => {
    expect((await inApp("web", "/bin/busybox nc -w 2 203.0.113.1 80 </dev/null")).code).toBe(0);
    expect((await inApp("web", "/bin/busybox nc -w 2 203.0.113.1 22 </dev/null", 3)).code).not.toBe(0);
    // Drop works on a Local instance, before a broader allow (first match wins).
    expect((await inApp("keeper", "/bin/busybox nc -w 2 203.0.113.1 80 </dev/null")).code).toBe(0);
    expect((await inApp("keeper", "/bin/busybox nc -w 2 203.0.113.1 22 </dev/null", 3)).code).not.toBe(0);
  }, 60_000);

  test("a host ACL matches the addresses DNS gave for the name (dnsmasq fills the firewall's set)", async () => {
    // The earlier lookups filled the name's set; empty it, as before any lookup: then nothing matches.
    const set = (await dev.exec(["nft", "list", "sets", "inet"])).out.match(/set (h_[0-9a-f]+) \{[^}]*dns:server\.test/)![1]!;
    await dev.exec(["nft", "flush", "set", "inet", "evebox", set]);
    expect((await inApp("web", "/bin/busybox nc -w 2 203.0.113.1 2222 </dev/null", 3)).code).not.toBe(0);
    // A lookup through the instance's DNS puts the answer into the set: by name, then by address, it connects.
    expect((await inApp("web", "/bin/busybox nc -w 2 server.test 2222 </dev/null", 3)).code).toBe(0);
    expect((await inApp("web", "/bin/busybox nc -w 2 203.0.113.1 2222 </dev/null", 3)).code).toBe(0);
    expect((await dev.exec(["nft", "list", "set", "inet", "evebox", set])).out).toContain("203.0.113.1");
  }, 30_000);

  test("a portmap from the uplink's port 8080 to the app's 80 works from the uplink side", async () => {
    const r = await up.exec([busybox(), "timeout", "5", busybox(), "wget", "-q", "-O", "-", "http://203.0.113.2:8080/"], { ok: [1, 124] });
    expect(r.out).toContain("hello-from-app");
  }, 30_000);

  test("a limit action visibly limits (ping at 20/s through a 2/s limit)", async () => {
    const r = await inApp("web", "/bin/busybox ping -c 20 -i 0.05 -W 1 203.0.113.1 2>&1", 8);
    const received = Number(r.out.match(/(\d+) packets received/)?.[1] ?? -1);
    expect(received).toBeGreaterThanOrEqual(1);
    expect(received).toBeLessThanOrEqual(8);
  }, 30_000);

  test("per-rule counters are shown for the app's rules", async () => {
    const r = await api("GET", `/api/v1/apps/${APPS.web}/firewall`);
    expect(r.status).toBe(200);
    const rules = r.body.interfaces[0].rules;
    expect(rules.find((x: any) => x.id === 1).packets).toBeGreaterThan(0);
    expect(rules.find((x: any) => x.id === 2).packets).toBeGreaterThan(0);
    expect(rules.find((x: any) => x.id === 3).limitedPackets).toBeGreaterThan(0);
    expect(r.body.interfaces[0].implicitDrop.packets).toBeGreaterThan(0);
    // The DHCP exchange of the earlier test left its lease (dnsmasq rewrites its lease file in place, now and
    // then: a read may land in a rewrite, so the lease is waited for a moment rather than read once).
    const webIp = await addressOf("web");
    let leases: any[] = [];
    await waitFor("the web app's lease", async () => {
      leases = (await api("GET", `/api/v1/networks/${NI_LOCAL}/leases`)).body.leases;
      return leases.some((l: any) => l.ip === webIp) ? true : undefined;
    }, 10_000).catch(() => undefined);
    expect(leases.map((l: any) => l.ip)).toContain(webIp);
  }, 30_000);
});

describe("a Switch network instance", () => {
  test("puts the app on the uplink's L2: it gets the uplink's DHCP address and sees the server as a neighbour", async () => {
    const ip = await addressOf("sw");
    expect(ip).toMatch(/^203\.0\.113\.(1[0-4]\d|150)$/);
    expect((await inApp("sw", "/bin/busybox ping -c 1 -W 2 203.0.113.1")).code).toBe(0);
    const serverMac = (await up.ip("-o", "link", "show", "lan0")).match(/link\/ether (\S+)/)![1];
    expect((await inApp("sw", "/bin/busybox ip neigh show 203.0.113.1")).out).toContain(serverMac!);
  }, 90_000);
});

describe("the console", () => {
  test("Networks page shows the instances and their app interfaces; the firewall editor shows hits and applies an edit after its plan; the app's page links to it", async () => {
    const url = evebox.out().match(/console on (http:\/\/\S+)/)![1]!;
    const token = readFileSync(join(dataDir, "run", "setup-token"), "utf8").trim();
    expect((await api("POST", "/api/v1/setup", { token, password: "network-test-password" })).status).toBe(200);
    // The browser runs inside the device namespace, where the console listens.
    const wrapper = join(dataDir, "chromium-in-netns");
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${dev.name} ${CHROMIUM} "$@"\n`);
    chmodSync(wrapper, 0o755);
    const browser = await chromium.launch({ executablePath: wrapper, headless: true, args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"] });
    const artifacts = join(ROOT, "tests", ".artifacts");
    mkdirSync(artifacts, { recursive: true });
    try {
      const page = await browser.newPage();
      await page.goto(`${url}/login`);
      const login = await page.evaluate(async (password) => (await fetch("/api/v1/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ password }) })).status, "network-test-password");
      expect(login).toBe(200);
      await page.goto(`${url}/networks`);
      const lan = page.locator('[data-network="lan"]');
      await lan.locator(".badge-ok", { hasText: "ONLINE" }).waitFor({ timeout: 15_000 });
      const webIp = await addressOf("web");
      expect(await lan.locator('tr[data-app="web"]').textContent()).toContain(webIp);
      expect(await page.locator('[data-network="plant-floor"]').textContent()).toContain("Switch");
      await page.screenshot({ path: join(artifacts, "networks.png"), fullPage: true });

      await lan.locator('tr[data-app="web"] a', { hasText: "Rules and hits" }).click();
      await page.locator("#app-firewall").waitFor();
      const hits = page.locator('[data-interface="eth0"] tr[data-rule="0"] .rule-hits');
      await page.waitForFunction(() => Number(document.querySelector('[data-interface="eth0"] tr[data-rule="0"] .rule-hits')?.textContent?.replace(/\D/g, "") || 0) > 0, null, { timeout: 10_000 });
      expect(Number((await hits.textContent())!.replace(/\D/g, ""))).toBeGreaterThan(0);
      // Allow ssh to the server: edit, review the plan, apply; the app can then connect to port 22.
      expect((await inApp("web", "/bin/busybox nc -w 2 203.0.113.1 22 </dev/null", 3)).code).not.toBe(0);
      await page.getByRole("button", { name: "Edit rules" }).click();
      await page.locator("#rule-add").click();
      await page.locator('input[name="name-4"]').fill("ssh");
      await page.locator('input[name="remote-4"]').fill("203.0.113.1");
      await page.locator('input[name="fport-4"]').fill("22");
      await page.locator("#rules-review").click();
      await page.locator("#plan").waitFor({ timeout: 10_000 });
      expect(await page.locator("#plan .plan-step").allTextContents()).toEqual([expect.stringContaining("web")]);
      await page.screenshot({ path: join(artifacts, "firewall-plan.png") });
      await page.locator("#plan-apply").click();
      await page.locator("#plan").waitFor({ state: "detached", timeout: 15_000 });
      await page.locator('[data-interface="eth0"] tr[data-rule="4"]', { hasText: "ssh" }).waitFor({ timeout: 10_000 });
      await waitFor("ssh allowed", async () => ((await inApp("web", "/bin/busybox nc -w 2 203.0.113.1 22 </dev/null", 3)).code === 0 ? true : undefined), 20_000);
      await page.screenshot({ path: join(artifacts, "firewall.png"), fullPage: true });
      // The app's own page leads to the same editor.
      await page.goto(`${url}/apps/${APPS.web}`);
      expect(await page.locator("#app-network").textContent()).toContain("lan");
      await page.locator("#app-network a", { hasText: "Firewall rules and hits" }).click();
      await page.locator('#app-firewall [data-interface="eth0"] tr[data-rule="4"] .rule-hits').waitFor({ timeout: 10_000 });
      expect(page.url()).toBe(`${url}/apps/${APPS.web}/firewall`);
    } finally {
      await browser.close();
    }
  }, 90_000);
});

describe("bad input", () => {
  test("is refused whole with the field named; the running config and its firewall stay", async () => {
    const fw = (await dev.exec(["nft", "list", "chain", "inet", "evebox", "version"])).out;
    const version = (await api("GET", "/api/v1/status")).body.device.configVersion;
    const cases: [string, (d: any) => void, string][] = [
      ["overlapping subnets", (d) => d.networkInstances.push({ ...d.networkInstances[0], uuidandversion: { uuid: U(5), version: "1" }, ip: { subnet: "198.51.100.128/25" } }), "networkInstances[2].ip.subnet"],
      ["an uplink that does not exist", (d) => (d.networkInstances[0].port.name = "nosuch0"), "networkInstances[0].port.name"],
      ["a port without a protocol", (d) => d.apps[0].interfaces[0].acls.push({ matches: [{ type: "fport", value: "22" }] }), "apps[0].interfaces[0].acls[4].matches"],
      ["a bad CIDR", (d) => d.apps[1].interfaces[0].acls.push({ matches: [{ type: "ip", value: "10.0.0.0/33" }] }), "apps[1].interfaces[0].acls[2].matches[0].value"],
      ["100,000 rules", (d) => (d.apps[1].interfaces[0].acls = Array.from({ length: 100_000 }, (_, i) => ({ matches: [{ type: "ip", value: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}` }] }))), "apps[1].interfaces[0].acls"],
    ];
    for (const [what, change, field] of cases) {
      const d = doc();
      change(d);
      const r = await api("PUT", "/api/v1/config", d);
      expect({ what, status: r.status }).toEqual({ what, status: 400 });
      expect({ what, fields: r.body.problems.map((p: any) => p.path) }).toEqual({ what, fields: expect.arrayContaining([field]) });
    }
    expect((await api("GET", "/api/v1/status")).body.device.configVersion).toBe(version);
    expect((await dev.exec(["nft", "list", "chain", "inet", "evebox", "version"])).out).toBe(fw);
  }, 60_000);
});

describe("restarting evebox", () => {
  test("drops no established connection and rebuilds nothing", async () => {
    await addressOf("keeper");
    const keeper = await containerOf("keeper");
    // A stream from the app to the uplink's sink: one TCP connection for the whole test.
    await run(["docker", "exec", "-d", keeper, "/bin/busybox", "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done | /bin/busybox nc 203.0.113.1 9000"]);
    await waitFor("ticks at the sink", async () => (sinkText.includes("tick 5") ? true : undefined), 15_000).catch(async (e) => {
      // What the device saw, to tell a test fault from a firewall one.
      const diag = [
        `sink exit ${sink.exitCode}, received ${JSON.stringify(sinkText.slice(0, 200))}`,
        (await dev.exec(["conntrack", "-L", "-p", "tcp", "--dport", "9000"], { ok: [1] })).out,
        (await sh(["docker", "exec", keeper, "/bin/busybox", "ps"], { ok: [1] })).out,
        (await dev.exec(["nft", "list", "table", "inet", "evebox"], { ok: [1] })).out.slice(0, 4000),
        evebox.out().slice(-2000),
      ];
      throw new Error(`${(e as Error).message}\n${diag.join("\n---\n")}`);
    });
    const before = {
      links: await dev.ip("-o", "link", "show"),
      dnsmasq: (await dev.exec(["sh", "-c", `cat ${dataDir}/run/network/dnsmasq/*.pid`])).out,
      fw: (await dev.exec(["nft", "list", "chain", "inet", "evebox", "version"])).out,
    };
    evebox.proc.kill("SIGTERM");
    expect(await evebox.proc.exited).toBe(0);
    const ticksAtStop = sinkText.split("\n").length;
    evebox = await startDevice();
    await waitFor("the Local NI ONLINE after restart", async () => (await api("GET", "/api/v1/status")).body?.networkInstances?.find((n: any) => n.uuid === NI_LOCAL && n.state === "ONLINE"), 60_000);
    await Bun.sleep(2000); // give a wrong reconcile the chance to act
    expect(sink.exitCode).toBeNull();
    expect(sinkText.split("\n").length).toBeGreaterThan(ticksAtStop + 10);
    const last = Number(sinkText.trim().split("\n").pop()!.split(" ")[1]);
    const seq = sinkText.trim().split("\n").map((l) => Number(l.split(" ")[1]));
    expect(seq.every((n, i) => n === i)).toBe(true); // no gap, no restart of the stream
    expect(last).toBeGreaterThan(20);
    expect(await dev.ip("-o", "link", "show")).toBe(before.links);
    expect((await dev.exec(["sh", "-c", `cat ${dataDir}/run/network/dnsmasq/*.pid`])).out).toBe(before.dnsmasq);
    expect((await dev.exec(["nft", "list", "chain", "inet", "evebox", "version"])).out).toBe(before.fw);
  }, 120_000);
});
