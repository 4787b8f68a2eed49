import { describe, expect, test } from "bun:test";
import { IDS, sampleConfig } from "../../tests/support/configs.ts";
import { buildDeviceModel } from "./model.ts";
import { MAX_INLINE_BYTES, patchState } from "./patch-envelopes.ts";
import { ConfigService } from "./service.ts";
import { NO_ENV, readConfig } from "./validate.ts";

const PE = "5e000000-0000-4000-8000-000000000001";
const b64 = (s: string) => Buffer.from(s).toString("base64");

/** The document as the parts get it: proto3 JSON decoded strictly (unknown fields refused), UUIDs in lower case. */
function parsed(json: unknown) {
  const svc = new ConfigService(null as never, null as never);
  return svc.parse(new TextEncoder().encode(JSON.stringify(json)), "application/json").doc;
}

function withEnvelopes(envelopes: unknown[]) {
  return { ...sampleConfig(), patchEnvelopes: envelopes };
}

const inline = (fileNameToUse: string, data = b64("hello")) => ({ inline: { fileNameToUse, base64Data: data, base64MetaData: b64("meta") }, artifactMetaData: "art" });

describe("patch envelopes in the device model", () => {
  test("are read once: uuid, version, name, action, apps (lower case), inline artifacts as sent", () => {
    const doc = parsed(withEnvelopes([{ uuid: PE.toUpperCase(), version: "3", displayName: "cfg", action: "ACTIVATE", appInstIdsAllowed: [IDS.app.toUpperCase()], artifacts: [inline("a.txt")] }]));
    const { model, problems } = buildDeviceModel(doc);
    expect(problems).toEqual([]);
    expect(model.patchEnvelopes).toEqual([
      {
        index: 0,
        uuid: PE,
        version: "3",
        name: "cfg",
        action: "ACTIVATE",
        apps: [IDS.app],
        artifacts: [{ index: 0, kind: "inline", fileName: "a.txt", data: b64("hello"), fileMetaData: b64("meta"), artifactMetaData: "art", volumeId: null, imageName: null, file: null, cipher: null, metadataCipher: null }],
        faults: [],
      },
    ]);
    expect(patchState(model.patchEnvelopes[0]!, 0)).toBe("PATCH_ACTIVE");
  });

  test("STORE (the default action) keeps the envelope from the apps: PATCH_READY", () => {
    const { model } = buildDeviceModel(parsed(withEnvelopes([{ uuid: PE, appInstIdsAllowed: [IDS.app], artifacts: [inline("a")] }])));
    expect(model.patchEnvelopes[0]!.action).toBe("STORE");
    expect(patchState(model.patchEnvelopes[0]!, 0)).toBe("PATCH_READY");
    expect(patchState(model.patchEnvelopes[0]!, 1)).toBe("PATCH_ERROR");
  });

  test.each([
    ["../etc/passwd", "is not one path component"],
    ["a/b", "is not one path component"],
    ["..", "is not a file name"],
    [".", "is not a file name"],
    ["", "a file name is needed"],
    ["x".repeat(256), "at most 255"],
  ])("a file name %p is a problem at its field, and a local document is refused", (name, why) => {
    const doc = parsed(withEnvelopes([{ uuid: PE, action: "ACTIVATE", appInstIdsAllowed: [IDS.app], artifacts: [inline("ok.txt"), inline(name)] }]));
    const { problems } = readConfig(doc, NO_ENV);
    const p = problems.find((q) => q.path === "patchEnvelopes[0].artifacts[1].inline.fileNameToUse");
    expect(p?.message).toContain(why);
    expect(p).toMatchObject({ objectKind: "patchEnvelope", objectId: PE });
  });

  test("a control character in a file name is refused (once, by the document's walk or the model)", () => {
    const { problems } = readConfig(parsed(withEnvelopes([{ uuid: PE, artifacts: [inline("a\nb")] }])), NO_ENV);
    expect(problems.filter((p) => p.path === "patchEnvelopes[0].artifacts[0].inline.fileNameToUse").length).toBe(1);
  });

  test("inline data over EVE's 10 KB, or not base64, is a problem; exactly the limit is not", () => {
    const at = (data: string) => readConfig(parsed(withEnvelopes([{ uuid: PE, artifacts: [inline("a", data)] }])), NO_ENV).problems.map((p) => `${p.path}: ${p.message}`);
    expect(at("A".repeat(MAX_INLINE_BYTES))).toEqual([]);
    expect(at("A".repeat(MAX_INLINE_BYTES + 4))[0]).toContain("patchEnvelopes[0].artifacts[0].inline.base64Data: 10244 bytes: an inline artifact holds at most 10240");
    expect(at("not base64!")[0]).toBe("patchEnvelopes[0].artifacts[0].inline.base64Data: is not base64 text");
  });

  test("bad and duplicate uuids, app ids that are not UUIDs, two artifacts of one name are problems", () => {
    const doc = parsed(withEnvelopes([
      { uuid: "nope", artifacts: [] },
      { uuid: PE, appInstIdsAllowed: ["app-1"], artifacts: [inline("a"), inline("a")] },
      { uuid: PE, artifacts: [{ artifactMetaData: "x" }] },
    ]));
    const paths = readConfig(doc, NO_ENV).problems.map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(["patchEnvelopes[0].uuid", "patchEnvelopes[1].appInstIdsAllowed[0]", "patchEnvelopes[1].artifacts[1]", "patchEnvelopes[2].uuid", "patchEnvelopes[2].artifacts[0]"]));
  });

  test("encrypted artifacts (inline or in a volume) are kept as their blocks, to be opened; without cipher data a fault", async () => {
    const doc = parsed(withEnvelopes([
      {
        uuid: PE,
        action: "ACTIVATE",
        artifacts: [
          { encryptedInline: { cipherData: { cipherContextId: "c", cipherData: b64("x".repeat(20)) } } },
          { encryptedVolumeref: { cipherData: { cipherContextId: "c", cipherData: b64("y".repeat(20)) } } },
          { encryptedVolumeref: {} },
        ],
      },
    ]));
    const { model, problems } = readConfig(doc, NO_ENV);
    expect(problems).toEqual([]);
    const pe = model.patchEnvelopes[0]!;
    expect(pe.artifacts.map((a) => [a.kind, a.fileName])).toEqual([["encryptedInline", ""], ["encryptedVolumeRef", ""], ["encryptedVolumeRef", ""]]);
    expect(pe.artifacts[0]!.cipher).toEqual({ contextId: "c", initialValue: "", cipherData: b64("x".repeat(20)), clearTextSha256: "" });
    expect(pe.artifacts[1]!.cipher).toEqual({ contextId: "c", initialValue: "", cipherData: b64("y".repeat(20)), clearTextSha256: "" });
    expect(pe.faults).toEqual(["artifacts[2].encryptedVolumeref.cipherData: no cipher data"]);
    expect(patchState(pe, 0)).toBe("PATCH_ERROR");
  });

  const FILE_DS = "5b0a6b52-7f36-4a55-8c3e-2a3f5c0d1e09";
  const FILE_CT = "0c5e2b1a-3d4f-4a6b-9c8d-7e6f5a4b3c09";
  const FILE_VOL = "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a09";
  const BLANK_VOL = "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a0a";
  const SHA = "ab".repeat(32);
  function withVolumes(artifacts: unknown[]) {
    const c = withEnvelopes([{ uuid: PE, action: "ACTIVATE", appInstIdsAllowed: [IDS.app], artifacts }]) as any;
    c.datastores.push({ id: FILE_DS, dType: "DsHttp", fqdn: "http://files.example" });
    c.contentInfo.push({ uuid: FILE_CT, dsId: FILE_DS, URL: "models/m.bin", iformat: "RAW", sha256: SHA.toUpperCase(), displayName: "model" });
    c.volumes.push({ uuid: FILE_VOL, displayName: "model", origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: FILE_CT } }, { uuid: BLANK_VOL, displayName: "scratch", origin: { type: "VCOT_BLANK" } });
    return parsed(c);
  }

  test("a volume artifact is the file of the content tree its volume is made from (its sha256 is the fileSha)", () => {
    const { model, problems } = readConfig(withVolumes([{ volumeRef: { imageName: "model", fileNameToUse: "m.bin", blobMetaData: "meta", imageId: FILE_VOL.toUpperCase() }, artifactMetaData: "art" }, { volumeRef: { imageName: "again", imageId: FILE_VOL } }]), NO_ENV);
    expect(problems).toEqual([]);
    const pe = model.patchEnvelopes[0]!;
    expect(pe.faults).toEqual([]);
    expect(pe.artifacts.map((a) => [a.kind, a.fileName, a.fileMetaData, a.artifactMetaData, a.volumeId, a.imageName, a.file])).toEqual([
      ["volumeRef", "m.bin", "meta", "art", FILE_VOL, "model", { contentTreeId: FILE_CT, sha256: SHA }],
      // No fileNameToUse: the image name (the proto's rule).
      ["volumeRef", "again", "", "", FILE_VOL, "again", { contentTreeId: FILE_CT, sha256: SHA }],
    ]);
    expect(patchState(pe, 0)).toBe("PATCH_ACTIVE");
  });

  test("a volume artifact naming no volume is a problem at imageId; a blank volume or a container image is a fault", () => {
    const missing = readConfig(withVolumes([{ volumeRef: { imageName: "x", imageId: "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4aff" } }]), NO_ENV);
    expect(missing.problems).toContainEqual(expect.objectContaining({ objectKind: "patchEnvelope", objectId: PE, path: "patchEnvelopes[0].artifacts[0].volumeRef.imageId", message: expect.stringContaining("no volume") }));
    const { model, problems } = readConfig(withVolumes([{ volumeRef: { imageName: "s", imageId: BLANK_VOL } }, { volumeRef: { imageName: "c", imageId: IDS.volume } }]), NO_ENV);
    expect(problems).toEqual([]);
    expect(model.patchEnvelopes[0]!.faults).toEqual([
      expect.stringMatching(/^artifacts\[0\]\.volumeRef: volume "scratch" .* is blank: it has no file to serve/),
      expect.stringMatching(/^artifacts\[1\]\.volumeRef: volume .* is made from a container image \(content tree "busybox"\): it is not one file to serve/),
    ]);
    expect(model.patchEnvelopes[0]!.artifacts.map((a) => a.file)).toEqual([null, null]);
  });
});
