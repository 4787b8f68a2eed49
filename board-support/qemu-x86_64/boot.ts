// npm run image:boot: boots the qemu-x86_64 image in QEMU (TCG) with its serial console here and the device's
// console forwarded to the host: https://127.0.0.1:8080 (HTTPS, the device's own certificate; compare the
// fingerprint printed on the serial console) and http://127.0.0.1:8081 (redirects). The disk is a working copy
// under .cache/image-boot/, kept between runs (the device's state survives); --fresh starts from the image again.
//
//   npm run image:boot [-- --fresh] [--port 8080] [--shell]   Ctrl-A X quits QEMU (a power cut)
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildBinary, buildImage, loadBoard, ROOT } from "../../rootfs/build.ts";
import { formatBootEnv, parseBootEnv } from "../../src/baseos/bootenv.ts";
import { QemuDevice } from "./qemu.ts";

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: { fresh: { type: "boolean" }, port: { type: "string" }, shell: { type: "boolean" }, binary: { type: "string" } },
  strict: true,
});
const port = Number(values.port ?? 8080);
const board = loadBoard("qemu-x86_64");
const dir = join(ROOT, ".cache", "image-boot", board.name);
const disk = join(dir, "disk.img");

async function run(cmd: string[]): Promise<void> {
  const p = Bun.spawn(cmd, { stdout: "inherit", stderr: "inherit" });
  if ((await p.exited) !== 0) throw new Error(`${cmd.join(" ")} failed`);
}

try {
  if (values.fresh) rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  if (!existsSync(disk)) {
    const binary = values.binary ?? (await buildBinary(board.binaryTarget));
    const img = await buildImage({ board: board.name, binary });
    await run(["cp", "--sparse=always", img.disk, disk]);
    await run(["truncate", "-s", String(8 * 2 ** 30), disk]); // room for PERSIST to grow into on first boot
    if (values.shell) {
      // A root shell on ttyS1 (a unix socket here): a debugging aid, set in the boot loader's environment.
      const esp = `${disk}@@${img.manifest.partitions.find((p) => p.label === "EFI System")!.startBytes}`;
      const tmp = join(dir, "grubenv");
      await run(["mcopy", "-n", "-i", esp, "::EFI/BOOT/grubenv", tmp]);
      const env = parseBootEnv(await Bun.file(tmp).bytes());
      await Bun.write(tmp, formatBootEnv({ ...env, evebox_cmdline: "evebox.shell=ttyS1" }));
      await run(["mcopy", "-o", "-i", esp, tmp, "::EFI/BOOT/grubenv"]);
    }
  }
  console.log(`image:boot: ${disk}\n  console  https://127.0.0.1:${port}/  (and http://127.0.0.1:${port + 1}/ → redirect)\n  Ctrl-A X quits QEMU (a power cut); POST /api/v1/device/shutdown stops the device in order\n`);
  const device = QemuDevice.start(
    { disk, workDir: dir, forwards: [{ host: port, guest: 443 }, { host: port + 1, guest: 80 }], shell: values.shell, inheritSerial: true },
    "image-boot",
  );
  if (device.shellSocket) console.log(`  debug shell: socat - UNIX-CONNECT:${device.shellSocket}`);
  process.exit(await device.proc.exited);
} catch (e) {
  console.error(`image:boot: ${(e as Error).message}`);
  process.exit(1);
}
