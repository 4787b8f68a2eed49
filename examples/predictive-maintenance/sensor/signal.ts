// The vibration signal of a motor-driven spindle with a rolling bearing that wears out, and the line protocol the
// simulated sensor speaks. Pure (no I/O): simulator.ts drives it, the tests check it, analytics (Python, in the
// stack image) reads the same lines.
//
// Signal, in milli-g (mg), one burst of `samples` values at `sampleRateHz`:
//   shaft rotation at `shaftHz` and its 2nd and 3rd harmonics (unbalance, misalignment), Gaussian noise, and, once
//   the fault has started, an outer-race bearing defect: an impact each time a rolling element passes the defect
//   (BPFO = bpfoRatio × shaft frequency, with ±1 % slip), each ringing the housing's resonance at `resonanceHz`
//   and dying away with `decayMs`. The defect's severity s grows from 0 at `onsetHours` to 1 at
//   `onsetHours + lifeHours` along an exponential curve (wear accelerates), and with it the impact amplitude, the
//   noise floor and the 1× component (the growing looseness).
//
// Line protocol (ASCII, one line per burst, NMEA-like):
//   $VIB,<seq>,<t_ms>,<rate_hz>,<n>,<s_1>,…,<s_n>*<XX>\r\n
// seq: burst counter from 0 (wraps at 2^32); t_ms: machine time in ms since the sensor started (simulated time
// with a time scale); rate_hz: sample rate; n: number of samples; s_i: signed integers in mg; XX: two upper-case
// hex digits, the XOR of every byte between '$' and '*' (exclusive). A reader drops a line whose checksum or
// count is wrong.

export interface MachineModel {
  shaftHz: number;
  /** Amplitudes (mg) of the 1×, 2×, 3× shaft components. */
  harmonicsMg: [number, number, number];
  noiseMg: number;
  bpfoRatio: number;
  resonanceHz: number;
  decayMs: number;
  /** Impact amplitude (mg) at severity 1. */
  impactMg: number;
  /** Machine hours at which the defect starts. */
  onsetHours: number;
  /** Machine hours from the start of the defect to a worn-out bearing (severity 1). */
  lifeHours: number;
}

export const DEFAULT_MODEL: MachineModel = {
  shaftHz: 24.75, // 1485 rpm: a 4-pole motor on 50 Hz
  harmonicsMg: [120, 45, 20],
  noiseMg: 25,
  bpfoRatio: 3.57,
  resonanceHz: 1850,
  decayMs: 1,
  impactMg: 700,
  onsetHours: 2,
  lifeHours: 6,
};

/** The defect's severity, 0..1, at `hours` of machine time. */
export function severityAt(hours: number, m: MachineModel): number {
  if (hours <= m.onsetHours) return 0;
  const u = Math.min(1, (hours - m.onsetHours) / m.lifeHours);
  const k = 3; // curvature: a third of the life gives ~10 % of the damage, the last third more than half
  return (Math.exp(k * u) - 1) / (Math.exp(k) - 1);
}

/** A small seeded generator (mulberry32) with Gaussian draws, so a run can be repeated. */
export class Random {
  private s: number;
  private spare: number | null = null;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  gauss(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

/** One burst of `n` samples (mg, rounded) starting at `tSeconds` of machine time. */
export function burst(tSeconds: number, sampleRateHz: number, n: number, m: MachineModel, rnd: Random): number[] {
  const s = severityAt(tSeconds / 3600, m);
  const dt = 1 / sampleRateHz;
  const w = 2 * Math.PI * m.shaftHz;
  const [a1, a2, a3] = m.harmonicsMg;
  const amp1 = a1 * (1 + 0.6 * s);
  const noise = m.noiseMg * (1 + 1.5 * s);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = tSeconds + i * dt;
    out[i] = amp1 * Math.sin(w * t) + a2 * Math.sin(2 * w * t + 0.7) + a3 * Math.sin(3 * w * t + 1.9) + noise * rnd.gauss();
  }
  if (s > 0) {
    const bpfo = m.bpfoRatio * m.shaftHz;
    const tau = m.decayMs / 1000;
    const ring = 2 * Math.PI * m.resonanceHz;
    const span = Math.ceil((6 * tau) / dt); // an impact has died away after 6 time constants
    // Impacts are phase-locked to the defect, which the rolling elements pass at BPFO: the first one in this burst.
    const period = 1 / bpfo;
    let at = period - (tSeconds % period);
    while (at < n * dt) {
      const a = m.impactMg * Math.sqrt(s) * (0.75 + 0.5 * rnd.next());
      const start = Math.ceil(at / dt);
      for (let i = start; i < Math.min(n, start + span); i++) {
        const x = i * dt - at;
        out[i]! += a * Math.exp(-x / tau) * Math.sin(ring * x);
      }
      at += period * (1 + 0.02 * (rnd.next() - 0.5)); // slip of the rolling elements
    }
  }
  return Array.from(out, (v) => Math.round(v));
}

export function rms(x: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i]! * x[i]!;
  return Math.sqrt(sum / x.length);
}

/** Kurtosis (not excess: a Gaussian is 3, a sine 1.5): the fourth central moment over the variance squared. */
export function kurtosis(x: ArrayLike<number>): number {
  const n = x.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i]!;
  mean /= n;
  let m2 = 0;
  let m4 = 0;
  for (let i = 0; i < n; i++) {
    const d = x[i]! - mean;
    const d2 = d * d;
    m2 += d2;
    m4 += d2 * d2;
  }
  m2 /= n;
  m4 /= n;
  return m2 > 0 ? m4 / (m2 * m2) : 0;
}

function checksum(body: string): string {
  let c = 0;
  for (let i = 0; i < body.length; i++) c ^= body.charCodeAt(i);
  return c.toString(16).toUpperCase().padStart(2, "0");
}

export interface Burst {
  seq: number;
  tMs: number;
  rateHz: number;
  samples: number[];
}

export function encodeLine(b: Burst): string {
  const body = `VIB,${b.seq >>> 0},${Math.round(b.tMs)},${b.rateHz},${b.samples.length},${b.samples.join(",")}`;
  return `$${body}*${checksum(body)}\r\n`;
}

/** The reading of one line, or why it is refused (what the collector does, in TypeScript for the tests). */
export function parseLine(line: string): Burst | { error: string } {
  const m = /^\$(VIB,[-0-9,]+)\*([0-9A-F]{2})\r?\n?$/.exec(line);
  if (!m) return { error: "not a $VIB line" };
  if (checksum(m[1]!) !== m[2]) return { error: "checksum mismatch" };
  const f = m[1]!.split(",").slice(1).map(Number);
  const [seq, tMs, rateHz, n] = f as [number, number, number, number];
  const samples = f.slice(4);
  if (samples.length !== n || n < 1) return { error: `count ${n} but ${samples.length} samples` };
  if (!samples.every(Number.isInteger) || !(rateHz > 0)) return { error: "bad field" };
  return { seq, tMs, rateHz, samples };
}
