// `evebox bundle build DIR --out FILE [--key KEY.pem]`: a bundle's source directory into one bundle file.
// The manifest and its placeholders are checked as the device will check them (manifest.ts, placeholders.ts),
// each image is hashed, and the file is written as README.md says: bundle.json (images by sha256 and size),
// bundle.sig (with --key), images/<sha256>.
import { readFileSync, realpathSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { BundleInvalid, MAX_IMAGE_BYTES, readManifest } from "./manifest.ts";
import { checkPlaceholders } from "./placeholders.ts";
import { signBytes } from "./signature.ts";
import { MANIFEST_ENTRY, SIGNATURE_ENTRY, sha256OfRange, type FileToAdd, writeTar } from "./tar.ts";

export interface BuildResult {
  out: string;
  name: string;
  version: string;
  images: { name: string; sha256: string; size: number }[];
  signed: boolean;
  bytes: number;
}

export async function buildBundle(dir: string, out: string, keyPath?: string): Promise<BuildResult> {
  const root = realpathSync(resolve(dir));
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(join(root, MANIFEST_ENTRY), "utf8"));
  } catch (e) {
    throw new BundleInvalid([{ path: MANIFEST_ENTRY, message: `cannot read ${join(root, MANIFEST_ENTRY)}: ${(e as Error).message}` }]);
  }
  const { manifest, problems } = readManifest(raw, "source");
  if (!manifest) throw new BundleInvalid(problems);
  const placeholderProblems = checkPlaceholders(manifest);
  if (placeholderProblems.length) throw new BundleInvalid(placeholderProblems);

  const images: BuildResult["images"] = [];
  const files = new Map<string, FileToAdd>();
  // The source as its author wrote it, with each image's file replaced by its digest and size.
  const built = { ...(raw as Record<string, unknown>), images: {} as Record<string, { sha256: string; size: number }> };
  for (const [name, spec] of Object.entries(manifest.images)) {
    const at = `images.${name}.file`;
    let real: string;
    try {
      real = realpathSync(join(root, spec.file!));
    } catch (e) {
      throw new BundleInvalid([{ path: at, message: `${spec.file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}` }]);
    }
    const rel = relative(root, real);
    if (rel.startsWith("..") || rel.startsWith(sep)) throw new BundleInvalid([{ path: at, message: `${spec.file} leads outside the bundle's directory` }]);
    const st = statSync(real);
    if (!st.isFile()) throw new BundleInvalid([{ path: at, message: `${spec.file} is not a regular file` }]);
    if (st.size === 0 || st.size > MAX_IMAGE_BYTES) throw new BundleInvalid([{ path: at, message: `${spec.file}: ${st.size} bytes (1 to ${MAX_IMAGE_BYTES})` }]);
    const sha256 = await sha256OfRange(real, 0, st.size);
    built.images[name] = { sha256, size: st.size };
    images.push({ name, sha256, size: st.size });
    if (!files.has(sha256)) files.set(sha256, { name: `images/${sha256}`, path: real, size: st.size });
  }
  const manifestBytes = new TextEncoder().encode(`${JSON.stringify(built, null, 2)}\n`);
  const entries: FileToAdd[] = [{ name: MANIFEST_ENTRY, bytes: manifestBytes, size: manifestBytes.length }];
  if (keyPath) {
    const sig = signBytes(manifestBytes, readFileSync(keyPath, "utf8"));
    entries.push({ name: SIGNATURE_ENTRY, bytes: sig, size: sig.length });
  }
  entries.push(...files.values());
  await writeTar(out, entries);
  return { out, name: manifest.name, version: manifest.version, images, signed: !!keyPath, bytes: statSync(out).size };
}
