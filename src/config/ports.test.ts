import { describe, expect, test } from "bun:test";
import { MAX_PORT_DEPTH, resolvePortLabel } from "./ports.ts";

describe("port labels", () => {
  const doc = {
    deviceIoList: [
      { logicallabel: "wan", phylabel: "Port 1", phyaddrs: { Ifname: "eth1" } },
      { logicallabel: "odd", phyaddrs: { IFNAME: "eth2" } },
    ],
    systemAdapterList: [{ name: "uplink-a", lowerLayerName: "wan" }, { name: "eth0" }],
  };

  test("a logical label, a system adapter through its lower layer, a physical label, a plain interface name", () => {
    expect(resolvePortLabel(doc, "wan")).toEqual({ kind: "ifname", ifname: "eth1", via: ["wan"] });
    expect(resolvePortLabel(doc, "uplink-a")).toEqual({ kind: "ifname", ifname: "eth1", via: ["uplink-a", "wan"] });
    expect(resolvePortLabel(doc, "Port 1")).toMatchObject({ kind: "ifname", ifname: "eth1" });
    expect(resolvePortLabel(doc, "odd")).toMatchObject({ kind: "ifname", ifname: "eth2" });
    expect(resolvePortLabel(doc, "eth0")).toMatchObject({ kind: "ifname", ifname: "eth0" });
    expect(resolvePortLabel(null, "eth3")).toMatchObject({ kind: "ifname", ifname: "eth3" });
  });

  test("the shared labels are left to the caller", () => {
    expect(resolvePortLabel(doc, "uplink")).toMatchObject({ kind: "shared", label: "uplink" });
    expect(resolvePortLabel(doc, "freeuplink")).toMatchObject({ kind: "shared", label: "freeuplink" });
  });

  test("cycles, chains past the bound, and names that are not interface names are errors with the field at fault", () => {
    const cyc = resolvePortLabel({ systemAdapterList: [{ name: "a", lowerLayerName: "b" }, { name: "b", lowerLayerName: "c" }, { name: "c", lowerLayerName: "a" }] }, "a");
    expect(cyc).toMatchObject({ kind: "error", path: "systemAdapterList[2].lowerLayerName" });
    expect((cyc as any).message).toBe("the port labels form a cycle: a → b → c → a");
    const chain = Array.from({ length: MAX_PORT_DEPTH + 1 }, (_, i) => ({ name: `p${i}`, lowerLayerName: `p${i + 1}` }));
    expect(resolvePortLabel({ systemAdapterList: chain }, "p0")).toMatchObject({ kind: "error" });
    expect(resolvePortLabel({ systemAdapterList: chain.slice(0, MAX_PORT_DEPTH - 1) }, "p0")).toMatchObject({ kind: "ifname", ifname: `p${MAX_PORT_DEPTH - 1}` });
    expect(resolvePortLabel({ deviceIoList: [{ logicallabel: "x", phyaddrs: { Ifname: "../../etc" } }] }, "x")).toMatchObject({ kind: "error", path: "deviceIoList[0].phyaddrs.Ifname" });
    expect(resolvePortLabel({}, "Port 1")).toMatchObject({ kind: "error", path: null });
    expect(resolvePortLabel({}, "")).toMatchObject({ kind: "error" });
  });
});
