// App interfaces: a veth pair per container interface (one end moved into the container's network
// namespace, renamed to the adapter's name, with the app's MAC), a tap per VM interface. The host end
// carries an alias naming the app, the interface and the container run it was made for, so a restarted
// evebox recognises its own and leaves working interfaces alone.
//
// Why veth and not Docker networks bound to our bridges: the engine would then own addresses (its IPAM
// next to our dnsmasq reservations), add its own iptables rules to the host, and need the bridge in its
// own network namespace (a device's engine and its networks need not share one); a veth needs nothing
// from the engine but the container's pid, and works the same for any engine.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../lib/run.ts";
import { v4, v4net } from "./ipv4.ts";
import type { AppInterfaceSpec } from "./model.ts";
import { ip, ipIn, ipJson, sh } from "./sys.ts";

export interface AttachResult {
  ifname: string;
  ip: string | null;
  dns: string[];
}

export async function attachContainer(iface: AppInterfaceSpec, pid: number, key: string, mtu: number, runDir: string): Promise<AttachResult> {
  const host = iface.hostIfname;
  const peer = `${host.slice(0, 12)}p${iface.index}`.slice(0, 15);
  const inside = iface.name.slice(0, 15);
  await ip("link", "del", host).catch(() => undefined);
  await ip("link", "del", peer).catch(() => undefined);
  try {
    await ip("link", "add", host, "mtu", String(mtu), "type", "veth", "peer", "name", peer, "mtu", String(mtu));
    await ip("link", "set", host, "alias", `evebox ${iface.appUuid} ${iface.index} ${key}`);
    await ip("link", "set", peer, "netns", String(pid));
    await ip("link", "set", host, "master", iface.bridge, "up");
    // A name the container may already hold (a half-done attach before a crash) is freed first.
    await ipIn(pid, "link", "del", inside).catch(() => undefined);
    await ipIn(pid, "link", "set", peer, "name", inside, "address", iface.mac);
    await ipIn(pid, "link", "set", "lo", "up");
    await ipIn(pid, "link", "set", inside, "up");
  } catch (e) {
    await ip("link", "del", host).catch(() => undefined);
    throw new Error(`app ${iface.appName}: attaching ${inside} to network instance bridge ${iface.bridge} failed: ${(e as Error).message}`);
  }
  if (iface.niKind === "local") {
    // The address of the app's dnsmasq reservation, set statically: images need not run a DHCP client.
    await ipIn(pid, "addr", "replace", `${iface.ip}/${iface.prefix}`, "dev", inside);
    // The default through the bridge (or the app a static default route names), and the instance's routes
    // (static and propagated connected ones: what DHCP option 121 gives a DHCP client).
    const dflt = iface.defaultVia === undefined ? iface.gateway : iface.defaultVia;
    if (dflt && (iface.index === 0 || !(await hasDefaultRoute(pid)))) await ipIn(pid, "route", "replace", "default", "via", dflt, "dev", inside);
    for (const r of iface.routes ?? []) {
      if (v4net(r.dst) && v4(r.via) !== null) await ipIn(pid, "route", "replace", r.dst, "via", r.via, "dev", inside);
    }
    if (iface.index === 0) writeResolvConf(pid, [iface.gateway!]);
    return { ifname: inside, ip: iface.ip, dns: [iface.gateway!] };
  }
  // Switch: the uplink's L2 and its DHCP server decide; evebox asks on the app's behalf.
  const lease = await dhcpInNamespace(pid, inside, runDir, host);
  if (iface.index === 0 && lease.dns.length) writeResolvConf(pid, lease.dns);
  return { ifname: inside, ip: lease.ip, dns: lease.dns };
}

/** A running container's routes changed in place: the ones no longer given removed, the new ones set. */
export async function updateContainerRoutes(pid: number, inside: string, before: { dst: string; via: string }[], after: { dst: string; via: string }[], defaultVia: string | null): Promise<void> {
  const keep = new Set(after.map((r) => `${r.dst} ${r.via}`));
  for (const r of before) if (!keep.has(`${r.dst} ${r.via}`) && v4net(r.dst)) await ipIn(pid, "route", "del", r.dst, "dev", inside).catch(() => undefined);
  if (defaultVia && v4(defaultVia) !== null) await ipIn(pid, "route", "replace", "default", "via", defaultVia, "dev", inside);
  for (const r of after) if (v4net(r.dst) && v4(r.via) !== null) await ipIn(pid, "route", "replace", r.dst, "via", r.via, "dev", inside);
}

async function hasDefaultRoute(pid: number): Promise<boolean> {
  const out = await sh(["nsenter", "-t", String(pid), "-n", "ip", "-j", "route", "show", "default"]).catch(() => "[]");
  return (JSON.parse(out || "[]") as unknown[]).length > 0;
}

/** The container's /etc/resolv.conf (the engine's per-container file) names the instance's DNS server. */
function writeResolvConf(pid: number, servers: string[]): void {
  const path = `/proc/${pid}/root/etc/resolv.conf`;
  try {
    writeFileSync(path, servers.map((s) => `nameserver ${s}`).join("\n") + "\n");
  } catch {
    // An image without /etc (or a read-only one) keeps what it has.
  }
}

const UDHCPC_SCRIPT = `#!/bin/sh
# evebox: applies a DHCP lease inside an app's network namespace (run by busybox udhcpc via nsenter).
case "$1" in
  deconfig) ip link set "$interface" up ;;
  bound|renew)
    ip addr replace "$ip/$subnet" dev "$interface"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    printf 'ip=%s\\nsubnet=%s\\nrouter=%s\\ndns=%s\\nlease=%s\\n' "$ip" "$subnet" "$router" "$dns" "$lease" > "$EVEBOX_LEASE_FILE"
    ;;
esac
exit 0
`;

export interface DhcpLease {
  ip: string | null;
  dns: string[];
  leaseSec: number;
}

/** One DHCP exchange for `ifname` inside the namespace of `pid`, with busybox's udhcpc from the device. */
export async function dhcpInNamespace(pid: number, ifname: string, runDir: string, hostIfname: string, requestIp?: string): Promise<DhcpLease> {
  const dir = join(runDir, "dhcp");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const script = join(dir, "udhcpc.sh");
  if (!existsSync(script) || readFileSync(script, "utf8") !== UDHCPC_SCRIPT) writeFileSync(script, UDHCPC_SCRIPT, { mode: 0o700 });
  const leaseFile = join(dir, `${hostIfname}.lease`);
  rmSync(leaseFile, { force: true });
  const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
  if (!busybox) throw new Error("busybox (udhcpc) is needed to get a Switch instance's DHCP address for a container; install busybox-static");
  const argv = ["nsenter", "-t", String(pid), "-n", busybox, "udhcpc", "-i", ifname, "-q", "-n", "-f", "-t", "6", "-T", "1", "-s", script, ...(requestIp ? ["-r", requestIp] : [])];
  const r = await run(argv, { env: { EVEBOX_LEASE_FILE: leaseFile } });
  if (r.code !== 0 || !existsSync(leaseFile)) throw new Error(`no DHCP answer on the Switch instance for ${ifname}: ${(r.stderr || r.stdout).trim().split("\n").slice(-2).join("; ")}`);
  const kv = Object.fromEntries(
    readFileSync(leaseFile, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  return { ip: kv.ip || null, dns: String(kv.dns ?? "").split(/\s+/).filter(Boolean), leaseSec: Number(kv.lease ?? 0) || 3600 };
}

/** Removes host-side app links (their peers in containers go with them). */
export async function detachLinks(ifnames: string[]): Promise<void> {
  for (const n of ifnames) await ip("link", "del", n).catch(() => undefined);
}

export interface TapNic {
  kind: "tap";
  ifname: string;
  mac: string;
  bridge: string;
}

/** The NIC a VM gets on its interface: QEMU opens the tap by name (creating it when missing). */
export function vmNic(iface: AppInterfaceSpec): TapNic {
  return { kind: "tap", ifname: iface.hostIfname, mac: iface.mac, bridge: iface.bridge };
}

/** Creates the tap (persistent, so it can be made before QEMU starts), on the instance's bridge. */
export async function createTap(iface: AppInterfaceSpec, mtu: number): Promise<TapNic> {
  const nic = vmNic(iface);
  const existing = await ipJson(["link", "show", "dev", nic.ifname]).catch(() => []);
  if (!existing.length) await ip("tuntap", "add", "dev", nic.ifname, "mode", "tap");
  await ip("link", "set", nic.ifname, "alias", `evebox ${iface.appUuid} ${iface.index} tap`);
  await ip("link", "set", nic.ifname, "mtu", String(mtu), "master", nic.bridge, "up");
  return nic;
}

