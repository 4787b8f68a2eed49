// The device's global settings: EVE's config items (`configItems`, docs/CONFIG-PROPERTIES.md) that mean something
// on evebox, typed and range-checked once, as part of the device model. An unknown key or a bad value is never
// fatal: it is listed with its key (console, ZInfoDevice.configItemStatus) and the setting keeps its default.
// Pure: no node:, no Bun APIs (ui/ bundles it).

export type LogLevel = "trace" | "debug" | "info" | "warning" | "error" | "fatal" | "panic";
/** logrus's levels, as EVE names them, most verbose first. */
export const LOG_LEVELS: readonly LogLevel[] = ["trace", "debug", "info", "warning", "error", "fatal", "panic"];

export interface GlobalSettings {
  configIntervalS: number;
  certIntervalS: number;
  metricIntervalS: number;
  deviceInfoIntervalS: number;
  sendTimeoutS: number;
  rebootNoNetworkS: number;
  testBaseImageUpdateS: number;
  downloadRetryS: number;
  appAllowVnc: boolean;
  /** memory.vmm.limit.MiB: QEMU's own memory beyond the guest's, for every VM (over each app's vmm_maxmem); 0: the app's. */
  vmmMemoryLimitMiB: number;
  networkFallbackAnyEth: boolean;
  /** maintenance.mode: "enabled"/"disabled" override the config's maintenance_mode; null ("none") does not. */
  maintenanceMode: boolean | null;
  logLevel: LogLevel;
  remoteLogLevel: LogLevel;
  /** app.boot.order: the device-wide VM boot order ("": firmware default; VmConfig.boot_order and the LPS win). */
  appBootOrder: "" | "usb" | "nousb";
}

type Kind = { type: "seconds" | "integer"; min: number; max: number } | { type: "boolean" } | { type: "enabled" } | { type: "tristate" } | { type: "loglevel" } | { type: "bootorder" };

export interface SettingSpec {
  key: string;
  field: keyof GlobalSettings;
  kind: Kind;
  default: GlobalSettings[keyof GlobalSettings];
  /** What the setting does on evebox (the README's table and the console say it). */
  effect: string;
  /** A valid value evebox will not apply, and why (it is then "ignored" and the default stays). */
  notApplied?: (value: GlobalSettings[keyof GlobalSettings]) => string | null;
}

const U32 = 4294967295;

/** Every config item evebox applies. The README's table lists the same. */
export const SETTINGS: readonly SettingSpec[] = [
  { key: "timer.config.interval", field: "configIntervalS", kind: { type: "seconds", min: 5, max: 86400 }, default: 60, effect: "how often the config is asked for (live: the next request uses it)" },
  { key: "timer.cert.interval", field: "certIntervalS", kind: { type: "seconds", min: 60, max: U32 }, default: 86400, effect: "how often the controller's certificates are fetched again" },
  { key: "timer.metric.interval", field: "metricIntervalS", kind: { type: "seconds", min: 5, max: 3600 }, default: 60, effect: "how often metrics are sent" },
  { key: "timer.deviceinfo.interval", field: "deviceInfoIntervalS", kind: { type: "seconds", min: 30, max: U32 }, default: 600, effect: "device info is sent at least this often, changed or not" },
  { key: "timer.send.timeout", field: "sendTimeoutS", kind: { type: "seconds", min: 0, max: 3600 }, default: 120, effect: "deadline of one request to the controller (0: evebox's default, 30 s)" },
  { key: "timer.reboot.no.network", field: "rebootNoNetworkS", kind: { type: "seconds", min: 120, max: U32 }, default: 604800, effect: "a managed device (evebox as init) reboots after this long without reaching its controller" },
  { key: "timer.test.baseimage.update", field: "testBaseImageUpdateS", kind: { type: "seconds", min: 30, max: 3600 }, default: 600, effect: "the test window of a base-OS update before it commits" },
  { key: "timer.download.retry", field: "downloadRetryS", kind: { type: "seconds", min: 60, max: U32 }, default: 600, effect: "the longest wait before a failed download is tried again" },
  { key: "app.allow.vnc", field: "appAllowVnc", kind: { type: "boolean" }, default: false, effect: "true: a VM app with enable_vnc and a vncPasswd also serves VNC on TCP port 5900 + vncDisplay (VNC authentication; a running VM restarts to take it); false: apps' VNC only through the authenticated console. Never a VNC port without a password" },
  { key: "memory.vmm.limit.MiB", field: "vmmMemoryLimitMiB", kind: { type: "integer", min: 0, max: 1048576 }, default: 0, effect: "QEMU's own memory beyond the guest's, for every VM, over each app's vmm_maxmem: the VM's cgroup is limited to memory + this (a running VM restarts to take it); 0: each app's vmm_maxmem (none: no limit)" },
  { key: "network.fallback.any.eth", field: "networkFallbackAnyEth", kind: { type: "enabled" }, default: false, effect: "without a working port config, every Ethernet port runs a DHCP client (evebox as init)" },
  { key: "maintenance.mode", field: "maintenanceMode", kind: { type: "tristate" }, default: null, effect: "enabled: maintenance mode (apps halted) whatever maintenance_mode says; disabled: never; none: as maintenance_mode" },
  { key: "debug.default.loglevel", field: "logLevel", kind: { type: "loglevel" }, default: "info", effect: "the lowest level of the device's log lines kept" },
  { key: "debug.default.remote.loglevel", field: "remoteLogLevel", kind: { type: "loglevel" }, default: "info", effect: "the lowest level of the device's log lines sent to the controller" },
  { key: "app.boot.order", field: "appBootOrder", kind: { type: "bootorder" }, default: "", effect: "the VMs' boot order where neither the LPS nor VmConfig.boot_order sets one: usb (USB devices first), nousb (never from USB), empty (firmware default); at each VM's next start" },
];

/** EVE config items that have no meaning on evebox: accepted and listed as such, never an error. */
export const WITHOUT_EFFECT: Readonly<Record<string, string>> = {
  "timer.use.config.checkpoint": "evebox runs its checkpointed config at once when offline (EVE has retired the key)",
  "timer.update.fallback.no.network": "a base-OS trial falls back on its own health checks, not on the controller",
  "debug.enable.ssh": "evebox runs no SSH server",
  "debug.enable.usb": "evebox does not filter USB input devices",
  "debug.enable.vga": "evebox does not switch the VGA console",
  "debug.enable.console": "evebox does not switch the device console",
  "debug.enable.vnc.shim.vm": "containers run without a shim VM",
  "gogc.percent": "evebox is not a Go program",
  "gogc.memory.limit.bytes": "evebox is not a Go program",
  "memory.eve.limit.bytes": "evebox sets no memory limit of its own",
  "memory.eve.limit.MiB": "evebox sets no memory limit of its own",
  "timer.hardwarehealth.interval": "evebox sends no hardware-health reports",
  "timer.location.cloud.interval": "evebox sends no location",
  "timer.location.app.interval": "evebox sends no location",
  "timer.ntpsources.interval": "evebox sends no NTP source reports",
  "newlog.allow.fastupload": "logs are uploaded as soon as the link allows",
  "airgap.mode": "evebox asks the Local Operator Console (loc_config) whenever a round with the controller fails, air-gapped or not; it has no connectivity tester to point at the LOC",
  "blob.download.max.retries": "a download that fails its verification is tried again with backoff (timer.download.retry), without a count limit",
};

export const DEFAULT_SETTINGS: GlobalSettings = Object.freeze(
  Object.fromEntries(SETTINGS.map((s) => [s.field, s.default])) as unknown as GlobalSettings,
);

export interface ConfigItemStatus {
  key: string;
  value: string;
  /** applied: in effect; invalid: refused (the default is used); unknown: not an item evebox knows; ignored: EVE's, no meaning here. */
  state: "applied" | "invalid" | "unknown" | "ignored";
  /** Why it is invalid, unknown or ignored. */
  detail: string | null;
}

/** The config's items read into the settings, and what became of each item. */
export function readConfigItems(items: Readonly<Record<string, string>>): { settings: GlobalSettings; items: ConfigItemStatus[] } {
  const settings: GlobalSettings = { ...DEFAULT_SETTINGS };
  const out: ConfigItemStatus[] = [];
  const specs = new Map(SETTINGS.map((s) => [s.key, s]));
  for (const [key, value] of Object.entries(items)) {
    const spec = specs.get(key);
    if (!spec) {
      const why = WITHOUT_EFFECT[key];
      out.push(why ? { key, value, state: "ignored", detail: why } : { key, value, state: "unknown", detail: "not a setting evebox knows" });
      continue;
    }
    const r = parseValue(spec.kind, value);
    if ("error" in r) out.push({ key, value, state: "invalid", detail: `${r.error}; the default (${show(spec.default)}) is used` });
    else if (spec.notApplied?.(r.value)) out.push({ key, value, state: "ignored", detail: spec.notApplied(r.value) });
    else {
      (settings as unknown as Record<string, unknown>)[spec.field] = r.value;
      out.push({ key, value, state: "applied", detail: null });
    }
  }
  return { settings, items: out };
}

function parseValue(kind: Kind, raw: string): { value: GlobalSettings[keyof GlobalSettings] } | { error: string } {
  const v = raw.trim();
  switch (kind.type) {
    case "seconds":
    case "integer": {
      if (!/^\d+$/.test(v)) return { error: `expected a whole number${kind.type === "seconds" ? " of seconds" : ""} ${kind.min}..${kind.max}` };
      const n = Number(v);
      if (n < kind.min || n > kind.max) return { error: `${n} is out of range ${kind.min}..${kind.max}` };
      return { value: n };
    }
    case "boolean":
      if (/^(true|1)$/i.test(v)) return { value: true };
      if (/^(false|0)$/i.test(v)) return { value: false };
      return { error: "expected true or false" };
    case "enabled":
      if (/^enabled$/i.test(v)) return { value: true };
      if (/^disabled$/i.test(v)) return { value: false };
      return { error: 'expected "enabled" or "disabled"' };
    case "tristate":
      if (/^enabled$/i.test(v)) return { value: true };
      if (/^disabled$/i.test(v)) return { value: false };
      if (/^none$/i.test(v) || v === "") return { value: null };
      return { error: 'expected "enabled", "disabled" or "none"' };
    case "bootorder":
      if (/^(usb|nousb)?$/i.test(v)) return { value: v.toLowerCase() as GlobalSettings["appBootOrder"] };
      return { error: 'expected "usb", "nousb" or ""' };
    case "loglevel": {
      const l = v.toLowerCase() === "warn" ? "warning" : v.toLowerCase();
      if ((LOG_LEVELS as readonly string[]).includes(l)) return { value: l as LogLevel };
      return { error: `expected one of ${LOG_LEVELS.join(", ")}` };
    }
  }
}

function show(v: unknown): string {
  return v === null ? "none" : String(v);
}

/** Whether a line of `level` passes a `threshold` (evebox's levels: debug, info, warn, error). */
export function levelPasses(level: string, threshold: LogLevel): boolean {
  const rank: Record<string, number> = { debug: 1, info: 2, warn: 3, error: 4 };
  return (rank[level] ?? 4) >= LOG_LEVELS.indexOf(threshold);
}

/** One supported setting as the console shows it: its effective value, where it came from, and its range. */
export interface SettingView {
  key: string;
  /** The value in effect, as the config would write it. */
  value: string;
  default: string;
  /** "42..3600 s", "true or false", … */
  range: string;
  effect: string;
  /** default: the config does not set it; applied: it does; invalid/ignored: it does, and why it is not in effect. */
  state: "default" | "applied" | "invalid" | "ignored";
  /** The config's value when it sets one. */
  configValue: string | null;
  detail: string | null;
}

/** The supported settings with their state in a model's items, and the other items (unknown, without effect). */
export function settingsView(settings: GlobalSettings, items: readonly ConfigItemStatus[]): { settings: SettingView[]; others: ConfigItemStatus[] } {
  const byKey = new Map(items.map((i) => [i.key, i]));
  const out = SETTINGS.map((s): SettingView => {
    const i = byKey.get(s.key);
    return {
      key: s.key,
      value: formatValue(s.kind, settings[s.field]),
      default: formatValue(s.kind, s.default),
      range: rangeText(s.kind),
      effect: s.effect,
      state: i ? (i.state as SettingView["state"]) : "default",
      configValue: i ? i.value : null,
      detail: i?.detail ?? null,
    };
  });
  const known = new Set(SETTINGS.map((s) => s.key));
  return { settings: out, others: items.filter((i) => !known.has(i.key)) };
}

function formatValue(kind: Kind, v: unknown): string {
  if (kind.type === "enabled") return v ? "enabled" : "disabled";
  if (kind.type === "tristate") return v === null ? "none" : v ? "enabled" : "disabled";
  return String(v);
}

function rangeText(kind: Kind): string {
  switch (kind.type) {
    case "seconds":
      return `${kind.min}..${kind.max} s`;
    case "integer":
      return `${kind.min}..${kind.max}`;
    case "boolean":
      return "true or false";
    case "enabled":
      return "enabled or disabled";
    case "tristate":
      return "enabled, disabled or none";
    case "loglevel":
      return LOG_LEVELS.join(", ");
    case "bootorder":
      return 'usb, nousb or ""';
  }
}
