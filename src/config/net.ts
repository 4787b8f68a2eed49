// Small IPv4/IPv6 helpers for validating subnets and addresses in configs.

export interface Cidr {
  family: 4 | 6;
  addr: bigint;
  prefix: number;
}

export function parseIp(s: string): { family: 4 | 6; addr: bigint } | null {
  const v4 = s.match(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/);
  if (v4) {
    const parts = v4.slice(1).map(Number);
    if (parts.some((p, i) => p > 255 || (v4[i + 1]!.length > 1 && v4[i + 1]!.startsWith("0")))) return null;
    return { family: 4, addr: parts.reduce((a, p) => (a << 8n) | BigInt(p), 0n) };
  }
  if (!s.includes(":") || !/^[0-9a-fA-F:.]+$/.test(s)) return null;
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const groups = (h: string) => (h === "" ? [] : h.split(":"));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups.
  const last = (tail.length ? tail : head).at(-1);
  let v4tail: bigint | null = null;
  if (last?.includes(".")) {
    const p = parseIp(last);
    if (!p || p.family !== 4) return null;
    v4tail = p.addr;
    (tail.length ? tail : head).pop();
  }
  const need = 8 - (v4tail !== null ? 2 : 0);
  const have = head.length + tail.length;
  if ((halves.length === 1 && have !== need) || have > need) return null;
  const all = [...head, ...Array(need - have).fill("0"), ...tail];
  let addr = 0n;
  for (const g of all) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    addr = (addr << 16n) | BigInt(parseInt(g, 16));
  }
  if (v4tail !== null) addr = (addr << 32n) | v4tail;
  return { family: 6, addr };
}

export function parseCidr(s: string): Cidr | null {
  const [ip, len, extra] = s.split("/");
  if (extra !== undefined || len === undefined || !/^\d{1,3}$/.test(len)) return null;
  const p = parseIp(ip!);
  if (!p) return null;
  const prefix = Number(len);
  if (prefix > (p.family === 4 ? 32 : 128)) return null;
  return { ...p, prefix };
}

function bits(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

export function networkOf(c: Cidr): bigint {
  const shift = BigInt(bits(c.family) - c.prefix);
  return (c.addr >> shift) << shift;
}

/** True when the address has host bits set (e.g. 10.0.0.1/24 rather than 10.0.0.0/24). */
export function hasHostBits(c: Cidr): boolean {
  return networkOf(c) !== c.addr;
}

export function contains(c: Cidr, ip: { family: 4 | 6; addr: bigint }): boolean {
  if (c.family !== ip.family) return false;
  const shift = BigInt(bits(c.family) - c.prefix);
  return ip.addr >> shift === c.addr >> shift;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const prefix = Math.min(a.prefix, b.prefix);
  const shift = BigInt(bits(a.family) - prefix);
  return a.addr >> shift === b.addr >> shift;
}

/** The first and last address of a CIDR. */
export function rangeOf(c: Cidr): { start: bigint; end: bigint } {
  const start = networkOf(c);
  return { start, end: start | ((1n << BigInt(bits(c.family) - c.prefix)) - 1n) };
}

/**
 * For each subnet that overlaps one listed before it, the earliest such one: `earlier[i]` is that index,
 * or -1. Two CIDRs overlap only when one contains the other, so a sort by start (widest first) and one sweep
 * with a stack of the subnets containing the current one finds, for each, the earliest of its containers and
 * of what it contains: O(n log n) where comparing all pairs took 20 s for 16,000 subnets.
 */
export function earliestOverlaps(subnets: (Cidr | null)[]): number[] {
  const earlier = subnets.map(() => -1);
  const order = subnets
    .map((c, i) => (c ? { i, family: c.family, ...rangeOf(c) } : null))
    .filter((x): x is { i: number; family: 4 | 6; start: bigint; end: bigint } => !!x)
    .sort((a, b) => a.family - b.family || cmp(a.start, b.start) || cmp(b.end, a.end) || a.i - b.i);
  // Each stack entry contains the next; `min` is the earliest index along the chain up to and including it,
  // `below` the earliest index among what it contains (known once it is popped).
  type Entry = { i: number; family: number; end: bigint; min: number; below: number };
  const stack: Entry[] = [];
  const settle = (e: Entry, above: number) => {
    const best = Math.min(above, e.below);
    if (best < e.i) earlier[e.i] = best;
    const parent = stack.at(-1);
    if (parent) parent.below = Math.min(parent.below, e.i, e.below);
  };
  const above: number[] = []; // the earliest container's index of each stacked entry, parallel to stack
  for (const s of order) {
    while (stack.length && (stack.at(-1)!.family !== s.family || stack.at(-1)!.end < s.start)) {
      const e = stack.pop()!;
      settle(e, above.pop()!);
    }
    const top = stack.at(-1);
    const up = top ? top.min : Infinity;
    stack.push({ i: s.i, family: s.family, end: s.end, min: Math.min(up, s.i), below: Infinity });
    above.push(up);
  }
  while (stack.length) settle(stack.pop()!, above.pop()!);
  return earlier;
}

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
