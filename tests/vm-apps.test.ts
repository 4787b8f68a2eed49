// VM apps end to end through PUT /api/v1/config on the compiled binary: the tiny test guest (tests/support/guest)
// served by an HTTP datastore on loopback, run under real QEMU (TCG here), its serial console read and typed into
// over the console WebSocket. Every QEMU started here is killed in afterAll.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { totalmem } from "node:os";
import { join } from "node:path";
import { ask, openConsole } from "./support/app-console.ts";
import { waitFor } from "./support/wait.ts";
import { bearer as newToken, deviceStatus, putConfig, setUp, waitForApp } from "./support/api.ts";
import { Client, cleanup, type Evebox, startEvebox, tempDataDir } from "./support/evebox.ts";
import { ensureGuestImage, GUEST_READY, type GuestImage } from "./support/guest/image.ts";
import { qemuPids } from "./support/qemu-pids.ts";
import { rfbSecurityTypes } from "./support/vnc.ts";

const DS = "6b0a6b52-7f36-4a55-8c3e-2a3f5c0d1e20";
let seq = 0;
const uid = (kind: number) => `7c000000-0000-4000-8${kind.toString(16).padStart(3, "0")}-${(++seq).toString(16).padStart(12, "0")}`;

let guest: GuestImage;
let images: Record<string, { bytes: Uint8Array; sha: string }>;
let http: ReturnType<typeof Bun.serve>;
let evebox: Evebox;
let dataDir: string;
let api: Client;
let bearer: Record<string, string>;
const PASSWORD = "vm-apps-test-password";

interface VmDef {
  name: string;
  image?: "guest" | "html" | "zeros";
  memoryKiB?: number;
  /** maxmem (hot-plug headroom); the default is memory (none). */
  maxmemKiB?: number;
  /** VNC (enable_vnc) with EVE's vncDisplay and vncPasswd. */
  vnc?: { display: number; password: string };
  activate?: boolean;
  restart?: number;
  purge?: number;
  userData?: string;
  ids?: { app: string; ct: string; vol: string };
}

function doc(vms: VmDef[], configItems: { key: string; value: string }[] = []) {
  const d: any = { datastores: [{ id: DS, dType: "DsHttp", fqdn: `http://127.0.0.1:${http.port}`, dpath: "images" }], contentInfo: [], volumes: [], apps: [], configItems };
  for (const v of vms) {
    v.ids ??= { app: uid(1), ct: uid(2), vol: uid(3) };
    const image = v.image ?? "guest";
    const file = { guest: "guest.qcow2", html: "disk.img", zeros: "zeros.img" }[image];
    d.contentInfo.push({ uuid: v.ids.ct, dsId: DS, URL: file, iformat: image === "guest" ? "QCOW2" : "RAW", sha256: images[image]!.sha, displayName: `${v.name}-image` });
    d.volumes.push({ uuid: v.ids.vol, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: v.ids.ct }, displayName: `${v.name}-disk`, maxsizebytes: String(96 << 20), generationCount: "1" });
    d.apps.push({
      uuidandversion: { uuid: v.ids.app, version: "1" },
      displayname: v.name,
      activate: v.activate ?? true,
      fixedresources: {
        memory: v.memoryKiB ?? 131072,
        maxmem: v.maxmemKiB ?? v.memoryKiB ?? 131072,
        vcpus: 1,
        virtualizationMode: "HVM",
        ...(v.vnc ? { enableVnc: true, vncDisplay: v.vnc.display, vncPasswd: v.vnc.password } : {}),
      },
      volumeRefList: [{ uuid: v.ids.vol }],
      interfaces: [],
      ...(v.userData ? { userData: Buffer.from(v.userData).toString("base64") } : {}),
      ...(v.restart ? { restart: { counter: v.restart } } : {}),
      ...(v.purge ? { purge: { counter: v.purge } } : {}),
    });
  }
  return d;
}

const put = (vms: VmDef[]) => putConfig(api, doc(vms));
const status = () => deviceStatus(api);
const waitApp = (name: string, pred: (a: any) => boolean, what: string, timeoutMs = 90_000) => waitForApp(api, name, pred, what, timeoutMs);

const sha256 = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");
const overlayOf = (v: VmDef) => join(dataDir, "persist", "volumes", `${v.ids!.vol}-1`, "disk.qcow2");

beforeAll(async () => {
  guest = await ensureGuestImage();
  const qcow = new Uint8Array(readFileSync(guest.disk));
  const html = new Uint8Array(readFileSync(guest.notADisk));
  const zeros = new Uint8Array(1 << 20); // a valid raw disk with nothing to boot
  images = { guest: { bytes: qcow, sha: sha256(qcow) }, html: { bytes: html, sha: sha256(html) }, zeros: { bytes: zeros, sha: sha256(zeros) } };
  const files: Record<string, Uint8Array> = { "/images/guest.qcow2": qcow, "/images/disk.img": html, "/images/zeros.img": zeros };
  http = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) => {
      const f = files[new URL(req.url).pathname];
      return f ? new Response(f as Uint8Array<ArrayBuffer>) : new Response("no", { status: 404 });
    },
  });
  dataDir = tempDataDir("evebox-vm-");
  evebox = await startEvebox({ dataDir, env: { EVEBOX_METRICS_INTERVAL_MS: "1000" } });
  api = await setUp(evebox, PASSWORD);
  bearer = await newToken(api, "vm-apps-test");
}, 300_000);

const all: VmDef[] = [];

afterAll(async () => {
  await put([]).catch(() => undefined);
  await waitFor("all apps removed", async () => ((await status()).apps.length === 0 ? true : undefined), 60_000).catch(() => undefined);
  await evebox?.stop();
  for (const v of all) for (const pid of qemuPids(v.ids?.app ?? "none")) process.kill(pid, "SIGKILL");
  http?.stop(true);
  cleanup(dataDir);
}, 120_000);

const vm1: VmDef = { name: "vm1", userData: "#cloud-config\n# vm-apps-seed-marker\n" };
all.push(vm1);

describe("a VM app through PUT /api/v1/config", () => {
  test("the disk image is downloaded, verified and booted: RUNNING, on TCG (shown per VM), a vms part", async () => {
    const t0 = performance.now();
    await put([vm1]);
    const app = await waitApp("vm1", (a) => a.state === "RUNNING", "RUNNING");
    console.log(`config to RUNNING: ${Math.round(performance.now() - t0)} ms`);
    expect(app.kind).toBe("vm");
    expect(["tcg", "kvm"]).toContain(app.accelerator);
    expect(qemuPids(vm1.ids!.app)).toEqual([app.pid]);
    const s = await status();
    const part = s.parts.find((p: any) => p.name === "vms");
    expect(part.detail).toMatch(/1 VM running; (KVM|TCG)/);
    const ct = s.contentTrees.find((c: any) => c.uuid === vm1.ids!.ct);
    expect(ct.state).toBe("LOADED");
    // The volume is a qcow2 overlay over the cached image, grown to maxsizebytes.
    const info = JSON.parse(await Bun.$`qemu-img info -U --output=json ${overlayOf(vm1)}`.text());
    expect(info["virtual-size"]).toBe(96 << 20);
    expect(info["backing-filename"]).toContain(images.guest!.sha);
  }, 120_000);

  test("the console WebSocket shows the boot line and the cloud-init user-data; a typed command is answered", async () => {
    const c = await openConsole(evebox.url, vm1.ids!.app, bearer);
    try {
      await c.waitFor(`${GUEST_READY} on /dev/ttyS0`, 60_000);
      expect(c.text()).toContain("evebox-guest: user-data: # vm-apps-seed-marker");
      expect(await ask(c, "echo $((6*7))")).toBe("42");
      expect(await ask(c, "cat /proc/cmdline")).toContain("console=ttyS0");
      // A resize control message is accepted (a serial console has no size: nothing to do, nothing breaks).
      c.send(JSON.stringify({ type: "resize", cols: 100, rows: 30 }));
      expect(await ask(c, "echo still-here")).toBe("still-here");
    } finally {
      c.close();
    }
    // The serial console is the VM app's log too: boot line, user data and what was typed, escapes removed.
    const lines = await waitFor(
      "the serial output in the app's log",
      async () => {
        const r = (await api.json("GET", `/api/v1/apps/${vm1.ids!.app}/logs?limit=5000`)).body.lines as { message: string }[];
        const text = r.map((l) => l.message);
        return text.some((m) => m.includes("still-here")) ? text : undefined;
      },
      15_000,
    );
    expect(lines.some((m) => m.includes(`${GUEST_READY} on /dev/ttyS0`))).toBe(true);
    expect(lines.some((m) => m.includes("evebox-guest: user-data: # vm-apps-seed-marker"))).toBe(true);
    expect(lines.every((m) => !m.includes("\x1b") && !m.includes("\r"))).toBe(true);
  }, 90_000);

  test("halt (activate=false) powers the guest off; activate again boots it on the same disk", async () => {
    const c = await openConsole(evebox.url, vm1.ids!.app, bearer);
    // A mark on the disk: it must survive a halt and a restart, and go with a purge.
    expect(await ask(c, "printf DISK-MARK | dd of=/dev/vda bs=512 seek=150000 conv=notrunc 2>/dev/null; sync; echo ok")).toBe("ok");
    c.close();
    vm1.activate = false;
    await put([vm1]);
    await waitApp("vm1", (a) => a.state === "HALTED", "HALTED", 60_000);
    expect(qemuPids(vm1.ids!.app)).toEqual([]);
    vm1.activate = true;
    await put([vm1]);
    const app = await waitApp("vm1", (a) => a.state === "RUNNING", "RUNNING again");
    const c2 = await openConsole(evebox.url, vm1.ids!.app, bearer);
    try {
      await c2.waitFor(GUEST_READY, 60_000);
      expect(await ask(c2, "dd if=/dev/vda bs=512 skip=150000 count=1 2>/dev/null | head -c 9")).toBe("DISK-MARK");
    } finally {
      c2.close();
    }
    expect(qemuPids(vm1.ids!.app)).toEqual([app.pid]);
  }, 150_000);

  test("a bumped restart counter reboots the VM (new QEMU, disk kept); a bumped purge counter gives it a fresh disk", async () => {
    const before = (await status()).apps.find((a: any) => a.name === "vm1").pid;
    vm1.restart = 1;
    await put([vm1]);
    const restarted = await waitApp("vm1", (a) => a.state === "RUNNING" && a.pid !== before, "RUNNING with a new QEMU");
    let c = await openConsole(evebox.url, vm1.ids!.app, bearer);
    await c.waitFor(GUEST_READY, 60_000);
    expect(await ask(c, "dd if=/dev/vda bs=512 skip=150000 count=1 2>/dev/null | head -c 9")).toBe("DISK-MARK");
    c.close();

    // (Not the overlay's inode: ext4 hands a freed inode number straight to the next file. The mark is the proof.)
    expect(existsSync(overlayOf(vm1))).toBe(true);
    vm1.purge = 1;
    await put([vm1]);
    await waitApp("vm1", (a) => a.state === "RUNNING" && a.pid !== restarted.pid, "RUNNING after the purge");
    expect(existsSync(overlayOf(vm1))).toBe(true);
    c = await openConsole(evebox.url, vm1.ids!.app, bearer);
    try {
      await c.waitFor(GUEST_READY, 60_000);
      expect(await ask(c, "dd if=/dev/vda bs=512 skip=150000 count=1 2>/dev/null | head -c 9 | tr -d '\\0' | wc -c")).toBe("0");
    } finally {
      c.close();
    }
  }, 180_000);

  test("evebox restarts: the VM is adopted, never rebooted — the guest's uptime kept growing", async () => {
    let c = await openConsole(evebox.url, vm1.ids!.app, bearer);
    const before = Number((await ask(c, "cut -d' ' -f1 /proc/uptime")).trim());
    c.close();
    const pid = (await status()).apps.find((a: any) => a.name === "vm1").pid;
    expect(await evebox.stop()).toBe(0);
    expect(qemuPids(vm1.ids!.app)).toEqual([pid]);
    await Bun.sleep(1000); // deliberately: the guest runs on without evebox for a while (its uptime must keep growing)
    evebox = await startEvebox({ dataDir, env: { EVEBOX_METRICS_INTERVAL_MS: "1000" } });
    api = new Client(evebox.url);
    expect((await api.json("POST", "/api/v1/login", { password: PASSWORD })).status).toBe(200);
    const app = await waitApp("vm1", (a) => a.state === "RUNNING", "RUNNING after the restart of evebox", 30_000);
    expect(app.pid).toBe(pid);
    c = await openConsole(evebox.url, vm1.ids!.app, bearer);
    try {
      // The serial history survives the restart of evebox (QEMU's log of the port).
      await c.waitFor(GUEST_READY, 5_000);
      const after = Number((await ask(c, "cut -d' ' -f1 /proc/uptime")).trim());
      expect(after).toBeGreaterThan(before + 1);
    } finally {
      c.close();
    }
    expect(evebox.output()).toContain("VM adopted");
  }, 90_000);

  test("kill -9 of QEMU: the app is reported BROKEN with the reason and started again (backoff)", async () => {
    const pid = (await status()).apps.find((a: any) => a.name === "vm1").pid;
    process.kill(pid, "SIGKILL");
    const back = await waitApp("vm1", (a) => a.state === "RUNNING" && a.pid !== pid, "RUNNING with a new QEMU", 90_000);
    expect(back.restarts).toBeGreaterThanOrEqual(1);
    const events = (await api.json("GET", "/api/v1/events/recent?limit=200")).body.events;
    const broken = events.find((e: any) => e.objectId === vm1.ids!.app && e.data?.state === "BROKEN");
    expect(broken?.message).toMatch(/QEMU exited unexpectedly.*restarting/);
    expect(qemuPids(vm1.ids!.app)).toEqual([back.pid]);
    const c = await openConsole(evebox.url, vm1.ids!.app, bearer);
    try {
      await c.waitFor(GUEST_READY, 60_000);
    } finally {
      c.close();
    }
  }, 150_000);

  test("per-VM CPU, memory, disk I/O and network are sampled into the metrics history (the app page's charts)", async () => {
    // Sampled every second here (EVEBOX_METRICS_INTERVAL_MS): QEMU's cgroup or process, its /proc/<pid>/io, its taps.
    const s = await waitFor(
      "CPU and memory samples of vm1",
      async () => {
        const r = await api.json("GET", `/api/v1/metrics/history?object=${vm1.ids!.app}&range=1h`);
        const series = r.body?.series;
        return series && series.cpuPercent.filter((v: number | null) => v !== null).length >= 2 ? series : undefined;
      },
      { timeoutMs: 30_000, everyMs: 500 },
    );
    const known = (col: (number | null)[]) => col.filter((v): v is number => v !== null);
    expect(Math.max(...known(s.cpuPercent))).toBeGreaterThan(0); // a TCG guest keeps a CPU busy
    expect(Math.min(...known(s.memoryBytes))).toBeGreaterThan(16 << 20);
    // Rates are known from the second sample on (this guest has no tap: its network rate is a known 0).
    expect(known(s.diskReadBps).length).toBeGreaterThan(0);
    expect(known(s.netRxBps).length).toBeGreaterThan(0);
  }, 40_000);
});

describe("bad input: a clear error on that app, the others unaffected, no QEMU left", () => {
  const html: VmDef = { name: "not-a-disk", image: "html" };
  const huge: VmDef = { name: "too-much-memory", memoryKiB: Math.ceil((totalmem() * 4) / 1024) };
  const noBoot: VmDef = { name: "never-boots", image: "zeros" };
  all.push(html, huge, noBoot);

  test("more memory than the host has refused whole; an HTML page as a RAW disk, a disk with nothing to boot", async () => {
    const pid = (await status()).apps.find((a: any) => a.name === "vm1").pid;
    // More memory than the device has is refused with the document, at the field, before anything changes.
    const refused = await api.json("PUT", "/api/v1/config", doc([vm1, html, huge, noBoot]));
    expect(refused.status).toBe(400);
    expect(JSON.stringify(refused.body)).toMatch(/fixedresources\.memory.*more than the device has/);
    expect((await status()).apps.find((x: any) => x.name === "too-much-memory")).toBeUndefined();
    expect((await status()).apps.find((x: any) => x.name === "vm1")).toMatchObject({ state: "RUNNING", pid });
    await put([vm1, html, noBoot]);
    const a = await waitApp("not-a-disk", (x) => !!x.error, "in error");
    expect(a.error).toMatch(/not a raw disk image: it is an HTML or XML document/);
    const c = await waitApp("never-boots", (x) => !!x.error, "in error", 120_000);
    expect(c.error).toMatch(/did not boot: the firmware found no bootable device/);
    for (const v of [html, huge, noBoot]) expect(qemuPids(v.ids!.app)).toEqual([]);
    const vm = (await status()).apps.find((x: any) => x.name === "vm1");
    expect(vm).toMatchObject({ state: "RUNNING", pid, error: null });
  }, 180_000);

});

describe("a running VM's VmConfig, then removal", () => {
  const hot: VmDef = { name: "hot-memory", memoryKiB: 256 * 1024, maxmemKiB: 512 * 1024 };
  all.push(hot);

  test("memory raised within maxmem is plugged into the running VM (same QEMU, the status shows it); lowered, the VM restarts", async () => {
    await put([vm1, hot]);
    const first = await waitApp("hot-memory", (a) => a.state === "RUNNING", "RUNNING");
    expect(first.memory).toEqual({ kib: 256 * 1024, pluggedKiB: 0, maxKiB: 512 * 1024 });
    hot.memoryKiB = 384 * 1024;
    await put([vm1, hot]);
    const plugged = await waitApp("hot-memory", (a) => a.memory?.kib === 384 * 1024, "with 384 MiB");
    expect(plugged).toMatchObject({ state: "RUNNING", pid: first.pid, error: null, memory: { pluggedKiB: 128 * 1024, maxKiB: 512 * 1024 } });
    expect(qemuPids(hot.ids!.app)).toEqual([first.pid]);
    hot.memoryKiB = 256 * 1024;
    await put([vm1, hot]);
    const restarted = await waitApp("hot-memory", (a) => a.state === "RUNNING" && a.pid !== first.pid, "RUNNING with a new QEMU");
    expect(restarted.memory).toEqual({ kib: 256 * 1024, pluggedKiB: 0, maxKiB: 512 * 1024 });
  }, 180_000);

  const vnc: VmDef = { name: "vnc-tcp", vnc: { display: 93, password: "vnc-pass" } };
  all.push(vnc);

  test("app.allow.vnc with vncPasswd: VNC on TCP 5900 + vncDisplay asking for VNC authentication; without the setting no port, and the app says why", async () => {
    await put([vm1]); // the memory test's VM gone: two TCG guests at a time at most
    await putConfig(api, doc([vm1, vnc], [{ key: "app.allow.vnc", value: "true" }]));
    const open = await waitApp("vnc-tcp", (a) => a.state === "RUNNING", "RUNNING");
    expect(open.vncPort).toBe(5993);
    expect(open.notApplied).toBeUndefined();
    expect(await rfbSecurityTypes(5993)).toEqual({ version: "RFB 003.008\n", types: [2] });
    await put([vm1, vnc]);
    const closed = await waitApp("vnc-tcp", (a) => a.state === "RUNNING" && a.pid !== open.pid, "RUNNING again without the TCP port");
    expect(closed.vncPort).toBeUndefined();
    expect(closed.notApplied).toEqual(["vncDisplay/vncPasswd (TCP port 5993): app.allow.vnc is false, so VNC is served only through the console (a unix socket)"]);
    expect(await rfbSecurityTypes(5993)).toBe("ECONNREFUSED");
  }, 120_000);

  test("removing the apps stops every QEMU and removes their volumes", async () => {
    await put([]);
    await waitFor("all apps removed", async () => ((await status()).apps.length === 0 ? true : undefined), 60_000);
    for (const v of all) expect(qemuPids(v.ids!.app)).toEqual([]);
    const vols = join(dataDir, "persist", "volumes");
    expect(existsSync(vols) ? readdirSync(vols).filter((n) => !n.startsWith(".")) : []).toEqual([]);
    expect(existsSync(join(dataDir, "run", "vms")) ? readdirSync(join(dataDir, "run", "vms")) : []).toEqual([]);
  }, 90_000);
});
