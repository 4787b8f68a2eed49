// The loop around a fetch that runs beside it: a pass whose steps only start the fetch (and keep records) publishes
// the states from the records instead of observing the engine, the volumes and the network again; the fetch's end
// runs the next pass, which observes and goes on. The container kind is a stand-in that counts what it is asked.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigService } from "../config/service.ts";
import { EventBus } from "../model/events.ts";
import { ContentCache } from "../storage/cache.ts";
import { VolumeStore } from "../storage/volumes.ts";
import { Store } from "../store/store.ts";
import { CONTAINER_KIND } from "./containers.ts";
import { Reconciler } from "./reconciler.ts";
import type { OwnedContainer } from "../runtime/containers/types.ts";
import type { Workload } from "./workload.ts";

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

describe("the reconciler and a fetch beside the loop", () => {
  test("a pass that only starts a fetch observes once; the fetch's end runs the pass that goes on", async () => {
    const dir = mkdtempSync(join(tmpdir(), "evebox-reconciler-"));
    dirs.push(dir);
    const store = Store.open(join(dir, "evebox.db"));
    const events = new EventBus(store);
    const config = new ConfigService(store, events);
    let observes = 0;
    let loadStarted = false;
    let release = () => {};
    const held = new Promise<void>((r) => (release = r));
    const executed: string[] = [];
    // What the stand-in engine holds: the app's container once created, running once started.
    let container: OwnedContainer | null = null;
    const containers = {
      ...CONTAINER_KIND,
      label: "container",
      async start() {},
      close() {},
      desire() {},
      observe: async () => {
        observes++;
        return { containers: container ? [container] : [] };
      },
      noteExits: () => [],
      async execute(step, _ctx, lane) {
        executed.push(step.kind);
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
    try {
      await reconciler.start();
      await reconciler.idle();
      const before = observes;
      config.put(new TextEncoder().encode(JSON.stringify(DOC)), "application/json", { source: "local", author: "test" });
      await reconciler.idle();
      expect(loadStarted).toBe(true);
      // The pass that started the fetch observed once (before planning), not again after its steps.
      expect(observes - before).toBe(1);
      expect(store.observedOne("contentTree", IDS.ct)?.state).toBe("DOWNLOADING");
      expect(store.observedOne("app", IDS.app)?.state).toBe("DOWNLOADING");
      release();
      for (let i = 0; i < 300 && store.observedOne("app", IDS.app)?.state !== "RUNNING"; i++) await Bun.sleep(10);
      await reconciler.idle();
      // The fetch's end ran the next pass: observed again, the container made and started.
      expect(observes - before).toBeGreaterThan(1);
      expect(executed).toContain("createContainer");
      expect(executed).toContain("startContainer");
      expect(store.observedOne("contentTree", IDS.ct)?.state).toBe("LOADED");
      expect(store.observedOne("app", IDS.app)?.state).toBe("RUNNING");
    } finally {
      release();
      await reconciler.stop();
      store.close();
    }
  });
});
