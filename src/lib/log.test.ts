import { describe, expect, test } from "bun:test";
import { createLogger, type LogRecord } from "./log.ts";

function memorySink() {
  const rows: LogRecord[] = [];
  return { rows, addLogs: (r: LogRecord[]) => void rows.push(...r) };
}

describe("createLogger", () => {
  const ts = new Date("2026-12-02T10:00:00Z");

  test("keeps every line with its source, level and object, and echoes lines above debug", () => {
    const sink = memorySink();
    const echoed: string[] = [];
    const log = createLogger("controller", sink, { objectId: "app-1", echo: (l) => echoed.push(l), now: () => ts });
    log.debug("polling");
    log.info("config received");
    log.warn("slow answer");
    log.error("refused");
    log.log("info", "passed through");
    expect(sink.rows).toEqual([
      { ts, source: "controller", objectId: "app-1", level: "debug", message: "polling" },
      { ts, source: "controller", objectId: "app-1", level: "info", message: "config received" },
      { ts, source: "controller", objectId: "app-1", level: "warn", message: "slow answer" },
      { ts, source: "controller", objectId: "app-1", level: "error", message: "refused" },
      { ts, source: "controller", objectId: "app-1", level: "info", message: "passed through" },
    ]);
    expect(echoed).toEqual([
      "evebox: controller: info: config received",
      "evebox: controller: warn: slow answer",
      "evebox: controller: error: refused",
      "evebox: controller: info: passed through",
    ]);
  });

  test("without a sink, lines above debug go to the echo only", () => {
    const echoed: string[] = [];
    const log = createLogger("init", null, { echo: (l) => echoed.push(l) });
    log.debug("dropped");
    log.warn("no store yet");
    expect(echoed).toEqual(["evebox: init: warn: no store yet"]);
  });

  test("echo: false keeps lines in the sink only", () => {
    const sink = memorySink();
    const log = createLogger("network", sink, { echo: false });
    log.error("quiet");
    expect(sink.rows.map((r) => r.message)).toEqual(["quiet"]);
    expect(sink.rows[0]!.objectId).toBeNull();
  });

  test("a sink that throws does not throw at the caller, and the line still reaches the echo", () => {
    const echoed: string[] = [];
    const log = createLogger("baseos", { addLogs: () => { throw new Error("store closed"); } }, { echo: (l) => echoed.push(l) });
    expect(() => log.error("after close")).not.toThrow();
    expect(echoed).toEqual(["evebox: baseos: error: after close"]);
  });

  test("the default echo writes to stderr", async () => {
    const p = Bun.spawn([process.execPath, "-e", `import { createLogger } from "${import.meta.dir}/log.ts"; createLogger("cli").info("hello"); createLogger("cli").debug("no");`], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect(out).toBe("");
    expect(err).toBe("evebox: cli: info: hello\n");
  });
});
