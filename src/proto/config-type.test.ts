import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { generateConfigDescriptor, loadProtoRoot } from "../../scripts/gen-proto.ts";
import { sampleConfig } from "../../tests/support/configs.ts";

const EDGE = "org.lfedge.eve.config.EdgeDevConfig";
const OPTS = { longs: String, enums: String, bytes: String, arrays: true, defaults: false } as const;

test("config-descriptor.gen.json is up to date with proto/", () => {
  expect(readFileSync(join(import.meta.dir, "config-descriptor.gen.json"), "utf8")).toBe(generateConfigDescriptor(loadProtoRoot()));
});

test("the config's types come from the config-only root until the whole root is built, then from it; same wire and JSON", async () => {
  // A module instance of its own (the query makes it one), so no other test has built its whole root yet.
  const fresh: string = "./index.ts?config-type-test";
  const proto = (await import(fresh)) as typeof import("./index.ts");
  const early = proto.configType(EDGE);
  expect(proto.configType(EDGE)).toBe(early);
  const doc = { ...sampleConfig(), configItems: [{ key: "timer.config.interval", value: "30" }], deviceIoList: [{ ptype: "PhyIoNetEth", phylabel: "eth0", logicallabel: "eth0", usage: "PhyIoUsageMgmtAndApps" }] };
  const early_bytes = early.encode(early.fromObject(doc)).finish();

  const whole = proto.protoRoot();
  const late = proto.configType(EDGE);
  expect(late).not.toBe(early);
  expect(late).toBe(proto.lookupType(EDGE));
  expect(late.root).toBe(whole);
  const late_bytes = late.encode(late.fromObject(doc)).finish();
  expect(Buffer.from(early_bytes).toString("hex")).toBe(Buffer.from(late_bytes).toString("hex"));
  expect(early.toObject(early.decode(late_bytes), OPTS)).toEqual(late.toObject(late.decode(early_bytes), OPTS));
  // Every type and enum the config reaches is there, with the same fields.
  for (const f of late.fieldsArray) expect(early.fields[f.name]!.id).toBe(f.id);
});
