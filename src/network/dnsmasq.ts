// One dnsmasq per Local network instance: DHCP with a fixed reservation per app interface (its MAC and
// address never change), DNS for the apps' names and the instance's static entries, forwarding the rest
// upstream, and filling the host-name sets of the firewall (`nftset`) from the answers it gives.
// dnsmasq runs as its own daemon (pidfile), so it outlives evebox; a restarted evebox adopts it.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { commentText, isHostname, isIfname } from "../config/names.ts";
import { parseIp } from "../config/net.ts";
import { maskStr, netStr, v4net } from "./ipv4.ts";
import type { AppInterfaceSpec, NiSpec } from "./model.ts";
import { hashHex, sh } from "./sys.ts";
import { TABLE } from "./acl/compile.ts";
import { waitFor } from "../lib/wait.ts";

export interface DnsmasqFiles {
  conf: string;
  /** dhcp-hostsfile and addn-hosts: re-read on SIGHUP, so changes need no restart. */
  dhcpHosts: string;
  hosts: string;
}

export interface DnsmasqPaths {
  dir: string;
  conf: string;
  pid: string;
  leases: string;
  dhcpHosts: string;
  hosts: string;
}

export function dnsmasqPaths(runDir: string, bridge: string): DnsmasqPaths {
  const dir = join(runDir, "dnsmasq");
  return {
    dir,
    conf: join(dir, `${bridge}.conf`),
    pid: join(dir, `${bridge}.pid`),
    leases: join(dir, `${bridge}.leases`),
    dhcpHosts: join(dir, `${bridge}.dhcp-hosts`),
    hosts: join(dir, `${bridge}.hosts`),
  };
}

/** A DNS label from an app name (`My App_1` → `my-app-1`). */
export function dnsLabel(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 63) || "app"
  );
}

const IPV4 = (s: unknown): s is string => typeof s === "string" && parseIp(s)?.family === 4;
const IP = (s: unknown): s is string => typeof s === "string" && parseIp(s) !== null;
const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

/**
 * The three files of an instance's dnsmasq. Every value written is checked against the syntax its line takes
 * (validation has refused bad documents already; this is the second line): one that is not is left out, and a
 * line that would still carry a control character stops the write (dnsmasq reads one directive per line, and
 * some directives run programs).
 */
export function dnsmasqFiles(ni: NiSpec, ifaces: AppInterfaceSpec[], hostSets: Map<string, string>, p: DnsmasqPaths): DnsmasqFiles {
  const prefix = Number(ni.subnet!.split("/")[1]);
  if (!isIfname(ni.bridge) || !IPV4(ni.gateway) || !IPV4(ni.dhcpRange?.start) || !IPV4(ni.dhcpRange?.end) || !(prefix >= 0 && prefix <= 32)) {
    throw new Error(`dnsmasq for network instance ${ni.uuid}: bridge, gateway or DHCP range is not well-formed`);
  }
  const domain = ni.domain && isHostname(ni.domain) ? ni.domain : null;
  // Apps that are a gateway of the instance's routes: each tagged, so it is given no route through itself.
  const gwTags = new Map<string, string>();
  for (const via of [...ni.propagated.map((r) => r.via), ni.appDefaultVia]) if (IPV4(via) && via !== ni.gateway && !gwTags.has(via)) gwTags.set(via, `evgw${gwTags.size}`);
  const conf = checked("conf", [
    `# evebox: network instance ${commentText(ni.uuid, 36)} (${commentText(ni.name)}); written by evebox, do not edit`,
    `interface=${ni.bridge}`,
    "bind-interfaces",
    `listen-address=${ni.gateway}`,
    "except-interface=lo",
    `pid-file=${p.pid}`,
    "user=root",
    "no-hosts",
    `addn-hosts=${p.hosts}`,
    `dhcp-hostsfile=${p.dhcpHosts}`,
    `dhcp-leasefile=${p.leases}`,
    `dhcp-range=${ni.dhcpRange!.start},${ni.dhcpRange!.end},${maskStr(prefix)},1h`,
    `dhcp-option=option:router,${IPV4(ni.appDefaultVia) ? ni.appDefaultVia : ni.gateway}`,
    ...classlessRoutes(ni, gwTags),
    `dhcp-option=option:dns-server,${ni.gateway}`,
    ...(ni.mtu !== 1500 && Number.isInteger(ni.mtu) ? [`dhcp-option=option:mtu,${ni.mtu}`] : []),
    "dhcp-authoritative",
    ...(domain ? [`domain=${domain}`, `dhcp-option=option:domain-name,${domain}`] : []),
    "cache-size=1000",
    "no-resolv",
    // A name without a dot (another app of the instance) is answered here or not at all: forwarded upstream, its
    // AAAA query waited ~15 s on an offline device before every connection by name (measured; 0 s with this).
    "domain-needed",
    ...ni.dnsServers.filter(IP).map((s) => `server=${s}`),
    // The firewall's `host` matches: every address dnsmasq answers for the name goes into its set.
    ...[...hostSets]
      .filter(([set, host]) => /^[A-Za-z0-9_]{1,64}$/.test(set) && isHostname(host))
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([set, host]) => `nftset=/${host}/4#inet#${TABLE}#${set}`),
    "",
  ]);
  const names = new Map<string, string>();
  for (const i of ifaces) {
    const base = dnsLabel(i.appName);
    names.set(`${i.appUuid}/${i.index}`, i.index === 0 || ![...names.values()].includes(base) ? base : `${base}-${i.index}`);
  }
  const mine = ifaces.filter((i) => MAC.test(i.mac) && IPV4(i.ip));
  const dhcpHosts = checked("dhcp-hosts", mine.map((i) => `${i.mac},${gwTags.has(i.ip!) ? `set:${gwTags.get(i.ip!)},` : ""}${i.ip},${names.get(`${i.appUuid}/${i.index}`)},infinite`).sort()) + "\n";
  const hosts = checked("hosts", [
    `${ni.gateway} gateway`,
    ...mine.map((i) => `${i.ip} ${names.get(`${i.appUuid}/${i.index}`)}`),
    ...ni.staticDns.filter((d) => isHostname(d.host)).flatMap((d) => d.addrs.filter(IP).map((a) => `${a} ${d.host}`)),
  ]) + "\n";
  return { conf, dhcpHosts, hosts };
}

/**
 * DHCP option 121 (classless static routes, RFC 3442) when the instance has routes to give (static routes,
 * the port's connected networks): the subnet on-link, each route, and the default — a client that gets 121
 * ignores the router option, so the default is repeated in it (as EVE does). Each app gateway gets the list
 * without the routes through itself (its tag); everyone else the whole list.
 */
function classlessRoutes(ni: NiSpec, gwTags: Map<string, string>): string[] {
  const routes = ni.propagated.filter((r) => v4net(r.dst) && IPV4(r.via));
  const dflt = IPV4(ni.appDefaultVia) ? ni.appDefaultVia : ni.uplink ? ni.gateway : null;
  if (!routes.length && !IPV4(ni.appDefaultVia)) return [];
  const list = (skip: string | null) =>
    [`${ni.subnet},0.0.0.0`, ...routes.filter((r) => r.via !== skip).map((r) => `${netStr(v4net(r.dst)!)},${r.via}`), ...(dflt && dflt !== skip ? [`0.0.0.0/0,${dflt}`] : [])].join(",");
  const notGw = [...gwTags.values()].map((t) => `tag:!${t},`).join("");
  return [`dhcp-option=${notGw}option:classless-static-route,${list(null)}`, ...[...gwTags].map(([via, tag]) => `dhcp-option=tag:${tag},option:classless-static-route,${list(via)}`)];
}

/** The lines joined; a line with anything but printable ASCII is refused (nothing is written). */
function checked(file: string, lines: string[]): string {
  const bad = lines.findIndex((l) => !/^[\x20-\x7e]*$/.test(l));
  if (bad >= 0) throw new Error(`dnsmasq ${file}: line ${bad + 1} would carry a control or non-ASCII character; not written`);
  return lines.join("\n");
}

export function filesHash(f: DnsmasqFiles): { conf: string; hosts: string } {
  return { conf: hashHex(f.conf, 16), hosts: hashHex(f.dhcpHosts + "\u0000" + f.hosts, 16) };
}

/** The pid of the dnsmasq running with this config file, or null. */
export function runningPid(p: DnsmasqPaths): number | null {
  try {
    const pid = Number(readFileSync(p.pid, "utf8").trim());
    if (!pid) return null;
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\u0000");
    return cmd[0]?.endsWith("dnsmasq") && cmd.includes(`--conf-file=${p.conf}`) ? pid : null;
  } catch {
    return null;
  }
}

/** What is running: the hashes of the files it was started with (null when not running). */
export function observeDnsmasq(p: DnsmasqPaths): { conf: string; hosts: string } | null {
  if (runningPid(p) === null) return null;
  try {
    return filesHash({ conf: readFileSync(p.conf, "utf8"), dhcpHosts: readFileSync(p.dhcpHosts, "utf8"), hosts: readFileSync(p.hosts, "utf8") });
  } catch {
    return null;
  }
}

export async function startDnsmasq(p: DnsmasqPaths, f: DnsmasqFiles): Promise<void> {
  await stopDnsmasq(p, false);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  writeFileSync(p.dhcpHosts, f.dhcpHosts);
  writeFileSync(p.hosts, f.hosts);
  writeFileSync(p.conf, f.conf);
  // dnsmasq forks into the background once it listens; a bad config or a busy port fails right here.
  await sh(["dnsmasq", `--conf-file=${p.conf}`], { timeoutMs: 10_000 });
  const up = await waitFor(() => runningPid(p) !== null, { timeoutMs: 500, intervalMs: 10, what: `dnsmasq for ${p.conf}` }).then(
    () => true,
    () => false,
  );
  if (!up) throw new Error(`dnsmasq for ${p.conf} did not stay up`);
}

/** New reservations and names: dnsmasq re-reads its hosts files on SIGHUP (no lease is lost). */
export async function reloadDnsmasqHosts(p: DnsmasqPaths, f: DnsmasqFiles): Promise<void> {
  const pid = runningPid(p);
  if (pid === null) return startDnsmasq(p, f);
  writeFileSync(p.dhcpHosts, f.dhcpHosts);
  writeFileSync(p.hosts, f.hosts);
  process.kill(pid, "SIGHUP");
}

export async function stopDnsmasq(p: DnsmasqPaths, removeFiles = true): Promise<void> {
  const pid = runningPid(p);
  if (pid !== null) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {}
    // gone within 2 s, or left to the next start's stop (it no longer answers: its pidfile goes below)
    await waitFor(() => !existsSync(`/proc/${pid}`), { timeoutMs: 2_000, intervalMs: 10, what: `dnsmasq ${pid} to exit` }).catch(() => {});
  }
  if (removeFiles) for (const f of [p.conf, p.pid, p.dhcpHosts, p.hosts, p.leases]) rmSync(f, { force: true });
}

export interface Lease {
  expires: number;
  mac: string;
  ip: string;
  hostname: string | null;
}

/** The last leases read per file: dnsmasq rewrites its lease file in place (truncate, then write). */
const lastLeases = new Map<string, Lease[]>();

export function readLeases(p: DnsmasqPaths): Lease[] {
  let text: string;
  let mtimeMs = 0;
  try {
    mtimeMs = statSync(p.leases).mtimeMs;
    text = readFileSync(p.leases, "utf8");
  } catch {
    lastLeases.delete(p.leases);
    return [];
  }
  const leases: Lease[] = [];
  for (const l of text.split("\n")) {
    const [exp, mac, ip, host] = l.split(" ");
    // A line being written (or cut short) is left out.
    if (!exp || !/^\d+$/.test(exp) || !mac || !ip) continue;
    leases.push({ expires: Number(exp) * 1000, mac, ip, hostname: host && host !== "*" ? host : null });
  }
  const prev = lastLeases.get(p.leases);
  // Read between dnsmasq's truncate and its write: the file just changed and is empty. The leases read a
  // moment ago are still the best answer.
  if (!leases.length && prev?.length && Date.now() - mtimeMs < 1000) return prev;
  lastLeases.set(p.leases, leases);
  return leases;
}
