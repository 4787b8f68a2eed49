import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { imageTarball, iso, qcow2, rawDisk } from "../../tests/support/images.ts";
import { detectImage, ImageRefused } from "./image-format.ts";
import { fileHeader, readTarIndex } from "./tar.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "evebox-imgfmt-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function refusal(path: string): Promise<ImageRefused> {
  try {
    await detectImage(path, "upload.img");
  } catch (e) {
    expect(e).toBeInstanceOf(ImageRefused);
    return e as ImageRefused;
  }
  throw new Error(`${path} was accepted`);
}

describe("detectImage: disks", () => {
  test("a qcow2 made by qemu-img is a qcow2 disk with its virtual size", async () => {
    const d = await detectImage(await qcow2(join(dir, "a.qcow2"), 32 * 1024 * 1024), "a.qcow2");
    expect(d).toMatchObject({ format: "qcow2", kind: "disk", virtualSize: 32 * 1024 * 1024, container: null });
  });

  test("a qcow2 with a backing file is refused, naming the backing file, not the temporary path", async () => {
    const base = await rawDisk(join(dir, "base.raw"));
    const path = join(dir, "overlay.part");
    await qcow2(path, 1024 * 1024, base);
    const e = await refusal(path);
    expect(e.kind).toBe("invalid");
    expect(e.message).toContain("backing file");
    expect(e.message).toContain(base);
    expect(e.message).toStartWith("upload.img: ");
    expect(e.message).toEndWith("nothing was stored");
    expect(e.message).not.toContain("overlay.part");
  });

  test("a raw disk, an ISO, and a raw file that is not whole sectors", async () => {
    expect(await detectImage(await rawDisk(join(dir, "disk.raw")), "disk.raw")).toMatchObject({ format: "raw", kind: "disk", virtualSize: 1024 * 1024 });
    expect(await detectImage(await iso(join(dir, "cd.iso")), "cd.iso")).toMatchObject({ format: "iso", kind: "disk" });
    const odd = join(dir, "odd.raw");
    await writeFile(odd, new Uint8Array(1000).fill(7));
    expect((await refusal(odd)).message).toContain("512-byte sectors");
  });

  test("an HTML page, a text file, JSON, a gzip file and an empty file are refused as what they are", async () => {
    const cases: [string, string | Uint8Array, RegExp][] = [
      ["page.html", "<!DOCTYPE html>\n<html><head><title>Download</title></head><body>not found</body></html>\n".repeat(20), /an HTML document/],
      ["page2.html", "  \n<html lang=en><body>x</body></html>", /an HTML document/],
      ["notes.txt", "just some notes\n".repeat(100), /a text file/],
      ["x.json", '{"a": 1}', /a JSON document/],
      ["x.gz", new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]), /gzip-compressed.*gunzip/],
      ["empty", "", /empty/],
    ];
    for (const [name, content, why] of cases) {
      const p = join(dir, name);
      await writeFile(p, content);
      const e = await refusal(p);
      expect(e.message).toMatch(why);
      if (name.startsWith("page")) expect(e.kind).toBe("unsupported-type");
    }
  });
});

describe("detectImage: container image tarballs", () => {
  test("docker save layout: format, config digest, tags, platform", async () => {
    const path = join(dir, "img.tar");
    const { configDigest } = await imageTarball(path, "docker-archive");
    const d = await detectImage(path, "img.tar");
    expect(d).toMatchObject({ format: "docker-archive", kind: "container", virtualSize: null });
    expect(d.container).toEqual({ configDigest, manifestDigests: [], repoTags: ["evebox-upload-test:latest"], architecture: "amd64", os: "linux" });
  });

  test("OCI image layout: its manifest digest is recorded", async () => {
    const path = join(dir, "oci.tar");
    const { configDigest } = await imageTarball(path, "oci-layout");
    const d = await detectImage(path, "oci.tar");
    expect(d.format).toBe("oci-layout");
    expect(d.container?.configDigest).toBe(configDigest);
    expect(d.container?.manifestDigests).toHaveLength(1);
    expect(d.container?.manifestDigests[0]).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(d.container?.repoTags).toEqual(["latest"]);
  });

  test("a plain tar archive and one whose manifest names a missing layer are refused", async () => {
    const plain = join(dir, "plain.tar");
    await writeFile(join(dir, "f.txt"), "x");
    await Bun.write(plain, new Blob([fileHeader("f.txt", 1), new Uint8Array(512).fill(0).map((_, i) => (i === 0 ? 120 : 0)), new Uint8Array(1024)]));
    expect((await refusal(plain)).message).toContain("not a container image");

    const manifest = new TextEncoder().encode(JSON.stringify([{ Config: "c.json", Layers: ["missing/layer.tar"] }]));
    const broken = join(dir, "broken.tar");
    const pad = new Uint8Array(512 - (manifest.length % 512));
    await Bun.write(broken, new Blob([fileHeader("manifest.json", manifest.length), manifest, pad, fileHeader("c.json", 2), new TextEncoder().encode("{}"), new Uint8Array(510), new Uint8Array(1024)]));
    expect((await readTarIndex(broken)).entries.map((e) => e.name)).toEqual(["manifest.json", "c.json"]);
    const e = await refusal(broken);
    expect(e.message).toContain("missing/layer.tar is missing");
  });

  test("an archive entry that climbs out of the archive is refused", async () => {
    const bad = join(dir, "escape.tar");
    await Bun.write(bad, new Blob([fileHeader("../../etc/x", 1), new Uint8Array(512), new Uint8Array(1024)]));
    expect((await refusal(bad)).message).toContain("escapes the archive");
  });
});
