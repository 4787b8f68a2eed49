// One cgroup v2 per VM, for CPU and memory accounting, under a subtree of our own:
// <cgroup2 mount>/evebox.slice/vm-<uuid>. cpu.stat is there in every v2 cgroup; memory.current only when the
// memory controller reaches our subtree (we enable it on our own slice when the parent offers it; we never write
// to the host's cgroups). Without a writable cgroup2 mount the runtime falls back to /proc of the QEMU pid.
// A memory limit (EVE's vmm_maxmem) is the VM cgroup's memory.max when the v2 memory controller reaches it; on a
// hybrid host (memory on cgroup v1) it is memory.limit_in_bytes of a v1 memory cgroup of the VM's own, under the
// memory cgroup evebox runs in (so every limit above evebox still holds for QEMU).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../../lib/wait.ts";

export const SLICE = "evebox.slice";

/** The cgroup2 mount: /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one. */
export function findCgroup2Root(): string | null {
  for (const dir of ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]) if (existsSync(join(dir, "cgroup.controllers"))) return dir;
  return null;
}

/** The cgroup v1 memory hierarchy's directory of this process's own memory cgroup, or null (no v1 memory mount). */
export function ownV1MemoryCgroup(mounts = "/proc/self/mounts", self = "/proc/self/cgroup"): string | null {
  try {
    const mount = readFileSync(mounts, "utf8")
      .split("\n")
      .map((l) => l.split(" "))
      .find((f) => f[2] === "cgroup" && (f[3] ?? "").split(",").includes("memory"))?.[1];
    const own = readFileSync(self, "utf8").match(/^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/m)?.[1];
    return mount && own !== undefined ? join(mount, own) : null;
  } catch {
    return null;
  }
}

export interface VmCgroupsOptions {
  /** The parent of our v1 memory slice (default: evebox's own v1 memory cgroup); null: no v1 fallback. */
  v1MemoryParent?: string | null;
}

export class VmCgroups {
  /** Why accounting falls back to /proc, when it does. */
  readonly unavailableReason: string | null;
  private readonly slice: string | null;
  /** `<v1 memory cgroup of evebox>/evebox.slice`, for memory limits on a host whose memory controller is on v1. */
  private readonly v1Slice: string | null;

  constructor(root: string | null = findCgroup2Root(), opts: VmCgroupsOptions = {}) {
    const v1 = opts.v1MemoryParent === undefined ? ownV1MemoryCgroup() : opts.v1MemoryParent;
    this.v1Slice = v1 && existsSync(join(v1, "memory.limit_in_bytes")) ? join(v1, SLICE) : null;
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

  /** Whether the v2 memory controller reaches the VM cgroups (memory.max, memory.current). */
  private v2Memory(): boolean {
    if (!this.slice) return false;
    try {
      return readFileSync(join(this.slice, "cgroup.subtree_control"), "utf8").split(/\s+/).includes("memory");
    } catch {
      return false;
    }
  }

  /**
   * Limits the VM cgroup's memory to `bytes` (created when missing): v2 `memory.max`, else a v1 memory cgroup of
   * the VM's own (`memory.limit_in_bytes`). Returns the file written and the `cgroup.procs` QEMU must join, or
   * why no limit can be set on this host. Called again on a running VM, it moves the limit.
   */
  setMemoryLimit(appUuid: string, bytes: number): { file: string; procs: string } | { unavailable: string } {
    const write = (dir: string, file: string) => {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, file), String(bytes));
      return { file: join(dir, file), procs: join(dir, "cgroup.procs") };
    };
    try {
      if (this.v2Memory()) return write(this.path(appUuid)!, "memory.max");
      if (this.v1Slice) {
        mkdirSync(this.v1Slice, { recursive: true });
        return write(join(this.v1Slice, `vm-${appUuid}`), "memory.limit_in_bytes");
      }
    } catch (err) {
      return { unavailable: `cannot set the VM cgroup's memory limit: ${(err as Error).message}` };
    }
    return {
      unavailable: this.slice
        ? "the cgroup v2 memory controller does not reach evebox's cgroups and there is no cgroup v1 memory hierarchy"
        : `no writable cgroup: ${this.unavailableReason}`,
    };
  }

  /** The VM's v1 memory cgroup, when it has one (a memory limit on a hybrid host). */
  private v1Path(appUuid: string): string | null {
    const dir = this.v1Slice ? join(this.v1Slice, `vm-${appUuid}`) : null;
    return dir && existsSync(dir) ? dir : null;
  }

  /** The memory limit in force on the VM (bytes) and the file that holds it, or null when it has none. */
  memoryLimit(appUuid: string): { bytes: number; file: string } | null {
    const v1 = this.v1Path(appUuid);
    const dir = this.path(appUuid);
    const file = v1 ? join(v1, "memory.limit_in_bytes") : dir ? join(dir, "memory.max") : null;
    try {
      const text = file ? readFileSync(file, "utf8").trim() : "max";
      const bytes = Number(text);
      // v1 says "no limit" with a huge number (PAGE_COUNTER_MAX pages).
      return text === "max" || !Number.isFinite(bytes) || bytes >= 2 ** 62 ? null : { bytes, file: file! };
    } catch {
      return null;
    }
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
    const v1 = this.v1Path(appUuid);
    if (v1)
      for (const pid of readPids(join(v1, "cgroup.procs")))
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
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
    const v1 = this.v1Path(appUuid);
    const v1Gone = v1 ? await removeDir(v1, waitMs) : true;
    const dir = this.path(appUuid);
    return (dir ? await removeDir(dir, waitMs) : true) && v1Gone;
  }

  /** VM cgroups under our slice whose uuid is not in `keep` and that are empty: left by a crash. */
  async sweep(keep: Set<string>): Promise<void> {
    for (const slice of [this.slice, this.v1Slice]) {
      if (!slice || !existsSync(slice)) continue;
      for (const name of readdirSync(slice)) {
        const m = name.match(/^vm-(.+)$/);
        if (m && !keep.has(m[1]!)) await removeDir(join(slice, name), 0);
      }
    }
  }

  /** usage_usec from cpu.stat, and memory.current when the memory controller is on (v1: memory.usage_in_bytes). */
  read(appUuid: string): { cpuUsageUsec: number; memoryBytes: number | null } | null {
    const dir = this.path(appUuid);
    if (!dir || !existsSync(dir)) return null;
    try {
      const cpu = readFileSync(join(dir, "cpu.stat"), "utf8").match(/^usage_usec (\d+)/m);
      let memoryBytes: number | null = null;
      const v1 = this.v1Path(appUuid);
      try {
        memoryBytes = Number(readFileSync(v1 ? join(v1, "memory.usage_in_bytes") : join(dir, "memory.current"), "utf8").trim());
      } catch {}
      return { cpuUsageUsec: Number(cpu?.[1] ?? 0), memoryBytes };
    } catch {
      return null;
    }
  }
}

function readPids(file: string): number[] {
  try {
    return readFileSync(file, "utf8").split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Removes a cgroup once it is empty; quiet when it is already gone. A dead QEMU that is not our child stays in it
 * as a zombie until its parent (init) reaps it, so this retries for up to `waitMs`.
 */
async function removeDir(dir: string, waitMs: number): Promise<boolean> {
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

/** Turns on cpu and memory for our slice's children when the parent offers them to us; best effort. */
function enableControllers(slice: string): void {
  try {
    const offered = readFileSync(join(slice, "cgroup.controllers"), "utf8").split(/\s+/);
    const want = ["cpu", "memory"].filter((c) => offered.includes(c));
    if (want.length) writeFileSync(join(slice, "cgroup.subtree_control"), want.map((c) => `+${c}`).join(" "));
  } catch {}
}
