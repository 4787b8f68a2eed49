import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigService } from "../config/service.ts";
import { Hardware } from "../hardware/service.ts";
import { DomainError } from "../model/errors.ts";
import { EventBus } from "../model/events.ts";
import { TerminalUnavailable } from "../model/terminal.ts";
import { datastorePolicy } from "../storage/destinations.ts";
import { Store } from "../store/index.ts";
import { AppRuntimePart } from "./app-runtime.ts";
import { readSettings } from "./env.ts";
import { STATUS_MAX_AGE_MS } from "./device.ts";
import { runDevice } from "./run.ts";

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "evebox-root-"));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("the app runtime before it runs", () => {
  const runtime = (enabled: boolean) => {
    const store = Store.open(join(tempDir(), "evebox.db"));
    const events = new EventBus(store);
    const errors: string[] = [];
    const part = new AppRuntimePart({
      enabled,
      store,
      config: new ConfigService(store, events),
      events,
      persistDir: tempDir(),
      runDir: tempDir(),
      instance: "test",
      dockerSocket: null,
      vms: false,
      network: false,
      nft: "cli",
      destinations: datastorePolicy(() => undefined, false),
      hardware: new Hardware({ sysRoot: "/sys", store, consoleListen: null }),
      log: { reconcile: () => {}, network: () => {}, vms: () => {} },
      onError: (m) => errors.push(m),
    });
    return { part, errors, store };
  };

  test("answers 'not running yet' instead of being absent", async () => {
    const { part, store } = runtime(true);
    let err: unknown;
    try {
      part.localCommand("a", "start");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DomainError);
    expect((err as DomainError).kind).toBe("conflict");
    expect((err as Error).message).toBe("the app runtime is not running yet; try again in a moment");
    const open = await part.open("a").catch((e) => e);
    expect(open).toBeInstanceOf(TerminalUnavailable);
    expect(open.kind).toBe("conflict");
    expect(part.appSamples()).toEqual([]);
    expect(await part.collectFlows("dev")).toEqual([]);
    expect(part.network()).toBeNull();
    expect(part.parts()).toEqual([{ name: "runtime", state: "idle", detail: "starting" }]);
    store.close();
  });

  test("off: no part at all, and start and stop do nothing", async () => {
    const { part, store, errors } = runtime(false);
    expect(part.parts()).toEqual([]);
    await part.start();
    await part.stop();
    expect(part.parts()).toEqual([]);
    expect(errors).toEqual([]);
    store.close();
  });
});

describe("runDevice", () => {
  test("builds the parts in order, reports them in that order, and stops leaving nothing behind", async () => {
    const dataDir = tempDir();
    const lines: string[] = [];
    const running = await runDevice({
      dataDir,
      listen: "127.0.0.1:0",
      controller: null,
      version: "0.0.0-test",
      ui: null,
      settings: readSettings({ EVEBOX_APPS: "off" }),
      say: (l) => lines.push(l),
      parts: [() => ({ name: "extra", state: "ok", detail: "given by the entry point" })],
    });
    expect(lines[0]).toContain("local mode");
    const status = running.device.status();
    expect(status.parts.map((p) => p.name)).toEqual(["store", "config", "controller", "baseos", "ops", "extra"]);
    expect(status.parts.find((p) => p.name === "baseos")!.detail).toContain("not an A/B device");
    expect(status.parts.find((p) => p.name === "controller")).toMatchObject({ state: "idle" });
    // Local mode: the controller's code and the device identity are not loaded at start (footprint), ...
    expect(existsSync(join(dataDir, "config", "device.cert.pem"))).toBe(false);
    // ... the console answers over the socket, and asking for the controller's status loads them.
    const res = await fetch("http://localhost/api/v1/controller", { unix: running.socketPath } as RequestInit);
    expect(res.status).toBe(200);
    const ctl = (await res.json()) as { mode: string; identity: { fingerprint: string } };
    expect(ctl.mode).toBe("local");
    expect(ctl.identity.fingerprint).toMatch(/^[0-9a-f]{2}/i);
    expect(existsSync(join(dataDir, "config", "device.cert.pem"))).toBe(true);
    // App commands: no app runtime on this device (EVEBOX_APPS=off).
    const cmd = await fetch("http://localhost/api/v1/apps/x/start", { method: "POST", unix: running.socketPath } as RequestInit);
    expect(cmd.status).toBe(409);
    await running.stop();
    await running.stop(); // a second stop is a no-op
    expect(existsSync(running.socketPath)).toBe(false);
    // The same data directory starts again: nothing of the first run is left holding it.
    const again = await runDevice({ dataDir, listen: "127.0.0.1:0", controller: null, version: "0.0.0-test", ui: null, settings: readSettings({ EVEBOX_APPS: "off" }), say: () => {} });
    await again.stop();
  });
});

describe("the status body", () => {
  test("is serialised once and kept until the store records a change, an event is published, or it is too old", async () => {
    const running = await runDevice({ dataDir: tempDir(), listen: "127.0.0.1:0", controller: null, version: "0.0.0-test", ui: null, settings: readSettings({ EVEBOX_APPS: "off" }), say: () => {} });
    try {
      const d = running.device;
      const status = d.status.bind(d);
      let made = 0;
      d.status = () => (made++, status());
      const t = Date.now();
      const first = d.statusJson(t);
      expect(JSON.parse(first)).toEqual(JSON.parse(JSON.stringify(status())));
      expect(d.statusJson(t + 1)).toBe(first);
      expect(made).toBe(1); // not made again
      d.store.setSetting("device_name", "renamed");
      expect(JSON.parse(d.statusJson(t + 2)).device.name).toBe("renamed");
      d.statusJson(t + 3);
      expect(made).toBe(2);
      d.events.publish({ type: "test.event", message: "something happened" });
      d.statusJson(t + 4);
      expect(made).toBe(3);
      d.statusJson(t + 4 + STATUS_MAX_AGE_MS);
      expect(made).toBe(4);
    } finally {
      await running.stop();
    }
  });
});
