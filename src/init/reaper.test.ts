import { describe, expect, test } from "bun:test";
import { join } from "node:path";

const FIXTURE = join(import.meta.dir, "fixtures", "reaper-load.ts");

async function runLoad(prefix: string[], rounds: number) {
  const p = Bun.spawn([...prefix, process.execPath, FIXTURE, String(rounds)], { stdout: "pipe", stderr: "pipe", env: { ...process.env, BUN_BE_BUN: "1" } });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`reaper load exited ${code}: ${err}`);
  const line = out.trim().split("\n").pop()!;
  return { ...JSON.parse(line), stderr: err } as { pid: number; mode: string; checked: number; wrong: number; reaped: number; zombies: number; stderr: string };
}

const canUnshare = process.getuid?.() === 0 && Bun.which("unshare") !== null;

describe("OrphanReaper", () => {
  test("as a child subreaper: reaps every orphan and never steals an exit status Bun waits for", async () => {
    const r = await runLoad([], 150);
    expect(r.stderr).toBe("");
    expect(r.mode).toBe("pidfd");
    expect(r.wrong).toBe(0);
    expect(r.checked).toBeGreaterThan(300);
    expect(r.reaped).toBeGreaterThanOrEqual(150);
    expect(r.zombies).toBe(0);
  }, 60_000);

  test.skipIf(!canUnshare)("as PID 1 of a new PID namespace: the same", async () => {
    const r = await runLoad(["unshare", "--pid", "--fork", "--mount-proc"], 150);
    expect(r.pid).toBe(1);
    expect(r.stderr).toBe("");
    expect(r.wrong).toBe(0);
    expect(r.reaped).toBeGreaterThanOrEqual(150);
    expect(r.zombies).toBe(0);
  }, 60_000);
});
