import { describe, expect, test } from "bun:test";
import { LogDemuxer, parseEngineTime } from "./demux.ts";

function frame(type: number, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

describe("LogDemuxer", () => {
  test("splits stdout and stderr frames and parses timestamps", () => {
    const d = new LogDemuxer();
    const lines = d.push(
      Buffer.concat([frame(1, "2026-01-02T03:04:05.123456789Z hello\n"), frame(2, "2026-01-02T03:04:06Z oops\n")]),
    );
    expect(lines).toEqual([
      { stream: "stdout", ts: new Date("2026-01-02T03:04:05.123Z"), line: "hello" },
      { stream: "stderr", ts: new Date("2026-01-02T03:04:06.000Z"), line: "oops" },
    ]);
  });

  test("reassembles frames cut across chunks", () => {
    const d = new LogDemuxer();
    const all = Buffer.concat([frame(1, "2026-01-02T03:04:05Z a b c\n"), frame(1, "2026-01-02T03:04:05Z d\n")]);
    const got = [...d.push(all.subarray(0, 5)), ...d.push(all.subarray(5, 20)), ...d.push(all.subarray(20))];
    expect(got.map((l) => l.line)).toEqual(["a b c", "d"]);
    expect(d.leftover).toBe(0);
  });

  test("keeps a line without a timestamp whole", () => {
    const [line] = new LogDemuxer().push(frame(1, "no stamp here\n"));
    expect(line?.line).toBe("no stamp here");
  });

  test("parseEngineTime rejects non-timestamps", () => {
    expect(parseEngineTime("hello")).toBeNull();
    expect(parseEngineTime("2026-01-02T03:04:05+02:00")?.toISOString()).toBe("2026-01-02T01:04:05.000Z");
  });
});
