// Image bench: the qemu-x86_64 image's size; boot-to-console-ready under TCG against the same kernel booting to a
// busybox shell (both by direct kernel boot, so the comparison is the userland; the full UEFI boot through OVMF
// and GRUB is shown too); evebox's RSS as PID 1 with containerd and dockerd up.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, QemuDevice } from "../board-support/qemu-x86_64/qemu.ts";
import { loadBoard } from "../rootfs/build.ts";
import { ensureTestImage, TestDisk } from "../tests/support/image.ts";
import { Report } from "./report.ts";

if (process.getuid?.() !== 0) {
  console.log("bench image: needs root (image build); skipped");
  process.exit(0);
}
const MiB = 2 ** 20;
const results: Record<string, string | number> = {}; // sizes and counts (no baseline)
const report = new Report("evebox image bench (qemu-x86_64 under TCG)");
const work = mkdtempSync(join(tmpdir(), "evebox-bench-image-"));

async function run(cmd: string[], cwd?: string): Promise<void> {
  const p = Bun.spawn(cmd, { cwd, stdout: "ignore", stderr: "pipe" });
  if ((await p.exited) !== 0) throw new Error(`${cmd.join(" ")}: ${await new Response(p.stderr).text()}`);
}

async function health(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(`https://127.0.0.1:${port}/api/v1/health`, { signal: AbortSignal.timeout(3000), tls: { rejectUnauthorized: false } } as RequestInit);
      if (r.ok) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error("the console did not answer");
    await Bun.sleep(250);
  }
}

try {
  const img = await ensureTestImage((l) => console.log(`image: ${l}`));
  const m = img.manifest;
  results["squashfs (the update payload)"] = `${(m.squashfs.bytes / MiB).toFixed(1)} MiB`;
  results["root file system unpacked"] = `${(m.rootBytes / MiB).toFixed(1)} MiB`;
  results["disk image written (allocated)"] = `${(m.disk.allocatedBytes / MiB).toFixed(1)} MiB of ${(m.disk.bytes / MiB).toFixed(0)} MiB`;
  results["Debian packages"] = m.packages;

  // The kernel and initramfs of the image, for direct boots.
  await run(["unsquashfs", "-f", "-d", join(work, "sq"), img.squashfs, "boot/vmlinuz", "boot/initrd.img", "usr/bin/busybox"]);
  const kernel = join(work, "sq", "boot", "vmlinuz");
  // Baseline: the same kernel with a busybox initramfs that prints a marker from its shell.
  const bb = join(work, "bb");
  mkdirSync(join(bb, "bin"), { recursive: true });
  await run(["cp", join(work, "sq", "usr", "bin", "busybox"), join(bb, "bin", "busybox")]);
  symlinkSync("busybox", join(bb, "bin", "sh"));
  writeFileSync(join(bb, "init"), "#!/bin/busybox sh\n/bin/busybox mount -t devtmpfs dev /dev\necho BUSYBOX-SHELL-READY >/dev/ttyS0\nexec /bin/busybox sh\n", { mode: 0o755 });
  await run(["sh", "-c", `find . | cpio -o -H newc --quiet | gzip -1 > ${join(work, "bb.img")}`], bb);
  const board = loadBoard("qemu-x86_64");
  const boots: Record<string, number> = {};
  for (const round of [1, 2]) {
    const base = QemuDevice.start({ disk: img.disk, workDir: join(work, `base${round}`), forwards: [], direct: { kernel, initrd: join(work, "bb.img"), append: "console=ttyS0 quiet" }, extra: ["-snapshot"] }, "base");
    boots[`busybox${round}`] = (await base.waitSerial(/BUSYBOX-SHELL-READY/, 120_000)).seconds;
    await base.kill();
  }
  const disk = await TestDisk.create(img, join(work, "dev"), { sizeBytes: 4 * 2 ** 30 });
  await disk.setBootEnv((e) => ({ ...e, evebox_cmdline: "evebox.shell=ttyS1" }));
  const port = await freePort();
  // First boot (formats PERSIST) through OVMF and GRUB, then the same device again, directly.
  const uefi = QemuDevice.start({ disk: disk.path, workDir: join(work, "dev"), forwards: [{ host: port, guest: 443 }], shell: true }, "uefi");
  const pid1 = (await uefi.waitSerial(/is PID 1/, 300_000)).seconds;
  boots.uefiConsoleReady = (await uefi.waitSerial(/console ready/, 300_000)).seconds;
  await health(port, 300_000);
  boots.uefiHealth = (performance.now() - uefi.startedAt) / 1000;
  await uefi.waitSerial(/containerd and dockerd are up/, 300_000);
  const shell = await uefi.shell();
  await Bun.sleep(10_000); // settled
  const rssNow = async () => (await shell.run("for p in 1 $(pidof containerd) $(pidof dockerd); do echo $(cat /proc/$p/comm) $(grep VmRSS /proc/$p/status | tr -s ' ' | cut -d' ' -f2); done")).out;
  const rss = await rssNow();
  // Then once evebox has returned the start's pages to the kernel (src/device/trim.ts) and 20 s more of idle.
  let rssTrimmed: string | null = null;
  try {
    await uefi.waitSerial(/start-up pages returned to the kernel/, 180_000);
    await Bun.sleep(20_000);
    rssTrimmed = await rssNow();
  } catch {}
  shell.close();
  await uefi.kill();
  const direct = QemuDevice.start(
    { disk: disk.path, workDir: join(work, "dev"), forwards: [{ host: port, guest: 443 }], direct: { kernel, initrd: join(work, "sq", "boot", "initrd.img"), append: `root=PARTLABEL=IMGA evebox.slot=A ${board.cmdline}` } },
    "direct",
  );
  boots.directConsoleReady = (await direct.waitSerial(/console ready/, 300_000)).seconds;
  await health(port, 300_000);
  boots.directHealth = (performance.now() - direct.startedAt) / 1000;
  await direct.kill();

  const busybox = Math.min(boots.busybox1!, boots.busybox2!);
  report
    .add({ what: "evebox console ready (direct boot, 2nd boot)", value: boots.directConsoleReady!, unit: "s", baseline: { what: "busybox shell, same kernel", value: busybox } })
    .add({ what: "evebox /health over HTTPS (direct boot)", value: boots.directHealth!, unit: "s", baseline: { what: "busybox shell", value: busybox } })
    .add({ what: "first boot through OVMF+GRUB: console ready", value: boots.uefiConsoleReady!, unit: "s", baseline: { what: "busybox shell", value: busybox }, note: `PID 1 at ${pid1.toFixed(1)} s, health at ${boots.uefiHealth!.toFixed(1)} s` });
  const rssOfText = (text: string) => {
    const out: Record<string, number> = {};
    for (const line of text.trim().split("\n")) {
      const [name, kb] = line.trim().split(" ");
      out[name === "evebox" || name === "init" ? "evebox" : name!] = Number(kb) / 1024;
    }
    return out;
  };
  const rssOf = rssOfText(rss);
  const trimmedOf = rssTrimmed ? rssOfText(rssTrimmed) : null;
  // The same aim as the host-mode idle figure (bench/console.ts); containerd's and dockerd's RSS for scale.
  report.add({ what: "RSS of evebox as PID 1, services up (10 s)", value: rssOf.evebox ?? NaN, unit: "MiB", note: `containerd ${rssOf.containerd?.toFixed(1) ?? "?"} MiB, dockerd ${rssOf.dockerd?.toFixed(1) ?? "?"} MiB` });
  report.add({ what: "RSS of evebox as PID 1, 20 s after its start-up trim", value: trimmedOf?.evebox ?? NaN, unit: "MiB", aim: { on: "value", op: "<=", limit: 60 }, note: trimmedOf ? `containerd ${trimmedOf.containerd?.toFixed(1) ?? "?"} MiB, dockerd ${trimmedOf.dockerd?.toFixed(1) ?? "?"} MiB` : "no trim seen within 180 s" });
} finally {
  rmSync(work, { recursive: true, force: true });
}
for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(62)} ${v}`);
report.print();
