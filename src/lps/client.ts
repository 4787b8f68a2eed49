// evebox as a client of a Local Profile Server, as EVE is one (eve docs/LPS.md, pkg/pillar/localcommand; the
// messages of lf-edge/eve-api proto/profile): the controller's config names the LPS (`local_profile_server`,
// host[:port], port 8888 by default) and the token it must present (`profile_server_token`). evebox asks it for a
// local profile and posts app, device, radio and network state to it over plain HTTP with protobuf bodies; the
// LPS answers with commands (restart or purge an app, stop the apps, reboot, power off), each carrying the token.
// As EVE, the LPS must be one of the device's apps: its address has to lie on one of the device's Local network
// instances (or be a name in one's static DNS entries); any other address is never contacted.
import type { DeviceModel } from "../config/model.ts";
import { effectiveBootOrder } from "../config/boot-order.ts";
import { swState } from "../controller/report.ts";
import type { Logger } from "../lib/log.ts";
import type { EventBus } from "../model/events.ts";
import type { DeviceStatus, PartStatus } from "../model/status.ts";
import {
  type AppBootConfigList,
  type AppBootInfoList,
  BootOrder,
  BootOrderSource,
  decodeMessage,
  encodeMessage,
  type LocalAppCmdList,
  type LocalAppInfoList,
  type LocalDevCmd,
  type LocalDevInfo,
  type LocalProfile,
  type NetworkInfo,
  type RadioConfig,
  type RadioStatus,
  ZDeviceState,
  type ZInfoLocation,
} from "../proto/index.ts";
import type { Store } from "../store/store.ts";
import { acceptedAppCommands, applyAppCommands, applyDevCommand, DEVCMD_KEY, readBootOrders, writeBootOrders } from "./commands.ts";

const PROTO_MIME = "application/x-proto-binary";
const P = "org.lfedge.eve.profile.";

export interface LpsTimers {
  /** local_profile (EVE: timer.config.interval), appinfo, devinfo and network (EVE: 1 min). */
  intervalMs: number;
  /** After a 404, an endpoint is asked again this much later (EVE: 1 h). */
  throttledMs: number;
  requestTimeoutMs: number;
}

export const DEFAULT_LPS_TIMERS: LpsTimers = { intervalMs: 60_000, throttledMs: 3_600_000, requestTimeoutMs: 10_000 };

export interface LpsDeps {
  /** The current config's device model (null: none yet). */
  model(): DeviceModel | null;
  status(): DeviceStatus;
  /** The device's UUID at its controller, when it has one. */
  deviceUuid(): string | null;
  /** An app's local command, as the console gives them (EVE: the local restart/purge counters). */
  localCommand(uuid: string, command: "start" | "stop" | "restart" | "purge"): void;
  /** The local profile changed: the apps' activation is to be planned again. */
  profileChanged(): void;
  /** Reboot and power off where evebox is init; absent in host mode (refused, with the reason). */
  power?: { request(action: "reboot" | "shutdown", by: string): { accepted: boolean; message: string } };
  store: Store;
  events: EventBus;
  log: Logger;
  timers?: Partial<LpsTimers>;
  /**
   * The device's location (EVE: from a GNSS receiver in a cellular modem), posted to …/location when it changes.
   * Absent on evebox's devices today: no GNSS receiver is read, so nothing is posted.
   */
  location?: () => ZInfoLocation | null;
}

type Endpoint = "local_profile" | "appinfo" | "devinfo" | "radio" | "network" | "appbootinfo" | "location";

export interface LpsStatus {
  configured: boolean;
  url: string | null;
  /** Why the LPS is not contacted (an address off the device's app networks), or the last fault. */
  error: string | null;
  lastContact: string | null;
  localProfile: string | null;
  radioSilence: boolean;
  endpoints: Record<Endpoint, { lastStatus: number | null; throttled: boolean; lastError: string | null }>;
}

export class LpsClient {
  private readonly timers: LpsTimers;
  private readonly log: Logger;
  private stopped = true;
  private readonly handles = new Map<Endpoint, ReturnType<typeof setTimeout>>();
  private readonly state: LpsStatus["endpoints"];
  private unsubscribe: (() => void) | null = null;
  private localProfile: string | null = null;
  private radioSilence = false;
  private lastContact: Date | null = null;
  private error: string | null = null;
  private lastTarget = "";

  constructor(private readonly deps: LpsDeps) {
    this.timers = { ...DEFAULT_LPS_TIMERS, ...deps.timers };
    this.log = deps.log;
    const fresh = () => ({ lastStatus: null, throttled: false, lastError: null });
    this.state = { local_profile: fresh(), appinfo: fresh(), devinfo: fresh(), radio: fresh(), network: fresh(), appbootinfo: fresh(), location: fresh() };
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    for (const e of Object.keys(this.state) as Endpoint[]) this.schedule(e, 0);
    // EVE posts app info when an app's state changes, not only on its timer.
    this.unsubscribe = this.deps.events.subscribe((ev) => {
      if (ev.type === "app.state" || ev.type === "app.removed") this.soon("appinfo");
      if (ev.type.startsWith("config.")) for (const e of Object.keys(this.state) as Endpoint[]) this.soon(e);
    });
  }

  stop(): void {
    this.stopped = true;
    for (const h of this.handles.values()) clearTimeout(h);
    this.handles.clear();
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  /** The LPS's profile override (null: none; the config's global profile applies). */
  profile(): string | null {
    return this.localProfile;
  }

  status(): LpsStatus {
    const target = this.target();
    return {
      configured: !!this.deps.model()?.localProfileServer,
      url: "url" in target ? target.url : null,
      error: "error" in target ? target.error : this.error,
      lastContact: this.lastContact?.toISOString() ?? null,
      localProfile: this.localProfile,
      radioSilence: this.radioSilence,
      endpoints: this.state,
    };
  }

  part(): PartStatus {
    const s = this.status();
    if (!s.configured) return { name: "lps", state: "idle", detail: "no local profile server in the config" };
    if (s.error) return { name: "lps", state: "degraded", detail: `local profile server ${s.url ?? ""}: ${s.error}`.replace("  ", " ") };
    return { name: "lps", state: "ok", detail: `local profile server ${s.url}${s.localProfile ? `; local profile ${JSON.stringify(s.localProfile)}` : ""}` };
  }

  // ---- where the LPS is

  /** The LPS's URL, or why it is not contacted. */
  private target(): { url: string; token: string } | { error: string } | { none: true } {
    const model = this.deps.model();
    const lps = model?.localProfileServer;
    if (!model || !lps) return { none: true };
    let ip = lps.host;
    if (!isIpv4(ip)) {
      // A name: the static DNS entries of the device's network instances (EVE's rule), nothing else resolves it.
      const hit = model.networkInstances.flatMap((n) => n.staticDns).find((d) => d.host.toLowerCase() === lps.host.toLowerCase());
      const addr = hit?.addrs.find(isIpv4);
      if (!addr) return { error: `${lps.host} is not an address, nor a name in a network instance's static DNS entries (the LPS must be one of the device's apps)` };
      ip = addr;
    }
    const ni = model.networkInstances.find((n) => n.kind === "local" && n.subnet && inSubnet(ip, n.subnet));
    if (!ni) return { error: `${ip} is on none of the device's Local network instances (the LPS must be one of the device's apps); not contacted` };
    return { url: `http://${ip}:${lps.port}`, token: lps.token };
  }

  // ---- the endpoints

  private schedule(e: Endpoint, ms: number): void {
    if (this.stopped) return;
    const old = this.handles.get(e);
    if (old) clearTimeout(old);
    this.handles.set(
      e,
      setTimeout(() => {
        this.handles.delete(e);
        void this.run(e).finally(() => this.schedule(e, this.state[e].throttled ? this.timers.throttledMs : this.timers.intervalMs));
      }, ms),
    );
  }

  /** Soon, unless the endpoint is throttled (a 404 said the LPS does not implement it). */
  private soon(e: Endpoint): void {
    if (!this.state[e].throttled) this.schedule(e, 200);
  }

  private async run(e: Endpoint): Promise<void> {
    const t = this.target();
    if ("none" in t) {
      if (this.localProfile !== null) this.setProfile(null);
      return;
    }
    if ("error" in t) {
      if (this.lastTarget !== t.error) this.log.warn(`local profile server: ${t.error}`);
      this.lastTarget = t.error;
      return;
    }
    if (this.lastTarget !== t.url) {
      this.lastTarget = t.url;
      for (const s of Object.values(this.state)) s.throttled = false;
      this.log.info(`local profile server at ${t.url}`);
    }
    try {
      switch (e) {
        case "local_profile":
          return await this.getProfile(t);
        case "appinfo":
          return await this.postAppInfo(t);
        case "devinfo":
          return await this.postDevInfo(t);
        case "radio":
          return await this.postRadio(t);
        case "network":
          return await this.postNetwork(t);
        case "appbootinfo":
          return await this.postAppBootInfo(t);
        case "location":
          return await this.postLocation(t);
      }
    } catch (err) {
      this.fault(e, err);
    } finally {
      const faults = Object.entries(this.state).filter(([, s]) => s.lastError);
      this.error = faults.length ? faults.map(([k, s]) => `${k}: ${s.lastError}`).join("; ") : null;
    }
  }

  private fault(e: Endpoint, err: unknown): void {
    const msg = (err as Error).message;
    if (this.state[e].lastError !== msg) this.log.warn(`local profile server ${e}: ${msg}`);
    this.state[e].lastError = msg;
  }

  /** One call; `null` when there is nothing to read (204, 404 throttles the endpoint). */
  private async call(e: Endpoint, t: { url: string }, method: "GET" | "POST", body: Uint8Array | null): Promise<Uint8Array | null> {
    const r = await fetch(`${t.url}/api/v1/${e}`, {
      method,
      headers: body ? { "Content-Type": PROTO_MIME } : {},
      body: body as Uint8Array<ArrayBuffer> | null,
      signal: AbortSignal.timeout(this.timers.requestTimeoutMs),
      redirect: "manual",
    });
    const bytes = new Uint8Array(await r.arrayBuffer());
    this.lastContact = new Date();
    this.state[e].lastStatus = r.status;
    this.state[e].throttled = r.status === 404;
    if (r.status !== 200 && r.status !== 201 && r.status !== 204 && r.status !== 404) throw new Error(`answered ${r.status}`);
    this.state[e].lastError = null;
    return r.status === 200 || r.status === 201 ? (bytes.byteLength ? bytes : null) : null;
  }

  private decode<T extends object>(type: string, bytes: Uint8Array): T {
    try {
      return decodeMessage<T>(P + type, bytes);
    } catch (e) {
      throw new Error(`the answer is not a ${type}: ${(e as Error).message}`);
    }
  }

  private tokenOk(e: Endpoint, given: string | undefined, t: { token: string }): boolean {
    if (t.token && given === t.token) return true;
    const msg = "invalid token submitted by the local profile server; its commands are ignored";
    if (this.state[e].lastError !== msg) this.log.warn(`local profile server ${e}: ${msg}`);
    this.state[e].lastError = msg;
    return false;
  }

  private async getProfile(t: { url: string; token: string }): Promise<void> {
    const bytes = await this.call("local_profile", t, "GET", null);
    if (!bytes) return this.setProfile(null);
    const p = this.decode<LocalProfile>("LocalProfile", bytes);
    if (!this.tokenOk("local_profile", p.serverToken, t)) return;
    this.setProfile(p.localProfile || null);
  }

  private setProfile(p: string | null): void {
    if (p === this.localProfile) return;
    this.localProfile = p;
    this.log.info(p ? `local profile ${JSON.stringify(p)} set by the local profile server` : "no local profile: the config's global profile applies");
    this.deps.events.publish({ type: "lps.profile", message: p ? `local profile ${p}` : "local profile cleared", data: { profile: p } });
    this.deps.profileChanged();
  }

  private async postAppInfo(t: { url: string; token: string }): Promise<void> {
    const done = acceptedAppCommands(this.deps.store);
    const info: LocalAppInfoList = {
      appsInfo: this.deps.status().apps.map((a) => ({
        id: a.uuid,
        version: String(a.version ?? ""),
        name: a.name,
        state: swState(a.state),
        ...(a.error ? { err: { description: a.error } } : {}),
        ...(done[a.uuid] ? { lastCmdTimestamp: done[a.uuid]!.timestamp } : {}),
      })),
    };
    const bytes = await this.call("appinfo", t, "POST", encodeMessage(P + "LocalAppInfoList", info));
    if (!bytes) return;
    const list = this.decode<LocalAppCmdList>("LocalAppCmdList", bytes);
    if (!list.appCommands?.length || !this.tokenOk("appinfo", list.serverToken, t)) return;
    applyAppCommands(this.deps, list, "local profile server");
  }

  private async postDevInfo(t: { url: string; token: string }): Promise<void> {
    const s = this.deps.status();
    const last = this.deps.store.getSetting(DEVCMD_KEY);
    const started = new Date(s.device.startedAt);
    const info: LocalDevInfo = {
      deviceUuid: this.deps.deviceUuid() ?? "",
      state: ZDeviceState.ZDEVICE_STATE_ONLINE,
      bootTime: { seconds: Math.floor(started.getTime() / 1000), nanos: 0 },
      ...(last ? { lastCmdTimestamp: JSON.parse(last).timestamp } : {}),
    };
    const bytes = await this.call("devinfo", t, "POST", encodeMessage(P + "LocalDevInfo", info));
    if (!bytes) return;
    const cmd = this.decode<LocalDevCmd>("LocalDevCmd", bytes);
    if (!cmd.command || !this.tokenOk("devinfo", cmd.serverToken, t)) return;
    applyDevCommand(this.deps, cmd, "local profile server");
  }

  private async postRadio(t: { url: string; token: string }): Promise<void> {
    // evebox drives no radios (no WiFi or cellular modems of its own): the state is what was asked, nothing more.
    const status: RadioStatus = { radioSilence: this.radioSilence };
    const bytes = await this.call("radio", t, "POST", encodeMessage(P + "RadioStatus", status));
    if (!bytes) return;
    const cfg = this.decode<RadioConfig>("RadioConfig", bytes);
    if (!this.tokenOk("radio", cfg.serverToken, t)) return;
    if (!!cfg.radioSilence !== this.radioSilence) {
      this.radioSilence = !!cfg.radioSilence;
      this.log.info(`radio silence ${this.radioSilence ? "on" : "off"} (this device has no radios evebox drives)`);
    }
  }

  /**
   * EVE's appbootinfo: each app's effective boot order and who set it (LPS, controller, device property; only VMs
   * boot by it). A 200 answer is the LPS's whole boot config: each app in `app_configs` (by id, else display name)
   * gets its `usb_boot`, every other app (and BOOT_ORDER_UNSPECIFIED) none; kept in the store and applied at the
   * VM's next start. 204 keeps it; 404 clears it (EVE: no config at the LPS).
   */
  private async postAppBootInfo(t: { url: string; token: string }): Promise<void> {
    const model = this.deps.model();
    if (!model) return;
    const vms = model.apps;
    const mine = readBootOrders(this.deps.store);
    const ORDER = { usb: BootOrder.BOOT_ORDER_USB, nousb: BootOrder.BOOT_ORDER_NOUSB } as const;
    const SOURCE = { lps: BootOrderSource.BOOT_ORDER_SOURCE_LPS, controller: BootOrderSource.BOOT_ORDER_SOURCE_CONTROLLER, "device-property": BootOrderSource.BOOT_ORDER_SOURCE_DEVICE_PROPERTY } as const;
    const info: AppBootInfoList = {
      appsBootInfo: vms.map((a) => {
        const e = effectiveBootOrder(a, model.settings, mine.get(a.uuid));
        return { id: a.uuid, displayname: a.name, bootOrder: e.order ? ORDER[e.order] : BootOrder.BOOT_ORDER_UNSPECIFIED, source: e.source ? SOURCE[e.source] : BootOrderSource.BOOT_ORDER_SOURCE_UNSPECIFIED };
      }),
    };
    const bytes = await this.call("appbootinfo", t, "POST", encodeMessage(P + "AppBootInfoList", info));
    const next = new Map(mine);
    if (this.state.appbootinfo.lastStatus === 404) next.clear();
    else if (bytes || this.state.appbootinfo.lastStatus === 200) {
      next.clear();
      const cfg = bytes ? this.decode<AppBootConfigList>("AppBootConfigList", bytes) : {};
      if (!this.tokenOk("appbootinfo", cfg.serverToken, t)) return;
      for (const c of cfg.appConfigs ?? []) {
        const app = vms.find((a) => (c.id ? a.uuid === c.id.toLowerCase() : a.name === c.displayname));
        if (!app) continue;
        const order = c.usbBoot === BootOrder.BOOT_ORDER_USB ? "usb" : c.usbBoot === BootOrder.BOOT_ORDER_NOUSB ? "nousb" : null;
        if (order) next.set(app.uuid, order);
      }
    }
    const show = (m: Map<string, string>) => JSON.stringify([...m].sort());
    if (show(next) === show(mine)) return;
    writeBootOrders(this.deps.store, next);
    this.log.info(`local profile server: VM boot orders ${next.size ? [...next].map(([u, o]) => `${vms.find((a) => a.uuid === u)?.name ?? u}: ${o}`).join(", ") : "cleared"} (at each VM's next start)`);
    this.deps.profileChanged();
  }

  /** EVE's …/location: the device's location when it changed; no source (no GNSS receiver here), nothing sent. */
  private lastLocation = "";
  private async postLocation(t: { url: string; token: string }): Promise<void> {
    const loc = this.deps.location?.() ?? null;
    if (!loc) return;
    const key = JSON.stringify({ ...loc, utcTimestamp: undefined });
    if (key === this.lastLocation) return;
    await this.call("location", t, "POST", encodeMessage("org.lfedge.eve.info.ZInfoLocation", loc));
    this.lastLocation = key;
  }

  /** The LPS's VM boot orders (appbootinfo), by app uuid. */
  bootOrders(): Map<string, "usb" | "nousb"> {
    return readBootOrders(this.deps.store);
  }

  private async postNetwork(t: { url: string; token: string }): Promise<void> {
    const model = this.deps.model();
    const info: NetworkInfo = {
      latestConfig: (model?.ports ?? []).map((p) => ({
        logicalLabel: p.name,
        portAddresses: { interfaceName: p.resolution.kind === "ifname" ? p.resolution.ifname : "" },
        configApplied: p.resolution.kind !== "error",
        useDhcp: !p.addr,
        ...(p.addr ? { ipAddresses: [p.addr] } : {}),
        localModificationsAllowed: false,
      })),
    };
    // A locally declared network config in the answer is not applied: the controller allows no local changes here.
    await this.call("network", t, "POST", encodeMessage(P + "NetworkInfo", info));
  }
}

function isIpv4(s: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(s) && s.split(".").every((o) => Number(o) <= 255);
}

function inSubnet(ip: string, cidr: string): boolean {
  const [net, bits] = cidr.split("/");
  if (!net || !isIpv4(net) || !isIpv4(ip)) return false;
  const n = Number(bits ?? 32);
  const num = (a: string) => a.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  const size = 2 ** (32 - n);
  return Math.floor(num(ip) / size) === Math.floor(num(net) / size);
}
