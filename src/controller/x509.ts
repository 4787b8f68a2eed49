// X.509 for the controller link: P-256 keys, certificates (the device's self-signed one; whole CA chains in
// tests) and chain verification. Bun's node:crypto parses and verifies certificates but cannot create
// them, so creation goes through @peculiar/x509 over WebCrypto; verification uses node:crypto (native).
import { X509Certificate } from "node:crypto";

/** @peculiar/x509 loads only when a certificate is made (first start, tests): an ordinary start never pays for it. */
async function peculiar(): Promise<typeof import("@peculiar/x509")> {
  await import("reflect-metadata"); // @peculiar/x509 uses tsyringe, which needs the Reflect metadata API
  return import("@peculiar/x509");
}

export const P256_ECDSA = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

export async function generateP256(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(P256_ECDSA, true, ["sign", "verify"])) as CryptoKeyPair;
}

export interface CertificateSpec {
  /** e.g. "CN=evebox device, O=evebox" */
  subject: string;
  publicKey: CryptoKey;
  /** The signer; omit for a self-signed certificate (then `signingKey` is the subject's own private key). */
  issuer?: { cert: string; key: CryptoKey };
  signingKey?: CryptoKey;
  ca?: boolean;
  pathLength?: number;
  notBefore?: Date;
  notAfter?: Date;
  /** Subject alternative names: IP addresses and DNS names (for TLS server certificates). */
  ips?: string[];
  dnsNames?: string[];
  serverAuth?: boolean;
  clientAuth?: boolean;
}

/** Creates a certificate (PEM). Serial numbers are random, 16 bytes, positive. */
export async function createCertificate(spec: CertificateSpec): Promise<string> {
  const x509 = await peculiar();
  const notBefore = spec.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = spec.notAfter ?? new Date(notBefore.getTime() + 20 * 365 * 86_400_000);
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0]! &= 0x7f;
  serial[0]! |= 0x01;
  const extensions: import("@peculiar/x509").Extension[] = [
    new x509.BasicConstraintsExtension(!!spec.ca, spec.ca ? spec.pathLength : undefined, true),
    new x509.KeyUsagesExtension(
      spec.ca
        ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature
        : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
      true,
    ),
    await x509.SubjectKeyIdentifierExtension.create(spec.publicKey),
  ];
  const eku: string[] = [];
  if (spec.serverAuth) eku.push(x509.ExtendedKeyUsage.serverAuth);
  if (spec.clientAuth) eku.push(x509.ExtendedKeyUsage.clientAuth);
  if (eku.length) extensions.push(new x509.ExtendedKeyUsageExtension(eku));
  const names = [...(spec.ips ?? []).map((v) => ({ type: "ip" as const, value: v })), ...(spec.dnsNames ?? []).map((v) => ({ type: "dns" as const, value: v }))];
  if (names.length) extensions.push(new x509.SubjectAlternativeNameExtension(names));
  const serialNumber = Buffer.from(serial).toString("hex");
  if (!spec.issuer) {
    if (!spec.signingKey) throw new Error("createCertificate: a self-signed certificate needs signingKey (its own private key)");
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber,
      subject: spec.subject,
      issuer: spec.subject,
      notBefore,
      notAfter,
      signingAlgorithm: P256_ECDSA,
      publicKey: spec.publicKey,
      signingKey: spec.signingKey,
      extensions,
    });
    return cert.toString("pem") + "\n";
  }
  const issuerCert = new x509.X509Certificate(spec.issuer.cert);
  extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuerCert));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber,
    subject: spec.subject,
    issuer: issuerCert.subject,
    notBefore,
    notAfter,
    signingAlgorithm: P256_ECDSA,
    publicKey: spec.publicKey,
    signingKey: spec.issuer.key,
    extensions,
  });
  return cert.toString("pem") + "\n";
}

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = new Uint8Array(await crypto.subtle.exportKey("pkcs8", key));
  return toPem("PRIVATE KEY", der);
}

/** Imports a PKCS#8 P-256 private key (PEM) for signing. "EC PRIVATE KEY" (SEC1) is converted by node:crypto. */
export async function importPrivateKeyPem(pem: string): Promise<CryptoKey> {
  let der: Uint8Array;
  if (pem.includes("BEGIN EC PRIVATE KEY")) {
    const { createPrivateKey } = await import("node:crypto");
    der = new Uint8Array(createPrivateKey(pem).export({ type: "pkcs8", format: "der" }));
  } else {
    const block = pemBlocks(pem, "PRIVATE KEY")[0];
    if (!block) throw new Error("no PRIVATE KEY block in the PEM text");
    der = block;
  }
  return crypto.subtle.importKey("pkcs8", der as Uint8Array<ArrayBuffer>, P256_ECDSA, false, ["sign"]);
}

/** The public key of a certificate, for ECDSA P-256 verification. */
export async function certificatePublicKey(certPem: string): Promise<CryptoKey> {
  const c = new X509Certificate(certPem);
  const spki = c.publicKey.export({ type: "spki", format: "der" });
  return crypto.subtle.importKey("spki", spki, P256_ECDSA, false, ["verify"]);
}

export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64");
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}

/** The DER bytes of every PEM block with this label, in order. */
export function pemBlocks(text: string, label = "CERTIFICATE"): Uint8Array[] {
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`, "g");
  const out: Uint8Array[] = [];
  for (const m of text.matchAll(re)) out.push(new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ""), "base64")));
  return out;
}

/** Each certificate of a PEM bundle as its own PEM text. */
export function splitPemCertificates(text: string): string[] {
  return pemBlocks(text).map((der) => toPem("CERTIFICATE", der));
}

export function certificateDer(certPem: string): Uint8Array {
  const der = pemBlocks(certPem)[0];
  if (!der) throw new Error("no CERTIFICATE block in the PEM text");
  return der;
}

export function sha256(bytes: Uint8Array | string): Uint8Array {
  return new Uint8Array(new Bun.CryptoHasher("sha256").update(bytes).digest());
}

/** "AB:CD:…" sha256 fingerprint of a certificate's DER, as browsers and openssl show it. */
export function fingerprint(certPem: string): string {
  return Buffer.from(sha256(certificateDer(certPem))).toString("hex").toUpperCase().match(/../g)!.join(":");
}

export class ChainError extends Error {}

/**
 * Verifies that `leafPem` chains through `intermediates` to one of `roots` (the only trust anchors): each link
 * by subject/issuer name and signature, every issuer a CA, and, when `at` is given, every certificate valid then.
 */
export function verifyChain(leafPem: string, intermediates: string[], roots: string[], at: Date | null = new Date()): void {
  const leaf = parse(leafPem, "the certificate");
  const inter = intermediates.map((p, i) => parse(p, `intermediate certificate ${i + 1}`));
  const anchors = roots.map((p, i) => parse(p, `root certificate ${i + 1}`));
  if (anchors.length === 0) throw new ChainError("no root certificate to verify against");
  const checkTime = (c: X509Certificate, what: string) => {
    if (!at) return;
    if (at < new Date(c.validFrom)) throw new ChainError(`${what} (${c.subject.replace(/\n/g, ", ")}) is not valid before ${c.validFrom}`);
    if (at > new Date(c.validTo)) throw new ChainError(`${what} (${c.subject.replace(/\n/g, ", ")}) expired on ${c.validTo}`);
  };
  checkTime(leaf, "the certificate");
  let current = leaf;
  for (let depth = 0; depth < 8; depth++) {
    const root = anchors.find((r) => current.checkIssued(r) && current.verify(r.publicKey));
    if (root) {
      checkTime(root, "the root certificate");
      return;
    }
    if (anchors.some((r) => r.fingerprint256 === current.fingerprint256)) return; // the leaf is itself a trust anchor
    const next = inter.find((c) => c !== current && c.ca && current.checkIssued(c) && current.verify(c.publicKey));
    if (!next) {
      throw new ChainError(
        `no chain from ${describe(current)} to the trusted root (${anchors.map(describe).join("; ")}): issuer ${current.issuer.replace(/\n/g, ", ")} not found or its signature does not verify`,
      );
    }
    checkTime(next, "an intermediate certificate");
    current = next;
  }
  throw new ChainError("certificate chain longer than 8");
}

function parse(pem: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (e) {
    throw new ChainError(`${what} is not a valid X.509 certificate: ${(e as Error).message}`);
  }
}

function describe(c: X509Certificate): string {
  return c.subject.replace(/\n/g, ", ");
}
