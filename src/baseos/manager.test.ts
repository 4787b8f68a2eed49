// The state machine across "boots" on slot files: a trial whose checks fail at the end of its window records the
// reason and asks for a reboot; the fallen-back system reports that reason and refuses the version until a retry.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bundleOf, testKeys, tinySquashfs } from "../../tests/support/bundles.ts";
import { formatBootEnv, initialBootEnv, parseBootEnv, type Slot } from "./bootenv.ts";
import { importPublicKey } from "./bundle.ts";
import { BaseOs, type BaseOsHooks } from "./manager.ts";
import { filesBackend } from "./slots.ts";
import { decodeMessage, encodeMessage } from "../proto/index.ts";

const dir = mkdtempSync(join(tmpdir(), "evebox-baseos-sm-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const grubenv = join(dir, "grubenv");
const env = () => parseBootEnv(readFileSync(grubenv));

function hooks(apps: { uuid: string; name: string; state: string }[], reboots: string[], events: string[]): BaseOsHooks {
  return {
    publish: (type, message) => void events.push(`${type}: ${message}`),
    log: () => {},
    apps: () => apps,
    managed: () => false,
    controller: () => ({ ok: true, detail: "" }),
    services: () => [
      { name: "containerd", state: "running" },
      { name: "dockerd", state: "running" },
    ],
    reboot: (reason) => {
      reboots.push(reason);
      return { accepted: true, message: "reboot in progress" };
    },
  };
}

async function boot(booted: Slot, version: string, h: BaseOsHooks, keys: Awaited<ReturnType<typeof testKeys>>): Promise<BaseOs> {
  const backend = filesBackend({ slots: [join(dir, "A"), join(dir, "B")], bootenv: grubenv, booted });
  const b = new BaseOs({ backend, board: { board: "qemu-x86_64", arch: "amd64" }, bootedVersion: version, stateDir: join(dir, "persist"), keys: [await importPublicKey(keys.publicPem)], hooks: h, checkIntervalMs: 50 });
  b.start();
  return b;
}

describe("a trial that fails its checks", () => {
  test("the reason is recorded, the device reboots, and the fallen-back system reports it and refuses the version", async () => {
    writeFileSync(join(dir, "A"), Buffer.alloc(4 * 2 ** 20));
    writeFileSync(join(dir, "B"), Buffer.alloc(4 * 2 ** 20));
    writeFileSync(grubenv, formatBootEnv(initialBootEnv()));
    const keys = await testKeys(dir);
    const file = await bundleOf(dir, await tinySquashfs(dir, "v2"), { version: "2.0.0", board: "qemu-x86_64", arch: "amd64" }, keys);
    const events: string[] = [];
    const reboots: string[] = [];
    const running = [{ uuid: "u1", name: "web", state: "RUNNING" }];

    // Boot 1 (v1 on A): upload, written, reboot "now" with the app RUNNING recorded.
    const one = await boot("A", "1.0.0", hooks(running, reboots, events), keys);
    one.putSettings({ testWindowSeconds: 10, stableSeconds: 0 });
    await one.upload(Bun.file(file).stream(), Bun.file(file).size);
    for (let i = 0; i < 100 && reboots.length === 0; i++) await Bun.sleep(50);
    expect(reboots[0]).toMatch(/rebooting into slot B \(version 2.0.0\) on trial/);
    expect(env().evebox_try).toBe("B");
    one.stop();

    // GRUB: boots B on trial. The app does not come back: the store still says RUNNING, as the last boot saw it,
    // but this boot's runtime never observed it.
    writeFileSync(grubenv, formatBootEnv({ ...env(), evebox_try: "", evebox_trying: "B" }));
    const halted = [{ uuid: "u1", name: "web", state: "RUNNING", observedAt: Date.now() - 3_600_000 }];
    const two = await boot("B", "2.0.0", hooks(halted, reboots, events), keys);
    expect(two.view()).toMatchObject({ booted: "B", active: "A", outcome: "trying", update: { phase: "testing" } });
    expect(two.view().slots.map((s) => s.state)).toEqual(["active", "inprogress"]);
    // Not yet at the end of the window: no decision.
    expect(await two.probationTick()).toBe(false);
    // The window ends (moved into the past rather than waited for).
    (two as any).state.current.probation.endsAt = new Date(Date.now() - 1).toISOString();
    expect(await two.probationTick()).toBe(true);
    expect(reboots[1]).toMatch(/base OS trial failed: .*apps: not RUNNING yet: web \(RUNNING, not observed since this boot\)/);
    expect(env()).toMatchObject({ evebox_active: "A", evebox_trying: "B" }); // not committed
    two.stop();

    // GRUB: try is empty, boots the committed A; evebox there finds the trial failed.
    const three = await boot("A", "1.0.0", hooks(running, reboots, events), keys);
    const v = three.view();
    expect(v).toMatchObject({ booted: "A", active: "A", outcome: "committed", update: null });
    expect(v.history[0]).toMatchObject({ outcome: "fell-back", version: "2.0.0", slot: "B" });
    expect(v.history[0]!.reason).toMatch(/test window \(10 s\) ended with apps: not RUNNING yet: web \(RUNNING, not observed since this boot\)/);
    expect(v.slots[1]).toMatchObject({ state: "failed" });
    expect(env().evebox_trying).toBe("");
    expect(three.swList()[1]).toMatchObject({ partitionLabel: "IMGB", partitionState: "failed", userStatus: "FAILED", status: "ERROR" });
    expect(three.swList()[0]).toMatchObject({ partitionLabel: "IMGA", partitionState: "active", activated: true, userStatus: "FALLBACK" });
    // The list is a valid ZInfoDevSW list of EVE's info message (enum names, the error's timestamp).
    const wire = encodeMessage("org.lfedge.eve.info.ZInfoMsg", { devId: "d", dinfo: { swList: three.swList() } });
    const back = decodeMessage<any>("org.lfedge.eve.info.ZInfoMsg", wire).dinfo.swList;
    expect(back.map((x: any) => [x.partitionLabel, x.partitionState, x.userStatus, x.status, x.shortVersion])).toEqual([
      ["IMGA", "active", 5 /* BaseOsStatus.FALLBACK */, 7 /* ZSwState.RUNNING */, "1.0.0"],
      ["IMGB", "failed", 6 /* BaseOsStatus.FAILED */, 21 /* ZSwState.ERROR */, "2.0.0"],
    ]);
    expect(back[1].swErr.description).toMatch(/apps: not RUNNING yet/);
    await expect(three.upload(Bun.file(file).stream(), Bun.file(file).size)).rejects.toThrow(/failed before/);
    expect(three.retry()).toEqual(["2.0.0"]);
    three.putSettings({ reboot: "hold" });
    await three.upload(Bun.file(file).stream(), Bun.file(file).size);
    for (let i = 0; i < 100 && three.view().update?.phase !== "ready"; i++) await Bun.sleep(50);
    expect(three.view().update).toMatchObject({ phase: "ready", version: "2.0.0", schedule: { mode: "hold" } });
    three.stop();
    expect(events.some((e) => e.startsWith("baseos.fell-back"))).toBe(true);
  }, 60_000);

  test("managed: a controller unreachable (and PERSIST lost) at the end of the window fails the trial with those reasons", async () => {
    const d = mkdtempSync(join(tmpdir(), "evebox-baseos-ctl-"));
    try {
      for (const f of ["A", "B"]) writeFileSync(join(d, f), Buffer.alloc(2 ** 20));
      writeFileSync(join(d, "grubenv"), formatBootEnv({ ...initialBootEnv(), evebox_trying: "B" }));
      const reboots: string[] = [];
      const h: BaseOsHooks = {
        ...hooks([], reboots, []),
        managed: () => true,
        controller: () => ({ ok: false, detail: "offline: connect ECONNREFUSED 192.0.2.1:443" }),
        parts: () => [{ name: "init", state: "error", detail: "persist on a tmpfs (PERSIST unusable)" }],
      };
      const backend = filesBackend({ slots: [join(d, "A"), join(d, "B")], bootenv: join(d, "grubenv"), booted: "B" });
      const b = new BaseOs({ backend, board: { board: "qemu-x86_64", arch: "amd64" }, bootedVersion: "2.0.0", stateDir: join(d, "persist"), keys: [], hooks: h, checkIntervalMs: 50 });
      b.start();
      (b as any).state.current.probation.endsAt = new Date(Date.now() - 1).toISOString();
      expect(await b.probationTick()).toBe(true);
      expect(reboots[0]).toMatch(/controller: offline: connect ECONNREFUSED/);
      expect(reboots[0]).toMatch(/evebox: init: persist on a tmpfs/);
      await Bun.sleep(200); // the check loop stops once decided: one reboot asked for
      expect(reboots.length).toBe(1);
      expect(parseBootEnv(readFileSync(join(d, "grubenv")))).toMatchObject({ evebox_active: "A" });
      b.stop();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe("an upload that does not finish", () => {
  /** A body that sends `bytes` and then nothing more, ever (a stalled sender). */
  const stalled = (bytes: number) =>
    new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array(bytes));
      },
    });
  const fresh = (uploadStallMs?: number) => {
    const d = mkdtempSync(join(tmpdir(), "evebox-baseos-stall-"));
    for (const f of ["A", "B"]) writeFileSync(join(d, f), Buffer.alloc(2 ** 20));
    writeFileSync(join(d, "grubenv"), formatBootEnv(initialBootEnv()));
    const backend = filesBackend({ slots: [join(d, "A"), join(d, "B")], bootenv: join(d, "grubenv"), booted: "A" });
    const b = new BaseOs({ backend, board: { board: "qemu-x86_64", arch: "amd64" }, bootedVersion: "1.0.0", stateDir: join(d, "persist"), keys: [], hooks: hooks([], [], []), uploadStallMs });
    b.start();
    return { b, done: () => (b.stop(), rmSync(d, { recursive: true, force: true })) };
  };

  test("cancel ends an upload being received: recorded as cancelled, the uploader gets 409, the next upload may start", async () => {
    const { b, done } = fresh();
    try {
      const up = b.upload(stalled(4096), 8192);
      await Bun.sleep(50);
      expect(b.view().update).toMatchObject({ phase: "receiving", source: "upload" });
      await expect(b.upload(stalled(1), 1)).rejects.toMatchObject({ kind: "conflict" });
      expect(b.cancel()).toMatchObject({ source: "upload" });
      expect(b.view().update).toBeNull();
      expect(b.view().history[0]).toMatchObject({ outcome: "cancelled", source: "upload" });
      await expect(up).rejects.toMatchObject({ kind: "conflict", message: expect.stringMatching(/cancelled by the operator/) });
      expect(b.view().history.filter((h) => h.outcome === "cancelled")).toHaveLength(1);
      const next = b.upload(stalled(1), 2);
      await Bun.sleep(20);
      expect(b.view().update).toMatchObject({ phase: "receiving" });
      b.cancel();
      await next.catch(() => {});
    } finally {
      done();
    }
  });

  test("a sender that stalls is refused after the stall timeout (408) and the slot is free", async () => {
    const { b, done } = fresh(200);
    try {
      await expect(b.upload(stalled(4096), 8192)).rejects.toMatchObject({ kind: "timed-out", message: expect.stringMatching(/stalled/) });
      expect(b.view().update).toBeNull();
      expect(b.view().history[0]).toMatchObject({ outcome: "refused" });
    } finally {
      done();
    }
  });
});

describe("the config's base OS download", () => {
  test("a datastore on loopback is refused before any request (the device's default), and named in the history", async () => {
    const d = mkdtempSync(join(tmpdir(), "evebox-baseos-dest-"));
    let requests = 0;
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => (requests++, new Response("x")) });
    writeFileSync(join(d, "A"), Buffer.alloc(2 ** 20));
    writeFileSync(join(d, "B"), Buffer.alloc(2 ** 20));
    writeFileSync(join(d, "grubenv"), formatBootEnv(initialBootEnv()));
    const backend = filesBackend({ slots: [join(d, "A"), join(d, "B")], bootenv: join(d, "grubenv"), booted: "A" });
    const doc = {
      baseos: { baseOsVersion: "2.0.0", contentTreeUuid: "c0000000-0000-4000-8000-000000000001", activate: true },
      contentInfo: [{ uuid: "c0000000-0000-4000-8000-000000000001", dsId: "d0000000-0000-4000-8000-000000000001", URL: "v2.bin", sha256: "a".repeat(64) }],
      datastores: [{ id: "d0000000-0000-4000-8000-000000000001", dType: "DsHttp", fqdn: `http://127.0.0.1:${server.port}` }],
    };
    const b = new BaseOs({ backend, board: { board: "qemu-x86_64", arch: "amd64" }, bootedVersion: "1.0.0", stateDir: join(d, "persist"), keys: [], hooks: { ...hooks([], [], []), configDoc: () => doc } });
    try {
      b.start();
      await b.applyConfig();
      for (let i = 0; i < 100 && !b.view().history.length; i++) await Bun.sleep(20);
      expect(b.view().history[0]).toMatchObject({ outcome: "refused", version: "2.0.0" });
      expect(b.view().history[0]!.reason).toMatch(/127\.0\.0\.1.*loopback/);
      expect(requests).toBe(0);
    } finally {
      b.stop();
      server.stop(true);
      rmSync(d, { recursive: true, force: true });
    }
  });
});
