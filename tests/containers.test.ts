// ContainerRuntime against the real Docker engine, with an offline busybox image.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ContainerRuntime, type ContainerEvent, type ContainerSpec, type LogLine } from "../src/runtime/containers/index.ts";
import { cleanupTestContainers, ensureBusyboxImage, importBusyboxImage, removeImageQuietly, TEST_RUN_ID, testDocker, testLabels } from "./support/docker.ts";
import { run } from "./support/run.ts";
import { waitFor } from "./support/wait.ts";

const MiB = 1024 * 1024;
let image: string;
let runtime: ContainerRuntime;
let hostDir: string;

function spec(overrides: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    appUuid: crypto.randomUUID(),
    name: "test app",
    image,
    env: {},
    cmd: ["sleep", "30"],
    mounts: [],
    labels: testLabels(),
    ...overrides,
  };
}

async function collect(lines: AsyncIterable<LogLine>): Promise<LogLine[]> {
  const out: LogLine[] = [];
  for await (const line of lines) out.push(line);
  return out;
}

beforeAll(async () => {
  image = await ensureBusyboxImage();
  runtime = new ContainerRuntime(testDocker(), "evebox");
  hostDir = await mkdtemp(join(tmpdir(), "evebox-containers-"));
  await writeFile(join(hostDir, "hello.txt"), "from the host\n");
});

afterAll(async () => {
  await cleanupTestContainers();
  await rm(hostDir, { recursive: true, force: true });
});

describe("ContainerRuntime", () => {
  test("runs a container with env, limits and a read-only mount; logs, stop, remove", async () => {
    const s = spec({
      name: "Env Echo",
      env: { GREETING: "hello evebox", EMPTY: "" },
      cmd: [
        "sh",
        "-c",
        'echo "GREETING=$GREETING"; cat /data/hello.txt; touch /data/x 2>/dev/null && echo RW || echo RO; echo to-stderr >&2; exec sleep 30',
      ],
      memoryBytes: 64 * MiB,
      cpus: 500_000_000,
      mounts: [{ source: hostDir, target: "/data", readOnly: true }],
    });
    const id = await runtime.create(s);
    const before = Date.now() - 1000;
    await runtime.start(id);

    const lines = await waitFor("four log lines", async () => {
      const got = await collect(runtime.logs(id));
      return got.length >= 4 ? got : undefined;
    });
    // stdout and stderr are separate pipes: their relative order is not kept, each one's is.
    expect(lines.filter((l) => l.stream === "stdout").map((l) => l.line)).toEqual([
      "GREETING=hello evebox",
      "from the host",
      "RO",
    ]);
    expect(lines.filter((l) => l.stream === "stderr").map((l) => l.line)).toEqual(["to-stderr"]);
    for (const l of lines) {
      expect(l.ts.getTime()).toBeGreaterThan(before);
      expect(l.ts.getTime()).toBeLessThan(Date.now() + 1000);
    }

    const info = await runtime.inspect(id);
    expect(info.Name).toBe(`/evebox-env-echo-${s.appUuid.slice(0, 8)}`);
    expect(info.HostConfig.Memory).toBe(64 * MiB);
    expect(info.HostConfig.NanoCpus).toBe(500_000_000);
    expect(info.HostConfig.RestartPolicy?.Name).toBe("no");
    expect(info.HostConfig.LogConfig).toEqual({ Type: "json-file", Config: { "max-size": "10m", "max-file": "3" } });
    expect(info.Config.Env).toContain("EMPTY=");
    expect(info.Config.Labels).toMatchObject({
      "evebox.managed": "true",
      "evebox.app": s.appUuid,
      "evebox.app.name": "Env Echo",
      "evebox.test-run": TEST_RUN_ID,
    });
    expect(info.Config.Labels["evebox.generation"]).toMatch(/^[0-9a-f]{16}$/);

    const stats = await runtime.stats(id);
    expect(stats.memoryLimitBytes).toBe(64 * MiB);
    expect(stats.memoryUsedBytes).toBeGreaterThan(0);
    expect(stats.pids).toBeGreaterThanOrEqual(1);

    // `since` skips what came before it.
    const later = await collect(runtime.logs(id, { since: new Date(Date.now() + 60_000) }));
    expect(later).toEqual([]);

    await runtime.start(id); // already running: not an error
    const t0 = performance.now();
    await runtime.stop(id, 1);
    const stopMs = performance.now() - t0;
    expect(stopMs).toBeLessThan(5000);
    const owned = (await runtime.listOwned()).find((c) => c.id === id);
    expect(owned).toMatchObject({ appUuid: s.appUuid, appName: "Env Echo", state: "exited", image });
    expect(owned?.exitCode).not.toBeNull();
    expect(owned?.startedAt?.getTime()).toBeGreaterThan(before);

    await runtime.remove(id);
    await runtime.remove(id); // already gone: not an error
    expect((await runtime.listOwned()).some((c) => c.id === id)).toBe(false);
    await expect(runtime.inspect(id)).rejects.toThrow(/inspect container .* failed: No such container/);
  });

  test("a followed log stream delivers lines as they come and stops on abort", async () => {
    const id = await runtime.create(spec({ cmd: ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done; exec sleep 30"] }));
    await runtime.start(id);
    const abort = new AbortController();
    const seen: string[] = [];
    for await (const l of runtime.logs(id, { follow: true, signal: abort.signal })) {
      seen.push(l.line);
      if (seen.length === 3) abort.abort();
    }
    expect(seen).toEqual(["line1", "line2", "line3"]);
    await runtime.remove(id);
  });

  test("listOwned lists only evebox containers and never touches the host's", async () => {
    const docker = testDocker();
    const foreign = await docker.createContainer({
      name: `not-evebox-${TEST_RUN_ID}`,
      Image: image,
      Cmd: ["sleep", "30"],
      // not labelled evebox.managed; the run label lets cleanup find it if this test fails midway
      Labels: { ...testLabels(), "evebox.app": "someone-else" },
    });
    try {
      await foreign.start();
      const s = spec({ generation: "gen-42" });
      const id = await runtime.create(s);
      const owned = await runtime.listOwned();
      const mine = owned.find((c) => c.id === id);
      expect(mine).toMatchObject({
        appUuid: s.appUuid,
        generation: "gen-42",
        state: "created",
        startedAt: null,
        exitCode: null,
        image,
      });
      expect(owned.some((c) => c.id === foreign.id)).toBe(false);
      expect(owned.every((c) => c.labels["evebox.managed"] === "true")).toBe(true);

      await runtime.remove(id);
      const after = await foreign.inspect();
      expect(after.State.Running).toBe(true);
      expect(after.Config.Labels).toMatchObject({ ...testLabels(), "evebox.app": "someone-else" });
      expect(after.Config.Labels["evebox.managed"]).toBeUndefined();
    } finally {
      await foreign.remove({ force: true });
    }
  });

  test("a duplicate app container fails with an error naming the app", async () => {
    const s = spec({ name: "dup" });
    const id = await runtime.create(s);
    await expect(runtime.create(s)).rejects.toThrow(`app "dup" (${s.appUuid}): create container evebox-dup-`);
    await expect(runtime.create(spec({ name: "nosuch", image: "evebox-test/nosuch:1" }))).rejects.toThrow(
      /app "nosuch" .*: create container .* from image evebox-test\/nosuch:1 failed: No such image/,
    );
    await runtime.remove(id);
  });

  test("watch sees start, die with the exit code, and oom", async () => {
    const events: ContainerEvent[] = [];
    const unsubscribe = await runtime.watch((e) => events.push(e));
    try {
      const s = spec({ name: "dies", cmd: ["sh", "-c", "sleep 0.2; exit 3"] });
      const id = await runtime.create(s);
      await runtime.start(id);
      const die = await waitFor("die event", async () => events.find((e) => e.id === id && e.kind === "die"));
      expect(die).toMatchObject({ appUuid: s.appUuid, exitCode: 3, name: `evebox-dies-${s.appUuid.slice(0, 8)}` });
      expect(events.find((e) => e.id === id && e.kind === "start")).toBeDefined();

      // A shell doubling a string until the 8 MiB limit kills it.
      const hog = await runtime.create(
        spec({ name: "hog", memoryBytes: 8 * MiB, cmd: ["sh", "-c", "a=xxxxxxxxxxxxxxxx; while true; do a=$a$a; done"] }),
      );
      await runtime.start(hog);
      await waitFor("oom event", async () => events.find((e) => e.id === hog && e.kind === "oom"));
      const hogDie = await waitFor("hog die", async () => events.find((e) => e.id === hog && e.kind === "die"));
      expect(hogDie.exitCode).toBe(137);
      expect((await runtime.listOwned()).find((c) => c.id === hog)?.oomKilled).toBe(true);

      // Foreign containers make no events here.
      const foreign = await testDocker().createContainer({ Image: image, Cmd: ["true"], Labels: testLabels() });
      await foreign.start();
      await foreign.wait();
      await Bun.sleep(200); // deliberately: time for an event that must not come
      expect(events.some((e) => e.id === foreign.id)).toBe(false);
      await foreign.remove({ force: true });
      await runtime.remove(id);
      await runtime.remove(hog);
    } finally {
      unsubscribe();
    }
    const count = events.length;
    const id = await runtime.create(spec({ cmd: ["true"] }));
    await runtime.start(id);
    await Bun.sleep(300); // deliberately: time for an event that must not come
    expect(events.length).toBe(count);
    await runtime.remove(id);
  });
});

describe("ContainerRuntime images", () => {
  const tag = `evebox-test/scratch:${TEST_RUN_ID}`;
  afterAll(() => removeImageQuietly(tag));

  test("imageExists, loadImageTar and removeImage that refuses while a container uses the image", async () => {
    expect(await runtime.imageExists(image)).toBe(true);
    expect(await runtime.imageExists("evebox-test/never-made:1")).toBe(false);

    // A unique image, saved to a tar, removed, then loaded back.
    await importBusyboxImage(tag, 1024);
    const dir = await mkdtemp(join(tmpdir(), "evebox-save-"));
    try {
      const tar = join(dir, "image.tar");
      await run(["docker", "save", "-o", tar, tag]);
      expect(await runtime.removeImage(tag)).toBe(true);
      expect(await runtime.imageExists(tag)).toBe(false);
      expect(await runtime.loadImageTar(tar)).toEqual([tag]);
      expect(await runtime.imageExists(tag)).toBe(true);
      await expect(runtime.loadImageTar(join(dir, "missing.tar"))).rejects.toThrow(/missing.tar failed: file not found/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    const id = await runtime.create(spec({ name: "user", image: tag }));
    await expect(runtime.removeImage(tag)).rejects.toThrow(/refused: in use by container\(s\) evebox-user-/);
    expect(await runtime.imageExists(tag)).toBe(true);
    await runtime.remove(id);
    expect(await runtime.removeImage(tag)).toBe(true);
    expect(await runtime.removeImage(tag)).toBe(false);
  });
});
