import { describe, expect, test } from "bun:test";
import { readSettings, SettingsError } from "./env.ts";

describe("readSettings", () => {
  test("an empty environment gives the defaults", () => {
    expect(readSettings({})).toEqual({
      data: null,
      listen: null,
      controller: null,
      apps: true,
      vms: true,
      dockerSocket: null,
      nft: "libnftables",
      datastoreAllowLocal: false,
      controllerTimers: {},
      checkpointMaxAgeMs: null,
      console: { perClient: null, total: null, idleTimeoutS: null },
      baseosFiles: null,
      metricsIntervalMs: null,
      sysfsRoot: null,
      lpsIntervalMs: null,
      metadataPort: null,
      trim: true,
    });
  });

  test("every variable is read into its typed field", () => {
    const s = readSettings({
      EVEBOX_DATA: "/d",
      EVEBOX_LISTEN: "0.0.0.0:80",
      EVEBOX_CONTROLLER: "https://c",
      EVEBOX_APPS: "off",
      EVEBOX_VMS: "off",
      EVEBOX_DOCKER_SOCKET: "/run/d.sock",
      EVEBOX_NFT: "cli",
      EVEBOX_DATASTORE_ALLOW_LOCAL: "1",
      EVEBOX_CONTROLLER_TIMERS: '{"configIntervalMs":500,"backoffMaxMs":1000}',
      EVEBOX_CHECKPOINT_MAX_AGE_DAYS: "2",
      EVEBOX_CONSOLE_MAX_CONNECTIONS_PER_CLIENT: "4",
      EVEBOX_CONSOLE_MAX_CONNECTIONS: "40",
      EVEBOX_CONSOLE_IDLE_TIMEOUT_S: "9",
      EVEBOX_BASEOS_SLOTS: "/s/A,/s/B",
      EVEBOX_BASEOS_BOOTENV: "/s/grubenv",
      EVEBOX_BASEOS_BOARD: "/s/board.json",
      EVEBOX_BASEOS_KEYS: "/s/keys",
      EVEBOX_BASEOS_VERSION: "1.2.3",
      EVEBOX_BASEOS_BOOTED: "B",
      EVEBOX_BASEOS_CHECK_MS: "200",
      EVEBOX_METRICS_INTERVAL_MS: "1000",
      EVEBOX_SYSFS_ROOT: "/tmp/fake-sys",
      EVEBOX_LPS_INTERVAL_MS: "250",
      EVEBOX_METADATA_PORT: "0",
      EVEBOX_TRIM: "off",
    });
    expect(s).toEqual({
      data: "/d",
      listen: "0.0.0.0:80",
      controller: "https://c",
      apps: false,
      vms: false,
      dockerSocket: "/run/d.sock",
      nft: "cli",
      datastoreAllowLocal: true,
      controllerTimers: { configIntervalMs: 500, backoffMaxMs: 1000 },
      checkpointMaxAgeMs: 2 * 86_400_000,
      console: { perClient: 4, total: 40, idleTimeoutS: 9 },
      baseosFiles: { slots: ["/s/A", "/s/B"], bootenv: "/s/grubenv", board: "/s/board.json", keys: "/s/keys", version: "1.2.3", booted: "B", checkMs: 200 },
      metricsIntervalMs: 1000,
      sysfsRoot: "/tmp/fake-sys",
      lpsIntervalMs: 250,
      metadataPort: 0,
      trim: false,
    });
    expect(() => readSettings({ EVEBOX_METADATA_PORT: "65536" })).toThrow("EVEBOX_METADATA_PORT: expected a TCP port 0-65535");
    expect(() => readSettings({ EVEBOX_METADATA_PORT: "80x" })).toThrow(SettingsError);
    expect(() => readSettings({ EVEBOX_TRIM: "no" })).toThrow("EVEBOX_TRIM: expected on or off, got no");
  });

  test("an empty value is the same as an unset one", () => {
    expect(readSettings({ EVEBOX_CONTROLLER: "", EVEBOX_APPS: "", EVEBOX_CONSOLE_MAX_CONNECTIONS: "" })).toMatchObject({ controller: null, apps: true, console: { total: null } });
  });

  test("the datastore switch takes the usual spellings of yes and no", () => {
    for (const v of ["1", "true", "YES", "on"]) expect(readSettings({ EVEBOX_DATASTORE_ALLOW_LOCAL: v }).datastoreAllowLocal).toBe(true);
    for (const v of ["0", "false", "no", "off"]) expect(readSettings({ EVEBOX_DATASTORE_ALLOW_LOCAL: v }).datastoreAllowLocal).toBe(false);
  });

  test("a value evebox cannot use is refused with the variable's name", () => {
    const refused = (env: Record<string, string>, message: string) => {
      let err: unknown;
      try {
        readSettings(env);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SettingsError);
      expect((err as Error).message).toBe(message);
    };
    refused({ EVEBOX_CONSOLE_MAX_CONNECTIONS: "0" }, "EVEBOX_CONSOLE_MAX_CONNECTIONS: expected a positive integer, got 0");
    refused({ EVEBOX_CONSOLE_IDLE_TIMEOUT_S: "1.5" }, "EVEBOX_CONSOLE_IDLE_TIMEOUT_S: expected a positive integer, got 1.5");
    refused({ EVEBOX_APPS: "no" }, "EVEBOX_APPS: expected on or off, got no");
    refused({ EVEBOX_NFT: "iptables" }, "EVEBOX_NFT: expected cli or libnftables, got iptables");
    refused({ EVEBOX_DATASTORE_ALLOW_LOCAL: "maybe" }, "EVEBOX_DATASTORE_ALLOW_LOCAL: expected 1 or 0, got maybe");
    refused({ EVEBOX_CONTROLLER_TIMERS: "{" }, "EVEBOX_CONTROLLER_TIMERS: not JSON: {");
    refused({ EVEBOX_CONTROLLER_TIMERS: "[1]" }, "EVEBOX_CONTROLLER_TIMERS: expected a JSON object of timers, got [1]");
    refused({ EVEBOX_CONTROLLER_TIMERS: '{"configInterval":5}' }, "EVEBOX_CONTROLLER_TIMERS: no timer configInterval (known: configIntervalMs, metricIntervalMs, logIntervalMs, flowlogIntervalMs, infoCheckIntervalMs, requestTimeoutMs, backoffBaseMs, backoffMaxMs)");
    refused({ EVEBOX_CONTROLLER_TIMERS: '{"configIntervalMs":-1}' }, "EVEBOX_CONTROLLER_TIMERS: configIntervalMs: expected a positive number of milliseconds, got -1");
    refused({ EVEBOX_CHECKPOINT_MAX_AGE_DAYS: "soon" }, "EVEBOX_CHECKPOINT_MAX_AGE_DAYS: expected a positive number of days, got soon");
    refused({ EVEBOX_METRICS_INTERVAL_MS: "100" }, "EVEBOX_METRICS_INTERVAL_MS: expected at least 500 milliseconds, got 100");
    refused({ EVEBOX_BASEOS_SLOTS: "/only-one" }, "EVEBOX_BASEOS_SLOTS: expected /path/slotA,/path/slotB, got /only-one");
    refused({ EVEBOX_BASEOS_SLOTS: "/a,/b", EVEBOX_BASEOS_BOARD: "/b.json" }, "EVEBOX_BASEOS_BOOTENV: the simulated boot loader environment is required with EVEBOX_BASEOS_SLOTS");
    refused({ EVEBOX_BASEOS_SLOTS: "/a,/b", EVEBOX_BASEOS_BOOTENV: "/g" }, "EVEBOX_BASEOS_BOARD: the board.json of the simulated device is required with EVEBOX_BASEOS_SLOTS");
    refused({ EVEBOX_BASEOS_SLOTS: "/a,/b", EVEBOX_BASEOS_BOOTENV: "/g", EVEBOX_BASEOS_BOARD: "/b.json", EVEBOX_BASEOS_BOOTED: "C" }, "EVEBOX_BASEOS_BOOTED: expected A or B, got C");
  });
});
