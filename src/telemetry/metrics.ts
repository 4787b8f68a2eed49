// Device and app metrics, read from the kernel (/proc, statfs) and from whoever runs the apps. Counters are
// cumulative since boot, as the EVE API asks: a lost metrics message costs precision in time, not data.
import { readFileSync, statfsSync } from "node:fs";
import { cpus, totalmem } from "node:os";

export interface CpuSample {
  /** Busy (non-idle) CPU time since boot, all CPUs, in nanoseconds. */
  busyNs: number;
  /** All CPU time since boot, idle included, in nanoseconds. */
  totalNs: number;
}

export interface MemorySample {
  totalBytes: number;
  availableBytes: number;
}

export interface DiskSample {
  disk: string;
  mountPath?: string;
  readBytes: number;
  writeBytes: number;
  readCount: number;
  writeCount: number;
  totalBytes?: number;
  usedBytes?: number;
  freeBytes?: number;
}

export interface NetSample {
  name: string;
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
  rxErrors: number;
  txErrors: number;
  rxDrops: number;
  txDrops: number;
}

/** What the app runtime reports of one app instance (all optional: a runtime reports what it knows). */
export interface AppSample {
  uuid: string;
  name: string;
  version?: string;
  cpuNs?: number;
  startedAt?: Date;
  memoryUsedBytes?: number;
  memoryLimitBytes?: number;
  network?: NetSample[];
  /** Cumulative bytes read from and written to storage (the metrics history's disk I/O). */
  diskReadBytes?: number;
  diskWriteBytes?: number;
  /** Cumulative bytes the app received and sent over all its interfaces. */
  netRxBytes?: number;
  netTxBytes?: number;
  /** Its use of the patch envelopes it is given (metadata/: description calls and downloads since start). */
  patchEnvelopes?: { uuid: string; version: string; apiCalls: number; downloads: number }[];
}

export interface DeviceSample {
  at: Date;
  bootTime: Date;
  cpu: CpuSample;
  memory: MemorySample;
  disks: DiskSample[];
  network: NetSample[];
}

export interface TelemetrySources {
  /** Paths whose filesystems are reported (the data directory). */
  mounts: string[];
  /** /proc, replaceable in tests. */
  proc?: string;
}

const USER_HZ = 100; // the kernel's clock tick as /proc/stat reports it (CLK_TCK is 100 on every Linux ABI evebox targets)

export function sampleDevice(src: TelemetrySources, at = new Date()): DeviceSample {
  const proc = src.proc ?? "/proc";
  const stat = read(`${proc}/stat`);
  const cpuLine = stat.split("\n").find((l) => l.startsWith("cpu "));
  let cpu: CpuSample = { busyNs: 0, totalNs: 0 };
  if (cpuLine) {
    const v = cpuLine.trim().split(/\s+/).slice(1).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + (b || 0), 0); // user … steal; guest is inside user
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    cpu = { busyNs: ((total - idle) / USER_HZ) * 1e9, totalNs: (total / USER_HZ) * 1e9 };
  }
  const btime = Number(stat.match(/^btime\s+(\d+)/m)?.[1] ?? 0);
  const bootTime = btime ? new Date(btime * 1000) : new Date(Date.now() - Number(read(`${proc}/uptime`).split(" ")[0] || 0) * 1000);

  const meminfo = read(`${proc}/meminfo`);
  const kb = (k: string) => Number(meminfo.match(new RegExp(`^${k}:\\s+(\\d+)`, "m"))?.[1] ?? 0) * 1024;
  const memory = { totalBytes: kb("MemTotal") || totalmem(), availableBytes: kb("MemAvailable") || kb("MemFree") };

  const disks: DiskSample[] = [];
  for (const line of read(`${proc}/diskstats`).split("\n")) {
    const f = line.trim().split(/\s+/);
    const name = f[2];
    if (!name || !/^(sd[a-z]+|vd[a-z]+|xvd[a-z]+|hd[a-z]+|nvme\d+n\d+|mmcblk\d+)$/.test(name)) continue;
    disks.push({ disk: name, readCount: Number(f[3]), readBytes: Number(f[5]) * 512, writeCount: Number(f[7]), writeBytes: Number(f[9]) * 512 });
  }
  for (const mount of src.mounts) {
    try {
      const s = statfsSync(mount);
      const total = s.blocks * s.bsize;
      const free = s.bavail * s.bsize;
      disks.push({ disk: mount, mountPath: mount, readBytes: 0, writeBytes: 0, readCount: 0, writeCount: 0, totalBytes: total, freeBytes: free, usedBytes: total - s.bfree * s.bsize });
    } catch {
      // a mount that vanished is simply not reported
    }
  }

  const network: NetSample[] = [];
  for (const line of read(`${proc}/net/dev`).split("\n").slice(2)) {
    const m = line.match(/^\s*([^:]+):\s*(.*)$/);
    if (!m) continue;
    const v = m[2]!.trim().split(/\s+/).map(Number);
    network.push({
      name: m[1]!.trim(),
      rxBytes: v[0] ?? 0,
      rxPackets: v[1] ?? 0,
      rxErrors: v[2] ?? 0,
      rxDrops: v[3] ?? 0,
      txBytes: v[8] ?? 0,
      txPackets: v[9] ?? 0,
      txErrors: v[10] ?? 0,
      txDrops: v[11] ?? 0,
    });
  }
  return { at, bootTime, cpu, memory, disks, network };
}

export function cpuCount(): number {
  return cpus().length || 1;
}

function read(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
