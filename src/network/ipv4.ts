// IPv4 arithmetic on plain numbers (network instances are IPv4; config/net.ts parses both families).

export interface V4Net {
  addr: number;
  prefix: number;
}

export function v4(s: string): number | null {
  const m = s.match(/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/);
  if (!m) return null;
  const p = m.slice(1).map(Number);
  if (p.some((x) => x > 255)) return null;
  return ((p[0]! << 24) >>> 0) + (p[1]! << 16) + (p[2]! << 8) + p[3]!;
}

export function v4str(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

export function v4net(s: string): V4Net | null {
  const [a, l, extra] = s.split("/");
  if (extra !== undefined) return null;
  const addr = v4(a ?? "");
  const prefix = l === undefined ? 32 : Number(l);
  if (addr === null || !/^\d{1,2}$/.test(l ?? "32") || prefix > 32) return null;
  return { addr: (addr & mask(prefix)) >>> 0, prefix };
}

export function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function netStr(n: V4Net): string {
  return `${v4str(n.addr)}/${n.prefix}`;
}

export function first(n: V4Net): number {
  return n.addr >>> 0;
}

export function last(n: V4Net): number {
  return (n.addr | (~mask(n.prefix) >>> 0)) >>> 0;
}

export function inNet(n: V4Net, a: number): boolean {
  return ((a & mask(n.prefix)) >>> 0) === n.addr;
}

export function netsOverlap(a: V4Net, b: V4Net): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.addr & mask(p)) >>> 0) === ((b.addr & mask(p)) >>> 0);
}

export function maskStr(prefix: number): string {
  return v4str(mask(prefix));
}
