// Network namespaces for the network tests: everything a test builds (links, addresses, servers, evebox
// itself) lives inside namespaces it creates, named `ebt<run>-…`, and is removed with them. Nothing of the
// host's own networking is touched.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { type RunOptions, sh } from "./run.ts";

export const RUN = Math.random().toString(16).slice(2, 6);

export class Netns {
  private procs: Subprocess[] = [];
  constructor(readonly name: string) {}

  static async create(role: string): Promise<Netns> {
    const ns = new Netns(`ebt${RUN}-${role}`);
    await sh(["ip", "netns", "add", ns.name]);
    await ns.ip("link", "set", "lo", "up");
    return ns;
  }

  exec(argv: string[], opts?: RunOptions) {
    return sh(["ip", "netns", "exec", this.name, ...argv], opts);
  }

  async ip(...args: string[]): Promise<string> {
    return (await this.exec(["ip", ...args])).out;
  }

  /** A long-running process in this namespace, killed by destroy(). */
  spawn(argv: string[], opts: { env?: Record<string, string | undefined>; stdout?: "pipe" | "ignore"; stdin?: "pipe" | "ignore" } = {}): Subprocess<"ignore", "pipe", "pipe"> {
    // stdin "pipe" (never written) keeps a reader such as `nc -l` from seeing EOF.
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...process.env, ...opts.env })) if (v !== undefined) env[k] = v;
    const p = Bun.spawn(["ip", "netns", "exec", this.name, ...argv], { stdin: opts.stdin ?? "ignore", stdout: opts.stdout ?? "pipe", stderr: "pipe", env }) as unknown as Subprocess<"ignore", "pipe", "pipe">;
    this.procs.push(p);
    return p;
  }

  async destroy(): Promise<void> {
    for (const p of this.procs) if (p.exitCode === null) p.kill("SIGKILL");
    await Promise.all(this.procs.map((p) => p.exited));
    // Daemons started inside (dnsmasq) die with their namespace's last user; kill what still runs in it.
    const pids = (await sh(["ip", "netns", "pids", this.name], { ok: [1] }).catch(() => ({ out: "" }))).out.split(/\s+/).filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {}
    }
    await sh(["ip", "netns", "del", this.name], { ok: [1] });
  }
}

/** A veth pair between two namespaces (names are local to each namespace). */
export async function vethBetween(a: Netns, aName: string, b: Netns, bName: string): Promise<void> {
  const tmp = `ebt${RUN}${Math.random().toString(16).slice(2, 5)}`;
  await a.ip("link", "add", aName, "type", "veth", "peer", "name", tmp);
  await a.ip("link", "set", tmp, "netns", b.name);
  await b.ip("link", "set", tmp, "name", bName);
  await a.ip("link", "set", aName, "up");
  await b.ip("link", "set", bName, "up");
}

/**
 * The Local network instance those device tests put their apps on: 198.51.100.0/24 with DHCP, NATed out of
 * `uplink0` (the `dev` side of `uplinkPair`), the `up` namespace's 203.0.113.1 as DNS. `more` adds or replaces fields.
 */
export function uplinkLocalNi(uuid: string, more: Record<string, unknown> = {}) {
  return {
    uuidandversion: { uuid, version: "1" },
    displayname: "lan",
    instType: "ZnetInstLocal",
    activate: true,
    port: { name: "uplink0" },
    ip: { subnet: "198.51.100.0/24", gateway: "198.51.100.1", dhcpRange: { start: "198.51.100.10", end: "198.51.100.60" }, dns: ["203.0.113.1"] },
    ...more,
  };
}

/**
 * The usual two namespaces of a device test: `up` with bridge lan0 203.0.113.1/24, and `dev` whose uplink0
 * 203.0.113.2/24 is a veth into that bridge, with its default route through 203.0.113.1.
 */
export async function uplinkPair(upRole: string, devRole: string): Promise<{ up: Netns; dev: Netns }> {
  const up = await Netns.create(upRole);
  const dev = await Netns.create(devRole);
  await up.ip("link", "add", "lan0", "type", "bridge");
  await up.ip("addr", "add", "203.0.113.1/24", "dev", "lan0");
  await up.ip("link", "set", "lan0", "up");
  await vethBetween(dev, "uplink0", up, "u-dev");
  await up.ip("link", "set", "u-dev", "master", "lan0");
  await dev.ip("addr", "add", "203.0.113.2/24", "dev", "uplink0");
  await dev.ip("route", "add", "default", "via", "203.0.113.1");
  return { up, dev };
}

/** A tiny static web tree for busybox httpd, with a CGI that answers the client's address. */
export function webRoot(dir: string, index: string): string {
  mkdirSync(join(dir, "cgi-bin"), { recursive: true });
  writeFileSync(join(dir, "index.html"), index);
  writeFileSync(join(dir, "cgi-bin", "ip"), "#!/bin/busybox sh\necho 'Content-Type: text/plain'\necho\necho \"$REMOTE_ADDR\"\n", { mode: 0o755 });
  return dir;
}

export function busybox(): string {
  for (const p of ["/bin/busybox", "/usr/bin/busybox"]) if (existsSync(p)) return p;
  throw new Error("busybox-static is needed (scripts/provision.sh installs it)");
}

/** Feeds a process's output to `onText` as it arrives. */
export function pump(stream: ReadableStream<Uint8Array>, onText: (text: string) => void): void {
  const reader = stream.getReader();
  const dec = new TextDecoder();
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      onText(dec.decode(value, { stream: true }));
    }
  })();
}
