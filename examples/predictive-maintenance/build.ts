// Builds the stack's two container images from Debian packages only (no registry): each is a root file system
// made by mmdebstrap (variant "extract": the packages and their dependencies unpacked, no maintainer scripts,
// nothing else), pruned, with our files added, imported with `docker import` and saved with `docker save` as the
// tarball a bundle (or an upload) carries:
//   broker  Debian's mosquitto                                     (~12 MB)
//   stack   python3 + python3-paho-mqtt + images/stack/opt/pm/*.py  (~25 MB): the collector, analytics and
//           dashboard apps, one image, three commands (EVE_ECO_CMD in each app's userData)
// Two cache levels under EVEBOX_EXAMPLE_CACHE (default /var/cache/evebox-image/examples), as rootfs/build.ts
// does for the device image: the Debian layer (keyed by suite, mirrors and package list) and the saved image
// (keyed by the layer, the prune list, our files and the image settings), so a warm run only hashes.
//
//   bun examples/predictive-maintenance/build.ts [--out DIR]   # DIR: the bundle's source directory
//                                                               # (bundle.json + images/*.tar), default
//                                                               # dist/examples/predictive-maintenance
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";

export const EXAMPLE_DIR = import.meta.dir;
const ROOT = join(EXAMPLE_DIR, "..", "..");
export const EXAMPLE_CACHE = process.env.EVEBOX_EXAMPLE_CACHE ?? "/var/cache/evebox-image/examples";
/** Bump when a build step changes in a way the hashed inputs do not show. */
const LAYER_VERSION = "1";
const IMAGE_VERSION = "1";
const SUITE = "bookworm";
const MIRRORS = [
  "deb http://deb.debian.org/debian bookworm main",
  "deb http://deb.debian.org/debian bookworm-updates main",
  "deb http://deb.debian.org/debian-security bookworm-security main",
];
const EPOCH = Number(process.env.SOURCE_DATE_EPOCH ?? 1704067200);

/** What both images drop: documentation, translations, the package tools (nothing installs in a running app). */
const PRUNE_COMMON = [
  "usr/share/doc",
  "usr/share/man",
  "usr/share/info",
  "usr/share/locale",
  "usr/share/lintian",
  "usr/share/bug",
  "usr/share/common-licenses",
  "usr/lib/x86_64-linux-gnu/gconv",
  "usr/lib/aarch64-linux-gnu/gconv",
  "usr/share/i18n",
  "usr/share/zoneinfo",
  "usr/bin/dpkg*",
  "usr/sbin/dpkg*",
  "usr/share/dpkg",
  "usr/share/perl5",
  "usr/share/debconf",
  "etc/dpkg",
  "var/cache",
  "var/log",
  "dev/*",
];

export interface ImageRecipe {
  name: string;
  packages: string[];
  prune: string[];
  /** Our files: a tree copied over the root. */
  files: string;
  cmd: string[];
  env: string[];
  passwd: string[];
  group: string[];
}

export const RECIPES: ImageRecipe[] = [
  {
    name: "broker",
    packages: ["mosquitto"],
    prune: ["usr/sbin/*user*", "usr/sbin/*group*", "usr/sbin/*passwd*", "usr/sbin/*pw*", "usr/sbin/*gr*conv", "usr/lib/x86_64-linux-gnu/security"],
    files: join(EXAMPLE_DIR, "images", "broker"),
    cmd: ["/usr/sbin/mosquitto", "-c", "/etc/mosquitto/mosquitto.conf"],
    env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
    passwd: ["root:x:0:0:root:/root:/bin/sh", "mosquitto:x:101:101:mosquitto:/var/lib/mosquitto:/usr/sbin/nologin", "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"],
    group: ["root:x:0:", "mosquitto:x:101:", "nogroup:x:65534:"],
  },
  {
    name: "stack",
    packages: ["python3-minimal", "libpython3.11-stdlib", "python3-paho-mqtt"],
    prune: [
      "usr/lib/python3.11/test",
      "usr/lib/python3.11/idlelib",
      "usr/lib/python3.11/tkinter",
      "usr/lib/python3.11/lib2to3",
      "usr/lib/python3.11/ensurepip",
      "usr/lib/python3.11/pydoc_data",
      "usr/lib/python3.11/turtledemo",
      "usr/lib/python3.11/config-3.11-*",
      "usr/lib/python3.11/distutils",
      "usr/lib/python3.11/venv",
      "usr/lib/python3.11/lib-dynload/_codecs_*",
      "usr/lib/python3.11/lib-dynload/_tkinter*",
      "usr/lib/python3.11/lib-dynload/_curses*",
      "usr/lib/python3.11/lib-dynload/_dbm*",
      "usr/lib/python3.11/lib-dynload/_gdbm*",
      "usr/lib/python3.11/lib-dynload/_sqlite3*",
      "usr/lib/python3.11/lib-dynload/_decimal*",
      "usr/lib/python3.11/lib-dynload/readline*",
      "usr/lib/x86_64-linux-gnu/libdb-*",
      "usr/lib/x86_64-linux-gnu/libsqlite3*",
      "usr/lib/x86_64-linux-gnu/libncurses*",
      "usr/lib/x86_64-linux-gnu/libreadline*",
      "lib/x86_64-linux-gnu/libreadline*",
      "lib/x86_64-linux-gnu/libncurses*",
      "lib/x86_64-linux-gnu/libtinfo*",
      "usr/lib/x86_64-linux-gnu/libkrb5*",
      "usr/lib/x86_64-linux-gnu/libgssapi*",
      "bin/tar",
      "usr/bin/tar",
    ],
    files: join(EXAMPLE_DIR, "images", "stack"),
    cmd: ["python3", "/opt/pm/dashboard.py"],
    env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"],
    passwd: ["root:x:0:0:root:/root:/bin/sh", "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"],
    group: ["root:x:0:", "nogroup:x:65534:"],
  },
];

export interface BuiltExampleImage {
  name: string;
  /** The docker save tarball (in the cache). */
  file: string;
  sha256: string;
  size: number;
  key: string;
  cached: boolean;
}

async function run(argv: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<string> {
  const p = Bun.spawn(argv, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${(err.trim() || out.trim()).slice(-2000)}`);
  return out;
}

function hash(...parts: (string | Uint8Array)[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p).update("\0");
  return h.digest("hex");
}

/** Every file under `dir` with its bytes, in a fixed order (what a change of our files must change). */
function treeDigest(dir: string): string {
  const h = createHash("sha256");
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (!name.endsWith(".pyc")) h.update(relative(dir, p)).update("\0").update(readFileSync(p)).update("\0");
    }
  };
  walk(dir);
  return h.digest("hex");
}

function sha256File(path: string): string {
  const h = createHash("sha256");
  h.update(readFileSync(path));
  return h.digest("hex");
}

export function layerKey(r: ImageRecipe): string {
  return hash("layer", LAYER_VERSION, SUITE, ...MIRRORS, "amd64", ...[...r.packages].sort()).slice(0, 20);
}

export function imageKey(r: ImageRecipe): string {
  return hash("image", IMAGE_VERSION, layerKey(r), ...PRUNE_COMMON, ...r.prune, treeDigest(r.files), JSON.stringify([r.cmd, r.env, r.passwd, r.group]), String(EPOCH)).slice(0, 20);
}

async function debianLayer(r: ImageRecipe, cacheDir: string, log: (l: string) => void): Promise<string> {
  const dir = join(cacheDir, "debian");
  const tar = join(dir, `${r.name}-${SUITE}-${layerKey(r)}.tar`);
  if (existsSync(tar)) return tar;
  if (!Bun.which("mmdebstrap")) throw new Error("building the example's images needs mmdebstrap (Debian package mmdebstrap)");
  mkdirSync(dir, { recursive: true });
  const tmp = `${tar}.tmp-${process.pid}`;
  const t0 = performance.now();
  await run(
    [
      "mmdebstrap",
      "--mode=root",
      "--variant=extract",
      "--arch=amd64",
      "--format=tar",
      `--include=${r.packages.join(",")}`,
      '--aptopt=APT::Install-Recommends "false"',
      ...["/usr/share/man/*", "/usr/share/doc/*", "/usr/share/info/*", "/usr/share/locale/*"].map((p) => `--dpkgopt=path-exclude=${p}`),
      SUITE,
      tmp,
      ...MIRRORS,
    ],
    { env: { SOURCE_DATE_EPOCH: String(EPOCH) } },
  ).catch((e) => {
    rmSync(tmp, { force: true });
    throw e;
  });
  renameSync(tmp, tar);
  log(`${r.name}: Debian layer (${r.packages.join(" ")} and dependencies) by mmdebstrap in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return tar;
}

function prune(root: string, patterns: string[]): void {
  for (const pattern of patterns) {
    if (!/[*?[]/.test(pattern)) {
      rmSync(join(root, pattern), { recursive: true, force: true });
      continue;
    }
    for (const hit of new Bun.Glob(pattern).scanSync({ cwd: root, onlyFiles: false, dot: true, followSymlinks: false })) rmSync(join(root, hit), { recursive: true, force: true });
  }
}

/** One image, from the cache when its key is there. */
export async function buildImage(r: ImageRecipe, opts: { cacheDir?: string; log?: (l: string) => void } = {}): Promise<BuiltExampleImage> {
  const cacheDir = opts.cacheDir ?? EXAMPLE_CACHE;
  const log = opts.log ?? ((l: string) => console.log(l));
  const key = imageKey(r);
  const file = join(cacheDir, "images", `${r.name}-${key}.tar`);
  const meta = `${file}.json`;
  if (existsSync(file) && existsSync(meta)) {
    const m = JSON.parse(readFileSync(meta, "utf8"));
    return { name: r.name, file, sha256: m.sha256, size: m.size, key, cached: true };
  }
  const layer = await debianLayer(r, cacheDir, log);
  const t0 = performance.now();
  const work = mkdtempSync(join(cacheDir, `.build-${r.name}-`));
  const tag = `evebox-example/pm-${r.name}:${key}`;
  try {
    const root = join(work, "root");
    mkdirSync(root);
    await run(["tar", "-C", root, "--numeric-owner", "-xf", layer]);
    prune(root, [...PRUNE_COMMON, ...r.prune]);
    mkdirSync(join(root, "etc"), { recursive: true });
    mkdirSync(join(root, "tmp"), { recursive: true, mode: 0o1777 });
    writeFileSync(join(root, "etc", "passwd"), `${r.passwd.join("\n")}\n`);
    writeFileSync(join(root, "etc", "group"), `${r.group.join("\n")}\n`);
    await run(["cp", "-R", "--no-preserve=ownership", `${r.files}/.`, root]);
    for (const pyc of new Bun.Glob("**/__pycache__").scanSync({ cwd: root, onlyFiles: false, dot: true })) rmSync(join(root, pyc), { recursive: true, force: true });
    const rootTar = join(work, "rootfs.tar");
    await run(["tar", "-C", root, "--sort=name", `--mtime=@${EPOCH}`, "--numeric-owner", "-cf", rootTar, "."]);
    const changes = [`CMD ${JSON.stringify(r.cmd)}`, ...r.env.map((e) => `ENV ${e}`), `LABEL org.evebox.example=predictive-maintenance org.evebox.example.image=${r.name} org.evebox.example.key=${key}`];
    await run(["docker", "import", ...changes.flatMap((c) => ["--change", c]), rootTar, tag]);
    mkdirSync(join(cacheDir, "images"), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    await run(["docker", "save", "-o", tmp, tag]);
    chmodSync(tmp, 0o644);
    const sha256 = sha256File(tmp);
    const size = statSync(tmp).size;
    renameSync(tmp, file);
    writeFileSync(meta, JSON.stringify({ name: r.name, key, sha256, size, packages: r.packages, builtAt: new Date().toISOString() }, null, 2));
    log(`${r.name}: image ${(size / 2 ** 20).toFixed(1)} MB (sha256 ${sha256.slice(0, 12)}…) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return { name: r.name, file, sha256, size, key, cached: false };
  } finally {
    // The image lives on as the saved tarball; the host's engine keeps no tag of it.
    await run(["docker", "image", "rm", tag]).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
}

let building: Promise<BuiltExampleImage[]> | null = null;
/** Both images, built once per process (the cache makes a warm build a matter of hashing). */
export function buildImages(opts: { cacheDir?: string; log?: (l: string) => void } = {}): Promise<BuiltExampleImage[]> {
  building ??= (async () => {
    const out: BuiltExampleImage[] = [];
    // One after the other: two mmdebstraps at once only compete for the same two cores.
    for (const r of RECIPES) out.push(await buildImage(r, opts));
    return out;
  })();
  return building;
}

/**
 * The bundle's source directory (what `evebox bundle build DIR` takes): bundle.json and images/<name>.tar
 * (hard links to the cached tarballs when the file system allows, copies otherwise).
 */
export async function bundleSource(outDir: string, opts: { cacheDir?: string; log?: (l: string) => void } = {}): Promise<{ dir: string; images: BuiltExampleImage[] }> {
  const images = await buildImages(opts);
  mkdirSync(join(outDir, "images"), { recursive: true });
  copyFileSync(join(EXAMPLE_DIR, "bundle.json"), join(outDir, "bundle.json"));
  for (const img of images) {
    const dest = join(outDir, "images", `${img.name}.tar`);
    rmSync(dest, { force: true });
    try {
      linkSync(img.file, dest);
    } catch {
      copyFileSync(img.file, dest);
    }
  }
  return { dir: outDir, images };
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Bun.argv.slice(2), options: { out: { type: "string", default: join(ROOT, "dist", "examples", "predictive-maintenance") } } });
  const t0 = performance.now();
  const { dir, images } = await bundleSource(values.out!);
  for (const i of images) console.log(`${i.name}: ${i.cached ? "cached" : "built"} ${i.file} (${(i.size / 2 ** 20).toFixed(1)} MB, sha256 ${i.sha256})`);
  console.log(`bundle source in ${dir} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}
