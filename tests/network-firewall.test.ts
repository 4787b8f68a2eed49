// The firewall loader against the real kernel, in a namespace of its own: a full load, an element-only
// update, a refused transaction that leaves the previous ruleset whole, DNS-learned host addresses kept
// across a full reload, adoption by hash, and removal. The checks run inside the namespace (a script
// started with `ip netns exec`), since the test process itself stays in the host's.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./support/evebox.ts";
import { Netns } from "./support/netns.ts";

let ns: Netns;
let dir: string;

beforeAll(async () => {
  ns = await Netns.create("fw");
  dir = mkdtempSync(join(tmpdir(), "evebox-fw-"));
});

afterAll(async () => {
  await ns?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const SCRIPT = `
import { compileFirewall } from "${ROOT}/src/network/acl/compile.ts";
import { NftFirewall } from "${ROOT}/src/network/acl/nft.ts";
import { NftCommand } from "${ROOT}/src/network/acl/libnftables.ts";
import { networkModel } from "${ROOT}/src/network/model.ts";
import { sh } from "${ROOT}/src/network/sys.ts";

const NI = "5f000000-0000-4000-8000-000000000001";
const facts = { hostNetworks: [], interfaces: ["eth9"], defaultRouteIfname: null, resolvServers: [], gateways: {}, connected: {} };
const compile = (acls) => {
  const doc = { networkInstances: [{ uuidandversion: { uuid: NI }, instType: "ZnetInstLocal", port: { name: "eth9" }, ip: { subnet: "10.50.0.0/24" } }],
    apps: [{ uuidandversion: { uuid: "5f000000-0000-4000-8000-000000000010" }, displayname: "a", interfaces: [{ name: "eth0", networkId: NI, acls }] }] };
  const m = networkModel(doc, [], facts, { subnets: {}, addrs: {} });
  return compileFirewall(m.instances, m.interfaces);
};
const allow = (i) => ({ matches: [{ type: "ip", value: "10.9." + (i >> 8) + "." + (i & 255) }, { type: "protocol", value: "tcp" }, { type: "fport", value: "443" }] });
const out = {};
const list = async () => (await sh(["nft", "list", "ruleset"]));
const fw = new NftFirewall(["nft"], process.env.RUNNER === "cli" ? new NftCommand() : undefined);
out.runner = fw.runner.kind;

const a = compile([...Array.from({ length: 2000 }, (_, i) => allow(i)), { matches: [{ type: "host", value: "updates.example.com" }] }]);
out.first = (await fw.apply(a)).mode;
out.loadedHash = (await fw.loadedHash()) === a.hash;
// dnsmasq would add this address to the host set; a full reload must keep it.
const hostSet = [...a.hostSets.keys()][0];
await sh(["nft", "add", "element", "inet", "evebox", hostSet, "{ 192.0.2.77 }"]);

const b = compile([...Array.from({ length: 2000 }, (_, i) => allow(i)), allow(5000), { matches: [{ type: "host", value: "updates.example.com" }] }]);
const rb = await fw.apply(b);
out.oneMore = rb.mode + ":" + rb.changes;
out.hasNew = (await list()).includes("10.9.19.136 . tcp . 443");

// A transaction the kernel refuses (a rule jumping to a chain that does not exist) changes nothing.
const before = await list();
const broken = { ...compile([{ matches: [{ type: "ip", value: "10.1.1.1" }], actions: [{ drop: true }] }]) };
broken.text = broken.text.replace('counter drop comment "implicit drop"', 'jump no_such_chain');
broken.hash = "0000000000000000";
try {
  await fw.apply(broken);
  out.refused = false;
} catch (e) {
  out.refused = String(e.message).slice(0, 200);
}
out.unchanged = (await list()) === before;
out.stillB = (await fw.loadedHash()) === b.hash;

// A different skeleton: a full reload, in one transaction, keeping the DNS-learned address.
const c = compile([{ matches: [{ type: "ip", value: "10.1.1.1" }], actions: [{ drop: true }] }, allow(1), { matches: [{ type: "host", value: "updates.example.com" }] }]);
fw.forget();
out.full = (await fw.apply(c)).mode;
out.hostKept = (await sh(["nft", "list", "set", "inet", "evebox", hostSet])).includes("192.0.2.77");

// A restarted evebox adopts the loaded ruleset by its hash: no reload at all.
const again = new NftFirewall();
out.adopt = (await again.apply(c)).mode;

// Counters read back per set element and per rule.
const counters = await again.counters();
out.counterSets = counters.bySet.size;

await again.remove();
out.removed = !(await list()).includes("evebox");
console.log(JSON.stringify(out));
`;

for (const runner of ["libnftables", "cli"]) {
  test(`${runner}: full load, element update, refused transaction leaves the ruleset whole, host addresses kept, adoption, removal`, async () => {
    const script = join(dir, `fw-${runner}.ts`);
    writeFileSync(script, SCRIPT);
    const r = await ns.exec([process.execPath, script], { env: { RUNNER: runner, BUN_BE_BUN: "1" } });
    const out = JSON.parse(r.out.trim().split("\n").pop()!);
    expect(out.runner).toBe(runner === "cli" ? "nft" : "libnftables");
    expect(out.first).toBe("full");
    expect(out.loadedHash).toBe(true);
    expect(out.oneMore).toBe("elements:1");
    expect(out.hasNew).toBe(true);
    expect(out.refused).toMatch(/no_such_chain|No such file|Could not process/);
    expect(out.unchanged).toBe(true);
    expect(out.stillB).toBe(true);
    expect(out.full).toBe("full");
    expect(out.hostKept).toBe(true);
    expect(out.adopt).toBe("unchanged");
    expect(out.counterSets).toBeGreaterThan(0);
    expect(out.removed).toBe(true);
  }, 60_000);
}
