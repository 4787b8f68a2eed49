// A controller's certificate world, made fresh for each test run: a root CA (what the device trusts, its
// config/root-certificate.pem), an intermediate, the signing and ECDH leaves under it, a TLS server certificate
// for 127.0.0.1, an onboarding certificate, and a look-alike chain from another root for the "wrong chain" cases.
import { createCertificate, generateP256, privateKeyToPem } from "../../../src/controller/x509.ts";

export interface Issued {
  cert: string;
  keys: CryptoKeyPair;
  keyPem: string;
}

export interface ControllerPki {
  root: Issued;
  intermediate: Issued;
  signing: Issued;
  ecdh: Issued;
  tls: Issued;
  onboarding: Issued;
  /** A second, untrusted world: same names, another root. */
  rogueRoot: Issued;
  rogueSigning: Issued;
  rogueIntermediate: Issued;
}

async function issue(subject: string, issuer: Issued | null, opts: { ca?: boolean; ips?: string[]; serverAuth?: boolean; clientAuth?: boolean; notAfter?: Date; notBefore?: Date } = {}): Promise<Issued> {
  const keys = await generateP256();
  const cert = await createCertificate({
    subject,
    publicKey: keys.publicKey,
    issuer: issuer ? { cert: issuer.cert, key: issuer.keys.privateKey } : undefined,
    signingKey: issuer ? undefined : keys.privateKey,
    ca: opts.ca,
    ips: opts.ips,
    serverAuth: opts.serverAuth,
    clientAuth: opts.clientAuth,
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
  });
  return { cert, keys, keyPem: await privateKeyToPem(keys.privateKey) };
}

/** `tlsIps`: the addresses the controller's TLS certificate is for (a QEMU guest reaches the host as 10.0.2.2). */
export async function makeControllerPki(opts: { tlsIps?: string[] } = {}): Promise<ControllerPki> {
  const root = await issue("CN=Test Controller Root CA, O=evebox tests", null, { ca: true });
  const intermediate = await issue("CN=Test Controller Intermediate CA, O=evebox tests", root, { ca: true });
  const signing = await issue("CN=controller signing, O=evebox tests", intermediate);
  const ecdh = await issue("CN=controller ecdh, O=evebox tests", intermediate);
  const tls = await issue("CN=127.0.0.1, O=evebox tests", root, { ips: opts.tlsIps ?? ["127.0.0.1"], serverAuth: true });
  const onboarding = await issue("CN=onboarding, O=evebox tests", null, { clientAuth: true });
  const rogueRoot = await issue("CN=Test Controller Root CA, O=evebox tests", null, { ca: true });
  const rogueIntermediate = await issue("CN=Test Controller Intermediate CA, O=evebox tests", rogueRoot, { ca: true });
  const rogueSigning = await issue("CN=controller signing, O=evebox tests", rogueIntermediate);
  return { root, intermediate, signing, ecdh, tls, onboarding, rogueRoot, rogueSigning, rogueIntermediate };
}

export { issue };
