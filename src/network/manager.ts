// The network part of the device: it turns the desired document into graph items, observes what exists,
// runs the graph operations the planner chose, attaches app interfaces, and answers for status, leases,
// per-rule counters and flow records. Created once by the composition root (device/app-runtime-build.ts).
import { mkdirSync } from "node:fs";
import type { ObjectProblem } from "../config/validate.ts";
import type { PartStatus } from "../model/status.ts";
import type { FlowMessage } from "../proto/index.ts";
import type { Store } from "../store/store.ts";
import { aceOfFlow, type CompiledFirewall, compileFirewall, setsOf } from "./acl/compile.ts";
import { defaultRunner } from "./acl/libnftables.ts";
import { type FirewallCounters, NftFirewall } from "./acl/nft.ts";
import { attachContainer, type AttachResult, createTap, detachLinks, dhcpInNamespace, type TapNic, updateContainerRoutes, vmNic } from "./attach.ts";
import { dnsmasqPaths, type Lease, readLeases } from "./dnsmasq.ts";
import { type ForwardFacts, NO_FORWARD_FACTS } from "./docker-user.ts";
import { FlowCollector } from "./flows.ts";
import { type GraphOp, type Item, type OpResult, runGraph } from "./graph.ts";
import { type Attachment, configurators, desiredItems, observe, type Observation } from "./items.ts";
import { deviceModel, type DeviceModel } from "../config/model.ts";
import { type Allocations, type AppInterfaceSpec, type HostFacts, networkModelOf, type NetworkModel } from "./model.ts";
import { readSysctl, writeSysctl } from "./sys.ts";

type Doc = Record<string, any>;

export interface DesiredNetwork {
  model: NetworkModel;
  firewall: CompiledFirewall;
  items: Item[];
}

export interface NetworkManagerOptions {
  /** `<data>/run/network`: dnsmasq files, lease and forwarding markers. */
  runDir: string;
  store: Store;
  log: (level: "info" | "warn" | "error", message: string) => void;
  /** The device's id for flow records (its UUID once a controller knows it). */
  devId?: () => string;
  /** How firewall transactions are loaded: libnftables in-process when it is there (the default), or the nft command. */
  nft?: "libnftables" | "cli";
  /** The port of the device's metadata server (src/metadata/): Local instances' 169.254.169.254:80 is sent there. */
  metadataPort?: number | null;
  /** Told at each desired network whether it has a Local instance (the metadata server listens only then). */
  onLocalInstances?: (any: boolean) => void;
  /**
   * The VLANs and bonds (evebox's names) the device's own ports stand on (init/ports.ts, as PID 1): they are
   * init's while it uses them, so this part neither observes nor makes, changes or removes them.
   */
  heldLinks?: () => readonly string[];
}

export interface AceCounter {
  index: number;
  key: string;
  id: number;
  name: string;
  action: string;
  dir: string;
  matches: { type: string; value: string }[];
  packets: number;
  bytes: number;
  /** limit ACEs: packets over the rate, dropped. */
  limitedPackets?: number;
  note?: string;
}

export interface InterfaceFirewall {
  appUuid: string;
  index: number;
  name: string;
  network: string;
  ifname: string;
  mac: string;
  ip: string | null;
  rules: AceCounter[];
  implicitDrop: { packets: number; bytes: number };
}

const ALLOC_KEY = "network.allocations";

/** A VLAN or bond evebox makes, as status shows it (GET /api/v1/networks → `ports`). */
export interface PortStatus {
  kind: "vlan" | "bond";
  label: string;
  ifname: string;
  /** UP, DOWN (the kernel's operstate), INIT (not made yet), ERROR (why in `error`). */
  state: string;
  operstate: string | null;
  error: string | null;
  parent?: string | null;
  vlanId?: number | null;
  mode?: string | null;
  activeMember?: string | null;
  members?: { ifname: string; operstate: string | null; enslaved: boolean; state: string | null }[];
}

/** An instance's routes for status: what its apps get, and what its own table holds beyond the port's networks. */
function routesView(ni: NetworkModel["instances"][number]): { dst: string; via: string; to: "apps" | "apps+table"; tableVia?: string | null }[] {
  const table = new Map(ni.routes.map((r) => [r.dst, r.via]));
  return [
    ...ni.propagated.map((r) => (table.has(r.dst) ? { dst: r.dst, via: r.via, to: "apps+table" as const, tableVia: table.get(r.dst) ?? null } : { dst: r.dst, via: r.via, to: "apps" as const })),
    ...(ni.appDefaultVia ? [{ dst: "0.0.0.0/0", via: ni.appDefaultVia, to: "apps" as const }] : []),
    ...(ni.hostDefaultVia ? [{ dst: "0.0.0.0/0", via: ni.gateway!, to: "apps+table" as const, tableVia: ni.hostDefaultVia }] : []),
  ];
}

/** What of the host's iptables the desired items depend on (not the rules themselves: those are observed). */
function forwardKey(f: ForwardFacts): string {
  return JSON.stringify([f.drops, f.unable, f.backends.map((b) => [b.bin, b.drops, b.hasChain])]);
}

export class NetworkManager {
  readonly nft: NftFirewall;
  private readonly flows = new FlowCollector();
  private readonly configurators;
  private last: DesiredNetwork | null = null;
  private cacheKey = "";
  private lastObservation: Observation | null = null;
  /** Errors of the last run, per item id. */
  private itemErrors = new Map<string, string>();
  /** Addresses a Switch instance's DHCP gave to container interfaces, and when to ask again. */
  private switchLeases = new Map<string, { ip: string | null; renewAt: number; pid: number; ifname: string }>();
  private renewTimer: ReturnType<typeof setInterval> | null = null;
  /** The routes set in each container interface this process attached (Local NIs), so a change reaches it. */
  private containerRoutes = new Map<string, { pid: number; ifname: string; routes: { dst: string; via: string }[]; defaultVia: string | null }>();
  private lastApply: { at: Date; ops: number; failed: number } | null = null;

  constructor(private readonly o: NetworkManagerOptions) {
    this.nft = new NftFirewall(["nft"], defaultRunner(o.nft));
    mkdirSync(o.runDir, { recursive: true, mode: 0o700 });
    this.configurators = configurators(o.runDir, this.nft);
  }

  start(): void {
    this.renewTimer ??= setInterval(() => void this.renewSwitchLeases().catch((e) => this.o.log("error", `network: DHCP renewals: ${(e as Error).message}`)), 30_000);
  }

  stop(): void {
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = null;
  }

  async observe(): Promise<Observation> {
    const observed = await observe(this.o.runDir, this.nft);
    const held = new Set(this.o.heldLinks?.() ?? []);
    if (held.size) {
      const holds = (i: Item) => ((i.type === "vlan" || i.type === "bond") && held.has(i.id.slice(i.type.length + 1))) || (i.type === "bondmember" && held.has(String(i.attrs.bond)));
      observed.items = observed.items.filter((i) => !holds(i));
    }
    this.lastObservation = observed;
    // A Switch-instance lease is renewed only while its veth exists (a stopped container took it along).
    const present = new Set(this.lastObservation.attachments.map((a) => a.ifname));
    for (const host of this.switchLeases.keys()) if (!present.has(host)) this.switchLeases.delete(host);
    return this.lastObservation;
  }

  allocations(): Allocations {
    try {
      return { subnets: {}, addrs: {}, ...JSON.parse(this.o.store.getSetting(ALLOC_KEY) ?? "{}") };
    } catch {
      return { subnets: {}, addrs: {} };
    }
  }

  /**
   * The desired network for a document (cached: the ACL compile is the costly part). `model`: the document's
   * device model when the caller has it (ConfigService.model()); else it is read from the document.
   */
  desired(doc: Doc | null, objectErrors: ObjectProblem[], facts: HostFacts, model?: DeviceModel | null): DesiredNetwork {
    const prev = this.allocations();
    // The cache key: JSON as the document holds it (an equal document written in another key order only
    // misses the cache). `stable()` here cost more than the compile it saves: ~30-60 ms for 10,000 ACEs.
    const forward = this.lastObservation?.forward ?? NO_FORWARD_FACTS;
    const held = [...(this.o.heldLinks?.() ?? [])].sort();
    const key = JSON.stringify([doc?.networkInstances ?? [], (doc?.apps ?? []).map((a: Doc) => [a.uuidandversion?.uuid, a.displayname, a.interfaces, a.volumeRefList]), doc?.deviceIoList, doc?.systemAdapterList, doc?.vlans, doc?.bonds, objectErrors.filter((p) => p.objectKind === "networkInstance" || p.objectKind === "app"), facts, prev, forwardKey(forward), held]);
    if (this.last && key === this.cacheKey) return this.last;
    const net = networkModelOf(model ?? (doc ? deviceModel(doc) : null), objectErrors, facts, prev);
    const firewall = compileFirewall(net.instances, net.interfaces, { metadataPort: this.o.metadataPort ?? null });
    const items = desiredItems(net, firewall, facts, this.o.runDir, forward, new Set(held));
    this.last = { model: net, firewall, items };
    // After a restart, the ruleset in the kernel is this one when its hash says so: adopt it, so that the
    // next change can be an element update rather than a full reload.
    const loaded = this.lastObservation?.items.find((i) => i.id === "firewall")?.attrs.hash;
    if (!this.nft.current() && loaded === firewall.hash) this.nft.adopt(firewall);
    this.cacheKey = key;
    this.o.onLocalInstances?.(net.instances.some((n) => !n.error && n.kind === "local"));
    return this.last;
  }

  current(): DesiredNetwork | null {
    return this.last;
  }

  /**
   * The app interface on a Local instance that holds this address (its reservation), or null. The bridge's
   * anti-spoofing lets an app port send with its own address only, so a source address names its app.
   */
  interfaceAt(ip: string): AppInterfaceSpec | null {
    return this.last?.model.interfaces.find((i) => i.niKind === "local" && i.ip === ip) ?? null;
  }

  async applyOps(ops: GraphOp[], desired: DesiredNetwork, current: Item[], signal?: AbortSignal): Promise<OpResult[]> {
    if (desired.model.instances.some((n) => !n.error && n.kind === "local")) this.enableConntrackAccounting();
    const results = await runGraph(ops, this.configurators, current, signal);
    for (const r of results) {
      if (r.error) this.itemErrors.set(r.op.item.id, r.error);
      else this.itemErrors.delete(r.op.item.id);
      if (r.error) this.o.log("warn", `network: ${r.op.op} ${r.op.item.id}: ${r.error}`);
    }
    // Items no longer desired carry no error.
    const ids = new Set(desired.items.map((i) => i.id));
    for (const id of [...this.itemErrors.keys()]) if (!ids.has(id)) this.itemErrors.delete(id);
    await this.syncContainerRoutes(desired);
    this.o.store.setSetting(ALLOC_KEY, JSON.stringify(desired.model.allocations));
    this.lastApply = { at: new Date(), ops: results.length, failed: results.filter((r) => r.error).length };
    return results;
  }

  /**
   * A running container keeps its interface across a config change: when its instance's routes changed (a
   * static route, propagate_connected_routes, a gateway app), they are changed in its namespace too, as a DHCP
   * client would on renewal. Only interfaces this process attached (it knows their namespace's pid).
   */
  private async syncContainerRoutes(desired: DesiredNetwork): Promise<void> {
    const present = new Set((this.lastObservation?.attachments ?? []).map((a) => a.ifname));
    for (const [host, cur] of this.containerRoutes) {
      const spec = desired.model.interfaces.find((i) => i.hostIfname === host);
      if (!spec || spec.niKind !== "local" || (this.lastObservation && !present.has(host))) {
        this.containerRoutes.delete(host);
        continue;
      }
      const key = (r: { dst: string; via: string }) => `${r.dst} ${r.via}`;
      const want = new Set(spec.routes.map(key));
      const had = new Set(cur.routes.map(key));
      if (spec.defaultVia === cur.defaultVia && want.size === had.size && [...want].every((k) => had.has(k))) continue;
      try {
        await updateContainerRoutes(cur.pid, cur.ifname, cur.routes, spec.routes, spec.index === 0 ? spec.defaultVia : cur.defaultVia);
        this.containerRoutes.set(host, { ...cur, routes: spec.routes, defaultVia: spec.index === 0 ? spec.defaultVia : cur.defaultVia });
        this.o.log("info", `network: routes of ${spec.appName} ${spec.name} changed: ${spec.routes.map(key).join(", ") || "none"}`);
      } catch (e) {
        this.o.log("warn", `network: changing the routes of ${spec.appName} ${spec.name}: ${(e as Error).message}`);
      }
    }
  }

  /** Flow byte counts (FlowRecord tx/rx) need conntrack accounting; timestamps give flow start times. */
  private enableConntrackAccounting(): void {
    for (const k of ["net/netfilter/nf_conntrack_acct", "net/netfilter/nf_conntrack_timestamp"]) {
      try {
        if (readSysctl(k) === "0") writeSysctl(k, "1");
      } catch {}
    }
  }

  async attachContainer(ifaces: AppInterfaceSpec[], pid: number, key: string): Promise<AttachResult[]> {
    const out: AttachResult[] = [];
    for (const i of ifaces) {
      const ni = this.last?.model.instances.find((n) => n.uuid === i.niUuid);
      const r = await attachContainer(i, pid, key, ni?.mtu ?? 1500, this.o.runDir);
      if (i.niKind === "switch") this.switchLeases.set(i.hostIfname, { ip: r.ip, renewAt: Date.now() + 10 * 60_000, pid, ifname: r.ifname });
      else this.containerRoutes.set(i.hostIfname, { pid, ifname: r.ifname, routes: i.routes, defaultVia: i.defaultVia });
      out.push(r);
    }
    return out;
  }

  async detach(ifnames: string[]): Promise<void> {
    for (const n of ifnames) this.switchLeases.delete(n);
    for (const n of ifnames) this.containerRoutes.delete(n);
    await detachLinks(ifnames);
  }

  /** Renews Switch-instance leases held for containers (udhcpc asks for the same address again). */
  private async renewSwitchLeases(): Promise<void> {
    const now = Date.now();
    for (const [host, l] of this.switchLeases) {
      if (l.renewAt > now) continue;
      try {
        const lease = await dhcpInNamespace(l.pid, l.ifname, this.o.runDir, host, l.ip ?? undefined);
        this.switchLeases.set(host, { ...l, ip: lease.ip, renewAt: now + Math.max(60, lease.leaseSec / 2) * 1000 });
      } catch (e) {
        this.switchLeases.set(host, { ...l, renewAt: now + 60_000 });
        if (!/No such file|does not exist|nsenter/.test((e as Error).message)) this.o.log("warn", `network: DHCP renewal for ${host}: ${(e as Error).message}`);
      }
    }
  }

  /** The NIC a VM gets on interface `index` of `appUuid`, or null when that interface is on no instance. */
  vmNic(appUuid: string, index: number): TapNic | null {
    const i = this.last?.model.interfaces.find((x) => x.appUuid === appUuid && x.index === index);
    return i ? vmNic(i) : null;
  }

  /** Creates the VM's tap on its instance's bridge (before QEMU starts), and returns its NIC. */
  async createTap(appUuid: string, index: number): Promise<TapNic> {
    const i = this.last?.model.interfaces.find((x) => x.appUuid === appUuid && x.index === index);
    if (!i) throw new Error(`app ${appUuid} has no interface ${index} on a network instance`);
    const ni = this.last!.model.instances.find((n) => n.uuid === i.niUuid);
    return createTap(i, ni?.mtu ?? 1500);
  }

  leases(niUuid: string): Lease[] {
    const ni = this.last?.model.instances.find((n) => n.uuid === niUuid);
    if (!ni || ni.kind !== "local") return [];
    return readLeases(dnsmasqPaths(this.o.runDir, ni.bridge));
  }

  /** Network-instance states for status, with EVE's names (INIT, ONLINE, ERROR). */
  instanceStates(desired: DesiredNetwork, obs: Observation | null): { uuid: string; name: string; state: string; error: string | null; data: Record<string, unknown> }[] {
    const have = new Set((obs?.items ?? []).map((i) => i.id));
    return desired.model.instances.map((ni) => {
      const mine = desired.items.filter((i) => i.id.includes(ni.bridge) || (ni.uplink && i.id === `port:${ni.uplink.ifname}`));
      const errors = mine.map((i) => this.itemErrors.get(i.id)).filter((e): e is string => !!e);
      const fwError = this.itemErrors.get("firewall");
      if (fwError) errors.push(`firewall: ${fwError}`);
      errors.push(...ni.routeErrors);
      // The VLAN or bond the instance is on, when it failed to be made.
      for (const l of desired.model.links) if (l.ifname === ni.uplink?.ifname) for (const e of this.linkErrors(l.kind, l.ifname)) errors.push(`port ${ni.uplink!.label}: ${e}`);
      const built = mine.every((i) => have.has(i.id));
      const apps = desired.model.interfaces.filter((i) => i.niUuid === ni.uuid);
      const data: Record<string, unknown> = {
        kind: ni.kind === "local" ? "Local" : "Switch",
        bridge: ni.bridge,
        subnet: ni.subnet,
        gateway: ni.gateway,
        dhcpRange: ni.dhcpRange,
        uplink: ni.uplink,
        mtu: ni.mtu,
        dnsServers: ni.dnsServers,
        flowlog: ni.flowlog,
        // The routes the instance's apps get (DHCP option 121, set on containers) and those of its own table.
        routes: ni.kind === "local" && ni.subnet ? routesView(ni) : [],
        interfaces: apps.map((i) => ({ app: i.appUuid, appName: i.appName, name: i.name, ifname: i.hostIfname, mac: i.mac, ip: i.ip ?? this.switchLeases.get(i.hostIfname)?.ip ?? null })),
      };
      const state = ni.error || errors.length ? "ERROR" : built ? "ONLINE" : "INIT";
      return { uuid: ni.uuid, name: ni.name, state, error: ni.error ?? (errors.length ? errors.join("; ") : null), data };
    });
  }

  async counters(): Promise<FirewallCounters> {
    return this.nft.counters();
  }

  /** Each app interface's rules with their hit counters (for the console's firewall editor). */
  async firewallOf(appUuid: string): Promise<InterfaceFirewall[]> {
    const d = this.last;
    if (!d) return [];
    const ifaces = d.model.interfaces.filter((i) => i.appUuid === appUuid);
    if (!ifaces.length) return [];
    const c = await this.counters();
    const byKey = new Map([...d.firewall.marks.values()].map((m) => [`${m.appUuid}/${m.index}/${m.aceKey}`, m]));
    const sets = setsOf(d.firewall);
    return ifaces.map((i) => {
      const seen = new Map<string, number>();
      const rules = i.acls.map((ace, n) => {
        const k = (seen.get(ace.key) ?? 0) + 1;
        seen.set(ace.key, k);
        const key = k > 1 ? `${ace.key}#${k}` : ace.key;
        const compiled = byKey.get(`${i.appUuid}/${i.index}/${key}`);
        const mark = compiled?.mark;
        // Its own rule's counter, plus its element's in each set that holds it.
        const hit = { packets: 0, bytes: 0 };
        for (const r of [mark !== undefined ? c.byMark.get(mark) : undefined, ...((compiled && sets.get(compiled)) ?? []).map((set) => c.bySet.get(set)?.get(compiled!.elemKey))]) {
          hit.packets += r?.packets ?? 0;
          hit.bytes += r?.bytes ?? 0;
        }
        const note = d.firewall.notes.find((x) => x.appUuid === i.appUuid && x.index === i.index && x.aceKey === key)?.note;
        return {
          index: n,
          key,
          id: ace.id,
          name: ace.name,
          action: ace.action.kind,
          dir: ace.dir,
          matches: ace.matches,
          packets: hit.packets,
          bytes: hit.bytes,
          ...(ace.action.kind === "limit" && mark !== undefined ? { limitedPackets: c.limitedByMark.get(mark)?.packets ?? 0 } : {}),
          ...(note ? { note } : {}),
        };
      });
      const slot = [...d.firewall.chains].filter(([, v]) => v.appUuid === i.appUuid && v.index === i.index).map(([k]) => k);
      const implicit = slot.reduce((a, ch) => ({ packets: a.packets + (c.implicitDrop.get(ch)?.packets ?? 0), bytes: a.bytes + (c.implicitDrop.get(ch)?.bytes ?? 0) }), { packets: 0, bytes: 0 });
      return { appUuid, index: i.index, name: i.name, network: i.niUuid, ifname: i.hostIfname, mac: i.mac, ip: i.ip ?? this.switchLeases.get(i.hostIfname)?.ip ?? null, rules, implicitDrop: implicit };
    });
  }

  /**
   * Flow records since the previous call, one FlowMessage per app interface (instances with
   * `disable_flowlog` are left out). The controller part sends them (POST …/flowlog).
   */
  async collectFlows(devId?: string): Promise<FlowMessage[]> {
    const d = this.last;
    if (!d) return [];
    const flowlog = new Map(d.model.instances.map((n) => [n.uuid, n.flowlog]));
    return this.flows.collect(
      devId ?? this.o.devId?.() ?? "",
      d.model.interfaces,
      (mark, flow) => aceOfFlow(d.firewall, mark, flow),
      (i) => i.ip ?? this.switchLeases.get(i.hostIfname)?.ip ?? null,
      (i) => flowlog.get(i.niUuid) !== false,
    );
  }

  part(): PartStatus {
    const d = this.last;
    if (!d || !d.model.instances.length) return { name: "network", state: "idle", detail: "no network instances" };
    const bad = d.model.instances.filter((n) => n.error).length + (this.itemErrors.size ? 1 : 0);
    const a = this.lastApply;
    return {
      name: "network",
      state: bad ? "degraded" : "ok",
      detail: `${d.model.instances.length} network instance(s), ${d.model.interfaces.length} app interface(s)${this.itemErrors.size ? `; ${this.itemErrors.size} item(s) failing: ${[...this.itemErrors].slice(0, 2).map(([k, v]) => `${k}: ${v}`).join("; ")}` : ""}${a ? `; last change ${a.at.toISOString()}` : ""}`,
    };
  }

  private linkErrors(kind: "vlan" | "bond", ifname: string): string[] {
    return [...this.itemErrors].filter(([id]) => id === `${kind}:${ifname}` || (kind === "bond" && this.last?.items.find((i) => i.id === id)?.attrs.bond === ifname)).map(([id, e]) => `${id}: ${e}`);
  }

  /**
   * The device's ports evebox makes: each VLAN sub-interface and bond of the config, with its host name, its
   * state (UP/DOWN as the kernel says; ERROR with the reason when it is not made) and, for a bond, its members.
   */
  ports(): PortStatus[] {
    const d = this.last;
    if (!d) return [];
    const links = new Map((this.lastObservation?.links ?? []).map((l) => [l.ifname, l]));
    return d.model.links.map((l) => {
      const seen = links.get(l.ifname);
      const errors = l.error ? [l.error] : this.linkErrors(l.kind, l.ifname);
      const state = errors.length ? "ERROR" : !seen ? "INIT" : seen.operstate === "UP" || seen.operstate === "UNKNOWN" ? "UP" : "DOWN";
      return {
        kind: l.kind,
        label: l.label,
        ifname: l.ifname,
        state,
        operstate: seen?.operstate ?? null,
        error: errors.length ? errors.join("; ") : null,
        ...(l.kind === "vlan"
          ? { parent: l.parent, vlanId: l.vlanId }
          : {
              mode: l.mode,
              activeMember: seen?.activeSlave ?? null,
              members: l.members.map((m) => ({ ifname: m, operstate: links.get(m)?.operstate ?? null, enslaved: links.get(m)?.master === l.ifname, state: links.get(m)?.slaveState ?? null })),
            }),
      };
    });
  }

  attachments(): Attachment[] {
    return this.lastObservation?.attachments ?? [];
  }
}
