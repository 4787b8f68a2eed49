// The device image for tests/image*.test.ts and bench/image.ts: built once from the current source (the Debian
// layer and the image are cached under EVEBOX_IMAGE_CACHE, default /var/cache/evebox-image, so a warm run only
// checks hashes), and per-test working copies of its disk that the tests may change offline (boot environment,
// a slot's content, a damaged partition) with mtools and plain writes — no loop devices.
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BootEnv, formatBootEnv, parseBootEnv } from "../../src/baseos/bootenv.ts";
import { buildImage, type BuiltImage, type PartitionInfo } from "../../rootfs/build.ts";
import { ensureBinary } from "./evebox.ts";
import { run } from "./run.ts";

export const IMAGE_BOARD = "qemu-x86_64";

let building: Promise<BuiltImage> | null = null;

/** The qemu-x86_64 image of the current source; prints what it built and how long it took. */
export function ensureTestImage(log: (line: string) => void = (l) => console.log(`image: ${l}`)): Promise<BuiltImage> {
  building ??= (async () => {
    const t0 = performance.now();
    const built = await ensureBinary();
    // A private copy: other test files rebuild dist/ while this one runs.
    const dir = mkdtempSync(join(tmpdir(), "evebox-image-bin-"));
    const binary = join(dir, "evebox");
    copyFileSync(built, binary);
    try {
      const img = await buildImage({ board: IMAGE_BOARD, binary, log });
      const m = img.manifest;
      log(
        `${img.cached ? "cached" : "built"} ${IMAGE_BOARD} image ${m.key} in ${((performance.now() - t0) / 1000).toFixed(1)} s` +
          ` (squashfs ${(m.squashfs.bytes / 2 ** 20).toFixed(0)} MiB, root ${(m.rootBytes / 2 ** 20).toFixed(0)} MiB unpacked, ${m.packages} packages` +
          `${img.cached ? "" : `; ${Object.entries(m.timings).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(", ")}`})`,
      );
      return img;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
  return building;
}

/** A test's own copy of the image's disk (sparse), optionally grown (the device grows PERSIST into the space). */
export class TestDisk {
  private constructor(
    readonly path: string,
    readonly partitions: PartitionInfo[],
  ) {}

  static async create(img: BuiltImage, dir: string, opts: { sizeBytes?: number } = {}): Promise<TestDisk> {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, "disk.img");
    await run(["cp", "--sparse=always", img.disk, path]);
    if (opts.sizeBytes) await run(["truncate", "-s", String(opts.sizeBytes), path]);
    return new TestDisk(path, img.manifest.partitions);
  }

  partition(label: string): PartitionInfo {
    const p = this.partitions.find((x) => x.label === label);
    if (!p) throw new Error(`the image has no partition ${label}`);
    return p;
  }

  private espSpec(): string {
    return `${this.path}@@${this.partition("EFI System").startBytes}`;
  }

  /** Reads the boot loader's environment block from the EFI partition. */
  async bootEnv(): Promise<BootEnv> {
    const tmp = join(mkdtempSync(join(tmpdir(), "evebox-grubenv-")), "grubenv");
    try {
      await run(["mcopy", "-n", "-i", this.espSpec(), "::EFI/BOOT/grubenv", tmp], { env: { MTOOLS_SKIP_CHECK: "1" } });
      return parseBootEnv(readFileSync(tmp));
    } finally {
      rmSync(join(tmp, ".."), { recursive: true, force: true });
    }
  }

  /** Changes the boot environment offline (QEMU must not be running on this disk). */
  async setBootEnv(change: (env: BootEnv) => BootEnv): Promise<BootEnv> {
    const env = change(await this.bootEnv());
    const dir = mkdtempSync(join(tmpdir(), "evebox-grubenv-"));
    try {
      writeFileSync(join(dir, "grubenv"), formatBootEnv(env));
      await run(["mcopy", "-o", "-i", this.espSpec(), join(dir, "grubenv"), "::EFI/BOOT/grubenv"], { env: { MTOOLS_SKIP_CHECK: "1" } });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return env;
  }

  /** Writes a root file system image into slot A or B (what a base-OS update does). */
  writeSlot(slot: "A" | "B", squashfs: string): void {
    const p = this.partition(`IMG${slot}`);
    const data = readFileSync(squashfs);
    if (data.length > p.sizeBytes) throw new Error(`${squashfs} does not fit IMG${slot}`);
    const fd = openSync(this.path, "r+");
    try {
      writeSync(fd, data, 0, data.length, p.startBytes);
    } finally {
      closeSync(fd);
    }
  }

  /** Overwrites the start of a partition with `bytes` of garbage (a damaged file system). */
  damage(label: string, bytes = 4 * 2 ** 20): void {
    const p = this.partition(label);
    const junk = Buffer.alloc(bytes, 0x5a);
    const fd = openSync(this.path, "r+");
    try {
      writeSync(fd, junk, 0, junk.length, p.startBytes);
    } finally {
      closeSync(fd);
    }
  }
}
