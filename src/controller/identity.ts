// The device's identity towards a controller, kept in config/ under EVE's own file names: a P-256 key and a
// self-signed device certificate, a soft serial, the hardware serial (DMI) when readable, and the onboarding
// certificate and key when the installer put them there.
import { chmodSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { certificateDer, createCertificate, fingerprint, generateP256, importPrivateKeyPem, P256_ECDSA, privateKeyToPem, sha256 } from "./x509.ts";

export const IDENTITY_FILES = {
  deviceCert: "device.cert.pem",
  deviceKey: "device.key.pem",
  onboardCert: "onboard.cert.pem",
  onboardKey: "onboard.key.pem",
  softSerial: "soft_serial",
  rootCert: "root-certificate.pem",
  server: "server",
} as const;

const DMI_SERIAL = "/sys/class/dmi/id/product_serial";
/** Values firmware vendors leave in the DMI serial field; they identify nothing. */
const PLACEHOLDER_SERIALS = /^(|0+|none|default string|to be filled by o\.e\.m\.|not specified|system serial number|not applicable|n\/a)$/i;

export interface SigningCert {
  pem: string;
  der: Uint8Array;
  /** sha256 of the DER: what EVE puts in AuthContainer.senderCertHash for its own certificates. */
  hash: Uint8Array;
  key: CryptoKey;
}

export class DeviceIdentity {
  private constructor(
    readonly configDir: string,
    readonly device: SigningCert,
    readonly onboard: SigningCert | null,
    readonly softSerial: string,
    readonly serial: string,
  ) {}

  /** Loads the identity from `configDir`, creating the key, certificate and soft serial on first start. */
  static async loadOrCreate(configDir: string, opts: { dmiSerialPath?: string } = {}): Promise<DeviceIdentity> {
    const path = (f: string) => join(configDir, f);
    let softSerial = readText(path(IDENTITY_FILES.softSerial));
    if (!softSerial) {
      softSerial = crypto.randomUUID();
      writePrivate(path(IDENTITY_FILES.softSerial), softSerial + "\n");
    }
    const serial = readSerial(opts.dmiSerialPath ?? DMI_SERIAL);

    let certPem = readText(path(IDENTITY_FILES.deviceCert));
    let keyPem = readText(path(IDENTITY_FILES.deviceKey));
    if (!certPem || !keyPem) {
      const keys = await generateP256();
      certPem = await createCertificate({
        subject: `CN=${softSerial}, O=evebox device`,
        publicKey: keys.publicKey,
        signingKey: keys.privateKey,
        clientAuth: true,
      });
      keyPem = await privateKeyToPem(keys.privateKey);
      writePrivate(path(IDENTITY_FILES.deviceKey), keyPem);
      writePrivate(path(IDENTITY_FILES.deviceCert), certPem);
    }
    for (const f of [IDENTITY_FILES.deviceKey, IDENTITY_FILES.deviceCert, IDENTITY_FILES.softSerial]) tighten(path(f));
    const device = await loadSigningCert(certPem, keyPem, "device");

    let onboard: SigningCert | null = null;
    const obCert = readText(path(IDENTITY_FILES.onboardCert));
    const obKey = readText(path(IDENTITY_FILES.onboardKey));
    if (obCert && obKey) {
      tighten(path(IDENTITY_FILES.onboardKey));
      onboard = await loadSigningCert(obCert, obKey, "onboarding");
    }
    return new DeviceIdentity(configDir, device, onboard, softSerial, serial);
  }

  get fingerprint(): string {
    return fingerprint(this.device.pem);
  }

  /** ECDSA P-256 over SHA-256 of `payload`, as r‖s (32 bytes each): the AuthContainer signature format. */
  static async sign(cert: SigningCert, payload: Uint8Array): Promise<Uint8Array> {
    return new Uint8Array(await crypto.subtle.sign(P256_ECDSA, cert.key, payload as Uint8Array<ArrayBuffer>));
  }
}

async function loadSigningCert(certPem: string, keyPem: string, what: string): Promise<SigningCert> {
  let der: Uint8Array;
  let key: CryptoKey;
  try {
    der = certificateDer(certPem);
    key = await importPrivateKeyPem(keyPem);
  } catch (e) {
    throw new Error(`the ${what} certificate or key in config/ is unreadable: ${(e as Error).message}`);
  }
  return { pem: certPem, der, hash: sha256(der), key };
}

function readText(path: string): string | null {
  try {
    const s = readFileSync(path, "utf8").trim();
    return s || null;
  } catch {
    return null;
  }
}

function readSerial(path: string): string {
  const s = readText(path) ?? "";
  return PLACEHOLDER_SERIALS.test(s) ? "" : s;
}

/** Writes a file only its owner can read, atomically (a crash leaves the old file or the new one). */
export function writePrivate(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode: 0o600 });
  chmodSync(tmp, 0o600); // the mode above applies only when the file is new
  renameSync(tmp, path);
}

function tighten(path: string): void {
  if (existsSync(path) && (statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
}
