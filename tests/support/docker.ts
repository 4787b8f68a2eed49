// Test images and cleanup for tests that run against the real Docker engine.
// Images are made offline: `docker import` of a tarball holding the static busybox and its applets.

import { existsSync } from "node:fs";
import { mkdtemp, mkdir, rm, copyFile, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Docker from "dockerode";
import { run } from "./run.ts";

/** Also here for bench/apps.ts, which imports it from this module. */
export { run };

export const BUSYBOX_IMAGE = "evebox-test/busybox:latest";
/** Every container a test creates carries this label, so cleanup touches nothing else. */
export const TEST_RUN_LABEL = "evebox.test-run";
export const TEST_RUN_ID = `${process.pid}-${Date.now().toString(36)}`;

const APPLETS = ["sh", "sleep", "echo", "cat", "env", "httpd", "nc", "wget", "touch", "ls", "dd", "true", "false"];

let docker: Docker | undefined;
export function testDocker(): Docker {
  docker ??= new Docker({ socketPath: "/var/run/docker.sock" });
  return docker;
}

export function testLabels(): Record<string, string> {
  return { [TEST_RUN_LABEL]: TEST_RUN_ID };
}

function busyboxPath(): string {
  for (const p of ["/bin/busybox", "/usr/bin/busybox"]) if (existsSync(p)) return p;
  throw new Error("busybox not found: install busybox-static (scripts/provision.sh does)");
}

/**
 * Imports a busybox rootfs as `tag`. `extraBytes` adds a file of random bytes, which makes the
 * image (and its layer) unique, so a pull of it really transfers data.
 */
export async function importBusyboxImage(tag: string, extraBytes = 0, changes: string[] = []): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "evebox-rootfs-"));
  try {
    const root = join(dir, "root");
    await mkdir(join(root, "bin"), { recursive: true });
    await mkdir(join(root, "tmp"), { recursive: true });
    await copyFile(busyboxPath(), join(root, "bin", "busybox"));
    for (const applet of APPLETS) await symlink("busybox", join(root, "bin", applet));
    if (extraBytes > 0) await writeFile(join(root, "payload.bin"), crypto.getRandomValues(new Uint8Array(extraBytes)));
    const tarball = join(dir, "rootfs.tar");
    await run(["tar", "-C", root, "-cf", tarball, "."]);
    const id = await run([
      "docker",
      "import",
      "--change",
      'CMD ["/bin/sh"]',
      "--change",
      "ENV PATH=/bin",
      ...changes.flatMap((c) => ["--change", c]),
      tarball,
      tag,
    ]);
    return id.trim();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

let busybox: Promise<string> | undefined;
/**
 * The shared busybox image, imported once per run, or kept from an earlier run when it was made
 * from the same busybox and applets (its `evebox.test.key` label says so). Keeping it avoids a
 * dangling image per run and never pulls it from under a parallel test process.
 */
export async function ensureBusyboxImage(): Promise<string> {
  // Checked on every call: a test may have removed it since (it is a plain host image to evebox).
  if (busybox && !(await testDocker().getImage(BUSYBOX_IMAGE).inspect().then(() => true, () => false))) busybox = undefined;
  busybox ??= (async () => {
    const key = new Bun.CryptoHasher("sha256")
      .update(await Bun.file(busyboxPath()).arrayBuffer())
      .update(APPLETS.join(","))
      .digest("hex")
      .slice(0, 16);
    const existing = await testDocker()
      .getImage(BUSYBOX_IMAGE)
      .inspect()
      .catch(() => null);
    if (existing?.Config?.Labels?.["evebox.test.key"] !== key) {
      await importBusyboxImage(BUSYBOX_IMAGE, 0, [`LABEL evebox.test.key=${key}`]);
    }
    return BUSYBOX_IMAGE;
  })();
  return busybox;
}

let archive: Promise<{ bytes: Uint8Array<ArrayBuffer>; sha256: string }> | undefined;
/** The shared busybox image as a `docker save` archive (what an Http datastore serves) and its sha256; made once per run. */
export function busyboxArchive(): Promise<{ bytes: Uint8Array<ArrayBuffer>; sha256: string }> {
  archive ??= (async () => {
    const bytes = new Uint8Array(await new Response(Bun.spawn(["docker", "save", await ensureBusyboxImage()], { stdout: "pipe" }).stdout).arrayBuffer());
    return { bytes, sha256: new Bun.CryptoHasher("sha256").update(bytes).digest("hex") };
  })();
  return archive;
}

/** Removes the containers this test run created (by its run label), and nothing else. */
export async function cleanupTestContainers(): Promise<void> {
  const d = testDocker();
  const ours = await d.listContainers({ all: true, filters: { label: [`${TEST_RUN_LABEL}=${TEST_RUN_ID}`] } });
  await Promise.all(ours.map((c) => d.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {})));
}

export async function removeImageQuietly(ref: string): Promise<void> {
  await testDocker()
    .getImage(ref)
    .remove({ force: true })
    .catch(() => {});
}
