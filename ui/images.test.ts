import { describe, expect, test } from "bun:test";
import { NO_ENV, readConfig } from "../src/config/validate.ts";
import { IMPORTED_DATASTORE, imageSources, type ImportedImage, withImportedImage } from "./images";

const image = (over: Partial<ImportedImage>): ImportedImage => ({
  sha256: "a".repeat(64),
  name: "debian 12",
  size: 1 << 30,
  format: "qcow2",
  kind: "disk",
  eveFormat: "QCOW2",
  virtualSize: 8 << 30,
  container: null,
  importedAt: "2026-12-03T10:00:00.000Z",
  usedBy: { contentTrees: [], apps: [] },
  ...over,
});

describe("imported images for the app form", () => {
  test("imageSources: disks for a VM, tarballs for a container, newest first", () => {
    const list = [
      image({ name: "old disk" }),
      image({ name: "app", kind: "container", format: "docker-archive", eveFormat: "CONTAINER", sha256: "b".repeat(64) }),
      image({ name: "new disk", importedAt: "2026-12-03T11:00:00.000Z", sha256: "c".repeat(64) }),
    ];
    expect(imageSources(list, "vm").map((i) => i.name)).toEqual(["new disk", "old disk"]);
    expect(imageSources(list, "container").map((i) => i.name)).toEqual(["app"]);
  });

  test("withImportedImage adds one datastore and a content tree by sha256 the device accepts; the same image twice is one tree", () => {
    let n = 0;
    const ids = () => `0000000${++n}-0000-4000-8000-000000000000`;
    const a = withImportedImage(null, image({}), ids);
    const b = withImportedImage(a.doc, image({ name: "app", kind: "container", eveFormat: "CONTAINER", sha256: "b".repeat(64) }), ids);
    const again = withImportedImage(b.doc, image({}), ids);
    expect(again.contentTreeId).toBe(a.contentTreeId);
    expect(b.doc.datastores).toEqual([{ ...IMPORTED_DATASTORE }]);
    expect(b.doc.contentInfo).toHaveLength(2);
    const { model, problems } = readConfig(b.doc, NO_ENV);
    expect(problems).toEqual([]);
    expect(model.contentTrees.map((t) => [t.name, t.format, t.sha256, t.faults])).toEqual([
      ["debian 12", "QCOW2", "a".repeat(64), []],
      ["app", "CONTAINER", "b".repeat(64), []],
    ]);
  });
});
