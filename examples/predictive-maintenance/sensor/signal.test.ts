// The simulated signal and its line protocol, and the stack's Python method (pmlib.py) checked against them with
// the host's Python 3 (the same Debian python3 the stack image carries), so both sides read the protocol alike.
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { burst, DEFAULT_MODEL, encodeLine, kurtosis, parseLine, Random, rms, severityAt } from "./signal.ts";
import { parseOptions } from "./simulator.ts";

const PMLIB = join(import.meta.dir, "..", "images", "stack", "opt", "pm");
const PYTHON = ["/usr/bin/python3", "/usr/local/bin/python3"].find(existsSync);

describe("the signal", () => {
  test("severity: 0 until the onset, growing, 1 at the end of life and after", () => {
    const m = DEFAULT_MODEL;
    expect(severityAt(0, m)).toBe(0);
    expect(severityAt(m.onsetHours, m)).toBe(0);
    const mid = severityAt(m.onsetHours + m.lifeHours / 2, m);
    expect(mid).toBeGreaterThan(0.05);
    expect(mid).toBeLessThan(0.5); // wear accelerates: half the life, well under half the damage
    expect(severityAt(m.onsetHours + m.lifeHours, m)).toBeCloseTo(1, 9);
    expect(severityAt(m.onsetHours + 2 * m.lifeHours, m)).toBe(1);
  });

  test("a healthy burst is the shaft's spectrum and noise; a worn bearing raises RMS and kurtosis", () => {
    const rnd = new Random(7);
    const healthy = burst(0.5 * 3600, 5120, 1024, DEFAULT_MODEL, rnd);
    const worn = burst((DEFAULT_MODEL.onsetHours + DEFAULT_MODEL.lifeHours) * 3600, 5120, 1024, DEFAULT_MODEL, rnd);
    expect(healthy).toHaveLength(1024);
    expect(healthy.every(Number.isInteger)).toBe(true);
    // 120/45/20 mg sines and 25 mg noise: RMS sqrt((120²+45²+20²)/2 + 25²) ≈ 96 mg.
    expect(rms(healthy)).toBeGreaterThan(85);
    expect(rms(healthy)).toBeLessThan(110);
    expect(rms(worn) / rms(healthy)).toBeGreaterThan(1.6);
    expect(kurtosis(worn) / kurtosis(healthy)).toBeGreaterThan(1.4);
  });

  test("the same seed gives the same bursts", () => {
    expect(burst(100, 5120, 64, DEFAULT_MODEL, new Random(3))).toEqual(burst(100, 5120, 64, DEFAULT_MODEL, new Random(3)));
  });

  test("kurtosis: a sine is 1.5, Gaussian noise about 3", () => {
    const sine = Array.from({ length: 10000 }, (_, i) => Math.sin((2 * Math.PI * i) / 100));
    expect(kurtosis(sine)).toBeCloseTo(1.5, 2);
    const r = new Random(1);
    const noise = Array.from({ length: 200000 }, () => r.gauss());
    expect(kurtosis(noise)).toBeGreaterThan(2.9);
    expect(kurtosis(noise)).toBeLessThan(3.1);
  });
});

describe("the line protocol", () => {
  test("a line reads back as written; a changed byte or a wrong count is refused", () => {
    const b = { seq: 42, tMs: 7_200_000, rateHz: 5120, samples: [1, -2, 300, -4000] };
    const line = encodeLine(b);
    expect(line).toMatch(/^\$VIB,42,7200000,5120,4,1,-2,300,-4000\*[0-9A-F]{2}\r\n$/);
    expect(parseLine(line)).toEqual(b);
    expect(parseLine(line.replace(",300,", ",301,"))).toEqual({ error: "checksum mismatch" });
    expect(parseLine("garbage\n")).toEqual({ error: "not a $VIB line" });
    const body = "VIB,1,0,5120,3,1,2";
    let c = 0;
    for (const ch of body) c ^= ch.charCodeAt(0);
    expect(parseLine(`$${body}*${c.toString(16).toUpperCase().padStart(2, "0")}\n`)).toEqual({ error: "count 3 but 2 samples" });
  });
});

describe("the simulator's options", () => {
  test("defaults, a time scale, and a bad value refused with the usage", () => {
    const o = parseOptions(["--port", "/dev/pts/9", "--time-scale", "600"]);
    expect(o).toMatchObject({ port: "/dev/pts/9", timeScale: 600, intervalSec: 1, rateHz: 5120, samples: 1024, count: 0 });
    expect(o.model.onsetHours).toBe(DEFAULT_MODEL.onsetHours);
    expect(() => parseOptions(["--port", "/x", "--time-scale", "fast"])).toThrow(/--time-scale fast: a number/);
    expect(() => parseOptions([])).toThrow(/usage: simulator.ts --port PATH/);
  });
});

describe.if(!!PYTHON)("the stack's Python method (pmlib.py) against the same bursts", () => {
  const py = async (code: string, stdin: string): Promise<any> => {
    const p = Bun.spawn([PYTHON!, "-c", code], { cwd: PMLIB, stdin: new TextEncoder().encode(stdin), stdout: "pipe", stderr: "pipe", env: { PATH: "/usr/bin:/bin", PYTHONDONTWRITEBYTECODE: "1" } });
    const [out, err, codeExit] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (codeExit !== 0) throw new Error(`python: ${err}`);
    return JSON.parse(out);
  };

  test("parse_line, rms and kurtosis agree with the TypeScript side; a bad line is refused", async () => {
    const rnd = new Random(11);
    const bursts = [0.5, 5, 7.5].map((h, seq) => ({ seq, tMs: h * 3.6e6, rateHz: 5120, samples: burst(h * 3600, 5120, 1024, DEFAULT_MODEL, rnd) }));
    const lines = `${bursts.map(encodeLine).join("")}$VIB,9,0,5120,1,5*00\r\n`;
    const got = await py(
      `import sys, json, pmlib
out = []
for line in sys.stdin.buffer.read().split(b"\\n"):
    if not line.strip(): continue
    try:
        b = pmlib.parse_line(line)
        out.append({"seq": b["seq"], "t": b["t"], "n": len(b["samples"]), "rms": pmlib.rms(b["samples"]), "kurtosis": pmlib.kurtosis(b["samples"])})
    except ValueError as e:
        out.append({"error": str(e)})
print(json.dumps(out))`,
      lines,
    );
    expect(got).toHaveLength(4);
    bursts.forEach((b, i) => {
      expect(got[i]).toMatchObject({ seq: b.seq, t: Math.round(b.tMs), n: 1024 });
      expect(got[i].rms).toBeCloseTo(rms(b.samples), 9);
      expect(got[i].kurtosis).toBeCloseTo(kurtosis(b.samples), 9);
    });
    expect(got[3]).toEqual({ error: "checksum mismatch" });
  });

  test("health and remaining life: a falling line reaches the threshold where it should; a flat one gives none", async () => {
    const got = await py(
      `import json, pmlib
base = {"rms": 100.0, "kurtosis": 2.0}
falling = [(i / 2, 100 - 5 * i) for i in range(0, 11)]      # 10 points per hour down to 50 at 5 h: 30 at 7 h
flat = [(h, 80.0) for h in range(0, 12)]
print(json.dumps({
  "healthy": pmlib.health(100.0, 2.0, base),
  "rmsDouble": pmlib.health(200.0, 2.0, base),
  "kurtHalfway": pmlib.health(100.0, 2.6, base),
  "falling": pmlib.remaining_life(falling),
  "flat": pmlib.remaining_life(flat),
  "few": pmlib.remaining_life(falling[:7]),
  "below": pmlib.remaining_life([(h, 50 - 5 * h) for h in range(0, 10)]),
}))`,
      "",
    );
    expect(got.healthy).toBe(100);
    expect(got.rmsDouble).toBe(0); // RMS at RMS_LIMIT (2×) is the end of the scale
    expect(got.kurtHalfway).toBeCloseTo(50, 6); // kurtosis 1.3× of a 1.6× limit: half the damage
    expect(got.falling).toBeCloseTo(2, 6); // from 5 h to 7 h
    expect(got.flat).toBeNull();
    expect(got.few).toBeNull();
    expect(got.below).toBe(0);
  });
});
