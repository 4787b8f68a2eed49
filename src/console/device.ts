// What the console needs of the device: a narrow view, so console/ does not import the composition root
// (device/ builds the Device and passes it in; it fits this interface structurally).
import type { ConfigService } from "../config/service.ts";
import type { EventBus } from "../model/events.ts";
import type { AppCommands, ControllerLink, DeviceStatus } from "../model/status.ts";
import type { Terminals } from "../model/terminal.ts";
import type { Store } from "../store/store.ts";

export interface ConsoleDevice {
  readonly version: string;
  readonly store: Store;
  readonly events: EventBus;
  readonly config: ConfigService;
  /** Null until the app runtime is up. */
  readonly apps: AppCommands | null;
  readonly terminals: Terminals | null;
  /** The metrics history's sampling interval (ms). */
  readonly metricsIntervalMs: number;
  name(): string;
  managed(): boolean;
  controllerUrl(): string | null;
  controllerLink(): ControllerLink | null;
  status(): DeviceStatus;
  /** `status()` serialised, cached until something it shows changes (the GET /status hot path). */
  statusJson?(): string;
  metricsText(): string;
}
