// The simulated vibration sensor: a process on the host writing bursts of readings to a serial port (one end of
// a pty pair, as socat makes it; or a real serial port), one line per burst (the protocol in signal.ts).
//
//   socat pty,raw,echo=0,link=/tmp/pm-device pty,raw,echo=0,link=/tmp/pm-sensor &
//   bun examples/predictive-maintenance/sensor/simulator.ts --port /tmp/pm-sensor --time-scale 600
//
// Machine time runs `--time-scale` times faster than the wall clock, so the bearing's hours of wear pass in
// minutes; each burst carries its machine time. Writes never block: a burst nobody reads (the port's buffer is
// full because the collector is not running) is dropped and counted, as a sensor's UART FIFO would overrun.
import { closeSync, constants, openSync, writeFileSync, appendFileSync, writeSync } from "node:fs";
import { parseArgs } from "node:util";
import { burst, DEFAULT_MODEL, encodeLine, kurtosis, type MachineModel, Random, rms, severityAt } from "./signal.ts";

export interface SimulatorOptions {
  port: string;
  timeScale: number;
  intervalSec: number;
  rateHz: number;
  samples: number;
  startHours: number;
  seed: number;
  model: MachineModel;
  /** A JSON line per burst (seq, machine time, severity, rms, kurtosis, whether it was written). */
  log?: string;
  /** Stop after this many bursts (0: never). */
  count: number;
}

const USAGE = `usage: simulator.ts --port PATH [--time-scale N] [--interval S] [--rate HZ] [--samples N]
                    [--onset H] [--life H] [--start H] [--seed N] [--log FILE] [--count N]
  --port        the serial port (or pty end) to write to
  --time-scale  machine seconds per wall-clock second (default 1: real time)
  --interval    wall-clock seconds between bursts (default 1)
  --rate        sample rate in Hz (default 5120); --samples per burst (default 1024)
  --onset       machine hours at which the bearing defect starts (default ${DEFAULT_MODEL.onsetHours})
  --life        machine hours from the defect's start to a worn-out bearing (default ${DEFAULT_MODEL.lifeHours})
  --start       machine hours at start (default 0)`;

export function parseOptions(argv: string[]): SimulatorOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string" },
      "time-scale": { type: "string", default: "1" },
      interval: { type: "string", default: "1" },
      rate: { type: "string", default: "5120" },
      samples: { type: "string", default: "1024" },
      onset: { type: "string", default: String(DEFAULT_MODEL.onsetHours) },
      life: { type: "string", default: String(DEFAULT_MODEL.lifeHours) },
      start: { type: "string", default: "0" },
      seed: { type: "string", default: "1" },
      log: { type: "string" },
      count: { type: "string", default: "0" },
      help: { type: "boolean" },
    },
  });
  if (values.help || !values.port) throw new Error(USAGE);
  const num = (name: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} ${v}: a number from ${min} to ${max}\n${USAGE}`);
    return n;
  };
  return {
    port: values.port,
    timeScale: num("time-scale", values["time-scale"]!, 0.001, 1e6),
    intervalSec: num("interval", values.interval!, 0.05, 3600),
    rateHz: num("rate", values.rate!, 100, 100_000),
    samples: Math.round(num("samples", values.samples!, 16, 8192)),
    startHours: num("start", values.start!, 0, 1e6),
    seed: Math.round(num("seed", values.seed!, 0, 2 ** 32 - 1)),
    model: { ...DEFAULT_MODEL, onsetHours: num("onset", values.onset!, 0, 1e6), lifeHours: num("life", values.life!, 0.01, 1e6) },
    log: values.log,
    count: Math.round(num("count", values.count!, 0, 1e12)),
  };
}

/** Runs until `count` bursts were made or `signal` aborts; answers how many were written and dropped. */
export async function simulate(o: SimulatorOptions, signal?: AbortSignal, say: (line: string) => void = (l) => console.error(l)): Promise<{ written: number; dropped: number }> {
  const fd = openSync(o.port, constants.O_WRONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
  const rnd = new Random(o.seed);
  const t0 = performance.now();
  let pending: Buffer | null = null;
  let written = 0;
  let dropped = 0;
  if (o.log) writeFileSync(o.log, "");
  try {
    for (let seq = 0; o.count === 0 || seq < o.count; seq++) {
      if (signal?.aborted) break;
      // Machine time of this burst: the wall time elapsed since start, scaled.
      const machineSec = o.startHours * 3600 + ((performance.now() - t0) / 1000) * o.timeScale;
      const samples = burst(machineSec, o.rateHz, o.samples, o.model, rnd);
      const line = encodeLine({ seq, tMs: machineSec * 1000, rateHz: o.rateHz, samples });
      // The rest of a line the port took only in part goes first; a new burst waits for a free port.
      let ok = false;
      if (pending) pending = tryWrite(fd, pending);
      if (!pending) {
        pending = tryWrite(fd, Buffer.from(line));
        ok = true;
        written++;
      } else dropped++;
      if (o.log) {
        const entry = { seq, tMs: Math.round(machineSec * 1000), severity: severityAt(machineSec / 3600, o.model), rms: rms(samples), kurtosis: kurtosis(samples), written: ok };
        appendFileSync(o.log, `${JSON.stringify(entry)}\n`);
      }
      if (seq % 20 === 0) say(`sensor: burst ${seq}, machine time ${(machineSec / 3600).toFixed(2)} h, severity ${severityAt(machineSec / 3600, o.model).toFixed(3)}, ${written} written, ${dropped} dropped`);
      // The next burst at its own wall-clock slot (no drift from the time spent writing).
      const next = t0 + (seq + 1) * o.intervalSec * 1000;
      const wait = next - performance.now();
      if (wait > 0) await sleepUnless(wait, signal);
    }
  } finally {
    closeSync(fd);
  }
  return { written, dropped };
}

/** Writes what the port takes without blocking; answers what is left (null: all of it went). */
function tryWrite(fd: number, data: Buffer): Buffer | null {
  try {
    const n = writeSync(fd, data);
    return n >= data.length ? null : data.subarray(n);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EAGAIN") return data;
    throw e;
  }
}

function sleepUnless(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });
}

if (import.meta.main) {
  let opts: SimulatorOptions;
  try {
    opts = parseOptions(Bun.argv.slice(2));
  } catch (e) {
    console.error((e as Error).message);
    process.exit(2);
  }
  const stop = new AbortController();
  for (const s of ["SIGINT", "SIGTERM"] as const) process.on(s, () => stop.abort());
  const r = await simulate(opts, stop.signal);
  console.error(`sensor: stopped, ${r.written} bursts written, ${r.dropped} dropped`);
}
