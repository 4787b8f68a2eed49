// Static routes, propagated connected routes, VLAN sub-interfaces and bonds, end to end on real kernel networking
// inside namespaces this test creates:
//
//   [up]   lan0 bridge 203.0.113.1/24 (the LAN's default gateway: it knows no route to 192.0.2.0/24)
//            │ u-dev                     │ u-gw
//   [dev]  uplink0 203.0.113.2/24      [gw]  g-lan 203.0.113.3/24 ── g-far 192.0.2.1/24 (a router)
//          evebox: NI "routed" (10.50.0.0/24, a static route 192.0.2.0/24 via 203.0.113.3,        │
//          propagate_connected_routes), NI "plain" (10.51.0.0/24, none), NI "bad"            [far] 192.0.2.10/24,
//          (a route through a gateway uplink0 does not reach)                                  httpd "hello-from-far"
//          trunk0, bm0, bm1 ── veths to [peer] (the VLAN and bond parts; they need the kernel's
//          8021q and bonding, which this machine's kernel lacks: those tests are skipped, saying so;
//          the booted image's kernel has both, and tests/image.test.ts makes a VLAN and a bond port there)
//
// Apps are busybox containers (the local registry's image), attached by veth like every app.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM } from "./support/browser.ts";
import { ensureBusyboxImage, testDocker } from "./support/docker.ts";
import { ROOT } from "./support/evebox.ts";
import { type NsDevice, startDeviceIn, unixApi } from "./support/netdevice.ts";
import { busybox, Netns, vethBetween, webRoot } from "./support/netns.ts";
import { startRegistry, type TestRegistry } from "./support/registry.ts";
import { sh } from "./support/run.ts";
import { waitFor } from "./support/wait.ts";

const U = (n: number) => `6f7e0000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
const DS = U(1);
const CT = U(2);
const NIS = { routed: U(3), plain: U(4), bad: U(5) };
const APPS = { routed: U(10), plain: U(11) };
const VOLS = { routed: U(20), plain: U(21) };

let up: Netns;
let gw: Netns;
let far: Netns;
let dev: Netns;
let peer: Netns;
let registry: TestRegistry;
let digest: string;
let dataDir: string;
let evebox: NsDevice;
/** What the kernel of this machine can make ("" — it can; else why not), probed in a namespace of its own. */
const kernel = await probeKernel();

const SLEEP = "sh -c 'trap \"exit 0\" TERM; sleep 3600 & wait'";
const api = (method: string, path: string, body?: unknown) => unixApi(evebox.sock, method, path, body);

function doc(extra: { vlans?: any[]; bonds?: any[]; plainRoutes?: any[] } = {}) {
  const ni = (name: keyof typeof NIS, subnet: string, more: any = {}) => ({
    uuidandversion: { uuid: NIS[name], version: "1" },
    displayname: name,
    instType: "ZnetInstLocal",
    activate: true,
    port: { name: "uplink0" },
    ip: { subnet: `${subnet}.0/24`, gateway: `${subnet}.1`, dhcpRange: { start: `${subnet}.10`, end: `${subnet}.50` }, dns: ["203.0.113.1"] },
    ...more,
  });
  const app = (name: keyof typeof APPS) => ({
    uuidandversion: { uuid: APPS[name], version: "1" },
    displayname: `${name}-app`,
    activate: true,
    fixedresources: { memory: 65536, vcpus: 1 },
    volumeRefList: [{ uuid: VOLS[name] }],
    // Everything allowed (an interface without ACLs drops all, as EVE's does).
    interfaces: [{ name: "eth0", networkId: NIS[name], acls: [{ id: 1, matches: [{ type: "ip", value: "0.0.0.0/0" }] }] }],
    userData: Buffer.from(`EVE_ECO_CMD=${SLEEP}`).toString("base64"),
  });
  return {
    datastores: [{ id: DS, dType: "DsContainerRegistry", fqdn: `docker://${registry.host}` }],
    contentInfo: [{ uuid: CT, dsId: DS, URL: "evebox/busybox:routes", iformat: "CONTAINER", sha256: digest, displayName: "busybox" }],
    volumes: Object.values(VOLS).map((uuid) => ({ uuid, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: CT } })),
    networkInstances: [
      ni("routed", "10.50.0", { staticRoutes: [{ destinationNetwork: "192.0.2.0/24", gateway: "203.0.113.3" }], propagateConnectedRoutes: true }),
      ni("plain", "10.51.0", extra.plainRoutes ? { staticRoutes: extra.plainRoutes } : {}),
      ni("bad", "10.52.0", { staticRoutes: [{ destinationNetwork: "198.18.0.0/15", gateway: "198.51.100.7" }] }),
    ],
    apps: [app("routed"), app("plain")],
    ...(extra.vlans ? { vlans: extra.vlans } : {}),
    ...(extra.bonds ? { bonds: extra.bonds } : {}),
  };
}

async function containerOf(name: keyof typeof APPS): Promise<string> {
  return waitFor(`container of ${name}`, async () => {
    const cs = await testDocker().listContainers({ filters: { label: [`evebox.app=${APPS[name]}`] } });
    return cs[0]?.State === "running" ? cs[0].Id : undefined;
  }, 90_000);
}

async function inApp(name: keyof typeof APPS, cmd: string, timeoutSec = 5): Promise<{ code: number; out: string }> {
  const id = await containerOf(name);
  const r = await sh(["docker", "exec", id, "/bin/busybox", "timeout", String(timeoutSec), "/bin/busybox", "sh", "-c", cmd], { ok: [1, 2, 124, 127, 137, 143] });
  return { code: r.code, out: r.out + r.err };
}

/** The app's eth0 address, once evebox attached it (the container starts a few milliseconds before its interface). */
async function addressOf(name: keyof typeof APPS): Promise<string> {
  return waitFor(`${name}'s eth0 address`, async () => (await inApp(name, "/bin/busybox ip -4 -o addr show dev eth0")).out.match(/inet (\d+\.\d+\.\d+\.\d+)/)?.[1], 60_000);
}

/** One DHCP exchange from the app (its own client, as a VM's would be), asking for option 121; what it was given. */
async function dhcpOffer(name: keyof typeof APPS): Promise<string> {
  const script = "printf '#!/bin/busybox sh\\n[ \"$1\" = bound ] && echo \"routes=[$staticroutes] router=[$router] ip=[$ip]\"\\nexit 0\\n' > /tmp/show.sh && chmod +x /tmp/show.sh";
  await addressOf(name);
  const r = await inApp(name, `${script} && /bin/busybox udhcpc -i eth0 -q -n -f -t 4 -T 1 -O staticroutes -s /tmp/show.sh 2>&1`, 15);
  return r.out;
}

async function status(): Promise<any> {
  return (await api("GET", "/api/v1/networks")).body;
}

async function probeKernel(): Promise<{ vlan: string; bond: string }> {
  const ns = await Netns.create("rtprobe");
  try {
    await ns.ip("link", "add", "probe0", "type", "veth", "peer", "name", "probe1");
    const vlan = await ns.exec(["ip", "link", "add", "link", "probe0", "name", "probe0.7", "type", "vlan", "id", "7"], { ok: [1, 2] });
    const bond = await ns.exec(["ip", "link", "add", "probebond", "type", "bond"], { ok: [1, 2] });
    const why = {
      vlan: vlan.code === 0 ? "" : `this kernel cannot make VLAN interfaces (ip: ${(vlan.err || vlan.out).trim()}; no 8021q)`,
      bond: bond.code === 0 ? "" : `this kernel cannot make bonds (ip: ${(bond.err || bond.out).trim()}; no bonding)`,
    };
    for (const w of [why.vlan, why.bond]) if (w) console.warn(`network-routes: ${w}: that test is skipped (tests/image.test.ts makes a VLAN and a bond in the booted image, whose kernel has both)`);
    return why;
  } finally {
    await ns.destroy();
  }
}

beforeAll(async () => {
  const image = await ensureBusyboxImage();
  registry = await startRegistry();
  digest = (await registry.push(image, "evebox/busybox:routes")).replace(/^sha256:/, "");
  [up, gw, far, dev, peer] = await Promise.all(["up", "gw", "far", "dev", "peer"].map((r) => Netns.create(`rt${r}`)));
  await up.ip("link", "add", "lan0", "type", "bridge");
  await up.ip("addr", "add", "203.0.113.1/24", "dev", "lan0");
  await up.ip("link", "set", "lan0", "up");
  await vethBetween(dev, "uplink0", up, "u-dev");
  await vethBetween(gw, "g-lan", up, "u-gw");
  await up.ip("link", "set", "u-dev", "master", "lan0");
  await up.ip("link", "set", "u-gw", "master", "lan0");
  await dev.ip("addr", "add", "203.0.113.2/24", "dev", "uplink0");
  await dev.ip("route", "add", "default", "via", "203.0.113.1");
  // The router to the far network, and the far host behind it.
  await gw.ip("addr", "add", "203.0.113.3/24", "dev", "g-lan");
  await vethBetween(gw, "g-far", far, "f0");
  await gw.ip("addr", "add", "192.0.2.1/24", "dev", "g-far");
  await gw.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  await far.ip("addr", "add", "192.0.2.10/24", "dev", "f0");
  await far.ip("route", "add", "default", "via", "192.0.2.1");
  // The VLAN trunk and the bond's two links.
  await vethBetween(dev, "trunk0", peer, "trunkp");
  await vethBetween(dev, "bm0", peer, "bp0");
  await vethBetween(dev, "bm1", peer, "bp1");

  dataDir = mkdtempSync(join(tmpdir(), "evebox-routes-"));
  const www = webRoot(`${dataDir}-www`, "hello-from-far\n");
  far.spawn([busybox(), "httpd", "-f", "-p", "192.0.2.10:80", "-h", www]);

  evebox = await startDeviceIn(dev, dataDir);
  const r = await api("PUT", "/api/v1/config", doc());
  if (r.status !== 201 && r.status !== 200) throw new Error(`PUT /config: ${r.status} ${JSON.stringify(r.body)}`);
}, 180_000);

afterAll(async () => {
  if (evebox) {
    await api("PUT", "/api/v1/config", { apps: [], networkInstances: [] }).catch(() => undefined);
    await waitFor("apps removed", async () => ((await testDocker().listContainers({ all: true, filters: { label: [`evebox.app=${APPS.routed}`] } })).length === 0 ? true : undefined), 60_000).catch(() => undefined);
    for (const uuid of Object.values(APPS)) {
      for (const c of await testDocker().listContainers({ all: true, filters: { label: [`evebox.app=${uuid}`] } })) await testDocker().getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    }
    evebox.proc.kill("SIGTERM");
    await evebox.proc.exited;
  }
  for (const ns of [dev, up, gw, far, peer]) await ns?.destroy();
  await registry?.stop();
  if (dataDir) {
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(`${dataDir}-www`, { recursive: true, force: true });
  }
}, 120_000);

describe("static routes and propagated connected routes", () => {
  test("the instances come up; the one whose route's gateway the port does not reach is in ERROR with the reason, the others ONLINE", async () => {
    const s = await waitFor("routed and plain ONLINE, bad in ERROR", async () => {
      const b = await status();
      const by = (u: string) => b?.instances?.find((n: any) => n.uuid === u);
      return by(NIS.routed)?.state === "ONLINE" && by(NIS.plain)?.state === "ONLINE" && by(NIS.bad)?.state === "ERROR" ? b : undefined;
    }, 90_000);
    const bad = s.instances.find((n: any) => n.uuid === NIS.bad);
    expect(bad.error).toContain("staticRoutes[0] 198.18.0.0/15: gateway 198.51.100.7 is not reachable through port uplink0 (uplink0: 203.0.113.0/24)");
    // Its bridge and DHCP are still built: only the route is left out.
    expect(await dev.ip("-4", "-o", "addr", "show", "dev", bad.bridge)).toContain("10.52.0.1/24");
    const routed = s.instances.find((n: any) => n.uuid === NIS.routed);
    expect(routed.routes).toEqual([
      { dst: "192.0.2.0/24", via: "10.50.0.1", to: "apps+table", tableVia: "203.0.113.3" },
      { dst: "203.0.113.0/24", via: "10.50.0.1", to: "apps" },
    ]);
    // The instance's own table holds the route through the LAN's router; the device's main table does not.
    expect(await dev.ip("route", "show", "table", "all")).toMatch(/192\.0\.2\.0\/24 via 203\.0\.113\.3 dev uplink0 table 1\d{4}/);
    expect(await dev.ip("route", "show")).not.toContain("192.0.2.0/24");
  }, 120_000);

  test("an app gets the static route and the uplink's connected network by DHCP (option 121); an instance without them gives none", async () => {
    const routed = await dhcpOffer("routed");
    expect(routed).toMatch(/routes=\[10\.50\.0\.0\/24 0\.0\.0\.0 192\.0\.2\.0\/24 10\.50\.0\.1 203\.0\.113\.0\/24 10\.50\.0\.1 0\.0\.0\.0\/0 10\.50\.0\.1\] router=\[10\.50\.0\.1\] ip=\[10\.50\.0\.\d+\]/);
    const plain = await dhcpOffer("plain");
    expect(plain).toMatch(/routes=\[\] router=\[10\.51\.0\.1\] ip=\[10\.51\.0\.\d+\]/);
  }, 90_000);

  test("the app reaches the host behind the route's gateway; the app of the instance without the route does not", async () => {
    await addressOf("routed");
    await addressOf("plain");
    // The container's routes are set like its address (what the DHCP answer above carries).
    expect((await inApp("routed", "/bin/busybox ip route show")).out).toContain("192.0.2.0/24 via 10.50.0.1 dev eth0");
    const ok = await inApp("routed", "/bin/busybox wget -q -O - http://192.0.2.10/");
    expect(ok.out.trim()).toBe("hello-from-far");
    const no = await inApp("plain", "/bin/busybox wget -q -O - http://192.0.2.10/", 6);
    expect(no.out).not.toContain("hello-from-far");
    expect(no.code).not.toBe(0);
  }, 90_000);

  test("a route added to an instance reaches its running app (no restart): the app then reaches the far host", async () => {
    const before = await containerOf("plain");
    const put = await api("PUT", "/api/v1/config", doc({ plainRoutes: [{ destinationNetwork: "192.0.2.0/24", gateway: "203.0.113.3" }] }));
    expect([200, 201]).toContain(put.status);
    await waitFor("the route in the plain app", async () => ((await inApp("plain", "/bin/busybox ip route show")).out.includes("192.0.2.0/24 via 10.51.0.1 dev eth0") ? true : undefined), 60_000);
    expect((await inApp("plain", "/bin/busybox wget -q -O - http://192.0.2.10/")).out.trim()).toBe("hello-from-far");
    expect(await containerOf("plain")).toBe(before);
    // And taken away again.
    expect([200, 201]).toContain((await api("PUT", "/api/v1/config", doc())).status);
    await waitFor("the route gone from the plain app", async () => (!(await inApp("plain", "/bin/busybox ip route show")).out.includes("192.0.2.0/24") ? true : undefined), 60_000);
  }, 120_000);
});

describe("the console", () => {
  test("Networks page: an instance's routes, and the VLANs the device makes with their state (ERROR with the kernel's reason where it cannot)", async () => {
    const put = await api("PUT", "/api/v1/config", doc({ vlans: [{ logicallabel: "lan.100", lowerLayerName: "trunk0", vlanId: 100 }] }));
    expect([200, 201]).toContain(put.status);
    const port = await waitFor("the VLAN's state", async () => (await status())?.ports?.find((p: any) => p.label === "lan.100" && (p.state === "UP" || p.state === "ERROR")), 60_000);
    // Where the kernel has no 8021q, the operator reads why (the kernel's own words), not a silent nothing.
    if (kernel.vlan) expect(port).toMatchObject({ state: "ERROR", error: expect.stringContaining("Unknown device type") });
    else expect(port.state).toBe("UP");
    const url = evebox.out().match(/console on (http:\/\/\S+)/)![1]!;
    const token = readFileSync(join(dataDir, "run", "setup-token"), "utf8").trim();
    expect((await api("POST", "/api/v1/setup", { token, password: "routes-test-password" })).status).toBe(200);
    // The browser runs inside the device namespace, where the console listens.
    const wrapper = join(dataDir, "chromium-in-netns");
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${dev.name} ${CHROMIUM} "$@"\n`);
    chmodSync(wrapper, 0o755);
    const browser = await chromium.launch({ executablePath: wrapper, headless: true, args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"] });
    try {
      const page = await browser.newPage();
      await page.goto(`${url}/login`);
      expect(await page.evaluate(async (password) => (await fetch("/api/v1/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ password }) })).status, "routes-test-password")).toBe(200);
      await page.goto(`${url}/networks`);
      const routed = page.locator('[data-network="routed"]');
      await routed.locator(".badge-ok", { hasText: "ONLINE" }).waitFor({ timeout: 15_000 });
      const rows = await routed.locator('[aria-label="Routes of routed"] tbody tr').allTextContents();
      expect(rows).toEqual([expect.stringMatching(/192\.0\.2\.0\/24\s*10\.50\.0\.1\s*203\.0\.113\.3/), expect.stringMatching(/203\.0\.113\.0\/24\s*10\.50\.0\.1\s*connected to uplink0/)]);
      expect(await page.locator('[data-network="bad"]').textContent()).toContain("not reachable through port uplink0");
      const vlanRow = page.locator('#device-ports tr[data-port="lan.100"]');
      await vlanRow.waitFor({ timeout: 10_000 });
      expect(await vlanRow.textContent()).toContain(kernel.vlan ? "ERROR" : "UP");
      expect(await vlanRow.textContent()).toContain("VLAN 100");
      mkdirSync(join(ROOT, "tests", ".artifacts"), { recursive: true });
      await page.screenshot({ path: join(ROOT, "tests", ".artifacts", "networks-routes.png"), fullPage: true });
    } finally {
      await browser.close();
    }
    expect([200, 201]).toContain((await api("PUT", "/api/v1/config", doc())).status);
  }, 120_000);
});

describe("a VLAN sub-interface", () => {
  test.skipIf(!!kernel.vlan)(`is made on its parent port, carries tagged traffic to a VLAN interface of the peer, and goes when the config no longer names it${kernel.vlan ? ` (skipped: ${kernel.vlan})` : ""}`, async () => {
    const put = await api("PUT", "/api/v1/config", doc({ vlans: [{ logicallabel: "lan.100", interfaceName: "ignored0", lowerLayerName: "trunk0", vlanId: 100 }] }));
    expect([200, 201]).toContain(put.status);
    const port = await waitFor("the VLAN UP", async () => (await status())?.ports?.find((p: any) => p.label === "lan.100" && p.state === "UP"), 60_000);
    expect(port).toMatchObject({ kind: "vlan", parent: "trunk0", vlanId: 100, error: null });
    expect(port.ifname).toMatch(/^evv[0-9a-f]{12}$/);
    expect(await dev.ip("-d", "link", "show", "dev", port.ifname)).toMatch(/vlan protocol 802\.1Q id 100/);
    // The peer sees the traffic only on its VLAN 100 interface: the untagged trunk has no address.
    await peer.ip("link", "add", "link", "trunkp", "name", "trunkp.100", "type", "vlan", "id", "100");
    await peer.ip("addr", "add", "198.18.100.2/24", "dev", "trunkp.100");
    await peer.ip("link", "set", "trunkp.100", "up");
    await dev.ip("addr", "add", "198.18.100.1/24", "dev", port.ifname); // the device's port addressing (init's, on a device)
    expect((await dev.exec(["ping", "-c", "2", "-W", "2", "198.18.100.2"], { ok: [1] })).code).toBe(0);
    // Gone from the config: the link goes, the parent stays.
    expect([200, 201]).toContain((await api("PUT", "/api/v1/config", doc())).status);
    await waitFor("the VLAN removed", async () => ((await dev.exec(["ip", "link", "show", "dev", port.ifname], { ok: [1] })).code !== 0 ? true : undefined), 60_000);
    expect(await dev.ip("link", "show", "dev", "trunk0")).toContain("trunk0");
  }, 120_000);
});

describe("a bond", () => {
  test.skipIf(!!kernel.bond)(`of two ports comes up, carries traffic, and survives one member going down${kernel.bond ? ` (skipped: ${kernel.bond})` : ""}`, async () => {
    await peer.ip("link", "add", "pbr", "type", "bridge");
    for (const l of ["bp0", "bp1"]) await peer.ip("link", "set", l, "master", "pbr");
    await peer.ip("addr", "add", "198.18.101.2/24", "dev", "pbr");
    await peer.ip("link", "set", "pbr", "up");
    const put = await api("PUT", "/api/v1/config", doc({ bonds: [{ logicallabel: "lag0", lowerLayerNames: ["bm0", "bm1"], bondMode: "BOND_MODE_ACTIVE_BACKUP", mii: { interval: 100 } }] }));
    expect([200, 201]).toContain(put.status);
    const bond = await waitFor("the bond UP with both members", async () => {
      const p = (await status())?.ports?.find((x: any) => x.label === "lag0");
      return p?.state === "UP" && p.members.every((m: any) => m.enslaved) ? p : undefined;
    }, 60_000);
    expect(bond).toMatchObject({ kind: "bond", mode: "active-backup", error: null });
    expect(bond.ifname).toMatch(/^evg[0-9a-f]{12}$/);
    await dev.ip("addr", "add", "198.18.101.1/24", "dev", bond.ifname);
    expect((await dev.exec(["ping", "-c", "2", "-W", "2", "198.18.101.2"], { ok: [1] })).code).toBe(0);
    const active = bond.activeMember ?? "bm0";
    await dev.ip("link", "set", active, "down");
    const after = await waitFor("the bond on its other member", async () => {
      const p = (await status())?.ports?.find((x: any) => x.label === "lag0");
      return p?.activeMember && p.activeMember !== active ? p : undefined;
    }, 30_000);
    expect(after.state).toBe("UP");
    expect((await dev.exec(["ping", "-c", "2", "-W", "2", "198.18.101.2"], { ok: [1] })).code).toBe(0);
    expect([200, 201]).toContain((await api("PUT", "/api/v1/config", doc())).status);
    await waitFor("the bond removed, its members released", async () => ((await dev.exec(["ip", "link", "show", "dev", bond.ifname], { ok: [1] })).code !== 0 ? true : undefined), 60_000);
    expect(await dev.ip("link", "show", "dev", "bm1")).not.toContain("master");
  }, 120_000);
});
