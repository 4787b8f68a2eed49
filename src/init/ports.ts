// The device's own ports on its LAN (EVE's nim): from the config's systemAdapterList (logical names through
// deviceIoList, addressing through networks), or DHCP on every Ethernet port when the config names none. A new
// port configuration is tested after it is applied (an address within the test window; a static gateway
// answering ARP; the controller answering when there is one); one that does not work is replaced by the last
// one that did, and not tried again until the config changes.
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { deviceModel, type DeviceModel } from "../config/model.ts";
import { commentText, isL2LinkName } from "../config/names.ts";
import { run } from "../lib/run.ts";
import { bondAttrs, bondCreateArgv, vlanCreateArgv } from "../network/links.ts";
import { type L2LinkSpec, linksOf } from "../network/model.ts";
import type { DevicePortConfigReport, DevicePortReport, DevicePortsReport } from "../model/ports.ts";
import type { Supervisor } from "./services.ts";

export interface PortPlan {
  ifname: string;
  /** EVE's logical label (eth0, …). */
  logical: string;
  mode: "dhcp" | "static" | "none";
  static?: { address: string; prefix: number; gateway: string | null; dns: string[] };
  mtu?: number;
  uplink: boolean;
  /** The port is one of the config's VLANs or bonds (evebox's name in `ifname`): "vlan 100 on eth1", "bond of eth2, eth3". */
  link?: string;
}

export interface PortConfig {
  /** sha256-based key of the plans: two equal configurations have one key. */
  key: string;
  /** Where it came from: "default (DHCP on every Ethernet port)" or "config version N". */
  source: string;
  ports: PortPlan[];
  /**
   * The VLANs and bonds the ports stand on, made (or adopted) before the ports are set up: bonds first, then
   * VLANs (a VLAN may be on a bond). Absent in a configuration kept by an evebox before VLAN and bond ports.
   */
  links?: L2LinkSpec[];
}

type Doc = Record<string, any>;

const DHCP_CLIENT = new Set(["Client", "DHCPNoop"]);

function keyOf(ports: PortPlan[], links: L2LinkSpec[] = []): string {
  return new Bun.CryptoHasher("sha256").update(JSON.stringify(links.length ? [ports, links] : ports)).digest("hex").slice(0, 16);
}

/** The Ethernet ports of this machine (physical ones: they have a device; bridges, veths and taps do not). */
export function ethernetPorts(sys = "/sys"): string[] {
  let names: string[];
  try {
    names = readdirSync(`${sys}/class/net`);
  } catch {
    return [];
  }
  return names
    .filter((n) => {
      try {
        return readFileSync(`${sys}/class/net/${n}/type`, "utf8").trim() === "1" && existsSync(`${sys}/class/net/${n}/device`) && !existsSync(`${sys}/class/net/${n}/wireless`);
      } catch {
        return false;
      }
    })
    .sort();
}

export function defaultPortConfig(ethernet: string[]): PortConfig {
  const ports: PortPlan[] = ethernet.map((ifname) => ({ ifname, logical: ifname, mode: "dhcp", uplink: true }));
  return { key: keyOf(ports), source: "default (DHCP on every Ethernet port)", ports };
}

function parseCidr(cidr: string): { network: string; prefix: number } | null {
  const m = cidr.match(/^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/);
  if (!m || Number(m[2]) > 32 || m[1]!.split(".").some((o) => Number(o) > 255)) return null;
  return { network: m[1]!, prefix: Number(m[2]) };
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/**
 * The port configuration an EdgeDevConfig asks for, or null when it names no ports (then the default applies).
 * Problems (an unknown network, a static port without an address, a port this device does not have) are
 * returned with the adapter they concern; a configuration with problems is not applied.
 */
export function portConfigFromDoc(doc: Doc | null, ethernet: string[], source: string): { config: PortConfig | null; problems: string[] } {
  return portConfigFromModel(doc ? deviceModel(doc) : null, ethernet, source);
}

/** The same, from the device model (config/model.ts: the labels already resolved, once, with cycles refused). */
export function portConfigFromModel(model: DeviceModel | null, ethernet: string[], source: string): { config: PortConfig | null; problems: string[] } {
  const adapters = model?.ports ?? [];
  if (!adapters.length) return { config: null, problems: [] };
  const problems: string[] = [];
  const networks = new Map((model?.networks ?? []).map((n) => [n.id, n]));
  const ports: PortPlan[] = [];
  // The config's VLANs and bonds as this machine can make them (a member or parent port it lacks is an error).
  const available = model ? linksOf(model, ethernet) : [];
  const links = new Map<string, L2LinkSpec>();
  const need = (l: L2LinkSpec) => {
    if (l.kind === "vlan") {
      const bond = available.find((b) => b.kind === "bond" && b.ifname === l.parent);
      if (bond) links.set(bond.ifname, bond);
    }
    links.set(l.ifname, l);
  };
  for (const a of adapters) {
    const where = `systemAdapterList[${a.index}] (${a.name || "unnamed"})`;
    const port = a.resolution;
    if (port.kind === "error") {
      problems.push(`${where}: ${port.message}`);
      continue;
    }
    if (port.kind === "shared") {
      problems.push(`${where}: "${a.name}" is EVE's shared label for the uplinks, not a port`);
      continue;
    }
    const ifname = port.ifname;
    let link: L2LinkSpec | undefined;
    if (port.link) {
      link = available.find((l) => l.ifname === ifname);
      if (!link || link.error) {
        problems.push(`${where}: the ${port.link.kind === "vlan" ? "VLAN" : "bond"} ${JSON.stringify(port.link.label)} cannot be made: ${link?.error ?? "it is not in the config"}`);
        continue;
      }
    } else if (!ethernet.includes(ifname)) {
      problems.push(`${where}: this device has no Ethernet port ${ifname} (it has ${ethernet.join(", ") || "none"})`);
      continue;
    }
    const plan: PortPlan = { ifname, logical: a.name, mode: "none", uplink: a.uplink };
    if (link) {
      plan.link = link.kind === "vlan" ? `VLAN ${link.vlanId} on ${link.parent}` : `bond (${link.mode}) of ${link.members.join(", ")}`;
      need(link);
    }
    if (a.networkId) {
      const net = networks.get(a.networkId);
      if (!net) {
        problems.push(`${where}: networkUUID ${a.networkId} is not in networks`);
        continue;
      }
      if (net.mtu) plan.mtu = net.mtu;
      if (net.dhcp === "Static") {
        const subnet = parseCidr(net.subnet ?? "");
        if (!subnet) {
          problems.push(`${where}: network ${net.id} is static but its subnet ${JSON.stringify(net.subnet ?? "")} is not an IPv4 CIDR`);
          continue;
        }
        if (!a.addr || !IPV4.test(a.addr)) {
          problems.push(`${where}: a static port needs addr (an IPv4 address), got ${JSON.stringify(a.addr ?? "")}`);
          continue;
        }
        const gateway = net.gateway;
        if (gateway && !IPV4.test(gateway)) {
          problems.push(`${where}: gateway ${JSON.stringify(gateway)} is not an IPv4 address`);
          continue;
        }
        plan.mode = "static";
        plan.static = { address: a.addr, prefix: subnet.prefix, gateway, dns: net.dns.filter((d) => IPV4.test(d)) };
      } else if (DHCP_CLIENT.has(net.dhcp)) plan.mode = "dhcp";
    }
    if (ports.some((p) => p.ifname === ifname)) {
      problems.push(`${where}: port ${ifname} is listed twice`);
      continue;
    }
    ports.push(plan);
  }
  if (problems.length) return { config: null, problems };
  if (!ports.some((p) => p.mode !== "none")) return { config: null, problems: ["systemAdapterList: no port has an address (DHCP or static): the device would be unreachable"] };
  const ordered = [...links.values()].sort((x, y) => (x.kind === y.kind ? 0 : x.kind === "bond" ? -1 : 1));
  return { config: { key: keyOf(ports, ordered), source, ports, ...(ordered.length ? { links: ordered } : {}) }, problems };
}

// ---------------------------------------------------------------------------------------------------------------

export interface Lease {
  ip: string;
  prefix: number;
  router: string | null;
  dns: string[];
  leaseSeconds: number | null;
  at: string;
}

export interface PortState {
  ifname: string;
  logical: string;
  mode: PortPlan["mode"];
  addresses: string[];
  lease: Lease | null;
  up: boolean;
  /** A VLAN or bond port: what it is ("VLAN 100 on eth1"). */
  link?: string;
}

export interface PortStatus {
  current: { key: string; source: string } | null;
  lastWorking: { key: string; source: string } | null;
  testing: boolean;
  lastFailure: string | null;
  ports: PortState[];
}

export interface PortSettings {
  get(key: string): string | null;
  set(key: string, value: string): void;
}

export interface PortManagerOptions {
  supervisor: Supervisor;
  settings: PortSettings;
  runDir: string;
  hostname: () => string;
  controllerUrl: () => string | null;
  log: (level: "info" | "warn" | "error", message: string) => void;
  event: (type: string, message: string) => void;
  testWindowMs?: number;
  sys?: string;
  /** network.fallback.any.eth: when neither the config's ports nor the last working ones work, DHCP on every Ethernet port. */
  anyEthFallback?: () => boolean;
}

const UDHCPC_SCRIPT = `#!/bin/sh
# udhcpc event script, written by evebox (src/init/ports.ts). $1: deconfig | bound | renew | leasefail | nak
dir="$EVEBOX_PORTS_DIR"
mkdir -p "$dir"
metric=$((100 + $(cat /sys/class/net/"$interface"/ifindex)))
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    rm -f "$dir/$interface.lease"
    ;;
  bound | renew)
    prefix="$mask"
    old=$(ip -4 -o addr show dev "$interface" | awk '{print $4}')
    if [ "$old" != "$ip/$prefix" ]; then
      ip -4 addr flush dev "$interface"
      ip addr add "$ip/$prefix" broadcast + dev "$interface"
    fi
    for r in $router; do
      ip route replace default via "$r" dev "$interface" metric "$metric"
      break
    done
    printf '{"ip":"%s","prefix":%s,"router":"%s","dns":"%s","leaseSeconds":"%s","at":"%s"}\\n' \\
      "$ip" "\${prefix:-24}" "$(echo $router | cut -d' ' -f1)" "$dns" "$lease" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$dir/$interface.lease.tmp"
    mv "$dir/$interface.lease.tmp" "$dir/$interface.lease"
    ;;
esac
exit 0
`;

/** ip, busybox arping: their exit code and what they said (stdout, then stderr); never throws. */
async function sh(cmd: string[]): Promise<{ code: number; out: string }> {
  const r = await run(cmd);
  return { code: r.code, out: `${r.stdout}${r.stderr}`.trim() };
}

export class PortManager {
  private current: PortConfig | null = null;
  private testing = false;
  private lastFailure: string | null = null;
  private generation = 0;
  private readonly portsDir: string;
  private readonly script: string;
  private queue: Promise<void> = Promise.resolve();
  private resolvTimer: ReturnType<typeof setInterval> | null = null;
  private lastResolv = "";

  constructor(private readonly o: PortManagerOptions) {
    this.portsDir = join(o.runDir, "ports");
    this.script = join(o.runDir, "udhcpc.sh");
  }

  ethernet(): string[] {
    return ethernetPorts(this.o.sys);
  }

  /**
   * Brings the ports up with `desired` (null: the last working configuration, else the default) and tests it.
   * Resolves once the configuration is applied — links up, DHCP clients running — not when it has been tested,
   * so the caller can go on while the addresses come.
   */
  start(desired: PortConfig | null): Promise<void> {
    mkdirSync(this.portsDir, { recursive: true });
    writeFileSync(this.script, UDHCPC_SCRIPT, { mode: 0o755 });
    this.resolvTimer = setInterval(() => this.writeResolvConf(), 2000);
    const applied = new Promise<void>((resolve) => (this.onApplied = resolve));
    void this.enqueue(async () => {
      const lastWorking = this.lastWorking() ?? defaultPortConfig(this.ethernet());
      await this.decide(desired ?? lastWorking, lastWorking);
    });
    return applied;
  }

  private onApplied: (() => void) | null = null;

  /** A new desired configuration (the config changed). Problems keep what runs and are reported. */
  offer(desired: PortConfig | null, problems: string[] = []): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (problems.length) {
      this.lastFailure = `the port configuration was not applied: ${problems.join("; ")}`;
      this.o.log("error", this.lastFailure);
      this.o.event("ports.rejected", this.lastFailure);
      return Promise.resolve();
    }
    return this.enqueue(async () => {
      const target = desired ?? defaultPortConfig(this.ethernet());
      if (this.current?.key === target.key) return;
      await this.decide(target, this.lastWorking() ?? this.current ?? defaultPortConfig(this.ethernet()));
    });
  }

  /** The device is going down: nothing is applied from now on (a config change's delayed offer included). */
  stop(): void {
    this.stopped = true;
    if (this.resolvTimer) clearInterval(this.resolvTimer);
  }

  private stopped = false;

  status(): PortStatus {
    const lw = this.lastWorking();
    return {
      current: this.current ? { key: this.current.key, source: this.current.source } : null,
      lastWorking: lw ? { key: lw.key, source: lw.source } : null,
      testing: this.testing,
      lastFailure: this.lastFailure,
      ports: (this.current?.ports ?? []).map((p) => this.portState(p)),
    };
  }

  /** When each configuration (by key) last worked and last failed its test, since this start. */
  private readonly tested = new Map<string, { succeeded: Date | null; failed: Date | null; error: string | null }>();

  private noteTest(key: string, ok: boolean, error: string | null): void {
    const t = this.tested.get(key) ?? { succeeded: null, failed: null, error: null };
    if (ok) Object.assign(t, { succeeded: new Date(), error: null });
    else Object.assign(t, { failed: new Date(), error });
    this.tested.set(key, t);
    if (this.tested.size > 16) this.tested.delete(this.tested.keys().next().value!);
  }

  /** The configurations (in use, then the last working one) with their ports, for the controller (systemAdapter). */
  report(): DevicePortsReport {
    const configs: DevicePortConfigReport[] = [];
    const entry = (cfg: PortConfig, inUse: boolean): DevicePortConfigReport => {
      const t = this.tested.get(cfg.key);
      return {
        key: cfg.key,
        source: cfg.source,
        inUse,
        testing: inUse && this.testing,
        lastSucceeded: t?.succeeded ?? null,
        lastFailed: t?.failed ?? null,
        lastError: t?.error ?? null,
        ports: cfg.ports.map((p) => this.portReport(p, cfg, inUse)),
      };
    };
    if (this.current) configs.push(entry(this.current, true));
    const lw = this.lastWorking();
    if (lw && lw.key !== this.current?.key) configs.push(entry(lw, false));
    return { configs };
  }

  private portReport(p: PortPlan, cfg: PortConfig, live: boolean): DevicePortReport {
    const sys = this.o.sys ?? "/sys";
    const read = (f: string) => {
      try {
        return readFileSync(`${sys}/class/net/${f}`, "utf8").trim();
      } catch {
        return "";
      }
    };
    const st = live ? this.portState(p) : null;
    const lease = st?.lease ?? null;
    const link = (cfg.links ?? []).find((l) => l.ifname === p.ifname);
    return {
      ifname: p.ifname,
      logical: p.logical,
      uplink: p.uplink,
      mode: p.mode,
      addresses: st ? st.addresses : p.static ? [`${p.static.address}/${p.static.prefix}`] : [],
      gateway: p.static?.gateway ?? lease?.router ?? null,
      dns: p.static?.dns ?? lease?.dns ?? [],
      up: st?.up ?? false,
      mac: live ? read(`${p.ifname}/address`) || null : null,
      mtu: p.mtu ?? (live ? Number(read(`${p.ifname}/mtu`)) || null : null),
      ...(link?.kind === "bond"
        ? {
            bond: {
              mode: link.mode ?? "balance-rr",
              active: live ? read(`${p.ifname}/bonding/active_slave`) || null : null,
              members: link.members.map((m) => ({ ifname: m, up: live && read(`${m}/operstate`) === "up" })),
              miimon: link.mii?.interval ?? 0,
            },
          }
        : {}),
    };
  }

  /** The VLANs and bonds (evebox's names) the ports in use stand on: the network part leaves them to this one. */
  heldLinks(): string[] {
    return (this.current?.links ?? []).map((l) => l.ifname);
  }

  /** The device's IPv4 addresses on its ports (for the console URL). */
  addresses(): string[] {
    return (this.current?.ports ?? []).flatMap((p) => this.portState(p).addresses.map((a) => a.split("/")[0]!));
  }

  private enqueue(f: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(f, f).catch((e) => this.o.log("error", `ports: ${(e as Error).message}`));
    return this.queue;
  }

  private lastWorking(): PortConfig | null {
    try {
      const v = this.o.settings.get("ports.last_working");
      return v ? (JSON.parse(v) as PortConfig) : null;
    } catch {
      return null;
    }
  }

  private async decide(target: PortConfig, fallback: PortConfig): Promise<void> {
    if (this.o.settings.get("ports.failed") === target.key && target.key !== fallback.key) {
      this.lastFailure = `the port configuration from ${target.source} did not work before; using the last working one (${fallback.source}) until the config changes`;
      this.o.log("warn", this.lastFailure);
      if (this.current?.key !== fallback.key) await this.applyAndTest(fallback, false);
      return;
    }
    const ok = await this.applyAndTest(target, true);
    if (ok) return;
    if (fallback.key === target.key) return; // nothing else to go back to: keep trying (DHCP keeps asking)
    this.o.settings.set("ports.failed", target.key);
    const msg = `the port configuration from ${target.source} did not work (${this.lastFailure}); went back to the last working one (${fallback.source})`;
    this.lastFailure = msg;
    this.o.log("error", msg);
    this.o.event("ports.fallback", msg);
    if (await this.applyAndTest(fallback, false)) return;
    const any = defaultPortConfig(this.ethernet());
    if (this.o.anyEthFallback?.() && any.key !== fallback.key && any.key !== target.key) {
      this.lastFailure = `${msg}, which did not work either; network.fallback.any.eth: DHCP on every Ethernet port`;
      this.o.log("warn", this.lastFailure);
      this.o.event("ports.fallback", this.lastFailure);
      await this.applyAndTest(any, false);
    }
  }

  /** Applies `cfg` and waits (up to the test window) for it to work; a working one is remembered. */
  private async applyAndTest(cfg: PortConfig, recordFailure: boolean): Promise<boolean> {
    const gen = ++this.generation;
    await this.apply(cfg);
    this.testing = true;
    const deadline = Date.now() + (this.o.testWindowMs ?? 45_000);
    let why = "no port got an address";
    try {
      while (Date.now() < deadline && gen === this.generation) {
        const r = await this.works(cfg);
        if (r.ok) {
          this.o.settings.set("ports.last_working", JSON.stringify(cfg));
          if (this.o.settings.get("ports.failed") === cfg.key) this.o.settings.set("ports.failed", "");
          this.o.log("info", `ports: ${cfg.source} works (${r.detail})`);
          this.o.event("ports.up", `ports up: ${r.detail}`);
          this.noteTest(cfg.key, true, null);
          if (recordFailure) this.lastFailure = null;
          return true;
        }
        why = r.detail;
        await Bun.sleep(1000);
      }
    } finally {
      this.testing = false;
    }
    this.lastFailure = why;
    if (gen === this.generation) this.noteTest(cfg.key, false, why);
    return false;
  }

  private async works(cfg: PortConfig): Promise<{ ok: boolean; detail: string }> {
    const good: string[] = [];
    const bad: string[] = [];
    for (const p of cfg.ports) {
      const st = this.portState(p);
      if (p.mode === "dhcp") (st.lease ? good : bad).push(st.lease ? `${p.ifname} ${st.lease.ip}/${st.lease.prefix} by DHCP` : `${p.ifname}: no DHCP lease`);
      else if (p.mode === "static") {
        const gw = p.static!.gateway;
        if (!st.addresses.length) bad.push(`${p.ifname}: address not set`);
        else if (gw && (await sh(["busybox", "arping", "-q", "-f", "-c", "1", "-w", "1", "-I", p.ifname, gw])).code !== 0) bad.push(`${p.ifname}: gateway ${gw} does not answer`);
        else good.push(`${p.ifname} ${p.static!.address}/${p.static!.prefix} static`);
      }
    }
    if (!good.length) return { ok: false, detail: bad.join("; ") || "no port has an address" };
    const controller = this.o.controllerUrl();
    if (controller) {
      const reachable = await this.reachable(controller);
      if (!reachable) return { ok: false, detail: `${good.join(", ")}, but the controller ${controller} does not answer` };
    }
    return { ok: true, detail: good.join(", ") };
  }

  private async reachable(url: string): Promise<boolean> {
    try {
      const u = new URL(url);
      const port = Number(u.port || (u.protocol === "https:" ? 443 : 80));
      return await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 5000);
        Bun.connect({
          hostname: u.hostname,
          port,
          socket: {
            open(s) {
              clearTimeout(timer);
              s.end();
              resolve(true);
            },
            connectError() {
              clearTimeout(timer);
              resolve(false);
            },
            data() {},
          },
        }).catch(() => resolve(false));
      });
    } catch {
      return false;
    }
  }

  private async apply(cfg: PortConfig): Promise<void> {
    const previous = this.current;
    this.current = cfg;
    this.o.log("info", `ports: applying ${cfg.source}: ${cfg.ports.map((p) => `${p.ifname} ${p.mode === "static" ? `${p.static!.address}/${p.static!.prefix}` : p.mode}`).join(", ")}`);
    // On the first apply of a boot there is nothing to take down: no client runs, no address was set.
    const names = new Set(previous ? [...previous.ports.map((p) => p.ifname), ...cfg.ports.map((p) => p.ifname)] : []);
    for (const ifname of names) {
      // Every port is set up from scratch: its DHCP client stopped, its addresses and routes flushed.
      if (this.o.supervisor.has(`dhcp-${ifname}`)) await this.o.supervisor.stop(`dhcp-${ifname}`);
      rmSync(join(this.portsDir, `${ifname}.lease`), { force: true });
      await sh(["ip", "-4", "addr", "flush", "dev", ifname]);
      await sh(["ip", "-4", "route", "flush", "dev", ifname]);
    }
    await this.makeLinks(cfg.links ?? []);
    for (const p of cfg.ports) {
      if (p.mtu) await sh(["ip", "link", "set", "dev", p.ifname, "mtu", String(p.mtu)]);
      await sh(["ip", "link", "set", "dev", p.ifname, "up"]);
      if (p.mode === "dhcp") {
        this.o.supervisor.start({
          name: `dhcp-${p.ifname}`,
          cmd: ["busybox", "udhcpc", "-f", "-i", p.ifname, "-s", this.script, "-x", `hostname:${this.o.hostname()}`, "-t", "5", "-T", "2", "-A", "5", "-R"],
          env: { EVEBOX_PORTS_DIR: this.portsDir },
          stopTimeoutMs: 3000,
        });
      } else if (p.mode === "static") {
        const s = p.static!;
        const r = await sh(["ip", "addr", "add", `${s.address}/${s.prefix}`, "dev", p.ifname]);
        if (r.code !== 0) this.o.log("error", `ports: ${p.ifname}: ip addr add ${s.address}/${s.prefix}: ${r.out}`);
        if (s.gateway) {
          const ifindex = Number(readFileSync(`${this.o.sys ?? "/sys"}/class/net/${p.ifname}/ifindex`, "utf8").trim());
          const g = await sh(["ip", "route", "replace", "default", "via", s.gateway, "dev", p.ifname, "metric", String(100 + ifindex)]);
          if (g.code !== 0) this.o.log("error", `ports: ${p.ifname}: default route via ${s.gateway}: ${g.out}`);
        }
      }
    }
    this.writeResolvConf();
    this.onApplied?.();
    this.onApplied = null;
  }

  /**
   * Makes the VLANs and bonds the ports stand on, or adopts them as they are (the network part may have made
   * them first, from the same config). Only evebox's names are made, on ports this machine has; a failure is
   * logged and the port then gets no address, which the test after applying finds.
   */
  private async makeLinks(links: L2LinkSpec[]): Promise<void> {
    const sys = this.o.sys ?? "/sys";
    const exists = (n: string) => existsSync(`${sys}/class/net/${n}`);
    const step = async (argv: string[], what: string) => {
      const r = await sh(["ip", ...argv]);
      if (r.code !== 0) this.o.log("error", `ports: ${what}: ${r.out}`);
      return r.code === 0;
    };
    for (const l of links) {
      if (!isL2LinkName(l.ifname)) {
        this.o.log("error", `ports: ${l.ifname} is not a name evebox gives a ${l.kind}; not made`);
        continue;
      }
      if (!exists(l.ifname)) {
        const argv = l.kind === "bond" ? bondCreateArgv(l.ifname, bondAttrs(l)) : vlanCreateArgv(l.ifname, { parent: l.parent, vlanId: l.vlanId });
        const r = await sh(["ip", ...argv]);
        // The network part may have made it a moment before (the same config): then it is adopted like any.
        if (r.code !== 0 && !exists(l.ifname)) {
          this.o.log("error", `ports: making the ${l.kind} ${l.label} (${l.ifname}): ${r.out}`);
          continue;
        }
        if (r.code === 0) this.o.log("info", `ports: made the ${l.kind} ${l.label} as ${l.ifname}`);
      }
      await step(["link", "set", l.ifname, "alias", `evebox ${l.kind} ${commentText(l.label)}`], `naming ${l.ifname}`);
      if (l.kind === "bond") {
        for (const m of l.members) {
          let master = "";
          try {
            master = basename(readlinkSync(`${sys}/class/net/${m}/master`));
          } catch {
            master = "";
          }
          if (master === l.ifname) continue;
          // A port is enslaved while down; it comes up as the bond's.
          await step(["link", "set", m, "down"], `taking ${m} down for the bond ${l.label}`);
          await step(["link", "set", m, "master", l.ifname], `adding ${m} to the bond ${l.label}`);
        }
      } else if (l.parent) await step(["link", "set", l.parent, "up"], `bringing ${l.parent} up for the VLAN ${l.label}`);
      await step(["link", "set", l.ifname, "up"], `bringing ${l.ifname} up`);
    }
  }

  private portState(p: PortPlan): PortState {
    let lease: Lease | null = null;
    try {
      const raw = JSON.parse(readFileSync(join(this.portsDir, `${p.ifname}.lease`), "utf8"));
      lease = { ip: raw.ip, prefix: Number(raw.prefix), router: raw.router || null, dns: String(raw.dns || "").split(/\s+/).filter(Boolean), leaseSeconds: Number(raw.leaseSeconds) || null, at: raw.at };
    } catch {
      lease = null;
    }
    let addresses: string[] = [];
    let up = false;
    try {
      up = readFileSync(`${this.o.sys ?? "/sys"}/class/net/${p.ifname}/operstate`, "utf8").trim() === "up";
    } catch {
      up = false;
    }
    if (p.mode === "dhcp" && lease) addresses = [`${lease.ip}/${lease.prefix}`];
    if (p.mode === "static") addresses = this.staticApplied(p) ? [`${p.static!.address}/${p.static!.prefix}`] : [];
    return { ifname: p.ifname, logical: p.logical, mode: p.mode, addresses, lease, up, ...(p.link ? { link: p.link } : {}) };
  }

  private staticApplied(p: PortPlan): boolean {
    const r = Bun.spawnSync(["ip", "-4", "-o", "addr", "show", "dev", p.ifname], { env: process.env, stdout: "pipe", stderr: "ignore" });
    return r.stdout.toString().includes(` ${p.static!.address}/`);
  }

  /** resolv.conf from the DHCP leases and the static ports' DNS servers (/etc/resolv.conf points here). */
  private writeResolvConf(): void {
    const servers: string[] = [];
    for (const p of this.current?.ports ?? []) {
      if (p.mode === "static") servers.push(...p.static!.dns);
      else if (p.mode === "dhcp") servers.push(...(this.portState(p).lease?.dns ?? []));
    }
    const text = [...new Set(servers)].slice(0, 3).map((s) => `nameserver ${s}`).join("\n") + "\n";
    if (text === this.lastResolv) return;
    this.lastResolv = text;
    const file = join(this.o.runDir, "resolv.conf");
    writeFileSync(`${file}.tmp`, text);
    renameSync(`${file}.tmp`, file);
  }
}
