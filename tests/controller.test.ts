// evebox against a real EVE API v2 controller (tests/support/controller): onboarding, the config loop with
// hash/304, attestation, reporting, the outbox bound, the checkpoint, and every bad input of issue 3.
import { afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { open } from "../src/controller/envelope.ts";
import { verifyControllerCerts } from "../src/controller/certs.ts";
import { decodeMessage, EVE_PATCH_ENVELOPE_STATE, PhyIoMemberUsage, PhyIoType, ZInfoTypes, type ConfigResponse, type ZMetricMsg } from "../src/proto/index.ts";
import { writeFakeSysfs } from "../src/hardware/fake-sysfs.ts";
import { IDS, sampleConfig } from "./support/configs.ts";
import { makeControllerPki, type ControllerPki } from "./support/controller/pki.ts";
import { TestController } from "./support/controller/server.ts";
import { startTestDevice, type TestDevice } from "./support/controller/device.ts";
import { waitFor } from "./support/wait.ts";
import { cleanup, tempDataDir } from "./support/evebox.ts";

let pki: ControllerPki;
let ctl: TestController;
const running: TestDevice[] = [];
const outboxDropped = (m: ZMetricMsg) => Number(m.dm?.metricItems?.find((i) => i.key === "outbox.dropped")?.uint64Value ?? 0);
const dirs: string[] = [];

beforeAll(async () => {
  pki = await makeControllerPki();
});

afterEach(async () => {
  for (const d of running.splice(0)) await d.stop().catch(() => {});
  await ctl?.close();
  for (const d of dirs.splice(0)) cleanup(d);
});

setDefaultTimeout(30_000);

async function boot(opts: Partial<Parameters<typeof startTestDevice>[0]> & { onboard?: boolean; preRegister?: boolean } = {}) {
  const dataDir = opts.dataDir ?? tempDataDir("evebox-ctl-");
  if (!dirs.includes(dataDir)) dirs.push(dataDir);
  const d = await startTestDevice({
    dataDir,
    url: opts.url === undefined ? ctl.url : opts.url,
    rootPem: opts.rootPem ?? pki.root.cert,
    onboarding: opts.onboard === false ? undefined : pki.onboarding,
    timers: opts.timers,
    outboxMaxBytes: opts.outboxMaxBytes,
    checkpointMaxAgeMs: opts.checkpointMaxAgeMs,
    sysfsRoot: opts.sysfsRoot,
  });
  running.push(d);
  return d;
}

/** A config for the device once it has a UUID, with a config_timestamp. */
function configFor(overrides: Parameters<typeof sampleConfig>[0] = {}, tsSeconds = 1_800_000_000) {
  return { ...sampleConfig(overrides), configTimestamp: { seconds: tsSeconds, nanos: 0 } };
}

async function onboarded(d: TestDevice): Promise<string> {
  return waitFor("onboarding", () => d.controller.status().deviceUuid);
}

/** Onboards, gives the device a config and waits until it runs it. */
async function withConfig(d: TestDevice, overrides: Parameters<typeof sampleConfig>[0] = {}, ts?: number) {
  const uuid = await onboarded(d);
  ctl.setConfig(uuid, configFor(overrides, ts));
  const hash = ctl.configHash(uuid);
  await waitFor("config applied", () => d.controller.status().config.hash === hash);
  return { uuid, hash, version: d.store.current()!.version };
}

describe("onboarding", () => {
  test("with an onboarding certificate: certs, register (201), uuid, then config, info, metrics and newlogs arrive and decode", async () => {
    ctl = await TestController.start(pki);
    const d = await boot({ timers: { metricIntervalMs: 150, logIntervalMs: 150 } });
    const uuid = await onboarded(d);
    expect(ctl.devices.size).toBe(1);
    const rec = [...ctl.devices.values()][0]!;
    expect(rec.uuid).toBe(uuid);
    expect(rec.softSerial).toBe(d.identity.softSerial);
    expect(d.controller.status().registration).toContain("201");
    // The paths EVE uses, in EVE's order.
    await waitFor("a config request", () => ctl.count(new RegExp(`/id/${uuid}/config$`)) > 0);
    const first = ctl.requests.map((r) => `${r.method} ${r.path}`);
    expect(first.slice(0, 3)).toEqual(["GET /api/v2/edgedevice/certs", "POST /api/v2/edgedevice/register", "POST /api/v2/edgedevice/uuid"]);
    // After onboarding, the config loop and the outbox's uploads (metrics, info) run side by side: the first
    // config request comes after uuid, and nothing under /id/ comes before uuid.
    const cfg = first.indexOf(`POST /api/v2/edgedevice/id/${uuid}/config`);
    expect(cfg).toBeGreaterThan(2);
    expect(first.slice(0, 3).some((p) => p.includes("/id/"))).toBe(false);

    const { version } = await withConfig(d);
    const cur = d.store.current()!;
    expect(cur.source).toBe("controller");
    expect(d.device.managed()).toBe(true);
    expect(d.device.status().apps.map((a) => a.uuid)).toEqual([IDS.app]);

    // Info: the device and every object of the config, decoded with proto/.
    await waitFor("app info", () => ctl.infos.find((i) => i.ainfo?.AppID === IDS.app));
    const dev = await waitFor("device info", () => ctl.infos.find((i) => i.ztype === 1 && i.dinfo));
    expect(dev.devId).toBe(uuid);
    expect(dev.dinfo!.swList![0]!.shortVersion).toBe("0.1.0-test");
    expect(Number(dev.dinfo!.memory)).toBeGreaterThan(0);
    expect(dev.atTimeStamp?.seconds).toBeDefined();
    await waitFor("ni/volume/content tree info", () =>
      ctl.infos.some((i) => i.niinfo?.networkID === IDS.network) && ctl.infos.some((i) => i.vinfo?.uuid === IDS.volume) && ctl.infos.some((i) => i.cinfo?.uuid === IDS.contentTree),
    );
    const app = ctl.infos.find((i) => i.ainfo?.AppID === IDS.app)!;
    expect(app.ainfo!.AppName).toBe("web");

    // Metrics: cumulative counters, the outbox state as "outbox.*" metric items.
    const m = await waitFor("metrics", () => ctl.metrics.at(-1));
    expect(m.devID).toBe(uuid);
    expect(Number(m.dm!.cpuMetric!.systemTotal)).toBeGreaterThan(0);
    expect(m.dm!.network!.length).toBeGreaterThan(0);
    expect(m.dm!.metricItems!.map((i) => i.key)).toEqual(expect.arrayContaining(["outbox.undelivered", "outbox.dropped"]));

    // newlogs: gzip, JSON lines, header comment with devID/image/eveVersion as EVE's loguploader sends.
    d.device.log("info", "a line for the controller");
    const bundle = await waitFor("device newlogs", () => ctl.logs.find((l) => l.path === "newlogs" && l.entries.some((e) => e.content === "a line for the controller")));
    expect(JSON.parse(bundle.header.comment!)).toMatchObject({ devID: uuid, eveVersion: "0.1.0-test" });
    const line = bundle.entries.find((e) => e.content === "a line for the controller")!;
    expect(line).toMatchObject({ severity: "info", source: "device" });
    expect((line.timestamp as { seconds: number }).seconds).toBeGreaterThan(1_600_000_000);

    // App logs go to /apps/instanceid/{uuid}/newlogs with the app's name in the gzip header.
    d.store.addLogs([{ ts: new Date(), source: "app", objectId: IDS.app, level: "info", message: "hello from the app" }]);
    const appLogs = await waitFor("app newlogs", () => ctl.logs.find((l) => l.path === `apps/instanceid/${IDS.app}/newlogs`));
    expect(appLogs.header.name).toBe("web");
    expect(appLogs.entries[0]!.content).toBe("hello from the app");
    expect(version).toBeGreaterThan(0);
  });

  test("hardware: the controller gets the assignable adapters (ZioBundle) and the inventory (ZInfoHardware), decoded with proto/", async () => {
    // A fake sysfs tree (USB, CAN, a GPU: the test machine has none); the config's groups and an app holding one.
    const sys = mkdtempSync(join(tmpdir(), "evebox-ctl-sys-"));
    dirs.push(sys);
    writeFakeSysfs(sys);
    ctl = await TestController.start(pki);
    const d = await boot({ sysfsRoot: sys });
    const uuid = await onboarded(d);
    const cfg: any = configFor();
    cfg.deviceIoList = [
      { ptype: "PhyIoUSB", phylabel: "USB 1:2", logicallabel: "ftdi", assigngrp: "USB1:2", phyaddrs: { usbaddr: "1:2" }, usage: "PhyIoUsageDedicated" },
      { ptype: "PhyIoHDMI", phylabel: "GPU", logicallabel: "gpu", assigngrp: "group1", phyaddrs: { pcilong: "0000:00:02.0" } },
      { ptype: "PhyIoAudio", phylabel: "GPU audio", logicallabel: "gpu-audio", assigngrp: "group1", phyaddrs: { pcilong: "0000:00:02.1" } },
      { ptype: "PhyIoCAN", phylabel: "CAN", logicallabel: "can0", assigngrp: "can0", phyaddrs: { ifname: "can0" } },
      { ptype: "PhyIoNetEth", phylabel: "Port 0", logicallabel: "eth0", assigngrp: "eth0", phyaddrs: { ifname: "eth0" }, usage: "PhyIoUsageMgmtOnly" },
    ];
    cfg.apps[0].adapters = [{ type: "PhyIoUSB", name: "USB1:2" }];
    ctl.setConfig(uuid, cfg);
    const dev = await waitFor("device info with the adapters", () => ctl.infos.findLast((i) => i.ztype === ZInfoTypes.ZiDevice && i.dinfo?.assignableAdapters?.length === 4));
    const bundles = dev.dinfo!.assignableAdapters!;
    expect(bundles.map((b) => [b.type, b.name, b.members, b.usage ?? 0, b.usedByBaseOS ?? false])).toEqual([
      [PhyIoType.PhyIoUSB, "USB1:2", ["ftdi"], PhyIoMemberUsage.PhyIoUsageDedicated, false],
      [PhyIoType.PhyIoHDMI, "group1", ["gpu", "gpu-audio"], PhyIoMemberUsage.PhyIoUsageNone, false],
      [PhyIoType.PhyIoCAN, "can0", ["can0"], PhyIoMemberUsage.PhyIoUsageNone, false],
      [PhyIoType.PhyIoNetEth, "eth0", ["eth0"], PhyIoMemberUsage.PhyIoUsageMgmtOnly, true],
    ]);
    expect(bundles[3]!.ioAddressList).toEqual([{ macAddress: "52:54:00:12:34:56" }]);
    // The app holds its USB device (this in-process device runs no workloads: the holder is the assignment's).
    expect(bundles.map((b) => b.usedByAppUUID ?? "")).toEqual([IDS.app, "", "", ""]);
    const appInfo = await waitFor("app info with its adapter", () => ctl.infos.findLast((i) => i.ainfo?.AppID === IDS.app && i.ainfo.assignedAdapters?.length));
    expect(appInfo.ainfo!.assignedAdapters!.map((b) => [b.type, b.name])).toEqual([[PhyIoType.PhyIoUSB, "USB1:2"]]);
    const hw = await waitFor("hardware info", () => ctl.infos.find((i) => i.ztype === ZInfoTypes.ZiHardware && i.hwinfo));
    const inv = hw.hwinfo!.inventory!;
    expect(inv.usbDevices!.map((u) => [u.busPort!.bus, u.busPort!.port, u.vendorId, u.productId])).toEqual([
      [1, "2", 0x0403, 0x6001],
      [1, "3", 0x0529, 0x0620],
    ]);
    expect(inv.pciDevices!.length).toBe(6);
    expect(inv.canDevices!.map((c) => c.ifname)).toEqual(["can0", "vcan0"]);
    expect(inv.serialDevices!.map((s) => s.devpath)).toEqual(["/dev/ttyS0", "/dev/ttyUSB0"]);
  });

  test("without an onboarding certificate: an unknown device says how to enrol it; once added in the controller it onboards", async () => {
    ctl = await TestController.start(pki);
    const d = await boot({ onboard: false });
    // Between two tries the status is "error"; during a retry it is "onboarding" with the last error kept, so
    // the test waits for a moment between tries (it read one mid-retry once, under load).
    await waitFor("onboarding error", () => {
      const s = d.controller.status();
      return s.lastError?.phase === "onboarding" && s.connection === "error";
    });
    const s = d.controller.status();
    expect(s.connection).toBe("error");
    expect(s.lastError!.message).toContain(d.identity.fingerprint);
    expect(d.device.status().parts.find((p) => p.name === "controller")!.state).toBe("error");
    await ctl.addDevice(d.identity.device.pem);
    await onboarded(d);
    await waitFor("online", () => d.controller.status().connection === "online");
  });

  test("register answering 409 or 403 is a clear status, not a crash", async () => {
    ctl = await TestController.start(pki);
    ctl.registerAnswer = 409;
    const d = await boot();
    await waitFor("409 status", () => d.controller.status().lastError?.message.includes("conflict (409)"));
    ctl.registerAnswer = 403;
    await waitFor("403 status", () => d.controller.status().lastError?.message.includes("refused (403)"));
    expect(d.controller.status().lastError!.message).toContain(d.identity.softSerial);
    ctl.registerAnswer = null;
    await onboarded(d);
  });

  test("identity: P-256 key and self-signed certificate, mode 0600, soft serial kept across restarts", async () => {
    ctl = await TestController.start(pki);
    const d = await boot();
    const cfg = join(d.dataDir, "config");
    for (const f of ["device.key.pem", "device.cert.pem", "soft_serial"]) expect(statSync(join(cfg, f)).mode & 0o777).toBe(0o600);
    const x = new X509Certificate(readFileSync(join(cfg, "device.cert.pem")));
    expect(x.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(x.verify(x.publicKey)).toBe(true);
    expect(x.subject).toContain(d.identity.softSerial);
    const soft = d.identity.softSerial;
    const fp = d.identity.fingerprint;
    await d.stop();
    running.splice(running.indexOf(d), 1);
    const again = await boot({ dataDir: d.dataDir });
    expect(again.identity.softSerial).toBe(soft);
    expect(again.identity.fingerprint).toBe(fp);
    expect(readFileSync(join(cfg, "server"), "utf8").trim()).toBe(new URL(ctl.url).host);
  });
});

describe("config loop", () => {
  test("a change is applied, an unchanged config is a 304, and the signed answer is checkpointed", async () => {
    ctl = await TestController.start(pki);
    const d = await boot();
    const first = await withConfig(d, { appName: "web" });
    const before304 = ctl.requests.filter((r) => r.status === 304).length;
    await waitFor("304 answers", () => ctl.requests.filter((r) => r.status === 304).length >= before304 + 3);
    expect(d.store.current()!.version).toBe(first.version); // nothing stored for a 304

    ctl.setConfig(first.uuid, configFor({ appName: "web2", memoryKiB: 131072 }, 1_800_000_100));
    const hash2 = ctl.configHash(first.uuid);
    await waitFor("new config", () => d.controller.status().config.hash === hash2);
    expect(d.store.current()!.version).toBeGreaterThan(first.version);
    expect(d.device.status().apps[0]!.name).toBe("web2");

    // persist/checkpoint/lastconfig is the AuthContainer as received; it verifies with the checkpointed certs.
    const cp = new Uint8Array(readFileSync(join(d.dataDir, "persist", "checkpoint", "lastconfig")));
    const certs = await verifyControllerCerts(new Uint8Array(readFileSync(join(d.dataDir, "persist", "checkpoint", "controllercerts"))), pki.root.cert);
    const resp = decodeMessage<ConfigResponse>("org.lfedge.eve.config.ConfigResponse", await open(cp, certs.signer));
    expect(resp.configHash).toBe(hash2);
    expect(statSync(join(d.dataDir, "persist", "checkpoint", "lastconfig")).mode & 0o777).toBe(0o600);
  });

  test("patch envelopes: one ZInfoPatchEnvelope each with EVE's state; a bad file name holds only that envelope in error, with its path", async () => {
    ctl = await TestController.start(pki);
    const d = await boot();
    const uuid = await onboarded(d);
    const PE = ["7f000000-0000-4000-8000-000000000001", "7f000000-0000-4000-8000-000000000002", "7f000000-0000-4000-8000-000000000003"];
    const inline = (f: string) => ({ inline: { fileNameToUse: f, base64Data: btoa(`${f}\n`) } });
    ctl.setConfig(uuid, {
      ...configFor(),
      patchEnvelopes: [
        { uuid: PE[0], version: "1", displayName: "served", action: "ACTIVATE", appInstIdsAllowed: [IDS.app], artifacts: [inline("a.txt"), inline("b.txt")] },
        { uuid: PE[1], version: "2", displayName: "stored", action: "STORE", appInstIdsAllowed: [IDS.app], artifacts: [inline("c.txt")] },
        { uuid: PE[2], version: "3", displayName: "bad", action: "ACTIVATE", appInstIdsAllowed: [IDS.app], artifacts: [inline("../x")] },
      ],
    });
    const hash = ctl.configHash(uuid);
    await waitFor("config applied", () => d.controller.status().config.hash === hash);
    const infos = await waitFor("three patch envelope infos", () => {
      const got = PE.map((id) => ctl.infos.findLast((i) => i.ztype === ZInfoTypes.ZiPatchEnvelope && i.patchInfo?.id === id));
      return got.every(Boolean) ? got.map((i) => i!.patchInfo!) : undefined;
    });
    expect(infos.map((p) => [p.name, p.version, p.state])).toEqual([
      ["served", "1", EVE_PATCH_ENVELOPE_STATE.PATCH_ACTIVE],
      ["stored", "2", EVE_PATCH_ENVELOPE_STATE.PATCH_READY],
      ["bad", "3", EVE_PATCH_ENVELOPE_STATE.PATCH_ERROR],
    ]);
    expect(Number(infos[0]!.size)).toBe(btoa("a.txt\n").length + btoa("b.txt\n").length);
    expect(infos[2]!.errors).toEqual([expect.stringContaining("patchEnvelopes[2].artifacts[0].inline.fileNameToUse:")]);
    // The rest of the config applied: the app runs as configured.
    expect(d.device.status().apps.map((a) => a.uuid)).toEqual([IDS.app]);
  });

  test("attestation: the controller answers 403 until the nonce/quote exchange gives an integrity token", async () => {
    ctl = await TestController.start(pki);
    ctl.requireAttestation = true;
    const d = await boot();
    const { uuid } = await withConfig(d);
    // nonce, quote (the ECDH certificate, ATTEST_REQ_CERT, goes the same way before the config is asked for)
    expect(ctl.attests.filter((a) => a.uuid === uuid && a.reqType !== 1).map((a) => a.reqType)).toEqual([2, 3]);
    expect(d.controller.status().attestation.state).toBe("done");
    expect(ctl.requests.some((r) => r.path.endsWith("/config") && r.status === 403)).toBe(true);
  });
});

describe("bad input: refused or survived, the running config untouched", () => {
  async function runningConfig() {
    ctl = await TestController.start(pki);
    const d = await boot();
    const cfg = await withConfig(d, { appName: "web" }, 1_800_000_000);
    return { d, ...cfg };
  }
  /** Offers a new config under `fault` and waits for the refusal; the current version must stay. */
  async function refuses(d: TestDevice, uuid: string, version: number, match: RegExp, ts = 1_800_000_500) {
    ctl.setConfig(uuid, configFor({ appName: "evil" }, ts));
    const refused = await waitFor("refusal", () => d.controller.status().config.refused);
    expect(refused.reason).toMatch(match);
    expect(d.store.current()!.version).toBe(version);
    expect(d.device.status().apps[0]!.name).toBe("web");
    const part = d.device.status().parts.find((p) => p.name === "controller")!;
    expect(part.detail).toContain("refused");
    expect(d.store.logsFor("controller", null).some((l) => l.level === "error" && l.message.includes("config refused"))).toBe(true);
    return refused;
  }

  test("tampered signature", async () => {
    const { d, uuid, version } = await runningConfig();
    ctl.fault = "tamper";
    await refuses(d, uuid, version, /signature does not verify/);
  });

  test("unknown signer: the certificates are fetched again, then the config is refused", async () => {
    const { d, uuid, version } = await runningConfig();
    const certsBefore = ctl.count(/\/certs$/);
    ctl.fault = "unknown-signer";
    await refuses(d, uuid, version, /unknown certificate/);
    expect(ctl.count(/\/certs$/)).toBeGreaterThan(certsBefore);
  });

  test("wrong chain: a signing certificate from another root is not trusted", async () => {
    const { d, uuid, version } = await runningConfig();
    ctl.fault = "rogue-chain";
    await refuses(d, uuid, version, /signing certificate does not chain to config\/root-certificate.pem/);
    expect(d.controller.status().controllerCertificate!.hash).toBe(Buffer.from(new Bun.CryptoHasher("sha256").update(pki.signing.cert.trim()).digest()).toString("hex"));
  });

  test("malformed protobuf (signed, but not a ConfigResponse)", async () => {
    const { d, uuid, version } = await runningConfig();
    ctl.fault = "malformed";
    await refuses(d, uuid, version, /malformed ConfigResponse/);
  });

  test("500,000 empty apps in a 1 MB signed config: refused by the bound before decoding, the device stays up", async () => {
    const { d, uuid, version } = await runningConfig();
    ctl.fault = "flood";
    await refuses(d, uuid, version, /config\.apps: 500000 entries: at most \d+/);
  });

  test("an answer that is not protobuf at all", async () => {
    const { d, uuid, version } = await runningConfig();
    ctl.fault = "no-proto";
    await refuses(d, uuid, version, /Content-Type "text\/plain"/);
  });

  test("an older config_timestamp than the config applied", async () => {
    const { d, uuid, version } = await runningConfig();
    await refuses(d, uuid, version, /older than/, 1_700_000_000);
    // The controller fixes it: a newer timestamp is applied again.
    ctl.setConfig(uuid, configFor({ appName: "fixed" }, 1_800_001_000));
    await waitFor("recovered", () => d.device.status().apps[0]?.name === "fixed");
    expect(d.controller.status().config.refused).toBeNull();
  });

  test("5xx storm: offline with backoff (no hammering), then back online", async () => {
    const { d, version } = await runningConfig();
    ctl.fault = "5xx";
    await waitFor("offline", () => d.controller.status().connection === "offline");
    const start = ctl.requests.length;
    await Bun.sleep(1500); // deliberately: a fixed stretch of time in which to count the device's calls
    const during = ctl.requests.length - start;
    // Config interval 200 ms, backoff 50 ms doubling to 400 ms: a hammering client would make >= 30 calls (plus the outbox).
    expect(during).toBeLessThan(25);
    expect(d.controller.status().lastError!.message).toContain("503");
    expect(d.store.current()!.version).toBe(version);
    ctl.fault = "none";
    await waitFor("online again", () => d.controller.status().connection === "online", 5000);
  });

  test("slow-loris controller: every call times out, the device stays up and recovers", async () => {
    const { d, version } = await runningConfig();
    ctl.fault = "slow";
    await waitFor("timeout", () => d.controller.status().lastError?.message.includes("no complete answer within 800 ms"), 6000);
    expect(d.controller.status().connection).toBe("offline");
    ctl.fault = "hang";
    await Bun.sleep(1000); // deliberately: the device stays offline while the controller hangs
    expect(d.controller.status().connection).toBe("offline");
    expect(d.store.current()!.version).toBe(version);
    ctl.fault = "none";
    await waitFor("online again", () => d.controller.status().connection === "online", 6000);
  });
});

describe("offline-first", () => {
  test("controller down: the outbox stays within its bound (metrics dropped oldest-first, counted), then drains in order", async () => {
    ctl = await TestController.start(pki);
    const maxBytes = 24 * 1024;
    const d = await boot({ outboxMaxBytes: maxBytes, timers: { metricIntervalMs: 40 } });
    await withConfig(d);
    await waitFor("first metrics", () => ctl.metrics.length > 0);
    await ctl.down();
    await waitFor("bound hit", () => d.controller.outbox.counts().dropped.metrics > 5, 15_000);
    const depth = d.controller.outbox.depth();
    expect(depth.bytes).toBeLessThanOrEqual(maxBytes);
    expect(depth.byKind.metrics).toBeGreaterThan(0);
    // An info queued while down is kept whatever the pressure.
    d.device.log("info", "while offline");
    d.events.publish({ type: "app.changed", message: "a state change while offline" });
    const before = ctl.metrics.length;
    const dropped = d.controller.outbox.counts().dropped.metrics;
    ctl.listen();
    await waitFor("drained", () => d.controller.outbox.depth().messages <= 2, 15_000);
    const after = ctl.metrics.slice(before);
    expect(after.length).toBeGreaterThan(3);
    // In order: the sample times only grow.
    const times = after.map((m) => Number(m.atTimeStamp!.seconds) * 1e9 + (m.atTimeStamp!.nanos ?? 0));
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    // The loss is reported to the controller.
    const reported = await waitFor("loss reported", () => ctl.metrics.find((m) => outboxDropped(m) >= dropped));
    expect(outboxDropped(reported)).toBeGreaterThanOrEqual(dropped);
    const st = d.controller.status();
    expect(st.outbox.dropped.metrics).toBeGreaterThan(5);
  }, 60_000);

  test("restart while the controller is gone: the checkpointed config is applied, whatever its age", async () => {
    ctl = await TestController.start(pki);
    const d = await boot();
    const { hash } = await withConfig(d, { appName: "kept" });
    const dataDir = d.dataDir;
    await d.stop();
    running.splice(running.indexOf(d), 1);
    await ctl.down();
    // Worst case: the store is gone too (a new disk, a wiped persist/evebox.db); the checkpoint is all that is left.
    for (const f of ["evebox.db", "evebox.db-wal", "evebox.db-shm"]) rmSync(join(dataDir, "persist", f), { force: true });
    const old = new Date(Date.now() - 30 * 86_400_000); // a month old: EVE would drop it after 7 days
    const { utimesSync } = await import("node:fs");
    utimesSync(join(dataDir, "persist", "checkpoint", "lastconfig"), old, old);
    const again = await boot({ dataDir });
    const cur = again.store.current();
    expect(cur?.source).toBe("controller");
    expect(again.device.status().apps.map((a) => a.name)).toEqual(["kept"]);
    expect(again.controller.status().config.fromCheckpoint).toBe(true);
    expect(again.controller.status().config.hash).toBe(hash);
    await waitFor("offline", () => again.controller.status().connection === "offline");
  });

  test("an operator's age limit on the checkpoint is honoured", async () => {
    ctl = await TestController.start(pki);
    const d = await boot();
    await withConfig(d, { appName: "kept" });
    const dataDir = d.dataDir;
    await d.stop();
    running.splice(running.indexOf(d), 1);
    await ctl.down();
    for (const f of ["evebox.db", "evebox.db-wal", "evebox.db-shm"]) rmSync(join(dataDir, "persist", f), { force: true });
    const old = new Date(Date.now() - 30 * 86_400_000);
    const { utimesSync } = await import("node:fs");
    utimesSync(join(dataDir, "persist", "checkpoint", "lastconfig"), old, old);
    const again = await boot({ dataDir, checkpointMaxAgeMs: 7 * 86_400_000 });
    expect(again.store.current()).toBeNull();
    expect(again.store.logsFor("controller", null).some((l) => l.message.includes("older than the operator's limit"))).toBe(true);
  });
});

describe("managed mode and the console", () => {
  test("PUT /api/v1/config answers 409 while managed; GET/PUT /api/v1/controller show and set the controller", async () => {
    ctl = await TestController.start(pki);
    const d = await boot({ url: null });
    const { Auth } = await import("../src/auth/auth.ts");
    const { createConsoleApp } = await import("../src/console/app.ts");
    const app = createConsoleApp({ auth: new Auth(d.store, join(d.dataDir, "run", "setup-token")), device: d.device, ui: null, trustAll: true });
    const call = (method: string, path: string, body?: unknown) =>
      app.fetch(new Request(`http://device${path}`, { method, headers: { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) }));

    let r = await call("GET", "/api/v1/controller");
    let s = (await r.json()) as any;
    expect(s.mode).toBe("local");
    expect(s.identity.fingerprint).toBe(d.identity.fingerprint);
    expect(s.identity.softSerial).toBe(d.identity.softSerial);
    expect((await call("PUT", "/api/v1/config", configFor())).status).toBe(201); // local mode: allowed

    r = await call("PUT", "/api/v1/controller", { url: "http://plain.example" });
    expect(r.status).toBe(400);
    expect(((await r.json()) as any).error).toContain("https");
    r = await call("PUT", "/api/v1/controller", { rootCertificate: "not a certificate" });
    expect(r.status).toBe(400);

    r = await call("PUT", "/api/v1/controller", { url: ctl.url, rootCertificate: pki.root.cert });
    expect(r.status).toBe(200);
    s = await r.json();
    expect(s.mode).toBe("managed");
    expect(d.device.managed()).toBe(true);
    const put = await call("PUT", "/api/v1/config", configFor({ appName: "local" }));
    expect(put.status).toBe(409);
    expect(((await put.json()) as any).error).toContain("managed by the controller");
    await onboarded(d);
    s = await (await call("GET", "/api/v1/controller")).json();
    expect(s.deviceUuid).toBeTruthy();
    expect(s.lastContact).toBeTruthy();
    expect(s.outbox).toMatchObject({ maxBytes: expect.any(Number), dropped: { metrics: 0 } });
    expect(existsSync(join(d.dataDir, "config", "root-certificate.pem"))).toBe(true);
  });
});
