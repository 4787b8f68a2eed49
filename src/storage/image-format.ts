// What an uploaded file is: a VM disk (qcow2, raw, ISO, VMDK, VHDX, VHD) or a container image tarball (docker
// save, OCI image layout), and whether the device may keep it. Disks get the same checks as a downloaded content
// tree (runtime/vms/disks.ts verifyDiskImage: the header read before qemu-img opens it, `qemu-img info` through
// lib/run.ts, no backing file, no external data file, no file it refers to); tarballs must be self-consistent
// image layouts. Anything else — an HTML page, a text file, a plain archive — is refused with what it is.
import { open, stat } from "node:fs/promises";
import { DomainError } from "../model/errors.ts";
import { imageInfo, readImageHeader, verifyDiskImage } from "../runtime/vms/disks.ts";
import type { DiskFormat } from "../runtime/vms/types.ts";
import { entryName, looksLikeTar, readTarEntry, readTarIndex, type TarEntry, TarError } from "./tar.ts";

export type ImageKind = "disk" | "container";
export type ImageFormat = "qcow2" | "raw" | "iso" | "vmdk" | "vhdx" | "vhd" | "docker-archive" | "oci-layout";

/** The EVE `Format` of a content tree made from an image of this format (what a config names it by). */
export const EVE_FORMAT: Record<ImageFormat, string> = {
  qcow2: "QCOW2",
  raw: "RAW",
  iso: "ISO",
  vmdk: "VMDK",
  vhdx: "VHDX",
  vhd: "VHD",
  "docker-archive": "CONTAINER",
  "oci-layout": "CONTAINER",
};

export interface ContainerFacts {
  /** The image config's digest (`sha256:<hex>`, Docker's image id) of the first image in the archive. */
  configDigest: string | null;
  /** An OCI layout's manifest digests (index.json). */
  manifestDigests: string[];
  /** The names the archive carries (`busybox:latest`); informative, never applied to the engine as they are. */
  repoTags: string[];
  architecture: string | null;
  os: string | null;
}

export interface DetectedImage {
  format: ImageFormat;
  kind: ImageKind;
  /** A disk's size as the guest sees it. */
  virtualSize: number | null;
  container: ContainerFacts | null;
}

/** An upload the device will not keep: what it is, why; nothing of it is stored. */
export class ImageRefused extends DomainError {
  override name = "ImageRefused";
}

const QCOW_MAGIC = [0x51, 0x46, 0x49, 0xfb];

/** Things that are often uploaded by mistake, by their first bytes. */
const NOT_AN_IMAGE: [string, (head: Uint8Array, text: string) => boolean][] = [
  ["an HTML document (a web page, perhaps a download site's error page)", (_h, t) => /^\s*<(!doctype\s+html|html|head|body|!--)/i.test(t)],
  ["an XML document", (_h, t) => /^\s*<\?xml/i.test(t)],
  ["a JSON document", (_h, t) => /^\s*[{[]\s*["{[\]}]/.test(t)],
  ["a gzip-compressed file (decompress it first: gunzip)", (h) => h[0] === 0x1f && h[1] === 0x8b],
  ["an xz-compressed file (decompress it first: unxz)", (h) => h[0] === 0xfd && h[1] === 0x37 && h[2] === 0x7a && h[3] === 0x58 && h[4] === 0x5a],
  ["a zstd-compressed file (decompress it first: unzstd)", (h) => h[0] === 0x28 && h[1] === 0xb5 && h[2] === 0x2f && h[3] === 0xfd],
  ["a bzip2-compressed file (decompress it first: bunzip2)", (h) => h[0] === 0x42 && h[1] === 0x5a && h[2] === 0x68 && h[3]! >= 0x31 && h[3]! <= 0x39],
  ["a zip archive", (h) => h[0] === 0x50 && h[1] === 0x4b && h[2] === 0x03 && h[3] === 0x04],
  ["a PDF document", (_h, t) => t.startsWith("%PDF-")],
  ["an executable (ELF)", (h) => h[0] === 0x7f && h[1] === 0x45 && h[2] === 0x4c && h[3] === 0x46],
];

/** True when the first bytes are text (printable, valid UTF-8): no disk image or tarball starts with a page of text. */
function isText(head: Uint8Array): boolean {
  if (head.length === 0 || head.some((b) => (b < 0x20 && b !== 9 && b !== 10 && b !== 13) || b === 0x7f)) return false;
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(head.subarray(0, Math.max(0, head.length - 4)));
  } catch {
    return false;
  }
  return true;
}

async function readHead(path: string, bytes: number, position = 0): Promise<Uint8Array> {
  const fh = await open(path, "r");
  try {
    const buf = new Uint8Array(bytes);
    const { bytesRead } = await fh.read(buf, 0, bytes, position);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

export interface DetectOptions {
  qemuImg?: string;
}

/**
 * Detects the format of the complete file at `path` and checks it as the device checks downloaded content.
 * `label` names the file in messages (the upload's name; the temporary path is nobody's business).
 * Throws ImageRefused (`unsupported-type` for what is no image at all, `invalid` for an image refused by a check).
 */
export async function detectImage(path: string, label: string, opts: DetectOptions = {}): Promise<DetectedImage> {
  const size = (await stat(path)).size;
  const refuse = (kind: "invalid" | "unsupported-type", why: string): never => {
    throw new ImageRefused(kind, `${label}: ${why}; nothing was stored`);
  };
  if (size === 0) refuse("invalid", "the file is empty");
  const head = await readHead(path, 4096);
  const text = new TextDecoder("latin1").decode(head.subarray(0, 256));
  for (const [what, test] of NOT_AN_IMAGE) if (test(head, text)) refuse("unsupported-type", `it is ${what}, not a disk image or a container image tarball`);
  if (head.length >= 512 && isText(head)) refuse("unsupported-type", "it is a text file, not a disk image or a container image tarball");

  if (QCOW_MAGIC.every((b, i) => head[i] === b)) return disk(path, label, "qcow2", opts, refuse);
  if (looksLikeTar(head)) return container(path, label, refuse);
  if (size > 0x8006 && new TextDecoder().decode(await readHead(path, 5, 0x8001)) === "CD001") return disk(path, label, "iso", opts, refuse);

  // Whatever else qemu-img recognises (VMDK, VHDX, VHD); a file it cannot place is raw, with raw's own checks.
  const header = safely(() => readImageHeader(path), refuse);
  if (header.problems.length) refuse("invalid", `${header.problems.join("; ")}; an image must be self-contained`);
  const probed = await imageInfo(path, { qemuImg: opts.qemuImg }).catch((e: Error) => refuse("invalid", scrub(e.message, path, label)));
  const byQemu: Record<string, ImageFormat> = { raw: "raw", vmdk: "vmdk", vhdx: "vhdx", vpc: "vhd", qcow2: "qcow2" };
  const format = byQemu[probed.format];
  if (!format) return refuse("unsupported-type", `qemu-img reads it as ${probed.format}, a format evebox does not run (qcow2, raw, ISO, VMDK, VHDX, VHD are)`);
  return disk(path, label, format, opts, refuse);
}

const QEMU_FORMAT: Record<string, DiskFormat> = { qcow2: "qcow2", raw: "raw", iso: "raw", vmdk: "vmdk", vhdx: "vhdx", vhd: "vpc" };

async function disk(path: string, label: string, format: ImageFormat, opts: DetectOptions, refuse: (k: "invalid", why: string) => never): Promise<DetectedImage> {
  try {
    const info = await verifyDiskImage(path, QEMU_FORMAT[format]!, { qemuImg: opts.qemuImg, iso: format === "iso" });
    return { format, kind: "disk", virtualSize: info.virtualSize, container: null };
  } catch (e) {
    return refuse("invalid", scrub((e as Error).message, path, label));
  }
}

function safely<T>(f: () => T, refuse: (k: "invalid", why: string) => never): T {
  try {
    return f();
  } catch (e) {
    return refuse("invalid", (e as Error).message);
  }
}

/** A message about the temporary file, about the upload instead. */
function scrub(message: string, path: string, label: string): string {
  return message.split(path).join("the file").replace(/^the file (is|has)/, "it $1").replace(new RegExp(`^${escape(label)}: `), "");
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

type Json = Record<string, any>;

/** A docker save archive (manifest.json) or an OCI image layout (oci-layout, index.json), complete and self-consistent. */
async function container(path: string, label: string, refuse: (k: "invalid" | "unsupported-type", why: string) => never): Promise<DetectedImage> {
  let entries: TarEntry[];
  try {
    entries = (await readTarIndex(path)).entries;
  } catch (e) {
    return refuse("invalid", `a damaged tar archive (${e instanceof TarError ? e.message : (e as Error).message})`);
  }
  const byName = new Map<string, TarEntry>();
  for (const e of entries) {
    const name = entryName(e.name);
    // Never extracted here (docker load reads it), but an archive that reaches out of its own tree is no image layout.
    if (name.startsWith("/") || name.split("/").includes("..")) refuse("invalid", `a tar entry escapes the archive (${JSON.stringify(e.name)})`);
    byName.set(name, e);
  }
  const json = async (name: string): Promise<Json | Json[]> => {
    const e = byName.get(name);
    if (!e || e.type !== "0") return refuse("invalid", `${name} is missing from the archive`);
    try {
      return JSON.parse(new TextDecoder().decode(await readTarEntry(path, e)));
    } catch (err) {
      return refuse("invalid", `${name} is not readable JSON (${(err as Error).message})`);
    }
  };
  const need = (name: string, what: string) => {
    const e = byName.get(entryName(name));
    if (!e || e.type !== "0") refuse("invalid", `${what} ${name} is missing from the archive`);
  };
  const blob = (digest: unknown) => {
    const m = /^sha256:([0-9a-f]{64})$/.exec(String(digest));
    if (!m) return refuse("invalid", `a digest that is not sha256:<hex> (${JSON.stringify(digest)})`);
    return `blobs/sha256/${m[1]}`;
  };

  const facts: ContainerFacts = { configDigest: null, manifestDigests: [], repoTags: [], architecture: null, os: null };
  let configPath: string | null = null;
  let format: ImageFormat;
  if (byName.has("manifest.json")) {
    format = "docker-archive";
    const manifest = await json("manifest.json");
    if (!Array.isArray(manifest) || manifest.length === 0) return refuse("invalid", "manifest.json lists no image");
    for (const m of manifest) {
      if (typeof m?.Config !== "string" || !Array.isArray(m.Layers)) refuse("invalid", "manifest.json: an image without Config or Layers");
      need(m.Config, "the image config");
      for (const l of m.Layers) need(String(l), "the layer");
      for (const t of m.RepoTags ?? []) if (typeof t === "string") facts.repoTags.push(t);
    }
    configPath = entryName(manifest[0]!.Config);
    const hex = /([0-9a-f]{64})(\.json)?$/.exec(configPath)?.[1];
    facts.configDigest = hex ? `sha256:${hex}` : null;
    // A newer docker save is an OCI layout too; its index names the manifests.
    if (byName.has("index.json")) {
      const index = (await json("index.json")) as Json;
      for (const d of index.manifests ?? []) if (typeof d?.digest === "string") facts.manifestDigests.push(d.digest);
    }
  } else if (byName.has("oci-layout") || byName.has("index.json")) {
    format = "oci-layout";
    need("oci-layout", "the layout marker");
    const index = (await json("index.json")) as Json;
    const manifests = Array.isArray(index.manifests) ? index.manifests : [];
    if (manifests.length === 0) return refuse("invalid", "index.json lists no image manifest");
    for (const d of manifests) {
      const path = blob(d?.digest);
      need(path, "the manifest");
      facts.manifestDigests.push(String(d.digest));
      const name = d.annotations?.["org.opencontainers.image.ref.name"];
      if (typeof name === "string") facts.repoTags.push(name);
    }
    const first = (await json(blob(manifests[0].digest))) as Json;
    if (Array.isArray(first.manifests)) return refuse("invalid", "its index points to another index (a multi-platform image): export one platform");
    if (!first.config?.digest || !Array.isArray(first.layers)) return refuse("invalid", "its manifest has no config or no layers");
    configPath = blob(first.config.digest);
    need(configPath, "the image config");
    for (const l of first.layers) need(blob(l?.digest), "the layer");
    facts.configDigest = String(first.config.digest);
  } else {
    return refuse("unsupported-type", "it is a tar archive, but not a container image (no manifest.json of docker save, no index.json of an OCI layout)");
  }
  if (configPath) {
    const config = (await json(configPath)) as Json;
    if (!config || typeof config !== "object" || !config.rootfs) refuse("invalid", `${configPath} is not an image config (no rootfs)`);
    facts.architecture = typeof config.architecture === "string" ? config.architecture : null;
    facts.os = typeof config.os === "string" ? config.os : null;
    if (facts.os && facts.os !== "linux") refuse("invalid", `it is an image for ${facts.os}; the device runs Linux containers`);
  }
  return { format, kind: "container", virtualSize: null, container: facts };
}
