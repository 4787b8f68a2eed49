// An OCI image layout tarball as `docker load` of every Docker version reads it. Docker before 25 loads only the
// `docker save` layout (manifest.json naming the config and the layers); an OCI layout has the same blobs and an
// index.json instead. So the archive is streamed to the engine as it is, with a manifest.json written from the
// index added at its end: no copy on disk, and the stored file (and its sha256) stays what was uploaded.
import { createReadStream } from "node:fs";
import { PassThrough, type Readable } from "node:stream";
import { entryName, fileHeader, readTarEntry, readTarIndex } from "./tar.ts";

type Json = Record<string, any>;

/**
 * The archive at `path` as a stream `docker load` reads: null when it is a docker save archive already (it has a
 * manifest.json) — load the file as it is; otherwise the OCI layout with a manifest.json added.
 */
export async function dockerLoadStream(path: string): Promise<Readable | null> {
  const { entries, endOffset } = await readTarIndex(path);
  const byName = new Map(entries.map((e) => [entryName(e.name), e]));
  if (byName.has("manifest.json") || !byName.has("index.json")) return null;
  const read = async (name: string): Promise<Json> => {
    const e = byName.get(name);
    if (!e) throw new Error(`${name} is missing from the OCI layout`);
    return JSON.parse(new TextDecoder().decode(await readTarEntry(path, e)));
  };
  const blob = (digest: unknown) => `blobs/sha256/${String(digest).replace(/^sha256:/, "")}`;
  const index = await read("index.json");
  const images: Json[] = [];
  for (const d of index.manifests ?? []) {
    const m = await read(blob(d.digest));
    if (!m.config?.digest || !Array.isArray(m.layers)) continue;
    images.push({ Config: blob(m.config.digest), RepoTags: null, Layers: m.layers.map((l: Json) => blob(l.digest)) });
  }
  if (images.length === 0) throw new Error("the OCI layout's index names no image manifest");
  const manifest = new TextEncoder().encode(JSON.stringify(images));
  const out = new PassThrough();
  (async () => {
    try {
      if (endOffset > 0) {
        for await (const chunk of createReadStream(path, { start: 0, end: endOffset - 1 })) if (!out.write(chunk)) await new Promise((r) => out.once("drain", r));
      }
      out.write(fileHeader("manifest.json", manifest.length));
      out.write(manifest);
      out.write(new Uint8Array((512 - (manifest.length % 512)) % 512));
      out.end(new Uint8Array(1024));
    } catch (e) {
      out.destroy(e as Error);
    }
  })();
  return out;
}
