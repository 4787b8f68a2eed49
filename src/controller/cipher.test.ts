// Opening EVE cipher blocks: a vector made with Go's standard library the way EVE's evetpm does it
// (fixtures/cipher-go-vector.go.txt), a round trip with the tests' controller-side encryption, and every refusal.
import { afterAll, describe, expect, test } from "bun:test";
import { createECDH, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cipherContextModel, revealSecrets } from "../config/cipher.ts";
import { buildDeviceModel } from "../config/model.ts";
import { desiredFromModel } from "../reconcile/desired.ts";
import { encryptFor } from "../../tests/support/controller/cipher.ts";
import type { ControllerCerts } from "./certs.ts";
import { CipherOpener, ECDH_FILES, loadOrCreateEcdh, p256PublicPoint } from "./cipher.ts";
import { DeviceIdentity } from "./identity.ts";
import { MetadataService } from "../metadata/service.ts";
import { createCertificate, generateP256, privateKeyToPem, sha256 } from "./x509.ts";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "evebox-cipher-"));
  dirs.push(d);
  return d;
};

const vector = JSON.parse(readFileSync(join(import.meta.dir, "fixtures", "cipher-go-vector.json"), "utf8")) as Record<string, string>;

function certsWith(...pems: string[]): ControllerCerts {
  const ecdhCerts = pems.map((p) => {
    const pem = new TextEncoder().encode(p);
    return { hash: sha256(pem).subarray(0, 16), pemHash: sha256(pem), pem, publicKey: p256PublicPoint(pem) };
  });
  return { raw: new Uint8Array(), signer: null as never, ecdh: ecdhCerts.length, ecdhCerts, intermediates: 0 };
}

async function controllerEcdh(): Promise<{ cert: string; keyPem: string }> {
  const keys = await generateP256();
  return { cert: await createCertificate({ subject: "CN=controller ecdh", publicKey: keys.publicKey, signingKey: keys.privateKey }), keyPem: await privateKeyToPem(keys.privateKey) };
}

async function device() {
  const dir = tmp();
  const identity = await DeviceIdentity.loadOrCreate(dir, { dmiSerialPath: join(dir, "none") });
  return { dir, identity, ecdh: await loadOrCreateEcdh(dir, identity.device) };
}

describe("the device's ECDH certificate", () => {
  test("made at first start apart from the device key, signed by it, the key 0600, kept across starts", async () => {
    const { dir, identity, ecdh } = await device();
    const cert = new X509Certificate(readFileSync(join(dir, ECDH_FILES.cert)));
    // EVE's too is issued by the device certificate, which is no CA (so OpenSSL's checkIssued would say no).
    expect(cert.issuer).toBe(new X509Certificate(identity.device.pem).subject);
    expect(cert.verify(new X509Certificate(identity.device.pem).publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(cert.fingerprint256).not.toBe(new X509Certificate(identity.device.pem).fingerprint256);
    expect(statSync(join(dir, ECDH_FILES.key)).mode & 0o777).toBe(0o600);
    const again = await loadOrCreateEcdh(dir, identity.device);
    expect(Buffer.from(again.hash).equals(Buffer.from(ecdh.hash))).toBe(true);
    expect(Buffer.from(ecdh.hash).equals(Buffer.from(sha256(readFileSync(join(dir, ECDH_FILES.cert)))))).toBe(true);
  });
});

describe("opening a CipherBlock", () => {
  test("a block a Go implementation of EVE's scheme made opens to its EncryptionBlock", async () => {
    const dir = tmp();
    writeFileSync(join(dir, ECDH_FILES.key), vector.deviceEcdhKey!);
    writeFileSync(join(dir, ECDH_FILES.cert), vector.deviceEcdhCert!);
    const ecdh = await loadOrCreateEcdh(dir, null as never);
    const opener = new CipherOpener(ecdh, () => certsWith(vector.controllerEcdhCert!), () => 1);
    const ctx = cipherContextModel({ contextId: "c1", hashScheme: "HASH_ALGORITHM_SHA256_16BYTES", keyExchangeScheme: "KEA_ECDH", encryptionScheme: "SA_AES_256_CFB", deviceCertHash: vector.deviceCertHash, controllerCertHash: vector.controllerCertHash });
    const block = { contextId: "c1", initialValue: vector.initialValue!, cipherData: vector.cipherData!, clearTextSha256: vector.clearTextSha256! };
    expect(await opener.open(block, ctx)).toEqual({ dsAPIKey: "registry-user", dsPassword: "s3cret-from-go" });
  });

  test("the ECDH point's x is node's own ECDH secret (the y comes from the same point)", async () => {
    const { ecdh } = await device();
    const peer = createECDH("prime256v1");
    peer.generateKeys();
    const { p256 } = await import("@noble/curves/nist.js");
    const z = p256.getSharedSecret(ecdh.privateKey, new Uint8Array(peer.getPublicKey()), false);
    const mine = createECDH("prime256v1");
    mine.setPrivateKey(Buffer.from(ecdh.privateKey));
    expect(Buffer.from(z.subarray(1, 33)).equals(mine.computeSecret(peer.getPublicKey()))).toBe(true);
    p256.Point.fromBytes(z).assertValidity(); // the point (x, y) is on the curve
  });

  test("a round trip with the controller-side encryption; each bad block is refused with its reason", async () => {
    const { ecdh } = await device();
    const ctl = await controllerEcdh();
    const opener = new CipherOpener(ecdh, () => certsWith(ctl.cert.trim()), () => 1);
    const enc = (tamper?: "hash" | "device" | "controller", plain: Record<string, string> = { dsAPIKey: "u", dsPassword: "p@ss", protectedUserData: btoa("A=1") }) =>
      encryptFor({ controllerEcdhKeyPem: ctl.keyPem, controllerEcdhCertPem: ctl.cert, deviceEcdhCert: ecdh.cert, plain, tamper });
    const open = (e: ReturnType<typeof enc>, ctxOver: Record<string, unknown> = {}) => {
      const model = buildDeviceModel({ cipherContexts: [{ ...e.context, ...ctxOver }], datastores: [{ id: "d", cipherData: e.block }] }).model;
      return opener.open(model.datastores[0]!.cipher!, model.cipherContexts.find((c) => c.id === model.datastores[0]!.cipher!.contextId) ?? null);
    };
    expect(await open(enc())).toEqual({ dsAPIKey: "u", dsPassword: "p@ss", protectedUserData: btoa("A=1") });
    await expect(open(enc("hash"))).rejects.toThrow("does not match the block's clearTextSha256");
    await expect(open(enc("device"))).rejects.toThrow("not this device's");
    await expect(open(enc("controller"))).rejects.toThrow("not among the controller's ECDH certificates");
    await expect(open(enc(), { contextId: "other" })).rejects.toThrow("is not in the config's cipherContexts");
    await expect(open(enc(), { encryptionScheme: "SA_NONE" })).rejects.toThrow("encryption SA_NONE is not supported");
    await expect(open(enc(), { keyExchangeScheme: "KEA_NONE" })).rejects.toThrow("key exchange KEA_NONE is not supported");
    const shortIv = enc();
    shortIv.block.initialValue = Buffer.alloc(8).toString("base64");
    await expect(open(shortIv)).rejects.toThrow("initialValue is 8 bytes, not 16");
    // Another controller certificate's key (the controller rotated it): the hash check fails, nothing is returned.
    const other = await controllerEcdh();
    const rotated = new CipherOpener(ecdh, () => certsWith(other.cert.trim()), () => 2);
    const e = enc();
    const model = buildDeviceModel({ cipherContexts: [e.context], datastores: [{ id: "d", cipherData: e.block }] }).model;
    await expect(rotated.open(model.datastores[0]!.cipher!, model.cipherContexts[0]!)).rejects.toThrow("not among");
  });
});

describe("revealed secrets in the desired state", () => {
  test("encrypted registry credentials replace the datastore's; a block that fails is the content tree's error; neither reaches the app's generation", async () => {
    const { ecdh } = await device();
    const ctl = await controllerEcdh();
    const opener = new CipherOpener(ecdh, () => certsWith(ctl.cert.trim()), () => 1);
    const doc = (plain: Record<string, string>, tamper?: "hash") => {
      const e = encryptFor({ controllerEcdhKeyPem: ctl.keyPem, controllerEcdhCertPem: ctl.cert, deviceEcdhCert: ecdh.cert, plain, tamper });
      const app = "a0000000-0000-4000-8000-000000000001";
      return {
        cipherContexts: [e.context],
        datastores: [{ id: "d0000000-0000-4000-8000-000000000001", dType: "DsContainerRegistry", fqdn: "docker://127.0.0.1:5000", cipherData: e.block }],
        contentInfo: [{ uuid: "c0000000-0000-4000-8000-000000000001", dsId: "d0000000-0000-4000-8000-000000000001", URL: "busybox:latest", iformat: "CONTAINER" }],
        volumes: [{ uuid: "b0000000-0000-4000-8000-000000000001", origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: "c0000000-0000-4000-8000-000000000001" } }],
        apps: [{ uuidandversion: { uuid: app, version: "1" }, displayname: "a", activate: true, volumeRefList: [{ uuid: "b0000000-0000-4000-8000-000000000001" }], cipherData: e.block }],
      };
    };
    const desiredOf = async (d: ReturnType<typeof doc>) => {
      const model = buildDeviceModel(d).model;
      return desiredFromModel(model, [], new Map(), await revealSecrets(model, opener));
    };
    const ok = await desiredOf(doc({ dsAPIKey: "user", dsPassword: "pw-1", protectedUserData: btoa("GREETING=hello\nEVE_ECO_CMD=sleep 5") }));
    expect(ok.contentTrees[0]!.source).toEqual({ kind: "registry", fqdn: "docker://127.0.0.1:5000", url: "busybox:latest", username: "user", password: "pw-1" });
    expect(ok.contentTrees[0]!.error).toBeNull();
    expect(ok.apps[0]!.env).toEqual({ GREETING: "hello" });
    expect(ok.apps[0]!.cmd).toEqual(["sleep", "5"]);
    const other = await desiredOf(doc({ dsAPIKey: "user", dsPassword: "pw-2", protectedUserData: btoa("GREETING=hello\nEVE_ECO_CMD=sleep 5") }));
    expect(other.apps[0]!.generation).toBe(ok.apps[0]!.generation);

    const bad = await desiredOf(doc({ dsAPIKey: "user", dsPassword: "pw-1" }, "hash"));
    expect(bad.contentTrees[0]!.error).toContain("its encrypted credentials (cipherData) cannot be opened: the decrypted data does not match");
    expect(bad.contentTrees[0]!.source).not.toHaveProperty("password");
    expect(bad.apps[0]!.error).toContain("the app's encrypted user data cannot be opened");
    // Before the blocks were opened: an error, not the clear (absent) credentials.
    const unopened = desiredFromModel(buildDeviceModel(doc({ dsPassword: "x" })).model);
    expect(unopened.contentTrees[0]!.error).toContain("has not been opened yet");
    // Without a controller link there is nothing to open them with.
    const local = await revealSecrets(buildDeviceModel(doc({ dsPassword: "x" })).model, null);
    expect([...local.datastores.values()][0]).toMatchObject({ ok: false, error: expect.stringContaining("no controller link") });
  });
});

/** The device's opener with one controller ECDH certificate, and encryption of a message of `type` for the device. */
async function envelopeCrypto(type: string) {
  const { ecdh } = await device();
  const ctl = await controllerEcdh();
  const opener = new CipherOpener(ecdh, () => certsWith(ctl.cert.trim()), () => 1);
  const enc = (plain: Record<string, unknown>, tamper?: "hash") => encryptFor({ controllerEcdhKeyPem: ctl.keyPem, controllerEcdhCertPem: ctl.cert, deviceEcdhCert: ecdh.cert, plain, type, tamper });
  return { opener, enc };
}

/** A metadata service over `model` for one app, opening with `opener`; what it logs is kept. */
function serviceFor(app: string, model: ReturnType<typeof buildDeviceModel>["model"], opener: CipherOpener, more: Partial<ConstructorParameters<typeof MetadataService>[0]> = {}) {
  const logged: string[] = [];
  const s = new MetadataService({ callerAt: () => ({ appUuid: app, appName: "a", uplinkIfname: null }), model: () => ({ model, problems: [] }), device: () => ({ uuid: null, name: "" }), ipv4Of: () => null, secrets: opener, log: (_l, m) => logged.push(m), ...more });
  return { s, logged };
}

describe("a patch envelope's encrypted inline artifact", () => {
  test("opened with the device's key (its plaintext an InlineOpaqueBase64Data) and served as an inline one; a bad one keeps its envelope from the apps", async () => {
    const { opener, enc } = await envelopeCrypto("org.lfedge.eve.config.InlineOpaqueBase64Data");
    const APP = "7e000000-0000-4000-8000-000000000010";
    const good = enc({ fileNameToUse: "secret.env", base64Data: btoa("TOKEN=s3cret\n"), base64MetaData: btoa("m") });
    const envelope = (uuid: string, e: ReturnType<typeof enc>) => ({ uuid, action: "ACTIVATE", appInstIdsAllowed: [APP], artifacts: [{ inline: { fileNameToUse: "plain.txt", base64Data: btoa("p") } }, { encryptedInline: { cipherData: e.block } }] });
    const bad = enc({ fileNameToUse: "../escape", base64Data: btoa("x") });
    const tampered = enc({ fileNameToUse: "t", base64Data: btoa("x") }, "hash");
    const { model } = buildDeviceModel({
      cipherContexts: [good.context, bad.context, tampered.context],
      patchEnvelopes: [envelope("5e000000-0000-4000-8000-000000000001", good), envelope("5e000000-0000-4000-8000-000000000002", bad), envelope("5e000000-0000-4000-8000-000000000003", tampered)],
    });
    const { s, logged } = serviceFor(APP, model, opener);
    const get = (path: string) => s.fetch(new Request(`http://169.254.169.254${path}`), "10.1.0.2", 1);
    const d = await (await get("/eve/v1/patch/description.json")).json();
    expect(d.map((e: { PatchID: string }) => e.PatchID)).toEqual(["5e000000-0000-4000-8000-000000000001"]);
    expect(d[0].BinaryBlobs.map((b: { fileName: string; fileMetaData: string }) => [b.fileName, b.fileMetaData])).toEqual([["plain.txt", ""], ["secret.env", btoa("m")]]);
    expect(await (await get("/eve/v1/patch/download/5e000000-0000-4000-8000-000000000001/secret.env")).text()).toBe(btoa("TOKEN=s3cret\n"));
    expect(logged.join("\n")).toContain("5e000000-0000-4000-8000-000000000002 artifacts[1] (encryptedInline) is not served: fileNameToUse:");
    expect(logged.join("\n")).toContain("5e000000-0000-4000-8000-000000000003 artifacts[1] (encryptedInline) is not served: the decrypted data does not match the block's clearTextSha256");
    // Without an opener (no controller link) nothing encrypted is served.
    const none = new MetadataService({ callerAt: () => ({ appUuid: APP, appName: "a", uplinkIfname: null }), model: () => ({ model, problems: [] }), device: () => ({ uuid: null, name: "" }), ipv4Of: () => null });
    expect(await (await none.fetch(new Request("http://169.254.169.254/eve/v1/patch/description.json"), "10.1.0.2", 1)).json()).toEqual([]);
  });
});

describe("a patch envelope's encrypted volume artifact", () => {
  test("opened (an ExternalOpaqueBinaryBlob): its volume's content tree is fetched as a file, then served as a volumeRef; a block naming no volume keeps its envelope from the apps", async () => {
    const { opener, enc } = await envelopeCrypto("org.lfedge.eve.config.ExternalOpaqueBinaryBlob");
    const APP = "7e000000-0000-4000-8000-000000000010";
    const DS = "7e000000-0000-4000-8000-000000000020";
    const CT = "7e000000-0000-4000-8000-000000000021";
    const VOL = "7e000000-0000-4000-8000-000000000022";
    const bytes = new TextEncoder().encode("a model, binary enough\u0000\u0001");
    const sha = new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
    const blob = join(tmp(), sha);
    writeFileSync(blob, bytes);
    const good = enc({ imageName: "model", fileNameToUse: "model.bin", blobMetaData: "bWV0YQ==", imageId: VOL.toUpperCase() });
    const dangling = enc({ imageName: "gone", imageId: "7e000000-0000-4000-8000-0000000000ff" });
    const { model, problems } = buildDeviceModel({
      cipherContexts: [good.context, dangling.context],
      datastores: [{ id: DS, dType: "DsHttp", fqdn: "http://files.example" }],
      contentInfo: [{ uuid: CT, dsId: DS, URL: "m.bin", iformat: "RAW", sha256: sha }],
      volumes: [{ uuid: VOL, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: CT } }],
      patchEnvelopes: [
        { uuid: "5e000000-0000-4000-8000-000000000001", action: "ACTIVATE", appInstIdsAllowed: [APP], artifacts: [{ encryptedVolumeref: { cipherData: good.block }, artifactMetaData: "art" }] },
        { uuid: "5e000000-0000-4000-8000-000000000002", action: "ACTIVATE", appInstIdsAllowed: [APP], artifacts: [{ encryptedVolumeref: { cipherData: dangling.block } }] },
      ],
    });
    expect(problems).toEqual([]);
    expect(model.patchEnvelopes.map((pe) => pe.faults)).toEqual([[], []]);

    // The reconciler opens it with the config's other blocks: the volume's content tree is fetched, as a file.
    const { decodeVolumeRef } = await import("../metadata/volume-ref.ts");
    const { plan } = await import("../reconcile/plan.ts");
    const secrets = await revealSecrets(model, opener, decodeVolumeRef);
    expect([...secrets.volumeArtifacts!.values()].map((o) => (o.ok ? o.value.volumeId : "failed"))).toEqual([VOL, "7e000000-0000-4000-8000-0000000000ff"]);
    const desired = desiredFromModel(model, [], new Map(), secrets);
    const observed = { now: 0, bootAt: 0, containers: [], volumes: [], contentTrees: new Map(), apps: new Map(), startedSinceBoot: new Set<string>(), fetching: new Set<string>() };
    const fetches = plan(desired, observed).filter((s) => s.step.kind === "fetchContentTree").map((s) => s.step as { tree: { uuid: string }; asFile?: boolean });
    expect(fetches.map((f) => [f.tree.uuid, f.asFile])).toEqual([[CT, true]]);
    // Without the opened block, nothing names the tree: not fetched.
    expect(plan(desiredFromModel(model, []), observed).filter((s) => s.step.kind === "fetchContentTree")).toEqual([]);

    let stored = false;
    const { s, logged } = serviceFor(APP, model, opener, { artifactFile: (h) => (stored && h === sha ? { path: blob, size: bytes.length } : null) });
    const get = (path: string) => s.fetch(new Request(`http://169.254.169.254${path}`), "10.1.0.2", 1);
    expect(await (await get("/eve/v1/patch/description.json")).json()).toEqual([]);
    expect(s.reports().map((r) => r.state)).toEqual(["PATCH_RECEIVED", "PATCH_RECEIVED"]);
    stored = true;
    const d = await (await get("/eve/v1/patch/description.json")).json();
    expect(d.map((e: { PatchID: string }) => e.PatchID)).toEqual(["5e000000-0000-4000-8000-000000000001"]);
    expect(d[0].BinaryBlobs).toEqual([{ fileName: "model.bin", fileSha: sha, fileMetaData: "bWV0YQ==", artifactMetaData: "art", encArtifactMeta: {}, url: "http://169.254.169.254/eve/v1/patch/download/5e000000-0000-4000-8000-000000000001/model.bin", size: bytes.length }]);
    expect(d[0].VolumeRefs).toEqual([{ fileName: "model.bin", imageName: "model", fileMetaData: "bWV0YQ==", artifactMetaData: "art", encArtifactMeta: {}, imageId: VOL }]);
    const file = new Uint8Array(await (await get("/eve/v1/patch/download/5e000000-0000-4000-8000-000000000001/model.bin")).arrayBuffer());
    expect(Buffer.from(file).equals(Buffer.from(bytes))).toBe(true);
    expect(s.reports().map((r) => [r.state, r.size])).toEqual([["PATCH_ACTIVE", bytes.length], ["PATCH_RECEIVED", 0]]);
    expect(logged.join("\n")).toContain('5e000000-0000-4000-8000-000000000002 artifacts[0] (encryptedVolumeref) is not served: imageId: no volume "7e000000-0000-4000-8000-0000000000ff"');
  });
});

describe("a patch envelope artifact's encrypted metadata (metadata_cipher_data)", () => {
  test("opened (an EncryptionBlock for BINARY_ARTIFACT_METADATA): it is the artifact's artifactMetaData; another user's block leaves the clear one, logged", async () => {
    const { opener, enc } = await envelopeCrypto("org.lfedge.eve.common.EncryptionBlock");
    const APP = "7e000000-0000-4000-8000-000000000010";
    const good = enc({ user: 1, encryptedData: "owner: team-a" });
    const other = enc({ user: 0, encryptedData: "not metadata" });
    const { model, problems } = buildDeviceModel({
      cipherContexts: [good.context, other.context],
      patchEnvelopes: [
        {
          uuid: "5e000000-0000-4000-8000-000000000001",
          action: "ACTIVATE",
          appInstIdsAllowed: [APP],
          artifacts: [
            { inline: { fileNameToUse: "a.txt", base64Data: btoa("a") }, artifactMetaData: "ignored when encrypted", metadataCipherData: good.block },
            { inline: { fileNameToUse: "b.txt", base64Data: btoa("b") }, artifactMetaData: "clear", metadataCipherData: other.block },
          ],
        },
      ],
    });
    expect(problems).toEqual([]);
    expect(model.patchEnvelopes[0]!.faults).toEqual([]);
    const { s, logged } = serviceFor(APP, model, opener);
    const d = await (await s.fetch(new Request("http://169.254.169.254/eve/v1/patch/description.json"), "10.1.0.2", 1)).json();
    expect(d[0].BinaryBlobs.map((b: { fileName: string; artifactMetaData: string }) => [b.fileName, b.artifactMetaData])).toEqual([["a.txt", "owner: team-a"], ["b.txt", "clear"]]);
    expect(logged.join("\n")).toContain("artifacts[1] metadataCipherData cannot be opened (the clear artifactMetaData stays): the decrypted EncryptionBlock is not for BINARY_ARTIFACT_METADATA");
  });
});
