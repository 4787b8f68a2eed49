// The metadata server's signer (/eve/v1/tpm/signer) signs with the device's own key, as EVE without a TPM does: the
// AuthContainer verifies against the device certificate, in local mode too (no controller link loaded).
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AUTH_CONTAINER, open, signerFromPem } from "../controller/envelope.ts";
import { DeviceIdentity } from "../controller/identity.ts";
import { decodeMessage, encodeMessage, type AuthContainer } from "../proto/index.ts";
import { ControllerPart } from "./controller.ts";

const dir = mkdtempSync(join(tmpdir(), "evebox-sign-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("signForApp: an AuthContainer of the payload, signed by the device certificate (local mode)", async () => {
  const part = new ControllerPart({ configDir: dir, url: null, hint: null } as never);
  const payload = new TextEncoder().encode("app data to attest");
  const signed = await part.signForApp(payload);
  const c = decodeMessage<AuthContainer>(AUTH_CONTAINER, signed);
  const identity = await DeviceIdentity.loadOrCreate(dir);
  expect(Buffer.from(c.senderCertHash!).equals(Buffer.from(identity.device.hash))).toBe(true);
  // Verified as a receiver would, with the device certificate.
  const signer = await signerFromPem(new TextEncoder().encode(identity.device.pem));
  expect(new TextDecoder().decode(await open(encodeMessage(AUTH_CONTAINER, { ...c, senderCertHash: signer.hash }), signer))).toBe("app data to attest");
  // Another payload's signature does not verify for this one.
  const other = decodeMessage<AuthContainer>(AUTH_CONTAINER, await part.signForApp(new TextEncoder().encode("other")));
  await expect(open(encodeMessage(AUTH_CONTAINER, { ...c, senderCertHash: signer.hash, signatureHash: other.signatureHash }), signer)).rejects.toThrow();
});
