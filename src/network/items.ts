// The network as dependency-graph items: what is desired (from the model), what exists (observed in the
// kernel, the run directory and the firewall), and how each kind of item is built and removed.
// What is evebox's: links named eb… (bridges) and ev… (app veths and taps), addresses on those bridges,
// device ports enslaved to them, routing tables 10000-19999 with their rules at priority 10950,
// dnsmasq instances started with our config files, our nftables tables, the forwarding switches we
// turned on (remembered with their original value, restored when no longer needed), and accept rules
// commented `evebox` in Docker's DOCKER-USER chain (docker-user.ts).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CompiledFirewall } from "./acl/compile.ts";
import type { NftFirewall } from "./acl/nft.ts";
import { acceptBridge, bridgesWithRules, type ForwardFacts, NO_FORWARD_FACTS, observeForward, releaseBridge } from "./docker-user.ts";
import { type DnsmasqFiles, type DnsmasqPaths, dnsmasqFiles, dnsmasqPaths, filesHash, observeDnsmasq, reloadDnsmasqHosts, startDnsmasq, stopDnsmasq } from "./dnsmasq.ts";
import type { Configurator, Item } from "./graph.ts";
import { commentText, isL2LinkName } from "../config/names.ts";
import type { AppInterfaceSpec, HostFacts, NetworkModel } from "./model.ts";
import { bondAttrs, bondCreateArgv, vlanCreateArgv } from "./links.ts";
import { hashHex, ip, ipJson, ipJsonBatch, readSysctl, sh, writeSysctl } from "./sys.ts";

export const RULE_PREF = 10950;
const TABLE_BASE = 10000;
const TABLE_SPAN = 10000;

export function isOurLink(name: string): boolean {
  return /^e[bv][0-9a-f]/.test(name);
}

export function routeTable(niUuid: string, taken: Set<number>): number {
  let t = TABLE_BASE + (parseInt(hashHex(`table:${niUuid.toLowerCase()}`, 8), 16) % TABLE_SPAN);
  while (taken.has(t)) t = TABLE_BASE + ((t - TABLE_BASE + 1) % TABLE_SPAN);
  taken.add(t);
  return t;
}

export interface Attachment {
  ifname: string;
  appUuid: string;
  index: number;
  /** veth: `<container id 12>@<start ms>` of the container it was made for; tap: "tap". */
  key: string;
  kind: "veth" | "tap";
  master: string | null;
}

export interface Observation {
  items: Item[];
  attachments: Attachment[];
  facts: HostFacts;
  /** The host's iptables FORWARD policy and Docker's DOCKER-USER chain (docker-user.ts). */
  forward?: ForwardFacts;
  /** Every link's state (the ports' status shows our VLANs, bonds and their members). */
  links?: LinkState[];
}

/**
 * `held`: the VLANs and bonds the device's own ports stand on (init/ports.ts makes those, and they must stay
 * while a port uses them): no item of the network part's, so it neither makes, changes nor removes them.
 */
export function desiredItems(model: NetworkModel, firewall: CompiledFirewall, facts: HostFacts, runDir: string, forward: ForwardFacts = NO_FORWARD_FACTS, held: ReadonlySet<string> = new Set()): Item[] {
  const items = new Map<string, Item>();
  const add = (i: Item) => items.set(i.id, i);
  const tables = new Set<number>();
  // VLAN sub-interfaces and bonds first: an instance on one of them waits for it.
  const linkItem = new Map<string, string>();
  for (const l of model.links) {
    if (l.error || held.has(l.ifname)) continue;
    const id = `${l.kind}:${l.ifname}`;
    if (l.kind === "bond") {
      add({ id, type: "bond", deps: [], attrs: bondAttrs(l), payload: { label: l.label } });
      for (const m of l.members) add({ id: `bondmember:${m}`, type: "bondmember", deps: [id], attrs: { bond: l.ifname } });
    } else {
      const parent = linkItem.get(l.parent!);
      add({ id, type: "vlan", deps: parent ? [parent] : [], attrs: { parent: l.parent, vlanId: l.vlanId }, payload: { label: l.label } });
    }
    linkItem.set(l.ifname, id);
  }
  const onLink = (ifname: string | undefined) => (ifname && linkItem.has(ifname) ? [linkItem.get(ifname)!] : []);
  for (const ni of model.instances) {
    if (ni.error) continue;
    const bridge = `bridge:${ni.bridge}`;
    add({ id: bridge, type: "bridge", deps: [], attrs: { mtu: ni.mtu } });
    // Where the host's FORWARD policy drops (a Docker engine's), the bridge's accept rules in DOCKER-USER
    // come before anything that makes the instance usable; when they cannot be made, nothing more is built.
    const gate = [bridge];
    if (forward.drops) {
      const accept = `dockeruser:${ni.bridge}`;
      add({ id: accept, type: "dockeruser", deps: [bridge], attrs: { complete: true }, payload: forward });
      gate.push(accept);
    }
    if (ni.kind === "switch") {
      add({ id: `port:${ni.uplink!.ifname}`, type: "port", deps: [...gate, ...onLink(ni.uplink!.ifname)], attrs: { bridge: ni.bridge } });
      continue;
    }
    const prefix = ni.subnet!.split("/")[1];
    const addr = `addr:${ni.bridge}:${ni.gateway}/${prefix}`;
    add({ id: addr, type: "addr", deps: gate, attrs: {} });
    add({ id: `fwd:${ni.bridge}`, type: "fwd", deps: gate, attrs: {} });
    const ifaces = model.interfaces.filter((i) => i.niUuid === ni.uuid);
    const hostSets = new Map([...firewall.hostSets].filter(([, host]) => ni.kind === "local" && host));
    const paths = dnsmasqPaths(runDir, ni.bridge);
    const files = dnsmasqFiles(ni, ifaces, hostSets, paths);
    add({ id: `dnsmasq:${ni.bridge}`, type: "dnsmasq", deps: [addr], attrs: filesHash(files), payload: { files, paths } });
    if (ni.uplink) {
      add({ id: `fwd:${ni.uplink.ifname}`, type: "fwd", deps: onLink(ni.uplink.ifname), attrs: {} });
      // The instance's own routing table sends its traffic out of its chosen uplink, whatever the
      // device's default route is (so the NAT on that uplink always applies).
      const table = routeTable(ni.uuid, tables);
      const route = `route:${table}`;
      add({
        id: route,
        type: "route",
        deps: [addr, ...onLink(ni.uplink.ifname)],
        attrs: {
          table,
          subnet: ni.subnet,
          bridge: ni.bridge,
          uplink: ni.uplink.ifname,
          via: ni.hostDefaultVia ?? facts.gateways[ni.uplink.ifname] ?? null,
          // Static routes without a gateway are link routes on the port, like its connected networks.
          connected: [...new Set([...(facts.connected[ni.uplink.ifname] ?? []), ...ni.routes.filter((r) => !r.via).map((r) => r.dst)])].sort(),
          static: ni.routes.filter((r) => r.via).map((r) => `${r.dst} via ${r.via}`).sort(),
        },
      });
      add({ id: `rule:${table}`, type: "rule", deps: [route], attrs: { table, iif: ni.bridge } });
    }
  }
  if (!firewall.empty) add({ id: "firewall", type: "firewall", deps: [], attrs: { hash: firewall.hash }, payload: firewall });
  return [...items.values()];
}

export async function observe(runDir: string, nft: NftFirewall): Promise<Observation> {
  const [links, addrs, routes, rules] = await ipJsonBatch([["link", "show"], ["addr", "show"], ["route", "show", "table", "all"], ["rule", "list"]]);
  const items: Item[] = [];
  const attachments: Attachment[] = [];
  const links2: LinkState[] = [];
  const ours = new Set<string>();
  for (const l of links) {
    const name: string = l.ifname;
    const kind = l.linkinfo?.info_kind;
    if (name.startsWith("eb") && kind === "bridge") {
      ours.add(name);
      items.push({ id: `bridge:${name}`, type: "bridge", deps: [], attrs: { mtu: l.mtu } });
    } else if (name.startsWith("ev") && (kind === "veth" || kind === "tun")) {
      ours.add(name);
      const m = String(l.ifalias ?? "").match(/^evebox (\S+) (\d+) (\S+)$/);
      if (m) attachments.push({ ifname: name, appUuid: m[1]!, index: Number(m[2]), key: m[3]!, kind: kind === "tun" ? "tap" : "veth", master: l.master ?? null });
      else attachments.push({ ifname: name, appUuid: "", index: -1, key: "", kind: kind === "tun" ? "tap" : "veth", master: l.master ?? null });
    } else if (String(l.master ?? "").startsWith("eb")) {
      items.push({ id: `port:${name}`, type: "port", deps: [`bridge:${l.master}`, ...(isL2LinkName(name) ? [`${kind === "bond" ? "bond" : "vlan"}:${name}`] : [])], attrs: { bridge: l.master } });
    }
    // The config's VLANs and bonds (evv…/evg…), and the ports enslaved to our bonds.
    if (isL2LinkName(name) && kind === "vlan") {
      items.push({ id: `vlan:${name}`, type: "vlan", deps: isL2LinkName(String(l.link ?? "")) ? [`bond:${l.link}`] : [], attrs: { parent: l.link ?? null, vlanId: l.linkinfo?.info_data?.id ?? null } });
    } else if (isL2LinkName(name) && kind === "bond") {
      items.push({ id: `bond:${name}`, type: "bond", deps: [], attrs: observedBondAttrs(l.linkinfo?.info_data ?? {}) });
    }
    if (isL2LinkName(String(l.master ?? "")) && l.linkinfo?.info_slave_kind === "bond") {
      items.push({ id: `bondmember:${name}`, type: "bondmember", deps: [`bond:${l.master}`], attrs: { bond: l.master } });
    }
    links2.push({ ifname: name, kind: kind ?? null, operstate: String(l.operstate ?? "UNKNOWN"), master: l.master ?? null, slaveState: l.linkinfo?.info_slave_data?.state ?? null, activeSlave: l.linkinfo?.info_data?.active_slave ?? null });
  }
  for (const a of addrs) {
    if (!ours.has(a.ifname) || !a.ifname.startsWith("eb")) continue;
    for (const ai of a.addr_info ?? []) {
      if (ai.family !== "inet") continue;
      items.push({ id: `addr:${a.ifname}:${ai.local}/${ai.prefixlen}`, type: "addr", deps: [`bridge:${a.ifname}`], attrs: {} });
    }
  }
  const fwdDir = join(runDir, "forwarding");
  if (existsSync(fwdDir)) {
    for (const ifname of readdirSync(fwdDir)) {
      if (readSysctl(`net/ipv4/conf/${ifname}/forwarding`) === "1") {
        items.push({ id: `fwd:${ifname}`, type: "fwd", deps: ifname.startsWith("eb") ? [`bridge:${ifname}`] : [], attrs: {} });
      }
    }
  }
  const byTable = new Map<number, any[]>();
  const cidr = (d: string) => (String(d).includes("/") ? d : `${d}/32`);
  for (const r of routes) {
    const t = Number(r.table);
    if (t >= TABLE_BASE && t < TABLE_BASE + TABLE_SPAN) byTable.set(t, [...(byTable.get(t) ?? []), r]);
  }
  for (const [table, rs] of byTable) {
    const def = rs.find((r) => r.dst === "default");
    const sub = rs.find((r) => r.dst !== "default" && String(r.dev).startsWith("eb"));
    const connected = rs.filter((r) => r.dst !== "default" && r !== sub && !r.gateway).map((r) => cidr(r.dst));
    const statics = rs.filter((r) => r.dst !== "default" && r !== sub && r.gateway).map((r) => `${cidr(r.dst)} via ${r.gateway}`);
    items.push({
      id: `route:${table}`,
      type: "route",
      deps: sub ? [`addr-of:${sub.dev}`] : [],
      attrs: { table, subnet: sub?.dst ?? null, bridge: sub?.dev ?? null, uplink: def?.dev ?? null, via: def?.gateway ?? null, connected: connected.sort(), static: statics.sort() },
    });
  }
  for (const r of rules) {
    if (r.priority !== RULE_PREF) continue;
    const table = Number(r.table);
    items.push({ id: `rule:${table}`, type: "rule", deps: [`route:${table}`], attrs: { table, iif: r.iif ?? null } });
  }
  const dnsDir = join(runDir, "dnsmasq");
  if (existsSync(dnsDir)) {
    for (const f of readdirSync(dnsDir)) {
      if (!f.endsWith(".conf")) continue;
      const bridge = f.slice(0, -5);
      const paths = dnsmasqPaths(runDir, bridge);
      const hashes = observeDnsmasq(paths);
      if (hashes) items.push({ id: `dnsmasq:${bridge}`, type: "dnsmasq", deps: [], attrs: hashes, payload: { paths } });
      else await stopDnsmasq(paths, true); // its files without a running dnsmasq: leftovers
    }
  }
  const fwHash = await nft.observedHash();
  if (fwHash) items.push({ id: "firewall", type: "firewall", deps: [], attrs: { hash: fwHash } });
  // Our DOCKER-USER rules, by bridge (also those of a bridge gone since, left by an earlier run: not desired,
  // so they are removed).
  const forward = await observeForward();
  for (const [bridge, complete] of bridgesWithRules(forward)) {
    items.push({ id: `dockeruser:${bridge}`, type: "dockeruser", deps: [`bridge:${bridge}`], attrs: { complete }, payload: forward });
  }

  // Host facts: the device's own networks (allocation must avoid them), interfaces, gateways.
  const hostNetworks = new Set<string>();
  const gateways: Record<string, string> = {};
  const connected: Record<string, string[]> = {};
  let defaultRouteIfname: string | null = null;
  for (const a of addrs) {
    if (isOurLink(a.ifname) || a.ifname === "lo") continue;
    for (const ai of a.addr_info ?? []) if (ai.family === "inet") hostNetworks.add(`${ai.local}/${ai.prefixlen}`);
  }
  for (const r of routes) {
    if (r.table !== undefined && r.table !== "main") continue;
    if (isOurLink(String(r.dev ?? ""))) continue;
    if (r.dst === "default") {
      if (r.gateway && r.dev && !gateways[r.dev]) gateways[r.dev] = r.gateway;
      if (!defaultRouteIfname && r.dev) defaultRouteIfname = r.dev;
    } else if (r.dst) {
      hostNetworks.add(String(r.dst).includes("/") ? r.dst : `${r.dst}/32`);
      if (r.scope === "link" && r.dev) connected[r.dev] = [...(connected[r.dev] ?? []), String(r.dst).includes("/") ? r.dst : `${r.dst}/32`];
    }
  }
  const facts: HostFacts = {
    hostNetworks: [...hostNetworks],
    interfaces: links.map((l) => l.ifname as string).filter((n) => !isOurLink(n) && n !== "lo"),
    defaultRouteIfname,
    resolvServers: resolvConfServers(),
    gateways,
    connected,
  };
  // Route items depend on their bridge's address; name the dependency the way desired items do.
  const addrOf = new Map(items.filter((i) => i.type === "addr").map((i) => [i.id.split(":")[1]!, i.id]));
  for (const i of items) if (i.type === "route") i.deps = i.deps.map((d) => (d.startsWith("addr-of:") ? (addrOf.get(d.slice(8)) ?? d) : d));
  return { items, attachments, facts, forward, links: links2 };
}

/** A link's state as observed (for the device's ports in status: our VLANs and bonds, and their members). */
export interface LinkState {
  ifname: string;
  kind: string | null;
  operstate: string;
  master: string | null;
  /** A bond member's state (ACTIVE / BACKUP), as the kernel reports it. */
  slaveState: string | null;
  activeSlave: string | null;
}

function observedBondAttrs(d: Record<string, any>): Record<string, unknown> {
  return {
    mode: d.mode ?? null,
    miimon: Number(d.miimon ?? 0),
    updelay: Number(d.updelay ?? 0),
    downdelay: Number(d.downdelay ?? 0),
    arpInterval: Number(d.arp_interval ?? 0),
    arpTargets: (Array.isArray(d.arp_ip_target) ? d.arp_ip_target.map(String) : []).sort(),
    lacpRate: d.mode === "802.3ad" ? (d.ad_lacp_rate ?? "slow") : null,
  };
}



function resolvConfServers(): string[] {
  try {
    return readFileSync("/etc/resolv.conf", "utf8")
      .split("\n")
      .map((l) => l.match(/^\s*nameserver\s+(\S+)/)?.[1])
      .filter((s): s is string => !!s);
  } catch {
    return [];
  }
}

export function configurators(runDir: string, nft: NftFirewall): Record<string, Configurator> {
  const fwdDir = join(runDir, "forwarding");
  return {
    bridge: {
      async create(i) {
        const name = i.id.slice(7);
        // nf_call_iptables: bridged IPv4 traffic passes the inet hooks, so ACLs also hold between apps on
        // one instance and on a Switch instance's L2 (set per bridge: the host's own bridges keep theirs).
        await ip("link", "add", name, "type", "bridge", "stp_state", "0", "forward_delay", "0", "nf_call_iptables", "1");
        await ip("link", "set", name, "mtu", String(i.attrs.mtu), "up");
      },
      async modify(i) {
        await ip("link", "set", i.id.slice(7), "mtu", String(i.attrs.mtu));
      },
      async delete(i) {
        await ip("link", "del", i.id.slice(7)).catch(ignoreMissing);
      },
    },
    addr: {
      async create(i) {
        const [, bridge, cidr] = i.id.split(":");
        await ip("addr", "replace", cidr!, "dev", bridge!);
      },
      async delete(i) {
        const [, bridge, cidr] = i.id.split(":");
        await ip("addr", "del", cidr!, "dev", bridge!).catch(ignoreMissing);
      },
    },
    port: {
      async create(i) {
        const ifname = i.id.slice(5);
        const addrs = (await ipJson(["addr", "show", "dev", ifname])).flatMap((a) => a.addr_info ?? []).filter((a: any) => a.family === "inet");
        if (addrs.length) {
          throw new Error(`port ${ifname} carries ${addrs.map((a: any) => `${a.local}/${a.prefixlen}`).join(", ")}: a Switch instance needs a port of its own (bridging it would cut the device's own traffic on it)`);
        }
        await ip("link", "set", ifname, "master", String(i.attrs.bridge), "up");
      },
      async modify(i) {
        await ip("link", "set", i.id.slice(5), "master", String(i.attrs.bridge), "up");
      },
      async delete(i) {
        await ip("link", "set", i.id.slice(5), "nomaster").catch(ignoreMissing);
      },
    },
    fwd: {
      async create(i) {
        const ifname = i.id.slice(4);
        const cur = readSysctl(`net/ipv4/conf/${ifname}/forwarding`);
        if (cur === null) throw new Error(`interface ${ifname} does not exist`);
        mkdirSync(fwdDir, { recursive: true });
        if (!existsSync(join(fwdDir, ifname))) writeFileSync(join(fwdDir, ifname), cur);
        if (cur !== "1") writeSysctl(`net/ipv4/conf/${ifname}/forwarding`, "1");
      },
      async delete(i) {
        const ifname = i.id.slice(4);
        const marker = join(fwdDir, ifname);
        const orig = existsSync(marker) ? readFileSync(marker, "utf8").trim() : "1";
        if (readSysctl(`net/ipv4/conf/${ifname}/forwarding`) !== null && orig !== "1") writeSysctl(`net/ipv4/conf/${ifname}/forwarding`, orig);
        rmSync(marker, { force: true });
      },
    },
    route: {
      async create(i) {
        const a = i.attrs as { table: number; subnet: string; bridge: string; uplink: string; via: string | null; connected: string[]; static?: string[] };
        const t = String(a.table);
        await sh(["ip", "route", "flush", "table", t]).catch(() => undefined);
        await ip("route", "replace", a.subnet, "dev", a.bridge, "table", t);
        for (const c of a.connected) await ip("route", "replace", c, "dev", a.uplink, "table", t);
        for (const r of a.static ?? []) {
          const [dst, , via] = r.split(" ");
          await ip("route", "replace", dst!, "via", via!, "dev", a.uplink, "table", t);
        }
        await ip("route", "replace", "default", ...(a.via ? ["via", a.via] : []), "dev", a.uplink, "table", t);
      },
      async modify(i) {
        await this.create(i);
      },
      async delete(i) {
        await sh(["ip", "route", "flush", "table", String(i.attrs.table)]).catch(() => undefined);
      },
    },
    rule: {
      async create(i) {
        await ip("rule", "add", "iif", String(i.attrs.iif), "lookup", String(i.attrs.table), "pref", String(RULE_PREF));
      },
      async delete(i) {
        await ip("rule", "del", "pref", String(RULE_PREF), "lookup", String(i.attrs.table)).catch(ignoreMissing);
      },
    },
    dnsmasq: {
      async create(i) {
        const { files, paths } = i.payload as { files: DnsmasqFiles; paths: DnsmasqPaths };
        await startDnsmasq(paths, files);
      },
      async modify(i, prev) {
        const { files, paths } = i.payload as { files: DnsmasqFiles; paths: DnsmasqPaths };
        if (prev.attrs.conf !== i.attrs.conf) await startDnsmasq(paths, files);
        else await reloadDnsmasqHosts(paths, files);
      },
      async delete(i) {
        await stopDnsmasq(dnsmasqPaths(runDir, i.id.slice(8)), true);
      },
    },
    bond: {
      async create(i) {
        const name = i.id.slice(5);
        if (!isL2LinkName(name)) throw new Error(`${name} is not a name evebox gives a bond`);
        await ip(...bondCreateArgv(name, i.attrs));
        await ip("link", "set", name, "alias", `evebox bond ${commentText(String((i.payload as { label?: string })?.label ?? ""))}`);
        await ip("link", "set", name, "up");
      },
      async delete(i) {
        await ip("link", "del", i.id.slice(5)).catch(ignoreMissing);
      },
    },
    bondmember: {
      async create(i) {
        const name = i.id.slice(11);
        const bond = String(i.attrs.bond);
        if (!isL2LinkName(bond)) throw new Error(`${bond} is not a bond of evebox's`);
        // A port is enslaved while down; it comes up as the bond's.
        await ip("link", "set", name, "down");
        await ip("link", "set", name, "master", bond);
        await ip("link", "set", name, "up");
      },
      async modify(i) {
        await this.create(i);
      },
      async delete(i) {
        await ip("link", "set", i.id.slice(11), "nomaster").catch(ignoreMissing);
      },
    },
    vlan: {
      async create(i) {
        const name = i.id.slice(5);
        if (!isL2LinkName(name)) throw new Error(`${name} is not a name evebox gives a VLAN sub-interface`);
        await ip("link", "set", String(i.attrs.parent), "up");
        await ip(...vlanCreateArgv(name, i.attrs));
        await ip("link", "set", name, "alias", `evebox vlan ${commentText(String((i.payload as { label?: string })?.label ?? ""))}`);
        await ip("link", "set", name, "up");
      },
      async delete(i) {
        await ip("link", "del", i.id.slice(5)).catch(ignoreMissing);
      },
    },
    dockeruser: {
      async create(i) {
        await acceptBridge(i.id.slice(11), i.payload as ForwardFacts);
      },
      async modify(i) {
        await acceptBridge(i.id.slice(11), i.payload as ForwardFacts);
      },
      async delete(i) {
        await releaseBridge(i.id.slice(11), i.payload as ForwardFacts);
      },
    },
    firewall: {
      async create(i) {
        await nft.apply(i.payload as CompiledFirewall);
      },
      async modify(i) {
        await nft.apply(i.payload as CompiledFirewall);
      },
      async delete() {
        await nft.remove();
      },
    },
  };
}

export const MODIFIABLE = new Set(["bridge", "port", "route", "dnsmasq", "firewall", "dockeruser", "bondmember"]);

function ignoreMissing(e: Error): void {
  if (/Cannot find device|No such|does not exist|Cannot assign requested address|No such process/i.test(e.message)) return;
  throw e;
}

/** The interfaces of one app in the model (for attach steps). */
export function interfacesOf(model: NetworkModel, appUuid: string): AppInterfaceSpec[] {
  return model.interfaces.filter((i) => i.appUuid === appUuid);
}
