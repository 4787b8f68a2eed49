// evebox as PID 1 on a device: from the kernel's hand-over to a managed box on its LAN, and back down to reboot(2).
// The order matters and is printed on the physical console with the kernel's uptime, so a slow boot shows where
// it is slow. PID 1 must never exit (the kernel panics when it does): faults are reported and the device stays up.
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { UiAssets } from "../console/ui-assets.ts";
import type { PartStatus } from "../model/status.ts";
import type { DeviceSlots, RunningDevice } from "../device/run.ts";
import { type BootEnv, bootState, type BootState, readBootEnv, slotFromCmdline } from "../baseos/bootenv.ts";
import { TookTooLong, within } from "../lib/wait.ts";
import { killRaw, mount, REBOOT, reboot, sethostname, sync } from "./libc.ts";
import { isMounted, mountEarly, type MountReport, unmountAll } from "./mounts.ts";
import { PortManager, portConfigFromModel } from "./ports.ts";
import { watchPowerButton } from "./power-button.ts";
import { OrphanReaper } from "./reaper.ts";
import { Supervisor } from "./services.ts";
import { diskUsage, mountVfat, type PersistReport, preparePersist, remount } from "./storage.ts";
import { Watchdog } from "./watchdog.ts";

/** How long a config change waits before it is offered to the ports (the answer to its request goes out first). */
const PORT_CHANGE_DELAY_MS = 1000;

export const DEVICE_PATHS = {
  data: "/",
  config: "/config",
  persist: "/persist",
  efi: "/efi",
  runDir: "/run/evebox",
  board: "/etc/evebox/board.json",
  release: "/etc/evebox/release.json",
  grubenv: "/efi/EFI/BOOT/grubenv",
} as const;

export type PowerAction = "reboot" | "shutdown";

export interface InitOptions {
  version: string;
  ui: UiAssets | null;
}

interface Board {
  name: string;
  modules?: string[];
  watchdog?: { module: string | null; device: string } | null;
  leds?: { name: string; trigger: string }[];
}

function readJson<T>(path: string, fallback: T): T {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    return fallback;
  }
}

function uptime(): string {
  try {
    return Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]).toFixed(2).padStart(7);
  } catch {
    return "   ?   ";
  }
}

/** A line on the physical console, with the kernel's uptime (what the tests and the boot benchmark read). */
export function say(line: string): void {
  process.stdout.write(`[${uptime()}] evebox: ${line}\n`);
}

async function run(cmd: string[]): Promise<{ code: number; out: string }> {
  try {
    const p = Bun.spawn(cmd, { env: process.env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, out: `${out}${err}`.trim() };
  } catch (e) {
    return { code: 127, out: (e as Error).message };
  }
}

/** Loads the drivers the hardware asks for (each device's modalias), then the board's own list. */
async function coldplug(board: Board): Promise<string> {
  const aliases = new Set<string>();
  let buses: string[] = [];
  try {
    buses = readdirSync("/sys/bus");
  } catch {
    return "no /sys/bus";
  }
  for (const bus of buses) {
    let devices: string[] = [];
    try {
      devices = readdirSync(`/sys/bus/${bus}/devices`);
    } catch {
      continue;
    }
    for (const d of devices) {
      try {
        const a = readFileSync(`/sys/bus/${bus}/devices/${d}/modalias`, "utf8").trim();
        if (a) aliases.add(a);
      } catch {
        // no modalias: nothing to load for it
      }
    }
  }
  const modules = () => {
    try {
      return readFileSync("/proc/modules", "utf8")
        .split("\n")
        .map((l) => l.split(" ")[0]!)
        .filter(Boolean);
    } catch {
      return []; // a kernel without loadable modules
    }
  };
  const before = new Set(modules());
  if (aliases.size) await run(["modprobe", "-a", "-b", "-q", ...aliases]);
  if (board.modules?.length) await run(["modprobe", "-a", "-q", ...board.modules]);
  const loaded = modules().filter((m) => !before.has(m));
  return `${aliases.size} device aliases, ${loaded.length} modules loaded`;
}

function cmdlineValue(cmdline: string, key: string): string | null {
  const m = cmdline.match(new RegExp(`(?:^|\\s)${key.replace(/\./g, "\\.")}=(\\S+)`));
  return m ? m[1]! : null;
}

export class Init {
  readonly supervisor: Supervisor;
  readonly reaper: OrphanReaper;
  readonly watchdog: Watchdog;
  ports: PortManager | null = null;
  running: RunningDevice | null = null;
  private board: Board;
  private mounts: MountReport | null = null;
  private persist: PersistReport | null = null;
  private configMount: string | null = null;
  private boot: (BootState & { env: BootEnv | null; error: string | null }) | null = null;
  private stopping: PowerAction | null = null;
  private hostname = "evebox";
  private fingerprint = "";
  private lastBanner = "";
  private diskFull = false;
  private readonly cmdline: string;
  private readonly notes: { level: "info" | "warn" | "error"; type: string; message: string }[] = [];
  private readonly startSteps: string[] = [];
  private readonly serviceLines: { ts: Date; source: string; objectId: null; level: "info" | "warn" | "error"; message: string }[] = [];

  constructor(private readonly o: InitOptions) {
    this.board = readJson<Board>(DEVICE_PATHS.board, { name: "unknown" });
    this.cmdline = existsSync("/proc/cmdline") ? readFileSync("/proc/cmdline", "utf8").trim() : "";
    this.supervisor = new Supervisor({ log: (service, level, line) => this.serviceLog(service, level, line) });
    this.reaper = new OrphanReaper({ log: (level, m) => this.note(level, "init.reaper", m) });
    this.watchdog = new Watchdog(this.board.watchdog?.device ?? "/dev/watchdog", 5000, (ms) => say(`warn: the event loop stalled for ${(ms / 1000).toFixed(1)} s`));
  }

  /** A fact about the device's start or state: on the physical console unless routine, in the store's log and events. */
  private note(level: "info" | "warn" | "error", type: string, message: string): void {
    if (level !== "info") say(`${level}: ${message}`);
    if (!this.running) {
      this.notes.push({ level, type, message });
      return;
    }
    try {
      this.running.device.store.addLogs([{ ts: new Date(), source: "init", objectId: null, level, message }]);
      this.running.device.events.publish({ type, message });
    } catch {
      // a full disk must not stop the device from working
    }
  }

  private serviceLog(service: string, level: "info" | "warn" | "error", line: string): void {
    if (level !== "info") say(`${service}: ${line}`);
    const row = { ts: new Date(), source: service, objectId: null, level, message: line.slice(0, 4096) };
    if (!this.running) {
      // The services start before the store is open: their first lines wait (bounded) in memory.
      if (this.serviceLines.length < 5000) this.serviceLines.push(row);
      return;
    }
    try {
      this.running.device.store.addLogs([row]);
    } catch {
      // a full disk must not take the service's output down with it
    }
  }

  async start(): Promise<void> {
    process.umask(0o022);
    process.env.PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    process.env.HOME ??= "/root";
    process.env.EVEBOX_DATA = DEVICE_PATHS.data;
    // PID 1 must not die of a bug: report it and carry on.
    process.on("uncaughtException", (e) => say(`error: uncaught: ${(e as Error).stack ?? e}`));
    process.on("unhandledRejection", (e) => say(`error: unhandled rejection: ${(e as Error)?.stack ?? e}`));

    this.mounts = mountEarly();
    const release = readJson<{ board?: string; kernel?: string; image?: string }>(DEVICE_PATHS.release, {});
    say(`evebox ${this.o.version} is PID 1 (board ${this.board.name}, image ${release.image ?? "?"}, kernel ${release.kernel ?? "?"})`);
    for (const f of this.mounts.failed) this.note("error", "init.mount", `cannot mount ${f.target}: ${f.error}`);

    await this.reaper.start();
    process.on("SIGTERM", () => this.requestPower("reboot", "SIGTERM"));
    process.on("SIGINT", () => this.requestPower("reboot", "SIGINT (Ctrl-Alt-Del)"));
    process.on("SIGUSR2", () => this.requestPower("shutdown", "SIGUSR2"));
    // SIGPWR is not ours to take: Bun's JavaScriptCore suspends and resumes its own threads with it for garbage
    // collection (Bun 1.4.5 catches signal 30 from the start). Replacing that handler deadlocks the collector within
    // a minute (measured), so a power-fail daemon sends SIGUSR2 (power off) or SIGTERM (reboot) instead.
    try {
      writeFileSync("/proc/sys/kernel/ctrl-alt-del", "0"); // Ctrl-Alt-Del becomes SIGINT to PID 1
    } catch {
      // not fatal
    }

    say(`drivers: ${await coldplug(this.board)}`);
    await run(["ip", "link", "set", "lo", "up"]);
    const buttons = watchPowerButton(() => this.requestPower("shutdown", "the power button"));
    if (buttons.length) say(`power button: ${buttons.join(", ")} shuts the device down in order`);
    if (this.watchdog.start()) say(`watchdog ${this.watchdog.status().identity ?? ""} armed (${this.watchdog.status().timeoutSeconds ?? "?"} s), kicked every 5 s`);
    else this.note("warn", "init.watchdog", `no watchdog: ${this.watchdog.status().error}`);
    for (const led of this.board.leds ?? []) {
      try {
        writeFileSync(`/sys/class/leds/${led.name}/trigger`, led.trigger);
      } catch {
        // the board variant has no such LED
      }
    }

    await this.prepareStorage();
    this.readBootState();
    mkdirSync(join(DEVICE_PATHS.runDir, "docker"), { recursive: true });

    let t = performance.now();
    const lap = (what: string) => {
      this.startSteps.push(`${what} ${((performance.now() - t) / 1000).toFixed(1)} s`);
      t = performance.now();
    };
    const { DeviceIdentity } = await import("../controller/identity.ts");
    const identity = await DeviceIdentity.loadOrCreate(DEVICE_PATHS.config);
    lap("identity");
    this.hostname = `evebox-${identity.softSerial.replace(/-/g, "").slice(0, 8)}`;
    try {
      sethostname(this.hostname);
    } catch (e) {
      this.note("warn", "init.hostname", `cannot set the host name: ${(e as Error).message}`);
    }
    // The ports and the services start before the console's code loads (which keeps the event loop busy for
    // seconds under emulation): DHCP and the engines do their slow parts meanwhile, in their own processes.
    await Promise.race([this.startPortsEarly(), Bun.sleep(10_000)]);
    lap("ports");
    this.startServices();
    const { consoleTls } = await import("./console-tls.ts");
    const tls = await consoleTls(identity, this.hostname);
    this.fingerprint = tls.fingerprint;
    lap("certificate");
    // The console's code in pieces, each a macrotask, so the watchdog's kicks run in between.
    for (const load of [() => import("../store/index.ts"), () => import("../proto/index.ts"), () => import("../config/service.ts"), () => import("../console/app.ts"), () => import("../controller/sync.ts"), () => import("../device/run.ts")]) {
      await load();
      await Bun.sleep(0);
    }
    lap("code");
    await this.startDevice(tls);
    lap("device");
    say(`console ready: https on port 443, http on port 80 redirects to it (${this.startSteps.join(", ")})`);
    this.followPortConfig();
    this.startShell();
    setInterval(() => this.banner(), 2000);
    setInterval(() => this.checkDisk(), 10_000);
    this.checkDisk();
  }

  private async prepareStorage(): Promise<void> {
    const cfg = mountVfat("CONFIG", DEVICE_PATHS.config);
    if (cfg.error) {
      // Without CONFIG the identity still has to survive reboots: keep it on PERSIST.
      this.note("warn", "init.config", `${cfg.error}: /config is kept on PERSIST instead`);
    }
    this.configMount = cfg.error ? null : cfg.dev;
    this.persist = await preparePersist({ mountpoint: DEVICE_PATHS.persist });
    say(`persist: ${this.persist.outcome} ${this.persist.dev ?? ""}${this.persist.grownToBytes ? ` (grown to ${(this.persist.grownToBytes / 2 ** 30).toFixed(1)} GiB)` : ""}`);
    if (this.persist.note) this.note(this.persist.level, this.persist.outcome === "formatted" ? "init.persist-formatted" : "init.persist", this.persist.note);
    if (cfg.error) {
      mkdirSync(join(DEVICE_PATHS.persist, "config"), { recursive: true });
      const { mount, MS } = await import("./libc.ts");
      try {
        mount(join(DEVICE_PATHS.persist, "config"), DEVICE_PATHS.config, null, MS.BIND);
      } catch (e) {
        this.note("error", "init.config", `cannot bind /persist/config on /config: ${(e as Error).message}`);
      }
    }
    const efi = mountVfat("EFI System", DEVICE_PATHS.efi, { readOnly: true });
    if (efi.error) this.note("warn", "init.efi", efi.error);
  }

  private readBootState(): void {
    const booted = slotFromCmdline(this.cmdline);
    if (!booted) {
      this.boot = null;
      return;
    }
    let env: BootEnv | null = null;
    let error: string | null = null;
    try {
      env = readBootEnv(DEVICE_PATHS.grubenv);
    } catch (e) {
      error = `cannot read the boot environment: ${(e as Error).message}`;
    }
    this.boot = { ...bootState(booted, env ?? {}), env, error };
    say(`boot: slot ${booted} (${this.boot.outcome}${this.boot.trying ? `, trying ${this.boot.trying}` : ""}; active ${this.boot.active})`);
  }

  private async startDevice(tls: { cert: string; key: string }): Promise<void> {
    const [{ runDevice, StartupError }, { readSettings }] = await Promise.all([import("../device/run.ts"), import("../device/env.ts")]);
    for (let attempt = 1; ; attempt++) {
      try {
        const settings = readSettings();
        this.running = await runDevice({
          dataDir: DEVICE_PATHS.data,
          listen: "0.0.0.0:443",
          controller: null,
          version: this.o.version,
          ui: this.o.ui,
          tls,
          redirectHttp: "0.0.0.0:80",
          settings,
          power: { request: (action, by) => this.requestPower(action, `requested by ${by}`) },
          slots: this.slots(),
          parts: [() => this.systemPart(), () => this.servicesPart(), () => this.portsPart(), ...(this.boot ? [() => this.bootPart()] : [])],
          portLinks: () => this.ports?.heldLinks() ?? [],
          portsReport: () => this.ports?.report() ?? null,
          // The banner names the LAN addresses; runDevice's own lines would say 0.0.0.0.
          say: (l) => (/0\.0\.0\.0/.test(l) ? undefined : say(l.replace(/^evebox: /, ""))),
        });
        break;
      } catch (e) {
        // Without the console the device cannot be managed; keep trying and keep the watchdog fed meanwhile.
        const why = e instanceof StartupError ? e.message : ((e as Error).stack ?? String(e));
        say(`error: the device did not start (attempt ${attempt}): ${why}; trying again in 30 s`);
        await Bun.sleep(30_000);
      }
    }
    const device = this.running.device;
    try {
      if (this.serviceLines.length) device.store.addLogs(this.serviceLines.splice(0));
    } catch {
      // as above
    }
    for (const n of this.notes.splice(0)) {
      device.store.addLogs([{ ts: new Date(), source: "init", objectId: null, level: n.level, message: n.message }]);
      device.events.publish({ type: n.type, message: n.message });
    }
  }

  /** What baseos/ needs of the A/B slots (when booted from a slot with a readable boot environment). */
  private slots(): DeviceSlots | null {
    if (!this.boot || this.boot.error) return null;
    // A crash of the boot before (a failed trial's kernel panic) left its last words in pstore (efi_pstore).
    let pstoreDir: string | null = "/sys/fs/pstore";
    try {
      if (!isMounted(pstoreDir)) mount("pstore", pstoreDir, "pstore", 0);
    } catch (e) {
      this.note("warn", "init.pstore", `cannot read the kernel's crash records (pstore): ${(e as Error).message}`);
      pstoreDir = null;
    }
    const release = readJson<{ version?: string; evebox?: string }>(DEVICE_PATHS.release, {});
    const arch = readJson<{ arch?: string }>(DEVICE_PATHS.board, {}).arch ?? "unknown";
    return {
      booted: this.boot.booted,
      grubenv: DEVICE_PATHS.grubenv,
      remountEfi: (ro) => remount(DEVICE_PATHS.efi, ro),
      board: { board: this.board.name, arch },
      bootedVersion: release.version ?? release.evebox ?? this.o.version,
      pstoreDir,
      services: () => this.supervisor.status().map((s) => ({ name: s.name, state: s.state })),
      reboot: (reason) => this.requestPower("reboot", reason),
    };
  }

  private startServices(): void {
    const persist = DEVICE_PATHS.persist;
    const run = DEVICE_PATHS.runDir;
    mkdirSync(join(run, "containerd"), { recursive: true });
    writeFileSync(
      join(run, "containerd", "config.toml"),
      [`version = 2`, `root = "${persist}/containerd"`, `state = "/run/containerd"`, `[grpc]`, `  address = "/run/containerd/containerd.sock"`, ""].join("\n"),
    );
    // dockerd leaves the host's filtering, forwarding and bridges to evebox: app containers have networkMode none
    // (network/ attaches them), so Docker's iptables chains, FORWARD DROP policy and docker0 have no use here.
    writeFileSync(
      join(run, "docker", "daemon.json"),
      JSON.stringify({ "data-root": `${persist}/docker`, "exec-root": "/run/docker", "storage-driver": "overlay2", "log-driver": "json-file", "log-opts": { "max-size": "10m", "max-file": "2" }, "live-restore": false, iptables: false, ip6tables: false, "ip-forward": false, bridge: "none" }, null, 2),
    );
    const sockAnswers = (path: string) => async () => {
      if (!existsSync(path)) return false;
      return fetch("http://localhost/_ping", { unix: path } as RequestInit).then(
        (r) => r.ok,
        () => false,
      );
    };
    this.supervisor.start({
      name: "containerd",
      cmd: ["containerd", "--config", join(run, "containerd", "config.toml")],
      ready: async () => existsSync("/run/containerd/containerd.sock"),
      stopTimeoutMs: 10_000,
    });
    this.supervisor.start({
      name: "dockerd",
      cmd: ["dockerd", "--config-file", join(run, "docker", "daemon.json"), "--containerd", "/run/containerd/containerd.sock"],
      ready: sockAnswers("/var/run/docker.sock"),
      // dockerd stops the running containers itself (each its stop timeout, 10 s) before it exits.
      stopTimeoutMs: 40_000,
    });
    void this.supervisor.waitReady("dockerd", 180_000).then(
      () => say("services: containerd and dockerd are up"),
      (e) => this.note("error", "init.services", (e as Error).message),
    );
  }

  /**
   * The LAN ports come up as early as possible, with the last configuration that worked (kept on PERSIST, so it is
   * there before the store is open), so the console is reachable as soon as it answers; once the store is open,
   * the config's own port configuration is offered (and tested, and rolled back if it loses the LAN).
   */
  private startPortsEarly(): Promise<void> {
    const file = join(DEVICE_PATHS.persist, "ports.json");
    const read = (): Record<string, string> => readJson<Record<string, string>>(file, {});
    this.ports = new PortManager({
      supervisor: this.supervisor,
      settings: {
        get: (k) => read()[k] || null,
        set: (k, v) => {
          try {
            writeFileSync(`${file}.tmp`, JSON.stringify({ ...read(), [k]: v }));
            renameSync(`${file}.tmp`, file);
          } catch (e) {
            this.note("warn", "init.ports", `cannot record the port configuration: ${(e as Error).message}`);
          }
        },
      },
      runDir: DEVICE_PATHS.runDir,
      hostname: () => this.hostname,
      controllerUrl: () => this.running?.device.controllerUrl() ?? null,
      log: (level, m) => this.note(level, "init.ports", m),
      event: (type, message) => this.note(type === "ports.fallback" ? "error" : "info", type, message),
      testWindowMs: Number(cmdlineValue(this.cmdline, "evebox.port-test")) * 1000 || undefined,
      anyEthFallback: () => this.running?.device.config.model()?.model.settings.networkFallbackAnyEth ?? false,
    });
    return this.ports.start(null);
  }

  /** From now on the config decides the ports. */
  private followPortConfig(): void {
    const device = this.running!.device;
    const desired = () => {
      const cur = device.config.model();
      return portConfigFromModel(cur?.model ?? null, this.ports!.ethernet(), cur ? `config version ${cur.version}` : "no config");
    };
    const first = desired();
    void this.ports!.offer(first.config, first.problems);
    // A change waits a moment before it reaches the ports: the answer to the request that made it (a PUT that
    // takes the device off its LAN, on purpose or not) leaves before the addresses it would go out on change.
    // Before, it could be lost, and the client waited for it in vain (tests/image's port fallback, in CI).
    let pending: ReturnType<typeof setTimeout> | null = null;
    device.config.onChange(() => {
      if (pending) clearTimeout(pending);
      pending = setTimeout(() => {
        pending = null;
        const d = desired();
        void this.ports!.offer(d.config, d.problems);
      }, PORT_CHANGE_DELAY_MS);
    });
  }

  /** A root shell on a serial port, only when the kernel command line asks (evebox.shell=ttyS1): a debugging aid. */
  private startShell(): void {
    const tty = cmdlineValue(this.cmdline, "evebox.shell");
    if (!tty || !/^[A-Za-z0-9]+$/.test(tty) || !existsSync(`/dev/${tty}`)) return;
    this.supervisor.start({
      name: "shell",
      cmd: ["busybox", "getty", "-n", "-l", "/usr/lib/evebox/busybox/sh", "115200", tty, "vt100"],
      env: { EVEBOX_DATA: "/", HOME: "/root", PATH: `${process.env.PATH}:/usr/lib/evebox/busybox` },
      stopTimeoutMs: 1000,
    });
    this.note("warn", "init.shell", `a root shell is open on /dev/${tty} (evebox.shell on the kernel command line)`);
  }

  /** The physical console's welcome: where the console is, its certificate, and the setup link on first start. */
  private banner(): void {
    if (this.stopping || !this.ports) return;
    const addrs = this.ports.addresses();
    let token = "";
    try {
      token = readFileSync("/run/setup-token", "utf8").trim();
    } catch {
      token = "";
    }
    const text = [
      `console: ${addrs.length ? addrs.map((a) => `https://${a}/`).join("  ") : "waiting for an address on the LAN ports"} (${this.hostname})`,
      `console certificate SHA-256 fingerprint: ${this.fingerprint}`,
      ...(token && addrs.length ? [`first start: set the admin password at https://${addrs[0]}/setup?token=${token}`] : []),
    ];
    const key = text.join("\n");
    if (key === this.lastBanner) return;
    this.lastBanner = key;
    for (const l of text) say(l);
  }

  private checkDisk(): void {
    const u = diskUsage(DEVICE_PATHS.persist);
    if (!u || !u.totalBytes) return;
    const full = u.freeBytes < Math.max(64 * 1024 * 1024, u.totalBytes * 0.02);
    if (full !== this.diskFull) {
      this.diskFull = full;
      const msg = full
        ? `/persist is almost full (${(u.freeBytes / 2 ** 20).toFixed(0)} MiB free of ${(u.totalBytes / 2 ** 30).toFixed(1)} GiB): new images and volumes will fail`
        : `/persist has room again (${(u.freeBytes / 2 ** 20).toFixed(0)} MiB free)`;
      this.note(full ? "error" : "info", "init.disk", msg);
    }
  }

  // ---- parts shown in GET /api/v1/status

  private systemPart(): PartStatus {
    const p = this.persist;
    const wd = this.watchdog.status();
    const detail = [
      `persist ${p?.outcome ?? "?"}${p?.dev ? ` on ${p.dev}` : ""}${this.diskFull ? " (almost full)" : ""}`,
      this.configMount ? `config on ${this.configMount}` : "config on persist",
      wd.device ? `watchdog ${wd.identity ?? wd.device} (${wd.kicks} kicks)` : "no watchdog",
      `${this.reaper.reaped} orphans reaped`,
    ].join(", ");
    const state = p?.outcome === "tmpfs" || this.mounts?.failed.length ? "error" : this.diskFull || p?.level === "error" ? "degraded" : "ok";
    return { name: "init", state, detail };
  }

  private servicesPart(): PartStatus {
    const st = this.supervisor.status().filter((s) => !s.name.startsWith("dhcp-") && s.name !== "shell");
    const bad = st.filter((s) => s.state !== "running");
    return {
      name: "services",
      state: bad.length === 0 ? "ok" : bad.some((s) => s.starts > 3) ? "error" : "degraded",
      detail: st.map((s) => `${s.name} ${s.state}${s.state === "backoff" && s.lastExit ? ` (${s.lastExit}; ${s.starts} starts)` : ""}`).join(", "),
    };
  }

  private portsPart(): PartStatus {
    const st = this.ports?.status();
    if (!st) return { name: "ports", state: "idle", detail: "not started" };
    const ports = st.ports.map((p) => `${p.link ? `${p.logical} (${p.ifname}, ${p.link})` : p.ifname} ${p.addresses.join(" ") || (p.mode === "none" ? "no address" : `${p.mode}, no address yet`)}`).join(", ");
    const state = st.lastFailure ? "degraded" : st.ports.some((p) => p.addresses.length) ? "ok" : "degraded";
    return { name: "ports", state, detail: `${ports}${st.current ? ` [${st.current.source}]` : ""}${st.lastFailure ? `; ${st.lastFailure}` : ""}` };
  }

  private bootPart(): PartStatus {
    const b = this.boot!;
    const detail = `booted slot ${b.booted} (${b.outcome}), active slot ${b.active}${b.error ? `; ${b.error}` : ""}`;
    return { name: "boot", state: b.error || b.outcome === "fell-back" ? "degraded" : "ok", detail };
  }

  // ---- power

  requestPower(action: PowerAction, reason: string): { accepted: boolean; message: string } {
    if (this.stopping) return { accepted: false, message: `a ${this.stopping} is already in progress` };
    this.stopping = action;
    // Why the next boot happens, unless the console, a config command or a base-OS update recorded it already.
    try {
      this.running?.recordGoingDown(action, reason);
    } catch {
      // the store may be full or gone
    }
    // Answer the request first, then go down.
    setTimeout(() => void this.shutdown(action, reason), 300);
    return { accepted: true, message: `${action} in progress` };
  }

  /** Apps and the console, then the services, then every other process; sync, unmount, reboot(2). */
  private async shutdown(action: PowerAction, reason: string): Promise<never> {
    const cmd = action === "reboot" ? REBOOT.RESTART : REBOOT.POWER_OFF;
    say(`${action} (${reason}): stopping`);
    // If a step hangs, the device still goes down (and the watchdog, still armed, is the last resort).
    setTimeout(() => {
      say(`${action}: stopping took over 120 s; going down now`);
      sync();
      reboot(cmd);
    }, 120_000);
    try {
      this.running?.device.events.publish({ type: `device.${action}`, message: `${action}: ${reason}` });
    } catch {
      // the store may be full or gone
    }
    this.ports?.stop();
    // Each step is bounded, so one that hangs still leaves time to sync and unmount before the 120 s above.
    const step = async (what: string, f: () => Promise<unknown> | unknown, ms = 40_000) => {
      const t = performance.now();
      try {
        await within(what, ms, f);
        say(`${action}: ${what} (${((performance.now() - t) / 1000).toFixed(1)} s)`);
      } catch (e) {
        say(`${action}: ${e instanceof TookTooLong ? "" : `${what} failed: `}${(e as Error).message}`);
      }
    };
    await step("stopped the console and the app runtime", () => this.running?.stop(), 50_000);
    await step("stopped the services (dockerd stopped the apps)", () => this.supervisor.stopAll());
    await step("stopped every other process", () => this.killAll());
    await step("unmounted the file systems", () => {
      sync();
      unmountAll((l) => say(`${action}: ${l}`));
      sync();
    });
    say(`${action}: now`);
    reboot(cmd);
    // reboot(2) does not return; if it did, the kernel refused (no CAP_SYS_BOOT in a container).
    say(`${action}: reboot(2) returned; halting here`);
    return await new Promise<never>(() => {});
  }

  private async killAll(): Promise<void> {
    const others = () =>
      readdirSync("/proc").filter((d) => {
        if (!/^\d+$/.test(d) || d === "1") return false;
        try {
          // Kernel threads have no command line and cannot be signalled.
          return readFileSync(`/proc/${d}/cmdline`).length > 0 && realpathSync(`/proc/${d}/exe`) !== "";
        } catch {
          return false;
        }
      });
    if (!others().length) return;
    killRaw(-1, 15);
    const deadline = Date.now() + 5000;
    while (others().length && Date.now() < deadline) {
      this.reaper.scan();
      await Bun.sleep(100);
    }
    if (others().length) killRaw(-1, 9);
    await Bun.sleep(200);
    this.reaper.scan();
  }
}

/** The `evebox init` entry: PID 1 only. */
export async function runInit(o: InitOptions): Promise<never> {
  if (process.pid !== 1) throw new Error("evebox init runs as PID 1 (the kernel's init, or under `unshare --pid --fork --mount-proc`)");
  const init = new Init(o);
  try {
    await init.start();
  } catch (e) {
    say(`error: start-up failed: ${(e as Error).stack ?? e}`);
  }
  return await new Promise<never>(() => {});
}
