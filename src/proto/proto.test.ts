import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import protobuf from "protobufjs";
import { generateDescriptor, generateTypes, loadProtoRoot } from "../../scripts/gen-proto.ts";
import {
  decodeMessage,
  encodeMessage,
  lookupType,
  protoRoot,
  type EdgeDevConfig,
  type ZInfoMsg,
  type ZMetricMsg,
  ACEDirection,
  DsType,
  Format,
  VolumeContentOriginType,
  ZNetworkInstType,
  VmMode,
  ZInfoTypes,
  ZSwState,
} from "./index.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const ascii = (s: string) => Buffer.from(s, "ascii").toString("hex");

const CONFIG = "org.lfedge.eve.config.";

function allOf(ns: protobuf.NamespaceBase): { types: protobuf.Type[]; enums: protobuf.Enum[] } {
  const types: protobuf.Type[] = [];
  const enums: protobuf.Enum[] = [];
  const walk = (n: protobuf.NamespaceBase) => {
    for (const o of n.nestedArray) {
      if (o instanceof protobuf.Type) types.push(o);
      if (o instanceof protobuf.Enum) enums.push(o);
      if (o instanceof protobuf.Namespace) walk(o);
    }
  };
  walk(ns);
  return { types, enums };
}

describe("descriptor", () => {
  test("generated files are up to date with proto/", () => {
    const root = loadProtoRoot();
    const dir = import.meta.dir;
    expect(readFileSync(join(dir, "descriptor.gen.json"), "utf8")).toBe(generateDescriptor(root));
    expect(readFileSync(join(dir, "types.gen.ts"), "utf8")).toBe(generateTypes(root));
  });

  test("every message resolves: no field points at an unknown type", () => {
    const { types } = allOf(protoRoot());
    expect(types.length).toBeGreaterThan(250);
    for (const t of types) {
      expect(lookupType(t.fullName.slice(1))).toBe(t);
      for (const f of t.fieldsArray) {
        f.resolve();
        const scalar = f.type in protobuf.types.basic || f.type in protobuf.types.long;
        if (!scalar && !f.resolvedType) throw new Error(`${f.fullName}: unresolved type ${f.type}`);
      }
    }
  });

  test("the requested API surface exists", () => {
    for (const name of [
      "config.EdgeDevConfig", "config.ConfigRequest", "config.ConfigResponse", "config.AppInstanceConfig",
      "config.VmConfig", "config.NetworkAdapter", "config.ACE", "config.ACEMatch", "config.ACEAction",
      "config.VolumeRef", "config.InstanceOpsCmd", "config.NetworkInstanceConfig", "config.Volume",
      "config.ContentTree", "config.DatastoreConfig", "config.BaseOSConfig", "config.BaseOS", "config.ConfigItem",
      "config.DeviceOpsCmd", "config.SystemAdapter", "config.NetworkConfig", "config.EdgeViewConfig",
      "config.DisksConfig", "config.BondAdapter", "config.VlanAdapter", "common.CipherContext", "common.CipherBlock",
      "auth.AuthContainer", "auth.AuthBody", "register.ZRegisterMsg", "uuid.UuidRequest", "uuid.UuidResponse",
      "certs.ZControllerCert", "certs.ZCert", "attest.ZAttestReq", "attest.ZAttestResponse", "attest.ZAttestQuote",
      "attest.ZAttestNonceResp", "info.ZInfoMsg", "info.ZInfoDevice", "info.ZInfoApp", "info.ZInfoNetworkInstance",
      "info.ZInfoVolume", "info.ZInfoContentTree", "info.ZInfoDevSW", "metrics.ZMetricMsg", "flowlog.FlowMessage",
      "logs.LogEntry", "logs.LogBundle",
    ]) {
      expect(lookupType("org.lfedge.eve." + name).fullName).toBe(".org.lfedge.eve." + name);
    }
    expect(protoRoot().lookupEnum("org.lfedge.eve.info.ZSwState").values.RUNNING).toBe(7);
  });

  test("every enum has a 0 value", () => {
    const { enums } = allOf(protoRoot());
    expect(enums.length).toBeGreaterThan(100);
    const missing = enums.filter((e) => !Object.values(e.values).includes(0)).map((e) => e.fullName);
    expect(missing).toEqual([]);
  });

  test("field numbers are unique within each message", () => {
    for (const t of allOf(protoRoot()).types) {
      const ids = t.fieldsArray.map((f) => f.id);
      if (new Set(ids).size !== ids.length) throw new Error(`${t.fullName}: duplicate field number`);
    }
  });
});

// Tag byte = (field number << 3) | wire type, as a varint. Wire types: 0 varint, 2 length-delimited.
describe("wire identity with lf-edge/eve-api field numbers", () => {
  test("EdgeDevConfig.id (1) -> UUIDandVersion.uuid (1), .version (2)", () => {
    const b = encodeMessage<EdgeDevConfig>(CONFIG + "EdgeDevConfig", { id: { uuid: "x", version: "1" } });
    // 0a = field 1, len-delimited; 06 = length; 0a 01 'x' = uuid; 12 01 '1' = version (field 2)
    expect(hex(b)).toBe("0a060a017812013" + "1");
  });

  test("EdgeDevConfig scalar and repeated fields at their numbers", () => {
    const b = encodeMessage<EdgeDevConfig>(CONFIG + "EdgeDevConfig", {
      controllerEpoch: "5", // field 25, varint: (25<<3)|0 = 200 -> c8 01
      maintenanceMode: true, // field 24, varint: 192 -> c0 01
      configTimestamp: { seconds: 1 }, // field 40, len: 322 -> c2 02; Timestamp.seconds (1) = 08 01
    });
    expect(hex(b)).toBe("c00101" + "c80105" + "c2020208" + "01");
    // networkInstances = field 16 -> (16<<3)|2 = 130 -> 82 01
    const ni = encodeMessage<EdgeDevConfig>(CONFIG + "EdgeDevConfig", { networkInstances: [{ displayname: "n" }] });
    expect(hex(ni)).toBe("8201" + "03" + "12016e");
    // scep_profiles = field 51 -> (51<<3)|2 = 410 -> 9a 03; SCEPProfile.profile_name (1)
    const scep = encodeMessage<EdgeDevConfig>(CONFIG + "EdgeDevConfig", { scepProfiles: [{ profileName: "p" }] });
    expect(hex(scep)).toBe("9a03" + "03" + "0a0170");
  });

  test("AppInstanceConfig.displayname (2), .activate (5), .fixedresources (3) -> VmConfig.maxmem (4)", () => {
    const b = encodeMessage(CONFIG + "AppInstanceConfig", { displayname: "web", activate: true });
    expect(hex(b)).toBe("1203" + ascii("web") + "2801");
    // maxmem = 1048576 = 2^20 -> varint 80 80 40; tag (4<<3)|0 = 0x20
    const vm = encodeMessage(CONFIG + "AppInstanceConfig", { fixedresources: { maxmem: 1048576 } });
    expect(hex(vm)).toBe("1a04" + "20808040");
    // VmConfig.vcpus (5) -> 28, .virtualizationMode (15) -> 78, HVM = 1
    expect(hex(encodeMessage(CONFIG + "VmConfig", { vcpus: 2, virtualizationMode: VmMode.HVM }))).toBe("2802" + "7801");
  });

  test("NetworkInstanceConfig.ip (40) -> ipspec.subnet (3), .gateway (5); instType (4)", () => {
    const b = encodeMessage(CONFIG + "NetworkInstanceConfig", {
      instType: ZNetworkInstType.ZnetInstLocal, // 20 02
      ip: { subnet: "10.1.0.0/24", gateway: "10.1.0.1" }, // tag (40<<3)|2 = 322 -> c2 02
    });
    expect(hex(b)).toBe("2002" + "c20217" + "1a0b" + ascii("10.1.0.0/24") + "2a08" + ascii("10.1.0.1"));
  });

  test("NetworkAdapter.acls (40) -> ACE.matches (1) / .actions (2) / .dir (5)", () => {
    const b = encodeMessage(CONFIG + "NetworkAdapter", {
      acls: [{ matches: [{ type: "ip", value: "1" }], actions: [{ portmap: true, appPort: 80 }], dir: ACEDirection.INGRESS }],
    });
    // ACEMatch: 0a 02 'ip' 12 01 '1'; ACEAction: portmap (6) 30 01, appPort (7) 38 50
    expect(hex(b)).toBe("c202" + "11" + "0a07" + "0a02" + ascii("ip") + "1201" + ascii("1") + "1204" + "3001" + "3850" + "2801");
  });

  test("DatastoreConfig.id is field 100 -> tag (100<<3)|2 = 802 -> a2 06", () => {
    expect(hex(encodeMessage(CONFIG + "DatastoreConfig", { id: "d", dType: DsType.DsHttps }))).toBe("0802" + "a20601" + ascii("d"));
  });

  test("info: ZInfoMsg.ztype (1), .ainfo (5) -> ZInfoApp.state (15); ZInfoDevice.state (44)", () => {
    const b = encodeMessage<ZInfoMsg>("org.lfedge.eve.info.ZInfoMsg", {
      ztype: ZInfoTypes.ZiApp,
      ainfo: { state: ZSwState.RUNNING }, // (15<<3)|0 = 120 = 0x78
    });
    expect(hex(b)).toBe("0803" + "2a02" + "7807");
    // ZInfoMsg.dinfo (3) -> ZInfoDevice.state (44): (44<<3)|0 = 352 -> e0 02
    const d = encodeMessage<ZInfoMsg>("org.lfedge.eve.info.ZInfoMsg", { dinfo: { state: 1 } });
    expect(hex(d)).toBe("1a03" + "e00201");
    // ZInfoVolume.generation_count (8) is int64
    expect(hex(encodeMessage("org.lfedge.eve.info.ZInfoVolume", { generationCount: "3" }))).toBe("4003");
  });

  test("metrics: ZMetricMsg.dm (4) -> deviceMetric.dormant_time_in_seconds (22); .am (5) -> appMetric.AppID (1)", () => {
    const b = encodeMessage<ZMetricMsg>("org.lfedge.eve.metrics.ZMetricMsg", {
      dm: { dormantTimeInSeconds: 60 }, // (22<<3)|0 = 176 -> b0 01
      am: [{ AppID: "a" }],
    });
    expect(hex(b)).toBe("2203" + "b0013c" + "2a03" + "0a0161");
  });

  test("proto3 semantics survive the JSON descriptor: packed repeated scalars, implicit vs explicit presence", () => {
    // VmConfig.irqs (13) is repeated uint32 -> packed: tag (13<<3)|2 = 6a, length 2, values 01 02.
    // vcpus = 0 is a proto3 default and is not written.
    expect(hex(encodeMessage(CONFIG + "VmConfig", { irqs: [1, 2], vcpus: 0 }))).toBe("6a020102");
    // InlineOpaqueBase64Data.base64MetaData (3) is `optional string`: an empty value is still written.
    expect(hex(encodeMessage(CONFIG + "InlineOpaqueBase64Data", { base64Data: "", base64MetaData: "" }))).toBe("1a00");
  });

  test("logs and flowlog field numbers", () => {
    // LogEntry.content (4), .msgid (5)
    expect(hex(encodeMessage("org.lfedge.eve.logs.LogEntry", { content: "x", msgid: 7 }))).toBe("2201" + ascii("x") + "2807");
    // FlowRecord.action (12) -> (12<<3)|0 = 0x60, ActionDrop = 1
    expect(hex(encodeMessage("org.lfedge.eve.flowlog.FlowRecord", { action: 1 }))).toBe("6001");
  });
});

describe("round trip", () => {
  const config: EdgeDevConfig = {
    id: { uuid: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", version: "42" },
    controllerEpoch: "1700000000000",
    configTimestamp: { seconds: "1700000000", nanos: 5 },
    datastores: [{ id: "ds-1", dType: DsType.DsContainerRegistry, fqdn: "docker://docker.io", dpath: "library" }],
    contentInfo: [
      {
        uuid: "ct-1",
        dsIdsList: ["ds-1"],
        URL: "nginx:1.27",
        iformat: Format.CONTAINER,
        maxSizeBytes: "1073741824",
        displayName: "nginx",
        generationCount: "0",
      },
    ],
    volumes: [
      {
        uuid: "vol-1",
        origin: { type: VolumeContentOriginType.VCOT_DOWNLOAD, downloadContentTreeID: "ct-1" },
        maxsizebytes: "2147483648",
        displayName: "nginx-root",
        generationCount: "1",
      },
    ],
    networkInstances: [
      {
        uuidandversion: { uuid: "ni-1", version: "1" },
        displayname: "local-ni",
        instType: ZNetworkInstType.ZnetInstLocal,
        activate: true,
        port: { name: "uplink" },
        ip: { subnet: "10.1.0.0/24", gateway: "10.1.0.1", dhcpRange: { start: "10.1.0.10", end: "10.1.0.200" }, dns: ["10.1.0.1"] },
        mtu: 1500,
      },
    ],
    apps: [
      {
        uuidandversion: { uuid: "app-1", version: "3" },
        displayname: "web",
        activate: true,
        fixedresources: { memory: 524288, maxmem: 524288, vcpus: 2, virtualizationMode: VmMode.HVM },
        volumeRefList: [{ uuid: "vol-1", generationCount: "1", mountDir: "/" }],
        interfaces: [
          {
            name: "eth0",
            networkId: "ni-1",
            acls: [
              {
                id: 1,
                name: "http",
                matches: [{ type: "protocol", value: "tcp" }, { type: "lport", value: "8080" }],
                actions: [{ portmap: true, appPort: 80 }],
                dir: ACEDirection.INGRESS,
              },
              { id: 2, matches: [{ type: "host", value: "example.com" }] },
            ],
          },
        ],
        restart: { counter: 1 },
        cipherData: { cipherContextId: "ctx", cipherData: new Uint8Array([1, 2, 3]) },
        profileList: ["default"],
      },
    ],
    configItems: [{ key: "timer.config.interval", value: "60" }],
    baseos: { contentTreeUuid: "ct-eve", activate: true, baseOsVersion: "14.5.0", retryUpdate: { counter: 2 } },
    edgeview: { token: "jwt", devPolicy: { allowDev: true } },
  };

  test("EdgeDevConfig with app, volume, content tree, datastore, network instance and ACL survives", () => {
    const name = CONFIG + "EdgeDevConfig";
    const bytes = encodeMessage(name, config);
    const back = decodeMessage<EdgeDevConfig>(name, bytes);

    expect(back.id).toEqual({ uuid: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", version: "42" });
    expect(back.controllerEpoch).toBe("1700000000000");
    expect(back.configTimestamp).toEqual({ seconds: "1700000000", nanos: 5 });
    expect(back.datastores?.[0]).toMatchObject({ id: "ds-1", dType: DsType.DsContainerRegistry, fqdn: "docker://docker.io" });
    expect(back.contentInfo?.[0]).toMatchObject({ URL: "nginx:1.27", iformat: Format.CONTAINER, maxSizeBytes: "1073741824" });
    expect(back.volumes?.[0]?.origin).toEqual({ type: VolumeContentOriginType.VCOT_DOWNLOAD, downloadContentTreeID: "ct-1" });
    expect(back.volumes?.[0]?.maxsizebytes).toBe("2147483648");
    expect(back.networkInstances?.[0]?.ip).toMatchObject({ subnet: "10.1.0.0/24", dhcpRange: { start: "10.1.0.10", end: "10.1.0.200" } });
    const app = back.apps?.[0];
    expect(app?.fixedresources).toMatchObject({ memory: 524288, maxmem: 524288, vcpus: 2, virtualizationMode: VmMode.HVM });
    expect(app?.volumeRefList).toEqual([{ uuid: "vol-1", generationCount: "1", mountDir: "/" }]);
    expect(app?.interfaces?.[0]?.acls?.[0]).toMatchObject({
      id: 1,
      matches: [{ type: "protocol", value: "tcp" }, { type: "lport", value: "8080" }],
      actions: [{ portmap: true, appPort: 80 }],
      dir: ACEDirection.INGRESS,
    });
    expect(Array.from(app?.cipherData?.cipherData ?? [])).toEqual([1, 2, 3]);
    expect(back.baseos).toMatchObject({ contentTreeUuid: "ct-eve", retryUpdate: { counter: 2 } });
    expect(back.vlans).toEqual([]); // arrays: true -> repeated fields always present

    // Re-encoding the decoded object gives the same bytes.
    expect(hex(encodeMessage(name, back))).toBe(hex(bytes));
  });

  test("ConfigResponse wraps EdgeDevConfig at field 1", () => {
    const inner = encodeMessage(CONFIG + "EdgeDevConfig", config);
    const outer = encodeMessage(CONFIG + "ConfigResponse", { config, configHash: "h" });
    const back = decodeMessage<{ config?: EdgeDevConfig; configHash?: string }>(CONFIG + "ConfigResponse", outer);
    expect(back.configHash).toBe("h");
    expect(hex(encodeMessage(CONFIG + "EdgeDevConfig", back.config!))).toBe(hex(inner));
  });

  test("malformed bytes are rejected", () => {
    expect(() => decodeMessage(CONFIG + "EdgeDevConfig", new Uint8Array([0x0a, 0x05, 0x01]))).toThrow();
  });
});
