// A throw-away container registry for tests: Debian's docker-registry (distribution v2) on a free
// loopback port with storage in a temp dir. The engine trusts 127.0.0.0/8 registries over plain HTTP.

import { closeSync, openSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBusyboxImage, removeImageQuietly } from "./docker.ts";
import { run } from "./run.ts";
import { waitFor } from "./wait.ts";

export interface TestRegistry {
  /** `127.0.0.1:<port>` */
  host: string;
  /** Tags `localRef` as `<host>/<repoTag>`, pushes it and returns the manifest digest (`sha256:…`). */
  push(localRef: string, repoTag: string): Promise<string>;
  stop(): Promise<void>;
}

const REGISTRY_BIN = "/usr/bin/docker-registry";

async function freePort(): Promise<number> {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

export async function startRegistry(): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), "evebox-registry-"));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = join(dir, "config.yml");
  const logPath = join(dir, "registry.log");
  await writeFile(
    config,
    [
      "version: 0.1",
      "log:",
      "  level: error",
      "  accesslog:",
      "    disabled: true",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${join(dir, "data")}`,
      "  delete:",
      "    enabled: true",
      "http:",
      `  addr: ${host}`,
      "  secret: evebox-test",
      "",
    ].join("\n"),
  );
  const logFd = openSync(logPath, "a");
  const proc = Bun.spawn([REGISTRY_BIN, "serve", config], { stdin: "ignore", stdout: logFd, stderr: logFd });
  closeSync(logFd);
  const pushed = new Set<string>();

  const stop = async () => {
    proc.kill();
    await proc.exited;
    await Promise.all([...pushed].map(removeImageQuietly));
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await waitFor(`docker-registry on ${host}`, async () => (await fetch(`http://${host}/v2/`)).ok, {
      timeoutMs: 10_000,
      failIf: () => (proc.exitCode !== null ? `docker-registry exited with ${proc.exitCode}` : null),
    });
  } catch (e) {
    const log = await readFile(logPath, "utf8").catch(() => "");
    await stop();
    throw new Error(`docker-registry did not come up on ${host}: ${(e as Error).message}; ${log.trim().slice(-500)}`);
  }

  return {
    host,
    async push(localRef, repoTag) {
      const target = `${host}/${repoTag}`;
      await run(["docker", "tag", localRef, target]);
      pushed.add(target);
      const out = await run(["docker", "push", target]);
      const m = /digest: (sha256:[0-9a-f]{64})/.exec(out);
      if (!m?.[1]) throw new Error(`docker push ${target} printed no digest: ${out}`);
      return m[1];
    },
    stop,
  };
}

/** A registry holding the busybox test image as `evebox/busybox:latest`. */
export async function startRegistryWithBusybox(): Promise<TestRegistry & { busyboxDigest: string }> {
  const registry = await startRegistry();
  try {
    const busyboxDigest = await registry.push(await ensureBusyboxImage(), "evebox/busybox:latest");
    return { ...registry, busyboxDigest };
  } catch (err) {
    await registry.stop();
    throw err;
  }
}
