import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative } from "node:path";
import { writeFakeSysfs } from "./fake-sysfs.ts";
import { bindToVfio, currentDriver, releaseFromVfio, type SysfsWrite } from "./vfio.ts";

// A fake sysfs tree (this machine has no IOMMU) with a fake kernel: the writes are recorded in order, and the
// kernel's answer to unbind / drivers_probe (the driver link moving) is played on the tree.
const roots: string[] = [];
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

function fakeKernel(root: string, opts: { vfioLoaded?: boolean } = {}) {
  const writes: [string, string][] = [];
  const relink = (a: string, drv: string | null) => {
    const dev = join(root, "devices/pci0000:00", a);
    try {
      unlinkSync(join(dev, "driver"));
    } catch {}
    if (drv) symlinkSync(relative(dev, join(root, "bus/pci/drivers", drv)), join(dev, "driver"));
  };
  const original = new Map<string, string>();
  const write: SysfsWrite = (path, value) => {
    writes.push([relative(root, path), value]);
    writeFileSync(path, value);
    const a = value.trim();
    if (basename(path) === "unbind") relink(a, null);
    if (basename(path) === "drivers_probe") {
      const override = readFileSync(join(root, "bus/pci/devices", a, "driver_override"), "utf8").trim();
      if (override === "vfio-pci") relink(a, opts.vfioLoaded === false ? null : "vfio-pci");
      else relink(a, original.get(a) ?? null);
    }
    if (basename(path) === "driver_override" && !original.has(basename(dirname(path)))) original.set(basename(dirname(path)), currentDriver(root, basename(dirname(path)))!);
  };
  return { writes, write };
}

function tree() {
  const root = mkdtempSync(join(tmpdir(), "evebox-vfio-"));
  roots.push(root);
  writeFakeSysfs(root);
  return root;
}

describe("vfio-pci bind and release against a fake sysfs tree", () => {
  test("the GPU and its audio function: override, unbind from their drivers, probe; released: unbind, clear, probe back", () => {
    const root = tree();
    const k = fakeKernel(root);
    const orig = bindToVfio(root, ["0000:00:02.0", "0000:00:02.1"], k.write);
    expect([...orig]).toEqual([
      ["0000:00:02.0", "i915"],
      ["0000:00:02.1", "snd_hda_intel"],
    ]);
    expect(k.writes).toEqual([
      ["bus/pci/devices/0000:00:02.0/driver_override", "vfio-pci"],
      ["bus/pci/drivers/i915/unbind", "0000:00:02.0"],
      ["bus/pci/drivers_probe", "0000:00:02.0"],
      ["bus/pci/devices/0000:00:02.1/driver_override", "vfio-pci"],
      ["bus/pci/drivers/snd_hda_intel/unbind", "0000:00:02.1"],
      ["bus/pci/drivers_probe", "0000:00:02.1"],
    ]);
    expect([currentDriver(root, "0000:00:02.0"), currentDriver(root, "0000:00:02.1")]).toEqual(["vfio-pci", "vfio-pci"]);

    k.writes.length = 0;
    releaseFromVfio(root, orig, k.write);
    expect(k.writes).toEqual([
      ["bus/pci/drivers/vfio-pci/unbind", "0000:00:02.0"],
      ["bus/pci/devices/0000:00:02.0/driver_override", "\n"],
      ["bus/pci/drivers_probe", "0000:00:02.0"],
      ["bus/pci/drivers/vfio-pci/unbind", "0000:00:02.1"],
      ["bus/pci/devices/0000:00:02.1/driver_override", "\n"],
      ["bus/pci/drivers_probe", "0000:00:02.1"],
    ]);
    expect([currentDriver(root, "0000:00:02.0"), currentDriver(root, "0000:00:02.1")]).toEqual(["i915", "snd_hda_intel"]);
  });

  test("vfio-pci not taking the function (module not loaded) is an error naming the function", () => {
    const root = tree();
    const k = fakeKernel(root, { vfioLoaded: false });
    expect(() => bindToVfio(root, ["0000:00:1f.6"], k.write)).toThrow("PCI function 0000:00:1f.6: vfio-pci did not take it (driver now none; is the vfio-pci module loaded?)");
  });

  test("an address that is not one is refused before anything is written", () => {
    const root = tree();
    const k = fakeKernel(root);
    expect(() => bindToVfio(root, ["../../etc"], k.write)).toThrow("is not a PCI address");
    expect(k.writes).toEqual([]);
  });
});
