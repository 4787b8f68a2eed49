// Base OS updates on the real device: the qemu-x86_64 image under QEMU TCG (OVMF → GRUB → kernel → evebox as
// PID 1). One device through a life: v1 with a container app; v2 uploaded through the console API, written to slot
// B, read back, tried, the app RUNNING on v2, committed at the end of a short test window; a system whose evebox
// exits at once and one whose kernel panics, each falling back to v2 by itself and reported (the failed version
// refused until a retry); a power cut in the middle of writing (the device boots the active slot and reports the
// interrupted write). Config and apps unchanged throughout. Timings printed at the end.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, QemuDevice } from "../board-support/qemu-x86_64/qemu.ts";
import { ensureUpdateImages, type UpdateImages } from "./support/baseos-images.ts";
import { busyboxArchive } from "./support/docker.ts";
import { Client } from "./support/evebox.ts";
import { TestDisk } from "./support/image.ts";
import { waitFor } from "./support/wait.ts";

const canRun = process.getuid?.() === 0 && Bun.which("qemu-system-x86_64") !== null && Bun.which("mmdebstrap") !== null;
const PASSWORD = "baseos-test-password";
const CMDLINE = "evebox.port-test=20";
const WINDOW_S = 100;
const IDS = { app: "b05e0000-0000-4000-8000-0000000000a1", ct: "b05e0000-0000-4000-8000-0000000000c1", vol: "b05e0000-0000-4000-8000-0000000000d1", ds: "b05e0000-0000-4000-8000-0000000000e1" };

let imgs: UpdateImages;
let work: string;
let disk: TestDisk;
let qemu: QemuDevice | null = null;
let port = 0;
let client: Client | null = null;
let tarServer: ReturnType<typeof Bun.serve>;
let tarSha = "";
let configVersion = 0;
let boots = 0;
const t0 = performance.now();
const timings: Record<string, number> = {};
const secs = (from: number) => Math.round((performance.now() - from) / 100) / 10;
const say = (l: string) => console.log(`baseos test [${secs(t0).toFixed(1).padStart(6)} s] ${l}`);

/** The console API over HTTPS on the forwarded port (the device's own self-signed certificate). */
const consoleApi = () => (client ??= new Client(`https://127.0.0.1:${port}`, { insecureTls: true, timeoutMs: 20_000 }));
const api = (method: string, path: string, body?: unknown, opts: { timeoutMs?: number; type?: string } = {}) =>
  consoleApi().json(method, `/api/v1${path}`, body, opts.type ? { "content-type": opts.type } : {}, opts.timeoutMs);

/** Waits on the device; the last error and the serial tail go into the timeout's message. */
const poll = <T>(what: string, f: () => Promise<T>, timeoutMs: number, everyMs = 1000) =>
  waitFor(what, f, { timeoutMs, everyMs, detail: () => `serial tail:\n${qemu?.serial().slice(-3000)}` });

const baseos = async () => (await api("GET", "/baseos")).body;
const statusOf = async () => (await api("GET", "/status")).body;

async function login(): Promise<void> {
  consoleApi().cookie = "";
  await poll("the console", async () => (await api("GET", "/health", undefined, { timeoutMs: 5000 })).status === 200, 300_000, 2000);
  const r = await api("POST", "/login", { password: PASSWORD });
  if (r.status !== 200) throw new Error(`login: ${r.status} ${JSON.stringify(r.body)}`);
}

function start(): void {
  boots++;
  qemu = QemuDevice.start({ disk: disk.path, workDir: work, forwards: [{ host: port, guest: 443 }], shell: false }, `boot${boots}`);
}

/** Waits for evebox's console on the serial line after `from`; returns the seconds since `since`. */
async function consoleReady(from: number, since: number): Promise<number> {
  await qemu!.waitSerial(/evebox: console ready/, 400_000, from);
  await login();
  return secs(since);
}

async function appRunning(what: string): Promise<number> {
  const t = performance.now();
  let last = "";
  await poll(`the app RUNNING (${what}; last ${last})`, async () => {
    const a = (await statusOf()).apps.find((x: any) => x.uuid === IDS.app);
    last = a ? `${a.state} ${a.error ?? ""}` : "absent";
    return a?.state === "RUNNING";
  }, 400_000, 2000);
  return secs(t);
}

/** Uploads an update file (streamed from disk); answers the API's reply. */
async function upload(file: string): Promise<{ status: number; body: any }> {
  return api("POST", "/baseos/upload", Bun.file(file), { type: "application/octet-stream", timeoutMs: 600_000 });
}

/** Config and app unchanged: the same config version, the app RUNNING. */
async function unchanged(what: string): Promise<void> {
  const s = await statusOf();
  expect(s.device.configVersion).toBe(configVersion);
  timings[`app ${what}`] = await appRunning(what);
}

/** Uploads a bad system with reboot "now": it is written, tried, and the device comes back on slot B by itself. */
async function fallsBack(file: string, version: string, marker: RegExp, label: string, lastWords: RegExp): Promise<any> {
  const mark = qemu!.serial().length;
  const t = performance.now();
  const r = await upload(file);
  expect(r.status).toBe(202);
  expect(r.body.update).toMatchObject({ version, slot: "A" });
  const down = await qemu!.waitSerial(/reboot: now/, 300_000, mark);
  timings[`${label}: upload to reboot`] = secs(t);
  const bad = await qemu!.waitSerial(marker, 300_000, down.end);
  await qemu!.waitSerial(/Kernel panic/, 120_000, bad.end);
  const tBack = performance.now();
  const back = await qemu!.waitSerial(/boot: slot B \(fell-back, trying A; active B\)/, 300_000, bad.end);
  timings[`${label}: panic to slot B booting`] = secs(tBack);
  timings[`${label}: fallback to console`] = await consoleReady(back.end, tBack);
  const v = await baseos();
  expect(v).toMatchObject({ booted: "B", active: "B", outcome: "committed", update: null });
  expect(v.history[0]).toMatchObject({ outcome: "fell-back", version, slot: "A" });
  expect(v.history[0].reason).toMatch(/did not come up/);
  // The trial's kernel left its last words in pstore (efi_pstore, loaded by the initramfs).
  expect(v.history[0].reason).toMatch(lastWords);
  expect(v.slots[0]).toMatchObject({ slot: "A", state: "failed" });
  expect(v.lastBoot).toContain("fell back from slot A");
  expect(v.failedVersions.map((f: any) => f.version)).toContain(version);
  const part = (await statusOf()).parts.find((p: any) => p.name === "baseos");
  expect(part).toMatchObject({ state: "degraded" });
  expect(part.detail).toContain("fell-back");
  say(`${label}: fell back to slot B; reason: ${v.history[0].reason}`);
  return v;
}

describe.skipIf(!canRun)("base OS updates on the device (QEMU TCG)", () => {
  beforeAll(async () => {
    const t = performance.now();
    imgs = await ensureUpdateImages(say);
    timings.images = secs(t);
    const { bytes: tar, sha256 } = await busyboxArchive();
    tarSha = sha256;
    tarServer = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => (new URL(req.url).pathname === "/images/busybox.tar" ? new Response(tar) : new Response("no", { status: 404 })) });
    work = mkdtempSync(join(tmpdir(), "evebox-baseos-test-"));
    disk = await TestDisk.create(imgs.v1, work, { sizeBytes: 4 * 2 ** 30 });
    await disk.setBootEnv((e) => ({ ...e, evebox_cmdline: CMDLINE }));
    port = await freePort();
  }, 1_200_000);

  afterAll(async () => {
    await qemu?.kill();
    tarServer?.stop(true);
    say(`timings (s): ${JSON.stringify(timings, null, 1)}`);
    if (work && !process.env.EVEBOX_KEEP_BASEOS_TEST) rmSync(work, { recursive: true, force: true });
  }, 60_000);

  test("v1 boots with its release version and vendor key; a container app reaches RUNNING", async () => {
    const t = performance.now();
    start();
    const ready = await qemu!.waitSerial(/evebox: console ready/, 400_000);
    const token = (await qemu!.waitSerial(/setup\?token=([A-Za-z0-9_-]+)/, 30_000)).match[1];
    await poll("the console", async () => (await api("GET", "/health", undefined, { timeoutMs: 5000 })).status === 200, 300_000, 2000);
    expect((await api("POST", "/setup", { token, password: PASSWORD })).status).toBe(200);
    await login();
    timings["first boot to console"] = secs(t);
    say(`first boot: console ready at ${ready.seconds.toFixed(1)} s`);
    const v = await baseos();
    expect(v).toMatchObject({ available: true, backend: "device", board: "qemu-x86_64", arch: "amd64", booted: "A", active: "A", version: imgs.v1.manifest.version });
    expect(v.slots.map((s: any) => [s.slot, s.state, s.version])).toEqual([["A", "active", imgs.v1.manifest.version], ["B", "unused", null]]);
    expect(v.vendorKeys.map((k: any) => k.id)).toEqual([imgs.v1.manifest.vendorKeyId]);
    expect(v.slots[0].device).toMatch(/^\/dev\/vda2$/);
    const s = await api("PUT", "/baseos/settings", { reboot: "now", testWindowSeconds: WINDOW_S, stableSeconds: 10 });
    expect(s.status).toBe(200);
    const cfg = await api("PUT", "/config", {
      datastores: [{ id: IDS.ds, dType: "DsHttp", fqdn: `http://10.0.2.2:${tarServer.port}`, dpath: "images" }],
      contentInfo: [{ uuid: IDS.ct, dsId: IDS.ds, URL: "busybox.tar", iformat: "CONTAINER", sha256: tarSha, displayName: "busybox" }],
      volumes: [{ uuid: IDS.vol, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: IDS.ct }, displayName: "root" }],
      apps: [
        {
          uuidandversion: { uuid: IDS.app, version: "1" },
          displayname: "sleeper",
          activate: true,
          fixedresources: { memory: 65536, maxmem: 65536, vcpus: 1 },
          volumeRefList: [{ uuid: IDS.vol }],
          userData: Buffer.from(`EVE_ECO_CMD=sh -c 'trap "exit 0" TERM; sleep 3600 & wait'\n`).toString("base64"),
        },
      ],
    });
    expect([200, 201]).toContain(cfg.status);
    configVersion = (await statusOf()).device.configVersion;
    timings["app RUNNING on v1"] = await appRunning("on v1");
  }, 1_200_000);

  test("v2 uploaded: verified, written to slot B and read back, tried; the app RUNNING on v2; committed at the end of the window", async () => {
    const mark = qemu!.serial().length;
    const t = performance.now();
    const r = await upload(imgs.v2.update);
    expect(r.status).toBe(202);
    expect(r.body.update).toMatchObject({ version: imgs.v2.manifest.version, slot: "B", source: "upload" });
    timings["v2: upload + verify"] = secs(t);
    // The write goes on in the background (progress in the status), then the device reboots by itself.
    const phases = new Set<string>();
    await poll("v2 written and the reboot", async () => {
      if (/reboot: now/.test(qemu!.serial().slice(mark))) return true;
      const u = (await baseos()).update;
      if (u) phases.add(`${u.phase}${u.progress?.total ? "%" : ""}`);
      return false;
    }, 600_000, 250);
    say(`v2: phases seen while polling: ${[...phases].join(", ")}`);
    const down = await qemu!.waitSerial(/reboot: now/, 600_000, mark);
    const tBoot = performance.now();
    const trial = await qemu!.waitSerial(/boot: slot B \(trying, trying B; active A\)/, 400_000, down.end);
    timings["v2: reboot to trial console"] = await consoleReady(trial.end, tBoot);
    const v = await baseos();
    expect(v).toMatchObject({ booted: "B", active: "A", outcome: "trying", version: imgs.v2.manifest.version });
    expect(v.update).toMatchObject({ phase: "testing", version: imgs.v2.manifest.version, appsBefore: [{ uuid: IDS.app, name: "sleeper" }] });
    const tm = v.update.timings;
    const bytes = statSync(imgs.v2.update).size;
    Object.assign(timings, { "v2: bundle MiB": Math.round(bytes / 2 ** 20), "v2: receive s": tm.receiveMs / 1000, "v2: verify s": tm.verifyMs / 1000, "v2: write s": tm.writeMs / 1000, "v2: read-back s": tm.readBackMs / 1000 });
    expect(v.slots.map((s: any) => s.state)).toEqual(["active", "inprogress"]);
    // A second update while on probation is refused.
    const busy = await api("POST", "/baseos/upload", new Uint8Array(4096), { type: "application/octet-stream" });
    expect(busy.status).toBe(409);
    expect(busy.body.error).toMatch(/probation/);
    await unchanged("on v2 (trial)");
    const committed = await poll("the commit", async () => {
      const b = await baseos();
      return b.history[0]?.outcome === "committed" ? b : null;
    }, (WINDOW_S + 120) * 1000, 2000);
    timings["v2: trial boot to commit"] = secs(tBoot);
    expect(committed).toMatchObject({ booted: "B", active: "B", outcome: "committed", update: null });
    expect(committed.slots.map((s: any) => [s.state, s.version])).toEqual([["unused", imgs.v1.manifest.version], ["active", imgs.v2.manifest.version]]);
    expect(committed.history[0].reason).toContain("RUNNING as before");
    say(`v2 committed: ${committed.history[0].reason}`);
    await unchanged("after the commit");
  }, 1_800_000);

  test("a system whose evebox exits at once: the kernel panics, the device falls back to v2 by itself; that version is refused until a retry", async () => {
    await fallsBack(imgs.exits.file, imgs.exits.version, /test system: \/sbin\/init exits at once/, "exits", /Kernel panic - not syncing: Attempted to kill init!/);
    await unchanged("after the evebox-exits fallback");
    const again = await upload(imgs.exits.file);
    expect(again.status).toBe(409);
    expect(again.body.error).toMatch(/failed before/);
    expect((await api("POST", "/baseos/retry", { version: imgs.exits.version })).body.cleared).toEqual([imgs.exits.version]);
    // Accepted again now; held (not rebooted into) and cancelled.
    expect((await api("PUT", "/baseos/settings", { reboot: "hold" })).status).toBe(200);
    expect((await upload(imgs.exits.file)).status).toBe(202);
    await poll("written and held", async () => (await baseos()).update?.phase === "ready", 300_000, 1000);
    expect((await baseos()).update.schedule).toMatchObject({ mode: "hold", at: null });
    expect((await api("POST", "/baseos/cancel")).status).toBe(200);
    expect((await baseos()).history[0]).toMatchObject({ outcome: "cancelled" });
    expect((await api("PUT", "/baseos/settings", { reboot: "now" })).status).toBe(200);
  }, 1_800_000);

  test("a system whose kernel panics in its initramfs: falls back to v2 by itself", async () => {
    await fallsBack(imgs.panics.file, imgs.panics.version, /test system: crashing the kernel/, "panics", /sysrq: Trigger a crash … Kernel panic - not syncing: sysrq triggered crash/);
    await unchanged("after the kernel-panic fallback");
  }, 1_800_000);

  test("a power cut in the middle of writing slot A: the device boots slot B and reports the interrupted write", async () => {
    expect((await api("PUT", "/baseos/settings", { reboot: "hold" })).status).toBe(200);
    const r = await upload(imgs.v1.update);
    expect(r.status).toBe(202);
    const during = await poll("the write under way", async () => {
      const u = (await baseos()).update;
      if (u && u.phase !== "writing" && u.phase !== "verifying" && u.phase !== "receiving") throw new Error(`the write finished before the cut (${u.phase})`);
      return u?.phase === "writing" && u.progress.done > u.progress.total * 0.3 ? u : null;
    }, 300_000, 200);
    say(`power cut at ${Math.floor((100 * during.progress.done) / during.progress.total)}% of the write`);
    await qemu!.kill();
    const t = performance.now();
    start();
    const b = await qemu!.waitSerial(/boot: slot B \(committed; active B\)/, 400_000);
    timings["power cut: boot to console"] = await consoleReady(b.end, t);
    const v = await baseos();
    expect(v).toMatchObject({ booted: "B", active: "B", update: null });
    expect(v.history[0]).toMatchObject({ outcome: "interrupted", version: imgs.v1.manifest.version, slot: "A" });
    expect(v.history[0].reason).toMatch(/interrupted \(power cut or restart\) at \d+%/);
    expect(v.lastBoot).toMatch(/interrupted/);
    expect(v.slots[0]).toMatchObject({ slot: "A", state: "unused" });
    expect(v.slots[0].note).toMatch(/incomplete/);
    say(`after the power cut: ${v.history[0].reason}`);
    await unchanged("after the power cut");
  }, 1_800_000);
});
