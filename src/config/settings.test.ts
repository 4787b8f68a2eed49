import { describe, expect, test } from "bun:test";
import { configType } from "../proto/index.ts";
import { fromProto3Json, toProto3Json } from "./json.ts";
import { buildDeviceModel } from "./model.ts";
import { DEFAULT_SETTINGS, levelPasses, readConfigItems, SETTINGS } from "./settings.ts";

describe("config items", () => {
  test("known items are typed and range-checked; a bad one keeps the default and says why, with its key", () => {
    const { settings, items } = readConfigItems({
      "timer.config.interval": "5",
      "timer.metric.interval": "4",
      "app.allow.vnc": "yes",
      "network.fallback.any.eth": "enabled",
      "maintenance.mode": "none",
      "debug.default.remote.loglevel": "WARN",
      "timer.reboot.no.network": "-1",
      "no.such.item": "1",
      "debug.enable.ssh": "ssh-ed25519 AAAA",
    });
    expect(settings).toMatchObject({ configIntervalS: 5, metricIntervalS: 60, appAllowVnc: false, networkFallbackAnyEth: true, maintenanceMode: null, remoteLogLevel: "warning", rebootNoNetworkS: 604800 });
    const by = Object.fromEntries(items.map((i) => [i.key, i]));
    expect(by["timer.config.interval"]).toMatchObject({ state: "applied", detail: null });
    expect(by["timer.metric.interval"]).toMatchObject({ state: "invalid", detail: "4 is out of range 5..3600; the default (60) is used" });
    expect(by["app.allow.vnc"]).toMatchObject({ state: "invalid", detail: expect.stringMatching(/true or false/) });
    expect(by["timer.reboot.no.network"]).toMatchObject({ state: "invalid", detail: expect.stringMatching(/whole number of seconds 120\.\.4294967295/) });
    expect(by["no.such.item"]).toMatchObject({ state: "unknown" });
    expect(by["debug.enable.ssh"]).toMatchObject({ state: "ignored", detail: "evebox runs no SSH server" });
  });

  test("every setting's default is within its own range and of its own type", () => {
    for (const s of SETTINGS) {
      const k = s.kind;
      if (k.type === "seconds" || k.type === "integer") expect(Number(s.default)).toBeWithin(k.min, k.max + 1);
      expect(DEFAULT_SETTINGS[s.field]).toBe(s.default);
    }
    expect(new Set(SETTINGS.map((s) => s.key)).size).toBe(SETTINGS.length);
  });

  test("log level thresholds", () => {
    expect(levelPasses("debug", "info")).toBe(false);
    expect(levelPasses("info", "info")).toBe(true);
    expect(levelPasses("warn", "warning")).toBe(true);
    expect(levelPasses("info", "error")).toBe(false);
    expect(levelPasses("debug", "trace")).toBe(true);
  });

  test("the model: device name, commands, maintenance, the certificate hash; a cluster is a device problem, never fatal to the rest", () => {
    const { model, problems } = buildDeviceModel({
      deviceName: "press-7",
      reboot: { counter: 3 },
      shutdown: { counter: 1, desiredState: true },
      maintenanceMode: true,
      controllercertConfighash: "abc",
      cluster: { clusterId: "c1", clusterName: "k" },
      configItems: [{ key: "timer.config.interval", value: "10" }, { key: "bogus", value: "x" }],
    });
    expect(model.device).toEqual({
      name: "press-7",
      reboot: { counter: 3, desiredState: false, opsTime: "" },
      shutdown: { counter: 1, desiredState: true, opsTime: "" },
      maintenanceMode: true,
      controllerCertHash: "abc",
      cluster: { id: "c1", name: "k" },
    });
    expect(model.settings.configIntervalS).toBe(10);
    expect(model.configItemStatus.map((i) => i.state)).toEqual(["applied", "unknown"]);
    expect(problems).toEqual([{ objectKind: "device", objectId: "", path: "cluster", message: "Kubernetes clusters are not supported on this device" }]);
  });
});

test("app.boot.order: usb, nousb or empty; anything else invalid with the default kept", () => {
  expect(readConfigItems({ "app.boot.order": "USB" }).settings.appBootOrder).toBe("usb");
  const bad = readConfigItems({ "app.boot.order": "floppy" });
  expect(bad.settings.appBootOrder).toBe("");
  expect(bad.items[0]).toMatchObject({ state: "invalid", detail: expect.stringContaining('expected "usb", "nousb" or ""') });
});

describe("what the device does not do is a device problem, said once, when the config asks for it", () => {
  // Through the strict proto3 JSON reader and back, as a PUT or a controller's config reaches the model: the
  // field names are the document's, not guessed.
  const read = (json: Record<string, unknown>) => {
    const type = configType("org.lfedge.eve.config.EdgeDevConfig");
    const parsed = fromProto3Json(type, json);
    expect(parsed.problems).toEqual([]);
    return buildDeviceModel(toProto3Json(type, type.fromObject(parsed.value))).problems.map((p) => `${p.objectKind} ${p.path}: ${p.message}`);
  };

  test("EdgeView, a disk layout, 802.1X and SCEP", () => {
    const problems = read({
      edgeview: { token: "eyJ0b2tlbiI", generationId: 2 },
      disks: { arrayType: "DISKS_ARRAY_TYPE_RAID1", disks: [{ disk: { name: "sda" } }, { disk: { name: "sdb" } }] },
      pnacs: [{ logicallabel: "eth0", eapIdentity: "device-7", eapMethod: "EAP_METHOD_TLS" }],
      scepProfiles: [{ profileName: "p", scepUrl: "https://ca.example/scep" }],
    });
    expect(problems).toEqual([
      expect.stringMatching(/^device edgeview: EdgeView sessions are not supported/),
      expect.stringMatching(/^device disks: disk layouts .* are not managed by evebox/),
      "device pnacs[0]: 802.1X port authentication (PNAC) is not supported on this device",
      "device scepProfiles[0]: SCEP certificate enrolment is not supported on this device",
    ]);
  });

  test("empty messages (a controller's defaults) ask nothing", () => {
    expect(read({ edgeview: { generationId: 1 }, disks: { arrayType: "DISKS_ARRAY_TYPE_UNSPECIFIED" }, pnacs: [], scepProfiles: [] })).toEqual([]);
  });
});
