// When evebox gives the pages only its start touched back to the kernel (lib/trim.ts, issue 17): once a burst of
// work is over. A burst is the start, a config accepted, an app changing state; the trim runs `settleMs` after the
// last of them, when the console is quiet, and at the latest `maxWaitMs` after the first untrimmed one (an app
// that keeps changing state does not hold it off for ever), and at most once every `minIntervalMs` (a download
// retried every few seconds would otherwise have the idle working set paged out and read back each time). What a
// later burst touches and then leaves goes at the next trim; what is in use stays (the next touch brings it back).
import { type TrimResult, TrimUnsupported, trimExecutable } from "../lib/trim.ts";

export interface TrimPolicyDeps {
  /** Resolves when the console has been quiet for a moment (or after a bound). */
  quiet: () => Promise<void>;
  say: (line: string) => void;
  trim?: () => Promise<TrimResult>;
  settleMs?: number;
  maxWaitMs?: number;
  minIntervalMs?: number;
}

const mib = (kib: number) => (kib / 1024).toFixed(1);

export class TrimPolicy {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private firstPokeAt: number | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private off = false;
  /** The last trim's figures (`/metrics`). */
  last: (TrimResult & { at: number }) | null = null;
  count = 0;

  constructor(private readonly deps: TrimPolicyDeps) {}

  /** A burst of work happened: trim once it has settled. */
  poke(): void {
    if (this.stopped || this.off) return;
    const now = Date.now();
    this.firstPokeAt ??= now;
    const settle = this.deps.settleMs ?? 10_000;
    const latest = this.firstPokeAt + (this.deps.maxWaitMs ?? 120_000);
    const earliest = this.last ? this.last.at + (this.deps.minIntervalMs ?? 600_000) : 0;
    const at = Math.max(Math.min(now + settle, latest), earliest);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.fire(), Math.max(0, at - now));
    this.timer.unref?.();
  }

  private async fire(): Promise<void> {
    this.timer = null;
    if (this.stopped || this.running) return;
    this.firstPokeAt = null;
    this.running = (async () => {
      await this.deps.quiet();
      if (this.stopped) return;
      try {
        const r = await (this.deps.trim ?? trimExecutable)();
        this.last = { ...r, at: Date.now() };
        this.count++;
        this.deps.say(
          `evebox: start-up pages returned to the kernel: RSS ${mib(r.before.rssKiB)} → ${mib(r.after.rssKiB)} MiB (the binary's pages ${mib(r.before.fileKiB)} → ${mib(r.after.fileKiB)})`,
        );
      } catch (e) {
        // Not worth a retry: the kernel has no MADV_PAGEOUT, or libc is out of reach; evebox runs as before.
        this.off = true;
        this.deps.say(`evebox: start-up pages are not returned to the kernel: ${(e as Error).message}${e instanceof TrimUnsupported ? "" : " (trimming off)"}`);
      }
    })().finally(() => {
      this.running = null;
    });
    await this.running;
  }

  /** Prometheus lines for `/metrics`. */
  metricsLines(): string[] {
    const l = this.last;
    return [
      "# HELP evebox_trims_total Times the binary's pages only a burst of work touched were returned to the kernel.",
      "# TYPE evebox_trims_total counter",
      `evebox_trims_total ${this.count}`,
      ...(l
        ? [
            "# HELP evebox_trim_resident_bytes Resident memory just before and just after the last trim.",
            "# TYPE evebox_trim_resident_bytes gauge",
            `evebox_trim_resident_bytes{when="before"} ${l.before.rssKiB * 1024}`,
            `evebox_trim_resident_bytes{when="after"} ${l.after.rssKiB * 1024}`,
          ]
        : []),
    ];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }
}
