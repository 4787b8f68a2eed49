// A VM app on a Local network instance, on real kernel networking inside namespaces and real QEMU (TCG here):
//
//   [uplink ns]  lan0 203.0.113.1/24: httpd :80 (its CGI answers the client's address), a listener on :22
//        │ u-dev
//        │ uplink0 203.0.113.2/24
//   [device ns]  evebox (the built binary) with a Local NI 198.51.100.0/24 NATed to uplink0; the test guest
//                (tests/support/guest) served by busybox httpd on the namespace's loopback as an HTTP datastore,
//                run as a VM app whose eth0 is a tap on the NI's bridge.
//   The device is managed by the test controller (tests/support/controller, HTTPS on the host's loopback),
//   reached from the device namespace through a relay over a unix socket; its config comes from there, and
//   so do the flow records the test looks for.
//
// The guest is driven over the app's serial console (the console WebSocket on evebox's unix socket). Its busybox
// wget crashes with -T, hence `timeout 8 wget`.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isOurQemu } from "../src/runtime/vms/index.ts";
import { ask, type ConsoleClient, openConsole } from "./support/app-console.ts";
import { waitFor } from "./support/wait.ts";
import { makeControllerPki, type ControllerPki } from "./support/controller/pki.ts";
import { TestController } from "./support/controller/server.ts";
import { ensureGuestImage, GUEST_READY } from "./support/guest/image.ts";
import { unixClient, waitForApp } from "./support/api.ts";
import { type NsDevice, startDeviceIn, unixApi } from "./support/netdevice.ts";
import { busybox, type Netns, uplinkLocalNi, uplinkPair, webRoot } from "./support/netns.ts";
import { relay } from "./support/relay.ts";

const U = (n: number) => `6e7e0000-0000-4000-8100-${n.toString(16).padStart(12, "0")}`;
const DS = U(1);
const CT = U(2);
const NI = U(3);
const APP = U(10);
const VOL = U(20);
const DS_PORT = 8099;
/** The controller as the device namespace sees it (the relay's port). */
const CTL_PORT = 8443;

let up: Netns;
let dev: Netns;
let dataDir: string;
let sha: string;
let evebox: NsDevice;
let guest: ConsoleClient | null = null;
let pki: ControllerPki;
let ctl: TestController;
let hostRelay: Server;
let deviceUuid = "";

function doc(withApp = true) {
  return {
    datastores: [{ id: DS, dType: "DsHttp", fqdn: `http://127.0.0.1:${DS_PORT}`, dpath: "images" }],
    contentInfo: withApp ? [{ uuid: CT, dsId: DS, URL: "guest.qcow2", iformat: "QCOW2", sha256: sha, displayName: "guest" }] : [],
    volumes: withApp ? [{ uuid: VOL, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: CT }, displayName: "vm-disk", maxsizebytes: String(96 << 20), generationCount: "1" }] : [],
    networkInstances: [
      uplinkLocalNi(NI),
    ],
    apps: withApp
      ? [
          {
            uuidandversion: { uuid: APP, version: "1" },
            displayname: "vm",
            activate: true,
            fixedresources: { memory: 131072, maxmem: 131072, vcpus: 1, virtualizationMode: "HVM" },
            volumeRefList: [{ uuid: VOL }],
            // ssh to the server dropped before a broad allow (first match wins); the uplink's 8080 to the VM's 80.
            interfaces: [
              {
                name: "eth0",
                networkId: NI,
                acls: [
                  { id: 1, name: "no ssh", matches: [{ type: "ip", value: "203.0.113.1" }, { type: "protocol", value: "tcp" }, { type: "fport", value: "22" }], actions: [{ drop: true }] },
                  { id: 3, name: "web", matches: [{ type: "protocol", value: "tcp" }, { type: "lport", value: "8080" }], actions: [{ portmap: true, appPort: 80 }] },
                  { id: 2, name: "anything else", matches: [{ type: "ip", value: "0.0.0.0/0" }] },
                ],
              },
            ],
          },
        ]
      : [],
  };
}

const api = (method: string, path: string, body?: unknown) => unixApi(evebox.sock, method, path, body);

const startDevice = () =>
  startDeviceIn(dev, dataDir, {
    args: ["--controller", `https://127.0.0.1:${CTL_PORT}`],
    env: { EVEBOX_CONTROLLER_TIMERS: JSON.stringify({ configIntervalMs: 500, flowlogIntervalMs: 1000, infoCheckIntervalMs: 5000, backoffBaseMs: 100, backoffMaxMs: 1000 }) },
  });

let configSeconds = Math.floor(Date.now() / 1000);
/** The controller's config for the device (a newer config_timestamp each time), applied once evebox runs it. */
async function setConfig(d: ReturnType<typeof doc>): Promise<void> {
  ctl.setConfig(deviceUuid, { ...d, configTimestamp: { seconds: ++configSeconds, nanos: 0 } });
  const hash = ctl.configHash(deviceUuid);
  await waitFor("the controller's config applied", async () => ((await api("GET", "/api/v1/controller")).body?.config?.hash === hash ? true : undefined), 30_000);
}

const vmApp = (pred: (a: any) => boolean, what: string, timeoutMs = 90_000) =>
  waitForApp(unixClient(evebox.sock), APP, pred, what, timeoutMs, () => evebox.out().slice(-3000));

async function openGuest(): Promise<ConsoleClient> {
  guest?.close();
  guest = await openConsole(`ws+unix://${evebox.sock}:`, APP, {});
  await guest.waitFor(GUEST_READY, 60_000);
  return guest;
}

const tap = (): Promise<any[]> => dev.ip("-j", "-d", "link", "show", "type", "tun").then((o) => JSON.parse(o || "[]"));

beforeAll(async () => {
  const image = await ensureGuestImage();
  ({ up, dev } = await uplinkPair("vup", "vdev"));

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

  // The controller on the host's loopback; inside the device namespace, 127.0.0.1:CTL_PORT leads to it.
  pki = await makeControllerPki();
  ctl = await TestController.start(pki);
  const ctlSock = `${dataDir}-ctl.sock`;
  hostRelay = await relay({ path: ctlSock }, { host: "127.0.0.1", port: Number(new URL(ctl.url).port) });
  dev.spawn([process.execPath, join(import.meta.dir, "support", "relay.ts"), `127.0.0.1:${CTL_PORT}`, ctlSock]);
  mkdirSync(join(dataDir, "config"), { recursive: true });
  writeFileSync(join(dataDir, "config", "root-certificate.pem"), pki.root.cert);
  writeFileSync(join(dataDir, "config", "onboard.cert.pem"), pki.onboarding.cert);
  writeFileSync(join(dataDir, "config", "onboard.key.pem"), pki.onboarding.keyPem);

  evebox = await startDevice();
  deviceUuid = await waitFor("onboarding", async () => [...ctl.devices.values()][0]?.uuid, 30_000);
  await setConfig(doc());
}, 180_000);

afterAll(async () => {
  guest?.close();
  if (evebox) {
    if (deviceUuid) await setConfig({ ...doc(false), networkInstances: [] }).catch(() => undefined);
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
  hostRelay?.close();
  await ctl?.close();
  for (const d of [dataDir, `${dataDir}-www`, `${dataDir}-ds`, `${dataDir}-ctl.sock`]) if (dataDir) rmSync(d, { recursive: true, force: true });
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

  test("a portmap from the uplink's port 8080 reaches the VM's own server on 80", async () => {
    const g = guest ?? (await openGuest());
    expect(await ask(g, "mkdir -p /tmp/www && echo hello-from-vm > /tmp/www/index.html && httpd -p 80 -h /tmp/www && echo up", 20_000)).toBe("up");
    const r = await up.exec([busybox(), "timeout", "8", busybox(), "wget", "-q", "-O", "-", "http://203.0.113.2:8080/"], { ok: [1, 124] });
    expect(r.out.trim()).toBe("hello-from-vm");
    const fw = (await api("GET", `/api/v1/apps/${APP}/firewall`)).body.interfaces[0];
    expect(fw.rules.find((x: any) => x.id === 3).packets).toBeGreaterThan(0);
  }, 60_000);

  test("flow records reach the controller (POST …/flowlog), each flow with the ACE that admitted it and its direction", async () => {
    const g = guest ?? (await openGuest());
    expect((await ask(g, "timeout 8 wget -q -O - http://203.0.113.1/index.html 2>&1", 20_000)).trim()).toBe("hello-from-server");
    const rec = await waitFor("a flow record of the guest's http to the server", async () => {
      for (const m of ctl.flows) {
        const f = m.flows?.find((x) => x.flow?.dest === "203.0.113.1" && x.flow?.destPort === 80);
        if (f) return { m, f };
      }
      return undefined;
    }, 30_000);
    expect(rec.m.devId).toBe(deviceUuid);
    expect(rec.m.scope?.uuid).toBe(APP);
    expect(rec.m.scope?.netInstUUID).toBe(NI);
    expect(rec.f.flow?.src).toBe(ip);
    expect(rec.f.aclId).toBe(2);
    expect(rec.f.inbound).toBeFalsy();
    // The portmapped flow from the uplink: inbound, decided by the portmap ACE.
    const inbound = await waitFor("a flow record of the portmapped http from the uplink", async () => ctl.flows.flatMap((m) => m.flows ?? []).find((x) => x.inbound && x.aclId === 3), 30_000);
    expect(inbound.flow?.src).toBe("203.0.113.1");
    expect(ctl.count(new RegExp(`/id/${deviceUuid}/flowlog$`))).toBeGreaterThan(0);
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
    await setConfig(doc(false));
    await waitFor("the tap removed", async () => ((await tap()).length === 0 ? true : undefined), 60_000);
    expect(isOurQemu(pid, APP)).toBe(false);
    // The instance stays, without the app's reservation.
    const ni = (await api("GET", "/api/v1/networks")).body.instances.find((n: any) => n.uuid === NI);
    expect(ni.interfaces).toEqual([]);
  }, 90_000);
});


