// Bundle signatures: ed25519 (node:crypto) over bundle.json's exact bytes; the device trusts the public keys an
// admin added (table bundle_keys). A key is known by its id: the first 16 hex digits of the sha256 of its SPKI.
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";

export interface TrustedKey {
  id: string;
  name: string;
  publicKey: string;
}

export class KeyInvalid extends Error {
  override name = "KeyInvalid";
}

/** The public key's canonical PEM and id; refuses anything but an ed25519 public key. */
export function readPublicKey(pem: string): { id: string; pem: string; key: KeyObject } {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: "pem" });
  } catch (e) {
    throw new KeyInvalid(`not a public key in PEM form: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== "ed25519") throw new KeyInvalid(`an ${key.asymmetricKeyType} key: bundle signatures are ed25519`);
  const der = key.export({ type: "spki", format: "der" });
  return { id: createHash("sha256").update(der).digest("hex").slice(0, 16), pem: String(key.export({ type: "spki", format: "pem" })), key };
}

/** Signs `bytes` with an ed25519 private key (PKCS#8 PEM). */
export function signBytes(bytes: Uint8Array, privatePem: string): Uint8Array {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: privatePem, format: "pem" });
  } catch (e) {
    throw new KeyInvalid(`not a private key in PEM form: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== "ed25519") throw new KeyInvalid(`an ${key.asymmetricKeyType} key: bundle signatures are ed25519`);
  return new Uint8Array(sign(null, bytes, key));
}

/** The trusted key that made `signature` over `bytes`, or null. */
export function verifyBytes(bytes: Uint8Array, signature: Uint8Array, keys: TrustedKey[]): TrustedKey | null {
  for (const k of keys) {
    try {
      if (verify(null, bytes, createPublicKey({ key: k.publicKey, format: "pem" }), signature)) return k;
    } catch {}
  }
  return null;
}
