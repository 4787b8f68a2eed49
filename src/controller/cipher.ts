// Object-level encryption, the device's side (eve docs/OBJECT-LEVEL-ENCRYPTION.md, pkg/pillar/cipher and evetpm):
// the device's own ECDH key and certificate (config/ecdh.key.pem, ecdh.cert.pem: EVE's names; apart from the
// device key, signed by it), and the opening of a CipherBlock: Z = the device's ECDH key × the public key of the
// controller's ECDH certificate the block's context names; key = sha256(Zx ‖ Zy, each 32 bytes); AES-256-CFB with
// the block's initial value; the plaintext checked against clearTextSha256 and read as an EncryptionBlock.
// What is opened lives in memory only; an error says why, never what.
import { createDecipheriv, createHash, createPrivateKey, timingSafeEqual, X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { CipherBlockModel, CipherContextModel, OpenedBlock, SecretOpener } from "../config/cipher.ts";
import { decodeMessage, type EncryptionBlock } from "../proto/index.ts";
import type { ControllerCerts } from "./certs.ts";
import { type SigningCert, writePrivate } from "./identity.ts";
import { createCertificate, generateP256, privateKeyToPem } from "./x509.ts";

export const ECDH_FILES = { cert: "ecdh.cert.pem", key: "ecdh.key.pem" } as const;

/** The device's ECDH exchange certificate as it is sent (ZCert.cert: the file's bytes) and its key. */
export interface EcdhIdentity {
  /** The certificate file's bytes: what is sent and what its hash is over (as EVE's tpmmgr does). */
  cert: Uint8Array;
  /** sha256 of `cert`, whole; EVE sends its first 16 bytes (HASH_ALGORITHM_SHA256_16BYTES). */
  hash: Uint8Array;
  /** The private scalar (32 bytes). */
  privateKey: Uint8Array;
}

/** Loads config/ecdh.{key,cert}.pem, making them at first start: a P-256 key, its certificate signed by the device key. */
export async function loadOrCreateEcdh(configDir: string, device: SigningCert): Promise<EcdhIdentity> {
  const certPath = join(configDir, ECDH_FILES.cert);
  const keyPath = join(configDir, ECDH_FILES.key);
  if (!existsSync(certPath) || !existsSync(keyPath)) {
    const keys = await generateP256();
    const certPem = await createCertificate({ subject: "CN=Device ECDH certificate, O=evebox device", publicKey: keys.publicKey, issuer: { cert: device.pem, key: device.key } });
    writePrivate(keyPath, await privateKeyToPem(keys.privateKey));
    writePrivate(certPath, certPem);
  }
  const cert = new Uint8Array(readFileSync(certPath));
  let privateKey: Uint8Array;
  try {
    const jwk = createPrivateKey(readFileSync(keyPath, "utf8")).export({ format: "jwk" });
    if (jwk.crv !== "P-256" || !jwk.d) throw new Error("not a P-256 private key");
    privateKey = new Uint8Array(Buffer.from(jwk.d, "base64url"));
    new X509Certificate(cert);
  } catch (e) {
    throw new Error(`the ECDH certificate or key in config/ (${ECDH_FILES.cert}, ${ECDH_FILES.key}) is unreadable: ${(e as Error).message}`);
  }
  return { cert, hash: sha256(cert), privateKey };
}

export class CipherError extends Error {}

/** Opens the config's cipher blocks with the device's ECDH key and the controller's ECDH certificates. */
export class CipherOpener implements SecretOpener {
  constructor(
    private readonly ecdh: EcdhIdentity,
    private readonly certs: () => ControllerCerts | null,
    readonly epoch: () => number,
  ) {}

  async open(block: CipherBlockModel, ctx: CipherContextModel | null): Promise<OpenedBlock> {
    const clear = await this.openBytes(block, ctx);
    let eb: EncryptionBlock;
    try {
      eb = decodeMessage<EncryptionBlock>("org.lfedge.eve.common.EncryptionBlock", clear);
    } catch (e) {
      throw new CipherError(`the decrypted data is not an EncryptionBlock: ${(e as Error).message}`);
    }
    clear.fill(0);
    return { ...(eb.dsAPIKey ? { dsAPIKey: eb.dsAPIKey } : {}), ...(eb.dsPassword ? { dsPassword: eb.dsPassword } : {}), ...(eb.protectedUserData ? { protectedUserData: eb.protectedUserData } : {}) };
  }

  /** The block's plaintext, checked against its clearTextSha256 (the caller decodes it and wipes it). */
  async openBytes(block: CipherBlockModel, ctx: CipherContextModel | null): Promise<Uint8Array> {
    if (!ctx) throw new CipherError(`cipher context ${quote(block.contextId)} is not in the config's cipherContexts`);
    if (ctx.keyExchange !== "KEA_ECDH") throw new CipherError(`cipher context ${quote(ctx.id)}: key exchange ${ctx.keyExchange} is not supported (KEA_ECDH is)`);
    if (ctx.encryption !== "SA_AES_256_CFB") throw new CipherError(`cipher context ${quote(ctx.id)}: encryption ${ctx.encryption} is not supported (SA_AES_256_CFB is)`);
    if (!hashMatches(ctx.deviceCertHash, this.ecdh.hash)) {
      throw new CipherError(`cipher context ${quote(ctx.id)} is for device ECDH certificate ${ctx.deviceCertHash || "(none)"}, not this device's (${hex(this.ecdh.hash.subarray(0, 16))})`);
    }
    const certs = this.certs();
    if (!certs) throw new CipherError("the controller's certificates are not known yet");
    const peer = certs.ecdhCerts.find((c) => hashMatches(ctx.controllerCertHash, c.hash) || hashMatches(ctx.controllerCertHash, c.pemHash));
    if (!peer) throw new CipherError(`cipher context ${quote(ctx.id)} names controller certificate ${ctx.controllerCertHash || "(none)"}, which is not among the controller's ECDH certificates`);
    const iv = b64(block.initialValue);
    const data = b64(block.cipherData);
    const expected = b64(block.clearTextSha256);
    if (iv.length !== 16) throw new CipherError(`the block's initialValue is ${iv.length} bytes, not 16`);
    if (!data.length) throw new CipherError("the block has no cipherData");
    if (expected.length !== 32) throw new CipherError("the block has no clearTextSha256 to check the decryption against");
    let key: Uint8Array;
    try {
      const { p256 } = await import("@noble/curves/nist.js");
      // The whole point Z, not only its x: EVE's KDF hashes both coordinates.
      const z = p256.getSharedSecret(this.ecdh.privateKey, peer.publicKey, false);
      key = sha256(z.subarray(1, 65));
    } catch (e) {
      throw new CipherError(`ECDH with the controller's certificate failed: ${(e as Error).message}`);
    }
    const decipher = createDecipheriv("aes-256-cfb", key, iv);
    const clear = new Uint8Array(Buffer.concat([decipher.update(data), decipher.final()]));
    const got = sha256(clear);
    if (!timingSafeEqual(got, expected)) throw new CipherError("the decrypted data does not match the block's clearTextSha256 (another key, or a damaged block)");
    return clear;
  }
}

/** The uncompressed point (0x04 ‖ x ‖ y) of a certificate's P-256 public key. */
export function p256PublicPoint(certPem: string | Uint8Array): Uint8Array {
  const jwk = new X509Certificate(certPem).publicKey.export({ format: "jwk" });
  if (jwk.kty !== "EC" || jwk.crv !== "P-256" || !jwk.x || !jwk.y) throw new Error("not a P-256 public key");
  return new Uint8Array([4, ...Buffer.from(jwk.x, "base64url"), ...Buffer.from(jwk.y, "base64url")]);
}

/** A context's hash (hex, truncated per its hashScheme) against a full sha256. */
function hashMatches(given: string, full: Uint8Array): boolean {
  return given.length >= 32 && given.length % 2 === 0 && hex(full).startsWith(given.toLowerCase());
}

function sha256(b: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(b).digest());
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

function b64(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, "base64"));
}

function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}
