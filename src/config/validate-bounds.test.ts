// The parts of validation that must stay cheap on big documents: host facts read once, overlaps in one sweep.
import { expect, test } from "bun:test";
import { validateConfig, type ValidationEnv } from "./validate.ts";

/** The bound (bounds.ts MAX_NETWORK_INSTANCES), as the README states it. */
const MAX_NETWORK_INSTANCES = 256;

const ni = (i: number, subnet: string) => ({
  uuidandversion: { uuid: `00000001-0000-4000-8000-${i.toString(16).padStart(12, "0")}`, version: "1" },
  displayname: `ni${i}`,
  instType: "ZnetInstLocal",
  ip: { subnet },
});
/** Distinct /30s: 10.0.0.0/30, 10.0.0.4/30, … */
const slash30 = (i: number) => `10.${(i >> 14) & 255}.${(i >> 6) & 255}.${(i & 63) * 4}/30`;

test("the device's own networks are read once per validation, not once per network instance", () => {
  let reads = 0;
  const env: ValidationEnv = { interfaceExists: () => null, hostNetworks: () => (reads++, ["192.0.2.0/24"]) };
  const problems = validateConfig({ networkInstances: Array.from({ length: 200 }, (_, i) => ni(i, slash30(i))) }, env);
  expect(problems).toEqual([]);
  expect(reads).toBe(1);
});

test(`more than ${MAX_NETWORK_INSTANCES} network instances are refused, naming the bound; overlaps are still found`, () => {
  const nis = Array.from({ length: 16_000 }, (_, i) => ni(i, slash30(i)));
  nis.push(ni(16_000, "10.0.0.0/24"));
  const problems = validateConfig({ networkInstances: nis }, { interfaceExists: () => null, hostNetworks: () => [] }).map((p) => `${p.path}: ${p.message}`);
  expect(problems[0]).toBe(`networkInstances: 16001 entries: at most ${MAX_NETWORK_INSTANCES}`);
  expect(problems).toContain("networkInstances[16000].ip.subnet: 10.0.0.0/24 overlaps 10.0.0.0/30 of networkInstances[0] (ni0)");
  expect(problems).toHaveLength(2);
});
