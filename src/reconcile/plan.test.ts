import { describe, expect, test } from "bun:test";
import { validateConfig } from "../config/validate.ts";
import { DEVICE_ENV } from "../config/device-env.ts";
import type { OwnedContainer } from "../runtime/containers/types.ts";
import { readUserData as parseUserData } from "../config/userdata.ts";
import { desiredFromConfig } from "./desired.ts";
import { type AppRecord, type ContentTreeRecord, newAppRecord, type Observed } from "./observed.ts";
import { plan, sourceKey, type Step, volumeKey } from "./plan.ts";
import { compileFirewall } from "../network/acl/compile.ts";
import { desiredItems } from "../network/items.ts";
import { containerKey, EMPTY_FACTS, networkModel } from "../network/model.ts";
import { appState, noteExits } from "./status.ts";
import { desiredVms } from "./vms.ts";

const DS = "5b0a6b52-7f36-4a55-8c3e-2a3f5c0d1e02";
const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

function config(apps: { n: number; name?: string; env?: string; restart?: number; purge?: number; activate?: boolean; data?: boolean }[]) {
  const doc: any = { datastores: [{ id: DS, dType: "DsContainerRegistry", fqdn: "docker://127.0.0.1:5000" }], contentInfo: [], volumes: [], apps: [] };
  for (const a of apps) {
    const ct = uuid(1000 + a.n);
    const img = uuid(2000 + a.n);
    const dat = uuid(3000 + a.n);
    doc.contentInfo.push({ uuid: ct, dsId: DS, URL: `app${a.n}:1`, iformat: "CONTAINER" });
    doc.volumes.push({ uuid: img, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: ct } });
    const refs = [{ uuid: img }];
    if (a.data) {
      doc.volumes.push({ uuid: dat, origin: { type: "VCOT_BLANK" }, generationCount: "1", maxsizebytes: "1000" });
      refs.push({ uuid: dat, mountDir: "/data" } as any);
    }
    doc.apps.push({
      uuidandversion: { uuid: uuid(a.n), version: "1" },
      displayname: a.name ?? `app${a.n}`,
      activate: a.activate ?? true,
      fixedresources: { memory: 1024, vcpus: 1 },
      volumeRefList: refs,
      userData: a.env ? Buffer.from(a.env).toString("base64") : undefined,
      restart: a.restart ? { counter: a.restart } : undefined,
      purge: a.purge ? { counter: a.purge } : undefined,
    });
  }
  return doc;
}

function observed(parts: Partial<Observed> = {}): Observed {
  return { now: 1_000_000, bootAt: 0, containers: [], volumes: [], contentTrees: new Map(), apps: new Map(), startedSinceBoot: new Set(), fetching: new Set(), ...parts };
}

function loaded(desired: ReturnType<typeof desiredFromConfig>) {
  return new Map(
    desired.contentTrees.map((t) => [
      t.uuid,
      { uuid: t.uuid, state: "LOADED" as const, error: null, imageRef: "img", imageId: "sha256:x", sizeBytes: 1, progress: 100, attempts: 0, nextRetryAt: 0, sourceKey: sourceKey(t) },
    ]),
  );
}

function container(app: { uuid: string; generation: string }, over: Partial<OwnedContainer> = {}): OwnedContainer {
  return {
    appUuid: app.uuid,
    appName: "x",
    id: `c-${app.uuid.slice(-4)}-${Math.random().toString(36).slice(2, 6)}`,
    name: "n",
    state: "running",
    startedAt: new Date(1000),
    finishedAt: null,
    exitCode: null,
    oomKilled: false,
    generation: app.generation,
    image: "img",
    imageId: "sha256:x",
    labels: {},
    ...over,
  };
}

const kinds = (steps: ReturnType<typeof plan>) => steps.map((s) => s.step.kind);

describe("desired state from an EdgeDevConfig", () => {
  test("a container's spec hash is the one evebox computed before the device model: an upgrade recreates no app", () => {
    // The hashes the raw-document reading (before config/model.ts) gave for these two apps.
    const ct = (n: number) => `00000000-0000-4000-8000-00000000100${n}`;
    const doc = {
      datastores: [{ id: DS, dType: "DsContainerRegistry", fqdn: "docker://127.0.0.1:5000", apiKey: "u", password: "p" }, { id: uuid(7), dType: "DsHttp", fqdn: "http://h", dpath: "d" }],
      contentInfo: [{ uuid: ct(1), dsId: DS, URL: "app1:1", iformat: "CONTAINER", sha256: "AB".repeat(32) }, { uuid: ct(2), dsId: uuid(7), URL: "img.tar", iformat: "CONTAINER", sha256: "cd".repeat(32) }],
      volumes: [
        { uuid: uuid(2001), origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: ct(1) } },
        { uuid: uuid(3001), displayName: "data", origin: { type: "VCOT_BLANK" }, generationCount: "2", maxsizebytes: "1000" },
        { uuid: uuid(2002), origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: ct(2) } },
      ],
      apps: [
        {
          uuidandversion: { uuid: uuid(1), version: "3" },
          displayname: "a",
          activate: true,
          fixedresources: { memory: 65536, vcpus: 2 },
          volumeRefList: [{ uuid: uuid(2001) }, { uuid: uuid(3001), mountDir: "/data" }],
          interfaces: [{ name: "eth0", networkId: uuid(9001) }],
          userData: Buffer.from("A=1\nB=\"two words\"\nEVE_ECO_CMD=sh -c 'echo hi'\n").toString("base64"),
        },
        { uuidandversion: { uuid: uuid(2), version: "1" }, displayname: "b", activate: true, fixedresources: { memory: 1024, vcpus: 1 }, volumeRefList: [{ uuid: uuid(2002) }] },
      ],
    };
    expect(desiredFromConfig(doc).apps.map((a) => a.generation)).toEqual(["8863a6f62b69708e", "47ca72a7d9b77f20"]);
  });

  test("an app whose first volume is a CONTAINER content tree is a container; env from userData; memory in KiB", () => {
    const d = desiredFromConfig(config([{ n: 1, env: "A=1\nB=two words\nEVE_ECO_CMD=sh -c 'echo hi'\n", data: true }]));
    const app = d.apps[0]!;
    expect(app.kind).toBe("container");
    expect(app.env).toEqual({ A: "1", B: "two words" });
    expect(app.cmd).toEqual(["sh", "-c", "echo hi"]);
    expect(app.memoryBytes).toBe(1024 * 1024);
    expect(app.mounts).toEqual([{ volumeUuid: uuid(3001), generation: 1, target: "/data", readOnly: false }]);
  });

  test("a #cloud-config userData carries KEY=VALUE in runcmd", () => {
    expect(parseUserData(Buffer.from("#cloud-config\nruncmd:\n  - FOO=bar\n  - BAZ=1\nother: x\n").toString("base64")).env).toEqual({ FOO: "bar", BAZ: "1" });
  });

  test("a disk format makes a VM; a missing content tree is an app error", () => {
    const doc = config([{ n: 1 }, { n: 2 }]);
    doc.contentInfo[0].iformat = "QCOW2";
    doc.volumes[1].origin.downloadContentTreeID = uuid(9999);
    const d = desiredFromConfig(doc, validateConfig(doc, DEVICE_ENV));
    expect(d.apps[0]!.kind).toBe("vm");
    expect(d.apps[1]!.error).toMatch(/content tree/);
  });

  test("a changed environment changes the generation; a restart counter does not", () => {
    const a = desiredFromConfig(config([{ n: 1, env: "A=1" }])).apps[0]!;
    const b = desiredFromConfig(config([{ n: 1, env: "A=2" }])).apps[0]!;
    const c = desiredFromConfig(config([{ n: 1, env: "A=1", restart: 5 }])).apps[0]!;
    expect(a.generation).not.toBe(b.generation);
    expect(a.generation).toBe(c.generation);
  });
});

describe("plan", () => {
  test("a new app: its image is fetched beside the loop and its volume made; once loaded, create and start", () => {
    const d = desiredFromConfig(config([{ n: 1, data: true }]));
    const steps = plan(d, observed());
    expect(steps.filter((s) => s.phase === 0).map((s) => s.step.kind).sort()).toEqual(["createVolume", "fetchContentTree"]);
    expect(steps.filter((s) => s.lane === `app:${uuid(1)}`).map((s) => s.step.kind)).toEqual(["recordCounters"]);
    // While the fetch runs, nothing more is planned (and the fetch is not started twice).
    const app = d.apps[0]!;
    const fetchingNow = observed({ fetching: new Set([uuid(1001)]), volumes: [{ uuid: uuid(3001), generation: 1 }], apps: new Map([[app.uuid, newAppRecord(app.uuid, 0, 0)]]) });
    expect(plan(d, fetchingNow)).toEqual([]);
    expect(appState(app, d, fetchingNow).state).toBe("INITIAL");
    const ready = plan(d, observed({ contentTrees: loaded(d), volumes: [{ uuid: uuid(3001), generation: 1 }], apps: new Map([[app.uuid, newAppRecord(app.uuid, 0, 0)]]) }));
    expect(ready.map((s) => s.step.kind)).toEqual(["createContainer", "startContainer"]);
    expect(ready[0]!.needs).toEqual([`vol:${volumeKey(uuid(3001), 1)}`]);
  });

  test("a content tree still being fetched after it left the config is not removed until the fetch ends", () => {
    const d = desiredFromConfig(config([{ n: 1 }]));
    const empty = desiredFromConfig(config([]));
    const o = observed({ contentTrees: loaded(d), fetching: new Set([uuid(1001)]) });
    expect(plan(empty, o).map((s) => s.step.kind)).toEqual([]);
    o.fetching.clear();
    expect(plan(empty, o).map((s) => s.step.kind)).toEqual(["removeContentTree"]);
  });

  test("converged: running container with the right generation and recorded counters → no steps", () => {
    const d = desiredFromConfig(config([{ n: 1, data: true }]));
    const app = d.apps[0]!;
    const o = observed({
      contentTrees: loaded(d),
      containers: [container(app)],
      volumes: [{ uuid: uuid(3001), generation: 1 }],
      apps: new Map([[app.uuid, newAppRecord(app.uuid, 0, 0)]]),
    });
    expect(plan(d, o)).toEqual([]);
    expect(appState(app, d, o).state).toBe("RUNNING");
  });

  test("changed environment: the old container is removed and a new one created", () => {
    const before = desiredFromConfig(config([{ n: 1, env: "A=1" }])).apps[0]!;
    const d = desiredFromConfig(config([{ n: 1, env: "A=2" }]));
    const old = container(before);
    const steps = plan(d, observed({ contentTrees: loaded(d), containers: [old], apps: new Map([[before.uuid, newAppRecord(before.uuid, 0, 0)]]) }));
    expect(kinds(steps)).toEqual(["removeContainer", "createContainer", "startContainer"]);
    expect((steps[0]!.step as any).containerId).toBe(old.id);
  });

  test("a bumped restart counter restarts the running container once", () => {
    const d = desiredFromConfig(config([{ n: 1, restart: 3 }]));
    const app = d.apps[0]!;
    const o = observed({ contentTrees: loaded(d), containers: [container(app)], apps: new Map([[app.uuid, newAppRecord(app.uuid, 2, 0)]]) });
    expect(kinds(plan(d, o))).toEqual(["restartContainer", "recordCounters"]);
    o.apps.get(app.uuid)!.restartApplied = 3;
    expect(plan(d, o)).toEqual([]);
  });

  test("a bumped purge counter recreates the container and purges its volumes", () => {
    const d = desiredFromConfig(config([{ n: 1, purge: 1, data: true }]));
    const app = d.apps[0]!;
    const o = observed({
      contentTrees: loaded(d),
      containers: [container(app)],
      volumes: [{ uuid: uuid(3001), generation: 1 }],
      apps: new Map([[app.uuid, newAppRecord(app.uuid, 0, 0)]]),
    });
    expect(kinds(plan(d, o))).toEqual(["removeContainer", "purgeVolumes", "createContainer", "startContainer", "recordCounters"]);
  });

  test("first sight of an app whose container exists (a lost store, or kill -9 mid-apply): counters adopted, nothing restarted", () => {
    const d = desiredFromConfig(config([{ n: 1, restart: 7, purge: 2 }]));
    const app = d.apps[0]!;
    const steps = plan(d, observed({ contentTrees: loaded(d), containers: [container(app)] }));
    expect(kinds(steps)).toEqual(["recordCounters"]);
  });

  test("duplicate containers of one app (kill -9 during create): one kept, the others removed", () => {
    const d = desiredFromConfig(config([{ n: 1 }]));
    const app = d.apps[0]!;
    const a = container(app, { state: "created", startedAt: null });
    const b = container(app);
    const steps = plan(d, observed({ contentTrees: loaded(d), containers: [a, b], apps: new Map([[app.uuid, newAppRecord(app.uuid, 0, 0)]]) }));
    expect(steps.map((s) => [s.step.kind, (s.step as any).containerId])).toEqual([["removeContainer", a.id]]);
  });

  test("a halted app's image is not fetched, nor a content tree no app uses; activated, the app's is (HALTED meanwhile)", () => {
    const doc = config([{ n: 1, activate: false }]);
    doc.contentInfo.push({ uuid: uuid(1999), dsId: DS, URL: "unused:1", iformat: "CONTAINER" });
    const off = desiredFromConfig(doc);
    expect(kinds(plan(off, observed()))).not.toContain("fetchContentTree");
    expect(appState(off.apps[0]!, off, observed())).toMatchObject({ state: "HALTED", error: null });
    const on = desiredFromConfig(config([{ n: 1 }]));
    expect(plan(on, observed()).filter((s) => s.step.kind === "fetchContentTree").map((s) => (s.step as any).tree.uuid)).toEqual([uuid(1001)]);
  });

  test("a content tree only a patch envelope's volume artifact names is fetched as a file; once a VM app needs it, it is loaded (checked as a disk) again", () => {
    const HTTP = uuid(9001);
    const CT = uuid(9002);
    const VOL = uuid(9003);
    const doc = config([{ n: 1 }]);
    doc.datastores.push({ id: HTTP, dType: "DsHttp", fqdn: "http://files.example" });
    doc.contentInfo.push({ uuid: CT, dsId: HTTP, URL: "m.bin", iformat: "RAW", sha256: "ab".repeat(32) });
    doc.volumes.push({ uuid: VOL, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: CT } });
    doc.patchEnvelopes = [{ uuid: uuid(9004), action: "STORE", appInstIdsAllowed: [uuid(1)], artifacts: [{ volumeRef: { imageName: "m", imageId: VOL } }] }];
    const d = desiredFromConfig(doc);
    const fetches = (o: Observed) => plan(d, o).filter((s) => s.step.kind === "fetchContentTree").map((s) => s.step as Extract<Step, { kind: "fetchContentTree" }>);
    const first = fetches(observed());
    expect(first.map((f) => [f.tree.uuid, f.asFile ?? false])).toEqual([[uuid(1001), false], [CT, true]]);
    // Downloaded as a file: nothing more to fetch for the envelope.
    const tree = d.contentTrees.find((t) => t.uuid === CT)!;
    const asFile = { uuid: CT, state: "LOADED" as const, error: null, imageRef: null, imageId: null, sizeBytes: 9, progress: 100, attempts: 0, nextRetryAt: 0, sourceKey: `${sourceKey(tree)}#file` };
    const trees = new Map<string, ContentTreeRecord>([...loaded(d), [CT, asFile]]);
    expect(fetches(observed({ contentTrees: trees }))).toEqual([]);
    // Loaded by a kind (a VM's disk) serves the envelope as well.
    expect(fetches(observed({ contentTrees: loaded(d) }))).toEqual([]);
    // Without the envelope it is not fetched at all.
    const none = desiredFromConfig({ ...doc, patchEnvelopes: [] });
    expect(plan(none, observed({ contentTrees: loaded(none) })).filter((s) => s.step.kind === "fetchContentTree")).toEqual([]);
    // A VM app using the tree fetched as a file only: fetched again by its kind (the disk check), not as a file.
    doc.apps.push({ uuidandversion: { uuid: uuid(9005), version: "1" }, displayname: "vm", activate: true, fixedresources: { memory: 1024, vcpus: 1 }, volumeRefList: [{ uuid: VOL }] });
    const withVm = desiredFromConfig(doc);
    withVm.vms = desiredVms(withVm, { volumeDir: () => "/v", blob: () => "/b" });
    const vms = { running: new Map(), lastExits: new Map(), unavailable: null };
    const again = plan(withVm, observed({ contentTrees: new Map<string, ContentTreeRecord>([...loaded(withVm), [CT, asFile]]), vms })).filter((s) => s.step.kind === "fetchContentTree");
    expect(again.map((s) => [(s.step as any).tree.uuid, (s.step as any).asFile ?? false])).toEqual([[CT, false]]);
  });

  test("activate=false halts a running app; activate=true starts a stopped one", () => {
    const off = desiredFromConfig(config([{ n: 1, activate: false }]));
    const app = off.apps[0]!;
    const rec = new Map([[app.uuid, newAppRecord(app.uuid, 0, 0)]]);
    expect(kinds(plan(off, observed({ contentTrees: loaded(off), containers: [container(app)], apps: rec })))).toEqual(["stopContainer"]);
    const on = desiredFromConfig(config([{ n: 1 }]));
    const stopped = container(app, { state: "exited", finishedAt: new Date(5000), exitCode: 0 });
    expect(appState(app, off, observed({ contentTrees: loaded(off), containers: [stopped], apps: rec })).state).toBe("HALTED");
    expect(kinds(plan(on, observed({ contentTrees: loaded(on), containers: [stopped], apps: rec })))).toEqual(["startContainer"]);
  });

  test("a container that exits at once is BROKEN and restarted with growing backoff", () => {
    const d = desiredFromConfig(config([{ n: 1 }]));
    const app = d.apps[0]!;
    const rec: AppRecord = newAppRecord(app.uuid, 0, 0);
    const dead = container(app, { state: "exited", startedAt: new Date(900_000), finishedAt: new Date(900_100), exitCode: 3 });
    const o = observed({ contentTrees: loaded(d), containers: [dead], apps: new Map([[app.uuid, rec]]) });
    expect(noteExits(d, o)).toEqual([app.uuid]);
    expect(noteExits(d, o)).toEqual([]); // the same exit counts once
    expect(rec.crashes).toBe(1);
    expect(plan(d, o)).toEqual([]); // waiting out the backoff
    const s = appState(app, d, o);
    expect(s.state).toBe("BROKEN");
    expect(s.error).toMatch(/exited with code 3 0\.1 s after start; restarting in 1 s/);
    o.now = rec.nextStartAt;
    expect(kinds(plan(d, o))).toEqual(["startContainer"]);
  });

  test("an app removed from the config: its container, volume, content tree and record go", () => {
    const d = desiredFromConfig(config([{ n: 1, data: true }]));
    const app = d.apps[0]!;
    const empty = desiredFromConfig(config([]));
    const steps = plan(empty, observed({
      contentTrees: loaded(d),
      containers: [container(app)],
      volumes: [{ uuid: uuid(3001), generation: 1 }],
      apps: new Map([[app.uuid, newAppRecord(app.uuid, 0, 0)]]),
    }));
    expect(steps.map((s) => `${s.phase}:${s.step.kind}`).sort()).toEqual(["0:removeContainer", "2:forgetApp", "2:removeContentTree", "2:removeVolume"]);
  });

  test("a content tree whose fetch failed waits for its retry time", () => {
    const d = desiredFromConfig(config([{ n: 1 }]));
    const t = d.contentTrees[0]!;
    const failed = new Map([[t.uuid, { uuid: t.uuid, state: "DOWNLOADING" as const, error: "unreachable", imageRef: null, imageId: null, sizeBytes: 0, progress: 0, attempts: 1, nextRetryAt: 2_000_000, sourceKey: sourceKey(t) }]]);
    const o = observed({ contentTrees: failed });
    expect(kinds(plan(d, o))).toEqual(["recordCounters"]);
    expect(appState(d.apps[0]!, d, o)).toMatchObject({ state: "DOWNLOADING", error: expect.stringContaining("unreachable") });
    o.now = 2_000_000;
    expect(kinds(plan(d, o))).toContain("fetchContentTree");
  });

  test("start delay holds the first start after boot", () => {
    const doc = config([{ n: 1 }]);
    doc.apps[0].startDelayInSeconds = 30;
    const d = desiredFromConfig(doc);
    const app = d.apps[0]!;
    const c = container(app, { state: "created", startedAt: null });
    const o = observed({ now: 10_000, bootAt: 0, contentTrees: loaded(d), containers: [c], apps: new Map([[app.uuid, newAppRecord(app.uuid, 0, 0)]]) });
    expect(plan(d, o)).toEqual([]);
    expect(appState(app, d, o).state).toBe("START_DELAYED");
    o.now = 30_000;
    expect(kinds(plan(d, o))).toEqual(["startContainer"]);
  });

  test("1,000 new apps: fetch, volume and record each (timing is measured in bench/, not asserted here)", () => {
    const d = desiredFromConfig(config(Array.from({ length: 1000 }, (_, i) => ({ n: i + 1, data: true }))));
    const steps = plan(d, observed());
    expect(steps.length).toBe(1000 * 3);
    expect(new Set(steps.filter((s) => s.phase === 1).map((s) => s.lane)).size).toBe(1000);
  });
});

describe("plan: networks and app interfaces", () => {
  const NI = "6b000000-0000-4000-8000-000000000001";
  function withNetwork(doc: any) {
    doc.networkInstances = [{ uuidandversion: { uuid: NI }, displayname: "lan", instType: "ZnetInstLocal", ip: { subnet: "10.7.0.0/24", gateway: "10.7.0.1" } }];
    for (const a of doc.apps) a.interfaces = [{ name: "eth0", networkId: NI, acls: [{ matches: [{ type: "ip", value: "0.0.0.0/0" }] }] }];
    const d = desiredFromConfig(doc);
    const model = networkModel(doc, [], EMPTY_FACTS, { subnets: {}, addrs: {} });
    const firewall = compileFirewall(model.instances, model.interfaces);
    d.network = { model, firewall, items: desiredItems(model, firewall, EMPTY_FACTS, "/run/evebox/network") };
    return d;
  }
  const ready = (d: ReturnType<typeof desiredFromConfig>, over: Partial<Observed> = {}) =>
    observed({ contentTrees: loaded(d), apps: new Map(d.apps.map((a) => [a.uuid, newAppRecord(a.uuid, 0, 0)])), network: { items: [], attachments: [] }, ...over });

  test("the network items are built first (phase 0, one lane), in dependency order; nothing when they exist", () => {
    const d = withNetwork(config([{ n: 1 }]));
    const steps = plan(d, ready(d));
    const net = steps.find((s) => s.step.kind === "reconcileNetworks")!;
    expect(net.phase).toBe(0);
    const ops = (net.step as Extract<Step, { kind: "reconcileNetworks" }>).ops.map((o) => `${o.op} ${o.item.type}`);
    expect(ops.indexOf("create bridge")).toBeLessThan(ops.indexOf("create addr"));
    expect(ops.indexOf("create addr")).toBeLessThan(ops.indexOf("create dnsmasq"));
    expect(plan(d, ready(d, { network: { items: d.network!.items, attachments: [] } })).some((s) => s.step.kind === "reconcileNetworks")).toBe(false);
  });

  test("a new app's interfaces are attached right after its container starts", () => {
    const d = withNetwork(config([{ n: 1 }]));
    const lane = plan(d, ready(d)).filter((s) => s.lane === `app:${uuid(1)}`);
    expect(lane.map((s) => s.step.kind)).toEqual(["createContainer", "startContainer", "attachInterfaces"]);
  });

  test("a running container is attached when its veth is missing or was made for an earlier run; not otherwise", () => {
    const d = withNetwork(config([{ n: 1 }]));
    const app = d.apps[0]!;
    const c = container(app, { startedAt: new Date(5000) });
    const iface = d.network!.model.interfaces[0]!;
    const att = (key: string) => ({ items: d.network!.items, attachments: [{ ifname: iface.hostIfname, appUuid: app.uuid, index: 0, key, kind: "veth" as const, master: iface.bridge }] });
    expect(kinds(plan(d, ready(d, { containers: [c], network: att("") })))).toEqual(["attachInterfaces"]);
    expect(kinds(plan(d, ready(d, { containers: [c], network: att(containerKey(c.id, new Date(4000))) })))).toEqual(["attachInterfaces"]);
    expect(kinds(plan(d, ready(d, { containers: [c], network: att(containerKey(c.id, c.startedAt)) })))).toEqual([]);
  });

  test("interfaces nothing desires any more are detached (phase 2)", () => {
    const d = withNetwork(config([{ n: 1 }]));
    const stray = { ifname: "ev0123456789v0", appUuid: uuid(77), index: 0, key: "tap", kind: "tap" as const, master: null };
    const steps = plan(d, ready(d, { network: { items: d.network!.items, attachments: [stray] } }));
    expect(steps.find((s) => s.step.kind === "detachInterfaces")).toMatchObject({ phase: 2, step: { ifnames: ["ev0123456789v0"] } });
  });

  test("which instance an interface is on is part of the container's spec; its ACLs are not", () => {
    const a = withNetwork(config([{ n: 1 }]));
    const doc = config([{ n: 1 }]);
    const b = withNetwork(doc);
    expect(b.apps[0]!.generation).toBe(a.apps[0]!.generation);
    doc.apps[0].interfaces[0].acls = [];
    expect(desiredFromConfig(doc).apps[0]!.generation).toBe(a.apps[0]!.generation);
    doc.apps[0].interfaces[0].networkId = uuid(5);
    expect(desiredFromConfig(doc).apps[0]!.generation).not.toBe(a.apps[0]!.generation);
  });
});
