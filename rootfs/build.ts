// Builds a device image: a Debian root file system (mmdebstrap) with evebox as /sbin/init, made read-only
// (squashfs, kernel and initramfs inside), and a GPT disk image around it:
//   1 EFI System (GRUB + grub.cfg + grubenv)  2 IMGA (the squashfs)  3 IMGB (empty: the update slot)
//   4 CONFIG (FAT, EVE's /config)  5 PERSIST (left blank: the device formats it on first boot)
// No loop devices: file systems are made in files (mkfs.vfat -C, mtools, mksquashfs) and written at their
// partition's offset. Two cache levels under EVEBOX_IMAGE_CACHE (default /var/cache/evebox-image): the Debian
// layer (a tarball, keyed by the package list) and the finished image (keyed by every input, binary included).
//
//   npm run image -- --board qemu-x86_64 [--binary PATH] [--config DIR] [--out DIR]
import { createHash } from "node:crypto";
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { arch as hostArch } from "node:os";
import { basename, dirname, join, relative } from "node:path";
import { parseArgs } from "node:util";
import { formatBootEnv, initialBootEnv } from "../src/baseos/bootenv.ts";
import { buildBundle, generateKeyPair, importPrivateKey } from "../src/baseos/bundle.ts";

export const ROOT = join(import.meta.dir, "..");
const ROOTFS_DIR = import.meta.dir;
export const BOARDS_DIR = join(ROOT, "board-support");
export const DEFAULT_CACHE = process.env.EVEBOX_IMAGE_CACHE ?? "/var/cache/evebox-image";
/** Bump when a build step changes in a way the hashed inputs do not show. */
const LAYER_VERSION = "1";
const IMAGE_VERSION = "1";
const SUITE = "bookworm";
const MIRRORS = [
  "deb http://deb.debian.org/debian bookworm main",
  "deb http://deb.debian.org/debian bookworm-updates main",
  "deb http://deb.debian.org/debian-security bookworm-security main",
];
/** Every timestamp in the image (file times, file system creation): reproducible unless SOURCE_DATE_EPOCH says otherwise. */
export const SOURCE_DATE_EPOCH = Number(process.env.SOURCE_DATE_EPOCH ?? 1704067200); // 2024-01-01
const MiB = 1024 * 1024;
const SECTOR = 512;
/** GRUB modules built into the EFI binary: GPT, FAT (the ESP), squashfs (the slots) and the script commands grub.cfg uses. */
const GRUB_MODULES = ["part_gpt", "fat", "squash4", "gzio", "xzio", "normal", "linux", "configfile", "loadenv", "test", "regexp", "echo", "sleep", "reboot", "halt", "serial", "terminal", "search", "search_label", "search_fs_file", "cat", "ls", "true", "efi_gop", "all_video", "gfxterm"];
/** Busybox applets for the debug shell (evebox.shell=ttyS1), in /usr/lib/evebox/busybox, after the real tools in PATH. */
const DEBUG_APPLETS = ["sh", "ps", "top", "free", "vi", "less", "more", "grep", "sed", "awk", "head", "tail", "ls", "cat", "df", "du", "find", "xargs", "hexdump", "od", "tr", "cut", "sort", "uniq", "wc", "ping", "wget", "nc", "netstat", "dmesg", "kill", "pkill", "pgrep", "uptime", "date", "env", "stty", "reset", "watch", "tee", "which"];
/** Busybox applets the initramfs script uses. */
const INITRAMFS_APPLETS = ["sh", "mount", "insmod", "sleep", "grep", "sed", "cat", "switch_root", "reboot", "mkdir", "echo"];

export interface Board {
  name: string;
  description: string;
  arch: "amd64" | "arm64";
  binaryTarget: "x64" | "arm64";
  kernelPackage: string;
  packages: string[];
  grub: { platform: string; efiFile: string; terminal: string; timeout: number };
  cmdline: string;
  console: string;
  initramfsModules: string[];
  modules: string[];
  watchdog: { module: string | null; device: string; note?: string } | null;
  leds: { name: string; trigger: string; note?: string }[];
  partitions: { efiMiB: number; imgMiB: number; configMiB: number; persistMiB: number };
}

export function boardNames(): string[] {
  return readdirSync(BOARDS_DIR).filter((d) => existsSync(join(BOARDS_DIR, d, "board.json")));
}

export function loadBoard(name: string): Board {
  const file = join(BOARDS_DIR, name, "board.json");
  if (!existsSync(file)) throw new Error(`no board ${JSON.stringify(name)} (boards: ${boardNames().join(", ")})`);
  return JSON.parse(readFileSync(file, "utf8")) as Board;
}

export interface PartitionInfo {
  number: number;
  label: string;
  startBytes: number;
  sizeBytes: number;
}

export interface ImageManifest {
  board: string;
  key: string;
  eveboxVersion: string;
  /** The image's release version (/etc/evebox/release.json "version"; what the update file names). */
  version: string;
  /** The vendor key that signs update.bin (its public half is in /etc/evebox/vendor-keys/). */
  vendorKeyId: string;
  update: { file: string; bytes: number };
  kernel: string;
  packages: number;
  sourceDateEpoch: number;
  squashfs: { file: string; bytes: number; sha256: string };
  disk: { file: string; bytes: number; allocatedBytes: number };
  rootBytes: number;
  partitions: PartitionInfo[];
  timings: Record<string, number>;
}

export interface BuiltImage {
  dir: string;
  disk: string;
  squashfs: string;
  /** The signed update file: the squashfs + manifest + signature (src/baseos/README.md). */
  update: string;
  manifest: ImageManifest;
  cached: boolean;
}

export interface BuildOptions {
  board: string;
  /** The evebox binary for the board's architecture (dist/evebox-linux-<target>). */
  binary: string;
  /** Files for the CONFIG partition (EVE's /config: server, root-certificate.pem, onboarding certificate). */
  configDir?: string;
  cacheDir?: string;
  /** The release version (default: package.json's). */
  version?: string;
  /** The vendor's Ed25519 private key (PKCS#8 PEM) that signs update.bin; default a development key kept in the cache. */
  vendorKey?: string;
  log?: (line: string) => void;
}

/** The development vendor key: made once, kept in the image cache (never for production images). */
export async function devVendorKey(cacheDir: string = DEFAULT_CACHE): Promise<string> {
  const path = join(cacheDir, "vendor-keys", "dev.key.pem");
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const k = await generateKeyPair();
    writeFileSync(`${path}.tmp`, k.privatePem, { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  }
  return path;
}

export function packageVersion(): string {
  return JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
}

// ---------------------------------------------------------------------------------------------------------------

async function run(cmd: string[], opts: { cwd?: string; env?: Record<string, string>; stdin?: Uint8Array } = {}): Promise<string> {
  const proc = Bun.spawn(cmd, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdin: opts.stdin ?? "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited ${code}: ${(err.trim() || out.trim()).slice(-3000)}`);
  return out;
}

function sha256File(path: string): string {
  const h = createHash("sha256");
  const fd = openSync(path, "r");
  const buf = Buffer.allocUnsafe(4 * MiB);
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

function sha256Of(...parts: (string | Uint8Array)[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p).update("\0");
  return h.digest("hex");
}

function needTools(tools: [string, string][]): void {
  const missing = tools.filter(([t]) => !Bun.which(t, { PATH: `${process.env.PATH}:/usr/sbin:/sbin` })).map(([, pkg]) => pkg);
  if (missing.length) throw new Error(`image build: missing tools; install the Debian packages: ${[...new Set(missing)].join(" ")}`);
}

function tool(t: string): string {
  return Bun.which(t, { PATH: `${process.env.PATH}:/usr/sbin:/sbin` }) ?? t;
}

/** A deterministic GUID from a name, so two builds of one image write the same partition table. */
function guidOf(name: string): string {
  const h = createHash("sha256").update(`evebox-image:${name}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`.toUpperCase();
}

function packageList(board: Board): string[] {
  const common = readFileSync(join(ROOTFS_DIR, "packages.txt"), "utf8")
    .split("\n")
    .map((l) => l.replace(/#.*/, "").trim())
    .filter(Boolean);
  return [...new Set([...common, board.kernelPackage, ...board.packages])].sort();
}

function pruneList(): string[] {
  return readFileSync(join(ROOTFS_DIR, "prune.txt"), "utf8")
    .split("\n")
    .map((l) => l.replace(/#.*/, "").trim())
    .filter(Boolean);
}

/** Files whose content decides the image (besides the Debian layer and the binary). */
function recipeFiles(board: Board): string[] {
  return [
    join(ROOTFS_DIR, "build.ts"),
    join(ROOTFS_DIR, "prune.txt"),
    join(ROOTFS_DIR, "initramfs", "init"),
    join(ROOTFS_DIR, "grub", "grub.cfg"),
    join(ROOT, "src", "baseos", "bootenv.ts"),
    join(ROOT, "src", "baseos", "bundle.ts"),
    join(BOARDS_DIR, board.name, "board.json"),
  ];
}

// ---------------------------------------------------------------------------------------------------------------

function debianLayerKey(board: Board): string {
  return sha256Of(JSON.stringify({ v: LAYER_VERSION, suite: SUITE, mirrors: MIRRORS, arch: board.arch, packages: packageList(board) })).slice(0, 20);
}

/** Makes sure a foreign architecture's binaries run (qemu-user-static through binfmt_misc) before mmdebstrap needs them. */
async function ensureForeignArch(arch: Board["arch"]): Promise<void> {
  const native = hostArch() === "x64" ? "amd64" : hostArch() === "arm64" ? "arm64" : hostArch();
  if (arch === native) return;
  const qemu = arch === "arm64" ? "qemu-aarch64" : `qemu-${arch}`;
  needTools([[`${qemu}-static`, "qemu-user-static"], ["update-binfmts", "binfmt-support"]]);
  if (!existsSync("/proc/sys/fs/binfmt_misc/status")) await run(["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"]);
  if (!existsSync(`/proc/sys/fs/binfmt_misc/${qemu}`)) {
    await run([tool("update-binfmts"), "--enable", qemu]).catch(async () => run([tool("update-binfmts"), "--import", qemu]));
  }
  if (!existsSync(`/proc/sys/fs/binfmt_misc/${qemu}`)) throw new Error(`image build: ${qemu} is not registered with binfmt_misc; cannot run ${arch} package scripts`);
}

export async function debianLayer(board: Board, cacheDir: string, log: (l: string) => void): Promise<{ tar: string; key: string; cached: boolean }> {
  const key = debianLayerKey(board);
  const dir = join(cacheDir, "debian");
  const tar = join(dir, `${SUITE}-${board.arch}-${key}.tar`);
  if (existsSync(tar)) return { tar, key, cached: true };
  needTools([["mmdebstrap", "mmdebstrap"]]);
  await ensureForeignArch(board.arch);
  mkdirSync(dir, { recursive: true });
  const tmp = `${tar}.tmp-${process.pid}`;
  const packages = packageList(board);
  log(`debian layer ${basename(tar)}: mmdebstrap ${SUITE}/${board.arch}, ${packages.length} packages and their dependencies`);
  const noDocs = ["/usr/share/man/*", "/usr/share/doc/*", "/usr/share/info/*", "/usr/share/locale/*", "/usr/share/lintian/*", "/usr/share/bug/*"];
  await run(
    [
      "mmdebstrap",
      "--mode=root",
      "--variant=essential",
      `--arch=${board.arch}`,
      "--format=tar",
      `--include=${packages.join(",")}`,
      "--aptopt=APT::Install-Recommends \"false\"",
      "--dpkgopt=force-unsafe-io",
      ...noDocs.map((p) => `--dpkgopt=path-exclude=${p}`),
      "--dpkgopt=path-include=/usr/share/doc/*/copyright",
      // A merged /usr from the start, so the usrmerge converter (and the perl it needs) is never installed.
      "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
      "--customize-hook=rm -f \"$1\"/etc/machine-id \"$1\"/var/lib/dbus/machine-id; rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*",
      SUITE,
      tmp,
      ...MIRRORS,
    ],
    { env: { SOURCE_DATE_EPOCH: String(SOURCE_DATE_EPOCH), TMPDIR: existsSync("/dev/shm") ? "/dev/shm" : "/tmp" } },
  ).catch((e) => {
    rmSync(tmp, { force: true });
    throw e;
  });
  renameSync(tmp, tar);
  // Keep the two newest layers per architecture.
  const layers = readdirSync(dir)
    .filter((f) => f.startsWith(`${SUITE}-${board.arch}-`) && f.endsWith(".tar"))
    .map((f) => ({ f, t: statSync(join(dir, f)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const { f } of layers.slice(2)) rmSync(join(dir, f), { force: true });
  return { tar, key, cached: false };
}

// ---------------------------------------------------------------------------------------------------------------

/** Kernel modules to load, in dependency order, from the tree's modules.dep; built-in and absent ones are skipped. */
export function moduleLoadOrder(modulesDir: string, wanted: string[]): { order: string[]; builtin: string[]; absent: string[] } {
  const norm = (n: string) => n.replace(/-/g, "_");
  const deps = new Map<string, { path: string; deps: string[] }>();
  for (const line of readFileSync(join(modulesDir, "modules.dep"), "utf8").split("\n")) {
    const m = line.match(/^([^:]+):\s*(.*)$/);
    if (!m) continue;
    const name = norm(basename(m[1]!).replace(/\.ko(\.\w+)?$/, ""));
    deps.set(name, { path: m[1]!, deps: m[2]!.split(/\s+/).filter(Boolean) });
  }
  const byPath = new Map([...deps].map(([n, d]) => [d.path, n]));
  const builtinFile = join(modulesDir, "modules.builtin");
  const builtinSet = new Set(
    existsSync(builtinFile)
      ? readFileSync(builtinFile, "utf8")
          .split("\n")
          .filter(Boolean)
          .map((p) => norm(basename(p).replace(/\.ko$/, "")))
      : [],
  );
  const order: string[] = [];
  const seen = new Set<string>();
  const builtin: string[] = [];
  const absent: string[] = [];
  const visit = (name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    const d = deps.get(name)!;
    // modules.dep lists the dependencies so that the last one loads first.
    for (const p of [...d.deps].reverse()) visit(byPath.get(p)!);
    order.push(d.path);
  };
  for (const w of wanted.map(norm)) {
    if (deps.has(w)) visit(w);
    else if (builtinSet.has(w)) builtin.push(w);
    else absent.push(w);
  }
  return { order, builtin, absent };
}

async function buildInitramfs(root: string, kernel: string, board: Board, work: string, log: (l: string) => void): Promise<void> {
  const dir = join(work, "initramfs");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "bin"), { recursive: true });
  copyFileSync(join(root, "usr", "bin", "busybox"), join(dir, "bin", "busybox"));
  for (const a of INITRAMFS_APPLETS) symlinkSync("busybox", join(dir, "bin", a));
  copyFileSync(join(ROOTFS_DIR, "initramfs", "init"), join(dir, "init"));
  await run(["chmod", "0755", join(dir, "init"), join(dir, "bin", "busybox")]);
  const modulesDir = join(root, "usr", "lib", "modules", kernel);
  const { order, builtin, absent } = moduleLoadOrder(modulesDir, board.initramfsModules);
  if (absent.length) log(`initramfs: ${kernel} has no module ${absent.join(", ")} (skipped)`);
  for (const rel of order) {
    mkdirSync(join(dir, "lib", "modules", dirname(rel)), { recursive: true });
    copyFileSync(join(modulesDir, rel), join(dir, "lib", "modules", rel));
  }
  writeFileSync(join(dir, "modules.order"), order.join("\n") + "\n");
  log(`initramfs: ${order.length} modules (${builtin.length} built in)`);
  const out = join(root, "boot", "initrd.img");
  await run(["sh", "-c", `find . -exec touch -h -d @${SOURCE_DATE_EPOCH} {} + && find . -print0 | LC_ALL=C sort -z | cpio -o -0 -H newc --reproducible -R 0:0 --quiet | gzip -n -9 > ${JSON.stringify(out)}`], { cwd: dir });
}

function dpkgPackages(root: string): string[] {
  const status = readFileSync(join(root, "var", "lib", "dpkg", "status"), "utf8");
  const out: string[] = [];
  for (const stanza of status.split("\n\n")) {
    const name = stanza.match(/^Package: (.+)$/m)?.[1];
    const version = stanza.match(/^Version: (.+)$/m)?.[1];
    const arch = stanza.match(/^Architecture: (.+)$/m)?.[1];
    if (name && /^Status: install ok installed$/m.test(stanza)) out.push(`${name}:${arch} ${version}`);
  }
  return out.sort();
}

function replaceWithSymlink(path: string, target: string): void {
  rmSync(path, { recursive: true, force: true });
  symlinkSync(target, path);
}

/** Writes `src` into `disk` at `offset`, skipping zero blocks so the disk file stays sparse. */
function writeAt(disk: string, src: string, offset: number): void {
  const out = openSync(disk, "r+");
  const inp = openSync(src, "r");
  const buf = Buffer.alloc(MiB);
  let pos = 0;
  try {
    for (;;) {
      const n = readSync(inp, buf, 0, buf.length, pos);
      if (n <= 0) break;
      const chunk = buf.subarray(0, n);
      if (chunk.some((b) => b !== 0)) writeSync(out, chunk, 0, n, offset + pos);
      pos += n;
    }
  } finally {
    closeSync(inp);
    closeSync(out);
  }
}

async function makeVfat(file: string, sizeMiB: number, label: string, files: { src: string; dest: string }[]): Promise<void> {
  rmSync(file, { force: true });
  const fat32 = sizeMiB >= 64 ? ["-F", "32", "-s", "1"] : [];
  await run([tool("mkfs.vfat"), "-C", "--invariant", "-i", guidOf(label).slice(0, 8), "-n", label, ...fat32, file, String(sizeMiB * 1024)]);
  const env = { MTOOLS_SKIP_CHECK: "1", SOURCE_DATE_EPOCH: String(SOURCE_DATE_EPOCH) };
  const dirs = new Set<string>();
  for (const f of files) {
    let d = dirname(f.dest);
    const chain: string[] = [];
    while (d && d !== "." && d !== "/") {
      chain.unshift(d);
      d = dirname(d);
    }
    for (const c of chain) {
      if (dirs.has(c)) continue;
      dirs.add(c);
      await run(["mmd", "-i", file, `::${c}`], { env });
    }
    await run(["touch", "-d", `@${SOURCE_DATE_EPOCH}`, f.src]);
    await run(["mcopy", "-m", "-i", file, f.src, `::${f.dest}`], { env });
  }
}

function parseSgdisk(out: string): PartitionInfo[] {
  const parts: PartitionInfo[] = [];
  for (const line of out.split("\n")) {
    const m = line.match(/^\s*(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+\S+\s+\S+\s+(.+)$/);
    if (!m) continue;
    const start = Number(m[2]);
    const end = Number(m[3]);
    parts.push({ number: Number(m[1]), label: m[4]!.trim(), startBytes: start * SECTOR, sizeBytes: (end - start + 1) * SECTOR });
  }
  return parts;
}

export function imageKey(board: Board, layerKey: string, binarySha: string, configDir?: string, release = ""): string {
  const config = configDir && existsSync(configDir) ? readdirSync(configDir).sort().map((f) => `${f}:${sha256File(join(configDir, f))}`) : [];
  return sha256Of(IMAGE_VERSION, layerKey, binarySha, String(SOURCE_DATE_EPOCH), release, ...recipeFiles(board).map((f) => `${relative(ROOT, f)}:${sha256File(f)}`), ...config).slice(0, 20);
}

/** Builds (or finds in the cache) the image of `board` around `binary`. Needs root (mmdebstrap, root-owned files). */
export async function buildImage(opts: BuildOptions): Promise<BuiltImage> {
  const log = opts.log ?? ((l: string) => console.log(`image: ${l}`));
  const board = loadBoard(opts.board);
  const cacheDir = opts.cacheDir ?? DEFAULT_CACHE;
  if (!existsSync(opts.binary)) throw new Error(`no evebox binary at ${opts.binary} (npx bun build.ts --target ${board.binaryTarget})`);
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const lap = (name: string, since: number) => (timings[name] = Math.round(performance.now() - since));

  const binarySha = sha256File(opts.binary);
  const layerKey = debianLayerKey(board);
  const version = opts.version ?? packageVersion();
  const vendor = await importPrivateKey(readFileSync(opts.vendorKey ?? (await devVendorKey(cacheDir)), "utf8"));
  const key = imageKey(board, layerKey, binarySha, opts.configDir, `${version}:${vendor.id}`);
  const outDir = join(cacheDir, "images", `${board.name}-${key}`);
  const manifestFile = join(outDir, "manifest.json");
  if (existsSync(manifestFile)) {
    const manifest = JSON.parse(readFileSync(manifestFile, "utf8")) as ImageManifest;
    return { dir: outDir, disk: join(outDir, manifest.disk.file), squashfs: join(outDir, manifest.squashfs.file), update: join(outDir, manifest.update.file), manifest, cached: true };
  }
  if (process.getuid?.() !== 0) throw new Error("image build needs root (mmdebstrap --mode=root, a root file system owned by root)");
  needTools([
    ["mksquashfs", "squashfs-tools"],
    ["mkfs.vfat", "dosfstools"],
    ["mcopy", "mtools"],
    ["sgdisk", "gdisk"],
    ["grub-mkimage", "grub-common"],
    ["cpio", "cpio"],
  ]);

  let t = performance.now();
  const layer = await debianLayer(board, cacheDir, log);
  lap(layer.cached ? "debianLayerCached" : "debianLayer", t);

  mkdirSync(join(cacheDir, "images"), { recursive: true });
  const work = join(cacheDir, "images", `.work-${board.name}-${key}-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const root = join(work, "root");
    mkdirSync(root);
    t = performance.now();
    await run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", layer.tar, "-C", root]);
    lap("extract", t);

    // ---- the root file system
    t = performance.now();
    const kernels = readdirSync(join(root, "usr", "lib", "modules"));
    if (kernels.length !== 1) throw new Error(`expected one kernel in the root file system, found ${kernels.join(", ") || "none"}`);
    const kernel = kernels[0]!;
    if (!existsSync(join(root, "usr", "lib", "modules", kernel, "modules.dep"))) await run(["depmod", "-b", root, kernel]);
    const vmlinuz = readdirSync(join(root, "boot")).find((f) => f === `vmlinuz-${kernel}`);
    if (!vmlinuz) throw new Error(`no /boot/vmlinuz-${kernel} in the root file system`);
    renameSync(join(root, "boot", vmlinuz), join(root, "boot", "vmlinuz"));
    await buildInitramfs(root, kernel, board, work, log);

    copyFileSync(opts.binary, join(root, "usr", "bin", "evebox"));
    await run(["chmod", "0755", join(root, "usr", "bin", "evebox")]);
    replaceWithSymlink(join(root, "usr", "sbin", "init"), "../bin/evebox");
    mkdirSync(join(root, "usr", "lib", "evebox", "busybox"), { recursive: true });
    for (const a of DEBUG_APPLETS) symlinkSync("/usr/bin/busybox", join(root, "usr", "lib", "evebox", "busybox", a));
    // The root is read-only: what programs write under /etc goes to /run.
    replaceWithSymlink(join(root, "etc", "resolv.conf"), "../run/evebox/resolv.conf");
    replaceWithSymlink(join(root, "etc", "docker"), "../run/evebox/docker");
    replaceWithSymlink(join(root, "etc", "mtab"), "../proc/self/mounts");
    writeFileSync(join(root, "etc", "hostname"), "evebox\n");
    writeFileSync(join(root, "etc", "hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (const d of ["persist", "config", "efi"]) mkdirSync(join(root, d), { recursive: true });
    const eveboxVersion = (await run([opts.binary, "version"]).catch(() => "")).trim().split(" ")[1] ?? JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
    const packages = dpkgPackages(root);
    mkdirSync(join(root, "etc", "evebox"), { recursive: true });
    copyFileSync(join(BOARDS_DIR, board.name, "board.json"), join(root, "etc", "evebox", "board.json"));
    writeFileSync(join(root, "etc", "evebox", "packages.txt"), packages.join("\n") + "\n");
    writeFileSync(
      join(root, "etc", "evebox", "release.json"),
      JSON.stringify({ version, board: board.name, arch: board.arch, evebox: eveboxVersion, kernel, image: key, suite: SUITE, sourceDateEpoch: SOURCE_DATE_EPOCH }, null, 2) + "\n",
    );
    // The vendor keys an update must be signed by (src/baseos/).
    mkdirSync(join(root, "etc", "evebox", "vendor-keys"), { recursive: true });
    writeFileSync(join(root, "etc", "evebox", "vendor-keys", `${vendor.id}.pem`), vendor.publicPem);

    // GRUB is built from the target's own modules before they are pruned from the root.
    const efiBinary = join(work, board.grub.efiFile);
    await run(["grub-mkimage", "-d", join(root, "usr", "lib", "grub", board.grub.platform), "-O", board.grub.platform, "-o", efiBinary, "-p", "/EFI/BOOT", ...GRUB_MODULES]);

    for (const pattern of pruneList()) {
      for (const p of new Bun.Glob(pattern).scanSync({ cwd: root, onlyFiles: false, dot: true, followSymlinks: false })) rmSync(join(root, p), { recursive: true, force: true });
    }
    const rootBytes = Number((await run(["du", "-sb", root])).split(/\s/)[0]);
    lap("customize", t);

    t = performance.now();
    const squashfs = join(work, "rootfs.squashfs");
    await run(["mksquashfs", root, squashfs, "-noappend", "-comp", "gzip", "-Xcompression-level", "6", "-b", "262144", "-all-time", String(SOURCE_DATE_EPOCH), "-mkfs-time", String(SOURCE_DATE_EPOCH), "-no-progress", "-quiet"]);
    lap("squashfs", t);
    const squashBytes = statSync(squashfs).size;
    if (squashBytes > board.partitions.imgMiB * MiB) throw new Error(`the root file system (${(squashBytes / MiB).toFixed(0)} MiB) does not fit the ${board.partitions.imgMiB} MiB image partition of ${board.name}`);

    // ---- EFI system partition, CONFIG, and the disk
    t = performance.now();
    const grubCfg = join(work, "grub.cfg");
    // "serial": the first UART only; "console serial": both; "console": the firmware's console only (arm64 UEFI
    // has no PC UART for GRUB; the firmware routes its console to the board's serial port itself).
    const terminal = {
      serial: "serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial",
      "console serial": "serial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial",
      console: "terminal_input console\nterminal_output console",
    }[board.grub.terminal];
    if (!terminal) throw new Error(`board ${board.name}: grub.terminal must be "serial", "console serial" or "console"`);
    writeFileSync(grubCfg, readFileSync(join(ROOTFS_DIR, "grub", "grub.cfg"), "utf8").replace("@TERMINAL@", terminal).replace("@TIMEOUT@", String(board.grub.timeout)).replaceAll("@CMDLINE@", board.cmdline));
    const grubenv = join(work, "grubenv");
    writeFileSync(grubenv, formatBootEnv(initialBootEnv()));
    const esp = join(work, "esp.img");
    await makeVfat(esp, board.partitions.efiMiB, "EFI", [
      { src: efiBinary, dest: `EFI/BOOT/${board.grub.efiFile}` },
      { src: grubCfg, dest: "EFI/BOOT/grub.cfg" },
      { src: grubenv, dest: "EFI/BOOT/grubenv" },
    ]);
    const config = join(work, "config.img");
    const configFiles = opts.configDir ? readdirSync(opts.configDir).sort().map((f) => ({ src: join(opts.configDir!, f), dest: f })) : [];
    await makeVfat(config, board.partitions.configMiB, "CONFIG", configFiles);

    const p = board.partitions;
    const disk = join(work, "disk.img");
    const totalBytes = (1 + p.efiMiB + 2 * p.imgMiB + p.configMiB + p.persistMiB + 1) * MiB;
    closeSync(openSync(disk, "w"));
    await run(["truncate", "-s", String(totalBytes), disk]);
    await run([
      "sgdisk",
      "-o",
      "-U", guidOf(`${board.name}:disk`),
      "-n", `1:2048:+${p.efiMiB}M`, "-t", "1:EF00", "-c", "1:EFI System", "-u", `1:${guidOf(`${board.name}:1`)}`,
      "-n", `2:0:+${p.imgMiB}M`, "-t", "2:8300", "-c", "2:IMGA", "-u", `2:${guidOf(`${board.name}:2`)}`,
      "-n", `3:0:+${p.imgMiB}M`, "-t", "3:8300", "-c", "3:IMGB", "-u", `3:${guidOf(`${board.name}:3`)}`,
      "-n", `4:0:+${p.configMiB}M`, "-t", "4:0700", "-c", "4:CONFIG", "-u", `4:${guidOf(`${board.name}:4`)}`,
      "-n", "5:0:0", "-t", "5:8300", "-c", "5:PERSIST", "-u", `5:${guidOf(`${board.name}:5`)}`,
      disk,
    ]);
    const partitions = parseSgdisk(await run(["sgdisk", "-p", disk]));
    const at = (label: string) => partitions.find((x) => x.label === label)!.startBytes;
    writeAt(disk, esp, at("EFI System"));
    writeAt(disk, squashfs, at("IMGA"));
    writeAt(disk, config, at("CONFIG"));
    lap("disk", t);

    t = performance.now();
    const update = join(work, "update.bin");
    await buildBundle(squashfs, update, { version, board: board.name, arch: board.arch, buildTime: new Date(SOURCE_DATE_EPOCH * 1000).toISOString() }, readFileSync(opts.vendorKey ?? (await devVendorKey(cacheDir)), "utf8"));
    lap("update", t);

    t = performance.now();
    const manifest: ImageManifest = {
      board: board.name,
      key,
      eveboxVersion,
      version,
      vendorKeyId: vendor.id,
      update: { file: "update.bin", bytes: statSync(update).size },
      kernel,
      packages: packages.length,
      sourceDateEpoch: SOURCE_DATE_EPOCH,
      squashfs: { file: "rootfs.squashfs", bytes: squashBytes, sha256: sha256File(squashfs) },
      disk: { file: "disk.img", bytes: statSync(disk).size, allocatedBytes: statSync(disk).blocks * 512 },
      rootBytes,
      partitions,
      timings,
    };
    lap("hash", t);
    timings.total = Math.round(performance.now() - t0);
    writeFileSync(join(work, "rootfs.squashfs.sha256"), `${manifest.squashfs.sha256}  rootfs.squashfs\n`);
    writeFileSync(join(work, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
    // Only the artifacts go into the cache; the unpacked root and the intermediate files go.
    const keep = join(work, "out");
    mkdirSync(keep);
    for (const f of ["disk.img", "rootfs.squashfs", "rootfs.squashfs.sha256", "update.bin", "manifest.json"]) renameSync(join(work, f), join(keep, f));
    rmSync(outDir, { recursive: true, force: true });
    renameSync(keep, outDir);
    pruneImages(join(cacheDir, "images"), board.name, 3);
    return { dir: outDir, disk: join(outDir, "disk.img"), squashfs: join(outDir, "rootfs.squashfs"), update: join(outDir, "update.bin"), manifest, cached: false };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Keeps the `keep` newest images of a board in the cache. */
function pruneImages(dir: string, board: string, keep: number): void {
  const images = readdirSync(dir)
    .filter((f) => f.startsWith(`${board}-`) && existsSync(join(dir, f, "manifest.json")))
    .map((f) => ({ f, t: statSync(join(dir, f, "manifest.json")).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const { f } of images.slice(keep)) rmSync(join(dir, f), { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------------------------

export async function buildBinary(target: Board["binaryTarget"]): Promise<string> {
  const p = Bun.spawn([process.execPath, "build.ts", "--target", target], { cwd: ROOT, stdout: "pipe", stderr: "pipe", env: { ...process.env, BUN_BE_BUN: "1" } });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const binary = join(ROOT, "dist", `evebox-linux-${target}`);
  if ((await p.exited) !== 0 || !existsSync(binary)) throw new Error(`building evebox for ${target} failed:\n${out}\n${err}`);
  return binary;
}

function mib(n: number): string {
  return `${(n / MiB).toFixed(1)} MiB`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Bun.argv.slice(2),
    options: { board: { type: "string" }, binary: { type: "string" }, config: { type: "string" }, out: { type: "string" }, cache: { type: "string" }, version: { type: "string" }, "vendor-key": { type: "string" } },
    strict: true,
  });
  const boardName = values.board ?? "qemu-x86_64";
  try {
    const board = loadBoard(boardName);
    const t0 = performance.now();
    const binary = values.binary ?? (await buildBinary(board.binaryTarget));
    const img = await buildImage({ board: boardName, binary, configDir: values.config, cacheDir: values.cache, version: values.version, vendorKey: values["vendor-key"] });
    const out = values.out ?? join(ROOT, "dist", "image", boardName);
    mkdirSync(out, { recursive: true });
    for (const f of ["disk.img", "rootfs.squashfs", "rootfs.squashfs.sha256", "update.bin", "manifest.json"]) {
      rmSync(join(out, f), { force: true });
      await run(["cp", "--reflink=auto", "--sparse=always", join(img.dir, f), join(out, f)]);
    }
    const m = img.manifest;
    console.log(`image: ${boardName} ${img.cached ? "(from the cache) " : ""}in ${((performance.now() - t0) / 1000).toFixed(1)} s → ${relative(process.cwd(), out) || "."}/`);
    console.log(`  disk.img         ${mib(m.disk.bytes)} (${mib(m.disk.allocatedBytes)} allocated)`);
    console.log(`  rootfs.squashfs  ${mib(m.squashfs.bytes)} (root ${mib(m.rootBytes)} unpacked)  sha256 ${m.squashfs.sha256.slice(0, 16)}…`);
    console.log(`  update.bin       ${mib(m.update.bytes)} (release ${m.version}, signed by vendor key ${m.vendorKeyId})`);
    console.log(`  kernel ${m.kernel}, ${m.packages} Debian packages, evebox ${m.eveboxVersion}`);
    for (const p of m.partitions) console.log(`  p${p.number} ${p.label.padEnd(11)} ${mib(p.sizeBytes).padStart(11)} at ${mib(p.startBytes)}`);
    if (!img.cached) console.log(`  timings (ms): ${Object.entries(m.timings).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  } catch (e) {
    console.error(`image: ${(e as Error).message}`);
    process.exit(1);
  }
}
