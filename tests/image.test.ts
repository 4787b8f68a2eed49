// The device image, booted for real: the qemu-x86_64 board under QEMU TCG (OVMF → GRUB → kernel → evebox as PID 1),
// user-mode networking (QEMU's DHCP server; the host's loopback is 10.0.2.2 from inside) with the console's ports
// forwarded to the host. One device goes through a life: first boot, an app deployed through the API, a port
// configuration that loses the LAN and is rolled back, orphans, a full disk, a reboot through the API into the
// other slot on trial, a power cut (back on the committed slot, store intact), a reboot the test EVE controller
// asks for with a bumped counter (once; the boot reason reported), and a damaged PERSIST.
// The image is built from the current source (cached; see tests/support/image.ts); timings are printed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { type DebugShell, freePort, QemuDevice } from "../board-support/qemu-x86_64/qemu.ts";
import { parseBootEnv } from "../src/baseos/bootenv.ts";
import { l2LinkName } from "../src/config/names.ts";
import { busyboxArchive } from "./support/docker.ts";
import { Client } from "./support/evebox.ts";
import { makeControllerPki } from "./support/controller/pki.ts";
import { TestController } from "./support/controller/server.ts";
import { ensureTestImage, TestDisk } from "./support/image.ts";
import { waitFor } from "./support/wait.ts";
import type { BuiltImage } from "../rootfs/build.ts";

const canRun = process.getuid?.() === 0 && Bun.which("qemu-system-x86_64") !== null && Bun.which("mmdebstrap") !== null;
const PASSWORD = "image-test-password";
const APP = "6c1e0000-0000-4000-8000-0000000000a1";
const CT = "6c1e0000-0000-4000-8000-0000000000c1";
const VOL = "6c1e0000-0000-4000-8000-0000000000d1";
const DS = "6c1e0000-0000-4000-8000-0000000000e1";
const NET = "6c1e0000-0000-4000-8000-0000000000f1";
const CMDLINE = "evebox.shell=ttyS1 evebox.port-test=20";
// From the power cut on, the device has five more Ethernet ports on two QEMU hubs (no cable to the host): hub 1
// joins a VLAN trunk port to its peer, hub 2 the bond's two member ports to theirs. The peers go into a network
// namespace of the guest, so the device sees three more ports of its own. No option ROMs: OVMF would try each.
const NICS = [
  { id: "trunk", hub: 1, mac: "52:54:00:e0:00:01" },
  { id: "trunkpeer", hub: 1, mac: "52:54:00:e0:00:02" },
  { id: "bm0", hub: 2, mac: "52:54:00:e0:00:03" },
  { id: "bm1", hub: 2, mac: "52:54:00:e0:00:04" },
  { id: "bondpeer", hub: 2, mac: "52:54:00:e0:00:05" },
] as const;
const NIC_ARGS = NICS.flatMap((n) => ["-netdev", `hubport,id=hp-${n.id},hubid=${n.hub}`, "-device", `virtio-net-pci,id=${n.id},netdev=hp-${n.id},mac=${n.mac},romfile=`]);
let extraNics = false;
const NET_DHCP = "6c1e0000-0000-4000-8000-0000000000f2";
const NET_VLAN = "6c1e0000-0000-4000-8000-0000000000f3";
const NET_BOND = "6c1e0000-0000-4000-8000-0000000000f4";
const NI_BOND = "6c1e0000-0000-4000-8000-0000000000f5";
const NI_OT = "6c1e0000-0000-4000-8000-0000000000f6";

let img: BuiltImage;
let work: string;
let disk: TestDisk;
let device: QemuDevice | null = null;
let shell: DebugShell | null = null;
let httpsPort = 0;
let httpPort = 0;
let imageServer: ReturnType<typeof Bun.serve>;
let tarSha = "";
let client: Client | null = null;
let boots = 0;
const timings: Record<string, number> = {};
const t0 = performance.now();

function since(start: number): number {
  return Math.round((performance.now() - start) / 100) / 10;
}

function log(line: string): void {
  console.log(`image test [${since(t0).toFixed(1).padStart(6)} s] ${line}`);
}

/** The console API over HTTPS on the forwarded port (the device's own self-signed certificate). */
const consoleApi = () => (client ??= new Client(`https://127.0.0.1:${httpsPort}`, { insecureTls: true, timeoutMs: 20_000 }));
const api = (method: string, path: string, body?: unknown, timeoutMs?: number) => consoleApi().json(method, `/api/v1${path}`, body, {}, timeoutMs);

/** Waits on the device: the serial tail goes into the timeout's message, and a QEMU that exited ends the wait. */
const until = <T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, everyMs = 1000) =>
  waitFor(what, check, {
    timeoutMs,
    everyMs,
    detail: () => `serial tail:\n${device?.serial().slice(-2500)}`,
    failIf: () => (device && !device.alive() ? `QEMU exited: ${device.stderr}` : null),
  });

async function health(): Promise<any> {
  return until("GET /api/v1/health over HTTPS", async () => {
    const r = await api("GET", "/health", undefined, 5000);
    return r.status === 200 ? r.body : undefined;
  }, 240_000);
}

async function status(): Promise<any> {
  const r = await api("GET", "/status");
  if (r.status !== 200) throw new Error(`GET /status: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

function part(s: any, name: string): any {
  return s.parts.find((p: any) => p.name === name);
}

let lastApp = "";
async function appState(): Promise<string | undefined> {
  const a = (await status()).apps.find((x: any) => x.uuid === APP);
  lastApp = a ? `${a.state}${a.error ? `: ${a.error}` : ""}` : "not in status";
  return a?.state;
}

async function waitAppRunning(what: string): Promise<number> {
  const t = performance.now();
  await until(`the app RUNNING (${what})`, async () => ((await appState()) === "RUNNING" ? true : undefined), 360_000, 2000).catch((e) => {
    throw new Error(`the app is ${lastApp}; ${(e as Error).message}`);
  });
  return since(t);
}

/** Starts QEMU on the test disk and waits for the console; returns boot timings. */
async function boot(label: string): Promise<{ pid1: number; consoleReady: number; health: number }> {
  boots++;
  shell?.close();
  shell = null;
  consoleApi().cookie = "";
  const start = performance.now();
  device = QemuDevice.start({ disk: disk.path, workDir: work, forwards: [{ host: httpsPort, guest: 443 }, { host: httpPort, guest: 80 }], shell: true, ...(extraNics ? { extra: NIC_ARGS } : {}) }, `boot${boots}`);
  const pid1 = (await device.waitSerial(/evebox: evebox \S+ is PID 1/, 240_000)).seconds;
  const ready = await device.waitSerial(/evebox: console ready/, 240_000);
  const consoleReady = ready.seconds;
  // A slow start says where the time went: evebox's lines up to the console (a run once took 150 s more here).
  if (consoleReady - pid1 > 60) for (const l of device.serial().slice(0, ready.end).split(/\r?\n/).filter((l) => /evebox/.test(l)).slice(-40)) log(`  ${l.trim()}`);
  await health();
  const h = since(start);
  log(`${label}: evebox is PID 1 after ${pid1.toFixed(1)} s, console ready after ${consoleReady.toFixed(1)} s, /health over HTTPS after ${h.toFixed(1)} s`);
  return { pid1, consoleReady, health: h };
}

async function guest(cmd: string, timeoutMs = 60_000): Promise<string> {
  shell ??= await device!.shell(120_000);
  const r = await shell.run(cmd, timeoutMs);
  if (r.code !== 0) throw new Error(`guest: ${cmd} exited ${r.code}: ${r.out}`);
  return r.out;
}

async function login(): Promise<void> {
  const r = await api("POST", "/login", { password: PASSWORD });
  if (r.status !== 200) throw new Error(`login: ${r.status} ${JSON.stringify(r.body)}`);
}

function appConfig(extra: Record<string, unknown> = {}) {
  return {
    datastores: [{ id: DS, dType: "DsHttp", fqdn: `http://10.0.2.2:${imageServer.port}`, dpath: "images" }],
    contentInfo: [{ uuid: CT, dsId: DS, URL: "busybox.tar", iformat: "CONTAINER", sha256: tarSha, displayName: "busybox" }],
    volumes: [{ uuid: VOL, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: CT }, displayName: "web-root" }],
    apps: [
      {
        uuidandversion: { uuid: APP, version: "1" },
        displayname: "web",
        activate: true,
        fixedresources: { memory: 65536, maxmem: 65536, vcpus: 1 },
        volumeRefList: [{ uuid: VOL }],
        userData: Buffer.from(`EVE_ECO_CMD=sh -c 'trap "exit 0" TERM; echo web up; sleep 3600 & wait'\n`).toString("base64"),
      },
    ],
    ...extra,
  };
}

async function peerFingerprint(): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: "127.0.0.1", port: httpsPort, rejectUnauthorized: false }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.end();
      resolve(fp);
    });
    s.on("error", reject);
    setTimeout(() => reject(new Error("TLS connect timed out")), 15_000);
  });
}

describe.skipIf(!canRun)("the device image under QEMU TCG", () => {
  beforeAll(async () => {
    const t = performance.now();
    img = await ensureTestImage(log);
    timings.image = since(t);
    // The app's image: a `docker save` of the test busybox, served on the host's loopback (10.0.2.2 inside).
    const { bytes: tar, sha256 } = await busyboxArchive();
    tarSha = sha256;
    imageServer = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => (new URL(req.url).pathname === "/images/busybox.tar" ? new Response(tar) : new Response("no", { status: 404 })) });
    work = mkdtempSync(join(tmpdir(), "evebox-image-test-"));
    // A 4 GiB disk: the device grows PERSIST into the space on its first boot. Slot B holds the same system, for
    // the boot loader's try-once test.
    disk = await TestDisk.create(img, work, { sizeBytes: 4 * 2 ** 30 });
    disk.writeSlot("B", img.squashfs);
    await disk.setBootEnv((e) => ({ ...e, evebox_cmdline: CMDLINE }));
    httpsPort = await freePort();
    httpPort = await freePort();
  }, 900_000);

  afterAll(async () => {
    shell?.close();
    await device?.kill();
    imageServer?.stop(true);
    log(`timings (s): ${JSON.stringify(timings)}`);
    if (work && !process.env.EVEBOX_KEEP_IMAGE_TEST) rmSync(work, { recursive: true, force: true });
    else if (work) log(`kept ${work} (EVEBOX_KEEP_IMAGE_TEST)`);
  }, 60_000);

  test("first boot: PERSIST grown and formatted, an address by DHCP, the console over HTTPS with the device's certificate", async () => {
    const b = await boot("first boot");
    Object.assign(timings, { firstBootPid1: b.pid1, firstBootConsole: b.consoleReady, firstBootHealth: b.health });
    const h = await health();
    expect(h.setupRequired).toBe(true);
    const banner = await device!.waitSerial(/console: https:\/\/(10\.0\.2\.\d+)\/ \((evebox-[0-9a-f]{8})\)/, 120_000);
    expect(banner.match[1]).toBe("10.0.2.15"); // QEMU's DHCP server hands out .15 first
    const printed = (await device!.waitSerial(/certificate SHA-256 fingerprint: ([0-9A-F:]{95})/, 10_000)).match[1];
    expect(await peerFingerprint()).toBe(printed!);
    const serial = device!.serial();
    expect(serial).toMatch(/persist: formatted \/dev\/vda5 \(grown to [23]\.\d GiB\)/);
    // Plain HTTP answers only with a redirect to the HTTPS console.
    const red = await fetch(`http://127.0.0.1:${httpPort}/setup?x=1`, { redirect: "manual", signal: AbortSignal.timeout(10_000) });
    expect(red.status).toBe(308);
    expect(red.headers.get("location")).toBe("https://127.0.0.1/setup?x=1");
    // The host name, and DNS from the DHCP lease.
    expect(await guest("hostname")).toBe(banner.match[2]!);
    expect(await guest("cat /etc/resolv.conf")).toContain("nameserver 10.0.2.3");
    // The setup link on the physical console works.
    const token = (await device!.waitSerial(/setup\?token=([A-Za-z0-9_-]+)/, 10_000)).match[1];
    expect((await api("POST", "/setup", { token, password: PASSWORD })).status).toBe(200);
    await login();
    const s = await status();
    expect(part(s, "init")).toMatchObject({ state: "ok" });
    expect(part(s, "ports").detail).toContain("eth0 10.0.2.15/24");
    expect(part(s, "boot").detail).toContain("booted slot A (committed)");
    const t = performance.now();
    await until("containerd and dockerd running", async () => (part(await status(), "services").state === "ok" ? true : undefined), 300_000, 2000);
    timings.firstBootServicesAfterHealth = since(t);
  }, 900_000);

  test("a container app deployed through the API inside the device reaches RUNNING", async () => {
    const r = await api("PUT", "/config", appConfig());
    expect([200, 201]).toContain(r.status);
    timings.appRunning = await waitAppRunning("first deploy");
    log(`app RUNNING ${timings.appRunning} s after PUT /config`);
    expect(await guest("docker ps --filter label=evebox.app=" + APP + " --format '{{.Status}}'")).toMatch(/^Up/);
  }, 420_000);

  test("a port configuration that loses the LAN is replaced by the last working one", async () => {
    // eth0 static in TEST-NET-1, behind a gateway nobody answers for: the device falls off the LAN, then back.
    const bad = appConfig({
      networks: [{ id: NET, type: "V4", ip: { dhcp: "Static", subnet: "192.0.2.0/24", gateway: "192.0.2.1", dns: ["192.0.2.1"] } }],
      systemAdapterList: [{ name: "eth0", uplink: true, networkUUID: NET, addr: "192.0.2.10" }],
    });
    const r = await api("PUT", "/config", bad);
    expect([200, 201]).toContain(r.status);
    const t = performance.now();
    await device!.waitSerial(/did not work .*went back to the last working one/, 120_000);
    await health();
    timings.portFallback = since(t);
    await login().catch(() => undefined);
    const s = await status();
    expect(part(s, "ports").detail).toMatch(/eth0 10\.0\.2\.15\/24.*did not work/);
    const events = (await api("GET", "/events/recent?limit=200")).body.events;
    expect(events.some((e: any) => e.type === "ports.fallback")).toBe(true);
    expect(await appState()).toBe("RUNNING");
  }, 240_000);

  test("orphans are reaped: no zombies after many short-lived children; evebox's own children keep their exit statuses", async () => {
    const before = Number(part(await status(), "init").detail.match(/(\d+) orphans reaped/)![1]);
    // Each subshell exits at once; its background sleep is re-parented to PID 1 and exits a moment later.
    await guest("i=0; while [ $i -lt 300 ]; do (sleep 0.0$((i % 10)) &); i=$((i + 1)); done; sleep 5");
    const zombies = await guest("ps -o pid,ppid,stat,comm | awk '$3 ~ /^Z/' | wc -l");
    expect(Number(zombies.trim())).toBe(0);
    const children = await guest("cat /proc/1/task/*/children | wc -w; for p in $(cat /proc/1/task/*/children); do cut -d' ' -f3 /proc/$p/stat; done | grep -c Z || true");
    expect(Number(children.trim().split("\n").pop())).toBe(0);
    const after = Number(part(await status(), "init").detail.match(/(\d+) orphans reaped/)![1]);
    expect(after - before).toBeGreaterThanOrEqual(300);
    // evebox still runs its own commands and sees how they end (a stolen exit status would hang the app runtime).
    expect((await api("POST", `/apps/${APP}/restart`)).status).toBe(200);
    await until("the app restarted and RUNNING", async () => ((await appState()) === "RUNNING" ? true : undefined), 120_000, 2000);
  }, 240_000);

  test("a service that dies is started again with backoff and reported; the device and the app carry on", async () => {
    const mark = device!.serial().length;
    await guest("kill -9 $(pidof dockerd)");
    await device!.waitSerial(/dockerd: killed by SIGKILL after [\d.]+ s; starting again in \d+ s \(start 2\)/, 60_000, mark);
    await until("dockerd running again", async () => (/dockerd running/.test(part(await status(), "services").detail) ? true : undefined), 180_000, 2000);
    // Without live-restore the restarted engine stops what ran; evebox's supervision starts the app again.
    timings.appAfterDockerdKill = await waitAppRunning("after dockerd was killed");
    // The CLI inside the device answers over the local socket (EVEBOX_DATA=/ in the shell).
    expect(await guest("evebox status")).toMatch(/services\s+ok\s+containerd running, dockerd running/);
  }, 420_000);

  test("a full PERSIST: the device stays manageable and reports it", async () => {
    await guest("fallocate -l $(( $(df -k /persist | awk 'NR==2 {print $4}') * 1024 - 4096 )) /persist/fill");
    await until("the init part reports the full disk", async () => (/almost full/.test(part(await status(), "init").detail) ? true : undefined), 60_000, 2000);
    // Logging in (a write) and reading the status still work; so does a change of config, or it is refused cleanly.
    consoleApi().cookie = "";
    await login();
    expect((await api("GET", "/status")).status).toBe(200);
    const r = await api("PUT", "/config?dryRun=1", appConfig());
    expect(r.status).toBeLessThan(500);
    await guest("rm /persist/fill");
    expect((await health()).ok).toBe(true);
  }, 180_000);

  test("reboot through the API (into slot B, on trial): an orderly stop, and the app runs again", async () => {
    // Ask the boot loader to try slot B once (what a base-OS update does after writing B).
    await guest(
      "mount -o remount,rw /efi && " +
        `{ printf '# GRUB Environment Block\\nevebox_active=A\\nevebox_try=B\\nevebox_trying=\\nevebox_cmdline=${CMDLINE}\\n'; } > /tmp/env && ` +
        "head -c $((1024 - $(wc -c < /tmp/env))) /dev/zero | tr '\\0' '#' >> /tmp/env && cp /tmp/env /efi/EFI/BOOT/grubenv && sync && mount -o remount,ro /efi",
    );
    shell?.close();
    shell = null;
    const mark = device!.serial().length;
    const r = await api("POST", "/device/reboot");
    expect(r.status).toBe(202);
    const t = performance.now();
    const down = await device!.waitSerial(/reboot: now/, 180_000, mark);
    timings.orderlyStop = since(t);
    const stopLog = device!.serial().slice(mark, down.end);
    // The steps and their times, for a run where a step was slow or hung (each is bounded; the line names it).
    for (const l of stopLog.split(/\r?\n/).filter((l) => /reboot[ :(]|evebox: stopping|no end after/.test(l))) log(`  ${l.trim()}`);
    expect(stopLog).toContain("reboot: stopped the services");
    expect(stopLog).toContain("reboot: unmounted the file systems");
    expect(stopLog).not.toContain("/persist is busy"); // the store closed its files (it once kept them open)
    const ready = await device!.waitSerial(/evebox: console ready/, 240_000, down.end);
    await health();
    timings.rebootToHealth = since(t);
    log(`reboot: orderly stop in ${timings.orderlyStop} s, console ready again at +${(ready.seconds - down.seconds).toFixed(1)} s`);
    await login();
    expect(part(await status(), "boot").detail).toContain("booted slot B (trying)");
    timings.appAfterReboot = await waitAppRunning("after the reboot");
  }, 600_000);

  test("a power cut: back on the committed slot (the try was once), the store intact, the app back", async () => {
    const version = (await status()).device.configVersion;
    await device!.kill();
    extraNics = true;
    const b = await boot("after a power cut");
    timings.powerCutHealth = b.health;
    await login(); // the admin password survived: the store is intact
    const s = await status();
    expect(s.device.configVersion).toBe(version);
    expect(part(s, "boot").detail).toMatch(/booted slot A \(fell-back\)/);
    // The boot loader's environment, as the device reads it: A committed, the try used up (GRUB cleared it), and
    // the failed trial of B settled by evebox.
    const env = await until("the failed trial cleared in the boot environment", async () => {
      const e = parseBootEnv(await guest("cat /efi/EFI/BOOT/grubenv"));
      return e.evebox_trying === "" ? e : undefined;
    }, 60_000, 2000);
    expect(env).toMatchObject({ evebox_active: "A", evebox_try: "", evebox_trying: "", evebox_cmdline: CMDLINE });
    timings.appAfterPowerCut = await waitAppRunning("after the power cut");
    const history = (await api("GET", "/config/history")).body;
    expect(JSON.stringify(history)).toContain(`"version":${version}`);
  }, 600_000);

  test("device ports on a VLAN and on a bond (the image's kernel has 8021q and bonding): made by init, tested, failing over, kept through a fallback, and gone with the config", async () => {
    // The ports by MAC (the kernel names them in probe order).
    const byMac = new Map((await guest("for i in /sys/class/net/*; do echo \"${i##*/} $(cat $i/address)\"; done")).trim().split("\n").map((l) => l.trim().split(/\s+/)).map(([n, m]) => [m!, n!]));
    const nic = (id: (typeof NICS)[number]["id"]) => {
      const n = byMac.get(NICS.find((x) => x.id === id)!.mac);
      if (!n) throw new Error(`no interface with ${id}'s MAC: ${JSON.stringify([...byMac])}`);
      return n;
    };
    const [trunk, bm0, bm1] = [nic("trunk"), nic("bm0"), nic("bm1")];
    // The other ends: VLAN 100 on the trunk's peer (its untagged side has no address, so only tagged frames get
    // an answer), and the bond's peer, in a namespace of their own.
    await guest(
      [
        "/usr/sbin/ip netns add peer",
        `/usr/sbin/ip link set ${nic("trunkpeer")} netns peer`,
        `/usr/sbin/ip link set ${nic("bondpeer")} netns peer`,
        `/usr/sbin/ip -n peer link set ${nic("trunkpeer")} up`,
        `/usr/sbin/ip -n peer link add link ${nic("trunkpeer")} name tp.100 type vlan id 100`,
        "/usr/sbin/ip -n peer addr add 198.51.100.1/24 dev tp.100",
        "/usr/sbin/ip -n peer link set tp.100 up",
        `/usr/sbin/ip -n peer addr add 203.0.113.1/24 dev ${nic("bondpeer")}`,
        `/usr/sbin/ip -n peer link set ${nic("bondpeer")} up`,
        // VLAN 200 of the same trunk: an OT network with its own DHCP server, for a Switch instance's app.
        `/usr/sbin/ip -n peer link add link ${nic("trunkpeer")} name tp.200 type vlan id 200`,
        "/usr/sbin/ip -n peer addr add 192.168.200.1/24 dev tp.200",
        "/usr/sbin/ip -n peer link set tp.200 up",
        "printf 'start 192.168.200.100\\nend 192.168.200.150\\ninterface tp.200\\nlease_file /tmp/udhcpd.leases\\npidfile /tmp/udhcpd.pid\\nopt subnet 255.255.255.0\\nopt router 192.168.200.1\\n' > /tmp/udhcpd.conf",
        "touch /tmp/udhcpd.leases",
        "/usr/sbin/ip netns exec peer busybox udhcpd /tmp/udhcpd.conf",
      ].join(" && "),
    );
    // The app on a Local network instance whose port is the bond: NATed out of a link init holds.
    const onBond = appConfig();
    // And a second interface on a Switch instance on VLAN 200 of the trunk (the network part's VLAN, not init's).
    const all = [{ id: 1, matches: [{ type: "ip", value: "0.0.0.0/0" }] }];
    onBond.apps[0] = { ...onBond.apps[0]!, interfaces: [{ name: "eth0", networkId: NI_BOND, acls: all }, { name: "eth1", networkId: NI_OT, acls: all }] } as (typeof onBond.apps)[0];
    const vlanBond = appConfig({
      apps: onBond.apps,
      networkInstances: [
        {
          uuidandversion: { uuid: NI_BOND, version: "1" },
          displayname: "on-bond",
          instType: "ZnetInstLocal",
          activate: true,
          port: { name: "lag0" },
          ip: { subnet: "10.77.0.0/24", gateway: "10.77.0.1", dhcpRange: { start: "10.77.0.10", end: "10.77.0.50" } },
        },
        { uuidandversion: { uuid: NI_OT, version: "1" }, displayname: "ot-vlan200", instType: "ZnetInstSwitch", activate: true, port: { name: "ot.200" } },
      ],
      networks: [
        { id: NET_DHCP, type: "V4", ip: { dhcp: "Client" } },
        // The VLAN's gateway is its peer: the port test after applying ARPs it over the VLAN.
        { id: NET_VLAN, type: "V4", ip: { dhcp: "Static", subnet: "198.51.100.0/24", gateway: "198.51.100.1" } },
        { id: NET_BOND, type: "V4", ip: { dhcp: "Static", subnet: "203.0.113.0/24" } },
      ],
      vlans: [
        { logicallabel: "mgmt.100", interfaceName: "mgmt100", lowerLayerName: trunk, vlanId: 100 },
        { logicallabel: "ot.200", interfaceName: "ot200", lowerLayerName: trunk, vlanId: 200 },
      ],
      bonds: [{ logicallabel: "lag0", interfaceName: "lag0", lowerLayerNames: [bm0, bm1], bondMode: "BOND_MODE_ACTIVE_BACKUP", mii: { interval: 100 } }],
      systemAdapterList: [
        { name: "eth0", uplink: true, networkUUID: NET_DHCP },
        { name: "mgmt.100", networkUUID: NET_VLAN, addr: "198.51.100.2" },
        { name: "lag0", networkUUID: NET_BOND, addr: "203.0.113.2" },
      ],
    });
    const r = await api("PUT", "/config", vlanBond);
    expect([200, 201], JSON.stringify(r.body)).toContain(r.status);
    const version = r.body.version;
    const portsPart = async (re: RegExp) => {
      const p = part(await status(), "ports");
      return re.test(p.detail) ? p.detail : undefined;
    };
    // Tested after applying (the VLAN's gateway answering ARP over the VLAN), then reported as working.
    const upEvent = await until(`config version ${version}'s ports tested and working`, async () => {
      const events = (await api("GET", "/events/recent?limit=200")).body.events ?? [];
      return events.map((e: any) => e.message).find((m: string) => /ports up: .*evv[0-9a-f]{12} 198\.51\.100\.2\/24 static.*evg[0-9a-f]{12} 203\.0\.113\.2\/24 static/.test(m));
    }, 120_000, 2000);
    const [, vlan, bond] = (upEvent as string).match(/(evv[0-9a-f]{12}).*(evg[0-9a-f]{12})/)!;
    const applied = await portsPart(/\[config version/);
    expect(applied).toContain(`mgmt.100 (${vlan}, VLAN 100 on ${trunk}) 198.51.100.2/24`);
    expect(applied).toContain(`lag0 (${bond}, bond (active-backup) of ${bm0}, ${bm1}) 203.0.113.2/24 [config version ${version}]`);
    // Tagged traffic: the kernel's VLAN device, and the peer's VLAN interface answering.
    expect(await guest(`/usr/sbin/ip -d link show dev ${vlan}`)).toMatch(/vlan protocol 802\.1Q id 100/);
    expect(await guest(`/usr/sbin/ip -d link show dev ${vlan}`)).toContain("alias evebox vlan mgmt.100");
    await guest("ping -c 1 -W 3 198.51.100.1");
    // The bond: both members in it, one active; traffic carries on when the active member loses its cable.
    const bonding = () => guest(`cat /proc/net/bonding/${bond}`);
    const b1 = await bonding();
    expect(b1).toContain("Bonding Mode: fault-tolerance (active-backup)");
    expect(b1).toContain(`Slave Interface: ${bm0}`);
    expect(b1).toContain(`Slave Interface: ${bm1}`);
    await guest("ping -c 1 -W 3 203.0.113.1");
    const active = b1.match(/Currently Active Slave: (\S+)/)![1]!;
    const other = active === bm0 ? bm1 : bm0;
    await device!.setLink(active === bm0 ? "bm0" : "bm1", false);
    await until(`the bond failing over to ${other}`, async () => ((await bonding()).includes(`Currently Active Slave: ${other}`) ? true : undefined), 30_000, 1000);
    await until("the bond's peer answering through the other member", async () => ((await shell!.run("ping -c 1 -W 2 203.0.113.1", 10_000)).code === 0 ? true : undefined), 30_000, 1000);
    await device!.setLink(active === bm0 ? "bm0" : "bm1", true);
    // The app, restarted with its interface on the bond's instance, reaches the bond's peer (NAT out of the bond).
    await until("the app reaching the bond's peer through its network instance", async () => {
      const id = (await guest(`docker ps -q --filter label=evebox.app=${APP}`)).trim().split("\n")[0];
      if (!id) return undefined;
      return (await shell!.run(`docker exec ${id} /bin/busybox ping -c 1 -W 2 203.0.113.1`, 15_000)).code === 0 ? true : undefined;
    }, 120_000, 2000);
    expect(await guest(`docker ps --filter label=evebox.app=${APP} --format '{{.Status}}'`)).toMatch(/^Up/);
    // Its Switch interface: a lease from the OT network's DHCP server over VLAN 200, and that server answering.
    const ot = l2LinkName("vlan", "ot.200");
    expect(await guest(`/usr/sbin/ip -d link show dev ${ot}`)).toMatch(/master eb[0-9a-f]{12} .*\n[^]*vlan protocol 802\.1Q id 200/);
    await until("the app's Switch interface leased on VLAN 200, the OT network answering", async () => {
      const id = (await guest(`docker ps -q --filter label=evebox.app=${APP}`)).trim().split("\n")[0];
      if (!id) return undefined;
      const r = await shell!.run(`docker exec ${id} /bin/busybox sh -c '/bin/busybox ip -4 addr | /bin/busybox grep -q "inet 192\\.168\\.200\\.1[0-5][0-9]/24" && /bin/busybox ping -c 1 -W 2 192.168.200.1'`, 15_000);
      return r.code === 0 ? true : undefined;
    }, 120_000, 2000);

    // A new configuration without them, whose port fails: the device goes back to the VLAN and the bond, and
    // they stay (the network part, which removes links the config no longer names, leaves the ports' own be).
    const bad = appConfig({
      networks: [{ id: NET, type: "V4", ip: { dhcp: "Static", subnet: "192.0.2.0/24", gateway: "192.0.2.1", dns: ["192.0.2.1"] } }],
      systemAdapterList: [{ name: "eth0", uplink: true, networkUUID: NET, addr: "192.0.2.11" }],
    });
    const mark = device!.serial().length;
    expect([200, 201]).toContain((await api("PUT", "/config", bad)).status);
    await device!.waitSerial(/did not work .*went back to the last working one \(config version/, 120_000, mark);
    await health();
    await login().catch(() => undefined);
    await until("the VLAN and bond ports back", async () => portsPart(new RegExp(`mgmt\\.100 \\(${vlan}, .*198\\.51\\.100\\.2/24.*lag0 \\(${bond}, .*203\\.0\\.113\\.2/24`)), 60_000, 2000);
    const ifindex = async () => (await guest(`cat /sys/class/net/${vlan}/ifindex /sys/class/net/${bond}/ifindex`)).trim();
    const kept = await ifindex();
    // Two of the app runtime's passes (every 15 s) later: the same links, still carrying traffic.
    await Bun.sleep(32_000);
    expect(await ifindex()).toBe(kept);
    await guest("ping -c 1 -W 3 198.51.100.1 && ping -c 1 -W 3 203.0.113.1");

    // The config without ports at all: DHCP on every port again, and the links go.
    expect([200, 201]).toContain((await api("PUT", "/config", appConfig())).status);
    await until("the VLAN and the bond removed", async () => ((await shell!.run(`test -e /sys/class/net/${vlan} || test -e /sys/class/net/${bond}`, 10_000)).code !== 0 ? true : undefined), 120_000, 2000);
    await until("the default ports working", async () => portsPart(/eth0 10\.0\.2\.15\/24.*\[default/), 120_000, 2000);
    expect(await appState()).toBe("RUNNING");
  }, 600_000);

  test("the controller's reboot counter: noted, then a bump reboots the device once, apps halted first; the boot reason reported", async () => {
    // The test EVE controller on the host's loopback, 10.0.2.2 from inside, its TLS certificate for that address.
    const pki = await makeControllerPki({ tlsIps: ["127.0.0.1", "10.0.2.2"] });
    const ctl = await TestController.start(pki);
    try {
      const deviceCert = await guest("cat /config/device.cert.pem");
      const { uuid } = await ctl.addDevice(deviceCert);
      let seconds = Math.floor(Date.now() / 1000);
      const config = (counter: number) =>
        ctl.setConfig(uuid, { ...appConfig(), id: { version: String(counter + 1) }, configTimestamp: { seconds: ++seconds, nanos: 0 }, reboot: { counter }, configItems: [{ key: "timer.config.interval", value: "5" }] });
      const dinfo = (pred: (d: any) => boolean) => () => [...ctl.infos].reverse().find((i) => i.dinfo && pred(i.dinfo))?.dinfo;
      config(1);
      expect((await api("PUT", "/controller", { url: `https://10.0.2.2:${ctl.listenPort}`, rootCertificate: pki.root.cert })).status).toBe(200);
      await until("onboarded, counter 1 noted", async () => dinfo((d) => d.rebootConfigCounter === 1)(), 120_000, 1000);
      // The device's ports as EVE reports them (systemAdapter): the configuration in use, tested, with eth0's lease.
      const sa: any = (await until("the ports in ZInfoDevice.systemAdapter", async () => dinfo((d) => !!d.systemAdapter?.status?.[0]?.lastSucceeded)(), 60_000, 1000)).systemAdapter;
      const eth0 = sa.status[0].ports.find((p: any) => p.ifname === "eth0");
      expect(eth0).toMatchObject({ name: "eth0", isMgmt: true, dhcpType: 4, IPAddrs: ["10.0.2.15"], subnet: "10.0.2.0/24", gateway: "10.0.2.2", up: true });
      expect(device!.serial()).not.toMatch(/reboot \(.*the controller/);
      await waitAppRunning("managed");
      const mark = device!.serial().length;
      config(2);
      const t = performance.now();
      const down = await device!.waitSerial(/reboot: now/, 240_000, mark);
      timings.counterRebootStop = since(t);
      const stopLog = device!.serial().slice(mark, down.end);
    // The steps and their times, for a run where a step was slow or hung (each is bounded; the line names it).
    for (const l of stopLog.split(/\r?\n/).filter((l) => /reboot[ :(]|evebox: stopping|no end after/.test(l))) log(`  ${l.trim()}`);
      expect(stopLog).toMatch(/reboot requested by the controller \(counter 2\): halting the apps, then rebooting/);
      expect(stopLog).toContain("reboot (requested by the controller (reboot counter 2))");
      const ready = await device!.waitSerial(/evebox: console ready/, 240_000, down.end);
      await health();
      log(`controller reboot: down in ${timings.counterRebootStop} s, console ready again at +${(ready.seconds - down.seconds).toFixed(1)} s`);
      const d = await until("the boot reason at the controller", async () => dinfo((x) => x.lastBootReason === 2 && x.rebootConfigCounter === 2)(), 120_000, 1000);
      expect(d.lastRebootReason).toBe("reboot requested by the controller (counter 2)");
      expect(Number(d.lastRebootTime!.seconds)).toBeGreaterThan(seconds - 600);
      // The same counter again after the restart: no second reboot (three config requests later).
      const after = ctl.requests.filter((r) => r.path.endsWith("/config")).length;
      await until("three more config requests", async () => (ctl.requests.filter((r) => r.path.endsWith("/config")).length >= after + 3 ? true : undefined), 60_000, 1000);
      expect(device!.serial().slice(ready.end)).not.toContain("reboot: now");
      await login();
      expect(part(await status(), "ops").detail).toContain("last boot: reboot requested by the controller (counter 2)");
      timings.appAfterCounterReboot = await waitAppRunning("after the controller's reboot");
      // Back to local mode for what follows (from the next boot on).
      await guest("rm -f /config/server");
    } finally {
      await ctl.close();
    }
  }, 900_000);

  test("a damaged PERSIST is formatted again, reported, and the device comes up for setup", async () => {
    await device!.kill();
    disk.damage("PERSIST");
    await boot("with a damaged PERSIST");
    expect(device!.serial()).toMatch(/PERSIST \(\/dev\/vda5\) held no ext4 file system \(damaged or overwritten\): formatted it/);
    expect((await health()).setupRequired).toBe(true);
    const token = (await guest("cat /run/setup-token")).trim();
    expect((await api("POST", "/setup", { token, password: PASSWORD })).status).toBe(200);
    await login();
    const events = (await api("GET", "/events/recent?limit=100")).body.events;
    const formatted = events.filter((e: any) => e.type === "init.persist-formatted");
    if (!formatted.length) log(`the events since the boot: ${events.map((e: any) => e.type).join(", ")}`);
    expect(formatted.map((e: any) => e.message)).toEqual([expect.stringMatching(/damaged/)]);
  }, 420_000);

  test("the ACPI power button shuts the device down in order, and it powers off", async () => {
    const mark = device!.serial().length;
    await device!.powerButton();
    const t = performance.now();
    const down = await device!.waitSerial(/shutdown: now/, 120_000, mark);
    const log = device!.serial().slice(mark, down.end);
    expect(log).toContain("shutdown (the power button): stopping");
    expect(log).toContain("shutdown: stopped the services");
    const code = await Promise.race([device!.proc.exited, Bun.sleep(60_000).then(() => "still running")]);
    expect(code).toBe(0); // QEMU exits when its guest powers off
    timings.powerButtonToOff = since(t);
  }, 240_000);
});
