// EVE's patch envelopes (`EdgeDevConfig.patchEnvelopes`, proto/config/patch_envelope.proto; eve
// docs/PATCH-ENVELOPES.md): files the controller hands to the apps it names, served to them by the metadata
// server (src/metadata/) at 169.254.169.254. Read once into the device model; pure (no node:, no Bun APIs).
//
// What is served is the inline artifacts' base64 text as sent (EVE serves it so, not decoded), and a volume
// artifact's file: the content tree its volume is made from, as downloaded (EVE serves the volume's file; its
// fileSha is the content tree's sha256). A file name reaches a URL path and a zip entry: one path component,
// checked here (an encrypted artifact's once the metadata server opened it). A volumeRef must name a volume of the
// config; a volume evebox cannot serve as one file (blank, a container image) is the envelope's fault: the config
// is accepted, the envelope is in error (EVE's PATCH_ERROR) and no app sees it.
import { type CipherBlockModel, cipherBlockModel } from "./cipher.ts";
import { displayNameProblem, hasControl } from "./names.ts";
import type { ObjectKind } from "./problems.ts";

/** What a volumeRef is resolved against: the config's volumes and content trees (model.ts). */
export interface ArtifactRefs {
  volume(uuid: string): { uuid: string; name: string; origin: "blank" | "download"; contentTreeId: string | null } | undefined;
  contentTree(uuid: string): { uuid: string; name: string; format: string; source: { kind: "registry" | "http" } | null; sha256: string | null } | undefined;
}

type Doc = Record<string, any>;
type Push = (kind: ObjectKind, id: string, path: string, message: string) => void;

/**
 * An inline artifact's data, at most (characters of base64 text). EVE documents inline artifacts as "max
 * 10KBytes" and does not check it (pkg/pillar/cmd/zedagent/parsepatchenvelopes.go); evebox does, so that an
 * inline artifact stays small in every config version stored.
 */
export const MAX_INLINE_BYTES = 10 * 1024;
/** File names: one path component, bounded. */
export const MAX_FILE_NAME = 255;

export type PatchAction = "STORE" | "ACTIVATE";
/**
 * EVE's info states (EVE_PATCH_ENVELOPE_STATE) evebox reports: the three a config alone decides, and PATCH_RECEIVED
 * while a volume artifact's file is not downloaded yet (the metadata server's `reports()`).
 */
export type PatchState = "PATCH_ERROR" | "PATCH_RECEIVED" | "PATCH_READY" | "PATCH_ACTIVE";

export interface PatchArtifactModel {
  /** Position in the envelope's `artifacts`. */
  index: number;
  kind: "inline" | "volumeRef" | "encryptedInline" | "encryptedVolumeRef" | "none";
  /** The name the app downloads it by ("" when the artifact has none to give). */
  fileName: string;
  /** inline: `base64Data` as sent (what is served, and what its sha256 and size are of); otherwise null. */
  data: string | null;
  /** inline `base64MetaData`, volumeRef `blobMetaData`. */
  fileMetaData: string;
  artifactMetaData: string;
  /** volumeRef: the volume (`imageId`) and `imageName`. */
  volumeId: string | null;
  imageName: string | null;
  /**
   * volumeRef: the file served, once downloaded: the content tree the volume is made from (an Http(s) datastore's,
   * by its sha256, which is the artifact's fileSha). Null when the volume cannot be served (a fault says why).
   */
  file: { contentTreeId: string; sha256: string } | null;
  /**
   * encryptedInline, encryptedVolumeRef: the block, still encrypted; opened by the metadata server (its plaintext
   * is an InlineOpaqueBase64Data, or an ExternalOpaqueBinaryBlob, checked as an inline artifact's or a volumeRef's
   * once opened).
   */
  cipher: CipherBlockModel | null;
  /**
   * `metadata_cipher_data`: `artifactMetaData` encrypted (an EncryptionBlock whose user is
   * ENCRYPTION_BLOCK_USER_BINARY_ARTIFACT_METADATA, its `encryptedData` the text); opened by the metadata server.
   */
  metadataCipher: CipherBlockModel | null;
}

export interface PatchEnvelopeModel {
  index: number;
  uuid: string;
  version: string;
  name: string;
  /** EVE_PATCH_ENVELOPE_ACTION: STORE keeps it from the apps (PATCH_READY), ACTIVATE serves it (PATCH_ACTIVE). */
  action: PatchAction;
  /** `appInstIdsAllowed`, lower case: the apps that see it. */
  apps: string[];
  artifacts: PatchArtifactModel[];
  /** Why it cannot be served, though the config is accepted (an artifact kind not served yet). */
  faults: string[];
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** Why a file name from the config cannot be a file name (one path component), or null. */
export function fileNameProblem(s: string): string | null {
  if (!s) return "a file name is needed";
  if (s.length > MAX_FILE_NAME) return `${s.length} characters: at most ${MAX_FILE_NAME}`;
  if (hasControl(s)) return "contains a control character";
  if (s.includes("/") || s.includes("\\")) return `${quote(s)} is not one path component (no / or \\)`;
  if (s === "." || s === "..") return `${quote(s)} is not a file name`;
  return null;
}

/** The envelope's state as EVE reports it, from the config: its faults and problems first, then its action. */
export function patchState(pe: PatchEnvelopeModel, problems: number): Exclude<PatchState, "PATCH_RECEIVED"> {
  if (pe.faults.length || problems) return "PATCH_ERROR";
  return pe.action === "ACTIVATE" ? "PATCH_ACTIVE" : "PATCH_READY";
}

/** One envelope as the controller is told of it (EVE's ZInfoPatchEnvelope). */
export interface PatchEnvelopeReport {
  uuid: string;
  name: string;
  version: string;
  state: PatchState;
  /** Bytes of its files as served (the inline artifacts' base64 text: ASCII, one byte a character). */
  size: number;
  /** Its problems (a controller's config: `path: message`) and faults. */
  errors: string[];
}

export function envelopeReport(pe: PatchEnvelopeModel, problems: readonly { objectKind: string; objectId: string; path: string; message: string }[]): PatchEnvelopeReport {
  const own = problems.filter((p) => p.objectKind === "patchEnvelope" && p.objectId === pe.uuid).map((p) => `${p.path}: ${p.message}`);
  return {
    uuid: pe.uuid,
    name: pe.name,
    version: pe.version,
    state: patchState(pe, own.length),
    size: pe.artifacts.reduce((n, a) => n + (a.data?.length ?? 0), 0),
    errors: [...own, ...pe.faults],
  };
}

/** The config's volumes and content trees as a volumeRef is resolved against them. */
export function artifactRefs(m: { volumes: readonly { uuid: string; name: string; origin: "blank" | "download"; contentTreeId: string | null }[]; contentTrees: readonly { uuid: string; name: string; format: string; source: { kind: "registry" | "http" } | null; sha256: string | null }[] }): ArtifactRefs {
  return { volume: (id) => m.volumes.find((v) => v.uuid.toLowerCase() === id), contentTree: (id) => m.contentTrees.find((t) => t.uuid === id) };
}

/**
 * The file a volumeRef's volume gives (its content tree, downloaded), or why there is none. Null volume: a
 * problem of the config (a reference to nothing); otherwise a fault (the envelope is in error, the config stays).
 */
export function volumeArtifactFile(volumeId: string, refs: ArtifactRefs): { file: { contentTreeId: string; sha256: string } } | { problem: string } | { fault: string } {
  const v = refs.volume(volumeId);
  if (!v) return { problem: `no volume ${quote(volumeId)} in this config (imageId names the volume the file comes from)` };
  const named = `volume ${v.name ? `${quote(v.name)} (${v.uuid})` : v.uuid}`;
  if (v.origin !== "download" || !v.contentTreeId) return { fault: `${named} is blank: it has no file to serve (a volume artifact is the content tree its volume is made from)` };
  const t = refs.contentTree(v.contentTreeId);
  if (!t) return { fault: `${named}: no content tree ${v.contentTreeId}` };
  if (t.format === "CONTAINER" || t.source?.kind === "registry") return { fault: `${named} is made from a container image (content tree ${quote(t.name)}): it is not one file to serve` };
  if (t.source?.kind !== "http" || !t.sha256) return { fault: `${named}: its content tree ${quote(t.name)} is not a file from an Http(s) datastore with a sha256` };
  return { file: { contentTreeId: t.uuid, sha256: t.sha256 } };
}

export function readPatchEnvelopes(doc: Doc, push: Push, refs?: ArtifactRefs): PatchEnvelopeModel[] {
  const list = (v: unknown): Doc[] => (Array.isArray(v) ? v : []);
  const seen = new Set<string>();
  return list(doc.patchEnvelopes).map((pe, index): PatchEnvelopeModel => {
    const path = `patchEnvelopes[${index}]`;
    const uuid = String(pe?.uuid ?? "").toLowerCase();
    const at = (p: string, m: string) => push("patchEnvelope", uuid, `${path}.${p}`, m);
    if (!UUID_RE.test(uuid)) at("uuid", `expected a UUID, got ${quote(pe?.uuid ?? "")}`);
    else if (seen.has(uuid)) at("uuid", `duplicate patch envelope uuid ${uuid} (UUIDs compare without regard to case)`);
    seen.add(uuid);
    const name = String(pe?.displayName ?? "");
    const nameProblem = name ? displayNameProblem(name) : null;
    if (nameProblem && !hasControl(name)) at("displayName", nameProblem);
    const version = String(pe?.version ?? "");
    if (version.length > 256) at("version", `${version.length} characters: at most 256`);
    const apps = list(pe?.appInstIdsAllowed).map((a, j) => {
      const id = String(a ?? "").toLowerCase();
      if (!UUID_RE.test(id)) at(`appInstIdsAllowed[${j}]`, `expected an app instance UUID, got ${quote(a ?? "")}`);
      return id;
    });
    const faults: string[] = [];
    const names = new Map<string, number>();
    const artifacts = list(pe?.artifacts).map((a, j) => {
      const ap = `artifacts[${j}]`;
      const art: PatchArtifactModel = { index: j, kind: "none", fileName: "", data: null, fileMetaData: "", artifactMetaData: String(a?.artifactMetaData ?? ""), volumeId: null, imageName: null, file: null, cipher: null, metadataCipher: null };
      // Encrypted artifact metadata: opened by the metadata server (an EncryptionBlock for BINARY_ARTIFACT_METADATA).
      if (a?.metadataCipherData) {
        art.metadataCipher = cipherBlockModel(a.metadataCipherData);
        if (!art.metadataCipher) faults.push(`${ap}.metadataCipherData: no cipher data`);
      }
      if (a?.inline) {
        art.kind = "inline";
        art.fileName = String(a.inline.fileNameToUse ?? "");
        art.data = String(a.inline.base64Data ?? "");
        art.fileMetaData = String(a.inline.base64MetaData ?? "");
        const fp = fileNameProblem(art.fileName);
        // (A control character is reported once, by validation's walk of every string.)
        if (fp && !hasControl(art.fileName)) at(`${ap}.inline.fileNameToUse`, fp);
        if (art.data.length > MAX_INLINE_BYTES) at(`${ap}.inline.base64Data`, `${art.data.length} bytes: an inline artifact holds at most ${MAX_INLINE_BYTES} (EVE's 10 KB); larger files go in a volume`);
        else if (!BASE64_RE.test(art.data.replace(/\s+/g, ""))) at(`${ap}.inline.base64Data`, "is not base64 text");
      } else if (a?.volumeRef) {
        art.kind = "volumeRef";
        art.imageName = String(a.volumeRef.imageName ?? "");
        art.volumeId = String(a.volumeRef.imageId ?? "").toLowerCase();
        art.fileName = String(a.volumeRef.fileNameToUse || art.imageName);
        art.fileMetaData = String(a.volumeRef.blobMetaData ?? "");
        const fp = fileNameProblem(art.fileName);
        if (fp && !hasControl(art.fileName)) at(`${ap}.volumeRef.${a.volumeRef.fileNameToUse ? "fileNameToUse" : "imageName"}`, fp);
        const r = refs ? volumeArtifactFile(art.volumeId, refs) : { fault: "no volumes to resolve it against" };
        if ("file" in r) art.file = r.file;
        else if ("problem" in r) at(`${ap}.volumeRef.imageId`, r.problem);
        else faults.push(`${ap}.volumeRef: ${r.fault}`);
      } else if (a?.encryptedInline) {
        art.kind = "encryptedInline";
        art.cipher = cipherBlockModel(a.encryptedInline.cipherData);
        if (!art.cipher) faults.push(`${ap}.encryptedInline.cipherData: no cipher data`);
      } else if (a?.encryptedVolumeref) {
        // Opened by the reconciler (to fetch the volume's content tree) and by the metadata server (to serve it);
        // its plaintext is an ExternalOpaqueBinaryBlob, resolved and checked as a volumeRef once opened.
        art.kind = "encryptedVolumeRef";
        art.cipher = cipherBlockModel(a.encryptedVolumeref.cipherData);
        if (!art.cipher) faults.push(`${ap}.encryptedVolumeref.cipherData: no cipher data`);
      } else at(ap, "an artifact needs one of inline, volumeRef, encryptedInline, encryptedVolumeref");
      if (art.fileName) {
        const before = names.get(art.fileName);
        if (before !== undefined) at(`${ap}`, `file name ${quote(art.fileName)} is also artifacts[${before}]'s: an app downloads a file by its name`);
        else names.set(art.fileName, j);
      }
      return art;
    });
    const action = pe?.action === "ACTIVATE" || pe?.action === 1 ? "ACTIVATE" : "STORE";
    return { index, uuid, version, name, action, apps, artifacts, faults };
  });
}

function quote(v: unknown): string {
  const s = String(v);
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}
