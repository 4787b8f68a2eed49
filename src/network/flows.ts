// Flow records of the apps' traffic from conntrack, as EVE's FlowMessage (one per app interface). Every
// flow the firewall let through carries its deciding ACE in the conntrack mark, so a record names the ACE.
import type { FlowMessage, FlowRecord } from "../proto/index.ts";
// The enum alone: index.ts would load protobufjs and the descriptor with it (~22 ms, ~2 MiB) for one value.
import { ACLAction } from "../proto/types.gen.ts";
import type { MarkInfo } from "./acl/compile.ts";
import type { AppInterfaceSpec } from "./model.ts";
import { sh } from "./sys.ts";

export interface ConntrackEntry {
  id: string;
  proto: number;
  orig: { src: string; dst: string; sport: number; dport: number; packets: number; bytes: number };
  reply: { src: string; dst: string; sport: number; dport: number; packets: number; bytes: number };
  mark: number;
  /** Seconds since the flow began (needs nf_conntrack_timestamp). */
  ageSec: number | null;
}

/** Parses `conntrack -L -o extended,id` lines. */
export function parseConntrack(text: string): ConntrackEntry[] {
  const out: ConntrackEntry[] = [];
  for (const line of text.split("\n")) {
    const m = line.match(/^ipv4\s+\d+\s+(\S+)\s+(\d+)\s+/);
    if (!m) continue;
    const dirs: Record<string, string>[] = [{}, {}];
    let d = -1;
    const extra: Record<string, string> = {};
    for (const tok of line.split(/\s+/)) {
      const kv = tok.match(/^([a-z-]+)=(.*)$/);
      if (!kv) continue;
      if (kv[1] === "src") d++;
      if (d >= 0 && d < 2 && ["src", "dst", "sport", "dport", "packets", "bytes"].includes(kv[1]!) && dirs[d]![kv[1]!] === undefined) dirs[d]![kv[1]!] = kv[2]!;
      else extra[kv[1]!] = kv[2]!;
    }
    const side = (o: Record<string, string>) => ({
      src: o.src ?? "",
      dst: o.dst ?? "",
      sport: Number(o.sport ?? 0),
      dport: Number(o.dport ?? 0),
      packets: Number(o.packets ?? 0),
      bytes: Number(o.bytes ?? 0),
    });
    out.push({
      id: extra.id ?? `${line}`,
      proto: Number(m[2]),
      orig: side(dirs[0]!),
      reply: side(dirs[1]!),
      mark: Number(extra.mark ?? 0),
      ageSec: extra["delta-time"] !== undefined ? Number(extra["delta-time"]) : null,
    });
  }
  return out;
}

export async function readConntrack(): Promise<ConntrackEntry[]> {
  const out = await sh(["conntrack", "-L", "-f", "ipv4", "-o", "extended,id"], { okCodes: [1] }).catch(() => "");
  return parseConntrack(out);
}

interface Tracked {
  entry: ConntrackEntry;
  ace?: MarkInfo;
  firstSeen: number;
  lastSeen: number;
}

/**
 * Turns conntrack snapshots into flow records. Each collect() reports the flows that ended since the
 * previous one (with their last counters and an end time) and the flows still open (counters so far).
 */
export class FlowCollector {
  private tracked = new Map<string, Tracked>();

  constructor(private readonly read: () => Promise<ConntrackEntry[]> = readConntrack) {}

  async collect(devId: string, interfaces: AppInterfaceSpec[], resolve: (mark: number, flow: { src: string; dst: string; sport: number; dport: number; proto: number }) => MarkInfo | null, addressOf: (i: AppInterfaceSpec) => string | null, enabled: (i: AppInterfaceSpec) => boolean, now = Date.now()): Promise<FlowMessage[]> {
    const entries = await this.read();
    const seen = new Set<string>();
    const info = new Map<string, MarkInfo>();
    for (const e of entries) {
      const m = e.mark ? resolve(e.mark, { ...e.orig, proto: e.proto }) : null;
      if (!m) continue;
      info.set(e.id, m);
      seen.add(e.id);
      const t = this.tracked.get(e.id);
      if (t) {
        t.entry = e;
        t.lastSeen = now;
      } else this.tracked.set(e.id, { entry: e, firstSeen: e.ageSec !== null ? now - e.ageSec * 1000 : now, lastSeen: now });
    }
    const byIface = new Map<string, { iface: AppInterfaceSpec; flows: FlowRecord[] }>();
    const keyOf = (i: { appUuid: string; index: number }) => `${i.appUuid}/${i.index}`;
    const ifaces = new Map(interfaces.map((i) => [keyOf(i), i]));
    for (const [id, t] of this.tracked) {
      const ended = !seen.has(id);
      const ace = info.get(id) ?? t.ace;
      t.ace = ace;
      const iface = ace ? ifaces.get(keyOf(ace)) : undefined;
      if (ended) this.tracked.delete(id);
      if (!ace || !iface || !enabled(iface)) continue;
      const e = t.entry;
      const appIp = addressOf(iface);
      // Inbound: the flow was opened towards the app (its original destination is not the app's side).
      const inbound = appIp ? e.orig.src !== appIp : false;
      const rec: FlowRecord = {
        flow: { src: e.orig.src, srcPort: e.orig.sport, dest: e.orig.dst, destPort: e.orig.dport, protocol: e.proto },
        inbound,
        aclId: ace.aceId,
        aclName: ace.aceName,
        startTime: ts(t.firstSeen),
        ...(ended ? { endTime: ts(t.lastSeen) } : {}),
        txBytes: inbound ? e.reply.bytes : e.orig.bytes,
        txPkts: inbound ? e.reply.packets : e.orig.packets,
        rxBytes: inbound ? e.orig.bytes : e.reply.bytes,
        rxPkts: inbound ? e.orig.packets : e.reply.packets,
        action: ace.action === "drop" ? ACLAction.ActionDrop : ACLAction.ActionAccept,
      };
      const k = keyOf(iface);
      if (!byIface.has(k)) byIface.set(k, { iface, flows: [] });
      byIface.get(k)!.flows.push(rec);
    }
    return [...byIface.values()].map(({ iface, flows }) => ({
      devId,
      scope: { uuid: iface.appUuid, intf: iface.name, localIntf: iface.hostIfname, netInstUUID: iface.niUuid },
      flows,
      dnsReqs: [],
    }));
  }
}

function ts(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}
