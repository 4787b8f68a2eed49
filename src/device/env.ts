// The one reading of evebox's environment variables: a typed, checked settings object made once at start (by
// cli.ts or init/) and passed down. Nothing else in src/ reads EVEBOX_* variables; a wrong value stops the start
// with one line that names the variable, instead of being half-used somewhere later.
import type { ControllerTimers } from "../controller/sync.ts";
import { StartupError } from "./errors.ts";

export type Env = Record<string, string | undefined>;

/** Off-device A/B slots as plain files (tests, console development); see src/baseos/README.md. */
export interface BaseOsFileSettings {
  slots: [string, string];
  bootenv: string;
  board: string;
  /** Directory of vendor public keys (*.pem); null: the device's /etc/evebox/vendor-keys. */
  keys: string | null;
  /** The running version; null: evebox's own. */
  version: string | null;
  /** The slot that "booted" (simulates a trial); null: the boot environment's active one. */
  booted: "A" | "B" | null;
  /** How often the trial's checks run; null: baseos/'s default. */
  checkMs: number | null;
}

export interface Settings {
  /** EVEBOX_DATA: the data directory (the --data flag wins). */
  data: string | null;
  /** EVEBOX_LISTEN: the console's HOST:PORT (the --listen flag wins). */
  listen: string | null;
  /** EVEBOX_CONTROLLER: the controller's URL (the --controller flag wins). */
  controller: string | null;
  /** EVEBOX_APPS=off: no app runtime (the console and the controller alone). */
  apps: boolean;
  /** EVEBOX_VMS=off: no VM runtime (VM apps then say they are not run). */
  vms: boolean;
  /** EVEBOX_DOCKER_SOCKET: the Docker engine's socket; null: /var/run/docker.sock. */
  dockerSocket: string | null;
  /** EVEBOX_NFT=cli: load firewall rules with the nft command instead of libnftables in-process. */
  nft: "libnftables" | "cli";
  /** EVEBOX_DATASTORE_ALLOW_LOCAL=1: datastores on loopback, link-local or this device's addresses are allowed. */
  datastoreAllowLocal: boolean;
  /** EVEBOX_CONTROLLER_TIMERS: JSON of ControllerTimers in milliseconds (short timers for tests and labs). */
  controllerTimers: Partial<ControllerTimers>;
  /** EVEBOX_CHECKPOINT_MAX_AGE_DAYS: the oldest checkpointed config applied at boot; null: no limit. */
  checkpointMaxAgeMs: number | null;
  /** EVEBOX_CONSOLE_MAX_CONNECTIONS_PER_CLIENT, …_MAX_CONNECTIONS, …_IDLE_TIMEOUT_S: lower the console's limits. */
  console: { perClient: number | null; total: number | null; idleTimeoutS: number | null };
  /** EVEBOX_BASEOS_*: off-device slots; null when EVEBOX_BASEOS_SLOTS is not set. */
  baseosFiles: BaseOsFileSettings | null;
  /** EVEBOX_METRICS_INTERVAL_MS: the metrics history's sampling interval (at least 500); null: 10 s. */
  metricsIntervalMs: number | null;
  /** EVEBOX_SYSFS_ROOT: where the hardware inventory reads sysfs (a fake tree in tests); null: /sys. */
  sysfsRoot: string | null;
  /** EVEBOX_LPS_INTERVAL_MS: how often the local profile server is asked and told (EVE: 1 min); null: 60 s. */
  lpsIntervalMs: number | null;
  /** EVEBOX_TRIM=off: keep the pages only the start touched (device/trim.ts returns them to the kernel). */
  trim: boolean;
  /** EVEBOX_METADATA_PORT: the apps' metadata server's port on the device (0: any free one); null: 8169. */
  metadataPort: number | null;
}

/** A variable with a value evebox cannot use: the start stops with this one line. */
export class SettingsError extends StartupError {}

const TIMER_NAMES: readonly (keyof ControllerTimers)[] = [
  "configIntervalMs",
  "metricIntervalMs",
  "logIntervalMs",
  "flowlogIntervalMs",
  "infoCheckIntervalMs",
  "requestTimeoutMs",
  "backoffBaseMs",
  "backoffMaxMs",
];

export function readSettings(env: Env = process.env): Settings {
  const str = (name: string): string | null => {
    const v = env[name];
    return v === undefined || v === "" ? null : v;
  };
  const positiveInt = (name: string): number | null => {
    const raw = str(name);
    if (raw === null) return null;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new SettingsError(`${name}: expected a positive integer, got ${raw}`);
    return n;
  };
  const onOff = (name: string): boolean => {
    const raw = str(name);
    if (raw === null || raw === "on") return true;
    if (raw === "off") return false;
    throw new SettingsError(`${name}: expected on or off, got ${raw}`);
  };
  const flag = (name: string): boolean => {
    const raw = str(name)?.trim();
    if (raw === undefined || raw === null) return false;
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    throw new SettingsError(`${name}: expected 1 or 0, got ${raw}`);
  };
  const nft = str("EVEBOX_NFT");
  if (nft !== null && nft !== "cli" && nft !== "libnftables") throw new SettingsError(`EVEBOX_NFT: expected cli or libnftables, got ${nft}`);
  const days = str("EVEBOX_CHECKPOINT_MAX_AGE_DAYS");
  if (days !== null && !(Number(days) > 0)) throw new SettingsError(`EVEBOX_CHECKPOINT_MAX_AGE_DAYS: expected a positive number of days, got ${days}`);
  return {
    data: str("EVEBOX_DATA"),
    listen: str("EVEBOX_LISTEN"),
    controller: str("EVEBOX_CONTROLLER"),
    apps: onOff("EVEBOX_APPS"),
    vms: onOff("EVEBOX_VMS"),
    dockerSocket: str("EVEBOX_DOCKER_SOCKET"),
    sysfsRoot: str("EVEBOX_SYSFS_ROOT"),
    nft: nft === "cli" ? "cli" : "libnftables",
    datastoreAllowLocal: flag("EVEBOX_DATASTORE_ALLOW_LOCAL"),
    controllerTimers: controllerTimers(str("EVEBOX_CONTROLLER_TIMERS")),
    checkpointMaxAgeMs: days === null ? null : Number(days) * 86_400_000,
    console: {
      perClient: positiveInt("EVEBOX_CONSOLE_MAX_CONNECTIONS_PER_CLIENT"),
      total: positiveInt("EVEBOX_CONSOLE_MAX_CONNECTIONS"),
      idleTimeoutS: positiveInt("EVEBOX_CONSOLE_IDLE_TIMEOUT_S"),
    },
    baseosFiles: baseosFiles(str, positiveInt),
    metricsIntervalMs: metricsInterval(positiveInt("EVEBOX_METRICS_INTERVAL_MS")),
    lpsIntervalMs: positiveInt("EVEBOX_LPS_INTERVAL_MS"),
    metadataPort: port(str("EVEBOX_METADATA_PORT")),
    trim: onOff("EVEBOX_TRIM"),
  };
}

function port(raw: string | null): number | null {
  if (raw === null) return null;
  const n = Number(raw);
  if (!/^\d{1,5}$/.test(raw) || n > 65535) throw new SettingsError(`EVEBOX_METADATA_PORT: expected a TCP port 0-65535 (0: any free one), got ${raw}`);
  return n;
}

function metricsInterval(ms: number | null): number | null {
  if (ms !== null && ms < 500) throw new SettingsError(`EVEBOX_METRICS_INTERVAL_MS: expected at least 500 milliseconds, got ${ms}`);
  return ms;
}

function controllerTimers(raw: string | null): Partial<ControllerTimers> {
  if (raw === null) return {};
  let t: unknown;
  try {
    t = JSON.parse(raw);
  } catch {
    throw new SettingsError(`EVEBOX_CONTROLLER_TIMERS: not JSON: ${raw}`);
  }
  if (!t || typeof t !== "object" || Array.isArray(t)) throw new SettingsError(`EVEBOX_CONTROLLER_TIMERS: expected a JSON object of timers, got ${raw}`);
  const out: Partial<ControllerTimers> = {};
  for (const [k, v] of Object.entries(t)) {
    if (!(TIMER_NAMES as readonly string[]).includes(k)) throw new SettingsError(`EVEBOX_CONTROLLER_TIMERS: no timer ${k} (known: ${TIMER_NAMES.join(", ")})`);
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw new SettingsError(`EVEBOX_CONTROLLER_TIMERS: ${k}: expected a positive number of milliseconds, got ${JSON.stringify(v)}`);
    out[k as keyof ControllerTimers] = v;
  }
  return out;
}

function baseosFiles(str: (n: string) => string | null, positiveInt: (n: string) => number | null): BaseOsFileSettings | null {
  const slots = str("EVEBOX_BASEOS_SLOTS");
  if (slots === null) return null;
  const [a, b, ...more] = slots.split(",");
  if (!a || !b || more.length) throw new SettingsError(`EVEBOX_BASEOS_SLOTS: expected /path/slotA,/path/slotB, got ${slots}`);
  const bootenv = str("EVEBOX_BASEOS_BOOTENV");
  if (bootenv === null) throw new SettingsError("EVEBOX_BASEOS_BOOTENV: the simulated boot loader environment is required with EVEBOX_BASEOS_SLOTS");
  const board = str("EVEBOX_BASEOS_BOARD");
  if (board === null) throw new SettingsError("EVEBOX_BASEOS_BOARD: the board.json of the simulated device is required with EVEBOX_BASEOS_SLOTS");
  const booted = str("EVEBOX_BASEOS_BOOTED");
  if (booted !== null && booted !== "A" && booted !== "B") throw new SettingsError(`EVEBOX_BASEOS_BOOTED: expected A or B, got ${booted}`);
  return { slots: [a, b], bootenv, board, keys: str("EVEBOX_BASEOS_KEYS"), version: str("EVEBOX_BASEOS_VERSION"), booted, checkMs: positiveInt("EVEBOX_BASEOS_CHECK_MS") };
}
