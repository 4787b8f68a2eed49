import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { CommandError, run, runChecked } from "./run.ts";

function alive(pid: number): boolean {
  if (!existsSync(`/proc/${pid}/stat`)) return false;
  // a zombie (state Z) has exited; it waits only for its reaper
  return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] !== "Z";
}

describe("run", () => {
  test("returns the exit code, stdout and stderr of a program, without a shell", async () => {
    expect(await run(["/bin/true"])).toEqual({ code: 0, stdout: "", stderr: "", signal: null, timedOut: false });
    expect((await run(["/bin/false"])).code).toBe(1);
    expect(await run(["sh", "-c", "echo out; echo err >&2; exit 3"])).toEqual({ code: 3, stdout: "out\n", stderr: "err\n", signal: null, timedOut: false });
    // an argument is one argv entry: shell syntax in it is just text
    expect((await run(["echo", "$(id) ; exit 9"])).stdout).toBe("$(id) ; exit 9\n");
  });

  test("a program that is not there is code 127 with a message, not a throw", async () => {
    const r = await run(["/nonexistent/evebox-no-such-program", "x"]);
    expect(r.code).toBe(127);
    expect(r.stderr).toContain("cannot run /nonexistent/evebox-no-such-program");
    expect(r.timedOut).toBe(false);
  });

  test("writes stdin and closes it", async () => {
    expect((await run(["cat"], { stdin: "one\ntwo\n" })).stdout).toBe("one\ntwo\n");
    expect((await run(["wc", "-c"], { stdin: new Uint8Array(1000) })).stdout.trim()).toBe("1000");
    // without stdin the program reads /dev/null (it does not hang)
    expect((await run(["cat"], { timeoutMs: 5_000 })).stdout).toBe("");
  });

  test("extends evebox's environment, removes a variable, or replaces it all", async () => {
    process.env.EVEBOX_RUN_TEST_INHERITED = "kept";
    try {
      const ext = await run(["sh", "-c", 'echo "$EVEBOX_RUN_TEST_INHERITED/$EXTRA"'], { env: { EXTRA: "added" } });
      expect(ext.stdout).toBe("kept/added\n");
      const removed = await run(["sh", "-c", 'echo "[$EVEBOX_RUN_TEST_INHERITED]"'], { env: { EVEBOX_RUN_TEST_INHERITED: undefined } });
      expect(removed.stdout).toBe("[]\n");
      const only = await run(["/usr/bin/env"], { env: { ONLY: "this" }, inheritEnv: false });
      expect(only.stdout).toBe("ONLY=this\n");
    } finally {
      delete process.env.EVEBOX_RUN_TEST_INHERITED;
    }
  });

  test("runs in the given directory", async () => {
    expect((await run(["pwd"], { cwd: "/tmp" })).stdout).toBe("/tmp\n");
  });

  test("reads large outputs on both streams completely (no pipe deadlock)", async () => {
    // 4 MiB on stdout and 1 MiB on stderr, far more than a pipe buffer holds
    const r = await run(["sh", "-c", "head -c 4194304 /dev/zero | tr '\\0' a; head -c 1048576 /dev/zero | tr '\\0' b >&2"]);
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(4 * 1024 * 1024);
    expect(r.stderr.length).toBe(1024 * 1024);
    expect(r.stdout.replaceAll("a", "")).toBe("");
  });

  test("kills a program that runs past its timeout and says so", async () => {
    const t0 = Date.now();
    const r = await run(["sleep", "30"], { timeoutMs: 200 });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(r.timedOut).toBe(true);
    expect(r.code).toBe(137);
    expect(r.signal).toBe("SIGKILL");
    // one that finishes in time is not marked
    expect((await run(["/bin/true"], { timeoutMs: 5_000 })).timedOut).toBe(false);
  });

  test("with group, a timeout kills the children the program started too", async () => {
    const r = await run(["sh", "-c", "sleep 30 & echo $!; wait"], { timeoutMs: 300, group: true });
    expect(r.timedOut).toBe(true);
    const child = Number(r.stdout.trim());
    expect(child).toBeGreaterThan(1);
    const deadline = Date.now() + 3_000;
    while (alive(child) && Date.now() < deadline) await Bun.sleep(20);
    expect(alive(child)).toBe(false);
  });

  test("without group, a grandchild holding the output does not keep run waiting long after the timeout", async () => {
    const t0 = Date.now();
    const r = await run(["sh", "-c", "echo started; sleep 30 & sleep 30"], { timeoutMs: 200 });
    expect(r.timedOut).toBe(true);
    expect(r.stdout).toBe("started\n");
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  test("refuses an empty argv", async () => {
    await expect(run([])).rejects.toThrow("empty argv");
  });
});

describe("runChecked", () => {
  test("returns the result of a program that exits 0", async () => {
    expect((await runChecked(["echo", "hi"])).stdout).toBe("hi\n");
  });

  test("throws a CommandError with program, argv, code and trimmed stderr", async () => {
    const err = await runChecked(["sh", "-c", "echo '  it broke  ' >&2; exit 3"]).catch((e) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err.program).toBe("sh");
    expect(err.argv).toEqual(["sh", "-c", "echo '  it broke  ' >&2; exit 3"]);
    expect(err.code).toBe(3);
    expect(err.stderr).toBe("it broke");
    expect(err.timedOut).toBe(false);
    expect(err.message).toBe("sh -c echo '  it broke  ' >&2; exit 3: it broke");
  });

  test("without stderr, the message has stdout, or else the exit code", async () => {
    expect((await runChecked(["/bin/false"]).catch((e) => e)).message).toBe("/bin/false: exited 1");
    expect((await runChecked(["sh", "-c", "echo on stdout; exit 2"]).catch((e) => e)).stderr).toBe("on stdout");
  });

  test("accepts the exit codes given as ok", async () => {
    expect((await runChecked(["sh", "-c", "exit 1"], { okCodes: [1] })).code).toBe(1);
    await expect(runChecked(["sh", "-c", "exit 2"], { okCodes: [1] })).rejects.toBeInstanceOf(CommandError);
  });

  test("a timeout throws, even when the exit code is ok", async () => {
    const err = await runChecked(["sleep", "30"], { timeoutMs: 100, okCodes: [137] }).catch((e) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err.timedOut).toBe(true);
    expect(err.message).toBe("sleep 30: did not finish within 100 ms");
  });

  test("a missing program throws", async () => {
    const err = await runChecked(["/nonexistent/evebox-nope"]).catch((e) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err.code).toBe(127);
  });
});
