// Finding 3, second half: "no timer or listener may throw unhandled". The reconciler's timers (the pass tick;
// the app statistics, now taken on the metrics history's one timer, telemetry/history.ts) and its listeners (config changes, engine events, VM events) ran callbacks whose
// exceptions reached the event loop — an unhandled rejection there ends evebox. They are guarded now: the
// error is logged, published as a `reconcile.error` event and shown in the part's status.
//
// The reconciler runs against the real Docker engine and a real store; only the VM workload is a stand-in whose
// samples throw, as a fault deep in a timer would.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Docker from "dockerode";
import { ConfigService } from "../../src/config/service.ts";
import { EventBus } from "../../src/model/events.ts";
import { ContainerWorkload } from "../../src/reconcile/containers.ts";
import { Reconciler } from "../../src/reconcile/reconciler.ts";
import { ContainerRuntime, DEFAULT_DOCKER_SOCKET } from "../../src/runtime/containers/runtime.ts";
import { ContentCache } from "../../src/storage/cache.ts";
import { VolumeStore } from "../../src/storage/volumes.ts";
import { Store } from "../../src/store/store.ts";
import { HistorySampler } from "../../src/telemetry/history.ts";
import { sampleDevice } from "../../src/telemetry/metrics.ts";
import { waitFor } from "../support/wait.ts";

let dir: string;
let store: Store;
let reconciler: Reconciler;
let sampler: HistorySampler;
const unhandled: unknown[] = [];
let faulty = true;
const onUnhandled = (e: unknown) => unhandled.push(e);

beforeAll(async () => {
  process.on("unhandledRejection", onUnhandled);
  process.on("uncaughtException", onUnhandled);
  dir = mkdtempSync(join(tmpdir(), "evebox-sec-timers-"));
  store = Store.open(join(dir, "evebox.db"));
  const events = new EventBus(store);
  const vms = {
    kind: "vm",
    label: "VM",
    steps: [],
    async start() {},
    close() {},
    desire() {},
    observe: async () => ({}),
    noteExits: () => [],
    needs: () => ({ contentTrees: [], volumes: [] }),
    plan: () => [],
    state: () => null,
    running: () => false,
    followLogs() {},
    loads: () => false,
    async removeContentTree() {},
    forget() {},
    part: () => null,
    samples() {
      if (faulty) throw new Error("a fault in the statistics timer");
      return [];
    },
  };
  reconciler = new Reconciler({
    store,
    config: new ConfigService(store, events),
    events,
    workloads: [
      new ContainerWorkload({ runtime: new ContainerRuntime(new Docker({ socketPath: DEFAULT_DOCKER_SOCKET }), "evebox", { instance: `sec-timers-${process.pid}` }) }),
      vms as any,
    ],
    cache: new ContentCache(join(dir, "content")),
    volumes: new VolumeStore(dir),
    log: () => {},
    tickMs: 60_000,
  });
  await reconciler.start();
  // The app statistics are sampled on the metrics history's timer, as the composition root wires it.
  sampler = new HistorySampler({
    sink: store.history,
    sources: { device: () => sampleDevice({ mounts: [dir] }), apps: () => reconciler.sampleApps(), cpus: 1 },
    intervalMs: 50,
  });
  sampler.start();
});

afterAll(async () => {
  await sampler?.stop();
  await reconciler?.stop();
  process.off("unhandledRejection", onUnhandled);
  process.off("uncaughtException", onUnhandled);
  store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the reconciler's timers", () => {
  test("a timer that throws is caught: logged, an event, the part's status — never an unhandled rejection", async () => {
    await waitFor("the fault in the part's status", () => reconciler.part().state === "error", 5_000);
    await Bun.sleep(300); // deliberately: six more ticks of the 50 ms timer, none of which may publish again
    expect(unhandled).toEqual([]);
    const part = reconciler.part();
    expect(part.state).toBe("error");
    expect(part.detail).toMatch(/app statistics: a fault in the statistics timer/);
    // Published once per distinct fault, not every 50 ms.
    const published = store.recentEvents(500).filter((e) => e.type === "reconcile.error");
    expect(published).toHaveLength(1);
    expect(published[0]!.message).toMatch(/a fault in the statistics timer/);
  });

  test("sampling that works again clears its fault from the part's status", async () => {
    faulty = false;
    await waitFor("the part without the fault", () => reconciler.part().state !== "error", 5_000);
    expect(store.recentEvents(500).filter((e) => e.type === "reconcile.error")).toHaveLength(1);
  });
});
