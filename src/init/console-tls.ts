// The console's TLS certificate on the device: the device's own key (config/device.key.pem, the identity the
// controller knows, see controller/identity.ts) in a self-signed certificate made for serving (serverAuth, the
// host name as subject alternative name) — the device certificate itself is a client certificate only, which
// browsers refuse for a server. Its SHA-256 fingerprint is what the physical console shows, so a person can
// check it against the browser's before typing a password.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { DeviceIdentity } from "../controller/identity.ts";
import { writePrivate } from "../controller/identity.ts";
import { X509Certificate } from "node:crypto";
import { createCertificate, fingerprint, P256_ECDSA } from "../controller/x509.ts";

export const CONSOLE_CERT_FILE = "console.cert.pem";

export interface ConsoleTls {
  cert: string;
  key: string;
  /** SHA-256 of the certificate, colon-separated hex (what browsers show). */
  fingerprint: string;
  created: boolean;
}

function spkiOf(certPem: string): Buffer {
  return new X509Certificate(certPem).publicKey.export({ type: "spki", format: "der" });
}

/** Loads config/console.cert.pem, or makes it when absent, for another key, another host name, or near expiry. */
export async function consoleTls(identity: DeviceIdentity, hostname: string): Promise<ConsoleTls> {
  const dir = identity.configDir;
  const certFile = join(dir, CONSOLE_CERT_FILE);
  const key = readFileSync(join(dir, "device.key.pem"), "utf8");
  const deviceSpki = spkiOf(identity.device.pem);
  if (existsSync(certFile)) {
    const cert = readFileSync(certFile, "utf8");
    try {
      const x = new X509Certificate(cert);
      const sameKey = spkiOf(cert).equals(deviceSpki);
      const fresh = new Date(x.validTo).getTime() > Date.now() + 30 * 86_400_000;
      if (sameKey && fresh && (x.subjectAltName ?? "").includes(`DNS:${hostname}`)) return { cert, key, fingerprint: fingerprint(cert), created: false };
    } catch {
      // unreadable: made again below
    }
  }
  const cert = await createCertificate({
    subject: `CN=${hostname}, O=evebox console`,
    // Extractable: the certificate's key identifier is a hash of the exported key.
    publicKey: await crypto.subtle.importKey("spki", new Uint8Array(deviceSpki), P256_ECDSA, true, ["verify"]),
    signingKey: identity.device.key,
    serverAuth: true,
    dnsNames: [hostname, `${hostname}.local`],
  });
  writePrivate(certFile, cert);
  return { cert, key, fingerprint: fingerprint(cert), created: true };
}
