import { describe, expect, test } from "bun:test";
import { createCertificate, fingerprint, generateP256, verifyChain } from "./x509.ts";

async function ca(subject: string, issuer?: { cert: string; key: CryptoKey }, opts: { notAfter?: Date; ca?: boolean } = {}) {
  const keys = await generateP256();
  const cert = await createCertificate({ subject, publicKey: keys.publicKey, issuer, signingKey: issuer ? undefined : keys.privateKey, ca: opts.ca ?? true, notAfter: opts.notAfter });
  return { cert, key: keys.privateKey };
}

describe("verifyChain", () => {
  test("leaf → intermediate → root; refuses another root, a non-CA issuer, an expired link", async () => {
    const root = await ca("CN=root");
    const inter = await ca("CN=inter", root);
    const leaf = await ca("CN=leaf", inter, { ca: false });
    verifyChain(leaf.cert, [inter.cert], [root.cert]);
    const other = await ca("CN=root");
    expect(() => verifyChain(leaf.cert, [inter.cert], [other.cert])).toThrow(/no chain/);
    expect(() => verifyChain(leaf.cert, [], [root.cert])).toThrow(/no chain/);
    const notCa = await ca("CN=inter", root, { ca: false });
    const leaf2 = await ca("CN=leaf", notCa, { ca: false });
    expect(() => verifyChain(leaf2.cert, [notCa.cert], [root.cert])).toThrow(/no chain/);
    const expired = await ca("CN=leaf", inter, { ca: false, notAfter: new Date(Date.now() - 1000) });
    expect(() => verifyChain(expired.cert, [inter.cert], [root.cert])).toThrow(/expired/);
    verifyChain(expired.cert, [inter.cert], [root.cert], null); // a checkpoint is used whatever its age
  });

  test("fingerprint is the sha256 of the DER, colon-separated", async () => {
    const c = await ca("CN=x");
    expect(fingerprint(c.cert)).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });
});
