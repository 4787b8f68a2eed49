// Running the kernel's networking tools (ip, nft, nsenter, conntrack) with errors that say what failed.
// Every network change of evebox goes through here, so tests can see exactly what is run.
import { readFileSync, writeFileSync } from "node:fs";
import { CommandError, runChecked } from "../lib/run.ts";

export { CommandError };

export interface RunOptions {
  stdin?: string;
  /** Exit codes other than 0 that are not failures. */
  okCodes?: number[];
  timeoutMs?: number;
}

/**
 * Runs a networking tool (argv, no shell despite the name) in the C locale, so its output parses the same on
 * every device; returns its stdout, or throws lib/'s CommandError saying what failed.
 */
export async function sh(argv: string[], o: RunOptions = {}): Promise<string> {
  return (await runChecked(argv, { ...o, env: { LC_ALL: "C" } })).stdout;
}

/** `ip -j …` parsed; an empty answer is an empty list. */
export async function ipJson<T = any>(args: string[]): Promise<T[]> {
  const out = await sh(["ip", "-j", ...args]);
  return out.trim() ? (JSON.parse(out) as T[]) : [];
}

/**
 * Several `ip -j -d …` queries in one process (`ip -batch`): each answer is one line of JSON, in order. The
 * network is observed on every reconcile pass, and a process start costs ~10 ms on a busy device.
 */
export async function ipJsonBatch(queries: string[][]): Promise<any[][]> {
  const out = await sh(["ip", "-j", "-d", "-batch", "-"], { stdin: queries.map((q) => q.join(" ")).join("\n") + "\n" });
  const lines = out.split("\n").filter((l) => l.trim());
  if (lines.length !== queries.length) throw new Error(`ip -batch answered ${lines.length} of ${queries.length} queries`);
  return lines.map((l) => JSON.parse(l) as any[]);
}

export async function ip(...args: string[]): Promise<void> {
  await sh(["ip", ...args]);
}

/** Runs `ip …` inside the network namespace of process `pid` (a container's). */
export async function ipIn(pid: number, ...args: string[]): Promise<void> {
  await sh(["nsenter", "-t", String(pid), "-n", "ip", ...args]);
}

/**
 * A sysctl key as a path under /proc/sys (`net/ipv4/conf/eth0/forwarding`): its components are names (an
 * interface name among them, which may come from a config), never empty, "." or "..", so the path stays in
 * /proc/sys whatever a name holds.
 */
export function sysctlPath(key: string): string | null {
  const parts = key.split("/");
  if (parts.length < 2 || parts.some((p) => !/^[A-Za-z0-9_.-]{1,64}$/.test(p) || p === "." || p === "..")) return null;
  return `/proc/sys/${key}`;
}

/** The value of a sysctl, or null when it does not exist (or the key is not one). */
export function readSysctl(key: string): string | null {
  const path = sysctlPath(key);
  if (!path) return null;
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return null;
  }
}

export function writeSysctl(key: string, value: string): void {
  const path = sysctlPath(key);
  if (!path) throw new Error(`not a sysctl key: ${JSON.stringify(key)}`);
  writeFileSync(path, value);
}

export function hashHex(s: string, len = 12): string {
  return new Bun.CryptoHasher("sha256").update(s).digest("hex").slice(0, len);
}

/** A fast 32-bit hash (FNV-1a), for identifiers that must be stable, not secret. */
export function fnv32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
