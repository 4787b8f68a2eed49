// Kicks the hardware (or softdog) watchdog while evebox's event loop runs: if evebox hangs, the kicks stop and the
// watchdog resets the device. The device is never closed with the magic 'V', so a watchdog stays armed through
// an orderly shutdown as well: a shutdown that hangs reboots too.
import { closeSync, existsSync, openSync, readFileSync, writeSync } from "node:fs";

export interface WatchdogStatus {
  device: string | null;
  identity: string | null;
  timeoutSeconds: number | null;
  kicks: number;
  error: string | null;
}

export class Watchdog {
  private fd: number | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private kicks = 0;
  private error: string | null = null;
  private identity: string | null = null;
  private timeoutSeconds: number | null = null;
  private lastKick = 0;
  /** The longest time between two kicks: how long the event loop stalled at worst. */
  worstGapMs = 0;

  constructor(
    private readonly device = "/dev/watchdog",
    private readonly intervalMs = 5000,
    private readonly onStall?: (ms: number) => void,
  ) {}

  /** Opens the watchdog (which arms it) and starts kicking; false when there is none. */
  start(): boolean {
    if (!existsSync(this.device)) {
      this.error = `no ${this.device}`;
      return false;
    }
    try {
      this.fd = openSync(this.device, "w");
    } catch (e) {
      this.error = `cannot open ${this.device}: ${(e as Error).message}`;
      return false;
    }
    const sysfs = "/sys/class/watchdog/watchdog0";
    try {
      this.identity = readFileSync(`${sysfs}/identity`, "utf8").trim();
      this.timeoutSeconds = Number(readFileSync(`${sysfs}/timeout`, "utf8").trim()) || null;
    } catch {
      // older kernels have no sysfs attributes; the device still works
    }
    this.kick();
    this.timer = setInterval(() => this.kick(), this.intervalMs);
    return true;
  }

  kick(): void {
    if (this.fd === null) return;
    const now = Date.now();
    if (this.lastKick) {
      const gap = now - this.lastKick;
      this.worstGapMs = Math.max(this.worstGapMs, gap);
      if (gap > this.intervalMs * 3) this.onStall?.(gap);
    }
    this.lastKick = now;
    try {
      writeSync(this.fd, "k");
      this.kicks++;
      this.error = null;
    } catch (e) {
      this.error = `kick failed: ${(e as Error).message}`;
    }
  }

  /** Stops kicking without disarming: the watchdog fires after its timeout unless the device reboots first. */
  abandon(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Disarms (magic close) — for tests and for a deliberate power-off. */
  disarm(): void {
    this.abandon();
    if (this.fd === null) return;
    try {
      writeSync(this.fd, "V");
      closeSync(this.fd);
    } catch {
      // nothing more to do
    }
    this.fd = null;
  }

  status(): WatchdogStatus & { worstGapMs: number } {
    return { device: this.fd !== null ? this.device : null, identity: this.identity, timeoutSeconds: this.timeoutSeconds, kicks: this.kicks, error: this.error, worstGapMs: this.worstGapMs };
  }
}
