// Small image files for the image-store tests (src/storage, tests/images.test.ts, the UI test and the bench): disks
// made with qemu-img, a hand-made ISO 9660 signature, and container image tarballs in both layouts built from a
// one-file layer. All argv through src/lib/run.ts.
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runChecked } from "../../src/lib/run.ts";

export async function qcow2(path: string, sizeBytes = 16 * 1024 * 1024, backing?: string, options: string[] = []): Promise<string> {
  const argv = ["qemu-img", "create", "-q", "-f", "qcow2", ...(backing ? ["-b", backing, "-F", "raw"] : []), ...options, path, String(sizeBytes)];
  await runChecked(argv, { timeoutMs: 30_000 });
  return path;
}

/** A raw disk: a boot sector (0x55AA) on zeros. */
export async function rawDisk(path: string, sizeBytes = 1024 * 1024): Promise<string> {
  const b = new Uint8Array(sizeBytes);
  b[0] = 0xeb;
  b[1] = 0x3c;
  b[510] = 0x55;
  b[511] = 0xaa;
  await writeFile(path, b);
  return path;
}

/** The ISO 9660 primary volume descriptor's signature where it belongs (sector 16), in whole 2048-byte sectors. */
export async function iso(path: string): Promise<string> {
  const b = new Uint8Array(20 * 2048);
  b[0x8000] = 1;
  b.set(new TextEncoder().encode("CD001"), 0x8001);
  b[0x8006] = 1;
  await writeFile(path, b);
  return path;
}

const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

/** A container image tarball with one layer holding `/hello` ("docker save" layout, or an OCI image layout). */
export async function imageTarball(path: string, layout: "docker-archive" | "oci-layout", text = "hello from an uploaded image\n"): Promise<{ configDigest: string }> {
  const dir = await mkdtemp(join(tmpdir(), "evebox-imgtar-"));
  try {
    const rootfs = join(dir, "rootfs");
    await mkdir(rootfs);
    await writeFile(join(rootfs, "hello"), text);
    const layerTar = join(dir, "layer.tar");
    await runChecked(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "-C", rootfs, "-cf", layerTar, "hello"]);
    const layer = new Uint8Array(await Bun.file(layerTar).arrayBuffer());
    const out = join(dir, "out");
    await mkdir(join(out, "blobs", "sha256"), { recursive: true });
    const config = JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Cmd: ["/hello"] },
      rootfs: { type: "layers", diff_ids: [`sha256:${sha(layer)}`] },
      history: [{ created_by: "evebox test" }],
    });
    const configHex = sha(config);
    await writeFile(join(out, "blobs", "sha256", configHex), config);
    await writeFile(join(out, "blobs", "sha256", sha(layer)), layer);
    if (layout === "docker-archive") {
      await writeFile(join(out, "manifest.json"), JSON.stringify([{ Config: `blobs/sha256/${configHex}`, RepoTags: ["evebox-upload-test:latest"], Layers: [`blobs/sha256/${sha(layer)}`] }]));
    } else {
      const manifest = JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${configHex}`, size: config.length },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: `sha256:${sha(layer)}`, size: layer.length }],
      });
      await writeFile(join(out, "blobs", "sha256", sha(manifest)), manifest);
      await writeFile(join(out, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
      await writeFile(
        join(out, "index.json"),
        JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${sha(manifest)}`, size: manifest.length, annotations: { "org.opencontainers.image.ref.name": "latest" } }] }),
      );
    }
    await runChecked(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "-C", out, "-cf", path, "."]);
    return { configDigest: `sha256:${configHex}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The image of a `docker save` archive as an OCI image layout tarball (what skopeo or buildah would write). */
export async function ociFromDockerSave(saved: string, out: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "evebox-oci-"));
  try {
    const x = join(dir, "x");
    const o = join(dir, "o");
    await mkdir(x);
    await mkdir(join(o, "blobs", "sha256"), { recursive: true });
    await runChecked(["tar", "-C", x, "-xf", saved]);
    const [m] = JSON.parse(await Bun.file(join(x, "manifest.json")).text()) as { Config: string; Layers: string[] }[];
    const blob = async (rel: string) => {
      const bytes = new Uint8Array(await Bun.file(join(x, rel)).arrayBuffer());
      const hex = sha(bytes);
      await writeFile(join(o, "blobs", "sha256", hex), bytes);
      return { digest: `sha256:${hex}`, size: bytes.length };
    };
    const config = await blob(m!.Config);
    const layers = [];
    for (const l of m!.Layers) layers.push({ mediaType: "application/vnd.oci.image.layer.v1.tar", ...(await blob(l)) });
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config }, layers });
    await writeFile(join(o, "blobs", "sha256", sha(manifest)), manifest);
    await writeFile(join(o, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    await writeFile(join(o, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${sha(manifest)}`, size: manifest.length }] }));
    await runChecked(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "-C", o, "-cf", out, "."]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
