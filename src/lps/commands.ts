// The local commands of EVE's LPS API, shared by the Local Profile Server client (client.ts) and the Local
// Operator Console's compound config (controller/loc.ts, wired by device/): restart or purge an app, stop every
// app, reboot or power off. Each command (its type and timestamp) is done once, also across restarts.
import type { Logger } from "../lib/log.ts";
import type { DeviceStatus } from "../model/status.ts";
import type { LocalAppCmdList, LocalDevCmd } from "../proto/index.ts";
import type { Store } from "../store/store.ts";

export const COMMANDS_KEY = "lps.appCommands";
export const DEVCMD_KEY = "lps.devCommand";
/** The VM boot orders the LPS set (appbootinfo), by app uuid: kept across restarts, as EVE's. */
export const BOOT_ORDERS_KEY = "lps.bootOrders";

export function readBootOrders(store: Store): Map<string, "usb" | "nousb"> {
  try {
    const o = JSON.parse(store.getSetting(BOOT_ORDERS_KEY) ?? "{}") as Record<string, string>;
    return new Map(Object.entries(o).filter((e): e is [string, "usb" | "nousb"] => e[1] === "usb" || e[1] === "nousb"));
  } catch {
    return new Map();
  }
}

export function writeBootOrders(store: Store, orders: ReadonlyMap<string, "usb" | "nousb">): void {
  store.setSetting(BOOT_ORDERS_KEY, JSON.stringify(Object.fromEntries(orders)));
}

/** EVE's AppCommand.Command and LocalDevCmd.Command values. */
const APP_RESTART = 1;
const APP_PURGE = 2;
const DEV_SHUTDOWN = 1;
const DEV_POWEROFF = 2;
const DEV_REBOOT = 3;
const DEV_COLLECT_INFO = 4;

export interface CommandDeps {
  status(): DeviceStatus;
  /** An app's local command, as the console gives them (EVE: the local restart/purge counters). */
  localCommand(uuid: string, command: "start" | "stop" | "restart" | "purge"): void;
  /** Reboot and power off where evebox is init; absent in host mode (refused, with the reason). */
  power?: { request(action: "reboot" | "shutdown", by: string): { accepted: boolean; message: string } };
  store: Store;
  log: Logger;
}

export interface AcceptedCommand {
  command: number;
  timestamp: string;
  at: string;
}

/** The app commands done, by app uuid (each app's last one). */
export function acceptedAppCommands(store: Store): Record<string, AcceptedCommand> {
  try {
    return JSON.parse(store.getSetting(COMMANDS_KEY) ?? "{}");
  } catch {
    return {};
  }
}

/** The last device command done, if any. */
export function lastDevCommand(store: Store): AcceptedCommand | null {
  try {
    return JSON.parse(store.getSetting(DEVCMD_KEY) ?? "null");
  } catch {
    return null;
  }
}

/** Restart / purge, one per app per list, found by id or else by display name (EVE's rule); `by` names the source. */
export function applyAppCommands(deps: CommandDeps, list: LocalAppCmdList, by: string): void {
  const done = acceptedAppCommands(deps.store);
  const apps = deps.status().apps;
  const seen = new Set<string>();
  let changed = false;
  for (const c of list.appCommands ?? []) {
    const app = apps.find((a) => (c.id ? a.uuid === c.id.toLowerCase() : a.name === c.displayname));
    if (!app || seen.has(app.uuid)) continue;
    seen.add(app.uuid);
    const ts = String(c.timestamp ?? "0");
    const prev = done[app.uuid];
    if (prev && prev.command === c.command && prev.timestamp === ts) continue; // done already, also before a restart
    if (c.command !== APP_RESTART && c.command !== APP_PURGE) continue;
    const cmd = c.command === APP_RESTART ? "restart" : "purge";
    deps.log.info(`${by}: ${cmd} of app ${app.name} (its timestamp ${ts})`);
    deps.localCommand(app.uuid, cmd);
    done[app.uuid] = { command: c.command, timestamp: ts, at: new Date().toISOString() };
    changed = true;
  }
  if (changed) deps.store.setSetting(COMMANDS_KEY, JSON.stringify(done));
}

/** Stop every app, reboot, power off (refused in host mode), collect-info (not supported); once per timestamp. */
export function applyDevCommand(deps: CommandDeps, cmd: LocalDevCmd, by: string): void {
  if (!cmd.command) return;
  const ts = String(cmd.timestamp ?? "0");
  if (lastDevCommand(deps.store)?.timestamp === ts) return;
  deps.store.setSetting(DEVCMD_KEY, JSON.stringify({ command: cmd.command, timestamp: ts, at: new Date().toISOString() }));
  if (cmd.command === DEV_SHUTDOWN) {
    deps.log.info(`${by}: stop every app`);
    for (const a of deps.status().apps) deps.localCommand(a.uuid, "stop");
  } else if (cmd.command === DEV_REBOOT || cmd.command === DEV_POWEROFF) {
    const action = cmd.command === DEV_REBOOT ? "reboot" : "shutdown";
    const r = deps.power?.request(action, by) ?? { accepted: false, message: "evebox is not the device's init here (host mode): it does not reboot or power off the host" };
    deps.log.log(r.accepted ? "info" : "warn", `${by} asked to ${action}: ${r.message}`);
  } else if (cmd.command === DEV_COLLECT_INFO) {
    deps.log.warn(`${by} asked for collect-info: not supported by evebox`);
  }
}
