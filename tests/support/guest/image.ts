// The tiny test guest for tests/vms.test.ts and bench/vms.ts: a Debian cloud kernel and a busybox initramfs on a
// BIOS-bootable FAT disk (syslinux), as qcow2. Built without a loop device (mkfs.vfat -C, syslinux --install on
// the image file, mcopy) and cached under .cache/guest/<hash of the inputs>/, so a run builds it at most once.
// `npx bun tests/support/guest/image.ts` builds it (CI may do this once before the tests).
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../run.ts";

const ROOT = join(import.meta.dir, "..", "..", "..");
export const GUEST_CACHE = join(ROOT, ".cache", "guest");
const DEB_DIR = join(GUEST_CACHE, "debs");
const INIT_SCRIPT = join(import.meta.dir, "init.sh");
/** Bump when the build steps change in a way the hashed inputs do not show. */
const BUILD_VERSION = "3";
/** Kernel modules the guest loads (in this order): virtio consoles, disks and NICs, the ACPI power button, FAT. */
const MODULES = [
  "drivers/virtio/virtio_ring.ko",
  "drivers/virtio/virtio.ko",
  "drivers/virtio/virtio_pci_legacy_dev.ko",
  "drivers/virtio/virtio_pci_modern_dev.ko",
  "drivers/virtio/virtio_pci.ko",
  "drivers/char/virtio_console.ko",
  "drivers/block/virtio_blk.ko",
  "net/core/failover.ko",
  "drivers/net/net_failover.ko",
  "drivers/net/virtio_net.ko",
  "drivers/acpi/button.ko",
  "drivers/input/evdev.ko",
  "fs/fat/fat.ko",
  "fs/fat/vfat.ko",
  "fs/nls/nls_cp437.ko",
  "fs/nls/nls_ascii.ko",
];
const SYSLINUX_CFG = [
  "DEFAULT linux",
  "PROMPT 0",
  "TIMEOUT 0",
  "LABEL linux",
  "  KERNEL vmlinuz",
  "  INITRD initrd.gz",
  "  APPEND console=ttyS0 quiet",
  "",
].join("\n");
/** The guest prints this on each console once its shell is there. */
export const GUEST_READY = "EVEBOX-GUEST-READY";
/** The shell prompt of the guest. */
export const GUEST_PROMPT = "guest# ";

export interface GuestImage {
  /** BIOS-bootable qcow2 disk (syslinux → kernel + initramfs). */
  disk: string;
  /** The same kernel and initramfs, for direct `-kernel` boots. */
  kernel: string;
  initrd: string;
  /** An HTML error page of the kind a misconfigured datastore serves instead of an image. */
  notADisk: string;
  kernelPackage: string;
}

function need(tool: string, pkg: string): void {
  if (!Bun.which(tool) && !existsSync(`/usr/sbin/${tool}`) && !existsSync(`/sbin/${tool}`))
    throw new Error(`guest image: ${tool} not found; install the Debian package ${pkg}`);
}

function toolPath(tool: string): string {
  return Bun.which(tool) ?? [`/usr/sbin/${tool}`, `/sbin/${tool}`].find(existsSync) ?? tool;
}

const kernelVersionOf = (deb: string) => Number(deb.match(/linux-image-6\.1\.0-(\d+)-cloud-amd64_/)?.[1] ?? -1);

/** The newest cached Debian 12 cloud kernel package, or the newest apt knows (downloaded once). */
async function kernelDeb(): Promise<string> {
  await mkdir(DEB_DIR, { recursive: true });
  const cached = readdirSync(DEB_DIR).filter((f) => kernelVersionOf(f) >= 0);
  if (cached.length) return join(DEB_DIR, cached.sort((a, b) => kernelVersionOf(b) - kernelVersionOf(a))[0]!);
  const names = (await run(["apt-cache", "search", "--names-only", "^linux-image-6\\.1\\.0-[0-9]+-cloud-amd64$"]))
    .split("\n")
    .map((l) => l.split(" ")[0]!)
    .filter((n) => /^linux-image-6\.1\.0-\d+-cloud-amd64$/.test(n))
    .sort((a, b) => kernelVersionOf(`${b}_`) - kernelVersionOf(`${a}_`));
  if (!names.length) throw new Error("guest image: apt knows no linux-image-6.1.0-*-cloud-amd64 (run apt-get update)");
  await run(["apt-get", "download", names[0]!], { cwd: DEB_DIR });
  const got = readdirSync(DEB_DIR).find((f) => f.startsWith(`${names[0]}_`) && f.endsWith(".deb"));
  if (!got) throw new Error(`guest image: apt-get download ${names[0]} left no .deb in ${DEB_DIR}`);
  return join(DEB_DIR, got);
}

function busyboxPath(): string {
  for (const p of ["/bin/busybox", "/usr/bin/busybox"]) if (existsSync(p)) return p;
  throw new Error("guest image: busybox not found; install busybox-static");
}

const sha256 = (data: string | Uint8Array) => createHash("sha256").update(data).digest("hex");

let building: Promise<GuestImage> | null = null;

/** Builds (once, cached across runs) and returns the test guest's files. */
export function ensureGuestImage(): Promise<GuestImage> {
  building ??= build();
  return building;
}

async function build(): Promise<GuestImage> {
  for (const [tool, pkg] of [
    ["mkfs.vfat", "dosfstools"],
    ["mcopy", "mtools"],
    ["syslinux", "syslinux"],
    ["cpio", "cpio"],
    ["qemu-img", "qemu-utils"],
    ["dpkg", "dpkg"],
  ] as const)
    need(tool, pkg);
  const deb = await kernelDeb();
  const busybox = busyboxPath();
  const init = readFileSync(INIT_SCRIPT);
  const key = sha256(
    [BUILD_VERSION, deb.split("/").pop(), sha256(readFileSync(busybox)), sha256(init), SYSLINUX_CFG, MODULES.join(",")].join("\n"),
  ).slice(0, 16);
  const dir = join(GUEST_CACHE, key);
  const image: GuestImage = {
    disk: join(dir, "guest.qcow2"),
    kernel: join(dir, "vmlinuz"),
    initrd: join(dir, "initrd.gz"),
    notADisk: join(dir, "not-a-disk.img"),
    kernelPackage: deb.split("/").pop()!,
  };
  if (existsSync(join(dir, "done"))) return image;

  await mkdir(GUEST_CACHE, { recursive: true });
  const work = await mkdtemp(join(GUEST_CACHE, "build-"));
  try {
    const x = join(work, "deb");
    await run(["dpkg", "-x", deb, x]);
    const vmlinuz = (await readdir(join(x, "boot"))).find((f) => f.startsWith("vmlinuz-"));
    const kver = (await readdir(join(x, "lib", "modules")))[0];
    if (!vmlinuz || !kver) throw new Error(`guest image: ${deb} holds no kernel`);
    const out = join(work, "out");
    await mkdir(out);
    await copyFile(join(x, "boot", vmlinuz), join(out, "vmlinuz"));

    // initramfs: busybox, /init and the modules, as a gzipped newc cpio.
    const rootfs = join(work, "rootfs");
    await mkdir(join(rootfs, "bin"), { recursive: true });
    await mkdir(join(rootfs, "lib", "modules"), { recursive: true });
    await copyFile(busybox, join(rootfs, "bin", "busybox"));
    await chmod(join(rootfs, "bin", "busybox"), 0o755);
    await writeFile(join(rootfs, "init"), init, { mode: 0o755 });
    for (const m of MODULES) await copyFile(join(x, "lib", "modules", kver, "kernel", m), join(rootfs, "lib", "modules", m.split("/").pop()!));
    const files = (await run(["find", ".", "-mindepth", "1"], { cwd: rootfs })).split("\n").filter(Boolean).sort().join("\n") + "\n";
    const cpio = Bun.spawn(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"], { cwd: rootfs, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    cpio.stdin.write(files);
    cpio.stdin.end();
    const archive = new Uint8Array(await new Response(cpio.stdout).arrayBuffer());
    if ((await cpio.exited) !== 0) throw new Error(`guest image: cpio failed: ${await new Response(cpio.stderr).text()}`);
    await writeFile(join(out, "initrd.gz"), Bun.gzipSync(archive));

    // BIOS-bootable FAT disk: no partition table, syslinux in the FAT boot sector.
    const fat = join(work, "disk.fat");
    const payload = (await stat(join(out, "vmlinuz"))).size + (await stat(join(out, "initrd.gz"))).size;
    const sizeKiB = Math.ceil(payload / 1024 / 1024 + 8) * 1024;
    await run([toolPath("mkfs.vfat"), "-C", "-n", "EVEBOXGUEST", fat, String(sizeKiB)]);
    await run(["syslinux", "--install", fat]);
    await writeFile(join(work, "syslinux.cfg"), SYSLINUX_CFG);
    await run(["mcopy", "-i", fat, join(out, "vmlinuz"), join(out, "initrd.gz"), join(work, "syslinux.cfg"), "::/"]);
    await run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", fat, join(out, "guest.qcow2")]);

    await writeFile(
      join(out, "not-a-disk.img"),
      "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>" +
        "<p>The requested URL was not found on this server.</p></body></html>\n",
    );
    await writeFile(join(out, "done"), `${image.kernelPackage}\n`);
    await rm(dir, { recursive: true, force: true });
    await rename(out, dir);
    // Builds from older inputs are of no further use.
    for (const old of readdirSync(GUEST_CACHE)) if (/^[0-9a-f]{16}$/.test(old) && old !== key) await rm(join(GUEST_CACHE, old), { recursive: true, force: true });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return image;
}

if (import.meta.main) {
  const t0 = performance.now();
  const image = await ensureGuestImage();
  console.log(`guest image ready in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${image.disk} (${image.kernelPackage})`);
}
