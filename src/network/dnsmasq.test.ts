import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dnsmasqPaths, readLeases } from "./dnsmasq.ts";

test("leases: read from dnsmasq's file; a line cut short is left out; the file caught empty mid-rewrite keeps the last leases", () => {
  const dir = mkdtempSync(join(tmpdir(), "evebox-leases-"));
  try {
    const p = dnsmasqPaths(dir, "eb0123456789ab");
    mkdirSync(p.dir, { recursive: true });
    writeFileSync(p.leases, "1800000000 02:00:00:00:00:01 198.51.100.10 web 01:02\n1800000000 02:00:00:00:00:02 198.51.100.11 * *\n1800000000 02:00");
    const first = readLeases(p);
    expect(first.map((l) => [l.mac, l.ip, l.hostname])).toEqual([["02:00:00:00:00:01", "198.51.100.10", "web"], ["02:00:00:00:00:02", "198.51.100.11", null]]);
    writeFileSync(p.leases, "");
    expect(readLeases(p)).toEqual(first);
    // Empty for longer than a rewrite takes: there are no leases.
    utimesSync(p.leases, new Date(Date.now() - 5000), new Date(Date.now() - 5000));
    expect(readLeases(p)).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
