import { describe, expect, test } from "bun:test";
import { compileFirewall } from "./acl/compile.ts";
import { bridgesWithRules, type ForwardFacts, parseRules } from "./docker-user.ts";
import { planGraph } from "./graph.ts";
import { desiredItems, MODIFIABLE } from "./items.ts";
import { EMPTY_FACTS, networkModel } from "./model.ts";

const DOCKER = `-P INPUT ACCEPT
-P FORWARD DROP
-P OUTPUT ACCEPT
-N DOCKER
-N DOCKER-USER
-A FORWARD -j DOCKER-USER
-A DOCKER-USER -i eb0123456789ab -m comment --comment evebox -j ACCEPT
-A DOCKER-USER -o eb0123456789ab -m comment --comment evebox -j ACCEPT
-A DOCKER-USER -i ebffffffffffff -m comment --comment evebox -j ACCEPT
-A DOCKER-USER -i eb0123456789ab -m comment --comment "someone else" -j ACCEPT
-A DOCKER-USER -i eth1 -j ACCEPT
-A DOCKER-USER -j RETURN
`;

describe("DOCKER-USER rules", () => {
  test("iptables -S read: the policy, the chain, and only rules commented evebox, by bridge", () => {
    const b = parseRules("iptables", DOCKER);
    expect(b.drops).toBe(true);
    expect(b.hasChain).toBe(true);
    expect([...b.rules].map(([k, v]) => [k, [...v].sort()])).toEqual([
      ["eb0123456789ab", ["i", "o"]],
      ["ebffffffffffff", ["i"]],
    ]);
    const facts: ForwardFacts = { backends: [b], drops: true, unable: null };
    expect([...bridgesWithRules(facts)]).toEqual([
      ["eb0123456789ab", true],
      ["ebffffffffffff", false],
    ]);
    const plain = parseRules("iptables", "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n");
    expect(plain).toMatchObject({ drops: false, hasChain: false });
  });

  test("where FORWARD drops, each bridge gets a dockeruser item that its address, forwarding and port wait for", () => {
    const doc = {
      networkInstances: [
        { uuidandversion: { uuid: "8a000000-0000-4000-8000-000000000001", version: "1" }, displayname: "lan", instType: "ZnetInstLocal", activate: true, ip: { subnet: "198.18.90.0/24", gateway: "198.18.90.1", dhcpRange: { start: "198.18.90.10", end: "198.18.90.20" } } },
      ],
    };
    const model = networkModel(doc, [], EMPTY_FACTS, { subnets: {}, addrs: {} });
    const fw = compileFirewall(model.instances, model.interfaces);
    const bridge = model.instances[0]!.bridge;
    const none = desiredItems(model, fw, EMPTY_FACTS, "/tmp/x");
    expect(none.some((i) => i.type === "dockeruser")).toBe(false);
    const drops = desiredItems(model, fw, EMPTY_FACTS, "/tmp/x", { backends: [], drops: true, unable: null });
    const accept = drops.find((i) => i.type === "dockeruser")!;
    expect(accept).toMatchObject({ id: `dockeruser:${bridge}`, deps: [`bridge:${bridge}`] });
    expect(drops.find((i) => i.type === "addr")!.deps).toContain(accept.id);
    expect(drops.find((i) => i.id === `fwd:${bridge}`)!.deps).toContain(accept.id);
    // Created after the bridge and before the address; deleted when the bridge goes; a stale one (no bridge) goes.
    const ops = planGraph(drops, [], (t) => MODIFIABLE.has(t)).ops.map((o) => o.item.id);
    expect(ops.indexOf(accept.id)).toBeGreaterThan(ops.indexOf(`bridge:${bridge}`));
    expect(ops.indexOf(accept.id)).toBeLessThan(ops.findIndex((id) => id.startsWith("addr:")));
    const stale = { id: "dockeruser:eb0000dead0000", type: "dockeruser", deps: ["bridge:eb0000dead0000"], attrs: { complete: true } };
    expect(planGraph([], [stale], (t) => MODIFIABLE.has(t)).ops).toEqual([{ op: "delete", item: stale, reason: "not desired" }]);
  });
});
