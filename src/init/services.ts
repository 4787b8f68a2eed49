// Supervised services: the daemons the device needs (containerd, dockerd, a DHCP client per port, a debug
// shell when asked). Each runs in the foreground as evebox's child; its output goes, line by line, to a log
// sink (the store); when it exits it is started again after a backoff (1 s, 2 s, 4 s … up to `maxBackoffMs`),
// reset once a run lasted `stableMs`. A crash-looping service is reported, and the device stays up.
import type { Subprocess } from "bun";
import { Backoff, type BackoffPolicy } from "../lib/backoff.ts";
import { waitFor } from "../lib/wait.ts";

export interface ServiceSpec {
  name: string;
  cmd: string[];
  env?: Record<string, string>;
  /** Where stdin/stdout/stderr go; default: stdin closed, output to the log sink. */
  stdio?: { stdin: number | "ignore"; stdout: number | "pipe"; stderr: number | "pipe" };
  /** Answers true once the service does its job (e.g. its socket answers); polled after each start. */
  ready?: () => Promise<boolean>;
  /** How long `stop` waits after SIGTERM before SIGKILL. */
  stopTimeoutMs?: number;
  /** Run once more on each exit? Default true. */
  restart?: boolean;
}

export type ServiceState = "starting" | "running" | "backoff" | "stopping" | "stopped" | "failed";

export interface ServiceStatus {
  name: string;
  state: ServiceState;
  pid: number | null;
  starts: number;
  lastExit: string | null;
  /** When a restart waits: when it will start. */
  nextStartAt: string | null;
  since: string;
}

export interface SupervisorOptions {
  log: (service: string, level: "info" | "warn" | "error", line: string) => void;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  stableMs?: number;
  /** Ready probes give up after this long (the service is then reported, not killed). */
  readyTimeoutMs?: number;
}

class Service {
  state: ServiceState = "stopped";
  proc: Subprocess | null = null;
  starts = 0;
  lastExit: string | null = null;
  startedAt = 0;
  since = new Date();
  /** Restarts after a crash: initial, twice that, … up to the maximum; reset once a run lasted `stableMs`. */
  readonly backoff: Backoff;
  nextStart: ReturnType<typeof setTimeout> | null = null;
  nextStartAt: Date | null = null;
  readyWaiters: (() => void)[] = [];

  constructor(
    readonly spec: ServiceSpec,
    backoff: BackoffPolicy,
  ) {
    this.backoff = new Backoff(backoff);
  }

  setState(s: ServiceState) {
    this.state = s;
    this.since = new Date();
  }
}

export class Supervisor {
  private readonly services = new Map<string, Service>();
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly stableMs: number;

  constructor(private readonly opts: SupervisorOptions) {
    this.initialBackoffMs = opts.initialBackoffMs ?? 1000;
    this.maxBackoffMs = opts.maxBackoffMs ?? 60_000;
    this.stableMs = opts.stableMs ?? 30_000;
  }

  /** Starts `spec` (replacing a stopped service of that name) and keeps it running. */
  start(spec: ServiceSpec): void {
    const existing = this.services.get(spec.name);
    if (existing && existing.state !== "stopped" && existing.state !== "failed") throw new Error(`service ${spec.name} is already running`);
    const s = new Service(spec, { baseMs: this.initialBackoffMs, maxMs: this.maxBackoffMs });
    this.services.set(spec.name, s);
    this.launch(s);
  }

  has(name: string): boolean {
    const s = this.services.get(name);
    return !!s && s.state !== "stopped";
  }

  /** Resolves once the service's ready probe said yes (immediately without a probe), or rejects after the timeout. */
  waitReady(name: string, timeoutMs = this.opts.readyTimeoutMs ?? 60_000): Promise<void> {
    const s = this.services.get(name);
    if (!s) return Promise.reject(new Error(`no service ${name}`));
    if (s.state === "running") return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${name} was not ready within ${Math.round(timeoutMs / 1000)} s (${s.state}${s.lastExit ? `, last exit: ${s.lastExit}` : ""})`)), timeoutMs);
      s.readyWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  status(): ServiceStatus[] {
    return [...this.services.values()].map((s) => ({
      name: s.spec.name,
      state: s.state,
      pid: s.proc && s.proc.exitCode === null && s.proc.signalCode === null ? s.proc.pid : null,
      starts: s.starts,
      lastExit: s.lastExit,
      nextStartAt: s.nextStartAt?.toISOString() ?? null,
      since: s.since.toISOString(),
    }));
  }

  /** Stops one service: SIGTERM, then SIGKILL after its stop timeout. */
  async stop(name: string): Promise<void> {
    const s = this.services.get(name);
    if (!s) return;
    if (s.nextStart) clearTimeout(s.nextStart);
    s.nextStart = null;
    s.nextStartAt = null;
    const proc = s.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) {
      s.setState("stopped");
      return;
    }
    s.setState("stopping");
    proc.kill("SIGTERM");
    const timeout = s.spec.stopTimeoutMs ?? 10_000;
    const killed = await Promise.race([proc.exited.then(() => false), Bun.sleep(timeout).then(() => true)]);
    if (killed) {
      this.opts.log(s.spec.name, "warn", `did not stop within ${Math.round(timeout / 1000)} s of SIGTERM: killed`);
      proc.kill("SIGKILL");
      await proc.exited;
    }
    s.setState("stopped");
  }

  /** Stops the services in the reverse order of their start. */
  async stopAll(): Promise<void> {
    for (const name of [...this.services.keys()].reverse()) await this.stop(name);
  }

  private launch(s: Service): void {
    s.nextStart = null;
    s.nextStartAt = null;
    s.starts++;
    s.startedAt = Date.now();
    s.setState("starting");
    const stdio = s.spec.stdio ?? { stdin: "ignore", stdout: "pipe", stderr: "pipe" };
    let proc: Subprocess;
    try {
      proc = Bun.spawn(s.spec.cmd, { env: { ...process.env, ...s.spec.env }, stdin: stdio.stdin, stdout: stdio.stdout, stderr: stdio.stderr });
    } catch (e) {
      s.lastExit = `could not start: ${(e as Error).message}`;
      this.opts.log(s.spec.name, "error", s.lastExit);
      this.scheduleRestart(s);
      return;
    }
    s.proc = proc;
    if (proc.stdout instanceof ReadableStream) void this.pump(s.spec.name, proc.stdout, "info");
    if (proc.stderr instanceof ReadableStream) void this.pump(s.spec.name, proc.stderr, "info");
    void this.probe(s, proc);
    void proc.exited.then(() => this.exited(s, proc));
  }

  private async probe(s: Service, proc: Subprocess): Promise<void> {
    const ready = s.spec.ready;
    const timeoutMs = this.opts.readyTimeoutMs ?? 60_000;
    const current = () => s.proc === proc && s.state === "starting";
    const outcome = await waitFor(
      async () => {
        if (!current()) return "superseded";
        if (ready && !(await ready().catch(() => false))) return null;
        return current() ? "ready" : "superseded";
      },
      { timeoutMs, intervalMs: 200, what: `${s.spec.name} to be ready` },
    ).catch(() => "timeout" as const);
    if (outcome === "ready") {
      s.setState("running");
      for (const w of s.readyWaiters.splice(0)) w();
    } else if (outcome === "timeout" && current()) {
      this.opts.log(s.spec.name, "warn", `not ready after ${Math.round(timeoutMs / 1000)} s`);
    }
  }

  private exited(s: Service, proc: Subprocess): void {
    if (s.proc !== proc) return;
    const how = proc.signalCode ? `killed by ${proc.signalCode}` : `exited with ${proc.exitCode}`;
    s.lastExit = `${how} at ${new Date().toISOString()}`;
    if (s.state === "stopping" || s.state === "stopped") return;
    const ranMs = Date.now() - s.startedAt;
    if (ranMs >= this.stableMs) s.backoff.reset();
    if (s.spec.restart === false) {
      s.setState("stopped");
      this.opts.log(s.spec.name, "info", how);
      return;
    }
    this.opts.log(s.spec.name, "warn", `${how} after ${(ranMs / 1000).toFixed(1)} s; starting again in ${(s.backoff.delayFor(s.backoff.attempts + 1) / 1000).toFixed(0)} s (start ${s.starts + 1})`);
    this.scheduleRestart(s);
  }

  private scheduleRestart(s: Service): void {
    s.setState("backoff");
    const delay = s.backoff.next();
    s.nextStartAt = new Date(Date.now() + delay);
    s.nextStart = setTimeout(() => this.launch(s), delay);
  }

  private async pump(name: string, stream: ReadableStream<Uint8Array>, level: "info"): Promise<void> {
    const decoder = new TextDecoder();
    let buf = "";
    const reader = stream.getReader();
    try {
      for (;;) {
        const { value: chunk, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trimEnd();
          buf = buf.slice(nl + 1);
          if (line) this.opts.log(name, level, line);
        }
        if (buf.length > 16_384) {
          this.opts.log(name, level, buf);
          buf = "";
        }
      }
    } catch {
      // the process went away
    }
    if (buf.trim()) this.opts.log(name, level, buf.trimEnd());
  }
}
