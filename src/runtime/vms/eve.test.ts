import { describe, expect, test } from "bun:test";
import { decodeUserData, diskFormatOfContentTree, firmwareModeOf, vmResourcesOf } from "./eve.ts";

describe("EVE fields to VmSpec parts", () => {
  test("content tree formats, by name or number", () => {
    expect(diskFormatOfContentTree("QCOW2")).toEqual({ format: "qcow2", cdrom: false });
    expect(diskFormatOfContentTree(3)).toEqual({ format: "qcow2", cdrom: false });
    expect(diskFormatOfContentTree("RAW")).toEqual({ format: "raw", cdrom: false });
    expect(diskFormatOfContentTree("VHD")).toEqual({ format: "vpc", cdrom: false });
    expect(diskFormatOfContentTree("VMDK")).toEqual({ format: "vmdk", cdrom: false });
    expect(diskFormatOfContentTree("VHDX")).toEqual({ format: "vhdx", cdrom: false });
    expect(diskFormatOfContentTree("ISO")).toEqual({ format: "raw", cdrom: true });
    expect(diskFormatOfContentTree("CONTAINER")).toBeNull();
    expect(diskFormatOfContentTree("OVA")).toBeNull();
  });

  test("FML is UEFI, everything else legacy BIOS", () => {
    expect(firmwareModeOf("FML")).toBe("uefi");
    expect(firmwareModeOf(3)).toBe("uefi");
    expect(firmwareModeOf("HVM")).toBe("legacy-bios");
    expect(firmwareModeOf(undefined)).toBe("legacy-bios");
  });

  test("user-data: base64 as EVE sends it, or plain text", () => {
    const cfg = "#cloud-config\nhostname: edge\n";
    expect(decodeUserData(Buffer.from(cfg).toString("base64"))).toBe(cfg);
    expect(decodeUserData(cfg)).toBe(cfg);
    expect(decodeUserData("abcd")).toBe("abcd"); // valid base64, but decodes to bytes that are not text
    expect(decodeUserData("")).toBeUndefined();
  });

  test("fixedresources: memory in KiB, vCPUs, mode, remote console", () => {
    expect(vmResourcesOf({ memory: 524288, vcpus: 2, virtualizationMode: "FML" }, false)).toEqual({
      memoryKiB: 524288,
      vcpus: 2,
      mode: "uefi",
      remoteConsole: false,
    });
    expect(vmResourcesOf({ memory: 131072, enableVnc: true })).toMatchObject({ vcpus: 1, mode: "legacy-bios", remoteConsole: true });
  });
});
