import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VolumeStore } from "./volumes.ts";

let persist: string;
let store: VolumeStore;
const uuid = "0b5c6a2e-8a57-4f0e-9d3c-3b1f8e2a9c10";

beforeAll(async () => {
  persist = await mkdtemp(join(tmpdir(), "evebox-volumes-"));
  store = new VolumeStore(persist);
});
afterAll(() => rm(persist, { recursive: true, force: true }));

describe("VolumeStore", () => {
  test("create, list, purge and remove host-directory volumes", async () => {
    const v = await store.create({ uuid, generationCount: 1, sizeBytes: 1 << 20, displayName: "data" });
    expect(v.path).toBe(join(persist, "volumes", `${uuid}-1`));
    expect(await store.create({ uuid, generationCount: 1 })).toMatchObject({ sizeBytes: 1 << 20, displayName: "data" });
    await store.create({ uuid, generationCount: 2 });

    await writeFile(join(v.path, "file"), "12345");
    expect(await store.usedBytes(uuid, 1)).toBe(5);
    expect((await store.list()).map((x) => `${x.uuid}-${x.generationCount}`)).toEqual([`${uuid}-1`, `${uuid}-2`]);

    await store.purge(uuid, 1);
    expect(await readdir(v.path)).toEqual([]);
    expect((await store.get(uuid, 1))?.sizeBytes).toBe(1 << 20);

    expect(store.mount(v, "/data", true)).toEqual({ source: v.path, target: "/data", readOnly: true });

    await store.remove(uuid, 1);
    await store.remove(uuid, 1);
    expect((await store.list()).map((x) => x.generationCount)).toEqual([2]);
    expect((await readdir(join(persist, "volumes"))).sort()).toEqual([`${uuid}-2`, `${uuid}-2.json`]);
  });

  test("refuses names that are not uuids (no path tricks)", async () => {
    await expect(store.create({ uuid: "../etc", generationCount: 0 })).rejects.toThrow('volume: invalid uuid "../etc"');
    await expect(store.purge(uuid, 9)).rejects.toThrow(`volume ${uuid}-9: purge failed: no such volume`);
  });
});
