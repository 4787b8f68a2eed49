// What the device-operations part (ops/) reports: the reboot and shutdown commands it has handled, why the
// device last booted, maintenance mode, and what it refused. The controller puts it in ZInfoDevice; the console
// shows it.

/** EVE's info.BootReason, by name (the controller's report maps it to the enum). */
export type BootReasonName =
  | "BOOT_REASON_FIRST"
  | "BOOT_REASON_REBOOT_CMD"
  | "BOOT_REASON_UPDATE"
  | "BOOT_REASON_FALLBACK"
  | "BOOT_REASON_DISCONNECT"
  | "BOOT_REASON_POWEROFF_CMD"
  | "BOOT_REASON_UNKNOWN";

export interface BootRecord {
  reason: BootReasonName;
  /** In words, for people: "reboot requested by the controller (counter 3)". */
  text: string;
  /** When the device was taken down for this boot (null: not by evebox, or a first boot). */
  rebootTime: string | null;
}

/** EVE's ZDeviceState, by what it means here. */
export type DeviceOpsState = "online" | "rebooting" | "maintenance" | "preparing-poweroff" | "prepared-poweroff";

export interface DeviceOpsReport {
  /** The counters of the last reboot and shutdown commands handled (EVE: rebootConfigCounter, shutdown_config_counter). */
  rebootCounter: number;
  shutdownCounter: number;
  state: DeviceOpsState;
  rebootInProgress: boolean;
  lastBoot: BootRecord;
  maintenance: { on: boolean; reason: string | null };
  /** false in host mode: evebox is not the device's init and does not reboot the host. */
  canReboot: boolean;
  /** The last command refused, and why (host mode). */
  refused: { op: "reboot" | "shutdown"; counter: number; reason: string; at: string } | null;
}
