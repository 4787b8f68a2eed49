// The images tests/baseos.test.ts updates a device with: v1 and v2 of the qemu-x86_64 image (same Debian layer and
// binary, only the release version differs; cached by input hash like any image), and two small bad systems built
// from v1's kernel and signed with the same vendor key — one whose /sbin/init exits at once (the kernel panics
// "attempted to kill init"), one whose initramfs crashes the kernel (sysrq 'c').
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildBundle } from "../../src/baseos/bundle.ts";
import { buildImage, type BuiltImage, DEFAULT_CACHE, devVendorKey, packageVersion } from "../../rootfs/build.ts";
import { mksquashfs } from "./bundles.ts";
import { ensureBinary } from "./evebox.ts";
import { IMAGE_BOARD } from "./image.ts";
import { run } from "./run.ts";

export interface UpdateImages {
  v1: BuiltImage;
  v2: BuiltImage;
  /** Bundles (update files) of the bad systems. */
  exits: { file: string; version: string };
  panics: { file: string; version: string };
}

/** A shell command line (the paths in it are the builder's own temporary ones). */
const sh = (cmd: string, cwd?: string) => run(["sh", "-c", cmd], { cwd });

/** A bad system around v1's kernel: signed, for this board, so only booting it can tell. */
async function badBundle(v1: BuiltImage, kind: "exits" | "panics", version: string, out: string): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), `evebox-bad-${kind}-`));
  try {
    const from = join(work, "from");
    const pstore = `usr/lib/modules/${v1.manifest.kernel}/kernel/drivers/firmware/efi/efi-pstore.ko`;
    await sh(`unsquashfs -q -n -d ${from} ${v1.squashfs} boot/vmlinuz boot/initrd.img usr/bin/busybox ${pstore}`);
    const root = join(work, "root");
    mkdirSync(join(root, "boot"), { recursive: true });
    mkdirSync(join(root, "usr", "bin"), { recursive: true });
    mkdirSync(join(root, "etc", "evebox"), { recursive: true });
    copyFileSync(join(from, "boot", "vmlinuz"), join(root, "boot", "vmlinuz"));
    copyFileSync(join(from, "usr", "bin", "busybox"), join(root, "usr", "bin", "busybox"));
    chmodSync(join(root, "usr", "bin", "busybox"), 0o755);
    symlinkSync("usr/bin", join(root, "bin"));
    writeFileSync(join(root, "etc", "evebox", "release.json"), JSON.stringify({ version, board: IMAGE_BOARD, arch: "amd64", test: kind }));
    if (kind === "exits") {
      // The real initramfs mounts this slot and hands over to /sbin/init, which exits at once.
      copyFileSync(join(from, "boot", "initrd.img"), join(root, "boot", "initrd.img"));
      mkdirSync(join(root, "sbin"));
      writeFileSync(join(root, "sbin", "init"), "#!/usr/bin/busybox sh\necho 'test system: /sbin/init exits at once'\nexit 1\n");
      chmodSync(join(root, "sbin", "init"), 0o755);
    } else {
      // An initramfs that crashes the kernel before any root is mounted (efi_pstore loaded first, as every evebox
      // initramfs does, so the crash leaves its record).
      const ird = join(work, "initramfs");
      mkdirSync(join(ird, "bin"), { recursive: true });
      copyFileSync(join(from, pstore), join(ird, "efi-pstore.ko"));
      copyFileSync(join(from, "usr", "bin", "busybox"), join(ird, "bin", "busybox"));
      chmodSync(join(ird, "bin", "busybox"), 0o755);
      writeFileSync(join(ird, "init"), "#!/bin/busybox sh\n/bin/busybox mkdir -p /proc\n/bin/busybox mount -t proc proc /proc\n/bin/busybox insmod /efi-pstore.ko\necho 'test system: crashing the kernel' >/dev/console\necho 1 >/proc/sys/kernel/sysrq\necho c >/proc/sysrq-trigger\n");
      chmodSync(join(ird, "init"), 0o755);
      await sh(`find . -print0 | cpio -o -0 -H newc -R 0:0 --quiet | gzip -n > ${join(root, "boot", "initrd.img")}`, ird);
    }
    const sq = join(work, "rootfs.squashfs");
    await mksquashfs(root, sq);
    await buildBundle(sq, `${out}.tmp`, { version, board: IMAGE_BOARD, arch: "amd64" }, await Bun.file(await devVendorKey()).text());
    renameSync(`${out}.tmp`, out);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Bump when badBundle changes. */
const BAD_RECIPE = "2";
let building: Promise<UpdateImages> | null = null;

export function ensureUpdateImages(log: (l: string) => void): Promise<UpdateImages> {
  building ??= (async () => {
    const t0 = performance.now();
    const built = await ensureBinary();
    const dir = mkdtempSync(join(tmpdir(), "evebox-baseos-bin-"));
    const binary = join(dir, "evebox");
    copyFileSync(built, binary);
    try {
      const base = packageVersion();
      const v1 = await buildImage({ board: IMAGE_BOARD, binary, version: base, log });
      log(`v1 (${v1.manifest.version}) ${v1.cached ? "cached" : "built"}: update.bin ${(v1.manifest.update.bytes / 2 ** 20).toFixed(1)} MiB`);
      const v2 = await buildImage({ board: IMAGE_BOARD, binary, version: `${base}+test.2`, log });
      log(`v2 (${v2.manifest.version}) ${v2.cached ? "cached" : "built"}: update.bin ${(v2.manifest.update.bytes / 2 ** 20).toFixed(1)} MiB`);
      const badDir = join(DEFAULT_CACHE, "baseos-test");
      mkdirSync(badDir, { recursive: true });
      const exits = { file: join(badDir, `exits-${BAD_RECIPE}-${v1.manifest.key}.bin`), version: `${base}+test.exits` };
      const panics = { file: join(badDir, `panics-${BAD_RECIPE}-${v1.manifest.key}.bin`), version: `${base}+test.panics` };
      if (!existsSync(exits.file)) await badBundle(v1, "exits", exits.version, exits.file);
      if (!existsSync(panics.file)) await badBundle(v1, "panics", panics.version, panics.file);
      log(`update images ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      return { v1, v2, exits, panics };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
  return building;
}

if (import.meta.main) {
  const imgs = await ensureUpdateImages((l) => console.log(`image: ${l}`));
  console.log(JSON.stringify({ v1: imgs.v1.update, v2: imgs.v2.update, exits: imgs.exits, panics: imgs.panics }, null, 1));
}
