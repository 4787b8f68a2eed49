import { describe, expect, test } from "bun:test";
import { deviceModel } from "../src/config/model";
import { checkDoc, type HostView } from "./device-check";
import { appFieldProblems } from "./pages/app-form/build";
import { addNetworkInstance, emptyNetwork } from "./network-edit";
import { addContainerApp } from "./config-edit";
import type { ImportedImage } from "./images";
import { addVmApp, readVm, updateVmApp, type VmAppInput, vmStepDetails } from "./vm-edit";

const HOST: HostView = { memoryKiB: 2 * 1024 * 1024, networks: ["192.168.1.0/24"], ports: [{ name: "eth0", networks: ["192.168.1.0/24"], defaultRoute: true }] };
let n = 0;
const ids = () => `9c000000-0000-4000-8000-${String(++n).padStart(12, "0")}`;
const NI = "9c000000-0000-4000-8000-000000000999";
const base = () => addNetworkInstance(null, { ...emptyNetwork(), name: "lan", subnet: "10.9.0.0/24" }, NI);
const SHA = "a".repeat(64);
const input = (over: Partial<VmAppInput> = {}): VmAppInput => ({
  name: "vm1",
  source: { kind: "url", url: "http://10.0.0.5:8000/images/guest.qcow2", sha256: SHA, format: "QCOW2" },
  diskMiB: 512,
  firmware: "uefi",
  memoryMiB: 256,
  vcpus: 2,
  extraDisksMiB: [100],
  cloudInit: "#cloud-config\nhostname: vm1\n",
  vnc: true,
  startDelaySec: 5,
  interfaces: [{ networkId: NI, addr: "", mac: "", portMaps: [{ devicePort: "8022", appPort: "22", protocol: "tcp" }] }],
  ...over,
});

describe("VM apps", () => {
  test("a qcow2 VM is what the device reads as a VM: disk, firmware, cloud-init, VNC, delay, a port map", () => {
    const doc = addVmApp(base(), input(), ids);
    expect(checkDoc(doc, HOST)).toEqual([]);
    const app = deviceModel(doc).apps[0]!;
    expect(app.kind).toBe("vm");
    expect(app.resources).toMatchObject({ memoryKiB: 256 * 1024, vcpus: 2, virtualizationMode: "FML", remoteConsole: true });
    expect(app.userData.text).toBe("#cloud-config\nhostname: vm1\n");
    expect(app.startDelaySec).toBe(5);
    expect(app.volumeRefs).toHaveLength(2);
    expect(app.interfaces[0]!.acls.map((a) => a.action.kind)).toEqual(["portmap", "allow"]);
    expect(readVm(doc, app.uuid)).toMatchObject({ firmware: "uefi", vnc: true, startDelaySec: 5, iso: false, extraDisks: [{ sizeMiB: 100 }], interfaces: [{ portMaps: [{ devicePort: "8022", appPort: "22", protocol: "tcp" }] }] });
  });

  test("an ISO is the installer CD, followed by a blank disk of the chosen size", () => {
    const doc = addVmApp(base(), input({ source: { kind: "url", url: "http://10.0.0.5/debian.iso", sha256: SHA, format: "ISO" }, diskMiB: 4096, extraDisksMiB: [] }), ids);
    const m = deviceModel(doc);
    const vols = m.apps[0]!.volumeRefs.map((r) => m.volumes.find((v) => v.uuid === r.uuid)!);
    expect(vols.map((v) => [v.origin, v.sizeBytes])).toEqual([["download", 0], ["blank", 4096 * 1024 * 1024]]);
    expect(readVm(doc, m.apps[0]!.uuid)?.iso).toBe(true);
  });

  test("memory above the device's, an address outside the subnet and a device port mapped twice are the device's problems at their fields", () => {
    let doc = addVmApp(base(), input({ name: "a" }), ids);
    doc = addVmApp(doc, input({ name: "b", memoryMiB: 4096, interfaces: [{ networkId: NI, addr: "10.8.0.5", mac: "", portMaps: [{ devicePort: "8022", appPort: "22", protocol: "tcp" }] }] }), ids);
    const uuid = doc.apps[1].uuidandversion.uuid;
    const fields = appFieldProblems(doc, uuid, checkDoc(doc, HOST), "vm").map((p) => p.field);
    expect(fields.sort()).toEqual(["interfaces.0.addr", "interfaces.0.portMaps.0.devicePort", "memory"]);
  });

  test("a change keeps the firewall editor's rules, and the plan says what restarts the VM", () => {
    const doc = addVmApp(base(), input(), ids);
    const uuid = doc.apps[0].uuidandversion.uuid;
    doc.apps[0].interfaces[0].acls.push({ id: 9, name: "mine", matches: [{ type: "ip", value: "10.0.0.0/8" }], actions: [{ drop: true }] });
    const delayOnly = updateVmApp(doc, uuid, { startDelaySec: 30 });
    expect(vmStepDetails({ kind: "app", action: "change", id: uuid }, doc, delayOnly)).toEqual(["start delay 5 s → 30 s", "applied without restarting the VM"]);
    const more = updateVmApp(doc, uuid, { memoryMiB: 512, interfaces: [{ networkId: NI, addr: "", mac: "", portMaps: [] }] });
    expect(more.apps[0].interfaces[0].acls.map((a: any) => a.name)).toEqual(["allow all", "mine"]);
    expect(vmStepDetails({ kind: "app", action: "change", id: uuid }, doc, more)).toEqual(["the VM is restarted to apply its new memory"]);
  });
});

describe("apps from images uploaded to the device", () => {
  const uploaded: ImportedImage = { sha256: "d".repeat(64), name: "guest", size: 1 << 20, format: "qcow2", kind: "disk", eveFormat: "QCOW2", virtualSize: 64 << 20, container: null, importedAt: "2026-12-03T10:00:00.000Z", usedBy: { contentTrees: [], apps: [] } };

  test("a VM from an uploaded qcow2 boots from a content tree naming it by sha256, which the device accepts", () => {
    const doc = addVmApp(base(), input({ source: { kind: "imported", image: { ...uploaded } } }), ids);
    expect(checkDoc(doc, HOST)).toEqual([]);
    const m = deviceModel(doc);
    const tree = m.contentTrees.find((t) => t.uuid === m.apps[0]!.imageContentTree)!;
    expect([tree.format, tree.sha256]).toEqual(["QCOW2", "d".repeat(64)]);
    // The same image for a second VM is the same content tree.
    const two = addVmApp(doc, input({ name: "vm2", source: { kind: "imported", image: { ...uploaded } }, interfaces: [] }), ids);
    expect(two.contentInfo).toHaveLength(1);
  });

  test("a container from an uploaded tarball", () => {
    const tarball: ImportedImage = { ...uploaded, sha256: "e".repeat(64), kind: "container", format: "docker-archive", eveFormat: "CONTAINER" };
    const doc = addContainerApp(base(), { name: "web", source: { kind: "imported", image: { ...tarball } }, memoryMiB: 64, vcpus: 1, env: [], volumes: [] }, { newId: ids });
    expect(checkDoc(doc, HOST)).toEqual([]);
    expect(deviceModel(doc).apps[0]!.kind).toBe("container");
  });
});
