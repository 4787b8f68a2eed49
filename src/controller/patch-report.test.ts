// Patch envelopes as EVE's zedagent reports them: a ZInfoPatchEnvelope each (ZiPatchEnvelope), and each app's use of
// them in its metrics (AppPatchEnvelopeMetric), through the project's protos.
import { describe, expect, test } from "bun:test";
import { buildDeviceModel } from "../config/model.ts";
import { envelopeReport } from "../config/patch-envelopes.ts";
import { AppInstMetaDataType, decodeMessage, encodeMessage, EVE_PATCH_ENVELOPE_STATE, ZInfoTypes, type ZInfoMsg, type ZMetricMsg } from "../proto/index.ts";
import { infoItems, metricMsg } from "./report.ts";

const PE = "7e000000-0000-4000-8000-000000000001";
const PE2 = "7e000000-0000-4000-8000-000000000002";
const APP = "7e000000-0000-4000-8000-000000000010";
const status = { device: { name: "d", version: "1", mode: "managed" }, parts: [], apps: [], volumes: [], contentTrees: [], networkInstances: [] } as never;
const facts = { devId: "d", version: "1", serial: "", softSerial: "", deviceName: "d", bootTime: new Date(0), storageBytes: 0, dataDir: "/tmp", memoryBytes: 0, firstBoot: false, objectErrors: new Map() };

describe("ZInfoPatchEnvelope", () => {
  test("one per envelope: its state (ACTIVE, READY, ERROR with why), size and errors survive the wire", () => {
    const { model, problems } = buildDeviceModel({
      patchEnvelopes: [
        { uuid: PE, version: "4", displayName: "cfg", action: "ACTIVATE", appInstIdsAllowed: [APP], artifacts: [{ inline: { fileNameToUse: "a", base64Data: "aGVsbG8=" } }] },
        { uuid: PE2, displayName: "vol", artifacts: [{ volumeRef: { imageName: "x", imageId: APP } }] },
      ],
    });
    const reports = model.patchEnvelopes.map((pe) => envelopeReport(pe, problems));
    const items = infoItems(status, { ...facts, patchEnvelopes: reports }).filter((i) => i.key.startsWith("pe:"));
    expect(items.map((i) => i.key)).toEqual([`pe:${PE}v4`, `pe:${PE2}v`]);
    const back = items.map((i) => decodeMessage<ZInfoMsg>("org.lfedge.eve.info.ZInfoMsg", encodeMessage("org.lfedge.eve.info.ZInfoMsg", i.msg)));
    expect(back[0]!.ztype).toBe(ZInfoTypes.ZiPatchEnvelope);
    expect(back[0]!.patchInfo).toMatchObject({ name: "cfg", id: PE, version: "4", state: EVE_PATCH_ENVELOPE_STATE.PATCH_ACTIVE, size: "8" });
    expect(back[1]!.patchInfo).toMatchObject({ name: "vol", id: PE2, state: EVE_PATCH_ENVELOPE_STATE.PATCH_ERROR, errors: [`patchEnvelopes[1].artifacts[0].volumeRef.imageId: no volume "${APP}" in this config (imageId names the volume the file comes from)`] });
  });
});

describe("ZInfoAppInstMetaData", () => {
  test("what an app posted to appCustomStatus goes as it was sent, type CUSTOM_STATUS, keyed by the app", () => {
    const data = new TextEncoder().encode('{"phase":"calibrated"}');
    const items = infoItems(status, { ...facts, appCustomStatus: [{ uuid: APP, data }] }).filter((i) => i.key.startsWith("amd:"));
    expect(items.map((i) => i.key)).toEqual([`amd:${APP}`]);
    const back = decodeMessage<ZInfoMsg>("org.lfedge.eve.info.ZInfoMsg", encodeMessage("org.lfedge.eve.info.ZInfoMsg", items[0]!.msg));
    expect(back.ztype).toBe(ZInfoTypes.ZiAppInstMetaData);
    expect(back.amdinfo!.uuid).toBe(APP);
    expect(back.amdinfo!.type).toBe(AppInstMetaDataType.APP_INST_META_DATA_TYPE_CUSTOM_STATUS);
    expect(new TextDecoder().decode(back.amdinfo!.data as Uint8Array)).toBe('{"phase":"calibrated"}');
  });
});

describe("AppPatchEnvelopeMetric", () => {
  test("an app's description calls and downloads per envelope go in its app metrics", () => {
    const sample = { at: new Date(0), bootTime: new Date(0), cpu: { busyNs: 0, totalNs: 0 }, memory: { totalBytes: 1, availableBytes: 1 }, disks: [], network: [] } as never;
    const link = { failures: 0, success: 0, lastFailure: null, lastSuccess: null, authVerifyFailure: 0 };
    const outbox = { undelivered: 0, dropped: 0, rejected: 0, superseded: 0, oldest: null, lastDropped: null } as never;
    const m = metricMsg("d", sample, [{ uuid: APP, name: "web", patchEnvelopes: [{ uuid: PE, version: "4", apiCalls: 3, downloads: 2 }] }, { uuid: PE2, name: "other" }], { outbox, link, lastReceivedConfig: null, lastProcessedConfig: null });
    const back = decodeMessage<ZMetricMsg>("org.lfedge.eve.metrics.ZMetricMsg", encodeMessage("org.lfedge.eve.metrics.ZMetricMsg", m));
    expect(back.am![0]!.patchEnvelope!.map((p) => [p.uuid, p.version, Number(p.patchApiCallCount), Number(p.downloadCount)])).toEqual([[PE, "4", 3, 2]]);
    expect(back.am![1]!.patchEnvelope ?? []).toEqual([]);
  });
});
