// Object-level encryption as EVE's config carries it (eve docs/OBJECT-LEVEL-ENCRYPTION.md): `cipherContexts` name
// the key agreement (ECDH between the device's ECDH certificate and one of the controller's) and the cipher; a
// datastore's or an app's `cipherData` is a CipherBlock under one of them whose plaintext is an EncryptionBlock
// (datastore credentials, protected user data). The model keeps the blocks as sent (still encrypted); who opens
// them (controller/cipher.ts, with the device's ECDH key) is passed in. Pure (no node:, no Bun APIs).
import { readUserData, type UserData } from "./userdata.ts";

type Doc = Record<string, any>;

/** One `cipherContexts` entry; hashes as lower-case hex, enums as their EVE names. */
export interface CipherContextModel {
  id: string;
  /** How the two certificate hashes were made (`HASH_ALGORITHM_SHA256_16BYTES`, …). */
  hashScheme: string;
  keyExchange: string;
  encryption: string;
  deviceCertHash: string;
  controllerCertHash: string;
}

/** A CipherBlock as sent: binary fields as base64 (the document's form). */
export interface CipherBlockModel {
  contextId: string;
  initialValue: string;
  cipherData: string;
  clearTextSha256: string;
}

/** What evebox uses of an opened EncryptionBlock. */
export interface OpenedBlock {
  dsAPIKey?: string;
  dsPassword?: string;
  protectedUserData?: string;
}

/** Opens a block: the EncryptionBlock inside, or an Error whose message is the reason (never the secret). */
export interface SecretOpener {
  open(block: CipherBlockModel, context: CipherContextModel | null): Promise<OpenedBlock>;
  /** The block's plaintext itself, checked (a patch envelope's encrypted artifact holds an InlineOpaqueBase64Data). */
  openBytes?(block: CipherBlockModel, context: CipherContextModel | null): Promise<Uint8Array>;
  /** Changes when what blocks are opened with changes (the controller's certificates): opened blocks are then re-read. */
  epoch(): number;
}

export type Opened<T> = { ok: true; value: T } | { ok: false; error: string };

/** The opened secrets of one device model: datastore credentials by datastore id, user data by app uuid. */
export interface RevealedSecrets {
  datastores: Map<string, Opened<{ username: string | null; password: string | null }>>;
  apps: Map<string, Opened<UserData>>;
  /** Patch envelopes' encrypted volume artifacts, by `<envelope uuid>/<artifact index>`: the volume each names. */
  volumeArtifacts?: Map<string, Opened<VolumeArtifactRef>>;
}

/** What an encrypted volume artifact holds (EVE's ExternalOpaqueBinaryBlob): the volume and how the file is named. */
export interface VolumeArtifactRef {
  imageName: string;
  fileNameToUse: string;
  blobMetaData: string;
  /** The volume's UUID, lower case. */
  volumeId: string;
}

/** Reads an opened block's plaintext as an ExternalOpaqueBinaryBlob (the proto part's decoder, given by the caller). */
export type VolumeRefDecoder = (clear: Uint8Array) => VolumeArtifactRef;

export function cipherContextModel(c: Doc): CipherContextModel {
  return {
    id: String(c?.contextId ?? ""),
    hashScheme: String(c?.hashScheme ?? "HASH_ALGORITHM_INVALID"),
    keyExchange: String(c?.keyExchangeScheme ?? "KEA_NONE"),
    encryption: String(c?.encryptionScheme ?? "SA_NONE"),
    deviceCertHash: base64ToHex(c?.deviceCertHash),
    controllerCertHash: base64ToHex(c?.controllerCertHash),
  };
}

/** A block when the field carries one (EVE: cipher data and a context id both present), else null. */
export function cipherBlockModel(b: Doc | null | undefined): CipherBlockModel | null {
  if (!b || !b.cipherData) return null;
  return {
    contextId: String(b.cipherContextId ?? ""),
    initialValue: String(b.initialValue ?? ""),
    cipherData: String(b.cipherData),
    clearTextSha256: String(b.clearTextSha256 ?? ""),
  };
}

/** What the model needs to reveal its secrets: its contexts, and the blocks of its datastores and apps. */
export interface WithCipherBlocks {
  cipherContexts: CipherContextModel[];
  datastores: { id: string; cipher: CipherBlockModel | null }[];
  apps: { uuid: string; cipher: CipherBlockModel | null }[];
  patchEnvelopes?: { uuid: string; artifacts: { index: number; kind: string; cipher: CipherBlockModel | null }[] }[];
}

export function hasCipherBlocks(model: WithCipherBlocks): boolean {
  return model.datastores.some((d) => d.cipher) || model.apps.some((a) => a.cipher) || encryptedVolumeArtifacts(model).length > 0;
}

function encryptedVolumeArtifacts(model: WithCipherBlocks): { key: string; cipher: CipherBlockModel }[] {
  return (model.patchEnvelopes ?? []).flatMap((pe) => pe.artifacts.flatMap((a) => (a.kind === "encryptedVolumeRef" && a.cipher ? [{ key: `${pe.uuid}/${a.index}`, cipher: a.cipher }] : [])));
}

/**
 * Opens every block of the model. A block that cannot be opened is that object's error (its reason), never a
 * throw; a block without a usable context says so.
 */
export async function revealSecrets(model: WithCipherBlocks, opener: SecretOpener | null, decodeVolumeRef?: VolumeRefDecoder): Promise<RevealedSecrets> {
  const contexts = new Map(model.cipherContexts.map((c) => [c.id, c]));
  const open = async (block: CipherBlockModel): Promise<Opened<OpenedBlock>> => {
    if (!opener) return { ok: false, error: "this device cannot open encrypted data: no controller link (cipher data needs the controller's ECDH certificate)" };
    try {
      return { ok: true, value: await opener.open(block, contexts.get(block.contextId) ?? null) };
    } catch (e) {
      return { ok: false, error: (e as Error).message };
    }
  };
  const out: RevealedSecrets = { datastores: new Map(), apps: new Map() };
  for (const ds of model.datastores) {
    if (!ds.cipher) continue;
    const r = await open(ds.cipher);
    out.datastores.set(ds.id, r.ok ? { ok: true, value: { username: r.value.dsAPIKey || null, password: r.value.dsPassword || null } } : r);
  }
  for (const app of model.apps) {
    if (!app.cipher) continue;
    const r = await open(app.cipher);
    // EVE: the protected user data replaces userData, in the same form (base64 text).
    out.apps.set(app.uuid, r.ok ? { ok: true, value: readUserData(r.value.protectedUserData ?? "") } : r);
  }
  // A patch envelope's encrypted volume artifact: the volume it names, so that its content tree is fetched.
  const volumeBlocks = decodeVolumeRef ? encryptedVolumeArtifacts(model) : [];
  if (volumeBlocks.length) out.volumeArtifacts = new Map();
  for (const { key, cipher } of volumeBlocks) {
    if (!opener?.openBytes) {
      out.volumeArtifacts!.set(key, { ok: false, error: "this device cannot open encrypted data: no controller link" });
      continue;
    }
    try {
      const clear = await opener.openBytes(cipher, contexts.get(cipher.contextId) ?? null);
      try {
        out.volumeArtifacts!.set(key, { ok: true, value: decodeVolumeRef!(clear) });
      } finally {
        clear.fill(0);
      }
    } catch (e) {
      out.volumeArtifacts!.set(key, { ok: false, error: (e as Error).message });
    }
  }
  return out;
}

/** Before the blocks of a model were opened (or without an opener). */
export const NOT_OPENED = "its encrypted data (cipherData) has not been opened yet";

function base64ToHex(v: unknown): string {
  if (typeof v !== "string" || !v) return "";
  try {
    const bin = atob(v.replace(/-/g, "+").replace(/_/g, "/"));
    let hex = "";
    for (let i = 0; i < bin.length; i++) hex += bin.charCodeAt(i).toString(16).padStart(2, "0");
    return hex;
  } catch {
    return "";
  }
}
