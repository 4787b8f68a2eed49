// A VM app on a Local network instance, on real kernel networking inside namespaces and real QEMU (TCG here):
//
//   [uplink ns]  lan0 203.0.113.1/24: httpd :80 (its CGI answers the client's address), a listener on :22
//        │ u-dev
//        │ uplink0 203.0.113.2/24
//   [device ns]  evebox (the built binary) with a Local NI 198.51.100.0/24 NATed to uplink0; the test guest
//                (tests/support/guest) served by busybox httpd on the namespace's loopback as an HTTP datastore,
//                run as a VM app whose eth0 is a tap on the NI's bridge.
//
// The guest is driven over the app's serial console (the console WebSocket on evebox's unix socket). Its busybox
// wget crashes with -T, hence `timeout 8 wget`.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { isOurQemu } from "../src/runtime/vms/index.ts";
import { ask, type ConsoleClient, openConsole } from "./support/app-console.ts";
import { waitFor } from "./support/docker.ts";
import { ensureBinary } from "./support/evebox.ts";
import { ensureGuestImage, GUEST_READY } from "./support/guest/image.ts";
import { busybox, Netns, pump, vethBetween, webRoot } from "./support/netns.ts";

const U = (n: number) => `6e7e0000-0000-4000-8100-${n.toString(16).padStart(12, "0")}`;
const DS = U(1);
const CT = U(2);
const NI = U(3);
const APP = U(10);
const VOL = U(20);
const DS_PORT = 8099;

let up: Netns;
let dev: Netns;
let dataDir: string;
let sha: string;
let evebox: { proc: Subprocess; out: () => string; sock: string };
let guest: ConsoleClient | null = null;

function doc(withApp = true) {
  return {
    datastores: [{ id: DS, dType: "DsHttp", fqdn: `http://127.0.0.1:${DS_PORT}`, dpath: "images" }],
    contentInfo: withApp ? [{ uuid: CT, dsId: DS, URL: "guest.qcow2", iformat: "QCOW2", sha256: sha, displayName: "guest" }] : [],
    volumes: withApp ? [{ uuid: VOL, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: CT }, displayName: "vm-disk", maxsizebytes: String(96 << 20), generationCount: "1" }] : [],
    networkInstances: [
      {
        uuidandversion: { uuid: NI, version: "1" },
        displayname: "lan",
        instType: "ZnetInstLocal",
        activate: true,
        port: { name: "uplink0" },
        ip: { subnet: "198.51.100.0/24", gateway: "198.51.100.1", dhcpRange: { start: "198.51.100.10", end: "198.51.100.60" }, dns: ["203.0.113.1"] },
      },
    ],
    apps: withApp
      ? [
          {
            uuidandversion: { uuid: APP, version: "1" },
            displayname: "vm",
            activate: true,
            fixedresources: { memory: 131072, maxmem: 131072, vcpus: 1, virtualizationMode: "HVM" },
            volumeRefList: [{ uuid: VOL }],
            // ssh to the server dropped before a broad allow (first match wins).
            interfaces: [
              {
                name: "eth0",
                networkId: NI,
                acls: [
                  { id: 1, name: "no ssh", matches: [{ type: "ip", value: "203.0.113.1" }, { type: "protocol", value: "tcp" }, { type: "fport", value: "22" }], actions: [{ drop: true }] },
                  { id: 2, name: "anything else", matches: [{ type: "ip", value: "0.0.0.0/0" }] },
                ],
              },
            ],
          },
        ]
      : [],
  };
}

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://localhost${path}`, {
    method,
    unix: evebox.sock,
    headers: body !== undefined ? { "content-type": "application/json" } : {},
    body: body !== undefined ? JSON.stringify(body) : undefined,
  } as RequestInit);
  return { status: res.status, body: await res.json().catch(() => null) };
}

async function startDevice(): Promise<typeof evebox> {
  const argv = [await ensureBinary(), "run", "--data", dataDir, "--listen", "127.0.0.1:0"];
  const proc = dev.spawn(argv, { env: { BUN_BE_BUN: undefined } });
  let out = "";
  pump(proc.stdout, (t) => (out += t));
  pump(proc.stderr, (t) => (out += t));
  const sock = join(dataDir, "run", "evebox.sock");
  await waitFor("evebox to listen", async () => (out.includes("console on") ? true : proc.exitCode !== null ? Promise.reject(new Error(out)) : undefined), 20_000);
  return { proc, out: () => out, sock };
}

async function vmApp(pred: (a: any) => boolean, what: string, timeoutMs = 90_000): Promise<any> {
  let last: any;
  try {
    return await waitFor(`the VM app ${what}`, async () => {
      last = (await api("GET", "/api/v1/status")).body?.apps?.find((a: any) => a.uuid === APP);
      return last && pred(last) ? last : undefined;
    }, timeoutMs);
  } catch (e) {
    throw new Error(`${(e as Error).message}; last: ${JSON.stringify(last)}\n${evebox.out().slice(-3000)}`);
  }
}

async function openGuest(): Promise<ConsoleClient> {
  guest?.close();
  guest = await openConsole(`ws+unix://${evebox.sock}:`, APP, {});
  await guest.waitFor(GUEST_READY, 60_000);
  return guest;
}

const tap = (): Promise<any[]> => dev.ip("-j", "-d", "link", "show", "type", "tun").then((o) => JSON.parse(o || "[]"));

beforeAll(async () => {
  const image = await ensureGuestImage();
  up = await Netns.create("vup");
  dev = await Netns.create("vdev");
  await up.ip("link", "add", "lan0", "type", "bridge");
  await up.ip("addr", "add", "203.0.113.1/24", "dev", "lan0");
  await up.ip("link", "set", "lan0", "up");
  await vethBetween(dev, "uplink0", up, "u-dev");
  await up.ip("link", "set", "u-dev", "master", "lan0");
  await dev.ip("addr", "add", "203.0.113.2/24", "dev", "uplink0");
  await dev.ip("route", "add", "default", "via", "203.0.113.1");

  dataDir = mkdtempSync(join(tmpdir(), "evebox-netvm-"));
  const www = webRoot(`${dataDir}-www`, "hello-from-server\n");
  const ds = `${dataDir}-ds`;
  mkdirSync(join(ds, "images"), { recursive: true });
  copyFileSync(image.disk, join(ds, "images", "guest.qcow2"));
  sha = new Bun.CryptoHasher("sha256").update(readFileSync(image.disk)).digest("hex");
  const bb = busybox();
  up.spawn([bb, "httpd", "-f", "-p", "203.0.113.1:80", "-h", www]);
  up.spawn([bb, "nc", "-ll", "-p", "22", "-e", "/bin/true"]);
  dev.spawn([bb, "httpd", "-f", "-p", `127.0.0.1:${DS_PORT}`, "-h", ds]);

  evebox = await startDevice();
  const r = await api("PUT", "/api/v1/config", doc());
  if (r.status !== 201 && r.status !== 200) throw new Error(`PUT /config: ${r.status} ${JSON.stringify(r.body)}`);
}, 180_000);

afterAll(async () => {
  guest?.close();
  if (evebox) {
    await api("PUT", "/api/v1/config", { apps: [], networkInstances: [] }).catch(() => undefined);
    await waitFor("the VM gone", async () => ((await api("GET", "/api/v1/status")).body?.apps?.length ? undefined : true), 60_000).catch(() => undefined);
    evebox.proc.kill("SIGTERM");
    await evebox.proc.exited;
  }
  // A QEMU that outlived everything (the test failed half-way) is ours to end: found by its uuid.
  const pidfile = join(dataDir ?? "/nonexistent", "run", "vms", APP, "qemu.pid");
  const pid = existsSync(pidfile) ? Number(readFileSync(pidfile, "utf8").trim()) : 0;
  if (pid && isOurQemu(pid, APP)) process.kill(pid, "SIGKILL");
  await dev?.destroy();
  await up?.destroy();
  for (const d of [dataDir, `${dataDir}-www`, `${dataDir}-ds`]) if (dataDir) rmSync(d, { recursive: true, force: true });
}, 120_000);

describe("a VM app on a Local network instance", () => {
  let ip = "";

  test("runs with its interface as a tap on the instance's bridge, with the instance's MAC", async () => {
    await vmApp((a) => a.state === "RUNNING", "RUNNING", 120_000);
    const ni = (await api("GET", "/api/v1/networks")).body.instances.find((n: any) => n.uuid === NI);
    const iface = ni.interfaces.find((i: any) => i.app === APP);
    expect(iface.ifname).toMatch(/^ev[0-9a-f]{10}t0$/);
    const t = (await tap()).find((l) => l.ifname === iface.ifname);
    expect(t?.master).toBe(ni.bridge);
    expect(t?.ifalias).toBe(`evebox ${APP} 0 tap`);
    const g = await openGuest();
    expect((await ask(g, "cat /sys/class/net/eth0/address")).trim()).toBe(iface.mac);
  }, 180_000);

  test("gets its DHCP lease from the instance's dnsmasq (shown in GET /networks) and reaches the server through NAT", async () => {
    const g = guest ?? (await openGuest());
    await ask(g, "udhcpc -i eth0 -q -n -t 5 -T 2 -s /etc/udhcpc.sh >/dev/null 2>&1; echo done", 30_000);
    ip = (await ask(g, "ip -4 -o addr show dev eth0")).match(/inet (\d+\.\d+\.\d+\.\d+)/)?.[1] ?? "";
    const ni = (await api("GET", "/api/v1/networks")).body.instances.find((n: any) => n.uuid === NI);
    const iface = ni.interfaces.find((i: any) => i.app === APP);
    expect(ip).toBe(iface.ip);
    expect(ni.leases.find((l: any) => l.mac === iface.mac)?.ip).toBe(ip);
    // The server sees the device's uplink address.
    expect((await ask(g, "timeout 8 wget -q -O - http://203.0.113.1/cgi-bin/ip 2>&1", 20_000)).trim()).toBe("203.0.113.2");
  }, 90_000);

  test("its ACLs are honoured: ssh to the server is dropped, http is not; the drop is counted", async () => {
    const g = guest ?? (await openGuest());
    const probe = (port: number) => ask(g, `nc -w 2 203.0.113.1 ${port} </dev/null >/dev/null 2>&1 && echo open || echo closed`, 20_000);
    expect(await probe(80)).toBe("open");
    expect(await probe(22)).toBe("closed");
    const fw = (await api("GET", `/api/v1/apps/${APP}/firewall`)).body.interfaces[0];
    expect(fw.rules.find((r: any) => r.id === 1).packets).toBeGreaterThan(0);
    expect(fw.rules.find((r: any) => r.id === 2).packets).toBeGreaterThan(0);
  }, 60_000);

  test("a restarted evebox adopts the VM and its tap: same QEMU, same tap, still connected", async () => {
    const before = await vmApp((a) => a.state === "RUNNING", "RUNNING");
    const tapBefore = (await tap()).map((l) => `${l.ifname}@${l.ifindex}`);
    guest?.close();
    guest = null;
    evebox.proc.kill("SIGTERM");
    await evebox.proc.exited;
    evebox = await startDevice();
    const after = await vmApp((a) => a.state === "RUNNING", "RUNNING again");
    expect(after.pid).toBe(before.pid);
    // A pass or two after the start: nothing of the VM's networking is remade.
    await Bun.sleep(3000);
    expect((await tap()).map((l) => `${l.ifname}@${l.ifindex}`)).toEqual(tapBefore);
    expect((await vmApp((a) => a.state === "RUNNING", "RUNNING")).pid).toBe(before.pid);
    const g = await openConsole(`ws+unix://${evebox.sock}:`, APP, {});
    guest = g;
    expect((await ask(g, "timeout 8 wget -q -O - http://203.0.113.1/cgi-bin/ip 2>&1", 20_000)).trim()).toBe("203.0.113.2");
  }, 120_000);

  test("removing the app stops QEMU and removes its tap", async () => {
    const pid = (await vmApp((a) => a.state === "RUNNING", "RUNNING")).pid;
    guest?.close();
    guest = null;
    const r = await api("PUT", "/api/v1/config", doc(false));
    expect([200, 201]).toContain(r.status);
    await waitFor("the tap removed", async () => ((await tap()).length === 0 ? true : undefined), 60_000);
    expect(isOurQemu(pid, APP)).toBe(false);
    // The instance stays, without the app's reservation.
    const ni = (await api("GET", "/api/v1/networks")).body.instances.find((n: any) => n.uuid === NI);
    expect(ni.interfaces).toEqual([]);
  }, 90_000);
});


