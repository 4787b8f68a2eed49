import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { boardNames, loadBoard, moduleLoadOrder } from "./build.ts";

test("initramfs modules load in dependency order; built-in and absent ones are reported", () => {
  const dir = mkdtempSync(join(tmpdir(), "evebox-modules-"));
  try {
    writeFileSync(
      join(dir, "modules.dep"),
      [
        "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
        "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
        "kernel/drivers/virtio/virtio_pci_modern_dev.ko:",
        "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
        "kernel/drivers/virtio/virtio_ring.ko:",
        "kernel/fs/squashfs/squashfs.ko:",
        "",
      ].join("\n"),
    );
    writeFileSync(join(dir, "modules.builtin"), "kernel/drivers/nvme/host/nvme.ko\n");
    const r = moduleLoadOrder(dir, ["virtio_pci", "virtio-blk", "nvme", "ahci", "squashfs"]);
    expect(r.order).toEqual([
      "kernel/drivers/virtio/virtio_ring.ko",
      "kernel/drivers/virtio/virtio.ko",
      "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
      "kernel/drivers/virtio/virtio_pci.ko",
      "kernel/drivers/block/virtio_blk.ko",
      "kernel/fs/squashfs/squashfs.ko",
    ]);
    expect(r.builtin).toEqual(["nvme"]);
    expect(r.absent).toEqual(["ahci"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("every board is complete: kernel, GRUB platform, partitions that hold the slots", () => {
  expect(boardNames().sort()).toEqual(["arm64-uefi", "generic-x86_64", "qemu-x86_64"]);
  for (const name of boardNames()) {
    const b = loadBoard(name);
    expect(b.name).toBe(name);
    expect(["amd64", "arm64"]).toContain(b.arch);
    expect(b.kernelPackage).toMatch(/^linux-image-/);
    expect(b.packages.some((p) => p.startsWith("grub-efi-"))).toBe(true);
    expect(b.cmdline).toContain("panic=");
    expect(b.initramfsModules).toContain("squashfs");
    expect(b.partitions.imgMiB).toBeGreaterThanOrEqual(512);
  }
});
