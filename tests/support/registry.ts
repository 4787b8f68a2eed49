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

/**
 * `auth`: the registry asks for basic auth (distribution's htpasswd backend, bcrypt); pushes then log in with a
 * Docker client configuration of their own (`docker --config`), so the host's stays untouched.
 */
export async function startRegistry(opts: { auth?: { username: string; password: string } } = {}): Promise<TestRegistry> {
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
      ...(opts.auth ? ["auth:", "  htpasswd:", "    realm: evebox-test", `    path: ${join(dir, "htpasswd")}`] : []),
      "",
    ].join("\n"),
  );
  if (opts.auth) await writeFile(join(dir, "htpasswd"), `${opts.auth.username}:${await Bun.password.hash(opts.auth.password, { algorithm: "bcrypt", cost: 4 })}\n`);
  const dockerConfig = join(dir, "docker-client");
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
    // Up: /v2/ answers (401 when it asks for credentials).
    await waitFor(`docker-registry on ${host}`, async () => [200, 401].includes((await fetch(`http://${host}/v2/`)).status), {
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
      const client = opts.auth ? ["--config", dockerConfig] : [];
      if (opts.auth) await run(["docker", ...client, "login", "--username", opts.auth.username, "--password-stdin", host], { stdin: opts.auth.password });
      const out = await run(["docker", ...client, "push", target]);
      const m = /digest: (sha256:[0-9a-f]{64})/.exec(out);
      if (!m?.[1]) throw new Error(`docker push ${target} printed no digest: ${out}`);
      return m[1];
    },
    stop,
  };
}

/** A registry holding the busybox test image as `evebox/busybox:latest`. */
export async function startRegistryWithBusybox(opts: Parameters<typeof startRegistry>[0] = {}): Promise<TestRegistry & { busyboxDigest: string }> {
  const registry = await startRegistry(opts);
  try {
    const busyboxDigest = await registry.push(await ensureBusyboxImage(), "evebox/busybox:latest");
    return { ...registry, busyboxDigest };
  } catch (err) {
    await registry.stop();
    throw err;
  }
}
