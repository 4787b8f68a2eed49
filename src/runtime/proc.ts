// What the kernel says of a workload's process, for the metrics history: its storage I/O and the network
// counters of its namespace. Both runtimes read them (a container's init, a VM's QEMU); 0 or [] when unreadable.
import { readFileSync } from "node:fs";

/**
 * The bytes a process (its threads, and its children it has reaped) read from and wrote to storage: read_bytes and
 * write_bytes of /proc/<pid>/io.
 */
export function processIo(pid: number): { readBytes: number; writeBytes: number } {
  try {
    const io = readFileSync(`/proc/${pid}/io`, "utf8");
    return { readBytes: Number(io.match(/^read_bytes:\s+(\d+)/m)?.[1] ?? 0), writeBytes: Number(io.match(/^write_bytes:\s+(\d+)/m)?.[1] ?? 0) };
  } catch {
    return { readBytes: 0, writeBytes: 0 };
  }
}

/**
 * The network counters of the namespace a process runs in, from /proc/<pid>/net/dev (loopback left out): a
 * container's interfaces, evebox's own attachments included (the engine's stats know only its own networks).
 */
export function netnsCounters(pid: number): { name: string; rxBytes: number; txBytes: number }[] {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/net/dev`, "utf8");
  } catch {
    return [];
  }
  const out: { name: string; rxBytes: number; txBytes: number }[] = [];
  for (const line of text.split("\n").slice(2)) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (name === "lo") continue;
    const v = line.slice(colon + 1).trim().split(/\s+/);
    out.push({ name, rxBytes: Number(v[0]) || 0, txBytes: Number(v[8]) || 0 });
  }
  return out;
}
