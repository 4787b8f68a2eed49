import { afterEach, describe, expect, test } from "bun:test";
import { Supervisor } from "./services.ts";

let sup: Supervisor | null = null;
afterEach(async () => {
  await sup?.stopAll();
  sup = null;
});

function supervisor(lines: string[], o: { stableMs?: number } = {}) {
  sup = new Supervisor({ log: (name, level, line) => lines.push(`${name} ${level} ${line}`), initialBackoffMs: 50, maxBackoffMs: 400, stableMs: o.stableMs ?? 10_000, readyTimeoutMs: 5000 });
  return sup;
}

describe("Supervisor", () => {
  test("a crash-looping service is restarted with a doubling backoff, capped, and reported", async () => {
    const lines: string[] = [];
    const s = supervisor(lines);
    s.start({ name: "crasher", cmd: ["sh", "-c", "echo boom; exit 3"] });
    await Bun.sleep(1800);
    const st = s.status()[0]!;
    // 50 + 100 + 200 + 400 + 400 + … ms: about 6 starts in 1.8 s, not dozens.
    expect(st.starts).toBeGreaterThanOrEqual(4);
    expect(st.starts).toBeLessThanOrEqual(8);
    expect(["backoff", "starting"]).toContain(st.state);
    expect(st.lastExit).toMatch(/^exited with 3/);
    expect(lines).toContain("crasher info boom");
    expect(lines.some((l) => /crasher warn exited with 3 after .* starting again in/.test(l))).toBe(true);
  });

  test("output goes to the log line by line; a ready probe decides 'running'; stop sends SIGTERM", async () => {
    const lines: string[] = [];
    const s = supervisor(lines);
    let ready = false;
    s.start({ name: "daemon", cmd: ["sh", "-c", "trap 'echo bye; exit 0' TERM; echo one; echo two >&2; while :; do sleep 0.05; done"], ready: async () => ready });
    await Bun.sleep(300);
    expect(s.status()[0]!.state).toBe("starting");
    ready = true;
    await s.waitReady("daemon", 3000);
    expect(s.status()[0]!.state).toBe("running");
    await s.stop("daemon");
    expect(s.status()[0]!.state).toBe("stopped");
    expect(lines).toEqual(expect.arrayContaining(["daemon info one", "daemon info two", "daemon info bye"]));
    expect(s.status()[0]!.starts).toBe(1);
  });

  test("a service that ignores SIGTERM is killed after its stop timeout", async () => {
    const lines: string[] = [];
    const s = supervisor(lines);
    s.start({ name: "stubborn", cmd: ["sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.05; done"], stopTimeoutMs: 300 });
    await s.waitReady("stubborn");
    await Bun.sleep(100);
    const t = performance.now();
    await s.stop("stubborn");
    expect(performance.now() - t).toBeGreaterThanOrEqual(290);
    expect(lines.some((l) => l.includes("did not stop within"))).toBe(true);
    expect(s.status()[0]!.lastExit).toMatch(/killed by SIGKILL/);
  });

  test("restart: false runs once", async () => {
    const s = supervisor([]);
    s.start({ name: "once", cmd: ["true"], restart: false });
    await Bun.sleep(300);
    expect(s.status()[0]).toMatchObject({ state: "stopped", starts: 1 });
  });
});
