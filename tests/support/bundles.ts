// Small, correctly signed (or deliberately broken) update bundles for the base OS tests: a squashfs made with
// mksquashfs from a few files, signed by a key the test generates.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildBundle, generateKeyPair } from "../../src/baseos/bundle.ts";

export async function mksquashfs(dir: string, out: string): Promise<void> {
  const p = Bun.spawn(["mksquashfs", dir, out, "-noappend", "-comp", "gzip", "-no-progress", "-quiet", "-all-root"], { stdout: "pipe", stderr: "pipe" });
  if ((await p.exited) !== 0) throw new Error(`mksquashfs failed: ${await new Response(p.stderr).text()}`);
}

export interface TestKeys {
  dir: string;
  privatePem: string;
  publicPem: string;
  id: string;
}

/** A vendor key pair; `dir` holds the public key as the device's vendor-keys directory. */
export async function testKeys(root: string, name = "vendor"): Promise<TestKeys> {
  const k = await generateKeyPair();
  const dir = join(root, `keys-${name}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.pem`), k.publicPem);
  return { dir, ...k };
}

/** A tiny root file system as a squashfs: `size` bytes of pseudo-random content so hashes differ by seed. */
export async function tinySquashfs(root: string, name: string, sizeBytes = 512 * 1024): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "evebox-sq-"));
  const data = new Uint8Array(sizeBytes);
  let x = [...name].reduce((a, c) => a * 31 + c.charCodeAt(0), 7) >>> 0;
  for (let i = 0; i < data.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  mkdirSync(join(dir, "etc", "evebox"), { recursive: true });
  writeFileSync(join(dir, "etc", "evebox", "release.json"), JSON.stringify({ evebox: name }));
  writeFileSync(join(dir, "blob"), data);
  const out = join(root, `${name}.squashfs`);
  await mksquashfs(dir, out);
  return out;
}

export async function bundleOf(root: string, squashfs: string, meta: { version: string; board: string; arch: string }, keys: TestKeys, name = meta.version): Promise<string> {
  const out = join(root, `${name}.bin`);
  await buildBundle(squashfs, out, meta, keys.privatePem);
  return out;
}

/** Copies `src` and breaks it: cut the end off, flip a payload byte (the signed hash no longer matches). */
export function broken(src: string, how: "truncate" | "payload-byte", out: string): string {
  copyFileSync(src, out);
  if (how === "truncate") {
    truncateSync(out, Math.floor(readFileSync(src).length / 2));
  } else {
    const b = readFileSync(out);
    b[4096] ^= 0xff;
    writeFileSync(out, b);
  }
  return out;
}
