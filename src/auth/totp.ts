// The second factor: TOTP (RFC 6238: HMAC-SHA1, 6 digits, 30 s) through `otpauth`, its QR code for enrolment as SVG
// through `uqr` (made on the device: nothing from a CDN), and one-time recovery codes (only their sha256 is kept).
// Both load on the first second-factor operation, not at every start (most devices have no user with TOTP:
// ~2 ms of the compiled binary's start-up, more from source).
let otp: typeof import("otpauth") | null = null;
const otpauth = () => (otp ??= require("otpauth") as typeof import("otpauth"));

export const TOTP_PERIOD_S = 30;
export const RECOVERY_CODES = 10;

/** A new random secret, base32 (160 bits, as RFC 4226 recommends). */
export function newTotpSecret(): string {
  const { Secret } = otpauth();
  return new Secret({ size: 20 }).base32;
}

function totp(secret: string, user: string, issuer: string): import("otpauth").TOTP {
  const { Secret, TOTP } = otpauth();
  return new TOTP({ issuer, label: user, algorithm: "SHA1", digits: 6, period: TOTP_PERIOD_S, secret: Secret.fromBase32(secret) });
}

/** What an authenticator app scans: the otpauth:// URI, and it as a QR code in SVG. */
export function enrolment(secret: string, user: string, issuer: string): { secret: string; uri: string; qrSvg: string } {
  const uri = totp(secret, user, issuer).toString();
  const { renderSVG } = require("uqr") as typeof import("uqr");
  return { secret, uri, qrSvg: renderSVG(uri, { border: 2, ecc: "M" }) };
}

/**
 * The time step a code belongs to (±1 step of clock drift), or null for a wrong code. A step at or before
 * `lastStep` is refused: each code is good once.
 */
export function totpStep(secret: string, code: string, lastStep: number | null, now = Date.now()): number | null {
  if (!/^\d{6}$/.test(code)) return null;
  const { Secret, TOTP } = otpauth();
  const delta = TOTP.validate({ token: code, secret: Secret.fromBase32(secret), algorithm: "SHA1", digits: 6, period: TOTP_PERIOD_S, timestamp: now, window: 1 });
  if (delta === null) return null;
  const step = Math.floor(now / 1000 / TOTP_PERIOD_S) + delta;
  if (lastStep !== null && step <= lastStep) return null;
  return step;
}

/** The code of a secret at a time (for tests, and for a person checking their app). */
export function totpCode(secret: string, now = Date.now()): string {
  const { Secret, TOTP } = otpauth();
  return TOTP.generate({ secret: Secret.fromBase32(secret), algorithm: "SHA1", digits: 6, period: TOTP_PERIOD_S, timestamp: now });
}

const RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"; // no 0/o, 1/l/i

/** Ten codes of 12 characters (~59 bits each), shown once, as `xxxx-xxxx-xxxx`. */
export function newRecoveryCodes(): string[] {
  return Array.from({ length: RECOVERY_CODES }, () => {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    const s = [...bytes].map((b) => RECOVERY_ALPHABET[b % RECOVERY_ALPHABET.length]).join("");
    return `${s.slice(0, 4)}-${s.slice(4, 8)}-${s.slice(8)}`;
  });
}

/** How a recovery code is kept and compared: normalised (case, dashes, spaces), then sha256. */
export function recoveryHash(code: string): string {
  return new Bun.CryptoHasher("sha256").update(code.toLowerCase().replace(/[^a-z0-9]/g, "")).digest("hex");
}
