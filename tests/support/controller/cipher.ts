// The controller's side of EVE's object-level encryption, as a controller does it: with its own ECDH certificate's
// key and the device's ECDH certificate (received with ATTEST_REQ_CERT), Z = key × device point, AES key =
// sha256(Zx ‖ Zy), AES-256-CFB with a random 16-byte initial value; the CipherContext names both certificates by
// the first 16 bytes of sha256 of their PEM as exchanged.
import { createCipheriv, createHash, createPrivateKey, randomBytes } from "node:crypto";
import { p256 } from "@noble/curves/nist.js";
import { p256PublicPoint } from "../../../src/controller/cipher.ts";
import { CommonHashAlgorithm, encodeMessage, type EncryptionBlock } from "../../../src/proto/index.ts";

export interface Encrypted {
  /** The `cipherContexts` entry (proto3 JSON shape: bytes as base64). */
  context: Record<string, unknown>;
  /** The `cipherData` CipherBlock (proto3 JSON shape). */
  block: Record<string, unknown>;
}

const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest();

/**
 * Encrypts `plain` for a device. `tamper` makes a block a device must refuse: `hash` (clearTextSha256 of other
 * data), `device` (a context naming another device certificate), `controller` (an unknown controller certificate).
 */
export function encryptFor(opts: {
  controllerEcdhKeyPem: string;
  controllerEcdhCertPem: string;
  deviceEcdhCert: Uint8Array;
  plain: EncryptionBlock | Record<string, unknown>;
  /** The plaintext's message type, when it is not an EncryptionBlock (a patch envelope's InlineOpaqueBase64Data). */
  type?: string;
  contextId?: string;
  tamper?: "hash" | "device" | "controller";
}): Encrypted {
  const d = createPrivateKey(opts.controllerEcdhKeyPem).export({ format: "jwk" }).d!;
  const z = p256.getSharedSecret(Buffer.from(d, "base64url"), p256PublicPoint(opts.deviceEcdhCert), false);
  const key = sha(z.subarray(1, 65));
  const iv = randomBytes(16);
  const clear = encodeMessage(opts.type ?? "org.lfedge.eve.common.EncryptionBlock", opts.plain);
  const c = createCipheriv("aes-256-cfb", key, iv);
  const data = Buffer.concat([c.update(clear), c.final()]);
  const contextId = opts.contextId ?? crypto.randomUUID();
  const controllerHash = opts.tamper === "controller" ? randomBytes(16) : sha(new TextEncoder().encode(opts.controllerEcdhCertPem.trim())).subarray(0, 16);
  const deviceHash = opts.tamper === "device" ? randomBytes(16) : sha(opts.deviceEcdhCert).subarray(0, 16);
  return {
    context: {
      contextId,
      hashScheme: CommonHashAlgorithm[CommonHashAlgorithm.HASH_ALGORITHM_SHA256_16BYTES],
      keyExchangeScheme: "KEA_ECDH",
      encryptionScheme: "SA_AES_256_CFB",
      deviceCertHash: deviceHash.toString("base64"),
      controllerCertHash: controllerHash.toString("base64"),
    },
    block: {
      cipherContextId: contextId,
      initialValue: iv.toString("base64"),
      cipherData: data.toString("base64"),
      clearTextSha256: sha(opts.tamper === "hash" ? Buffer.concat([clear, Buffer.from([0])]) : clear).toString("base64"),
    },
  };
}
