// The loop around a fetch that runs beside it: a pass whose steps only start the fetch (and keep records) publishes
// the states from the records instead of observing the engine, the volumes and the network again; the fetch's end
// runs the next pass, which starts from that observation (its records read again) unless a workload event came
// meanwhile, and goes on. The container kind is a stand-in that logs what it is asked.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigService } from "../config/service.ts";
import { EventBus } from "../model/events.ts";
import type { OwnedContainer } from "../runtime/containers/types.ts";
import { ContentCache } from "../storage/cache.ts";
import { VolumeStore } from "../storage/volumes.ts";
import { Store } from "../store/store.ts";
import { CONTAINER_KIND } from "./containers.ts";
import { Reconciler } from "./reconciler.ts";
import type { Workload, WorkloadHost } from "./workload.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const IDS = { ds: "22222222-0000-4000-8000-000000000001", ct: "22222222-0000-4000-8000-000000000002", vol: "22222222-0000-4000-8000-000000000003", app: "22222222-0000-4000-8000-000000000004" };
const DOC = {
  datastores: [{ id: IDS.ds, dType: "DsContainerRegistry", fqdn: "docker://registry.example" }],
  contentInfo: [{ uuid: IDS.ct, dsId: IDS.ds, URL: "app:1", iformat: "CONTAINER", sha256: "ab".repeat(32) }],
  volumes: [{ uuid: IDS.vol, origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: IDS.ct } }],
  apps: [{ uuidandversion: { uuid: IDS.app, version: "1" }, displayname: "web", activate: true, fixedresources: { memory: 32768, vcpus: 1 }, volumeRefList: [{ uuid: IDS.vol }] }],
};

/**
 * A reconciler on a real store whose container kind is a stand-in: it logs each observe and step in `log`, holds
 * the image's load until `release()`, and keeps the app's container (created, then running) as an engine would.
 * `eventDuringLoad`: an engine event arrives as the load begins (after that pass observed, before it ends).
 */
async function setUp(opts: { eventDuringLoad?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "evebox-reconciler-"));
  dirs.push(dir);
  const store = Store.open(join(dir, "evebox.db"));
  const events = new EventBus(store);
  const config = new ConfigService(store, events);
  const log: string[] = [];
  let loadStarted = false;
  let release = () => {};
  const held = new Promise<void>((r) => (release = r));
  let host: WorkloadHost | null = null;
  let container: OwnedContainer | null = null;
  const containers = {
    ...CONTAINER_KIND,
    label: "container",
    async start(h) {
      host = h;
    },
    close() {},
    desire() {},
    observe: async () => {
      log.push("observe");
      return { containers: container ? [container] : [] };
    },
    noteExits: () => [],
    async execute(step, _ctx, lane) {
      log.push(step.kind);
      if (step.kind === "createContainer") {
        const { app } = step;
        container = { appUuid: app.uuid, appName: app.name, id: "c1", name: "web", state: "created", startedAt: null, finishedAt: null, exitCode: null, oomKilled: false, generation: app.generation, image: "app:1", imageId: "sha256:cd", labels: {} };
        lane.containerId = "c1";
      }
      if (step.kind === "startContainer" && container) container = { ...container, state: "running", startedAt: new Date() };
    },
    loads: (tree) => tree.format === "CONTAINER",
    async loadContentTree() {
      loadStarted = true;
      if (opts.eventDuringLoad) host!.onChange(); // while the pass that started the fetch still runs
      await held;
      return { imageRef: "app:1", imageId: "sha256:cd", sizeBytes: 1 };
    },
    async removeContentTree() {},
    running: () => false,
    followLogs() {},
    samples: async () => [],
    openConsole: () => Promise.reject(new Error("no console")),
    part: () => null,
    forget() {},
  } satisfies Workload;
  const reconciler = new Reconciler({ store, config, events, workloads: [containers], cache: new ContentCache(join(dir, "content")), volumes: new VolumeStore(dir), log: () => {}, tickMs: 60_000 });
  await reconciler.start();
  await reconciler.idle();
  log.length = 0;
  return {
    store,
    reconciler,
    log,
    loadStarted: () => loadStarted,
    /** The config is put; resolves once the pass that started the fetch is over. */
    async putConfig() {
      config.put(new TextEncoder().encode(JSON.stringify(DOC)), "application/json", { source: "local", author: "test" });
      await reconciler.idle();
    },
    /** The fetch ends; resolves once the app shows RUNNING and no pass is left. */
    async finishFetch() {
      log.push("fetch released");
      release();
      for (let i = 0; i < 300 && store.observedOne("app", IDS.app)?.state !== "RUNNING"; i++) await Bun.sleep(10);
      await reconciler.idle();
    },
    async close() {
      release();
      await reconciler.stop();
      store.close();
    },
  };
}

describe("the reconciler and a fetch beside the loop", () => {
  test("a pass that only starts a fetch observes once; the fetch's end runs the pass that goes on from that observation", async () => {
    const r = await setUp();
    try {
      await r.putConfig();
      expect(r.loadStarted()).toBe(true);
      // The pass that started the fetch observed once (before planning), not again after its steps.
      expect(r.log.filter((l) => l === "observe")).toHaveLength(1);
      expect(r.store.observedOne("contentTree", IDS.ct)?.state).toBe("DOWNLOADING");
      expect(r.store.observedOne("app", IDS.app)?.state).toBe("DOWNLOADING");
      await r.finishFetch();
      // Nothing changed what that pass observed and no engine event came: the next pass made and started the
      // container from it, then observed.
      expect(r.log.slice(r.log.indexOf("fetch released"), r.log.indexOf("fetch released") + 4)).toEqual(["fetch released", "createContainer", "startContainer", "observe"]);
      expect(r.store.observedOne("contentTree", IDS.ct)?.state).toBe("LOADED");
      expect(r.store.observedOne("app", IDS.app)?.state).toBe("RUNNING");
    } finally {
      await r.close();
    }
  });

  test("an engine event after a pass observed: the passes after it observe anew", async () => {
    const r = await setUp({ eventDuringLoad: true });
    try {
      await r.putConfig();
      // The pass the event asked for (right after the one that started the fetch) observed, not reused.
      expect(r.log.filter((l) => l === "observe")).toHaveLength(2);
      await r.finishFetch();
      const i = r.log.indexOf("fetch released");
      expect(r.log.slice(i, i + 3)).toEqual(["fetch released", "observe", "createContainer"]);
      expect(r.store.observedOne("app", IDS.app)?.state).toBe("RUNNING");
    } finally {
      await r.close();
    }
  });
});
