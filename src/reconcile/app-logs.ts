// Follows the output of each running container and keeps it in the store (bounded), so app logs
// survive container removal and evebox restarts and can be read in the console or uploaded.
import type { ContainerRuntime } from "../runtime/containers/runtime.ts";
import type { OwnedContainer } from "../runtime/containers/types.ts";
import type { Store } from "../store/store.ts";

const FLUSH_MS = 250;

export class AppLogCollector {
  private readonly following = new Map<string, AbortController>();
  private buffer: { ts: Date; source: string; objectId: string; level: string; message: string }[] = [];
  private flushTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly runtime: ContainerRuntime,
    private readonly store: Store,
    private readonly log: (level: "info" | "warn" | "error", message: string) => void,
  ) {}

  /** Follows every running container not yet followed; stops following the ones gone. */
  sync(containers: OwnedContainer[]): void {
    const running = new Map(containers.filter((c) => c.state === "running").map((c) => [c.id, c]));
    for (const [id, ac] of this.following) {
      if (!running.has(id)) {
        ac.abort();
        this.following.delete(id);
      }
    }
    for (const c of running.values()) if (!this.following.has(c.id)) this.follow(c);
  }

  private follow(c: OwnedContainer): void {
    const ac = new AbortController();
    this.following.set(c.id, ac);
    const last = this.store.logsFor("app", c.appUuid, 1).at(-1);
    // Resume after what is stored (the store keeps ms, the engine ns: skip what is not newer). With
    // nothing stored, read from the container's beginning: its first lines can carry a timestamp
    // just before the engine's StartedAt.
    const since = last ? new Date(last.ts.getTime() - 1) : undefined;
    const isOld = (ts: Date, message: string) => !!last && (ts.getTime() < last.ts.getTime() || (ts.getTime() === last.ts.getTime() && message === last.message));
    void (async () => {
      try {
        for await (const line of this.runtime.logs(c.id, { follow: true, since, signal: ac.signal })) {
          if (isOld(line.ts, line.line)) continue;
          this.buffer.push({ ts: line.ts, source: "app", objectId: c.appUuid, level: line.stream === "stderr" ? "warn" : "info", message: line.line });
          this.flushSoon();
        }
      } catch (e) {
        if (!ac.signal.aborted) this.log("warn", `logs of app ${c.appName}: ${(e as Error).message}`);
      } finally {
        if (this.following.get(c.id) === ac) this.following.delete(c.id);
      }
    })();
  }

  private flushSoon(): void {
    if (this.buffer.length >= 500) return this.flush();
    this.flushTimer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const rows = this.buffer;
    this.buffer = [];
    try {
      this.store.addLogs(rows);
    } catch {
      // the store is closing; these lines are lost with the process anyway
    }
  }

  stopAll(): void {
    for (const ac of this.following.values()) ac.abort();
    this.following.clear();
    this.flush();
  }
}
