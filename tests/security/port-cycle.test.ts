// Finding 3 of the hardening issue: system adapters whose lowerLayerNames name each other, and a network
// instance on that port, were accepted; the network model then recursed until "Maximum call stack size
// exceeded" inside a timer, and evebox exited (again ~20 s after every restart). Port labels now resolve
// through one bounded, cycle-checked reader (config/ports.ts) in validation, the network model and the
// device's own ports; validation refuses the cycle with its path, and the binary stays up.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAX_PORT_DEPTH, resolvePortLabel } from "../../src/config/ports.ts";
import { NO_ENV, validateConfig } from "../../src/config/validate.ts";
import { portConfigFromDoc } from "../../src/init/ports.ts";
import { EMPTY_FACTS, networkModel } from "../../src/network/model.ts";
import { encodeMessage } from "../../src/proto/index.ts";
import { Store } from "../../src/store/store.ts";
import { type NsDevice, startDeviceIn, unixApi } from "../support/netdevice.ts";
import { Netns, vethBetween } from "../support/netns.ts";

const NI = "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e01";
const NET = "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e02";

function cyclic(): any {
  return {
    networks: [{ id: NET, type: "V4", ip: { dhcp: "Client" } }],
    systemAdapterList: [
      { name: "lan-a", lowerLayerName: "lan-b", networkUUID: NET },
      { name: "lan-b", lowerLayerName: "lan-a", networkUUID: NET },
    ],
    networkInstances: [{ uuidandversion: { uuid: NI, version: "1" }, displayname: "loop", instType: "ZnetInstLocal", port: { name: "lan-a" }, ip: { subnet: "10.77.0.0/24" } }],
  };
}

describe("one port resolver, cycle-checked and bounded", () => {
  test("validation refuses the cycle, at the adapters and at the instance's port, naming the chain", () => {
    const problems = validateConfig(cyclic(), NO_ENV);
    const at = (path: string) => problems.find((p) => p.path === path)?.message ?? "";
    expect(at("networkInstances[0].port.name")).toMatch(/cycle: lan-a → lan-b → lan-a/);
    expect(problems.some((p) => /^systemAdapterList\[\d\]\.lowerLayerName$/.test(p.path) && /cycle/.test(p.message))).toBe(true);
  });

  test("the network model, given such a document unvalidated, holds the instance in error instead of recursing", () => {
    const facts = { ...EMPTY_FACTS, interfaces: ["eth0"], defaultRouteIfname: "eth0" };
    const m = networkModel(cyclic(), [], facts, { subnets: {}, addrs: {} });
    expect(m.instances[0]!.error).toMatch(/port\.name: .*cycle/);
    expect(m.instances[0]!.uplink).toBeNull();
  });

  test("the device's own ports (init) refuse it the same way", () => {
    const r = portConfigFromDoc(cyclic(), ["eth0", "lan-a", "lan-b"], "v1");
    expect(r.config).toBeNull();
    expect(r.problems.join("\n")).toMatch(/cycle/);
  });

  test("a chain longer than the bound is refused; a self-reference is the label itself", () => {
    const adapters = Array.from({ length: 20 }, (_, i) => ({ name: `p${i}`, lowerLayerName: `p${i + 1}` }));
    const r = resolvePortLabel({ systemAdapterList: adapters }, "p0");
    expect(r).toMatchObject({ kind: "error" });
    expect((r as { message: string }).message).toMatch(new RegExp(`more than ${MAX_PORT_DEPTH} levels`));
    expect(resolvePortLabel({ systemAdapterList: [{ name: "eth0", lowerLayerName: "eth0" }] }, "eth0")).toMatchObject({ kind: "ifname", ifname: "eth0" });
    const deep = resolvePortLabel({ systemAdapterList: adapters.slice(0, 3), deviceIoList: [{ logicallabel: "p3", phyaddrs: { Ifname: "eth1" } }] }, "p0");
    expect(deep).toMatchObject({ kind: "ifname", ifname: "eth1", via: ["p0", "p1", "p2", "p3"] });
  });
});

describe("the compiled binary, with its app runtime and network part, offered such a config", () => {
  let dev: Netns;
  let peer: Netns;
  let device: NsDevice;
  let dataDir: string;

  beforeAll(async () => {
    dev = await Netns.create("cyc-dev");
    peer = await Netns.create("cyc-peer");
    await vethBetween(dev, "lan-a", peer, "x0");
    dataDir = mkdtempSync(join(tmpdir(), "evebox-sec-cycle-"));
    device = await startDeviceIn(dev, dataDir);
  }, 300_000);

  afterAll(async () => {
    device?.proc.kill("SIGTERM");
    await device?.proc.exited;
    await dev?.destroy();
    await peer?.destroy();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test("PUT and dry run answer 400 with the paths; evebox keeps running and answering", async () => {
    for (const q of ["?dryRun=1", ""]) {
      const r = await unixApi(device.sock, "PUT", `/api/v1/config${q}`, cyclic());
      expect(r.status).toBe(400);
      const paths = r.body.problems.map((p: any) => p.path);
      expect(paths).toContain("networkInstances[0].port.name");
    }
    expect((await unixApi(device.sock, "GET", "/api/v1/config")).status).toBe(404);
    // A reconcile pass (and the timers) run meanwhile; the process is still there, and healthy.
    await Bun.sleep(2500);
    expect(device.proc.exitCode).toBeNull();
    expect((await unixApi(device.sock, "GET", "/api/v1/health")).body.ok).toBe(true);
    expect(device.out()).not.toMatch(/Maximum call stack/);
  }, 30_000);

  test("already the current config (accepted by an earlier evebox): evebox starts, stays up past its timers, and shows the instance's error", async () => {
    // The store as an unfixed evebox left it: the cyclic document accepted and current.
    const seeded = mkdtempSync(join(tmpdir(), "evebox-sec-cycle-seeded-"));
    mkdirSync(join(seeded, "persist"), { recursive: true });
    const bytes = encodeMessage("org.lfedge.eve.config.EdgeDevConfig", cyclic());
    const store = Store.open(join(seeded, "persist", "evebox.db"));
    store.addConfigVersion(
      { source: "local", author: "an earlier evebox", hash: new Bun.CryptoHasher("sha256").update(bytes).digest("hex"), receivedAt: new Date(), bytes: Buffer.from(bytes), status: "accepted", error: null, note: null, summary: null },
      true,
    );
    store.close();
    const again = await startDeviceIn(dev, seeded);
    try {
      // The app statistics timer (every 20 s) is where the recursion used to end the process.
      await Bun.sleep(23_000);
      expect(again.proc.exitCode).toBeNull();
      expect((await unixApi(again.sock, "GET", "/api/v1/health")).body.ok).toBe(true);
      const st = await unixApi(again.sock, "GET", "/api/v1/status");
      const ni = st.body.networkInstances.find((n: any) => n.uuid === NI);
      expect(ni?.error ?? "").toMatch(/cycle/);
      expect(again.out()).not.toMatch(/Maximum call stack/);
    } finally {
      again.proc.kill("SIGTERM");
      await again.proc.exited;
      rmSync(seeded, { recursive: true, force: true });
    }
  }, 60_000);
});
