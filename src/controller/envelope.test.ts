import { describe, expect, test } from "bun:test";
import { decodeMessage, encodeMessage, type AuthContainer } from "../proto/index.ts";
import { AUTH_CONTAINER, derToRaw, EnvelopeError, open, seal, signerFromPem } from "./envelope.ts";
import { certificateDer, createCertificate, generateP256, sha256 } from "./x509.ts";

async function signingCert() {
  const keys = await generateP256();
  const pem = await createCertificate({ subject: "CN=signer", publicKey: keys.publicKey, signingKey: keys.privateKey });
  const der = certificateDer(pem);
  return { pem, keys, cert: { pem, der, hash: sha256(der), key: keys.privateKey } };
}

describe("AuthContainer", () => {
  test("seal: SHA256_32BYTES, sha256 of the certificate DER, 64-byte r‖s signature; open verifies it", async () => {
    const s = await signingCert();
    const payload = new TextEncoder().encode("payload bytes");
    const bytes = await seal(payload, s.cert);
    const c = decodeMessage<AuthContainer>(AUTH_CONTAINER, bytes);
    expect(c.algo).toBe(2);
    expect(Buffer.from(c.senderCertHash!).equals(Buffer.from(sha256(s.cert.der)))).toBe(true);
    expect(c.signatureHash!.length).toBe(64);
    expect(c.senderCert).toBeUndefined();
    // The controller's cert hash is over the PEM bytes it sent: build a signer the same way.
    const signer = await signerFromPem(new TextEncoder().encode(s.pem));
    const asController = encodeMessage(AUTH_CONTAINER, { ...c, senderCertHash: signer.hash });
    expect(new TextDecoder().decode(await open(asController, signer))).toBe("payload bytes");
  });

  test("onboarding: senderCert is base64 of the PEM", async () => {
    const s = await signingCert();
    const c = decodeMessage<AuthContainer>(AUTH_CONTAINER, await seal(new Uint8Array([1]), s.cert, { onboarding: true }));
    expect(Buffer.from(new TextDecoder().decode(c.senderCert!), "base64").toString()).toBe(s.pem);
  });

  test("faults: altered payload, unknown signer, bad algorithm, malformed bytes", async () => {
    const s = await signingCert();
    const signer = await signerFromPem(new TextEncoder().encode(s.pem));
    const good = decodeMessage<AuthContainer>(AUTH_CONTAINER, await seal(new Uint8Array([1, 2, 3]), s.cert));
    good.senderCertHash = signer.hash;
    const fault = async (c: AuthContainer | Uint8Array) => {
      try {
        await open(c instanceof Uint8Array ? c : encodeMessage(AUTH_CONTAINER, c), signer);
      } catch (e) {
        return (e as EnvelopeError).fault;
      }
      return "accepted";
    };
    expect(await fault(good)).toBe("accepted");
    expect(await fault({ ...good, protectedPayload: { payload: new Uint8Array([1, 2, 4]) } })).toBe("bad-signature");
    expect(await fault({ ...good, senderCertHash: new Uint8Array(32) })).toBe("unknown-signer");
    expect(await fault({ ...good, algo: 1, senderCertHash: signer.hash.subarray(0, 16) })).toBe("accepted");
    expect(await fault({ ...good, algo: 0 })).toBe("algorithm");
    expect(await fault(new Uint8Array([0x0a, 0xff, 0xff]))).toBe("malformed");
  });

  test("an ASN.1 DER ECDSA signature is read as r‖s", () => {
    const r = new Uint8Array(32).fill(0x81);
    const s = new Uint8Array(32).fill(0x11);
    const der = new Uint8Array([0x30, 69, 0x02, 33, 0x00, ...r, 0x02, 32, ...s]);
    expect(Buffer.from(derToRaw(der)!).equals(Buffer.concat([r, s]))).toBe(true);
    expect(derToRaw(new Uint8Array([1, 2, 3]))).toBeNull();
  });
});
