// Reaps orphans: as PID 1 every process whose parent dies becomes evebox's child (containerd shims, daemons that
// fork into the background, the children of a killed shell), and each must be waited for or it stays a zombie.
//
// The catch is that Bun waits for the processes it spawns itself (Bun.spawn, spawnSync, node:child_process) with
// waitpid(pid) once their pidfd turns readable. A plain waitpid(-1) loop would steal those exit statuses, and
// `await proc.exited` would never learn how its process ended. So the reaper never calls waitpid(-1): it lists
// this process's zombie children (/proc/self/task/*/children, state Z) and waits only for those no pidfd of this
// process refers to, i.e. the ones Bun does not own, and only once a zombie has stayed one for a short grace
// period (closing the instant between a spawn in another thread and its pidfd_open). If pidfds are not
// available (old kernel), the grace period alone decides: Bun reaps its own within milliseconds.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { SyscallError, waitpidNoHang, type WaitStatus } from "./libc.ts";

export interface ReapedOrphan extends WaitStatus {
  comm: string;
  at: Date;
}

export interface ReaperOptions {
  /** Safety-net scan interval; SIGCHLD triggers a scan as well. */
  intervalMs?: number;
  /** How long a zombie must stay one before it counts as an orphan (default 100 ms with pidfds, 3 s without). */
  graceMs?: number;
  log?: (level: "info" | "warn", message: string) => void;
  /** /proc, for tests. */
  proc?: string;
}

export class OrphanReaper {
  reaped = 0;
  readonly recent: ReapedOrphan[] = [];
  mode: "pidfd" | "grace" = "pidfd";
  private timer: ReturnType<typeof setInterval> | null = null;
  private pending: ReturnType<typeof setTimeout> | null = null;
  private readonly firstSeen = new Map<number, number>();
  private readonly proc: string;
  private readonly onSigchld = () => this.schedule();

  constructor(private readonly opts: ReaperOptions = {}) {
    this.proc = opts.proc ?? "/proc";
  }

  /** Checks how Bun tracks its children, then scans on SIGCHLD and every `intervalMs`. */
  async start(): Promise<void> {
    this.mode = await this.detectMode();
    if (this.mode === "grace") this.opts.log?.("warn", "no pidfd for Bun's own children: orphans are reaped after a grace period");
    process.on("SIGCHLD", this.onSigchld);
    this.timer = setInterval(() => this.scan(), this.opts.intervalMs ?? 1000);
    this.scan();
  }

  stop(): void {
    process.off("SIGCHLD", this.onSigchld);
    if (this.timer) clearInterval(this.timer);
    if (this.pending) clearTimeout(this.pending);
    this.timer = this.pending = null;
  }

  private schedule(delayMs = 10): void {
    // A burst of exits makes one scan.
    this.pending ??= setTimeout(() => {
      this.pending = null;
      this.scan();
    }, delayMs);
  }

  private scheduleLater(): void {
    this.schedule(this.mode === "pidfd" ? 120 : 500);
  }

  /** Reaps the zombie children nobody else will wait for; returns how many. */
  scan(): number {
    const zombies = this.zombieChildren();
    for (const pid of this.firstSeen.keys()) if (!zombies.some((z) => z.pid === pid)) this.firstSeen.delete(pid);
    if (!zombies.length) return 0;
    const owned = this.mode === "pidfd" ? this.pidfdTargets() : new Set<number>();
    const now = Date.now();
    let n = 0;
    for (const z of zombies) {
      if (owned.has(z.pid)) continue;
      const seen = this.firstSeen.get(z.pid) ?? now;
      this.firstSeen.set(z.pid, seen);
      if (now - seen < (this.opts.graceMs ?? (this.mode === "pidfd" ? 100 : 3000))) {
        this.scheduleLater();
        continue;
      }
      try {
        const st = waitpidNoHang(z.pid);
        if (!st) continue;
        this.firstSeen.delete(z.pid);
        n++;
        this.reaped++;
        this.recent.push({ ...st, comm: z.comm, at: new Date() });
        if (this.recent.length > 20) this.recent.shift();
      } catch (e) {
        // ECHILD: Bun (or another waiter) got there first; anything else is worth a line.
        if (!(e instanceof SyscallError && e.code === "ECHILD")) this.opts.log?.("warn", `reaper: ${(e as Error).message}`);
      }
    }
    return n;
  }

  /** This process's children that are zombies, with their command names. */
  zombieChildren(): { pid: number; comm: string }[] {
    const out: { pid: number; comm: string }[] = [];
    for (const pid of this.children()) {
      let stat: string;
      try {
        stat = readFileSync(`${this.proc}/${pid}/stat`, "utf8");
      } catch {
        continue; // gone already
      }
      // "pid (comm) S ppid …": comm may hold spaces and parentheses, the state follows the last ')'.
      const close = stat.lastIndexOf(")");
      if (stat[close + 2] === "Z") out.push({ pid, comm: stat.slice(stat.indexOf("(") + 1, close) });
    }
    return out;
  }

  private children(): number[] {
    const pids = new Set<number>();
    let tasks: string[];
    try {
      tasks = readdirSync(`${this.proc}/self/task`);
    } catch {
      return [];
    }
    for (const t of tasks) {
      try {
        for (const p of readFileSync(`${this.proc}/self/task/${t}/children`, "utf8").split(" ")) if (p.trim()) pids.add(Number(p));
      } catch {
        // the thread ended meanwhile
      }
    }
    return [...pids];
  }

  /** The pids this process holds a pidfd for: the children Bun itself spawned and will wait for. */
  pidfdTargets(): Set<number> {
    const pids = new Set<number>();
    let fds: string[];
    try {
      fds = readdirSync(`${this.proc}/self/fd`);
    } catch {
      return pids;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`${this.proc}/self/fd/${fd}`) !== "anon_inode:[pidfd]") continue;
        const m = readFileSync(`${this.proc}/self/fdinfo/${fd}`, "utf8").match(/^Pid:\s*(-?\d+)/m);
        if (m) pids.add(Number(m[1]));
      } catch {
        // closed meanwhile
      }
    }
    return pids;
  }

  private async detectMode(): Promise<"pidfd" | "grace"> {
    try {
      const p = Bun.spawn(["sleep", "0.2"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
      const held = this.pidfdTargets().has(p.pid);
      await p.exited;
      return held ? "pidfd" : "grace";
    } catch {
      return "grace";
    }
  }
}
