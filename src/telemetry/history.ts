// The metrics history's sampler: one timer that every interval (10 s by default) reads the device (/proc) and the
// running apps (the app runtime: Docker stats, QEMU's process and taps), turns counters into rates against the
// previous sample, and records one point per object in the store's history, which it then rolls up and prunes.
// Nothing here allocates per sample beyond the point it records; the store's statements are prepared.
import type { MetricPoint } from "../store/metrics-history.ts";
import type { AppSample, DeviceSample } from "./metrics.ts";

/** Where the points go: the store's MetricsHistory in practice. */
export interface HistorySink {
  record(object: string, ts: number, p: MetricPoint): boolean;
  maintain(now: number): void;
  /** One transaction around a tick's writes. */
  batch<T>(f: () => T): T;
}

export interface HistorySources {
  device(): DeviceSample;
  /** The running apps' cumulative counters (none before the app runtime runs). */
  apps(): Promise<AppSample[]>;
  /** CPUs of the device (app CPU is a share of all of them). */
  cpus: number;
}

export interface HistorySamplerOptions {
  sink: HistorySink;
  sources: HistorySources;
  /** Sampling interval; 10 s unless the composition root says otherwise (tests). */
  intervalMs?: number;
  /** Milliseconds since the epoch (tests inject one). */
  clock?: () => number;
  /** A sample that failed, once per distinct failure until a tick succeeds (the timer itself never throws). */
  onError?: (message: string) => void;
}

export const DEFAULT_INTERVAL_MS = 10_000;

/** The counters a rate is computed from: one per object, updated in place. */
interface Previous {
  at: number;
  cpuBusy: number;
  cpuTotal: number;
  diskRead: number;
  diskWrite: number;
  netRx: number;
  netTx: number;
}

/** Interfaces that carry other interfaces' traffic a second time (ours, Docker's, taps, veths) or none. */
const VIRTUAL_IF = /^(lo$|eb|ev|veth|docker|br-|tap|vnet|virbr)/;

export class HistorySampler {
  readonly intervalMs: number;
  private readonly clock: () => number;
  private timer: ReturnType<typeof setInterval> | null = null;
  private running: Promise<void> | null = null;
  private readonly prev = new Map<string, Previous>();
  /** Ticks skipped because the previous one was still running (a slow engine). */
  skipped = 0;
  private lastError: string | null = null;

  constructor(private readonly o: HistorySamplerOptions) {
    this.intervalMs = o.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.clock = o.clock ?? Date.now;
  }

  /** Samples once now (the graphs have a point from the start), then every interval. */
  start(): void {
    if (this.timer) return;
    const run = () => {
      if (this.running) {
        this.skipped++;
        return;
      }
      this.running = this.tick().finally(() => (this.running = null));
    };
    this.timer = setInterval(run, this.intervalMs);
    this.timer.unref?.();
    run();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One sample of everything; never throws (a failure goes to onError). */
  async tick(): Promise<void> {
    const now = this.clock();
    this.failed = null;
    let device: DeviceSample | null = null;
    try {
      device = this.o.sources.device();
    } catch (e) {
      this.fail(`device sample: ${(e as Error).message}`);
    }
    let apps: AppSample[] = [];
    try {
      apps = await this.o.sources.apps();
    } catch (e) {
      this.fail(`app samples: ${(e as Error).message}`);
    }
    try {
      this.o.sink.batch(() => {
        if (device) this.recordDevice(now, device);
        for (const a of apps) this.recordApp(now, a);
        this.o.sink.maintain(now);
      });
    } catch (e) {
      this.fail(`metrics history: ${(e as Error).message}`);
    }
    // An app that stopped starts again from a first sample (its counters restarted with it).
    if (this.prev.size > apps.length + 1) {
      const seen = new Set(apps.map((a) => a.uuid));
      for (const id of this.prev.keys()) if (id !== "device" && !seen.has(id)) this.prev.delete(id);
    }
    if (this.failed === null) this.lastError = null;
  }

  private failed: string | null = null;
  private fail(message: string): void {
    this.failed = message;
    if (message !== this.lastError) this.o.onError?.(message);
    this.lastError = message;
  }

  private recordDevice(now: number, s: DeviceSample): void {
    let diskRead = 0;
    let diskWrite = 0;
    let used: number | null = null;
    for (const d of s.disks) {
      if (d.mountPath) used = (used ?? 0) + (d.usedBytes ?? 0);
      else {
        diskRead += d.readBytes;
        diskWrite += d.writeBytes;
      }
    }
    let rx = 0;
    let tx = 0;
    for (const n of s.network) {
      if (VIRTUAL_IF.test(n.name)) continue;
      rx += n.rxBytes;
      tx += n.txBytes;
    }
    const p = this.rates("device", now, s.cpu.busyNs, s.cpu.totalNs, diskRead, diskWrite, rx, tx);
    p.memoryBytes = s.memory.totalBytes - s.memory.availableBytes;
    p.diskUsedBytes = used;
    this.o.sink.record("device", now, p);
  }

  private recordApp(now: number, a: AppSample): void {
    // An app's CPU is a share of all the device's CPUs: its ns over the wall time of every CPU.
    const p = this.rates(a.uuid, now, a.cpuNs ?? NaN, NaN, a.diskReadBytes ?? NaN, a.diskWriteBytes ?? NaN, a.netRxBytes ?? NaN, a.netTxBytes ?? NaN);
    p.memoryBytes = a.memoryUsedBytes ?? null;
    this.o.sink.record(a.uuid, now, p);
  }

  /**
   * Rates against the object's previous counters (null on its first sample, after a counter went backwards — a
   * restart — or where a counter is unknown, NaN). `cpuTotal` NaN: CPU is a share of the device's wall time.
   */
  private rates(object: string, now: number, cpuBusy: number, cpuTotal: number, diskRead: number, diskWrite: number, netRx: number, netTx: number): MetricPoint {
    const p: MetricPoint = { cpu: null, memoryBytes: null, diskReadBps: null, diskWriteBps: null, netRxBps: null, netTxBps: null, diskUsedBytes: null };
    const prev = this.prev.get(object);
    if (prev && now > prev.at) {
      const s = (now - prev.at) / 1000;
      const rate = (cur: number, old: number) => (Number.isFinite(cur) && Number.isFinite(old) && cur >= old ? Math.round((cur - old) / s) : null);
      if (Number.isFinite(cpuTotal)) {
        const dt = cpuTotal - prev.cpuTotal;
        if (dt > 0 && cpuBusy >= prev.cpuBusy) p.cpu = Math.round(((cpuBusy - prev.cpuBusy) / dt) * 10_000);
      } else if (Number.isFinite(cpuBusy) && cpuBusy >= prev.cpuBusy) {
        p.cpu = Math.min(10_000, Math.round(((cpuBusy - prev.cpuBusy) / ((now - prev.at) * 1e6 * this.o.sources.cpus)) * 10_000));
      }
      p.diskReadBps = rate(diskRead, prev.diskRead);
      p.diskWriteBps = rate(diskWrite, prev.diskWrite);
      p.netRxBps = rate(netRx, prev.netRx);
      p.netTxBps = rate(netTx, prev.netTx);
    }
    if (prev) {
      prev.at = now;
      prev.cpuBusy = cpuBusy;
      prev.cpuTotal = cpuTotal;
      prev.diskRead = diskRead;
      prev.diskWrite = diskWrite;
      prev.netRx = netRx;
      prev.netTx = netTx;
    } else this.prev.set(object, { at: now, cpuBusy, cpuTotal, diskRead, diskWrite, netRx, netTx });
    return p;
  }
}
