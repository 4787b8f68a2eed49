// Hardware partitioning end to end on the compiled binary: deviceIoList assignment groups given to apps through
// PUT /api/v1/config, the real Docker engine and real QEMU (TCG).
//
// What is real on this machine and what is not:
// - real: this machine's sysfs (/sys: its PCI functions, its ttyS ports, no IOMMU, no USB bus), serial ports as
//   pty pairs made by socat (a pty is what a serial port is to a program: one end is named in deviceIoList as
//   `phyaddrs.serial`, the test writes on the other), the container reading it, the TCG guest reading it on its
//   second serial port, the refusals of a PCI function ("no IOMMU") and of a USB address that is not here;
// - not here, so tested as units against a fake sysfs tree (src/hardware/*.test.ts): USB devices, CAN interfaces
//   (no vcan module), GPUs, an IOMMU and the vfio-pci bind/unbind sequence.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, writeSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { ask, openConsole } from "./support/app-console.ts";
import { bearer as newToken, deviceStatus, logIn, putConfig, setUp, waitForApp } from "./support/api.ts";
import { busyboxArchive, testDocker } from "./support/docker.ts";
import { type Client, cleanup, type Evebox, startEvebox, tempDataDir } from "./support/evebox.ts";
import { ensureGuestImage, GUEST_READY } from "./support/guest/image.ts";
import { qemuPids } from "./support/qemu-pids.ts";
import { waitFor } from "./support/wait.ts";

const DS = "6c0a6b52-7f36-4a55-8c3e-2a3f5c0d1e30";
let seq = 0;
const uid = (kind: number) => `7d000000-0000-4000-8${kind.toString(16).padStart(3, "0")}-${(++seq).toString(16).padStart(12, "0")}`;

interface PtyPair {
  /** The end deviceIoList names (/dev/pts/N). */
  device: string;
  /** The end the test writes on. */
  other: string;
  proc: Subprocess;
}
const ptys: PtyPair[] = [];
let dir: string;

/** A pty pair by socat: what one end is written, the other reads, as over a null-modem cable. */
async function ptyPair(name: string): Promise<PtyPair> {
  const a = join(dir, `${name}-a`);
  const b = join(dir, `${name}-b`);
  const proc = Bun.spawn(["socat", `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdout: "ignore", stderr: "pipe" });
  await waitFor(`socat's pty pair ${name}`, () => existsSync(a) && existsSync(b), { timeoutMs: 10_000, failIf: () => (proc.exitCode !== null ? `socat exited with ${proc.exitCode}` : null) });
  const p = { device: realpathSync(a), other: realpathSync(b), proc };
  ptys.push(p);
  return p;
}

function writeTo(path: string, text: string): void {
  const fd = openSync(path, "w");
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

let evebox: Evebox;
let dataDir: string;
let api: Client;
let headers: Record<string, string>;
let http: ReturnType<typeof Bun.serve>;
let tarSha = "";
let guestSha = "";
let com1: PtyPair;
let com2: PtyPair;
const noIommu = !existsSync("/sys/kernel/iommu_groups") || readdirSync("/sys/kernel/iommu_groups").length === 0;
// A PCI function of this machine without a network interface (so none the machine is reached through).
const pciFunction = readdirSync("/sys/bus/pci/devices").find((a) => !existsSync(`/sys/bus/pci/devices/${a}/net`) && !readFileSync(`/sys/bus/pci/devices/${a}/class`, "utf8").startsWith("0x0600")) ?? "0000:00:00.0";

interface AppDef {
  name: string;
  kind: "container" | "vm";
  adapters: string[];
  cmd?: string;
  ids?: { app: string; ct: string; vol: string };
}

function doc(apps: AppDef[]) {
  const d: any = {
    datastores: [{ id: DS, dType: "DsHttp", fqdn: `http://127.0.0.1:${http.port}`, dpath: "images" }],
    contentInfo: [],
    volumes: [],
    deviceIoList: [
      { ptype: "PhyIoCOM", phylabel: "COM1", logicallabel: "COM1", assigngrp: "COM1", phyaddrs: { serial: com1.device }, usage: "PhyIoUsageDedicated" },
      { ptype: "PhyIoCOM", phylabel: "COM2", logicallabel: "COM2", assigngrp: "COM2", phyaddrs: { serial: com2.device }, usage: "PhyIoUsageDedicated" },
      { ptype: "PhyIoOther", phylabel: "PCI", logicallabel: "pci-fn", assigngrp: "PCI-A", phyaddrs: { pcilong: pciFunction } },
      { ptype: "PhyIoUSB", phylabel: "USB 3:1.4", logicallabel: "licence-dongle", assigngrp: "USB3:1.4", phyaddrs: { usbaddr: "3:1.4" } },
    ],
    apps: [],
  };
  for (const a of apps) {
    a.ids ??= { app: uid(1), ct: uid(2), vol: uid(3) };
    const container = a.kind === "container";
    d.contentInfo.push({ uuid: a.ids.ct, dsId: DS, URL: container ? "busybox.tar" : "guest.qcow2", iformat: container ? "CONTAINER" : "QCOW2", sha256: container ? tarSha : guestSha, displayName: `${a.name}-image` });
    d.volumes.push({ uuid: a.ids.vol, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: a.ids.ct }, displayName: `${a.name}-root`, ...(container ? {} : { maxsizebytes: String(96 << 20) }) });
    d.apps.push({
      uuidandversion: { uuid: a.ids.app, version: "1" },
      displayname: a.name,
      activate: true,
      fixedresources: { memory: container ? 65536 : 131072, maxmem: container ? 65536 : 131072, vcpus: 1, ...(container ? {} : { virtualizationMode: "HVM" }) },
      volumeRefList: [{ uuid: a.ids.vol }],
      adapters: a.adapters.map((name) => ({ type: "PhyIoNoop", name })),
      ...(a.cmd ? { userData: Buffer.from(`EVE_ECO_CMD=${a.cmd}\n`).toString("base64") } : {}),
    });
  }
  return d;
}

const put = (apps: AppDef[]) => putConfig(api, doc(apps));
const app = (name: string, pred: (a: any) => boolean, what: string, timeoutMs = 90_000) => waitForApp(api, name, pred, what, timeoutMs, () => evebox.output().slice(-3000));
const logsOf = async (uuid: string): Promise<string> => (await api.json("GET", `/api/v1/apps/${uuid}/logs`)).body.lines.map((l: any) => l.message).join("\n");
const containersOf = (uuid: string) => testDocker().listContainers({ all: true, filters: { label: [`evebox.app=${uuid}`] } });

/** Writes `text` on the far end until the app's log shows it (the reader may open its end a moment after it logs). */
async function sendUntilLogged(pty: PtyPair, uuid: string, text: string): Promise<void> {
  await waitFor(`${text} in the app's log`, async () => {
    if ((await logsOf(uuid)).includes(text)) return true;
    writeTo(pty.other, `${text}\n`);
    return undefined;
  }, { timeoutMs: 30_000, everyMs: 500 });
}

const READER = "sh -c 'stty -F /dev/ttyV0 raw -echo; echo reader-ready; exec cat /dev/ttyV0'";
const reader: AppDef = { name: "reader", kind: "container", adapters: ["COM1"], cmd: READER };
const second: AppDef = { name: "second", kind: "container", adapters: ["COM1"], cmd: READER };
const plain: AppDef = { name: "plain", kind: "container", adapters: [], cmd: "sh -c 'ls /dev; sleep 3600'" };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "evebox-hw-"));
  com1 = await ptyPair("com1");
  com2 = await ptyPair("com2");
  const guest = await ensureGuestImage();
  const qcow = new Uint8Array(readFileSync(guest.disk));
  guestSha = new Bun.CryptoHasher("sha256").update(qcow).digest("hex");
  const tar = await busyboxArchive();
  tarSha = tar.sha256;
  const files: Record<string, Uint8Array> = { "/images/busybox.tar": tar.bytes, "/images/guest.qcow2": qcow };
  http = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => (files[new URL(req.url).pathname] ? new Response(files[new URL(req.url).pathname] as Uint8Array<ArrayBuffer>) : new Response("no", { status: 404 })) });
  dataDir = tempDataDir("evebox-hw-");
  evebox = await startEvebox({ dataDir });
  api = await setUp(evebox, "hardware-test-password");
  headers = await newToken(api, "hardware-test");
}, 300_000);

afterAll(async () => {
  await putConfig(api, { apps: [] }).catch(() => undefined);
  await waitFor("all apps removed", async () => ((await deviceStatus(api)).apps.length === 0 ? true : undefined), 60_000).catch(() => undefined);
  await evebox?.stop();
  for (const a of [reader, second, plain, vmReader, vmSecond, com2Reader]) for (const pid of qemuPids(a.ids?.app ?? "none")) process.kill(pid, "SIGKILL");
  for (const p of ptys) p.proc.kill();
  http?.stop(true);
  cleanup(dataDir);
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe("the inventory of this machine (real sysfs)", () => {
  test("GET /api/v1/hardware lists its PCI functions and ttyS ports, and says it has no IOMMU and no USB", async () => {
    const r = await api.json("GET", "/api/v1/hardware");
    expect(r.status).toBe(200);
    expect(r.body.inventory.pci.map((p: any) => p.address)).toEqual(readdirSync("/sys/bus/pci/devices").sort());
    const ttyS = readdirSync("/sys/class/tty").filter((n) => /^ttyS\d+$/.test(n) && readFileSync(`/sys/class/tty/${n}/type`, "utf8").trim() !== "0");
    expect(r.body.inventory.serial.map((s: any) => s.name).filter((n: string) => n.startsWith("ttyS"))).toEqual(ttyS.sort());
    expect(r.body.inventory.iommu).toBe(!noIommu);
    expect(r.body.inventory.usb).toEqual(existsSync("/sys/bus/usb/devices") ? expect.any(Array) : []);
  });
});

describe("a serial port (a pty pair) given to a container app", () => {
  test("the container reads what is written on the other end; it has that device node and no other of the host's", async () => {
    await put([reader, plain]);
    await app("reader", (a) => a.state === "RUNNING", "RUNNING");
    await app("plain", (a) => a.state === "RUNNING", "RUNNING");
    await sendUntilLogged(com1, reader.ids!.app, "hello-from-the-host");
    const [c] = await containersOf(reader.ids!.app);
    const info = await testDocker().getContainer(c!.Id).inspect();
    // A pty is bind-mounted (a device node of it outside its devpts cannot be opened); a ttyS would be a device.
    expect(info.Mounts.filter((m) => m.Destination.startsWith("/dev/")).map((m) => [m.Source, m.Destination])).toEqual([[com1.device, "/dev/ttyV0"]]);
    expect(info.HostConfig.Devices ?? []).toEqual([]);
    expect(info.HostConfig.Privileged).toBe(false);
    // The app without adapters sees no serial port of the host (ttyS0 exists on this machine).
    await waitFor("plain's /dev listing", async () => ((await logsOf(plain.ids!.app)).includes("null") ? true : undefined));
    expect(await logsOf(plain.ids!.app)).not.toMatch(/ttyS\d|ttyV\d/);
    const hw = (await api.json("GET", "/api/v1/hardware")).body;
    expect(hw.bundles.find((b: any) => b.name === "COM1")).toMatchObject({ usedBy: [{ uuid: reader.ids!.app, name: "reader" }], notAssignable: null, found: [{ label: "COM1", what: `serial port ${com1.device} (virtual: not in sysfs)` }] });
  }, 180_000);

  test("a second app asking for the same group is in error naming the first; the others keep running", async () => {
    await put([reader, plain, second]);
    const s = await app("second", (a) => !!a.error, "in error");
    expect(s.error).toContain(`adapter COM1: assigned to app reader (${reader.ids!.app})`);
    expect(s.state).not.toBe("RUNNING");
    expect(await containersOf(second.ids!.app)).toEqual([]);
    expect((await deviceStatus(api)).apps.filter((a: any) => a.state === "RUNNING").map((a: any) => a.name).sort()).toEqual(["plain", "reader"]);
  }, 60_000);

  test("a restart of evebox adopts the reader with its port (not recreated), and the group stays the reader's", async () => {
    const before = (await containersOf(reader.ids!.app))[0]!;
    await evebox.stop();
    evebox = await startEvebox({ dataDir });
    api = await logIn(evebox.url, "hardware-test-password");
    headers = await newToken(api, "hardware-test-2");
    await app("reader", (a) => a.state === "RUNNING", "RUNNING after the restart");
    const s = await app("second", (a) => !!a.error, "in error after the restart");
    expect(s.error).toContain("assigned to app reader");
    const after = await containersOf(reader.ids!.app);
    expect(after.map((c) => [c.Id, c.State])).toEqual([[before.Id, "running"]]);
    await sendUntilLogged(com1, reader.ids!.app, "after-the-restart");
  }, 120_000);

  test("removing the first app releases the port: the second app starts and reads it", async () => {
    await put([plain, second]);
    await app("second", (a) => a.state === "RUNNING", "RUNNING once the reader is gone");
    await waitFor("the reader's container gone", async () => ((await containersOf(reader.ids!.app)).length === 0 ? true : undefined), 60_000);
    await sendUntilLogged(com1, second.ids!.app, "now-for-the-second");
    const hw = (await api.json("GET", "/api/v1/hardware")).body;
    expect(hw.bundles.find((b: any) => b.name === "COM1").usedBy).toEqual([{ uuid: second.ids!.app, name: "second" }]);
  }, 120_000);
});

const vmReader: AppDef = { name: "vm-reader", kind: "vm", adapters: ["COM2"] };
const vmSecond: AppDef = { name: "vm-second", kind: "vm", adapters: ["COM2"] };
const com2Reader: AppDef = { name: "com2-reader", kind: "container", adapters: ["COM2"], cmd: READER };

describe("refusals this machine can show for real", () => {
  test.if(noIommu)(`a PCI function (${pciFunction}) is refused with "no IOMMU"; a USB address not on the host with its address`, async () => {
    const pciApp: AppDef = { name: "pci-vm", kind: "vm", adapters: ["PCI-A"] };
    const usbApp: AppDef = { name: "usb-vm", kind: "vm", adapters: ["USB3:1.4"] };
    await put([plain, second, pciApp, usbApp]);
    const p = await app("pci-vm", (a) => !!a.error, "in error");
    expect(p.error).toContain(`adapter PCI-A: PCI function ${pciFunction}: no IOMMU on this host`);
    const u = await app("usb-vm", (a) => !!a.error, "in error");
    expect(u.error).toBe("adapter USB3:1.4: USB device 3:1.4 is not on this host");
    expect(qemuPids(pciApp.ids!.app, usbApp.ids!.app)).toEqual([]);
    expect((await deviceStatus(api)).apps.find((a: any) => a.name === "second").state).toBe("RUNNING");
    const hw = (await api.json("GET", "/api/v1/hardware")).body;
    expect(hw.bundles.find((b: any) => b.name === "PCI-A").notAssignable).toContain("no IOMMU");
  }, 60_000);
});

describe("a serial port given to a VM app", () => {
  test("the TCG guest reads on its second serial port (ttyS1) what is written on the other end", async () => {
    await put([plain, second, vmReader]);
    const a = await app("vm-reader", (x) => x.state === "RUNNING", "RUNNING", 120_000);
    expect(readFileSync(`/proc/${a.pid}/cmdline`, "utf8").split("\0")).toContain(`serial,id=hostserial0,path=${com2.device}`);
    const c = await openConsole(evebox.url, vmReader.ids!.app, headers);
    try {
      await c.waitFor(`${GUEST_READY} on /dev/ttyS0`, 90_000);
      await ask(c, "stty -F /dev/ttyS1 raw -echo; (cat /dev/ttyS1 > /tmp/got &); echo started");
      const got = await waitFor("the bytes in the guest", async () => {
        writeTo(com2.other, "bytes-for-the-guest\n");
        const seen = await ask(c, "cat /tmp/got | tr -d '\\r\\n'");
        return seen.includes("bytes-for-the-guest") ? seen : undefined;
      }, { timeoutMs: 30_000, everyMs: 500 });
      expect(got).toContain("bytes-for-the-guest");
    } finally {
      c.close();
    }
  }, 240_000);

  test("a second VM asking for the same port is in error naming the first, and no QEMU of it starts", async () => {
    await put([plain, second, vmReader, vmSecond]);
    const s = await app("vm-second", (a) => !!a.error, "in error");
    expect(s.error).toContain(`adapter COM2: assigned to app vm-reader (${vmReader.ids!.app})`);
    expect(qemuPids(vmSecond.ids!.app)).toEqual([]);
    expect((await deviceStatus(api)).apps.find((a: any) => a.name === "vm-reader").state).toBe("RUNNING");
  }, 60_000);

  test("a restart of evebox adopts the VM with its port (the same QEMU), and the port stays the VM's", async () => {
    const [before] = qemuPids(vmReader.ids!.app);
    expect(before).toBeNumber();
    await evebox.stop();
    evebox = await startEvebox({ dataDir });
    api = await logIn(evebox.url, "hardware-test-password");
    headers = await newToken(api, "hardware-test-3");
    const a = await app("vm-reader", (x) => x.state === "RUNNING", "RUNNING after the restart");
    expect(a.pid).toBe(before);
    expect(qemuPids(vmReader.ids!.app)).toEqual([before!]);
    const s = await app("vm-second", (x) => !!x.error, "in error after the restart");
    expect(s.error).toContain("assigned to app vm-reader");
    expect(qemuPids(vmSecond.ids!.app)).toEqual([]);
  }, 120_000);

  test("removing the VM releases the port: its QEMU ends and a container asking for the port then reads it", async () => {
    await put([plain, second, com2Reader]);
    await waitFor("the VM's QEMU gone", () => (qemuPids(vmReader.ids!.app).length === 0 ? true : undefined), 60_000);
    await app("com2-reader", (a) => a.state === "RUNNING", "RUNNING once the VM is gone");
    await sendUntilLogged(com2, com2Reader.ids!.app, "after-the-vm");
    const hw = (await api.json("GET", "/api/v1/hardware")).body;
    expect(hw.bundles.find((b: any) => b.name === "COM2").usedBy).toEqual([{ uuid: com2Reader.ids!.app, name: "com2-reader" }]);
  }, 120_000);
});
