import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildDeviceModel } from "../config/model.ts";
import { assignAdapters } from "../hardware/assign.ts";
import { writeFakeSysfs } from "../hardware/fake-sysfs.ts";
import { readInventory } from "../hardware/inventory.ts";
import { decodeMessage, encodeMessage, PhyIoMemberUsage, PhyIoType, ZInfoTypes, type ZInfoMsg } from "../proto/index.ts";
import { hardwareInfo, zioBundle } from "./hardware-report.ts";

const root = mkdtempSync(join(tmpdir(), "evebox-hwreport-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
writeFakeSysfs(root); // USB, CAN, a GPU: the test machine has none of them
const inv = readInventory(root);
const APP = "7c000000-0000-4000-8000-000000000001";
const model = buildDeviceModel({
  datastores: [{ id: "7c000000-0000-4000-8000-000000000002", dType: "DsHttp", fqdn: "http://x/" }],
  contentInfo: [{ uuid: "7c000000-0000-4000-8000-000000000003", dsId: "7c000000-0000-4000-8000-000000000002", URL: "c", iformat: "CONTAINER" }],
  volumes: [{ uuid: "7c000000-0000-4000-8000-000000000004", origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: "7c000000-0000-4000-8000-000000000003" } }],
  deviceIoList: [
    { ptype: "PhyIoCOM", logicallabel: "COM1", assigngrp: "COM1", phyaddrs: { serial: "/dev/ttyS0" }, usage: "PhyIoUsageDedicated" },
    { ptype: "PhyIoNetEth", logicallabel: "eth0", assigngrp: "eth0", phyaddrs: { ifname: "eth0" }, usage: "PhyIoUsageMgmtOnly" },
    { ptype: "PhyIoUSB", logicallabel: "ghost", assigngrp: "USB9", phyaddrs: { usbaddr: "9:1" } },
  ],
  apps: [{ uuidandversion: { uuid: APP, version: "1" }, displayname: "reader", volumeRefList: [{ uuid: "7c000000-0000-4000-8000-000000000004" }], adapters: [{ type: "PhyIoCOM", name: "COM1" }] }],
}).model;
const at = { seconds: 1_700_000_000, nanos: 0 };

describe("the hardware as EVE reports it, through the project's protos", () => {
  test("ZInfoDevice.assignableAdapters: one ZioBundle per group with EVE's PhyIoType and usage numbers, its holder, a missing member as err", () => {
    const bundles = assignAdapters(model, inv).bundles.map((b) => zioBundle(b, at));
    const bytes = encodeMessage("org.lfedge.eve.info.ZInfoMsg", { ztype: ZInfoTypes.ZiDevice, devId: "d", dinfo: { assignableAdapters: bundles } } satisfies ZInfoMsg);
    const back = decodeMessage<ZInfoMsg>("org.lfedge.eve.info.ZInfoMsg", bytes);
    const got = back.dinfo!.assignableAdapters!;
    // (proto3: a default value is not on the wire, so it decodes as absent)
    expect(got.map((b) => [b.type, b.name, b.usage ?? 0, b.usedByAppUUID ?? "", b.usedByBaseOS ?? false])).toEqual([
      [PhyIoType.PhyIoCOM, "COM1", PhyIoMemberUsage.PhyIoUsageDedicated, APP, false],
      [PhyIoType.PhyIoNetEth, "eth0", PhyIoMemberUsage.PhyIoUsageMgmtOnly, "", true],
      [PhyIoType.PhyIoUSB, "USB9", PhyIoMemberUsage.PhyIoUsageNone, "", false],
    ]);
    // EVE's numbers, as lf-edge/eve-api has them (evecommon/devmodelcommon.proto).
    expect([PhyIoType.PhyIoCOM, PhyIoType.PhyIoUSB, PhyIoType.PhyIoNetEth, PhyIoType.PhyIoCAN, PhyIoMemberUsage.PhyIoUsageMgmtOnly]).toEqual([3, 2, 1, 15, 5]);
    expect(got[1]!.ioAddressList).toEqual([{ macAddress: "52:54:00:12:34:56" }]);
    expect(got[2]!.err!.description).toBe("USB device 9:1 is not on this host");
    // On the wire: ZInfoMsg.dinfo is field 3, ZInfoDevice.assignableAdapters field 15 (tag 0x7a).
    expect(bytes.includes(0x7a)).toBe(true);
  });

  test("ZInfoHardware.inventory: PCI with class and IOMMU group, USB with bus/port and its controller, serial ports, CAN", () => {
    const bytes = encodeMessage("org.lfedge.eve.info.ZInfoMsg", { ztype: ZInfoTypes.ZiHardware, devId: "d", hwinfo: hardwareInfo(inv) } satisfies ZInfoMsg);
    const h = decodeMessage<ZInfoMsg>("org.lfedge.eve.info.ZInfoMsg", bytes).hwinfo!.inventory!;
    expect(h.pciDevices!.find((p) => p.address?.device === 2 && !p.address.function)).toMatchObject({ vendorId: 0x8086, deviceId: 0x3e92, classId: 0x030000, driver: "i915", iommuGroup: "1" });
    expect(h.usbDevices!.map((u) => [u.busPort!.bus, u.busPort!.port, u.vendorId, u.productId])).toEqual([
      [1, "2", 0x0403, 0x6001],
      [1, "3", 0x0529, 0x0620],
    ]);
    expect(h.usbDevices![0]!.parent!.pciParent).toEqual({ device: 0x14 });
    expect(h.serialDevices!.map((s) => [s.devpath, s.ioportRange ?? ""])).toEqual([
      ["/dev/ttyS0", "0x3F8"],
      ["/dev/ttyUSB0", ""],
    ]);
    expect(h.serialDevices![1]!.parent!.usbParent).toEqual({ bus: 1, port: "2" });
    expect(h.canDevices!.map((c) => c.ifname)).toEqual(["can0", "vcan0"]);
  });
});
