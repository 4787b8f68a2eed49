// Device operations as EVE's zedagent and nodeagent run them: the config's reboot and shutdown commands
// (DeviceOpsCmd, acted on once per counter change, the counter persisted first so a restart never acts again),
// apps halted before the device goes down, why the device booted (recorded before it goes down, read after),
// maintenance mode (apps halted), and a reboot after too long without the controller. Where evebox is not the
// device's init (host mode) it does not reboot the host: it says so, in its status and to the controller.
import type { ConfigService } from "../config/service.ts";
import type { DeviceOpModel } from "../config/model.ts";
import type { EventBus } from "../model/events.ts";
import type { Logger } from "../model/log.ts";
import type { BootReasonName, BootRecord, DeviceOpsReport, DeviceOpsState } from "../model/ops.ts";
import type { PartStatus } from "../model/status.ts";
import type { Store } from "../store/store.ts";

export type PowerAction = "reboot" | "shutdown";

/** Reboot and power-off of the device (init/ when evebox is PID 1). */
export interface Power {
  request(action: PowerAction, by: string): { accepted: boolean; message: string };
}

export interface DeviceOpsDeps {
  store: Pick<Store, "getSetting" | "setSetting" | "deleteSetting" | "observed">;
  config: Pick<ConfigService, "model" | "onChange">;
  events: Pick<EventBus, "publish">;
  log: Logger;
  /** Where evebox is init; null in host mode (then a reboot command is refused, with the reason). */
  power: Power | null;
  /** Called when `haltReason()` changes, so the app runtime plans again. */
  appsChanged: () => void;
  /** When the kernel booted: tells a new boot from an evebox restart. */
  kernelBoot: Date;
  /** Whether a controller manages the device, and when it last answered (null: not since evebox started). */
  controller: () => { managed: boolean; lastContact: Date | null };
  now?: () => number;
  /** The longest wait for the apps to halt before the device goes down anyway. */
  haltTimeoutMs?: number;
  /** How often the apps' states and the controller's silence are checked. */
  checkIntervalMs?: number;
}

const ACTIVE = new Set(["RUNNING", "HALTING", "BOOTING", "RESTARTING", "PURGING", "START_DELAYED"]);
const HOST_MODE = "evebox is not the device's init here (host mode): it does not reboot or power off the host";

interface Seen {
  counter: number;
  desiredState: boolean;
  opsTime: string;
}

export class DeviceOps {
  private readonly now: () => number;
  private readonly startedAt: number;
  private lastBoot!: BootRecord;
  private going: { op: PowerAction; counter: number; why: string } | null = null;
  private shutdownActive = false;
  private maintenance: string | null = null;
  private unsubscribe: (() => void) | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private lastHalt: string | null = null;

  constructor(private readonly d: DeviceOpsDeps) {
    this.now = d.now ?? Date.now;
    this.startedAt = this.now();
  }

  /** Reads why this boot happened, then acts on the current config and follows its changes. */
  start(): void {
    this.readBoot();
    this.evaluate();
    this.unsubscribe = this.d.config.onChange(() => this.guard(() => this.evaluate()));
    this.timer = setInterval(() => this.guard(() => this.check()), this.d.checkIntervalMs ?? 5_000);
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Why every app is held halted (maintenance mode, a shutdown or reboot command), or null. */
  haltReason(): string | null {
    if (this.going) return this.going.why;
    if (this.shutdownActive) return "the controller's shutdown command: apps halted, ready to be powered off";
    return this.maintenance;
  }

  report(): DeviceOpsReport {
    const seen = (op: PowerAction) => this.seen(op)?.counter ?? 0;
    return {
      rebootCounter: seen("reboot"),
      shutdownCounter: seen("shutdown"),
      state: this.state(),
      rebootInProgress: this.going?.op === "reboot",
      lastBoot: this.lastBoot,
      maintenance: { on: this.maintenance !== null, reason: this.maintenance },
      canReboot: this.d.power !== null,
      refused: this.refused(),
    };
  }

  part(): PartStatus {
    const r = this.report();
    const boot = `last boot: ${r.lastBoot.text}`;
    if (this.going) return { name: "ops", state: "degraded", detail: `${this.going.op} in progress: ${this.going.why}` };
    if (r.state === "maintenance") return { name: "ops", state: "degraded", detail: `maintenance mode: ${r.maintenance.reason}; ${boot}` };
    if (r.state === "prepared-poweroff" || r.state === "preparing-poweroff") {
      return { name: "ops", state: "degraded", detail: `${r.state === "prepared-poweroff" ? "apps halted, ready to be powered off" : "halting the apps to be powered off"} (shutdown counter ${r.shutdownCounter}); ${boot}` };
    }
    if (r.refused) return { name: "ops", state: "degraded", detail: `${r.refused.op} (counter ${r.refused.counter}) refused: ${r.refused.reason}; ${boot}` };
    return { name: "ops", state: "ok", detail: `${r.canReboot ? "" : "host mode: reboot commands are refused; "}${boot}` };
  }

  /**
   * The device goes down for another reason than a config command (the console, a base-OS update, the power
   * button): recorded as the next boot's reason.
   */
  recordGoingDown(reason: BootReasonName, text: string, opts: { unlessRecorded?: boolean } = {}): void {
    // A reason already recorded (a config command on its way down) is the truer one.
    if (this.going) return;
    // init's own record comes last on every way down: it must not hide the console's or an update's.
    if (opts.unlessRecorded && this.d.store.getSetting("ops.pending")) return;
    this.d.store.setSetting("ops.pending", JSON.stringify({ reason, text, rebootTime: new Date(this.now()).toISOString() } satisfies BootRecord));
  }

  // ---- the boot

  private readBoot(): void {
    const kernel = this.d.kernelBoot.getTime();
    const stored = parse<{ kernelBoot: string; record: BootRecord }>(this.d.store.getSetting("ops.boot"));
    if (stored && Math.abs(new Date(stored.kernelBoot).getTime() - kernel) < 5_000) {
      // The same boot: evebox restarted. The boot's reason stays what it was.
      this.lastBoot = stored.record;
    } else {
      const pending = parse<BootRecord>(this.d.store.getSetting("ops.pending"));
      this.lastBoot = pending
        ? pending
        : stored
          ? { reason: "BOOT_REASON_UNKNOWN", text: "the device restarted without evebox taking it down (a power cut, a reset or a crash)", rebootTime: null }
          : { reason: "BOOT_REASON_FIRST", text: "first boot of evebox on this device", rebootTime: null };
      this.d.store.setSetting("ops.boot", JSON.stringify({ kernelBoot: this.d.kernelBoot.toISOString(), record: this.lastBoot }));
      this.d.store.deleteSetting("ops.shutdown.boot");
    }
    this.d.store.deleteSetting("ops.pending");
    this.shutdownActive = this.d.store.getSetting("ops.shutdown.boot") === this.d.kernelBoot.toISOString();
  }

  // ---- the config's commands

  private evaluate(): void {
    const model = this.d.config.model()?.model;
    if (!model) return;
    const m = model.device.maintenanceMode ? "maintenance mode, asked for by the config" : null;
    if (m !== this.maintenance) {
      this.maintenance = m;
      this.d.log.info(m ? `entering ${m}: apps are halted` : "leaving maintenance mode: apps run again");
      this.d.events.publish({ type: "device.maintenance", message: m ? `maintenance mode on: apps halted` : "maintenance mode off", data: { on: m !== null } });
    }
    for (const op of ["reboot", "shutdown"] as const) this.command(op, model.device[op]);
    this.haltChanged();
  }

  /** EVE's scheduleDeviceOperation: act when the counter differs from the one seen last, never on the first seen. */
  private command(op: PowerAction, cmd: DeviceOpModel | null): void {
    const key = `ops.${op}`;
    if (!cmd) {
      this.d.store.deleteSetting(key);
      return;
    }
    const seen = this.seen(op);
    if (seen && seen.counter === cmd.counter) return;
    // Persisted before acting: the same counter is never acted on again, whatever happens next.
    this.d.store.setSetting(key, JSON.stringify({ counter: cmd.counter, desiredState: cmd.desiredState, opsTime: cmd.opsTime } satisfies Seen));
    if (!seen) {
      this.d.log.info(`${op} counter ${cmd.counter} noted (the first one seen is not acted on, as EVE does)`);
      return;
    }
    if (op === "reboot") this.reboot(cmd.counter);
    else this.shutdown(cmd.counter);
  }

  private reboot(counter: number): void {
    const text = `reboot requested by the controller (counter ${counter})`;
    if (!this.d.power) {
      this.refuse("reboot", counter, HOST_MODE);
      return;
    }
    if (this.going) return;
    this.going = { op: "reboot", counter, why: `${text}: apps halted first` };
    this.d.log.warn(`${text}: halting the apps, then rebooting`);
    this.d.events.publish({ type: "device.reboot-command", message: `${text}: halting the apps, then rebooting`, data: { counter } });
    this.d.store.setSetting("ops.pending", JSON.stringify({ reason: "BOOT_REASON_REBOOT_CMD", text, rebootTime: new Date(this.now()).toISOString() } satisfies BootRecord));
    this.haltChanged();
    this.goDownWhenHalted("reboot", `the controller (reboot counter ${counter})`);
  }

  /** EVE's shutdown command: the apps are halted and the device waits to be powered off (it stays up). */
  private shutdown(counter: number): void {
    this.shutdownActive = true;
    this.d.store.setSetting("ops.shutdown.boot", this.d.kernelBoot.toISOString());
    this.d.log.warn(`shutdown requested by the controller (counter ${counter}): halting every app; the device can then be powered off`);
    this.d.events.publish({ type: "device.shutdown-command", message: `shutdown requested by the controller (counter ${counter}): halting every app`, data: { counter } });
    this.haltChanged();
  }

  private refuse(op: PowerAction, counter: number, reason: string): void {
    const r = { op, counter, reason, at: new Date(this.now()).toISOString() };
    this.d.store.setSetting("ops.refused", JSON.stringify(r));
    // As an error line it reaches the controller (newlogs) as well as the console.
    this.d.log.error(`${op} requested by the controller (counter ${counter}) refused: ${reason}`);
    this.d.events.publish({ type: "device.ops-refused", message: `${op} (counter ${counter}) refused: ${reason}`, data: r });
  }

  private refused(): DeviceOpsReport["refused"] {
    return parse<NonNullable<DeviceOpsReport["refused"]>>(this.d.store.getSetting("ops.refused"));
  }

  // ---- waiting for the apps, the controller's silence

  private haltTarget: { action: PowerAction; by: string; deadline: number } | null = null;

  private goDownWhenHalted(action: PowerAction, by: string): void {
    this.haltTarget = { action, by, deadline: this.now() + (this.d.haltTimeoutMs ?? 120_000) };
    this.check();
  }

  private appsActive(): string[] {
    return this.d.store.observed("app").filter((o) => ACTIVE.has(o.state)).map((o) => o.name ?? o.id);
  }

  private check(): void {
    const t = this.haltTarget;
    if (t) {
      const active = this.appsActive();
      const late = this.now() >= t.deadline;
      if (active.length === 0 || late) {
        this.haltTarget = null;
        if (late && active.length) this.d.log.warn(`apps still running after ${Math.round((this.d.haltTimeoutMs ?? 120_000) / 1000)} s (${active.join(", ")}); going down anyway`);
        const r = this.d.power!.request(t.action, t.by);
        if (!r.accepted) this.d.log.warn(`${t.action}: ${r.message}`);
      }
      return;
    }
    this.noNetworkReboot();
  }

  /** EVE's timer.reboot.no.network: a managed device that cannot reach its controller for that long reboots. */
  private noNetworkReboot(): void {
    if (!this.d.power || this.going) return;
    const model = this.d.config.model()?.model;
    const c = this.d.controller();
    if (!model || !c.managed) return;
    const limit = model.settings.rebootNoNetworkS * 1000;
    const since = Math.max(c.lastContact?.getTime() ?? 0, this.startedAt);
    if (this.now() - since < limit) return;
    const text = `no contact with the controller for ${Math.round((this.now() - since) / 1000)} s (timer.reboot.no.network ${model.settings.rebootNoNetworkS} s)`;
    this.going = { op: "reboot", counter: 0, why: `${text}: apps halted first` };
    this.d.log.warn(`${text}: rebooting`);
    this.d.store.setSetting("ops.pending", JSON.stringify({ reason: "BOOT_REASON_DISCONNECT", text, rebootTime: new Date(this.now()).toISOString() } satisfies BootRecord));
    this.haltChanged();
    this.goDownWhenHalted("reboot", "timer.reboot.no.network");
  }

  private state(): DeviceOpsState {
    if (this.maintenance) return "maintenance";
    if (this.going?.op === "reboot") return "rebooting";
    if (this.shutdownActive) return this.appsActive().length ? "preparing-poweroff" : "prepared-poweroff";
    return "online";
  }

  private haltChanged(): void {
    const h = this.haltReason();
    if (h === this.lastHalt) return;
    this.lastHalt = h;
    this.d.appsChanged();
  }

  private seen(op: PowerAction): Seen | null {
    return parse<Seen>(this.d.store.getSetting(`ops.${op}`));
  }

  private guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.d.log.error(`device operations: ${(e as Error).message}`);
    }
  }
}

function parse<T>(v: string | undefined | null): T | null {
  if (!v) return null;
  try {
    return JSON.parse(v) as T;
  } catch {
    return null;
  }
}
