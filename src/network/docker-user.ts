// Next to a Docker engine that manages iptables: dockerd sets the `ip filter` FORWARD policy to DROP, and
// nftables runs every table's hooks, so the instances' forwarded traffic is dropped there whatever evebox's own
// tables accept. Docker's documented place for other software's rules is its DOCKER-USER chain (jumped to
// first from FORWARD): evebox adds two accept rules per bridge there (`-i <bridge>`, `-o <bridge>`, comment
// `evebox`), only where that policy would drop, and removes them with the bridge. What the instances may do is
// still decided by evebox's own tables; these rules only keep Docker's policy out of it.
import { existsSync, readFileSync } from "node:fs";
import { sh } from "./sys.ts";

export const COMMENT = "evebox";
const CHAIN = "DOCKER-USER";
const SEARCH = `${process.env.PATH ?? ""}:/usr/sbin:/sbin:/usr/bin:/bin`;

/** One iptables backend (nf_tables, or legacy when its tables are loaded too) and what it holds. */
export interface ForwardBackend {
  bin: string;
  /** The FORWARD chain's policy is DROP (or REJECT-like): forwarded traffic needs an accept. */
  drops: boolean;
  /** DOCKER-USER exists. */
  hasChain: boolean;
  /** Our rules in DOCKER-USER: bridge → the directions present (`i`, `o`). */
  rules: Map<string, Set<"i" | "o">>;
}

export interface ForwardFacts {
  backends: ForwardBackend[];
  /** Some backend's FORWARD policy drops: each bridge needs its accept rules. */
  drops: boolean;
  /** Why the rules cannot be made, when they are needed and cannot be (no iptables, no DOCKER-USER). */
  unable: string | null;
}

export const NO_FORWARD_FACTS: ForwardFacts = { backends: [], drops: false, unable: null };

function which(bin: string): string | null {
  return Bun.which(bin, { PATH: SEARCH }) ?? null;
}

/** `iptables -S` of the filter table, read into a backend. */
export function parseRules(bin: string, text: string): ForwardBackend {
  const b: ForwardBackend = { bin, drops: false, hasChain: false, rules: new Map() };
  for (const line of text.split("\n")) {
    const l = line.trim();
    if (/^-P FORWARD DROP\b/.test(l)) b.drops = true;
    else if (l === `-N ${CHAIN}`) b.hasChain = true;
    else if (l.startsWith(`-A ${CHAIN} `) && new RegExp(`-m comment --comment "?${COMMENT}"? `).test(`${l} `) && / -j ACCEPT$/.test(l)) {
      const m = / -([io]) (\S+)/.exec(l);
      if (!m) continue;
      const dir = m[1] as "i" | "o";
      b.rules.set(m[2]!, (b.rules.get(m[2]!) ?? new Set()).add(dir));
    }
  }
  return b;
}

/**
 * What the host's iptables hold: the backend `iptables` is (Docker uses the same binary), and legacy
 * iptables too when its filter table is loaded beside nf_tables (a policy there drops as well).
 * Reading never loads a module or creates a table.
 */
export async function observeForward(): Promise<ForwardFacts> {
  const bins: string[] = [];
  const main = which("iptables");
  if (main) bins.push(main);
  const legacy = which("iptables-legacy");
  if (legacy && main && !main.endsWith("-legacy") && legacyFilterLoaded()) {
    const version = await sh([main, "-V"]).catch(() => "");
    if (version.includes("nf_tables")) bins.push(legacy);
  }
  const backends: ForwardBackend[] = [];
  for (const bin of bins) {
    const text = await sh([bin, "-w", "5", "-t", "filter", "-S"]).catch(() => null);
    if (text !== null) backends.push(parseRules(bin, text));
  }
  let unable: string | null = null;
  let drops = backends.some((b) => b.drops);
  if (!main) {
    // No iptables: nobody's DOCKER-USER to write to; does something else's policy drop anyway?
    drops = await nftForwardDrops();
    if (drops) unable = "the host's ip filter FORWARD policy drops forwarded traffic and there is no iptables binary to add accept rules to Docker's DOCKER-USER chain with";
  } else {
    const stuck = backends.find((b) => b.drops && !b.hasChain);
    if (stuck) {
      unable = `the host's ip filter FORWARD policy (${stuck.bin}) drops forwarded traffic and there is no DOCKER-USER chain to accept this instance's traffic in (evebox adds rules only to Docker's DOCKER-USER chain; allow the instance's bridge in FORWARD, or run dockerd with iptables, which creates the chain)`;
    }
  }
  return { backends, drops, unable };
}

function legacyFilterLoaded(): boolean {
  try {
    return existsSync("/proc/net/ip_tables_names") && readFileSync("/proc/net/ip_tables_names", "utf8").split("\n").includes("filter");
  } catch {
    return false;
  }
}

async function nftForwardDrops(): Promise<boolean> {
  const nft = which("nft");
  if (!nft) return false;
  const out = await sh([nft, "-j", "list", "chain", "ip", "filter", "FORWARD"]).catch(() => null);
  if (!out) return false;
  try {
    return (JSON.parse(out).nftables ?? []).some((x: any) => x.chain?.name === "FORWARD" && x.chain?.policy === "drop");
  } catch {
    return false;
  }
}

/** Both rules of `bridge` in every backend whose policy drops (they go first in DOCKER-USER, before its RETURN). */
export async function acceptBridge(bridge: string, facts: ForwardFacts): Promise<void> {
  if (facts.unable) throw new Error(facts.unable);
  for (const b of facts.backends) {
    if (!b.drops) continue;
    for (const dir of ["i", "o"] as const) {
      const spec = ruleSpec(bridge, dir);
      const present = await sh([b.bin, "-w", "5", "-C", CHAIN, ...spec]).then(
        () => true,
        () => false,
      );
      if (!present) await sh([b.bin, "-w", "5", "-I", CHAIN, "1", ...spec]);
    }
  }
}

/** Every rule of ours for `bridge`, duplicates included, from every backend that has the chain. */
export async function releaseBridge(bridge: string, facts: ForwardFacts): Promise<void> {
  for (const b of facts.backends) {
    if (!b.hasChain) continue;
    for (const dir of ["i", "o"] as const) {
      for (let n = 0; n < 16; n++) {
        const gone = await sh([b.bin, "-w", "5", "-D", CHAIN, ...ruleSpec(bridge, dir)]).then(
          () => false,
          () => true,
        );
        if (gone) break;
      }
    }
  }
}

function ruleSpec(bridge: string, dir: "i" | "o"): string[] {
  return [`-${dir}`, bridge, "-m", "comment", "--comment", COMMENT, "-j", "ACCEPT"];
}

/** The bridges with rules of ours, and whether each has all it needs (both rules in every backend that drops). */
export function bridgesWithRules(facts: ForwardFacts): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (const b of facts.backends) for (const bridge of b.rules.keys()) out.set(bridge, true);
  for (const bridge of out.keys()) {
    out.set(
      bridge,
      facts.backends.every((b) => !b.drops || (b.rules.get(bridge)?.size ?? 0) === 2),
    );
  }
  return out;
}
