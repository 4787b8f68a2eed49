// The controller's certificates (GET /certs → ZControllerCert): exactly one signing certificate, intermediates,
// ECDH certificates. Every leaf must chain to config/root-certificate.pem; the set is checkpointed in
// persist/checkpoint/controllercerts (EVE's name and format: the ZControllerCert bytes).
import { decodeMessage, type ZControllerCert, ZCertType } from "../proto/index.ts";
import { p256PublicPoint } from "./cipher.ts";
import { type ControllerSigner, signerFromPem } from "./envelope.ts";
import { ChainError, sha256, splitPemCertificates, verifyChain } from "./x509.ts";

export const Z_CONTROLLER_CERT = "org.lfedge.eve.certs.ZControllerCert";

export interface ControllerCerts {
  /** ZControllerCert bytes, as checkpointed. */
  raw: Uint8Array;
  signer: ControllerSigner;
  ecdh: number;
  /** The ECDH exchange certificates (what cipher contexts name): the hash the controller sent, sha256 of the PEM, the P-256 point. */
  ecdhCerts: { hash: Uint8Array; pemHash: Uint8Array; pem: Uint8Array; publicKey: Uint8Array }[];
  intermediates: number;
}

/**
 * Decodes a ZControllerCert and verifies it against the root certificates. `at` null skips validity
 * periods: a checkpointed set is used at boot whatever its age, as the config it signed is.
 */
export async function verifyControllerCerts(raw: Uint8Array, rootPem: string, at: Date | null = new Date()): Promise<ControllerCerts> {
  let msg: ZControllerCert;
  try {
    msg = decodeMessage<ZControllerCert>(Z_CONTROLLER_CERT, raw);
  } catch (e) {
    throw new ChainError(`malformed ZControllerCert from the controller: ${(e as Error).message}`);
  }
  const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b ?? new Uint8Array(0));
  const intermediates: string[] = [];
  const leaves: { type: ZCertType; pem: Uint8Array; hash: Uint8Array }[] = [];
  for (const c of msg.certs ?? []) {
    const type = c.type ?? ZCertType.CERT_TYPE_CONTROLLER_NONE;
    if (type === ZCertType.CERT_TYPE_CONTROLLER_INTERMEDIATE) intermediates.push(...splitPemCertificates(text(c.cert)));
    else if (type === ZCertType.CERT_TYPE_CONTROLLER_SIGNING || type === ZCertType.CERT_TYPE_CONTROLLER_ECDH_EXCHANGE) leaves.push({ type, pem: c.cert ?? new Uint8Array(0), hash: c.certHash ?? new Uint8Array(0) });
    else throw new ChainError(`unknown certificate type ${type} in the controller's certificates`);
  }
  const signing = leaves.filter((l) => l.type === ZCertType.CERT_TYPE_CONTROLLER_SIGNING);
  if (signing.length !== 1) throw new ChainError(`the controller sent ${signing.length} signing certificates; exactly one is needed`);
  const roots = splitPemCertificates(rootPem);
  for (const leaf of leaves) {
    const what = leaf.type === ZCertType.CERT_TYPE_CONTROLLER_SIGNING ? "signing" : "ECDH";
    try {
      verifyChain(text(leaf.pem), intermediates, roots, at);
    } catch (e) {
      throw new ChainError(`the controller's ${what} certificate does not chain to config/root-certificate.pem: ${(e as Error).message}`);
    }
  }
  let signer: ControllerSigner;
  try {
    signer = await signerFromPem(signing[0]!.pem);
  } catch (e) {
    throw new ChainError(`the controller's signing certificate is unusable: ${(e as Error).message}`);
  }
  const ecdhCerts: ControllerCerts["ecdhCerts"] = [];
  for (const leaf of leaves) {
    if (leaf.type !== ZCertType.CERT_TYPE_CONTROLLER_ECDH_EXCHANGE) continue;
    try {
      ecdhCerts.push({ hash: leaf.hash, pemHash: sha256(leaf.pem), pem: leaf.pem, publicKey: p256PublicPoint(leaf.pem) });
    } catch {
      // Not P-256: a block under it says that its certificate is not usable (not found among the usable ones).
    }
  }
  return { raw, signer, ecdh: leaves.length - 1, ecdhCerts, intermediates: intermediates.length };
}
