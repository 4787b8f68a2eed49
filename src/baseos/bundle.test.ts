import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { broken, bundleOf, testKeys, tinySquashfs } from "../../tests/support/bundles.ts";
import { BundleError, encodeFooter, FOOTER_BYTES, importPublicKey, parseFooter, parseManifest, readBundleHead } from "./bundle.ts";

const dir = mkdtempSync(join(tmpdir(), "evebox-bundle-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const META = { version: "9.9.9", board: "qemu-x86_64", arch: "amd64" };

describe("footer", () => {
  test("round trip, and lengths that do not add up to the file are refused", () => {
    const f = encodeFooter(100, 64, 4096);
    expect(parseFooter(f, 4096 + 100 + 64 + FOOTER_BYTES)).toMatchObject({ payloadBytes: 4096, manifestOffset: 4096, manifestBytes: 100, signatureBytes: 64 });
    expect(() => parseFooter(f, 4096 + 100 + 64 + FOOTER_BYTES - 1)).toThrow(/truncated/);
    expect(() => parseFooter(new Uint8Array(32), 1000)).toThrow(/not an evebox update/);
  });
  test("manifest fields are required", () => {
    expect(() => parseManifest(new TextEncoder().encode("{}"))).toThrow(BundleError);
    expect(() => parseManifest(new TextEncoder().encode("nope"))).toThrow(/not JSON/);
  });
});

describe("signed bundles", () => {
  test("a bundle made by buildBundle verifies; its manifest says what the squashfs is", async () => {
    const keys = await testKeys(dir);
    const sq = await tinySquashfs(dir, "a");
    const file = await bundleOf(dir, sq, META, keys);
    const key = await importPublicKey(keys.publicPem);
    const v = await readBundleHead(file, [key]);
    expect(v.manifest).toMatchObject({ ...META, format: "evebox-update/1", keyId: keys.id });
    expect(v.manifest.squashfs.bytes).toBe(readFileSync(sq).length);
    expect(v.layout.payloadBytes).toBe(readFileSync(sq).length);
    // The file starts with the squashfs, byte for byte.
    expect(Buffer.compare(readFileSync(file).subarray(0, v.layout.payloadBytes), readFileSync(sq))).toBe(0);
  });
  test("another key, a changed manifest, a truncated file are refused", async () => {
    const keys = await testKeys(dir, "k1");
    const other = await importPublicKey((await testKeys(dir, "k2")).publicPem);
    const file = await bundleOf(dir, await tinySquashfs(dir, "b"), META, keys, "b");
    await expect(readBundleHead(file, [other])).rejects.toThrow(/bad signature/);
    await expect(readBundleHead(file, [])).rejects.toThrow(/no vendor keys/);
    // Change one byte inside the manifest (the version string), same length: the signature no longer holds.
    const b = readFileSync(file);
    const at = b.lastIndexOf(Buffer.from('"9.9.9"'));
    b[at + 1] = "8".charCodeAt(0);
    writeFileSync(join(dir, "edited.bin"), b);
    await expect(readBundleHead(join(dir, "edited.bin"), [await importPublicKey(keys.publicPem)])).rejects.toThrow(/bad signature/);
    await expect(readBundleHead(broken(file, "truncate", join(dir, "t.bin")), [await importPublicKey(keys.publicPem)])).rejects.toThrow(/not an evebox update/);
  });
});
