import { afterEach, describe, expect, test } from "bun:test";
import { Store } from "../store/store.ts";
import { HistorySampler } from "./history.ts";
import type { AppSample, DeviceSample } from "./metrics.ts";

const stores: Store[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

const T0 = Date.UTC(2026, 0, 1);
const GiB = 1024 ** 3;

/** A device whose counters the test moves: CPU busy/total ns, disk and network bytes. */
function fakeDevice() {
  const d = { busy: 0, total: 0, read: 0, write: 0, rx: 0, tx: 0, loRx: 0 };
  const sample = (): DeviceSample => ({
    at: new Date(),
    bootTime: new Date(0),
    cpu: { busyNs: d.busy, totalNs: d.total },
    memory: { totalBytes: 4 * GiB, availableBytes: 3 * GiB },
    disks: [
      { disk: "sda", readBytes: d.read, writeBytes: d.write, readCount: 0, writeCount: 0 },
      { disk: "/data", mountPath: "/data", readBytes: 0, writeBytes: 0, readCount: 0, writeCount: 0, usedBytes: 5 * GiB },
    ],
    network: [
      { name: "eth0", rxBytes: d.rx, txBytes: d.tx, rxPackets: 0, txPackets: 0, rxErrors: 0, txErrors: 0, rxDrops: 0, txDrops: 0 },
      // Loopback and evebox's own bridges would count traffic twice: left out.
      { name: "lo", rxBytes: d.loRx, txBytes: d.loRx, rxPackets: 0, txPackets: 0, rxErrors: 0, txErrors: 0, rxDrops: 0, txDrops: 0 },
      { name: "eb-ni1", rxBytes: d.loRx, txBytes: d.loRx, rxPackets: 0, txPackets: 0, rxErrors: 0, txErrors: 0, rxDrops: 0, txDrops: 0 },
    ],
  });
  return { d, sample };
}

function setUp(apps: () => AppSample[] | Promise<AppSample[]>, cpus = 2) {
  const store = Store.open(":memory:");
  stores.push(store);
  let now = T0;
  const errors: string[] = [];
  const dev = fakeDevice();
  const sampler = new HistorySampler({
    sink: store.history,
    sources: { device: dev.sample, apps: async () => apps(), cpus },
    clock: () => now,
    onError: (m) => errors.push(m),
  });
  return { store, sampler, dev, errors, advance: (ms: number) => (now += ms) };
}

describe("the metrics history's sampler", () => {
  test("device: CPU share, memory in use, disk and network rates from counters; the first sample has gauges only", async () => {
    const { store, sampler, dev, advance } = setUp(() => []);
    await sampler.tick();
    advance(10_000);
    Object.assign(dev.d, { busy: 5e9, total: 20e9, read: 100_000, write: 50_000, rx: 1_000_000, tx: 10_000, loRx: 9e9 });
    await sampler.tick();
    const s = store.history.series("device", "1h", T0 + 10_000);
    expect(s.ts).toEqual([T0, T0 + 10_000]);
    expect(s.cpuPercent).toEqual([null, 25]); // 5 of 20 s busy
    expect(s.memoryBytes).toEqual([GiB, GiB]);
    expect(s.diskUsedBytes).toEqual([5 * GiB, 5 * GiB]);
    expect(s.diskReadBps).toEqual([null, 10_000]);
    expect(s.diskWriteBps).toEqual([null, 5_000]);
    expect(s.netRxBps).toEqual([null, 100_000]);
    expect(s.netTxBps).toEqual([null, 1_000]);
  });

  test("apps: CPU as a share of all the device's CPUs; a counter that went back (a restart) gives no rate", async () => {
    let cpuNs = 0;
    let rx = 0;
    const { store, sampler, advance } = setUp(() => [{ uuid: "a1", name: "a", cpuNs, memoryUsedBytes: 64 << 20, diskReadBytes: 0, diskWriteBytes: 0, netRxBytes: rx, netTxBytes: 0 }], 2);
    await sampler.tick();
    advance(10_000);
    cpuNs = 5e9; // 5 s of one CPU in 10 s, on two CPUs: 25 % of the device
    rx = 20_000;
    await sampler.tick();
    advance(10_000);
    cpuNs = 1e9; // restarted
    rx = 0;
    await sampler.tick();
    const s = store.history.series("a1", "1h", T0 + 20_000);
    expect(s.cpuPercent).toEqual([null, 25, null]);
    expect(s.netRxBps).toEqual([null, 2_000, null]);
    expect(s.memoryBytes).toEqual([64 << 20, 64 << 20, 64 << 20]);
    expect(s.diskUsedBytes).toEqual([null, null, null]);
  });

  test("an app that is gone and comes back starts from a first sample", async () => {
    let running = true;
    let cpuNs = 1e9;
    const { store, sampler, advance } = setUp(() => (running ? [{ uuid: "a1", name: "a", cpuNs }] : []));
    await sampler.tick();
    advance(10_000);
    running = false;
    await sampler.tick();
    advance(10_000);
    running = true;
    cpuNs = 9e9;
    await sampler.tick();
    expect(store.history.series("a1", "1h", T0 + 20_000).cpuPercent).toEqual([null, null]);
  });

  test("a failing source is reported once, the rest is still recorded, and the tick never throws", async () => {
    const { store, sampler, errors, advance } = setUp(() => {
      throw new Error("engine gone");
    });
    await sampler.tick();
    advance(10_000);
    await sampler.tick();
    expect(errors).toEqual(["app samples: engine gone"]);
    expect(store.history.series("device", "1h", T0 + 10_000).ts).toHaveLength(2);
  });

  test("one minute of ticks is averaged into the minute tier", async () => {
    const { store, sampler, dev, advance } = setUp(() => []);
    for (let i = 0; i <= 6; i++) {
      Object.assign(dev.d, { busy: i * 1e9, total: i * 10e9 });
      await sampler.tick();
      advance(10_000);
    }
    const minutes = store.sqlite.query("SELECT ts, cpu FROM metric_points WHERE tier = 1 AND object = 'device'").all();
    expect(minutes).toEqual([{ ts: T0, cpu: 1000 }]);
  });
});
