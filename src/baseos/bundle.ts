// The update file ("bundle"): one file an operator can carry on a USB stick or upload in the console.
//
//   [ squashfs (payload) ][ manifest JSON ][ Ed25519 signature over the manifest bytes ][ footer, 32 bytes ]
//
// footer (little endian): magic "EBXUPD01" (8) · manifest length u32 · signature length u32 ·
//                         payload length u64 · magic "EBXUPD01" (8)
// The manifest names the payload's length and sha256, so the signature covers the whole file. The squashfs
// superblock's bytes_used tells the kernel and GRUB where the file system ends, so the whole file can be written
// raw to a slot partition: the trailer after the payload is never read by them.
import { closeSync, openSync, readSync, fstatSync } from "node:fs";
import { createHash } from "node:crypto";
import { DomainError } from "../model/errors.ts";

export const BUNDLE_FORMAT = "evebox-update/1";
export const FOOTER_MAGIC = "EBXUPD01";
export const FOOTER_BYTES = 32;
const MAX_MANIFEST = 64 * 1024;
const MAX_SIGNATURE = 1024;
const SQUASHFS_MAGIC = 0x73717368; // "hsqs" little endian

export interface BundleManifest {
  format: string;
  /** The image's release version (what /etc/evebox/release.json says inside). */
  version: string;
  board: string;
  arch: string;
  squashfs: { bytes: number; sha256: string };
  buildTime: string;
  /** sha256 (hex, first 16) of the signing key's SPKI: which vendor key signed it. */
  keyId: string;
}

export interface BundleLayout {
  fileBytes: number;
  payloadBytes: number;
  manifestOffset: number;
  manifestBytes: number;
  signatureBytes: number;
}

/** A refusal: the bundle is not usable; `message` says why, for the API answer, the status and the history. */
export class BundleError extends DomainError {
  constructor(message: string) {
    super("invalid", message);
  }
}

export function encodeFooter(manifestBytes: number, signatureBytes: number, payloadBytes: number): Uint8Array {
  const b = Buffer.alloc(FOOTER_BYTES);
  b.write(FOOTER_MAGIC, 0, "latin1");
  b.writeUInt32LE(manifestBytes, 8);
  b.writeUInt32LE(signatureBytes, 12);
  b.writeBigUInt64LE(BigInt(payloadBytes), 16);
  b.write(FOOTER_MAGIC, 24, "latin1");
  return b;
}

/** Checks the footer against the file's size; the layout of the parts. */
export function parseFooter(footer: Uint8Array, fileBytes: number): BundleLayout {
  if (fileBytes < FOOTER_BYTES) throw new BundleError(`not an evebox update: ${fileBytes} bytes is shorter than the footer`);
  const b = Buffer.from(footer.buffer, footer.byteOffset, footer.byteLength);
  if (b.toString("latin1", 0, 8) !== FOOTER_MAGIC || b.toString("latin1", 24, 32) !== FOOTER_MAGIC) {
    throw new BundleError("not an evebox update (no update footer at the end of the file: truncated, or another kind of file)");
  }
  const manifestBytes = b.readUInt32LE(8);
  const signatureBytes = b.readUInt32LE(12);
  const payload = b.readBigUInt64LE(16);
  if (manifestBytes === 0 || manifestBytes > MAX_MANIFEST) throw new BundleError(`update footer: manifest length ${manifestBytes} out of range`);
  if (signatureBytes === 0 || signatureBytes > MAX_SIGNATURE) throw new BundleError(`update footer: signature length ${signatureBytes} out of range`);
  const expected = payload + BigInt(manifestBytes + signatureBytes + FOOTER_BYTES);
  if (expected !== BigInt(fileBytes)) {
    throw new BundleError(`update file is ${fileBytes} bytes but its footer describes ${expected} bytes (truncated or padded)`);
  }
  const payloadBytes = Number(payload);
  return { fileBytes, payloadBytes, manifestOffset: payloadBytes, manifestBytes, signatureBytes };
}

export function parseManifest(bytes: Uint8Array): BundleManifest {
  let m: any;
  try {
    m = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new BundleError("update manifest is not JSON");
  }
  const str = (v: unknown) => typeof v === "string" && v.length > 0 && v.length < 256;
  if (!m || typeof m !== "object") throw new BundleError("update manifest is not a JSON object");
  if (m.format !== BUNDLE_FORMAT) throw new BundleError(`update manifest: format ${JSON.stringify(m.format)} is not ${BUNDLE_FORMAT}`);
  for (const k of ["version", "board", "arch", "buildTime", "keyId"]) if (!str(m[k])) throw new BundleError(`update manifest: ${k} missing`);
  if (!m.squashfs || !Number.isSafeInteger(m.squashfs.bytes) || m.squashfs.bytes <= 0 || !/^[0-9a-f]{64}$/.test(m.squashfs.sha256 ?? "")) {
    throw new BundleError("update manifest: squashfs {bytes, sha256} missing or malformed");
  }
  return {
    format: m.format,
    version: m.version,
    board: m.board,
    arch: m.arch,
    squashfs: { bytes: m.squashfs.bytes, sha256: m.squashfs.sha256 },
    buildTime: m.buildTime,
    keyId: m.keyId,
  };
}

// ---- keys

export interface VendorKey {
  id: string;
  name: string;
  key: CryptoKey;
}

function pemBody(pem: string, label: string): Uint8Array {
  const m = pem.match(new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`));
  if (!m) throw new BundleError(`not a PEM ${label}`);
  return Buffer.from(m[1]!.replace(/\s+/g, ""), "base64");
}

export function keyIdOf(spki: Uint8Array): string {
  return createHash("sha256").update(spki).digest("hex").slice(0, 16);
}

export async function importPublicKey(pem: string, name = "vendor"): Promise<VendorKey> {
  const spki = pemBody(pem, "PUBLIC KEY");
  const key = await crypto.subtle.importKey("spki", spki as Uint8Array<ArrayBuffer>, { name: "Ed25519" }, true, ["verify"]);
  return { id: keyIdOf(spki), name, key };
}

export async function importPrivateKey(pem: string): Promise<{ key: CryptoKey; id: string; publicPem: string }> {
  const pkcs8 = pemBody(pem, "PRIVATE KEY");
  const key = await crypto.subtle.importKey("pkcs8", pkcs8 as Uint8Array<ArrayBuffer>, { name: "Ed25519" }, true, ["sign"]);
  // The public half: WebCrypto exports it from the private key's JWK (x).
  const jwk = await crypto.subtle.exportKey("jwk", key);
  const pub = await crypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: jwk.x }, { name: "Ed25519" }, true, ["verify"]);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pub));
  return { key, id: keyIdOf(spki), publicPem: toPem(spki, "PUBLIC KEY") };
}

export function toPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}

export async function generateKeyPair(): Promise<{ privatePem: string; publicPem: string; id: string }> {
  const k = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", k.privateKey));
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", k.publicKey));
  return { privatePem: toPem(pkcs8, "PRIVATE KEY"), publicPem: toPem(spki, "PUBLIC KEY"), id: keyIdOf(spki) };
}

// ---- reading and verifying a bundle file (streamed: never the whole file in memory)

function readAt(fd: number, offset: number, length: number): Uint8Array {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, offset + got);
    if (n <= 0) throw new BundleError(`update file ended early (read ${got} of ${length} bytes at ${offset})`);
    got += n;
  }
  return buf;
}

/** sha256 of bytes [offset, offset+length) of an open file, in 4 MiB reads; `progress` gets the bytes done. */
export function sha256Range(fd: number, offset: number, length: number, progress?: (done: number) => void): string {
  const h = createHash("sha256");
  const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, length - done), offset + done);
    if (n <= 0) throw new BundleError(`read ended early at ${offset + done} (${done} of ${length} bytes)`);
    h.update(buf.subarray(0, n));
    done += n;
    progress?.(done);
  }
  return h.digest("hex");
}

export interface VerifiedBundle {
  manifest: BundleManifest;
  layout: BundleLayout;
  key: { id: string; name: string };
}

/** The layout, manifest and signature of a bundle file (no payload hash yet: that is a long read). */
export async function readBundleHead(path: string, keys: VendorKey[]): Promise<VerifiedBundle> {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    if (size < FOOTER_BYTES) throw new BundleError(`not an evebox update: ${size} bytes is shorter than the footer`);
    const layout = parseFooter(readAt(fd, size - FOOTER_BYTES, FOOTER_BYTES), size);
    const manifestBytes = readAt(fd, layout.manifestOffset, layout.manifestBytes);
    const signature = readAt(fd, layout.manifestOffset + layout.manifestBytes, layout.signatureBytes);
    const manifest = parseManifest(manifestBytes);
    if (!keys.length) throw new BundleError("this image has no vendor keys (/etc/evebox/vendor-keys): no update can be verified");
    let signer: VendorKey | null = null;
    for (const k of keys) {
      const ok = await crypto.subtle.verify({ name: "Ed25519" }, k.key, signature as Uint8Array<ArrayBuffer>, manifestBytes as Uint8Array<ArrayBuffer>).catch(() => false);
      if (ok) {
        signer = k;
        break;
      }
    }
    if (!signer) {
      throw new BundleError(`bad signature: the manifest is not signed by a vendor key of this image (it names key ${manifest.keyId}; this image trusts ${keys.map((k) => k.id).join(", ")})`);
    }
    if (manifest.squashfs.bytes !== layout.payloadBytes) {
      throw new BundleError(`the manifest says the squashfs is ${manifest.squashfs.bytes} bytes but the file holds ${layout.payloadBytes}`);
    }
    const sb = readAt(fd, 0, Math.min(96, layout.payloadBytes));
    if (sb.length < 96 || Buffer.from(sb).readUInt32LE(0) !== SQUASHFS_MAGIC) throw new BundleError("the payload is not a squashfs file system");
    const bytesUsed = Number(Buffer.from(sb).readBigUInt64LE(40));
    if (bytesUsed > layout.payloadBytes) throw new BundleError(`the squashfs says it uses ${bytesUsed} bytes but the payload is ${layout.payloadBytes}`);
    return { manifest, layout, key: { id: signer.id, name: signer.name } };
  } finally {
    closeSync(fd);
  }
}

/** Signs a squashfs into a bundle: what rootfs/build.ts writes as update.bin. */
export async function buildBundle(
  squashfs: string,
  out: string,
  meta: { version: string; board: string; arch: string; buildTime?: string },
  privatePem: string,
): Promise<BundleManifest> {
  const { key, id } = await importPrivateKey(privatePem);
  const fd = openSync(squashfs, "r");
  let bytes: number;
  let sha: string;
  try {
    bytes = fstatSync(fd).size;
    sha = sha256Range(fd, 0, bytes);
  } finally {
    closeSync(fd);
  }
  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    version: meta.version,
    board: meta.board,
    arch: meta.arch,
    squashfs: { bytes, sha256: sha },
    buildTime: meta.buildTime ?? new Date().toISOString(),
    keyId: id,
  };
  const mbytes = new TextEncoder().encode(JSON.stringify(manifest));
  const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key, mbytes));
  const { copyFileSync, appendFileSync } = await import("node:fs");
  copyFileSync(squashfs, out);
  appendFileSync(out, Buffer.concat([mbytes, sig, encodeFooter(mbytes.length, sig.length, bytes)]));
  return manifest;
}
