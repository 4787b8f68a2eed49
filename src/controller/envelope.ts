// The AuthContainer envelope of every EVE API v2 body (lf-edge/eve-api OBJECT-SIGNING, EVE's
// controllerconn/authen.go): the payload, the sha256 of the sender's certificate, and an ECDSA P-256 signature
// over sha256(payload) as r‖s, 32 bytes each (RSA PKCS#1 v1.5 is accepted from a controller too).
import { X509Certificate } from "node:crypto";
import { type AuthContainer, CommonHashAlgorithm as HashAlgorithm, decodeMessage, encodeMessage } from "../proto/index.ts";
import { DeviceIdentity, type SigningCert } from "./identity.ts";
import { P256_ECDSA } from "./x509.ts";

export const AUTH_CONTAINER = "org.lfedge.eve.auth.AuthContainer";

/** The controller's signing certificate, as it came in ZControllerCert. */
export interface ControllerSigner {
  /** The PEM bytes exactly as sent: the controller's cert hash is sha256 over these, not over the DER. */
  pem: Uint8Array;
  hash: Uint8Array;
  key: CryptoKey;
  subject: string;
}

export type EnvelopeFault = "malformed" | "algorithm" | "unknown-signer" | "bad-signature";

export class EnvelopeError extends Error {
  constructor(
    readonly fault: EnvelopeFault,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Wraps `payload` signed with `cert`. With `onboarding`, the onboarding certificate itself travels in
 * senderCert, base64 of its PEM (what EVE sends and Adam decodes), so the controller can look it up.
 */
export async function seal(payload: Uint8Array, cert: SigningCert, opts: { onboarding?: boolean } = {}): Promise<Uint8Array> {
  const container: AuthContainer = {
    protectedPayload: { payload },
    algo: HashAlgorithm.HASH_ALGORITHM_SHA256_32BYTES,
    senderCertHash: cert.hash,
    signatureHash: await DeviceIdentity.sign(cert, payload),
  };
  if (opts.onboarding) container.senderCert = new TextEncoder().encode(Buffer.from(cert.pem).toString("base64"));
  return encodeMessage(AUTH_CONTAINER, container);
}

/** Decodes an AuthContainer without checking it (GET /certs: its chain is verified instead, as EVE does). */
export function unwrap(bytes: Uint8Array): { container: AuthContainer; payload: Uint8Array } {
  let container: AuthContainer;
  try {
    container = decodeMessage<AuthContainer>(AUTH_CONTAINER, bytes);
  } catch (e) {
    throw new EnvelopeError("malformed", `malformed AuthContainer from the controller: ${(e as Error).message}`);
  }
  return { container, payload: container.protectedPayload?.payload ?? new Uint8Array(0) };
}

/** Decodes and verifies an AuthContainer signed by the controller; returns its payload. */
export async function open(bytes: Uint8Array, signer: ControllerSigner): Promise<Uint8Array> {
  const { container, payload } = unwrap(bytes);
  if (container.cipherData?.cipherData?.length) {
    throw new EnvelopeError("algorithm", "the controller sent an encrypted AuthContainer (cipherData); only the objects inside a config are encrypted for this device (EVE does not open an encrypted envelope either)");
  }
  const hash = container.senderCertHash ?? new Uint8Array(0);
  const algo = container.algo ?? HashAlgorithm.HASH_ALGORITHM_INVALID;
  if (algo === HashAlgorithm.HASH_ALGORITHM_SHA256_32BYTES) {
    if (hash.length !== 32) throw new EnvelopeError("algorithm", `senderCertHash is ${hash.length} bytes; SHA256_32BYTES needs 32`);
    if (!equal(hash, signer.hash)) throw unknownSigner(hash, signer);
  } else if (algo === HashAlgorithm.HASH_ALGORITHM_SHA256_16BYTES) {
    if (hash.length !== 16) throw new EnvelopeError("algorithm", `senderCertHash is ${hash.length} bytes; SHA256_16BYTES needs 16`);
    if (!equal(hash, signer.hash.subarray(0, 16))) throw unknownSigner(hash, signer);
  } else {
    throw new EnvelopeError("algorithm", `unsupported AuthContainer hash algorithm ${algo}`);
  }
  const signature = container.signatureHash ?? new Uint8Array(0);
  if (!(await verifySignature(signer.key, signature, payload))) {
    throw new EnvelopeError("bad-signature", `the controller's signature does not verify (signer ${signer.subject}): the message was altered or not signed by that certificate`);
  }
  return payload;
}

function unknownSigner(hash: Uint8Array, signer: ControllerSigner): EnvelopeError {
  return new EnvelopeError(
    "unknown-signer",
    `signed by an unknown certificate (hash ${Buffer.from(hash).toString("hex").slice(0, 16)}…; the known signing certificate is ${Buffer.from(signer.hash).toString("hex").slice(0, 16)}…)`,
  );
}

/** Imports the public key of a controller certificate for verification (ECDSA P-256 or RSA). */
export async function signerFromPem(pemBytes: Uint8Array): Promise<ControllerSigner> {
  const cert = new X509Certificate(Buffer.from(pemBytes));
  const spki = cert.publicKey.export({ type: "spki", format: "der" });
  const key =
    cert.publicKey.asymmetricKeyType === "rsa"
      ? await crypto.subtle.importKey("spki", spki, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["verify"])
      : await crypto.subtle.importKey("spki", spki, P256_ECDSA, false, ["verify"]);
  return {
    pem: pemBytes,
    hash: new Uint8Array(new Bun.CryptoHasher("sha256").update(pemBytes).digest()),
    key,
    subject: cert.subject.replace(/\n/g, ", "),
  };
}

async function verifySignature(key: CryptoKey, signature: Uint8Array, payload: Uint8Array): Promise<boolean> {
  if (key.algorithm.name === "RSASSA-PKCS1-v1_5") {
    return crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, signature as Uint8Array<ArrayBuffer>, payload as Uint8Array<ArrayBuffer>);
  }
  // EVE and Adam send r‖s; Adam also accepts ASN.1 DER, so a DER signature is converted rather than refused.
  const raw = signature.length === 64 ? signature : derToRaw(signature);
  if (!raw) return false;
  return crypto.subtle.verify(P256_ECDSA, key, raw as Uint8Array<ArrayBuffer>, payload as Uint8Array<ArrayBuffer>);
}

/** ECDSA-Sig-Value (SEQUENCE { r INTEGER, s INTEGER }) to r‖s; null when it is not one. */
export function derToRaw(der: Uint8Array): Uint8Array | null {
  if (der.length < 8 || der[0] !== 0x30) return null;
  let i = 2;
  if (der[1]! & 0x80) i = 2 + (der[1]! & 0x7f);
  const out = new Uint8Array(64);
  for (let part = 0; part < 2; part++) {
    if (der[i] !== 0x02) return null;
    const len = der[i + 1]!;
    let v = der.subarray(i + 2, i + 2 + len);
    while (v.length > 32 && v[0] === 0) v = v.subarray(1);
    if (v.length > 32) return null;
    out.set(v, part * 32 + (32 - v.length));
    i += 2 + len;
  }
  return out;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
