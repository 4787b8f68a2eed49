import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { imageTarball } from "../../tests/support/images.ts";
import { dockerLoadStream } from "./oci.ts";
import { entryName, readTarEntry, readTarIndex } from "./tar.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "evebox-oci-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

test("an OCI layout is streamed with a docker save manifest.json added; a docker save archive is loaded as it is", async () => {
  const oci = join(dir, "oci.tar");
  const { configDigest } = await imageTarball(oci, "oci-layout");
  const stream = await dockerLoadStream(oci);
  expect(stream).not.toBeNull();
  const out = join(dir, "loadable.tar");
  const chunks: Uint8Array[] = [];
  for await (const c of stream!) chunks.push(c as Uint8Array);
  await Bun.write(out, new Blob(chunks as Uint8Array<ArrayBuffer>[]));
  const before = await readTarIndex(oci);
  const { entries } = await readTarIndex(out);
  expect(entries.map((e) => e.name)).toEqual([...before.entries.map((e) => e.name), "manifest.json"]);
  const manifest = JSON.parse(new TextDecoder().decode(await readTarEntry(out, entries.at(-1)!)));
  expect(manifest).toHaveLength(1);
  expect(manifest[0].Config).toBe(`blobs/sha256/${configDigest.slice(7)}`);
  const names = new Set(entries.map((e) => entryName(e.name)));
  for (const l of manifest[0].Layers) expect(names.has(l)).toBe(true);

  const saved = join(dir, "saved.tar");
  await imageTarball(saved, "docker-archive");
  expect(await dockerLoadStream(saved)).toBeNull();
});
