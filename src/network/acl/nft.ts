// Loading a compiled firewall into the kernel, always as one `nft -f` transaction: either the whole of
// evebox's two tables replaced at once, or — when only set and map elements differ — just those elements
// added and deleted. nftables applies a transaction whole or not at all, so a refused load leaves the
// previous ruleset in place, untouched.
import { sh } from "../sys.ts";
import { type CompiledFirewall, TABLE } from "./compile.ts";
import { defaultRunner, type NftRunner } from "./libnftables.ts";

export interface ApplyResult {
  mode: "unchanged" | "elements" | "full" | "removed";
  ms: number;
  /** Elements added and deleted (mode "elements"). */
  changes?: number;
}

export interface RuleCounter {
  packets: number;
  bytes: number;
}

export interface FirewallCounters {
  /** ACEs checked by their own rule, by conntrack mark: new flows (and dropped packets) they decided. */
  byMark: Map<number, RuleCounter>;
  /** ACEs checked by set lookup: per set, per element key (as compile.ts writes keys). */
  bySet: Map<string, Map<string, RuleCounter>>;
  /** Packets over a limit ACE's rate, dropped. */
  limitedByMark: Map<number, RuleCounter>;
  /** Per app chain: flows no ACE allowed (the implicit drop). */
  implicitDrop: Map<string, RuleCounter>;
  /** Spoofed frames (wrong MAC or address) dropped at app ports. */
  spoofDrops: RuleCounter;
}

export class NftFirewall {
  /** What this process last loaded (or adopted); null: unknown, the next apply reads the kernel's. */
  private loaded: CompiledFirewall | null = null;
  /** When the kernel's ruleset was last seen to be `loaded`. */
  private checkedAt = 0;

  /** `nft` for reads (listing counters runs beside evebox, not in it); `runner` for transactions. */
  constructor(
    private readonly nft: string[] = ["nft"],
    readonly runner: NftRunner = defaultRunner(),
  ) {}

  /**
   * The hash of the ruleset in the kernel, as observed on every reconcile pass: what this process loaded, read
   * back from the kernel at most every `recheckMs` (listing builds nft's cache of every set element: ~50 ms
   * with 10,000 ACEs), so a table someone else removed is noticed within that time.
   */
  async observedHash(recheckMs = 30_000): Promise<string | null> {
    if (this.loaded && !this.loaded.empty && Date.now() - this.checkedAt < recheckMs) return this.loaded.hash;
    const h = await this.loadedHash();
    if (h && h === this.loaded?.hash) this.checkedAt = Date.now();
    return h;
  }

  /** The hash of the ruleset in the kernel (our `version` chain's comment), or null when none is loaded. */
  async loadedHash(): Promise<string | null> {
    // In-process when libnftables is there: this runs on every reconcile pass.
    const out = this.runner.list ? (this.runner.list(`list chain inet ${TABLE} version`) ?? "") : await sh([...this.nft, "list", "chain", "inet", TABLE, "version"], { okCodes: [1] }).catch(() => "");
    return out.match(/comment "evebox ([0-9a-f]+)"/)?.[1] ?? null;
  }

  current(): CompiledFirewall | null {
    return this.loaded;
  }

  async apply(next: CompiledFirewall): Promise<ApplyResult> {
    const t0 = performance.now();
    const ms = () => Math.round((performance.now() - t0) * 10) / 10;
    if (next.empty) {
      if (this.loaded?.empty) return { mode: "unchanged", ms: ms() };
      await this.remove();
      this.loaded = next;
      return { mode: "removed", ms: ms() };
    }
    if (!this.loaded || this.loaded.empty) {
      // After a restart: adopt what is loaded when it is exactly what is desired (counters, limits and
      // DNS-learned host sets stay as they are).
      if ((await this.loadedHash()) === next.hash) {
        this.loaded = next;
        this.checkedAt = Date.now();
        return { mode: "unchanged", ms: ms() };
      }
    } else if (this.loaded.hash === next.hash) return { mode: "unchanged", ms: ms() };

    if (this.loaded && !this.loaded.empty && this.loaded.skeletonHash === next.skeletonHash) {
      const { text, changes } = elementDiff(this.loaded, next);
      await this.load(text);
      this.loaded = next;
      this.checkedAt = Date.now();
      return { mode: "elements", ms: ms(), changes };
    }
    const carried = await this.hostSetElements(next);
    const text = [
      // Create-then-delete makes the delete valid whether or not the table exists; all in one transaction.
      `table inet ${TABLE} {}`,
      `delete table inet ${TABLE}`,
      `table bridge ${TABLE} {}`,
      `delete table bridge ${TABLE}`,
      next.text,
      ...[...carried].filter(([, els]) => els.length).map(([set, els]) => `add element inet ${TABLE} ${set} { ${els.join(", ")} }`),
      "",
    ].join("\n");
    await this.load(text);
    this.loaded = next;
    this.checkedAt = Date.now();
    return { mode: "full", ms: ms() };
  }

  async remove(): Promise<void> {
    await this.load(`table inet ${TABLE} {}\ndelete table inet ${TABLE}\ntable bridge ${TABLE} {}\ndelete table bridge ${TABLE}\n`);
    this.loaded = null;
  }

  /** The kernel holds `c` (its hash was read back): later changes can then be element updates. */
  adopt(c: CompiledFirewall): void {
    this.loaded = c;
    this.checkedAt = Date.now();
  }

  /** Forget what was loaded: the next apply reads the kernel's state again. */
  forget(): void {
    this.loaded = null;
    this.checkedAt = 0;
  }

  private async load(text: string): Promise<void> {
    await this.runner.run(text);
  }

  /** Addresses dnsmasq put into the host-name sets, kept across a full reload. */
  private async hostSetElements(next: CompiledFirewall): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const set of next.hostSets.keys()) {
      const json = await sh([...this.nft, "-j", "list", "set", "inet", TABLE, set], { okCodes: [1] }).catch(() => "");
      if (!json.trim().startsWith("{")) continue;
      const els: string[] = [];
      for (const o of JSON.parse(json).nftables ?? []) for (const e of o.set?.elem ?? []) if (typeof e === "string") els.push(e);
      out.set(set, els);
    }
    return out;
  }

  async counters(): Promise<FirewallCounters> {
    const c: FirewallCounters = { byMark: new Map(), bySet: new Map(), limitedByMark: new Map(), implicitDrop: new Map(), spoofDrops: { packets: 0, bytes: 0 } };
    const add = (m: Map<any, RuleCounter>, k: unknown, v: RuleCounter) => {
      const cur = m.get(k) ?? { packets: 0, bytes: 0 };
      m.set(k, { packets: cur.packets + v.packets, bytes: cur.bytes + v.bytes });
    };
    for (const family of ["inet", "bridge"]) {
      const json = await sh([...this.nft, "-j", "list", "table", family, TABLE], { okCodes: [1] }).catch(() => "");
      if (!json.trim().startsWith("{")) continue;
      for (const o of JSON.parse(json).nftables ?? []) {
        if (o.set && Array.isArray(o.set.elem)) {
          const types: string[] = Array.isArray(o.set.type) ? o.set.type : [o.set.type];
          const els = new Map<string, RuleCounter>();
          for (const e of o.set.elem) {
            const counter = e?.elem?.counter;
            if (counter) els.set(elementKey(e.elem.val, types), counter);
          }
          if (els.size) c.bySet.set(o.set.name, els);
        }
        const r = o.rule;
        if (!r) continue;
        const counter = r.expr.find((x: any) => x.counter)?.counter as RuleCounter | undefined;
        if (!counter) continue;
        const mark = r.expr.find((x: any) => x.mangle?.key?.ct?.key === "mark" && typeof x.mangle.value === "number")?.mangle.value;
        if (family === "bridge") c.spoofDrops = { packets: c.spoofDrops.packets + counter.packets, bytes: c.spoofDrops.bytes + counter.bytes };
        else if (typeof mark === "number") add(c.byMark, mark, counter);
        else if (r.chain.startsWith("lim_")) add(c.limitedByMark, Number(r.chain.slice(4)), counter);
        else if (r.comment === "implicit drop") add(c.implicitDrop, r.chain, counter);
      }
    }
    return c;
  }
}

const PROTO: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, sctp: 132, icmpv6: 58 };

/** An element as nft's JSON lists it, written the way compile.ts writes element keys. */
export function elementKey(val: any, types: string[]): string {
  const parts: any[] = val && typeof val === "object" && Array.isArray(val.concat) ? val.concat : [val];
  return parts
    .map((v, i) => {
      const t = types[i];
      if (v && typeof v === "object" && v.prefix) return `${v.prefix.addr}/${v.prefix.len}`;
      if (t === "inet_proto") return String(typeof v === "number" ? v : (PROTO[v] ?? v));
      if (t === "ifname") return JSON.stringify(String(v));
      return String(v);
    })
    .join(" . ");
}

/** The element changes from `prev` to `next` (same skeleton), as one nft transaction. */
export function elementDiff(prev: CompiledFirewall, next: CompiledFirewall): { text: string; changes: number } {
  const lines: string[] = [];
  let changes = 0;
  for (const [name, m] of next.maps) {
    const old = prev.maps.get(name)?.elements ?? new Map<string, string>();
    // An interface whose ACLs did not change hands over the very same element maps.
    if (old === m.elements) continue;
    const del: string[] = [];
    const add: string[] = [];
    for (const [k, v] of old) if (m.elements.get(k) !== v) del.push(k);
    for (const [k, v] of m.elements) if (old.get(k) !== v) add.push(v ? `${k} : ${v}` : k);
    if (del.length) lines.push(`delete element ${m.family} ${TABLE} ${name} { ${del.join(", ")} }`);
    if (add.length) lines.push(`add element ${m.family} ${TABLE} ${name} { ${add.join(", ")} }`);
    changes += del.length + add.length;
  }
  lines.push(`delete chain inet ${TABLE} version`, `add chain inet ${TABLE} version { comment ${JSON.stringify(`evebox ${next.hash}`)} ; }`, "");
  return { text: lines.join("\n"), changes };
}
