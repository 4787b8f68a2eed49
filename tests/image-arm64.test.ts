// The arm64-uefi device image booted for real, once: QEMU's `virt` machine under TCG with a named Cortex core
// (cortex-a72: `-cpu max` has features under which Bun's JIT dies), AAVMF (UEFI) → GRUB (BOOTAA64.EFI) → Debian's
// arm64 kernel → evebox as PID 1, to the console's health over HTTPS, then a container app (an arm64 busybox,
// served by an Http datastore on the host's loopback, 10.0.2.2 inside) RUNNING in the device's own Docker. The
// image's Debian layer is built by mmdebstrap for arm64 on this x86-64 machine, its package scripts run by
// qemu-user-static through binfmt_misc (cached afterwards, like the x86 image's). Slow under TCG: one test, its
// timings printed (tests/README.md, /work/notes).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { freePort } from "../board-support/qemu-x86_64/qemu.ts";
import { buildBinary, buildImage, DEFAULT_CACHE } from "../rootfs/build.ts";
import { Client } from "./support/evebox.ts";
import { run } from "./support/run.ts";
import { waitFor } from "./support/wait.ts";

const AAVMF_CODE = ["/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"].find(existsSync);
// The foreign-arch mmdebstrap runs arm64 programs through binfmt_misc: without the registered interpreter (a
// container that may not mount binfmt_misc) the image cannot be built here, so the test says so and is skipped.
const BINFMT = "/proc/sys/fs/binfmt_misc/qemu-aarch64";
const canRun = process.getuid?.() === 0 && !!Bun.which("qemu-system-aarch64") && !!Bun.which("mmdebstrap") && !!AAVMF_CODE && !!Bun.which("qemu-aarch64-static") && existsSync(BINFMT);
if (!canRun) console.warn(`image-arm64: skipped (needs root, qemu-system-aarch64, mmdebstrap, AAVMF firmware, qemu-aarch64-static and ${BINFMT})`);
const PASSWORD = "arm64-image-password";
const APP = "6c1e0000-0000-4000-8000-0000000a6401";
const CT = "6c1e0000-0000-4000-8000-0000000a6402";
const VOL = "6c1e0000-0000-4000-8000-0000000a6403";
const DS = "6c1e0000-0000-4000-8000-0000000a6404";

let work = "";
let qemu: Subprocess | null = null;
let imageServer: ReturnType<typeof Bun.serve> | null = null;
const timings: Record<string, number> = {};
const t0 = performance.now();
const since = (t: number) => Math.round((performance.now() - t) / 100) / 10;
const log = (l: string) => console.log(`arm64 image test [${since(t0).toFixed(1).padStart(6)} s] ${l}`);
const serial = () => {
  try {
    return readFileSync(join(work, "serial.log"), "utf8");
  } catch {
    return "";
  }
};

/** An arm64 busybox (from the image's own Debian layer) as a `docker save` archive with arm64 in its config. */
async function arm64BusyboxArchive(layerTar: string): Promise<{ bytes: Uint8Array<ArrayBuffer>; sha256: string }> {
  const dir = mkdtempSync(join(tmpdir(), "evebox-arm64-bb-"));
  try {
    const root = join(dir, "root");
    mkdirSync(join(root, "bin"), { recursive: true });
    mkdirSync(join(root, "tmp"));
    await run(["tar", "-C", dir, "-xf", layerTar, "./usr/bin/busybox"]);
    copyFileSync(join(dir, "usr/bin/busybox"), join(root, "bin/busybox"));
    for (const a of ["sh", "echo", "sleep", "cat", "uname"]) symlinkSync("busybox", join(root, "bin", a));
    await run(["tar", "-C", root, "-cf", join(dir, "rootfs.tar"), "."]);
    const tag = `evebox-test/busybox-arm64:${process.pid}`;
    await run(["docker", "import", "--platform", "linux/arm64", "--change", "ENV PATH=/bin", "--change", 'CMD ["/bin/sh"]', join(dir, "rootfs.tar"), tag]);
    const bytes = new Uint8Array(await new Response(Bun.spawn(["docker", "save", tag], { stdout: "pipe" }).stdout).arrayBuffer());
    await run(["docker", "rmi", tag]).catch(() => undefined);
    return { bytes, sha256: new Bun.CryptoHasher("sha256").update(bytes).digest("hex") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "evebox-arm64-"));
});

afterAll(async () => {
  qemu?.kill("SIGKILL");
  await qemu?.exited;
  imageServer?.stop(true);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.if(canRun)("the arm64-uefi image under QEMU virt (cortex-a72, TCG)", () => {
  test("boots to the console's health and runs a container app", async () => {
    let t = performance.now();
    const binary = process.env.EVEBOX_TEST_BINARY_ARM64 ?? (await buildBinary("arm64"));
    const img = await buildImage({ board: "arm64-uefi", binary, log: (l) => log(`image: ${l}`) });
    timings.image = since(t);
    log(`image ready in ${timings.image} s (${img.manifest.timings ? JSON.stringify(img.manifest.timings) : ""})`);

    // The disk: a sparse working copy with room for PERSIST; UEFI variables of its own.
    const disk = join(work, "disk.img");
    await run(["cp", "--sparse=always", img.disk, disk]);
    await run(["truncate", "-s", String(6 * 2 ** 30), disk]);
    // pflash units are 64 MiB on virt (Debian's AAVMF files are; QEMU_EFI.fd is padded here).
    const code = join(work, "AAVMF_CODE.fd");
    const fw = readFileSync(AAVMF_CODE!);
    const padded = new Uint8Array(64 * 1024 * 1024);
    padded.set(fw.subarray(0, Math.min(fw.length, padded.length)));
    writeFileSync(code, padded);
    const vars = join(work, "AAVMF_VARS.fd");
    if (existsSync("/usr/share/AAVMF/AAVMF_VARS.fd")) copyFileSync("/usr/share/AAVMF/AAVMF_VARS.fd", vars);
    else writeFileSync(vars, new Uint8Array(64 * 1024 * 1024));

    const https = await freePort();
    t = performance.now();
    qemu = Bun.spawn(
      [
        "qemu-system-aarch64",
        "-machine", "virt",
        "-accel", "tcg,thread=multi",
        "-cpu", "cortex-a72",
        "-smp", "2",
        "-m", "2048",
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${code}`,
        "-drive", `if=pflash,format=raw,unit=1,file=${vars}`,
        "-drive", `file=${disk},format=raw,if=none,id=disk0,cache=unsafe`,
        "-device", "virtio-blk-pci,drive=disk0,bootindex=0",
        "-netdev", `user,id=net0,hostfwd=tcp:127.0.0.1:${https}-:443`,
        "-device", "virtio-net-pci,netdev=net0",
        "-device", "virtio-rng-pci",
        "-chardev", `file,id=serial0,path=${join(work, "serial.log")}`,
        "-serial", "chardev:serial0",
      ],
      { stdout: "ignore", stderr: "pipe" },
    );
    const alive = () => (qemu!.exitCode === null ? null : `QEMU exited with ${qemu!.exitCode}`);
    const until = <T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs: number, everyMs = 2000) =>
      waitFor(what, check, { timeoutMs, everyMs, failIf: alive, detail: () => `serial tail:\n${serial().slice(-3000)}` });

    // The kernel is quiet; evebox says when it is PID 1.
    await until("evebox as PID 1", () => (/evebox: evebox \S+ is PID 1/.test(serial()) ? true : undefined), 600_000);
    timings.pid1 = since(t);
    log(`evebox is PID 1 ${timings.pid1} s after power-on`);
    const client = new Client(`https://127.0.0.1:${https}`, { insecureTls: true, timeoutMs: 20_000 });
    const health = await until("the console's health", async () => {
      const r = await client.json("GET", "/api/v1/health").catch(() => null);
      return r?.status === 200 ? r.body : undefined;
    }, 900_000, 3000);
    timings.health = since(t);
    log(`console healthy ${timings.health} s after power-on (version ${health.version})`);
    expect(health.ok).toBe(true);

    // Set up with the token the device printed, then deploy a container app.
    const token = await until("the setup link on the serial console", () => serial().match(/setup\?token=([A-Za-z0-9_-]+)/)?.[1], 120_000);
    expect((await client.json("POST", "/api/v1/setup", { token, password: PASSWORD })).status).toBe(200);
    const layer = (await Array.fromAsync(new Bun.Glob("debian/bookworm-arm64-*.tar").scan({ cwd: DEFAULT_CACHE, absolute: true })))[0]!;
    const { bytes, sha256 } = await arm64BusyboxArchive(layer);
    imageServer = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => (new URL(req.url).pathname === "/images/busybox.tar" ? new Response(bytes) : new Response("no", { status: 404 })) });
    const doc = {
      datastores: [{ id: DS, dType: "DsHttp", fqdn: `http://10.0.2.2:${imageServer.port}`, dpath: "images" }],
      contentInfo: [{ uuid: CT, dsId: DS, URL: "busybox.tar", iformat: "CONTAINER", sha256, displayName: "busybox-arm64" }],
      volumes: [{ uuid: VOL, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: CT }, displayName: "root" }],
      apps: [
        {
          uuidandversion: { uuid: APP, version: "1" },
          displayname: "arm64-app",
          activate: true,
          fixedresources: { memory: 65536, maxmem: 65536, vcpus: 1 },
          volumeRefList: [{ uuid: VOL }],
          userData: Buffer.from("EVE_ECO_CMD=sh -c 'echo arm64-app-up $(uname -m); sleep 3600'\n").toString("base64"),
        },
      ],
    };
    t = performance.now();
    const put = await client.json("PUT", "/api/v1/config", doc);
    expect([200, 201]).toContain(put.status);
    const app = await until("the app RUNNING", async () => {
      const s = await client.json("GET", "/api/v1/status").catch(() => null);
      const a = s?.body?.apps?.find((x: any) => x.uuid === APP);
      return a?.state === "RUNNING" ? a : undefined;
    }, 900_000, 3000);
    timings.appRunning = since(t);
    log(`app RUNNING ${timings.appRunning} s after PUT /config; timings ${JSON.stringify(timings)}`);
    expect(app.state).toBe("RUNNING");
    const logs = await until("the app's output", async () => {
      const r = await client.json("GET", `/api/v1/apps/${APP}/logs`).catch(() => null);
      return r?.body?.lines?.find((l: any) => l.message.includes("arm64-app-up")) ?? undefined;
    }, 120_000);
    expect(logs.message).toContain("arm64-app-up aarch64");
  }, 3_600_000);
});
