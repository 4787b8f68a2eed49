// The counters of the device's ports, as EVE's `/eve/v1/networks/metrics.json` lists them (msrv's
// networkStatusMetrics: IfName, Up and the Linux counters of each used port). Read from /proc/net/dev (one file)
// and each port's operstate; a port's name only reaches a path once it is found among /sys/class/net's entries
// (the kernel's own names), never as given.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** One port as EVE answers it (its keys). The ACL drop counters are evebox's firewall's, not counted per port: 0. */
export interface PortMetric {
  IfName: string;
  Up: boolean;
  TxBytes: number;
  RxBytes: number;
  TxDrops: number;
  RxDrops: number;
  TxPkts: number;
  RxPkts: number;
  TxErrors: number;
  RxErrors: number;
  TxACLDrops: number;
  RxACLDrops: number;
  TxACLRateLimitDrops: number;
  RxACLRateLimitDrops: number;
}

/** The counters of `/proc/net/dev` by interface (receive: bytes packets errs drop …; transmit: bytes packets errs drop …). */
export function parseNetDev(text: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const line of text.split("\n").slice(2)) {
    const at = line.indexOf(":");
    if (at < 0) continue;
    const name = line.slice(0, at).trim();
    const v = line.slice(at + 1).trim().split(/\s+/).map(Number);
    if (name && v.length >= 16 && v.every(Number.isFinite)) out.set(name, v);
  }
  return out;
}

/** The ports named (those that exist), in the order given, each once. */
export function portMetrics(names: readonly string[], paths = { procNetDev: "/proc/net/dev", sysClassNet: "/sys/class/net" }): PortMetric[] {
  let counters: Map<string, number[]>;
  let present: Set<string>;
  try {
    counters = parseNetDev(readFileSync(paths.procNetDev, "utf8"));
    present = new Set(readdirSync(paths.sysClassNet));
  } catch {
    return [];
  }
  const out: PortMetric[] = [];
  const seen = new Set<string>();
  for (const wanted of names) {
    if (seen.has(wanted)) continue;
    seen.add(wanted);
    const v = counters.get(wanted);
    // The kernel's entry, found by equality: the path below is made of its name, not of the one asked for.
    const name = [...present].find((n) => n === wanted);
    if (!v || !name) continue;
    let up = false;
    try {
      up = readFileSync(join(paths.sysClassNet, name, "operstate"), "utf8").trim() === "up";
    } catch {}
    out.push({
      IfName: name,
      Up: up,
      TxBytes: v[8]!,
      RxBytes: v[0]!,
      TxDrops: v[11]!,
      RxDrops: v[3]!,
      TxPkts: v[9]!,
      RxPkts: v[1]!,
      TxErrors: v[10]!,
      RxErrors: v[2]!,
      TxACLDrops: 0,
      RxACLDrops: 0,
      TxACLRateLimitDrops: 0,
      RxACLRateLimitDrops: 0,
    });
  }
  return out;
}
