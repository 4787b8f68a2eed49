// The kernel file systems and scratch space PID 1 mounts at boot, and the orderly unmount at shutdown.
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { MNT_DETACH, MS, mount, SyscallError, umount } from "./libc.ts";

export interface MountEntry {
  source: string;
  target: string;
  fstype: string;
  options: string;
}

/** The mount table (/proc/self/mounts), innermost last. */
export function mountTable(path = "/proc/self/mounts"): MountEntry[] {
  try {
    return readFileSync(path, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => {
        const [source, target, fstype, options] = l.split(" ").map((f) => f.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
        return { source: source!, target: target!, fstype: fstype!, options: options! };
      });
  } catch {
    return [];
  }
}

export function isMounted(target: string): boolean {
  return mountTable().some((m) => m.target === target);
}

interface EarlyMount {
  target: string;
  fstype: string;
  source: string;
  flags: number;
  data?: string;
  mode?: number;
}

const NOSUID_NODEV_NOEXEC = MS.NOSUID | MS.NODEV | MS.NOEXEC;

/** What a device needs before anything else runs. Read-only root: everything written goes to a tmpfs or /persist. */
export const EARLY_MOUNTS: EarlyMount[] = [
  { target: "/proc", fstype: "proc", source: "proc", flags: NOSUID_NODEV_NOEXEC },
  { target: "/sys", fstype: "sysfs", source: "sysfs", flags: NOSUID_NODEV_NOEXEC },
  { target: "/dev", fstype: "devtmpfs", source: "devtmpfs", flags: MS.NOSUID, data: "mode=0755" },
  { target: "/dev/pts", fstype: "devpts", source: "devpts", flags: MS.NOSUID | MS.NOEXEC, data: "gid=5,mode=0620,ptmxmode=0666", mode: 0o755 },
  { target: "/dev/shm", fstype: "tmpfs", source: "shm", flags: MS.NOSUID | MS.NODEV, data: "mode=1777", mode: 0o1777 },
  { target: "/dev/mqueue", fstype: "mqueue", source: "mqueue", flags: NOSUID_NODEV_NOEXEC, mode: 0o755 },
  { target: "/run", fstype: "tmpfs", source: "run", flags: MS.NOSUID | MS.NODEV, data: "mode=0755,size=20%" },
  { target: "/tmp", fstype: "tmpfs", source: "tmp", flags: MS.NOSUID | MS.NODEV, data: "mode=1777,size=25%" },
  { target: "/var/log", fstype: "tmpfs", source: "varlog", flags: NOSUID_NODEV_NOEXEC, data: "mode=0755,size=5%" },
  { target: "/var/tmp", fstype: "tmpfs", source: "vartmp", flags: MS.NOSUID | MS.NODEV, data: "mode=1777,size=5%" },
  { target: "/var/cache", fstype: "tmpfs", source: "varcache", flags: NOSUID_NODEV_NOEXEC, data: "mode=0755,size=5%" },
  { target: "/sys/fs/cgroup", fstype: "cgroup2", source: "cgroup2", flags: NOSUID_NODEV_NOEXEC, data: "nsdelegate" },
  { target: "/sys/kernel/security", fstype: "securityfs", source: "securityfs", flags: NOSUID_NODEV_NOEXEC },
  { target: "/sys/kernel/debug", fstype: "debugfs", source: "debugfs", flags: NOSUID_NODEV_NOEXEC },
  { target: "/sys/fs/bpf", fstype: "bpf", source: "bpf", flags: NOSUID_NODEV_NOEXEC, data: "mode=700" },
  { target: "/sys/firmware/efi/efivars", fstype: "efivarfs", source: "efivarfs", flags: NOSUID_NODEV_NOEXEC },
  { target: "/proc/sys/fs/binfmt_misc", fstype: "binfmt_misc", source: "binfmt_misc", flags: NOSUID_NODEV_NOEXEC },
];

/** Which mounts are required: without these the device cannot work; the others are best effort. */
const REQUIRED = new Set(["/proc", "/sys", "/dev", "/dev/pts", "/run", "/tmp", "/sys/fs/cgroup"]);

export interface MountReport {
  mounted: string[];
  skipped: string[];
  failed: { target: string; error: string }[];
}

/** Mounts what is not mounted yet (the initramfs moves /proc, /sys and /dev over already). */
export function mountEarly(): MountReport {
  const report: MountReport = { mounted: [], skipped: [], failed: [] };
  for (const m of EARLY_MOUNTS) {
    // /proc first: the table of what is mounted lives there.
    if (m.target !== "/proc" && isMounted(m.target)) {
      report.skipped.push(m.target);
      continue;
    }
    if (m.target === "/proc" && existsSync("/proc/self/mounts")) {
      report.skipped.push(m.target);
      continue;
    }
    if (m.target === "/sys/firmware/efi/efivars" && !existsSync("/sys/firmware/efi")) continue;
    try {
      if (!existsSync(m.target)) mkdirSync(m.target, { recursive: true, mode: m.mode ?? 0o755 });
      mount(m.source, m.target, m.fstype, m.flags, m.data ?? null);
      report.mounted.push(m.target);
    } catch (e) {
      if (REQUIRED.has(m.target)) report.failed.push({ target: m.target, error: (e as Error).message });
      else report.skipped.push(`${m.target} (${(e as SyscallError).code ?? (e as Error).message})`);
    }
  }
  // The cgroup controllers the container engine and the VMs place their processes under.
  try {
    const controllers = readFileSync("/sys/fs/cgroup/cgroup.controllers", "utf8").trim().split(/\s+/).filter(Boolean);
    if (controllers.length) writeFileSync("/sys/fs/cgroup/cgroup.subtree_control", controllers.map((c) => `+${c}`).join(" "));
  } catch {
    // a hybrid or v1 host: the engine sets up its own
  }
  return report;
}

/** Which processes hold files open under `dir` (for the message when it cannot be unmounted). */
export function holders(dir: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (target === dir || target.startsWith(`${dir}/`)) {
          out.push(`${pid} (${readFileSync(`/proc/${pid}/comm`, "utf8").trim()}) ${target}`);
          if (out.length >= 5) return out;
        }
      } catch {
        // gone
      }
    }
  }
  return out;
}

/** Unmounts everything below `/` that is not a kernel file system, innermost first; what stays busy becomes read-only. */
export function unmountAll(log: (line: string) => void): void {
  const keep = new Set(["proc", "sysfs", "devtmpfs", "devpts", "cgroup2", "securityfs", "debugfs", "bpf", "efivarfs", "mqueue", "binfmt_misc", "tracefs", "pstore", "configfs", "fusectl", "rootfs"]);
  const table = mountTable().filter((m) => m.target !== "/" && !keep.has(m.fstype));
  for (const m of table.reverse()) {
    try {
      umount(m.target);
    } catch (e) {
      const held = holders(m.target);
      const by = held.length ? `; open: ${held.join(", ")}` : "";
      try {
        mount(m.source, m.target, null, MS.REMOUNT | MS.RDONLY);
        log(`${m.target} is busy (${(e as SyscallError).code}${by}): remounted read-only`);
      } catch {
        try {
          umount(m.target, MNT_DETACH);
          log(`${m.target} is busy (${(e as SyscallError).code}${by}): detached`);
        } catch (e2) {
          log(`cannot unmount ${m.target}: ${(e2 as Error).message}`);
        }
      }
    }
  }
}
