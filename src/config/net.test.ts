import { expect, test } from "bun:test";
import { contains, earliestOverlaps, hasHostBits, overlaps, parseCidr, parseIp } from "./net.ts";

test("IPv4 and IPv6 parsing", () => {
  expect(parseIp("10.1.2.3")?.addr).toBe(0x0a010203n);
  expect(parseIp("256.1.1.1")).toBeNull();
  expect(parseIp("01.1.1.1")).toBeNull();
  expect(parseIp("1.2.3")).toBeNull();
  expect(parseIp("::1")?.addr).toBe(1n);
  expect(parseIp("fe80::1:2")?.family).toBe(6);
  expect(parseIp("::ffff:10.0.0.1")?.addr).toBe(0xffff0a000001n);
  expect(parseIp("1::2::3")).toBeNull();
  expect(parseIp("12345::")).toBeNull();
  expect(parseIp("hello")).toBeNull();
});

test("CIDR parsing, containment and overlap", () => {
  expect(parseCidr("10.0.0.0/33")).toBeNull();
  expect(parseCidr("10.0.0.0")).toBeNull();
  expect(parseCidr("10.0.0.0/24/1")).toBeNull();
  const a = parseCidr("10.1.0.0/16")!;
  const b = parseCidr("10.1.2.0/24")!;
  const c = parseCidr("10.2.0.0/24")!;
  expect(overlaps(a, b)).toBe(true);
  expect(overlaps(b, c)).toBe(false);
  expect(contains(b, parseIp("10.1.2.200")!)).toBe(true);
  expect(contains(b, parseIp("10.1.3.1")!)).toBe(false);
  expect(hasHostBits(parseCidr("10.1.2.1/24")!)).toBe(true);
  expect(hasHostBits(b)).toBe(false);
  expect(overlaps(parseCidr("fd00::/64")!, parseCidr("fd00::1/128")!)).toBe(true);
});

test("earliestOverlaps names, for each subnet, the earliest one before or inside or around it, as comparing all pairs does", () => {
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 200; round++) {
    const subnets = Array.from({ length: 1 + rnd(40) }, () => {
      if (rnd(10) === 0) return null;
      if (rnd(4) === 0) return parseCidr(`fd00:${rnd(4)}::/${32 + rnd(3) * 16}`);
      return parseCidr(`10.${rnd(3)}.${rnd(4)}.${rnd(4) * 64}/${[16, 22, 24, 26, 30][rnd(5)]}`);
    });
    const brute = subnets.map((s, i) => (s ? subnets.findIndex((o, j) => j < i && o && overlaps(s, o)) : -1));
    expect(earliestOverlaps(subnets)).toEqual(brute);
  }
});
