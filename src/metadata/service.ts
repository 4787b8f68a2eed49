// EVE's metadata server for apps (eve docs/ECO-METADATA.md, docs/PATCH-ENVELOPES.md, docs/api/patch-envelopes.yml):
// what an app on a Local network instance gets from http://169.254.169.254/eve/v1/…. The caller is the app whose
// reserved address the request comes from (the bridge lets an app port send with its own address only), never
// anything the request says; an address no app holds gets 403. Routing and answers only: the listener is
// server.ts, the traffic is brought here by the network part's DNAT.
import { createHash } from "node:crypto";
import { Hono } from "hono";
import type { CipherBlockModel, SecretOpener } from "../config/cipher.ts";
import type { DeviceModel, PatchEnvelopeModel } from "../config/model.ts";
import type { PatchArtifactModel } from "../config/patch-envelopes.ts";
import { decodeMessage, type EncryptionBlock, EncryptionBlockUser, type InlineOpaqueBase64Data } from "../proto/index.ts";
import { artifactRefs, envelopeReport, fileNameProblem, volumeArtifactFile, MAX_INLINE_BYTES, type PatchEnvelopeReport, patchState } from "../config/patch-envelopes.ts";
import type { ObjectProblem } from "../config/problems.ts";
import { deviceRoutes, type DeviceRouteDeps, SIGNER_MAX } from "./device-routes.ts";
import { decodeVolumeRef } from "./volume-ref.ts";
import { crc32OfFile, ZIP_MAX, type ZipEntry, zipLength, zipStream } from "./zip.ts";

export const METADATA_IP = "169.254.169.254";
const PATCH_URL = `http://${METADATA_IP}/eve/v1/patch/download`;
const CUSTOM_STATUS_PATH = "/eve/v1/app/appCustomStatus";
/** The routes an app posts to (EVE's): its custom status, the signer, activate-credential, a kubeconfig. */
const POST_PATHS = new Set([CUSTOM_STATUS_PATH, "/eve/v1/tpm/signer", "/eve/v1/tpm/activatecredential", "/eve/v1/tpm/activatecredential/", "/eve/v1/kubeconfig"]);
/** The largest body an app may post (the signer's, EVE's 64 KiB); each route checks its own. */
export const MAX_POST_BODY = SIGNER_MAX;
/** EVE's limit for what an app posts there (its kubeconfig limit, 32 KiB). */
export const MAX_CUSTOM_STATUS = 32 * 1024;

/** The app behind a source address: its interface on a Local instance (network/ `interfaceAt`). */
export interface Caller {
  appUuid: string;
  appName: string;
  /** The instance's port, for the external address (null: an air-gapped instance). */
  uplinkIfname: string | null;
  /** The interface's `allowToDiscover` (discover-network.json). */
  allowToDiscover?: boolean;
}

export interface MetadataDeps extends Omit<DeviceRouteDeps, "model" | "device"> {
  callerAt(ip: string): Caller | null;
  /** The current config's device model and its problems (ConfigService.model()). */
  model(): { model: DeviceModel; problems: ObjectProblem[] } | null;
  /** The device's UUID (from its controller; null in local mode) and name. */
  device(): { uuid: string | null; name: string };
  /** The IPv4 address of an interface of the device (the instance's port: what the app is NATed to). */
  ipv4Of(ifname: string): string | null;
  /** The device's location (lps/ or the controller), EVE's location.json keys; null: none known (204). */
  location?(): Record<string, unknown> | null;
  /**
   * A volume artifact's file: the content tree of that sha256 in evebox's content store (storage/cache.ts, its
   * path made from the sha256 alone), once downloaded; null while it is not there. Absent: none is served.
   */
  artifactFile?(sha256: string): { path: string; size: number } | null;
  /** Opens encrypted inline artifacts (the controller part's opener); absent: they are not served. */
  secrets?: Pick<SecretOpener, "openBytes" | "epoch">;
  /** Where an artifact that cannot be opened is told. */
  log?: (level: "warn", message: string) => void;
  /**
   * Where each app's use of its envelopes and its last custom status are kept, so that they outlive a restart as
   * in EVE (the store's `metadata`); absent: in memory only.
   */
  state?: MetadataPersistence;
  /** Requests per second and burst per caller (EVE limits its /metrics to 1/s, burst 10). */
  rate?: { perSecond: number; burst: number };
  now?: () => number;
}

/** One envelope's use by one app (EVE's AppPatchEnvelopeMetric). */
export interface PatchUsage {
  appUuid: string;
  uuid: string;
  version: string;
  /** description.json answers that listed it. */
  apiCalls: number;
  /** Its files (one, or the zip of all) served. */
  downloads: number;
}

/** What the service keeps of the apps' use of it (store/metadata-state.ts `MetadataState`, or memory). */
export interface MetadataPersistence {
  usage(): PatchUsage[];
  count(appUuid: string, uuid: string, version: string, what: "apiCalls" | "downloads"): void;
  keepUsage(keep: (u: PatchUsage) => boolean): void;
  statuses(): { uuid: string; data: Uint8Array }[];
  setStatus(appUuid: string, data: Uint8Array): void;
  keepStatuses(keep: ReadonlySet<string>): void;
}

/** The same, in memory (a service without a store: tests, a device part built without one). */
class MemoryState implements MetadataPersistence {
  private readonly counters = new Map<string, PatchUsage>();
  private readonly status = new Map<string, Uint8Array>();
  usage(): PatchUsage[] {
    return [...this.counters.values()].map((u) => ({ ...u }));
  }
  count(appUuid: string, uuid: string, version: string, what: "apiCalls" | "downloads"): void {
    const key = `${appUuid}/${uuid}/${version}`;
    let u = this.counters.get(key);
    if (!u) this.counters.set(key, (u = { appUuid, uuid, version, apiCalls: 0, downloads: 0 }));
    u[what]++;
  }
  keepUsage(keep: (u: PatchUsage) => boolean): void {
    for (const [k, u] of this.counters) if (!keep(u)) this.counters.delete(k);
  }
  statuses(): { uuid: string; data: Uint8Array }[] {
    return [...this.status].map(([uuid, data]) => ({ uuid, data }));
  }
  setStatus(appUuid: string, data: Uint8Array): void {
    this.status.set(appUuid, data);
  }
  keepStatuses(keep: ReadonlySet<string>): void {
    for (const uuid of this.status.keys()) if (!keep.has(uuid)) this.status.delete(uuid);
  }
}

/** Per-caller request budget: a token bucket; the table is bounded (an idle entry is dropped first). */
class RateLimiter {
  private buckets = new Map<string, { tokens: number; at: number }>();
  constructor(private readonly perSecond: number, private readonly burst: number, private readonly now: () => number, private readonly max = 4096) {}

  allow(key: string): boolean {
    const now = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.max) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: this.burst, at: now };
    } else this.buckets.delete(key); // re-inserted below: the Map's order is then least recently used first
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

type Env = { Bindings: { ip: string; port: number } };

/** A file of an envelope as served: an inline artifact, an encrypted one opened, or a volume artifact's file. */
export interface PatchFile {
  fileName: string;
  /** Inline: the base64 text (what is served, and what fileSha and size are of); null for a volume artifact. */
  data: string | null;
  /** A volume artifact: its file in the content store, its size and sha256 (the content tree's, verified). */
  volume: { path: string; size: number; sha256: string } | null;
  /** A volume artifact: the reference as configured (or opened), for description.json's VolumeRefs. */
  ref?: { imageName: string; imageId: string };
  fileMetaData: string;
  artifactMetaData: string;
}

/** An envelope's volume references as EVE lists them in description.json (BinaryBlobVolumeRef's keys), or null. */
function volumeRefs(files: PatchFile[]): Record<string, unknown>[] | null {
  const refs = files.filter((f) => f.ref);
  return refs.length
    ? refs.map((f) => ({ fileName: f.fileName, imageName: f.ref!.imageName, fileMetaData: f.fileMetaData, artifactMetaData: f.artifactMetaData, encArtifactMeta: {}, imageId: f.ref!.imageId }))
    : null;
}

/** A zip entry of a file: an inline one's text, or a volume file read from the store (its CRC once per sha256). */
async function zipEntryOf(f: PatchFile): Promise<ZipEntry> {
  if (!f.volume) {
    const data = new TextEncoder().encode(f.data!);
    return { name: f.fileName, size: data.length, crc: Bun.hash.crc32(data) >>> 0, body: () => data };
  }
  const v = f.volume;
  return { name: f.fileName, size: v.size, crc: await crc32OfFile(v.path, v.size, v.sha256), body: () => Bun.file(v.path).slice(0, v.size).stream() };
}

type Result<T> = { ok: true; value: T } | { ok: false; error: string };
interface OpenEntry<T> {
  promise: Promise<Result<T>>;
  settled: Result<T> | undefined;
}
type OpenedVolumeRef = { fileName: string; fileMetaData: string; imageName: string; volumeId: string; sha256: string };

/** An encrypted inline artifact's plaintext (InlineOpaqueBase64Data), checked as an inline artifact is in the config. */
function readInline(clear: Uint8Array): Result<PatchFile> {
  let inline: InlineOpaqueBase64Data;
  try {
    inline = decodeMessage<InlineOpaqueBase64Data>("org.lfedge.eve.config.InlineOpaqueBase64Data", clear);
  } catch (e) {
    return { ok: false, error: `the decrypted data is not an InlineOpaqueBase64Data: ${(e as Error).message}` };
  }
  const fileName = String(inline.fileNameToUse ?? "");
  const data = String(inline.base64Data ?? "");
  const bad = fileNameProblem(fileName);
  if (bad) return { ok: false, error: `fileNameToUse: ${bad}` };
  if (data.length > MAX_INLINE_BYTES) return { ok: false, error: `base64Data: ${data.length} bytes: at most ${MAX_INLINE_BYTES}` };
  if (!BASE64.test(data.replace(/\s+/g, ""))) return { ok: false, error: "base64Data: is not base64 text" };
  return { ok: true, value: { fileName, data, volume: null, fileMetaData: String(inline.base64MetaData ?? ""), artifactMetaData: "" } };
}

/** An encrypted volume artifact's plaintext (ExternalOpaqueBinaryBlob), resolved against the config as a clear volumeRef. */
function readVolumeRef(clear: Uint8Array, model: DeviceModel): Result<OpenedVolumeRef> {
  const ref = decodeVolumeRef(clear);
  const fileName = ref.fileNameToUse || ref.imageName;
  const bad = fileNameProblem(fileName);
  if (bad) return { ok: false, error: `${ref.fileNameToUse ? "fileNameToUse" : "imageName"}: ${bad}` };
  const r = volumeArtifactFile(ref.volumeId, artifactRefs(model));
  if (!("file" in r)) return { ok: false, error: `imageId: ${"problem" in r ? r.problem : r.fault}` };
  return { ok: true, value: { fileName, fileMetaData: ref.blobMetaData, imageName: ref.imageName, volumeId: ref.volumeId, sha256: r.file.sha256 } };
}

/** Encrypted artifact metadata's plaintext: an EncryptionBlock for BINARY_ARTIFACT_METADATA, its text. */
function readArtifactMeta(clear: Uint8Array): Result<string> {
  let eb: EncryptionBlock;
  try {
    eb = decodeMessage<EncryptionBlock>("org.lfedge.eve.common.EncryptionBlock", clear);
  } catch (e) {
    return { ok: false, error: `the decrypted data is not an EncryptionBlock: ${(e as Error).message}` };
  }
  if (eb.user !== EncryptionBlockUser.ENCRYPTION_BLOCK_USER_BINARY_ARTIFACT_METADATA) return { ok: false, error: "the decrypted EncryptionBlock is not for BINARY_ARTIFACT_METADATA" };
  return { ok: true, value: String(eb.encryptedData ?? "") };
}
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export class MetadataService {
  readonly app = new Hono<Env>();
  private readonly limiter: RateLimiter;
  private readonly state: MetadataPersistence;
  /** The model the kept state was last pruned to, and what of it that model names. */
  private prunedFor: DeviceModel | null = null;
  private named: { apps: Set<string>; given: Set<string> } = { apps: new Set(), given: new Set() };
  /** Encrypted blocks opened (artifacts, their metadata), by kind, block and opener epoch. */
  private readonly opened = new Map<string, OpenEntry<unknown>>();
  private shaCache = new Map<string, string>();

  constructor(private readonly deps: MetadataDeps) {
    const rate = deps.rate ?? { perSecond: 5, burst: 20 };
    this.limiter = new RateLimiter(rate.perSecond, rate.burst, deps.now ?? Date.now);
    this.state = deps.state ?? new MemoryState();
    this.routes();
  }

  /** Answers one request from `ip`:`port` (the connection's source, as the listener saw it). */
  fetch(req: Request, ip: string, port: number): Response | Promise<Response> {
    return this.app.fetch(req, { ip, port });
  }

  /** How an app used its envelopes (kept across restarts; for the controller's app metrics). */
  usageOf(appUuid: string): PatchUsage[] {
    const { given } = this.prune();
    return this.state.usage().filter((u) => u.appUuid === appUuid && given.has(`${u.appUuid}/${u.uuid}/${u.version}`));
  }

  /** The last status each app of the current config posted (appCustomStatus, kept across restarts), for the controller. */
  customStatuses(): { uuid: string; data: Uint8Array }[] {
    const { apps } = this.prune();
    return this.state.statuses().filter((s) => apps.has(s.uuid));
  }

  /**
   * Keeps only what the current config still names, once per config version (as EVE drops an envelope's usage
   * when the config no longer gives it to the app, and an app's metadata with the app): counters of an envelope
   * version of the config for an app it names, statuses of the config's apps.
   */
  private prune(): { apps: Set<string>; given: Set<string> } {
    const model = this.deps.model()?.model ?? null;
    if (!model || model === this.prunedFor) return model ? this.named : { apps: new Set(), given: new Set() };
    const apps = new Set(model.apps.map((a) => a.uuid));
    const given = new Set(model.patchEnvelopes.flatMap((pe) => pe.apps.map((a) => `${a}/${pe.uuid}/${pe.version}`)));
    this.state.keepUsage((u) => given.has(`${u.appUuid}/${u.uuid}/${u.version}`));
    this.state.keepStatuses(apps);
    this.prunedFor = model;
    return (this.named = { apps, given });
  }

  /**
   * Every envelope of the current config with the state EVE would report: the config's, but PATCH_RECEIVED while
   * a volume artifact's file is not downloaded yet (as EVE, whatever the action), and the size with the volume
   * files that are there (EVE sums its completed blobs).
   */
  reports(): PatchEnvelopeReport[] {
    const m = this.deps.model();
    if (!m) return [];
    return m.model.patchEnvelopes.map((pe) => {
      const r = envelopeReport(pe, m.problems);
      const fileOf = (sha256: string) => this.deps.artifactFile?.(sha256) ?? null;
      const files = pe.artifacts.flatMap((a) => {
        if (a.kind === "volumeRef" && a.file) return [fileOf(a.file.sha256)];
        if (a.kind === "encryptedVolumeRef" && a.cipher && r.state !== "PATCH_ERROR") {
          // What is settled (asking for it if not yet: the next report knows).
          const opened = this.openVolume(a.cipher, m.model).settled;
          return [opened?.ok ? fileOf(opened.value.sha256) : null];
        }
        return [];
      });
      const size = r.size + files.reduce((n, f) => n + (f?.size ?? 0), 0);
      return { ...r, size, state: r.state !== "PATCH_ERROR" && files.some((f) => !f) ? "PATCH_RECEIVED" : r.state };
    });
  }

  /**
   * The envelopes an app sees, with their files: ACTIVE ones (EVE hides STORE and failed ones) naming it, whose
   * encrypted inline artifacts all opened (one that does not keeps its envelope from the apps, and is logged).
   */
  async envelopesFor(appUuid: string): Promise<{ pe: PatchEnvelopeModel; files: PatchFile[] }[]> {
    const m = this.deps.model();
    if (!m) return [];
    const faulty = new Set(m.problems.filter((p) => p.objectKind === "patchEnvelope").map((p) => p.objectId));
    const out: { pe: PatchEnvelopeModel; files: PatchFile[] }[] = [];
    for (const pe of m.model.patchEnvelopes) {
      if (!pe.apps.includes(appUuid) || patchState(pe, faulty.has(pe.uuid) ? 1 : 0) !== "PATCH_ACTIVE") continue;
      const files = await this.filesOf(pe, m.model);
      if (files) out.push({ pe, files });
    }
    return out;
  }

  private async filesOf(pe: PatchEnvelopeModel, model: DeviceModel): Promise<PatchFile[] | null> {
    const files: PatchFile[] = [];
    for (const clear of pe.artifacts) {
      const a = clear.metadataCipher ? { ...clear, artifactMetaData: await this.artifactMetaData(pe, clear, model) } : clear;
      if (a.kind === "inline") files.push({ fileName: a.fileName, data: a.data!, volume: null, fileMetaData: a.fileMetaData, artifactMetaData: a.artifactMetaData });
      else if (a.kind === "volumeRef" && a.file) {
        // Not downloaded yet: the envelope waits (EVE's PATCH_RECEIVED), kept from the apps until it is.
        const f = this.deps.artifactFile?.(a.file.sha256);
        if (!f) return null;
        files.push({ fileName: a.fileName, data: null, volume: { ...f, sha256: a.file.sha256 }, ref: { imageName: a.imageName ?? "", imageId: a.volumeId ?? "" }, fileMetaData: a.fileMetaData, artifactMetaData: a.artifactMetaData });
      } else if (a.kind === "encryptedVolumeRef" && a.cipher) {
        const r = await this.openVolume(a.cipher, model).promise;
        if (!r.ok) {
          this.deps.log?.("warn", `metadata: patch envelope ${pe.uuid} artifacts[${a.index}] (encryptedVolumeref) is not served: ${r.error}`);
          return null;
        }
        const v = r.value;
        const f = this.deps.artifactFile?.(v.sha256);
        if (!f) return null; // its volume's content tree is not downloaded yet
        files.push({ fileName: v.fileName, data: null, volume: { ...f, sha256: v.sha256 }, ref: { imageName: v.imageName, imageId: v.volumeId }, fileMetaData: v.fileMetaData, artifactMetaData: a.artifactMetaData });
      }
      else if (a.kind === "encryptedInline" && a.cipher) {
        const r = await this.open(a.cipher, model);
        if (!r.ok) {
          this.deps.log?.("warn", `metadata: patch envelope ${pe.uuid} artifacts[${a.index}] (encryptedInline) is not served: ${r.error}`);
          return null;
        }
        files.push({ ...r.value, artifactMetaData: a.artifactMetaData });
      }
    }
    const names = new Set<string>();
    for (const f of files) {
      if (names.has(f.fileName)) {
        this.deps.log?.("warn", `metadata: patch envelope ${pe.uuid} is not served: two of its files are named ${JSON.stringify(f.fileName)}`);
        return null;
      }
      names.add(f.fileName);
    }
    return files;
  }

  /**
   * A block opened once per kind, block and opener epoch (in memory, 1,024 at most), its plaintext checked by
   * `read`; what is settled is kept too, for `reports()`, which cannot wait.
   */
  private openOnce<T>(kind: string, block: CipherBlockModel, model: DeviceModel, read: (clear: Uint8Array) => Result<T>): OpenEntry<T> {
    const secrets = this.deps.secrets;
    if (!secrets?.openBytes) {
      const no: Result<T> = { ok: false, error: "this device cannot open encrypted artifacts" };
      return { promise: Promise.resolve(no), settled: no };
    }
    const key = `${kind}\u0000${secrets.epoch()}\u0000${block.contextId}\u0000${block.cipherData}`;
    let entry = this.opened.get(key) as OpenEntry<T> | undefined;
    if (!entry) {
      if (this.opened.size >= 1024) this.opened.clear();
      const ctx = model.cipherContexts.find((c) => c.id === block.contextId) ?? null;
      const e: OpenEntry<T> = {
        promise: secrets.openBytes(block, ctx).then(
          (clear): Result<T> => {
            try {
              return read(clear);
            } catch (err) {
              return { ok: false, error: (err as Error).message };
            } finally {
              clear.fill(0);
            }
          },
          (err: Error): Result<T> => ({ ok: false, error: err.message }),
        ),
        settled: undefined,
      };
      void e.promise.then((r) => (e.settled = r));
      this.opened.set(key, e as OpenEntry<unknown>);
      entry = e;
    }
    return entry;
  }

  /** An encrypted inline artifact: its InlineOpaqueBase64Data, checked as an inline one. */
  private open(block: CipherBlockModel, model: DeviceModel): Promise<Result<PatchFile>> {
    return this.openOnce("inline", block, model, readInline).promise;
  }

  /** An encrypted volume artifact: its ExternalOpaqueBinaryBlob, resolved and checked as a clear volumeRef is. */
  private openVolume(block: CipherBlockModel, model: DeviceModel): OpenEntry<OpenedVolumeRef> {
    return this.openOnce("volume", block, model, (clear) => readVolumeRef(clear, model));
  }

  /**
   * An artifact's encrypted metadata: the EncryptionBlock's `encryptedData` when its user is
   * BINARY_ARTIFACT_METADATA. As EVE, one that does not open (or is for another user) is logged and the clear
   * `artifactMetaData` stays.
   */
  private async artifactMetaData(pe: PatchEnvelopeModel, a: PatchArtifactModel, model: DeviceModel): Promise<string> {
    const r = await this.openOnce("meta", a.metadataCipher!, model, readArtifactMeta).promise;
    if (r.ok) return r.value;
    this.deps.log?.("warn", `metadata: patch envelope ${pe.uuid} artifacts[${a.index}] metadataCipherData cannot be opened (the clear artifactMetaData stays): ${r.error}`);
    return a.artifactMetaData;
  }

  private routes(): void {
    const app = this.app;
    // Every route: a caller the device knows, within its budget; nothing is read from a request body.
    app.use("*", async (c, next) => {
      if (!this.limiter.allow(c.env.ip)) return c.json({ message: "too many requests" }, 429);
      const post = c.req.method === "POST" && POST_PATHS.has(c.req.path);
      if (c.req.method !== "GET" && c.req.method !== "HEAD" && !post) return c.json({ message: "method not allowed" }, 405);
      if (!this.deps.callerAt(c.env.ip)) return c.json({ message: `no app instance on a local network instance has address ${c.env.ip}` }, 403);
      await next();
    });
    const caller = (c: { env: Env["Bindings"] }) => this.deps.callerAt(c.env.ip)!;
    const external = (who: Caller) => (who.uplinkIfname ? this.deps.ipv4Of(who.uplinkIfname) : null);

    app.get("/eve/v1/network.json", (c) => {
      const who = caller(c);
      const dev = this.deps.device();
      return c.json({
        "caller-ip": `${c.env.ip}:${c.env.port}`,
        "external-ipv4": external(who) ?? "",
        hostname: who.appUuid,
        "app-instance-uuid": who.appUuid,
        "device-uuid": dev.uuid ?? "",
        // The controller's name for the device (`device_name`), as EVE's EdgeNodeInfo; else the device's own.
        "device-name": this.deps.model()?.model.device.name ?? dev.name,
        "project-name": "",
        "project-uuid": "",
        "enterprise-name": "",
        "enterprise-id": "",
      });
    });
    app.get("/eve/v1/external_ipv4", (c) => {
      const ip = external(caller(c));
      return ip ? c.text(`${ip}\n`) : c.body(null, 204);
    });
    app.get("/eve/v1/hostname", (c) => c.text(`${caller(c).appUuid}\n`));
    app.get("/eve/v1/app/info.json", (c) => {
      const who = caller(c);
      // EVE's AppInfo lists the app's AppCustom blobs (none on evebox: null, as EVE's empty list); the app's UUID
      // and name are evebox's.
      return c.json({ AppBlobs: null, "app-instance-uuid": who.appUuid, "app-instance-name": who.appName });
    });
    app.get("/eve/v1/location.json", (c) => {
      const loc = this.deps.location?.() ?? null;
      return loc ? c.json(loc) : c.body(null, 204);
    });

    app.get("/eve/v1/patch/description.json", async (c) => {
      const who = caller(c);
      const envelopes = await this.envelopesFor(who.appUuid);
      for (const { pe } of envelopes) this.count(who.appUuid, pe, "apiCalls");
      // EVE's keys (PeInfoToDisplay, BinaryBlobCompleted); an app with none gets an empty list.
      return c.json(
        envelopes.map(({ pe, files }) => ({
          PatchID: pe.uuid,
          Version: pe.version,
          BinaryBlobs: files.map((f) => ({
            fileName: f.fileName,
            fileSha: f.volume ? f.volume.sha256 : this.sha256(f.data!),
            fileMetaData: f.fileMetaData,
            artifactMetaData: f.artifactMetaData,
            encArtifactMeta: {},
            url: `${PATCH_URL}/${pe.uuid}/${encodeURIComponent(f.fileName)}`,
            size: f.volume ? f.volume.size : Buffer.byteLength(f.data!),
          })),
          // As EVE: the volume references as configured, beside their files in BinaryBlobs; null when there are none.
          VolumeRefs: volumeRefs(files),
        })),
      );
    });
    const envelopeOf = async (c: { env: Env["Bindings"]; req: { param(k: "patch"): string } }) => (await this.envelopesFor(caller(c).appUuid)).find((e) => e.pe.uuid === c.req.param("patch").toLowerCase());
    app.get("/eve/v1/patch/download/:patch", async (c) => {
      const e = await envelopeOf(c);
      if (!e) return c.json({ message: "patch is not found" }, 404);
      let entries: ZipEntry[];
      try {
        entries = await Promise.all(e.files.map((f) => zipEntryOf(f)));
      } catch (err) {
        return c.json({ message: `the envelope's files cannot be read: ${(err as Error).message}` }, 500);
      }
      const length = zipLength(entries);
      if (length === null) return c.json({ message: `the envelope's files are too large for one zip (at most ${ZIP_MAX} bytes without zip64): download them one by one` }, 413);
      this.count(caller(c).appUuid, e.pe, "downloads");
      return c.body(zipStream(entries), 200, { "Content-Type": "application/zip", "Content-Length": String(length), "Content-Disposition": `attachment; filename="${e.pe.uuid}.zip"` });
    });
    app.get("/eve/v1/patch/download/:patch/:file", async (c) => {
      const e = await envelopeOf(c);
      if (!e) return c.json({ message: "patch is not found" }, 404);
      const f = e.files.find((x) => x.fileName === c.req.param("file"));
      if (!f) return c.json({ message: "file is not found" }, 404);
      this.count(caller(c).appUuid, e.pe, "downloads");
      // A volume artifact's file streamed from the content store (never read whole), exactly its size.
      if (f.volume) return c.body(Bun.file(f.volume.path).slice(0, f.volume.size).stream(), 200, { "Content-Type": "application/octet-stream", "Content-Length": String(f.volume.size) });
      // As EVE serves an inline artifact: its base64 text, not decoded.
      return c.body(f.data!, 200, { "Content-Type": "text/plain" });
    });
    // EVE's appCustomStatus: the app's own status, bytes the controller gets as they are (ZInfoAppInstMetaData).
    app.post(CUSTOM_STATUS_PATH, async (c) => {
      if (c.req.header("content-type")?.split(";")[0]?.trim() !== "application/json") return c.json({ message: "Content-Type must be application/json" }, 415);
      const body = new Uint8Array(await c.req.arrayBuffer());
      if (body.length > MAX_CUSTOM_STATUS) return c.json({ message: `${body.length} bytes: a status holds at most ${MAX_CUSTOM_STATUS}` }, 413);
      this.state.setStatus(caller(c).appUuid, body);
      return c.body(null, 200);
    });
    deviceRoutes(app, this.deps, caller);
    app.notFound((c) => c.json({ message: "not found" }, 404));
  }

  private count(appUuid: string, pe: PatchEnvelopeModel, what: "apiCalls" | "downloads"): void {
    this.state.count(appUuid, pe.uuid, pe.version, what);
  }

  private sha256(data: string): string {
    let h = this.shaCache.get(data);
    if (h === undefined) {
      if (this.shaCache.size > 1024) this.shaCache = new Map();
      h = createHash("sha256").update(data).digest("hex");
      this.shaCache.set(data, h);
    }
    return h;
  }
}
