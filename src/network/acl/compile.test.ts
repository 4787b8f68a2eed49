import { describe, expect, test } from "bun:test";
import { EMPTY_FACTS, networkModel } from "../model.ts";
import { elementDiff } from "./nft.ts";
import { aceOfFlow, compileFirewall, setsOf } from "./compile.ts";

const NI = "6a000000-0000-4000-8000-000000000001";
const SW = "6a000000-0000-4000-8000-000000000002";
const APP = "6a000000-0000-4000-8000-000000000010";
const FACTS = { ...EMPTY_FACTS, interfaces: ["eth0", "eth1"] };

function compile(acls: any[], niKind: "local" | "switch" = "local", metadataPort: number | null = null) {
  const doc = {
    networkInstances: [
      { uuidandversion: { uuid: NI }, instType: "ZnetInstLocal", port: { name: "eth0" }, ip: { subnet: "10.1.0.0/24", gateway: "10.1.0.1" } },
      { uuidandversion: { uuid: SW }, instType: "ZnetInstSwitch", port: { name: "eth1" } },
    ],
    apps: [{ uuidandversion: { uuid: APP }, displayname: "web", interfaces: [{ name: "eth0", networkId: niKind === "local" ? NI : SW, acls }] }],
  };
  const m = networkModel(doc, [], FACTS, { subnets: {}, addrs: {} });
  return compileFirewall(m.instances, m.interfaces, { metadataPort });
}

const chain = (text: string, suffix: "eg" | "in") => text.match(new RegExp(`chain a[0-9a-f]+_${suffix} \\{\\n([\\s\\S]*?)\\n  \\}`))![1]!.split("\n").map((l) => l.trim());
const allow = (ip: string, port?: number) => ({ matches: [{ type: "ip", value: ip }, ...(port ? [{ type: "protocol", value: "tcp" }, { type: "fport", value: String(port) }] : [])] });
const drop = (ip: string) => ({ matches: [{ type: "ip", value: ip }], actions: [{ drop: true }] });

describe("compileFirewall", () => {
  test("the metadata server: 169.254.169.254:80 of each Local instance sent to its gateway, let in only so", () => {
    const fw = compile([], "local", 8169);
    const nat = fw.text.match(/chain prerouting_nat \{\n([\s\S]*?)\n  \}/)![1]!;
    // One DNAT, for the Local instance's bridge only (the Switch instance has no gateway of the device).
    expect(nat.match(/dnat ip to 10\.1\.0\.1:8169/g)?.length).toBe(1);
    expect(nat).toMatch(/iifname "eb[0-9a-f]{12}" ip daddr 169\.254\.169\.254 tcp dport 80 dnat ip to 10\.1\.0\.1:8169/);
    const input = fw.text.match(/chain input \{\n([\s\S]*?)\n  \}/)![1]!.split("\n").map((l) => l.trim());
    // Accepted only from a Local bridge and only when DNATed from the metadata address; dropped from anywhere else
    // (the LAN, the uplink, a Switch instance), before the rule that accepts what does not come from a Local bridge.
    const accept = input.indexOf("iifname @local_bridges ct original ip daddr 169.254.169.254 tcp dport 8169 accept");
    const dropOthers = input.findIndex((l) => l.startsWith('iifname != "lo" tcp dport 8169 counter drop'));
    const nonLocal = input.indexOf("iifname != @local_bridges accept");
    const limit = input.indexOf("iifname @local_bridges tcp dport 8169 ct state new add @meta_conns { ip saddr ct count over 16 } counter drop");
    expect(limit).toBeGreaterThan(0);
    expect(accept).toBeGreaterThan(limit);
    expect(fw.text).toMatch(/set meta_conns \{\n\s+type ipv4_addr\n\s+flags dynamic\n\s+\}/);
    expect(dropOthers).toBeGreaterThan(accept);
    expect(nonLocal).toBeGreaterThan(dropOthers);
    // Without a server: nothing of it.
    expect(compile([], "local").text).not.toContain("169.254.169.254");
    expect(compile([], "local", 8169).hash).not.toBe(compile([], "local").hash);
  });

  test("is deterministic: same input, same text and hash", () => {
    const a = compile([allow("203.0.113.1", 80), drop("203.0.113.0/24")]);
    const b = compile([allow("203.0.113.1", 80), drop("203.0.113.0/24")]);
    expect(a.text).toBe(b.text);
    expect(a.hash).toBe(b.hash);
  });

  test("a compile that reuses the ACEs parsed before gives what a cold compile gives; a changed ACE is parsed anew", () => {
    const withId = (id: number, port: number, name = "") => ({ id, name, matches: [{ type: "ip", value: "203.0.113.9" }, { type: "protocol", value: "tcp" }, { type: "fport", value: String(port) }] });
    const next = [allow("203.0.113.1", 80), withId(7, 443, "tls"), allow("203.0.113.1", 80), drop("203.0.113.0/24"), withId(8, 22)];
    compile([allow("198.51.100.1")]); // nothing of `next` is cached now
    const cold = compile(next);
    compile([allow("203.0.113.1", 80), withId(7, 443, "tls"), withId(8, 23), allow("203.0.113.5")]);
    const warm = compile(next);
    expect(warm.hash).toBe(cold.hash);
    expect(warm.text).toBe(cold.text);
    const view = (fw: typeof cold) => {
      const sets = setsOf(fw);
      return [...fw.marks.values()].map((m) => [m.mark, m.aceKey, m.aceName, sets.get(m) ?? []]);
    };
    expect(view(warm)).toEqual(view(cold));
    expect(view(warm).some(([, , , sets]) => (sets as string[]).length > 0)).toBe(true);
    // The same id with other content, or another name: parsed anew.
    expect(compile([withId(7, 8443, "tls")]).text).toContain("8443");
    expect([...compile([withId(7, 8443, "https")]).marks.values()][0]!.aceName).toBe("https");
  });

  test("several apps: an unchanged interface's chains and sets are replayed (the same element maps), the result as a cold compile's", () => {
    const apps = (third: any[]) => {
      const doc = {
        networkInstances: [{ uuidandversion: { uuid: NI }, instType: "ZnetInstLocal", port: { name: "eth0" }, ip: { subnet: "10.1.0.0/24", gateway: "10.1.0.1" } }],
        apps: [0, 1, 2].map((n) => ({
          uuidandversion: { uuid: `6a000000-0000-4000-8000-00000000002${n}` },
          displayname: `app${n}`,
          interfaces: [{ name: "eth0", networkId: NI, acls: n === 2 ? third : [allow("203.0.113.1", 80 + n), drop("203.0.113.0/24"), { matches: [{ type: "host", value: `h${n}.test` }] }, allow("0.0.0.0/0")] }],
        })),
      };
      const m = networkModel(doc, [], FACTS, { subnets: {}, addrs: {} });
      return compileFirewall(m.instances, m.interfaces);
    };
    compile([allow("198.51.100.1")]); // nothing cached for these apps
    const cold = apps([allow("203.0.113.9", 443), allow("203.0.113.10", 443)]);
    compile([allow("198.51.100.1")]);
    const before = apps([allow("203.0.113.9", 443)]);
    const warm = apps([allow("203.0.113.9", 443), allow("203.0.113.10", 443)]);
    expect(warm.hash).toBe(cold.hash);
    expect(warm.text).toBe(cold.text);
    expect([...warm.groupMarks.keys()]).toEqual([...cold.groupMarks.keys()]);
    // The first two apps' sets are the very maps of the compile before; the third's are new.
    const shared = [...warm.maps].filter(([name, m]) => before.maps.get(name)?.elements === m.elements).map(([name]) => name);
    expect(shared.length).toBeGreaterThan(0);
    expect(elementDiff(before, warm).text).toMatch(/^add element inet evebox a\w+_eg_0ipf \{ 203\.0\.113\.10 \. 6 \. 443 \}$/m);
  });

  test("first match wins: runs of one verdict keep their order; ending in an implicit drop", () => {
    const eg = chain(compile([allow("203.0.113.1", 80), drop("203.0.113.0/24"), allow("0.0.0.0/0")]).text, "eg");
    expect(eg).toEqual([
      expect.stringMatching(/^ip daddr \. meta l4proto \. th dport @a\w+_eg_0ipf ct mark set \d+ return$/),
      expect.stringMatching(/^ip daddr @a\w+_eg_1i ct mark set \d+ drop$/),
      expect.stringMatching(/^ip daddr @a\w+_eg_2i ct mark set \d+ return$/),
      'counter drop comment "implicit drop"',
    ]);
  });

  test("10,000 ACEs of one verdict are one set lookup per direction", () => {
    const acls = Array.from({ length: 10_000 }, (_, i) => allow(`10.${(i >> 8) & 255}.${i & 255}.1`, 1000 + (i % 5000)));
    // How fast is measured in bench/ (a one-rule change among 10,000 ACEs), not asserted here.
    const c = compile(acls);
    expect(chain(c.text, "eg")).toHaveLength(2);
    const m = [...c.maps].find(([n]) => n.endsWith("_eg_0ipf"))![1];
    expect(m.elements.size).toBe(10_000);
    expect(c.marks.size).toBe(10_000);
    // Both directions use the one set.
    expect(chain(c.text, "in")[0]).toMatch(/^ip saddr \. meta l4proto \. th sport @a\w+_eg_0ipf ct mark set \d+ return$/);
  });

  test("overlapping CIDRs of one verdict go to separate maps (interval maps refuse overlaps)", () => {
    const c = compile([allow("10.0.0.0/8", 80), allow("10.1.0.0/16", 80), allow("10.1.2.3", 80), allow("192.168.0.0/16", 80)]);
    const maps = [...c.maps].filter(([n]) => /_eg_0ipf/.test(n)).map(([, m]) => [...m.elements.keys()]);
    expect(maps).toEqual([["10.0.0.0/8 . 6 . 80", "192.168.0.0/16 . 6 . 80"], ["10.1.0.0/16 . 6 . 80"], ["10.1.2.3 . 6 . 80"]]);
  });

  test("direction: an EGRESS ACE is not checked for incoming flows, an INGRESS one not for outgoing", () => {
    const c = compile([{ ...allow("203.0.113.5"), dir: "EGRESS" }, { ...allow("203.0.113.6"), dir: "INGRESS" }]);
    const egMaps = [...c.maps].filter(([n]) => n.includes("_eg_")).flatMap(([, m]) => [...m.elements.keys()]);
    const inMaps = [...c.maps].filter(([n]) => n.includes("_in_")).flatMap(([, m]) => [...m.elements.keys()]);
    expect(egMaps).toEqual(["203.0.113.5"]);
    expect(inMaps).toEqual(["203.0.113.6"]);
  });

  test("portmap: a DNAT from the uplink, and the app's ingress lets exactly that flow in", () => {
    const c = compile([{ matches: [{ type: "protocol", value: "tcp" }, { type: "lport", value: "8080" }], actions: [{ portmap: true, appPort: 80 }] }]);
    expect(c.text).toMatch(/iifname "eth0" meta l4proto 6 th dport 8080 dnat ip to 10\.1\.0\.\d+:80/);
    expect(chain(c.text, "in")[0]).toMatch(/^ct status dnat meta l4proto 6 ct original proto-dst 8080 th dport 80 ct mark set \d+ counter return$/);
    expect(chain(c.text, "eg")).toEqual(['counter drop comment "implicit drop"']);
  });

  test("limit: its own chain, applied to every packet of the flows it admitted", () => {
    const c = compile([{ matches: [{ type: "protocol", value: "icmp" }], actions: [{ limit: true, limitrate: 5, limitunit: "m", limitburst: 3 }] }]);
    const mark = [...c.marks.keys()][0];
    expect(c.text).toContain(`chain lim_${mark} {\n    limit rate over 5/minute burst 3 packets counter drop\n  }`);
    expect(c.text.match(new RegExp(`chain lim_${mark} `, "g"))).toHaveLength(1);
    expect([...c.maps.get("limited")!.elements]).toEqual([[String(mark), `jump lim_${mark}`]]);
  });

  test("host: a DNS-learned set, one per name", () => {
    const c = compile([{ matches: [{ type: "host", value: "Updates.Example.com." }, { type: "protocol", value: "tcp" }, { type: "fport", value: "443" }] }]);
    expect([...c.hostSets.values()]).toEqual(["updates.example.com"]);
    expect(chain(c.text, "eg")[0]).toMatch(/^meta l4proto 6 th dport 443 ip daddr @h_[0-9a-f]{12} ct mark set \d+ counter return$/);
  });

  test("what can never match is noted, not compiled", () => {
    const c = compile([allow("2001:db8::/32"), { matches: [{ type: "adapter", value: "wlan0" }] }]);
    expect(c.notes.map((n) => n.note)).toEqual([expect.stringContaining("not IPv4"), expect.stringContaining("adapter wlan0 is not the uplink")]);
    expect(chain(c.text, "eg")).toEqual(['counter drop comment "implicit drop"']);
  });

  test("a Switch instance's app is dispatched by MAC (its address comes from the uplink's DHCP)", () => {
    const c = compile([allow("203.0.113.0/24")], "switch");
    expect(c.maps.get("in_mac")!.elements.size).toBe(1);
    expect(c.maps.get("in_ip")!.elements.size).toBe(0);
    expect(c.maps.get("local_ports")!.elements.size).toBe(0);
  });

  test("one more ACE in a run changes elements only: the update is one element (its set serves both directions)", () => {
    const base = Array.from({ length: 100 }, (_, i) => allow(`10.0.${i}.1`, 80));
    const a = compile(base);
    const b = compile([...base.slice(0, 50), allow("10.9.9.9", 80), ...base.slice(50)]);
    expect(b.skeletonHash).toBe(a.skeletonHash);
    expect(b.hash).not.toBe(a.hash);
    const d = elementDiff(a, b);
    expect(d.changes).toBe(1);
    expect(d.text).toMatch(/^add element inet evebox a\w+_eg_0ipf \{ 10\.9\.9\.9 \. 6 \. 80 \}$/m);
    // A new verdict run changes the skeleton: that needs a full (still atomic) reload.
    expect(compile([...base, drop("10.0.0.0/8")]).skeletonHash).not.toBe(a.skeletonHash);
  });

  test("a flow marked by a set lookup is traced to the first member ACE it matches", () => {
    const c = compile([allow("203.0.113.0/24", 443), { ...allow("203.0.113.7", 443), id: 9, name: "api" }, allow("198.18.0.0/15")]);
    const mark = Number(chain(c.text, "eg")[0]!.match(/ct mark set (\d+)/)![1]);
    const flow = { src: "10.1.0.5", dst: "203.0.113.7", sport: 40000, dport: 443, proto: 6 };
    expect(aceOfFlow(c, mark, flow)?.elemKey).toBe("203.0.113.0/24 . 6 . 443");
    const m2 = Number(chain(c.text, "eg")[2]!.match(/ct mark set (\d+)/)![1]);
    expect(aceOfFlow(c, m2, { ...flow, dst: "198.19.1.1", proto: 17 })?.elemKey).toBe("198.18.0.0/15");
  });

  test("no instance: an empty firewall (the tables are removed)", () => {
    expect(compileFirewall([], []).empty).toBe(true);
  });
});
