// Finding 11 of the hardening issue: `2a3b…` and `2A3B…` were two network instances to validation and one
// bridge to the network part. UUIDs now compare without regard to case everywhere: a document is read with
// its UUID ids in lower case (config/uuids.ts), so ids that differ only in case are duplicates, and a
// reference in either case finds its object.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { normalizeUuids } from "../../src/config/uuids.ts";
import { NO_ENV, validateConfig } from "../../src/config/validate.ts";
import { desiredFromConfig } from "../../src/reconcile/desired.ts";
import { IDS, sampleConfig } from "../support/configs.ts";
import { type Device, problemPaths, startDevice } from "./support.ts";

const up = (s: string) => s.toUpperCase();

function twins(): any {
  const d: any = sampleConfig();
  const second = structuredClone(d.networkInstances[0]);
  second.uuidandversion.uuid = up(IDS.network);
  second.displayname = "plant-lan-2";
  second.ip = { subnet: "198.51.101.0/24" };
  d.networkInstances.push(second);
  return d;
}

/** Every reference written in upper case, the objects in lower case. */
function upperRefs(): any {
  const d: any = sampleConfig();
  d.contentInfo[0].dsId = up(IDS.datastore);
  d.volumes[0].origin.downloadContentTreeID = up(IDS.contentTree);
  d.apps[0].volumeRefList[0].uuid = up(IDS.volume);
  d.apps[0].interfaces[0].networkId = up(IDS.network);
  return d;
}

describe("UUIDs compare without regard to case", () => {
  test("two objects whose ids differ only in case are duplicates, for every kind", () => {
    expect(problemPathsOf(twins())).toContain("networkInstances[1].uuidandversion.uuid");
    const d: any = sampleConfig();
    d.apps.push({ ...structuredClone(d.apps[0]), uuidandversion: { uuid: up(IDS.app), version: "1" }, displayname: "web2", interfaces: [] });
    d.volumes.push({ ...structuredClone(d.volumes[0]), uuid: up(IDS.volume) });
    d.contentInfo.push({ ...structuredClone(d.contentInfo[0]), uuid: up(IDS.contentTree) });
    d.datastores.push({ ...structuredClone(d.datastores[0]), id: up(IDS.datastore) });
    expect(problemPathsOf(d)).toEqual(
      expect.arrayContaining(["apps[1].uuidandversion.uuid", "volumes[1].uuid", "contentInfo[1].uuid", "datastores[1].id"]),
    );
  });

  test("references in another case find their objects", () => {
    expect(problemPathsOf(upperRefs())).toEqual([]);
    const desired = desiredFromConfig(normalizeUuids(upperRefs()), []);
    expect(desired.apps[0]!.kind).toBe("container");
    expect(desired.apps[0]!.mounts).toEqual([]);
    expect(desired.apps[0]!.interfaces[0]!.networkId).toBe(IDS.network);
    expect(desired.contentTrees[0]!.referenced).toBe(true);
  });

  test("normalizeUuids: ids only, UUIDs only; a document with nothing to change is returned as it is", () => {
    const d: any = { apps: [{ uuidandversion: { uuid: up(IDS.app) }, displayname: up(IDS.app), interfaces: [{ networkId: up(IDS.network) }] }], deviceIoList: [{ phyaddrs: { Ifname: "ETH0" } }], wifiSSID: up(IDS.app), nodes: { replicaNodeId: [up(IDS.app)] } };
    const n = normalizeUuids(d);
    expect(n.apps[0].uuidandversion.uuid).toBe(IDS.app);
    expect(n.apps[0].interfaces[0].networkId).toBe(IDS.network);
    expect(n.nodes.replicaNodeId[0]).toBe(IDS.app);
    expect(n.apps[0].displayname).toBe(up(IDS.app));
    expect(n.wifiSSID).toBe(up(IDS.app));
    expect(n.deviceIoList).toBe(d.deviceIoList);
    expect(d.apps[0].uuidandversion.uuid).toBe(up(IDS.app)); // the input is not changed
    const lower = sampleConfig();
    expect(normalizeUuids(lower)).toBe(lower);
  });
});

function problemPathsOf(d: any): string[] {
  return validateConfig(d, NO_ENV).map((p) => p.path);
}

describe("the compiled binary", () => {
  let dev: Device;

  beforeAll(async () => {
    dev = await startDevice();
  }, 300_000);

  afterAll(async () => {
    await dev?.stop();
  });

  test("case-distinct network instances are refused with the path; upper-case references are accepted", async () => {
    for (const q of ["?dryRun=1", ""]) {
      const r = await dev.put(twins(), q);
      expect(r.status).toBe(400);
      expect(problemPaths(r.body)).toContain("networkInstances[1].uuidandversion.uuid");
    }
    expect(await dev.version()).toBeNull();
    const ok = await dev.put(upperRefs());
    expect(ok.status).toBe(201);
    // The same document in lower case is the same desired state: the plan against it is empty.
    const same = await dev.put(sampleConfig(), "?dryRun=1");
    expect(same.status).toBe(200);
    expect(same.body.plan).toEqual([]);
  });
});
