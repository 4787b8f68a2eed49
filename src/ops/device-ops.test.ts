import { describe, expect, test } from "bun:test";
import { buildDeviceModel } from "../config/model.ts";
import { DeviceOps, type DeviceOpsDeps } from "./device-ops.ts";

type Doc = Record<string, unknown>;

/** A device's pieces as DeviceOps sees them: a settings map that outlives a "restart", a config, the apps' states. */
function harness(opts: { power?: boolean } = {}) {
  const settings = new Map<string, string>();
  const apps: { id: string; name: string; state: string }[] = [];
  const powered: { action: string; by: string }[] = [];
  const lines: string[] = [];
  let doc: Doc | null = null;
  let version = 0;
  const listeners = new Set<() => void>();
  let kernelBoot = new Date("2026-12-01T10:00:00Z");
  let halts = 0;
  const build = (): DeviceOps => {
    const deps: DeviceOpsDeps = {
      store: {
        getSetting: (k) => settings.get(k),
        setSetting: (k, v) => void settings.set(k, v),
        deleteSetting: (k) => void settings.delete(k),
        observed: () => apps.map((a) => ({ kind: "app", ...a, error: null, data: null }) as never),
      },
      config: {
        model: () => (doc ? { version, model: buildDeviceModel(doc).model, problems: [] } : null) as never,
        onChange: (l: () => void) => {
          listeners.add(l);
          return () => listeners.delete(l);
        },
      } as never,
      events: { publish: () => ({}) as never },
      log: { debug: () => {}, info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m), log: (_l, m) => lines.push(m) },
      power: opts.power === false ? null : { request: (action, by) => (powered.push({ action, by }), { accepted: true, message: "" }) },
      appsChanged: () => void halts++,
      kernelBoot,
      controller: () => ({ managed: true, lastContact: new Date() }),
      checkIntervalMs: 10_000_000,
    };
    const ops = new DeviceOps(deps);
    ops.start();
    return ops;
  };
  return {
    settings,
    apps,
    powered,
    lines,
    build,
    get halts() {
      return halts;
    },
    setConfig(d: Doc) {
      doc = d;
      version++;
      for (const l of listeners) l();
    },
    newBoot() {
      kernelBoot = new Date(kernelBoot.getTime() + 3_600_000);
      listeners.clear();
    },
  };
}

describe("reboot and shutdown counters (EVE's semantics)", () => {
  test("the first counter seen is noted, a bumped one reboots once — apps halted first — and never again after the restart", () => {
    const h = harness();
    h.apps.push({ id: "a", name: "web", state: "RUNNING" });
    let ops = h.build();
    expect(ops.report().lastBoot.reason).toBe("BOOT_REASON_FIRST");
    h.setConfig({ reboot: { counter: 1 } });
    expect(h.powered).toEqual([]);
    expect(ops.report().rebootCounter).toBe(1);
    h.setConfig({ reboot: { counter: 2 } });
    // Not before the apps are halted.
    expect(ops.haltReason()).toMatch(/reboot requested by the controller \(counter 2\)/);
    expect(ops.report().state).toBe("rebooting");
    expect(h.powered).toEqual([]);
    h.apps[0]!.state = "HALTED";
    (ops as unknown as { check(): void }).check();
    expect(h.powered).toEqual([{ action: "reboot", by: "the controller (reboot counter 2)" }]);
    ops.stop();

    // The next boot: the same config again does nothing; the boot reason is the command.
    h.newBoot();
    ops = h.build();
    h.setConfig({ reboot: { counter: 2 } });
    expect(h.powered.length).toBe(1);
    expect(ops.haltReason()).toBeNull();
    const r = ops.report();
    expect(r.lastBoot).toMatchObject({ reason: "BOOT_REASON_REBOOT_CMD", text: "reboot requested by the controller (counter 2)" });
    expect(r.lastBoot.rebootTime).toBeString();
    expect(r.rebootCounter).toBe(2);
    ops.stop();
    // An evebox restart within the same boot keeps the boot's reason.
    ops = h.build();
    expect(ops.report().lastBoot.reason).toBe("BOOT_REASON_REBOOT_CMD");
    ops.stop();
    // A way down of init's (the power button) after the console's reboot keeps the console's reason.
    ops.recordGoingDown("BOOT_REASON_REBOOT_CMD", "reboot requested by admin");
    ops.recordGoingDown("BOOT_REASON_POWEROFF_CMD", "shutdown: the power button", { unlessRecorded: true });
    ops.stop();
    h.newBoot();
    ops = h.build();
    expect(ops.report().lastBoot).toMatchObject({ reason: "BOOT_REASON_REBOOT_CMD", text: "reboot requested by admin" });
    // A boot evebox did not cause.
    h.newBoot();
    ops = h.build();
    expect(ops.report().lastBoot.reason).toBe("BOOT_REASON_UNKNOWN");
    ops.stop();
  });

  test("host mode: a bumped reboot counter is refused with the reason, the counter still handled once", () => {
    const h = harness({ power: false });
    const ops = h.build();
    h.setConfig({ reboot: { counter: 5 } });
    h.setConfig({ reboot: { counter: 6 } });
    const r = ops.report();
    expect(r.canReboot).toBe(false);
    expect(r.refused).toMatchObject({ op: "reboot", counter: 6, reason: expect.stringMatching(/host mode/) });
    expect(ops.part()).toMatchObject({ state: "degraded", detail: expect.stringMatching(/reboot \(counter 6\) refused: .*host mode/) });
    expect(h.lines.some((l) => /refused/.test(l))).toBe(true);
    expect(ops.haltReason()).toBeNull();
    ops.stop();
  });

  test("shutdown halts every app and reports prepared-poweroff once they are; it lasts for this boot only", () => {
    const h = harness();
    h.apps.push({ id: "a", name: "web", state: "RUNNING" });
    let ops = h.build();
    h.setConfig({ shutdown: { counter: 1 } });
    expect(ops.haltReason()).toBeNull();
    h.setConfig({ shutdown: { counter: 2 } });
    expect(ops.haltReason()).toMatch(/shutdown/);
    expect(ops.report().state).toBe("preparing-poweroff");
    h.apps[0]!.state = "HALTED";
    expect(ops.report().state).toBe("prepared-poweroff");
    expect(h.powered).toEqual([]);
    ops.stop();
    ops = h.build();
    expect(ops.haltReason()).toMatch(/shutdown/);
    ops.stop();
    h.newBoot();
    ops = h.build();
    expect(ops.haltReason()).toBeNull();
    ops.stop();
  });

  test("maintenance mode halts the apps; the maintenance.mode item overrides maintenance_mode", () => {
    const h = harness();
    const ops = h.build();
    h.setConfig({ maintenanceMode: true });
    expect(ops.haltReason()).toMatch(/maintenance mode/);
    expect(ops.report()).toMatchObject({ state: "maintenance", maintenance: { on: true } });
    h.setConfig({ maintenanceMode: true, configItems: [{ key: "maintenance.mode", value: "disabled" }] });
    expect(ops.haltReason()).toBeNull();
    h.setConfig({ configItems: [{ key: "maintenance.mode", value: "enabled" }] });
    expect(ops.haltReason()).toMatch(/maintenance/);
    expect(h.halts).toBe(3);
    ops.stop();
  });
});
