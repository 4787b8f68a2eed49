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
