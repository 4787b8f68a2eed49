import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IDS, sampleConfig } from "../../tests/support/configs.ts";
import { EventBus } from "../model/events.ts";
import { Store } from "../store/store.ts";
import { buildDeviceModel } from "./model.ts";
import { ConfigService } from "./service.ts";
import { NO_ENV, readConfig } from "./validate.ts";
import { MAX_PORT_DEPTH } from "./ports.ts";

const U = (n: number) => `7a000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
const b64 = (s: string) => Buffer.from(s).toString("base64");
const dir = mkdtempSync(join(tmpdir(), "evebox-model-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A proto3 JSON document as the parts get it: decoded, canonical toObject form, UUIDs lower case. */
function parsed(json: unknown) {
  const svc = new ConfigService(null as never, null as never);
  return svc.parse(new TextEncoder().encode(JSON.stringify(json)), "application/json").doc;
}

describe("the device model", () => {
  test("is built from the sample config: app, its kind, resources, env, interfaces, ACLs, volumes, content tree, datastore, NI", () => {
    const { model, problems } = buildDeviceModel(parsed(sampleConfig({ memoryKiB: 131072 })));
    expect(problems).toEqual([]);
    expect(model.id).toEqual({ uuid: IDS.config, version: "1" });
    const [app] = model.apps;
    expect(app).toMatchObject({
      uuid: IDS.app,
      name: "web",
      kind: "container",
      activate: true,
      resources: { memoryKiB: 131072, maxMemKiB: 131072, vcpus: 1, remoteConsole: false },
      imageContentTree: IDS.contentTree,
      volumeRefs: [{ uuid: IDS.volume, generation: 1, mountDir: null }],
      restartCounter: 0,
      purgeCounter: 0,
      faults: [],
    });
    expect(app!.userData.env).toEqual({ GREETING: "hello" });
    expect(app!.interfaces).toHaveLength(1);
    expect(app!.interfaces[0]).toMatchObject({ index: 0, name: "eth0", networkId: IDS.network, macAddress: null });
    expect(app!.interfaces[0]!.acls.map((a) => a.action)).toEqual([{ kind: "portmap", appPort: 80 }, { kind: "allow" }]);
    expect(model.volumes).toEqual([expect.objectContaining({ uuid: IDS.volume, origin: "download", contentTreeId: IDS.contentTree, sizeBytes: 104857600, generation: 1, referenced: true })]);
    expect(model.contentTrees[0]).toMatchObject({ uuid: IDS.contentTree, format: "CONTAINER", referenced: true, source: { kind: "registry", fqdn: "docker://127.0.0.1:5000", url: "evebox/busybox:1" }, faults: [] });
    expect(model.datastores[0]).toMatchObject({ id: IDS.datastore, type: "DsContainerRegistry" });
    expect(model.networkInstances[0]).toMatchObject({ uuid: IDS.network, name: "plant-lan", kind: "local", port: null, subnet: "198.51.100.0/24", gateway: "198.51.100.1", dhcpRange: { start: "198.51.100.10", end: "198.51.100.100" }, mtu: 1500 });
    expect(model.baseOs).toBeNull();
  });

  test("a VM app, a blank volume with its mount, adapters, counters, base OS, config items, device ports", () => {
    const doc = parsed({
      datastores: [{ id: U(1), dType: "DsHttp", fqdn: "http://127.0.0.1:8000/", dpath: "/images/" }],
      contentInfo: [{ uuid: U(2), dsId: U(1), URL: "/disk.qcow2", iformat: "QCOW2", sha256: "AB".repeat(32) }],
      volumes: [
        { uuid: U(3), origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: U(2) }, maxsizebytes: "1073741824" },
        { uuid: U(4), origin: { type: "VCOT_BLANK" }, maxsizebytes: "1048576", displayName: "data" },
      ],
      apps: [
        {
          uuidandversion: { uuid: U(20), version: "3" },
          displayname: "vm1",
          fixedresources: { memory: 524288, vcpus: 2, virtualizationMode: "FML", cpus: "0-1" },
          remoteConsole: true,
          volumeRefList: [{ uuid: U(3) }, { uuid: U(4), mountDir: "/data" }],
          adapters: [{ type: "PhyIoUSB", name: "usb0" }],
          restart: { counter: 2 },
          purge: { counter: 1 },
          startDelayInSeconds: 5,
          userData: b64("#cloud-config\nhostname: vm1\n"),
          interfaces: [{ name: "", macAddress: "02:AA:BB:CC:DD:EE" }],
        },
      ],
      baseos: { baseOsVersion: "1.2.3", contentTreeUuid: U(2), activate: true, retryUpdate: { counter: 4 } },
      configItems: [{ key: "timer.config.interval", value: "60" }],
      deviceIoList: [
        { ptype: "PhyIoNetEth", logicallabel: "wan", phylabel: "Port 1", phyaddrs: { Ifname: "eth1" }, usage: "PhyIoUsageMgmtAndApps" },
        { ptype: "PhyIoUSB", logicallabel: "usb0", assigngrp: "USB1", phyaddrs: { UsbAddr: "1:2" }, usage: "PhyIoUsageDedicated" },
      ],
      systemAdapterList: [{ name: "wan", uplink: true, networkUUID: U(30) }],
      networks: [{ id: U(30), ip: { dhcp: "Client" } }],
    });
    const { model, problems } = readConfig(doc, NO_ENV);
    expect(problems).toEqual([]);
    const app = model.apps[0]!;
    expect(app).toMatchObject({ kind: "vm", version: "3", restartCounter: 2, purgeCounter: 1, startDelaySec: 5, adapters: [{ type: "PhyIoUSB", name: "usb0", group: "USB1", members: [1] }] });
    expect(model.physicalIo[1]).toMatchObject({ assignGroup: "USB1", addrs: { usbAddr: "1:2", pciLong: null, serial: null, usbProduct: null } });
    expect(app.resources).toEqual({ memoryKiB: 524288, maxMemKiB: 0, vcpus: 2, cpuPinning: "0-1", virtualizationMode: "FML", remoteConsole: true, vm: { maxCpus: 0, pinCpu: false, vmmMaxMemKiB: 0, disableLogs: false, vncDisplay: 0, vncPasswd: "", oemWinLicenseKey: false, enforceInterfaceOrder: false, bootMode: null, bootOrder: null, set: [] } });
    expect(app.userData).toMatchObject({ kind: "cloud-config", text: "#cloud-config\nhostname: vm1\n" });
    expect(app.interfaces[0]).toMatchObject({ name: "eth0", networkId: "", macAddress: "02:aa:bb:cc:dd:ee" });
    expect(app.volumeRefs[1]).toEqual({ uuid: U(4), generation: 0, mountDir: "/data" });
    expect(model.volumes.map((v) => v.origin)).toEqual(["download", "blank"]);
    expect(model.contentTrees[0]!.source).toEqual({ kind: "http", url: "http://127.0.0.1:8000/images/disk.qcow2" });
    expect(model.contentTrees[0]!.sha256).toBe("ab".repeat(32));
    expect(model.baseOs).toEqual({ version: "1.2.3", contentTreeId: U(2), activate: true, retryCounter: 4 });
    expect(model.configItems).toEqual({ "timer.config.interval": "60" });
    expect(model.physicalIo[0]).toMatchObject({ logicalLabel: "wan", physicalLabel: "Port 1", ifname: "eth1", type: "PhyIoNetEth" });
    expect(model.ports).toEqual([{ index: 0, name: "wan", resolution: { kind: "ifname", ifname: "eth1", via: ["wan"] }, uplink: true, networkId: U(30), addr: null }]);
    expect(model.networks[0]).toMatchObject({ id: U(30), dhcp: "Client" });
    expect(model.portLabels.get("wan")).toMatchObject({ kind: "ifname", ifname: "eth1" });
  });

  test("an app whose first volume is neither a container nor a disk: accepted, kind null, a fault; a datastore that cannot serve", () => {
    const doc = parsed({
      datastores: [{ id: U(1), dType: "DsHttps", fqdn: "http://x" }],
      contentInfo: [{ uuid: U(2), dsId: U(1), URL: "a", iformat: "PVC" }],
      volumes: [{ uuid: U(3), origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: U(2) } }],
      apps: [{ uuidandversion: { uuid: U(20) }, displayname: "x", volumeRefList: [{ uuid: U(3) }] }],
    });
    const { model, problems } = buildDeviceModel(doc);
    expect(problems).toEqual([]);
    expect(model.apps[0]!.kind).toBeNull();
    expect(model.apps[0]!.faults[0]).toMatch(/first volume/);
    expect(model.contentTrees[0]!.faults).toEqual([`datastore ${U(1)}: an Https datastore needs an https:// fqdn`, "sha256: a content tree from an Http(s) datastore needs its sha256"]);
  });

  test("port labels: a cycle and a chain too deep are problems at the field; the model still holds the error", () => {
    const cyc = { systemAdapterList: [{ name: "lan-a", lowerLayerName: "lan-b" }, { name: "lan-b", lowerLayerName: "lan-a" }] };
    const r = buildDeviceModel(cyc);
    expect(r.problems.map((p) => p.path)).toEqual(["systemAdapterList[1].lowerLayerName", "systemAdapterList[0].lowerLayerName"]);
    expect(r.problems[0]!.message).toMatch(/cycle: lan-a → lan-b → lan-a/);
    expect(r.model.ports[0]!.resolution.kind).toBe("error");
    const chain = Array.from({ length: MAX_PORT_DEPTH + 2 }, (_, i) => ({ name: `p${i}`, lowerLayerName: `p${i + 1}` }));
    const deep = buildDeviceModel({
      systemAdapterList: chain,
      networkInstances: [{ uuidandversion: { uuid: U(10) }, instType: "ZnetInstSwitch", port: { name: "p0" } }],
    });
    expect(deep.problems.find((p) => p.path === "networkInstances[0].port.name")).toMatchObject({ objectKind: "networkInstance", objectId: U(10), message: expect.stringMatching(/more than 8 levels deep/) });
    expect(deep.model.networkInstances[0]!.port!.resolution.kind).toBe("error");
    // Each label is resolved once, however many fields name it.
    expect(deep.model.portLabels.size).toBe(chain.length);
  });

  test("a userData variable the engine cannot take refuses the config at the app's userData", () => {
    const doc = parsed(sampleConfig());
    doc.apps[0].userData = b64("A=\u0007bell\n");
    const { problems } = readConfig(doc, NO_ENV);
    expect(problems).toEqual([{ objectKind: "app", objectId: IDS.app, path: "apps[0].userData", message: "variable A: its value holds a control character at position 0" }]);
  });

  test("ConfigService.model(): the current version's model, read once per version; a refused document leaves it untouched", () => {
    const store = Store.open(join(dir, "evebox.db"));
    const svc = new ConfigService(store, new EventBus(store));
    expect(svc.model()).toBeNull();
    const body = (j: unknown) => new TextEncoder().encode(JSON.stringify(j));
    const v1 = svc.put(body(sampleConfig()), "application/json", { source: "local", author: "test" });
    const m1 = svc.model()!;
    expect(m1.version).toBe(v1.version!);
    expect(m1.model.apps[0]!.userData.env).toEqual({ GREETING: "hello" });
    expect(svc.model()!.model).toBe(m1.model);
    const bad = sampleConfig({ appName: "web2", version: "2" }) as any;
    bad.apps[0].userData = b64("A=\u0000\n");
    expect(() => svc.put(body(bad), "application/json", { source: "local", author: "test" })).toThrow(/userData: variable A/);
    expect(svc.model()!.model).toBe(m1.model);
    svc.put(body(sampleConfig({ appName: "web2", version: "2" })), "application/json", { source: "local", author: "test" });
    expect(svc.model()!.model.apps[0]!.name).toBe("web2");
    // After a restart, the model is read from the stored version on first use, once.
    const again = new ConfigService(store, new EventBus(store));
    const m = again.model()!;
    expect(m.model.apps[0]!.name).toBe("web2");
    expect(again.model()!.model).toBe(m.model);
    store.close?.();
  });

  test("cipher contexts and cipher blocks are read as sent, still encrypted, from JSON and binary alike", () => {
    const iv = Buffer.alloc(16, 7).toString("base64");
    const doc = parsed({
      cipherContexts: [{ contextId: "CTX-1", hashScheme: "HASH_ALGORITHM_SHA256_16BYTES", keyExchangeScheme: "KEA_ECDH", encryptionScheme: "SA_AES_256_CFB", deviceCertHash: Buffer.alloc(16, 0xab).toString("base64"), controllerCertHash: Buffer.alloc(16, 0xcd).toString("base64") }],
      datastores: [{ id: U(1), dType: "DsContainerRegistry", fqdn: "docker://r", cipherData: { cipherContextId: "CTX-1", initialValue: iv, cipherData: b64("opaque"), clearTextSha256: b64("h") } }, { id: U(2), dType: "DsContainerRegistry", fqdn: "docker://r", apiKey: "u", password: "p" }],
      apps: [{ uuidandversion: { uuid: U(3), version: "1" }, displayname: "a", cipherData: { cipherContextId: "CTX-1", cipherData: b64("x") } }],
    });
    const m = buildDeviceModel(doc).model;
    expect(m.cipherContexts).toEqual([{ id: "CTX-1", hashScheme: "HASH_ALGORITHM_SHA256_16BYTES", keyExchange: "KEA_ECDH", encryption: "SA_AES_256_CFB", deviceCertHash: "ab".repeat(16), controllerCertHash: "cd".repeat(16) }]);
    expect(m.datastores[0]!.cipher).toEqual({ contextId: "CTX-1", initialValue: iv, cipherData: b64("opaque"), clearTextSha256: b64("h") });
    expect(m.datastores[1]!.cipher).toBeNull();
    expect(m.datastores[1]!.password).toBe("p");
    expect(m.apps[0]!.cipher?.cipherData).toBe(b64("x"));
    // A block without cipher data is none (EVE: "incomplete", not a cipher).
    expect(buildDeviceModel(parsed({ datastores: [{ id: U(1), cipherData: { cipherContextId: "CTX-1" } }] })).model.datastores[0]!.cipher).toBeNull();
  });
});

describe("the device model: deviceIoList and app adapters (hardware partitioning)", () => {
  const app = (n: number, adapters: { type: string; name: string }[]) => ({
    uuidandversion: { uuid: U(100 + n), version: "1" },
    displayname: `app${n}`,
    volumeRefList: [{ uuid: U(3) }],
    adapters,
  });
  const base = (deviceIoList: unknown[], apps: unknown[]) =>
    parsed({
      datastores: [{ id: U(1), dType: "DsContainerRegistry", fqdn: "docker://127.0.0.1:5000" }],
      contentInfo: [{ uuid: U(2), dsId: U(1), URL: "busybox:latest", iformat: "CONTAINER" }],
      volumes: [{ uuid: U(3), origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: U(2) } }],
      deviceIoList,
      apps,
    });

  test("an adapter names a group; the whole group is its members; a logical label finds its group", () => {
    const doc = base(
      [
        { ptype: "PhyIoCOM", logicallabel: "COM1", assigngrp: "COM1", phyaddrs: { Serial: "/dev/ttyS0" } },
        { ptype: "PhyIoHDMI", logicallabel: "gpu", assigngrp: "group1", phyaddrs: { PciLong: "0000:00:02.0" } },
        { ptype: "PhyIoAudio", logicallabel: "gpu-audio", assigngrp: "group1", phyaddrs: { pcilong: "0000:00:02.1" } },
      ],
      [app(1, [{ type: "PhyIoCOM", name: "COM1" }]), app(2, [{ type: "PhyIoHDMI", name: "gpu" }])],
    );
    const { model, problems } = readConfig(doc, NO_ENV);
    expect(problems).toEqual([]);
    expect(model.apps[0]!.adapters).toEqual([{ type: "PhyIoCOM", name: "COM1", group: "COM1", members: [0], order: 0 }]);
    expect(model.apps[1]!.adapters).toEqual([{ type: "PhyIoHDMI", name: "gpu", group: "group1", members: [1, 2], order: 0 }]);
    expect(model.physicalIo.map((p) => p.addrs.serial ?? p.addrs.pciLong)).toEqual(["/dev/ttyS0", "0000:00:02.0", "0000:00:02.1"]);
  });

  test("a phyaddrs value that is not what it goes to (a /dev path, a PCI address, a USB address) is refused at its field", () => {
    const doc = base(
      [
        { ptype: "PhyIoCOM", logicallabel: "c", assigngrp: "c", phyaddrs: { serial: "/dev/../etc/shadow" } },
        { ptype: "PhyIoOther", logicallabel: "p", assigngrp: "p", phyaddrs: { pcilong: "0000:00:02.0,romfile=/x" } },
        { ptype: "PhyIoUSB", logicallabel: "u", assigngrp: "u", phyaddrs: { usbaddr: "1-2;rm", usbproduct: "0403:60011" } },
        { ptype: "PhyIoUSB", logicallabel: "g", assigngrp: "bad group/x" },
      ],
      [],
    );
    const paths = readConfig(doc, NO_ENV).problems.map((p) => p.path);
    expect(paths).toEqual(["deviceIoList[0].phyaddrs.serial", "deviceIoList[1].phyaddrs.pcilong", "deviceIoList[2].phyaddrs.usbaddr", "deviceIoList[2].phyaddrs.usbproduct", "deviceIoList[3].assigngrp"]);
  });

  test("an adapter naming nothing, a group with a management or disabled member, or an entry without a group: the app's problem", () => {
    const doc = base(
      [
        { ptype: "PhyIoNetEth", logicallabel: "eth0", assigngrp: "eth0", phyaddrs: { ifname: "eth0" }, usage: "PhyIoUsageMgmtOnly" },
        { ptype: "PhyIoNetEth", logicallabel: "eth1", assigngrp: "eth1", phyaddrs: { ifname: "eth1" }, usage: "PhyIoUsageMgmtAndApps" },
        { ptype: "PhyIoCOM", logicallabel: "COM2", assigngrp: "COM2", phyaddrs: { serial: "/dev/ttyS1" }, usage: "PhyIoUsageDisabled" },
        { ptype: "PhyIoCOM", logicallabel: "COM3", phyaddrs: { serial: "/dev/ttyS2" } },
      ],
      [app(1, [{ type: "PhyIoNetEth", name: "eth0" }, { type: "PhyIoNetEth", name: "eth1" }, { type: "PhyIoCOM", name: "COM2" }, { type: "PhyIoCOM", name: "COM3" }, { type: "PhyIoUSB", name: "nope" }])],
    );
    const problems = readConfig(doc, NO_ENV).problems;
    expect(problems.map((p) => [p.objectKind, p.objectId, p.path])).toEqual([0, 1, 2, 3, 4].map((j) => ["app", U(101), `apps[0].adapters[${j}].name`]));
    expect(problems.map((p) => p.message)).toEqual([
      'adapter "eth0": member "eth0" cannot be given to an app: it is a management port (PhyIoUsageMgmtOnly)',
      'adapter "eth1": member "eth1" cannot be given to an app: it is a management port shared through network instances (PhyIoUsageMgmtAndApps), not passed through',
      'adapter "COM2": member "COM2" cannot be given to an app: it is disabled (PhyIoUsageDisabled)',
      'adapter "COM3": deviceIoList entry "COM3" has no assignment group (assigngrp), so it cannot be assigned',
      'adapter "nope": no deviceIoList entry has this assignment group or logical label',
    ]);
  });

  test("two apps naming one group is not a problem of the document: which app gets it is decided on the device (hardware/assign.ts)", () => {
    const doc = base([{ ptype: "PhyIoCOM", logicallabel: "COM1", assigngrp: "COM1", phyaddrs: { serial: "/dev/ttyS0" } }], [app(1, [{ type: "PhyIoCOM", name: "COM1" }]), app(2, [{ type: "PhyIoCOM", name: "COM1" }])]);
    expect(readConfig(doc, NO_ENV).problems).toEqual([]);
  });
});

describe("loc_config (Local Operator Console)", () => {
  const loc = (locUrl: string) => buildDeviceModel(parsed({ ...sampleConfig({}), locConfig: { locUrl, datastoreCollectInfoId: ["ds-1"] } }));
  test("http(s) URLs kept without a trailing slash; a bare host[:port] is https, as EVE's sender", () => {
    expect(loc("http://10.1.0.5:8080/").model.loc).toEqual({ url: "http://10.1.0.5:8080", collectInfoDatastores: ["ds-1"] });
    expect(loc("loc.example:8443").model.loc?.url).toBe("https://loc.example:8443");
    expect(loc("https://[fd00::5]/eve").model.loc?.url).toBe("https://[fd00::5]/eve");
    expect(buildDeviceModel(parsed(sampleConfig({}))).model.loc).toBeNull();
  });
  test("anything else is a device object error at locConfig.locUrl, and no LOC", () => {
    for (const bad of ["http://u:p@host", "http://host/?q=1", "ftp://host", "http://host name", "http://host/a b"]) {
      const r = loc(bad);
      expect(r.model.loc).toBeNull();
      expect(r.problems).toEqual([expect.objectContaining({ objectKind: "device", path: "locConfig.locUrl" })]);
    }
  });
});
