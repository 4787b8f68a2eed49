// One cgroup v2 per VM, for CPU and memory accounting (no limits), under a subtree of our own:
// <cgroup2 mount>/evebox.slice/vm-<uuid>. cpu.stat is there in every v2 cgroup; memory.current only when the
// memory controller reaches our subtree (we enable it on our own slice when the parent offers it; we never write
// to the host's cgroups). Without a writable cgroup2 mount the runtime falls back to /proc of the QEMU pid.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../../lib/wait.ts";

export const SLICE = "evebox.slice";

/** The cgroup2 mount: /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one. */
export function findCgroup2Root(): string | null {
  for (const dir of ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]) if (existsSync(join(dir, "cgroup.controllers"))) return dir;
  return null;
}

export class VmCgroups {
  /** Why accounting falls back to /proc, when it does. */
  readonly unavailableReason: string | null;
  private readonly slice: string | null;

  constructor(root: string | null = findCgroup2Root()) {
    if (!root) {
      this.slice = null;
      this.unavailableReason = "no cgroup2 filesystem mounted";
      return;
    }
    const slice = join(root, SLICE);
    try {
      mkdirSync(slice, { recursive: true });
      enableControllers(slice);
      this.slice = slice;
      this.unavailableReason = null;
    } catch (err) {
      this.slice = null;
      this.unavailableReason = `cannot create ${slice}: ${(err as Error).message}`;
    }
  }

  get available(): boolean {
    return this.slice !== null;
  }

  /** Creates (or finds) the VM's cgroup; null when cgroups are unavailable. */
  create(appUuid: string): string | null {
    if (!this.slice) return null;
    const dir = this.path(appUuid)!;
    try {
      mkdirSync(dir, { recursive: true });
      return dir;
    } catch {
      return null;
    }
  }

  path(appUuid: string): string | null {
    return this.slice ? join(this.slice, `vm-${appUuid}`) : null;
  }

  /** The cgroup's `cgroup.procs` file: a process that writes its pid there moves itself in. */
  procsFile(appUuid: string): string | null {
    const dir = this.path(appUuid);
    return dir && existsSync(dir) ? join(dir, "cgroup.procs") : null;
  }

  pids(appUuid: string): number[] {
    const file = this.procsFile(appUuid);
    if (!file) return [];
    try {
      return readFileSync(file, "utf8").split("\n").filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  /** Kills every process left in the VM's cgroup (cgroup.kill, Linux ≥ 5.14), else each pid listed. */
  killAll(appUuid: string): void {
    const dir = this.path(appUuid);
    if (!dir || !existsSync(dir)) return;
    try {
      writeFileSync(join(dir, "cgroup.kill"), "1");
      return;
    } catch {}
    for (const pid of this.pids(appUuid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
  }

  /**
   * Removes the VM's cgroup once it is empty; quiet when it is already gone. A dead QEMU that is not our child
   * stays in it as a zombie until its parent (init) reaps it, so this retries for up to `waitMs`.
   */
  async remove(appUuid: string, waitMs = 0): Promise<boolean> {
    const dir = this.path(appUuid);
    if (!dir) return true;
    const removed = () => {
      try {
        rmdirSync(dir);
        return "removed";
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT") return "removed";
        return code === "EBUSY" ? null : "refused"; // busy: a process still in it; anything else will not pass
      }
    };
    return (await waitFor(removed, { timeoutMs: waitMs, intervalMs: 50, what: `cgroup ${dir} to empty` }).catch(() => "refused")) === "removed";
  }

  /** VM cgroups under our slice whose uuid is not in `keep` and that are empty: left by a crash. */
  async sweep(keep: Set<string>): Promise<void> {
    if (!this.slice) return;
    for (const name of readdirSync(this.slice)) {
      const m = name.match(/^vm-(.+)$/);
      if (m && !keep.has(m[1]!)) await this.remove(m[1]!);
    }
  }

  /** usage_usec from cpu.stat, and memory.current when the memory controller is on. */
  read(appUuid: string): { cpuUsageUsec: number; memoryBytes: number | null } | null {
    const dir = this.path(appUuid);
    if (!dir || !existsSync(dir)) return null;
    try {
      const cpu = readFileSync(join(dir, "cpu.stat"), "utf8").match(/^usage_usec (\d+)/m);
      let memoryBytes: number | null = null;
      try {
        memoryBytes = Number(readFileSync(join(dir, "memory.current"), "utf8").trim());
      } catch {}
      return { cpuUsageUsec: Number(cpu?.[1] ?? 0), memoryBytes };
    } catch {
      return null;
    }
  }
}

/** Turns on cpu and memory for our slice's children when the parent offers them to us; best effort. */
function enableControllers(slice: string): void {
  try {
    const offered = readFileSync(join(slice, "cgroup.controllers"), "utf8").split(/\s+/);
    const want = ["cpu", "memory"].filter((c) => offered.includes(c));
    if (want.length) writeFileSync(join(slice, "cgroup.subtree_control"), want.map((c) => `+${c}`).join(" "));
  } catch {}
}
