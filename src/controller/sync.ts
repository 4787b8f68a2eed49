// The controller link: onboarding (certs, register, uuid), the config loop, attestation when the controller asks
// for it, and reporting (info, metrics, logs) through the outbox. Offline is the normal case: every fault is
// retried with backoff and shown in status; none stops the device or touches the running config.
import type { HardwareFacts } from "./hardware-report.ts";
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync, statfsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ConfigService } from "../config/service.ts";
import { type GlobalSettings, levelPasses } from "../config/settings.ts";
import { scanBinary } from "../config/bounds.ts";
import { ConfigRejected } from "../config/problems.ts";
import { backoffDelay, jittered } from "../lib/backoff.ts";
import { createLogger, type Logger } from "../lib/log.ts";
import type { ControllerLink, DeviceStatus, PartStatus } from "../model/status.ts";
import type { EventBus } from "../model/events.ts";
import type { DevicePortsReport } from "../model/ports.ts";
import type { DeviceOpsReport } from "../model/ops.ts";
import {
  AttestVersionType,
  CommonHashAlgorithm,
  decodeMessage,
  encodeMessage,
  lookupType,
  ZAttestReqType,
  ZAttestResponseCode,
  ZCertType,
  type ConfigRequest,
  type FlowMessage,
  type UuidResponse,
  type ZAttestReq,
  type ZAttestResponse,
  type ZRegisterMsg,
} from "../proto/index.ts";
import type { LogRow, Store } from "../store/store.ts";
import { type AppSample, sampleDevice } from "../telemetry/metrics.ts";
import { appBundle, bundleLines, deviceBundle, entryFromRow } from "../telemetry/newlogs.ts";
import { Checkpoints, CONTROLLER_CERTS, LAST_CONFIG } from "./checkpoint.ts";
import { type ControllerCerts, verifyControllerCerts } from "./certs.ts";
import { envelopeReport, type PatchEnvelopeReport } from "../config/patch-envelopes.ts";
import { CipherError, CipherOpener, type EcdhIdentity, loadOrCreateEcdh } from "./cipher.ts";
import type { SecretOpener } from "../config/cipher.ts";
import { EnvelopeError, open, seal, unwrap } from "./envelope.ts";
import { callController, type HttpResult, isProto, parseControllerAddress, PROTO_MIME, serverFileForm, TransportError } from "./http.ts";
import { DeviceIdentity, IDENTITY_FILES, writePrivate } from "./identity.ts";
import { Outbox, type OutboxCounters, type OutboxDepth } from "./outbox.ts";
import { encodeInfo, encodeMetrics, goneInfo, infoDigest, infoItems, metricMsg } from "./report.ts";
import { splitPemCertificates } from "./x509.ts";
import { compoundRequest, isNewer, type LocCommands, locPath, type LocStatus, readCompound } from "./loc.ts";

const API = "/api/v2/edgedevice";
const EDGE_DEV_CONFIG = "org.lfedge.eve.config.EdgeDevConfig";
const CONFIG_RESPONSE = "org.lfedge.eve.config.ConfigResponse";
const FLOW_MESSAGE = "org.lfedge.eve.flowlog.FlowMessage";

export interface ControllerTimers {
  /** How often the config is asked for (EVE: timer.config.interval, 60 s). */
  configIntervalMs: number;
  metricIntervalMs: number;
  logIntervalMs: number;
  /** How often flow records are collected and queued (EVE's zedrouter: 120 s). */
  flowlogIntervalMs: number;
  /** How often status is compared with what was last reported (changes announced by events go at once). */
  infoCheckIntervalMs: number;
  /** Deadline of one call, headers and body. */
  requestTimeoutMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export const DEFAULT_TIMERS: ControllerTimers = {
  configIntervalMs: 60_000,
  metricIntervalMs: 60_000,
  logIntervalMs: 10_000,
  flowlogIntervalMs: 120_000,
  infoCheckIntervalMs: 60_000,
  requestTimeoutMs: 30_000,
  backoffBaseMs: 1_000,
  backoffMaxMs: 300_000,
};

/** What the controller part needs of the device. */
export interface DeviceView {
  status(): DeviceStatus;
  name(): string;
  /** The base OS partitions as ZInfoDevSW entries (baseos/); none (undefined) off an A/B device. */
  baseosSwList?: () => Record<string, unknown>[] | undefined;
  /** The host's I/O and its assignment groups (hardware/), reported as EVE does; absent: none reported. */
  hardware?: () => HardwareFacts;
  /** Device operations (ops/): commands handled, boot reason, maintenance mode. */
  ops?: () => DeviceOpsReport;
  /** The device's own ports (init's, as PID 1), for ZInfoDevice.systemAdapter; absent in host mode. */
  ports?: () => DevicePortsReport | null;
}

export interface ControllerDeps {
  configDir: string;
  persistDir: string;
  /** The data directory; its filesystem is the reported storage. */
  dataDir: string;
  version: string;
  store: Store;
  events: EventBus;
  config: ConfigService;
  device: DeviceView;
  identity: DeviceIdentity;
  /** From --controller / EVEBOX_CONTROLLER: written to config/server, which is the lasting setting. */
  url?: string | null;
  timers?: Partial<ControllerTimers>;
  outboxMaxBytes?: number;
  /** An operator's limit on the age of the checkpoint applied at boot; null (the default) means no limit. */
  checkpointMaxAgeMs?: number | null;
  appMetrics?: () => AppSample[];
  /** What each app last posted to the metadata server's appCustomStatus (ZInfoAppInstMetaData). */
  appCustomStatus?: () => { uuid: string; data: Uint8Array }[];
  /** The patch envelopes' states as the metadata server sees them (a volume file not downloaded yet); null: from the config alone. */
  patchEnvelopes?: () => PatchEnvelopeReport[] | null;
  /** Flow records since the last call, one FlowMessage per app interface (network/'s `collectFlows`). */
  flowRecords?: (devUuid: string) => Promise<FlowMessage[]>;
  /** Where the part logs; by default the store, as source "controller". */
  log?: Logger;
  /** The local commands a Local Operator Console's compound config carries (EVE: the LPS command handling). */
  locCommands?: (c: LocCommands) => void;
}

export type Connection = "not-configured" | "connecting" | "onboarding" | "online" | "offline" | "error";

export interface ControllerStatus {
  mode: "local" | "managed";
  url: string | null;
  connection: Connection;
  detail: string;
  lastContact: string | null;
  lastError: { phase: string; message: string; at: string } | null;
  consecutiveFailures: number;
  deviceUuid: string | null;
  registration: string | null;
  attestation: { state: "not-needed" | "done" | "failed"; at: string | null; detail: string | null };
  config: {
    hash: string | null;
    timestamp: string | null;
    appliedAt: string | null;
    fromCheckpoint: boolean;
    lastReceivedAt: string | null;
    refused: { hash: string; reason: string; at: string } | null;
  };
  identity: { serial: string; softSerial: string; fingerprint: string; onboardingCertificate: boolean };
  rootCertificate: { present: boolean; subjects: string[] };
  controllerCertificate: { subject: string; hash: string } | null;
  /** The device's ECDH exchange certificate (object-level encryption) and whether the controller has it. */
  ecdhCertificate: { hash: string | null; sent: boolean; detail: string | null };
  /** The Local Operator Console (`loc_config`): the config's source while the controller cannot be reached. */
  loc: LocStatus;
  outbox: OutboxDepth & OutboxCounters;
}

/** A fault of one step of the sync, kept for status. `offline` faults are the controller being unreachable. */
export class SyncError extends Error {
  constructor(
    readonly phase: string,
    message: string,
    readonly offline = false,
  ) {
    super(message);
  }
}

/** A sleep that `wake()` cuts short. */
class Waiter {
  private wakeUp: (() => void) | null = null;
  private pending = false;
  sleep(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        self.wakeUp = null;
        resolve();
      }
      this.wakeUp = done;
    });
  }
  wake(): void {
    if (this.wakeUp) this.wakeUp();
    else this.pending = true;
  }
}

export class Controller implements ControllerLink {
  readonly identity: DeviceIdentity;
  readonly outbox: Outbox;
  readonly timers: ControllerTimers;
  private readonly checkpoints: Checkpoints;
  private base: string | null = null;
  private certs: ControllerCerts | null = null;
  /** Moves whenever the controller's certificates are (re)verified: opened cipher blocks are then re-read. */
  private certsEpoch = 0;
  private ecdh: EcdhIdentity | null = null;
  private ecdhDetail: string | null = null;
  private stopped = true;
  private readonly syncWaiter = new Waiter();
  private readonly drainWaiter = new Waiter();
  private readonly loops: Promise<void>[] = [];
  private readonly timerHandles: ReturnType<typeof setInterval>[] = [];
  private unsubscribe: (() => void)[] = [];
  private infoTimer: ReturnType<typeof setTimeout> | null = null;
  private connection: Connection = "not-configured";
  private detail = "";
  private lastContact: Date | null = null;
  private lastError: ControllerStatus["lastError"] = null;
  private failures = 0;
  private drainFailures = 0;
  private registration: string | null = null;
  private attestation: ControllerStatus["attestation"] = { state: "not-needed", at: null, detail: null };
  private refused: ControllerStatus["config"]["refused"] = null;
  private lastReceivedAt: Date | null = null;
  private fromCheckpoint = false;
  private readonly link = { failures: 0, success: 0, lastFailure: null as Date | null, lastSuccess: null as Date | null, authVerifyFailure: 0 };
  private firstBoot = false;
  private certsAt = 0;
  private certsStale = false;
  private deviceInfoAt = 0;
  private readonly log: Logger;
  private readonly loc: Omit<LocStatus, "url" | "lastCmdTimestamp"> = { lastContact: null, lastConfig: null, configFromLoc: false, sent: { info: 0, metrics: 0, failed: 0 }, lastError: null };

  private constructor(private readonly deps: ControllerDeps) {
    this.log = deps.log ?? createLogger("controller", deps.store);
    this.identity = deps.identity;
    this.timers = { ...DEFAULT_TIMERS, ...deps.timers };
    this.outbox = new Outbox(deps.store, deps.outboxMaxBytes ?? 16 * 1024 * 1024);
    this.checkpoints = new Checkpoints(deps.persistDir);
  }

  /** Builds the part; `--controller` (deps.url) is written to config/server, the setting that lasts. */
  static create(deps: ControllerDeps): Controller {
    const c = new Controller(deps);
    if (deps.url) c.writeServer(parseControllerAddress(deps.url));
    c.base = c.readServer();
    c.firstBoot = c.state("boot.seen") === null;
    c.setState("boot.seen", new Date().toISOString());
    return c;
  }

  // ---- lifecycle

  /** Applies the checkpointed config when managed, then starts the sync, drain and reporting loops. */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    try {
      this.ecdh ??= await loadOrCreateEcdh(this.deps.configDir, this.identity.device);
    } catch (e) {
      this.ecdhDetail = (e as Error).message;
      this.log.error(`object-level encryption is off: ${this.ecdhDetail}`);
    }
    if (this.base) await this.applyCheckpoint();
    this.connection = this.base ? "connecting" : "not-configured";
    this.loops.push(this.syncLoop(), this.drainLoop());
    const t = this.timers;
    this.scheduleMetrics();
    this.timerHandles.push(
      setInterval(() => this.guard("logs", () => this.enqueueLogs()), t.logIntervalMs),
      setInterval(() => this.guard("info", () => this.reportInfo()), t.infoCheckIntervalMs),
      setInterval(() => void this.enqueueFlows().catch((e) => this.log.error(`flowlog: ${(e as Error).message}`)), t.flowlogIntervalMs),
    );
    // Changes announced by the device are reported soon, not at the next periodic check.
    this.unsubscribe.push(
      this.deps.events.subscribe((e) => {
        if (!e.type.startsWith("controller.")) this.scheduleInfo();
      }),
      this.deps.config.onChange(() => this.scheduleInfo()),
    );
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.metricsTimer) clearTimeout(this.metricsTimer);
    for (const h of this.timerHandles) clearInterval(h);
    this.timerHandles.length = 0;
    if (this.infoTimer) clearTimeout(this.infoTimer);
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
    this.syncWaiter.wake();
    this.drainWaiter.wake();
    // A call in flight ends by its own deadline at the latest.
    await Promise.race([Promise.all(this.loops), Bun.sleep(this.timers.requestTimeoutMs + 1000)]);
    this.loops.length = 0;
  }

  // ---- ControllerLink (device/ and the console)

  url(): string | null {
    return this.base;
  }

  part(): PartStatus {
    if (!this.base) return { name: "controller", state: "idle", detail: "local mode: no controller configured" };
    const refused = (this.refused ? `; last config refused: ${this.refused.reason}` : "") + (this.connection !== "online" && this.loc.configFromLoc && this.locUrl() ? `; running the config from the Local Operator Console ${this.locUrl()}` : "");
    switch (this.connection) {
      case "online":
        return { name: "controller", state: this.refused ? "degraded" : "ok", detail: `online with ${this.base}${refused}` };
      case "error":
        return { name: "controller", state: "error", detail: `${this.detail}${refused}` };
      default:
        return { name: "controller", state: "degraded", detail: `${this.connection}: ${this.detail || this.base}${refused}` };
    }
  }

  status(): ControllerStatus {
    const root = this.readRoot();
    const iso = (d: Date | null) => (d ? d.toISOString() : null);
    return {
      mode: this.base ? "managed" : "local",
      url: this.base,
      connection: this.connection,
      detail: this.detail,
      lastContact: iso(this.lastContact),
      lastError: this.lastError,
      consecutiveFailures: this.failures,
      deviceUuid: this.state("uuid"),
      registration: this.registration ?? this.state("registration"),
      attestation: this.attestation,
      config: {
        hash: this.state("config.hash"),
        timestamp: this.state("config.timestamp"),
        appliedAt: this.state("config.appliedAt"),
        fromCheckpoint: this.fromCheckpoint,
        lastReceivedAt: iso(this.lastReceivedAt),
        refused: this.refused,
      },
      identity: {
        serial: this.identity.serial,
        softSerial: this.identity.softSerial,
        fingerprint: this.identity.fingerprint,
        onboardingCertificate: this.identity.onboard !== null,
      },
      rootCertificate: { present: root !== null, subjects: root ? rootSubjects(root) : [] },
      controllerCertificate: this.certs ? { subject: this.certs.signer.subject, hash: Buffer.from(this.certs.signer.hash).toString("hex") } : null,
      ecdhCertificate: {
        hash: this.ecdh ? Buffer.from(this.ecdh.hash.subarray(0, 16)).toString("hex") : null,
        sent: !!this.ecdh && this.state("ecdh.sent") === Buffer.from(this.ecdh.hash).toString("hex"),
        detail: this.ecdhDetail,
      },
      loc: { ...this.loc, url: this.locUrl(), lastCmdTimestamp: this.state("loc.cmdTimestamp") ?? "0" },
      outbox: { ...this.outbox.depth(), ...this.outbox.counts() },
    };
  }

  /**
   * Sets the controller (an air-gapped device enrolled later): config/server and, when given,
   * config/root-certificate.pem. A different controller starts onboarding afresh.
   */
  async configure(input: { url?: unknown; rootCertificate?: unknown }): Promise<ControllerStatus> {
    if (input.url === undefined && input.rootCertificate === undefined) throw new Error("give url and/or rootCertificate");
    let base: string | undefined;
    if (input.url !== undefined) {
      if (typeof input.url !== "string") throw new Error("url: expected a string like https://controller.example:443");
      base = parseControllerAddress(input.url);
    }
    if (input.rootCertificate !== undefined) {
      if (typeof input.rootCertificate !== "string") throw new Error("rootCertificate: expected PEM text");
      const certs = splitPemCertificates(input.rootCertificate);
      if (certs.length === 0) throw new Error("rootCertificate: no PEM certificate (-----BEGIN CERTIFICATE-----) in the text");
      try {
        rootSubjects(certs.join(""));
      } catch (e) {
        throw new Error(`rootCertificate: not a valid X.509 certificate: ${(e as Error).message}`);
      }
      writePrivate(join(this.deps.configDir, IDENTITY_FILES.rootCert), certs.join(""));
      this.certs = null; // re-verify the controller's chain against the new root
    }
    if (base !== undefined && base !== this.base) {
      this.writeServer(base);
      this.base = base;
      this.certs = null;
      for (const k of ["uuid", "registration", "config.hash", "integrityToken", "info.reported", "ecdh.sent"]) this.deleteState(k);
      this.refused = null;
      this.registration = null;
      this.connection = "connecting";
      this.detail = "";
    }
    this.deps.events.publish({ type: "controller.configured", message: `controller set to ${this.base}` });
    this.failures = 0;
    this.syncWaiter.wake();
    return this.status();
  }

  /**
   * Opens the config's cipher blocks (config/cipher.ts) with the device's ECDH key and the controller's ECDH
   * certificates as last verified (from /certs, or the checkpoint when offline).
   */
  cipher(): SecretOpener {
    return {
      epoch: () => this.certsEpoch,
      open: (block, ctx) => {
        if (!this.ecdh) return Promise.reject(new CipherError(`this device has no ECDH certificate${this.ecdhDetail ? `: ${this.ecdhDetail}` : " yet"}`));
        return new CipherOpener(this.ecdh, () => this.certs, () => this.certsEpoch).open(block, ctx);
      },
      openBytes: (block, ctx) => {
        if (!this.ecdh) return Promise.reject(new CipherError(`this device has no ECDH certificate${this.ecdhDetail ? `: ${this.ecdhDetail}` : " yet"}`));
        return new CipherOpener(this.ecdh, () => this.certs, () => this.certsEpoch).openBytes(block, ctx);
      },
    };
  }

  // ---- the sync loop: certs → register → uuid → config, again every interval

  private async syncLoop(): Promise<void> {
    while (!this.stopped) {
      let delay: number;
      try {
        delay = await this.syncOnce();
      } catch (e) {
        delay = this.syncFailed(e);
      }
      await this.syncWaiter.sleep(delay);
    }
  }

  /** One round; returns when to run the next one. */
  private async syncOnce(): Promise<number> {
    if (!this.base) {
      this.connection = "not-configured";
      return 3_600_000; // until configure() wakes the loop
    }
    if (!this.readRoot()) {
      throw new SyncError("trust", `no ${IDENTITY_FILES.rootCert} in ${this.deps.configDir}: set the controller's root certificate (console or file) to connect`);
    }
    try {
      const certAge = Date.now() - this.certsAt;
      if (!this.certs || this.certsStale || certAge >= (this.setting("timer.cert.interval", "certIntervalS") ?? 86_400) * 1000) await this.fetchCerts();
      if (!this.state("uuid")) await this.onboard();
      await this.sendEcdhCertificate(this.state("uuid")!);
      await this.fetchConfig();
      // controllercert_confighash changed with the config just applied: the controller's certificates are new.
      if (this.certsStale) await this.fetchCerts();
    } catch (e) {
      // EVE: the controller failed this round and the config names a LOC: ask the LOC. The controller's fault
      // stays what the round reports (and backs off on); the LOC's outcome is in status().loc.
      const loc = this.locUrl();
      const uuid = this.state("uuid");
      if (loc && uuid && !this.stopped) await this.syncViaLoc(loc, uuid);
      throw e;
    }
    if (this.failures > 0 || this.connection !== "online") {
      this.log.info(`online with ${this.base}`);
      this.deps.events.publish({ type: "controller.online", message: `controller ${this.base} reachable` });
    }
    this.failures = 0;
    this.connection = "online";
    this.detail = "";
    this.drainWaiter.wake();
    return jittered(this.configIntervalMs(), [0.8, 1]);
  }

  // ---- the config's items (config/settings.ts) over the timers given at start: set in the config, they win

  /** The value of a config item when the current config sets it validly; null otherwise. */
  private setting<K extends keyof GlobalSettings>(key: string, field: K): GlobalSettings[K] | null {
    const m = this.deps.config.model()?.model;
    if (!m || !m.configItemStatus.some((i) => i.key === key && i.state === "applied")) return null;
    return m.settings[field];
  }

  configIntervalMs(): number {
    const s = this.setting("timer.config.interval", "configIntervalS");
    return s !== null ? s * 1000 : this.timers.configIntervalMs;
  }

  metricIntervalMs(): number {
    const s = this.setting("timer.metric.interval", "metricIntervalS");
    return s !== null ? s * 1000 : this.timers.metricIntervalMs;
  }

  private requestTimeoutMs(): number {
    const s = this.setting("timer.send.timeout", "sendTimeoutS");
    return s ? s * 1000 : this.timers.requestTimeoutMs;
  }

  private metricsTimer: ReturnType<typeof setTimeout> | null = null;

  /** Metrics every timer.metric.interval, read again for each (a change applies from the next one). */
  private scheduleMetrics(): void {
    if (this.stopped) return;
    this.metricsTimer = setTimeout(() => {
      this.guard("metrics", () => this.enqueueMetrics());
      // EVE: every metrics period, metrics and all info go to the LOC too (best effort, never queued).
      if (this.locUrl()) void this.reportToLoc();
      this.scheduleMetrics();
    }, this.metricIntervalMs());
  }

  private syncFailed(e: unknown): number {
    const err = e instanceof SyncError ? e : e instanceof TransportError ? new SyncError("network", e.message, true) : new SyncError("internal", (e as Error).message);
    const wasFailing = this.failures > 0;
    this.failures++;
    this.connection = err.offline ? "offline" : "error";
    this.detail = err.message;
    this.lastError = { phase: err.phase, message: err.message, at: new Date().toISOString() };
    // Log the change, not every retry: a week offline must not fill the log (and the outbox) with the same line.
    if (!wasFailing || this.failures % 50 === 0) {
      this.log.log(err.offline ? "warn" : "error", `${err.phase}: ${err.message} (retrying with backoff; the device keeps running its current config)`);
      this.deps.events.publish({ type: "controller.fault", message: `controller ${err.phase}: ${err.message}`, data: { phase: err.phase, offline: err.offline } });
    }
    const cap = Math.min(this.timers.backoffMaxMs, Math.max(this.timers.configIntervalMs, this.timers.backoffBaseMs));
    return backoffDelay({ baseMs: this.timers.backoffBaseMs, maxMs: cap, jitter: [0.5, 1] }, this.failures);
  }

  private async call(method: "GET" | "POST", path: string, body: Uint8Array | null): Promise<HttpResult> {
    const uuid = this.state("uuid");
    const headers: Record<string, string> = uuid
      ? { "X-Request-ID": uuid }
      : { "X-Serial-Number": this.identity.serial, "X-Soft-Serial": this.identity.softSerial };
    try {
      const r = await callController({ base: this.base!, rootPem: this.readRoot()! }, method, API + path, body, { timeoutMs: this.requestTimeoutMs(), headers });
      this.lastContact = new Date();
      if (r.status >= 500) this.linkFailed();
      else this.linkOk();
      return r;
    } catch (e) {
      this.linkFailed();
      throw e;
    }
  }

  private async fetchCerts(): Promise<void> {
    this.connection = this.state("uuid") ? this.connection : "onboarding";
    const r = await this.call("GET", "/certs", null);
    if (r.status !== 200) throw httpFault("certs", r);
    if (!isProto(r)) throw new SyncError("certs", `GET /certs answered Content-Type "${r.contentType}", not ${PROTO_MIME}`);
    try {
      // As EVE: the envelope of /certs is not verified (it bootstraps verification); its chain is.
      const { payload } = unwrap(r.body);
      this.certs = await verifyControllerCerts(payload, this.readRoot()!);
      this.certsEpoch++;
    } catch (e) {
      throw new SyncError("certs", (e as Error).message);
    }
    this.checkpoints.write(CONTROLLER_CERTS, this.certs.raw);
    this.certsAt = Date.now();
    this.certsStale = false;
    const hash = this.deps.config.model()?.model.device.controllerCertHash;
    if (hash) this.setState("controller.certHash", hash);
  }

  /** Verifies a signed answer; an unknown signer makes evebox fetch the controller's certificates once and retry. */
  private async openSigned(bytes: Uint8Array, phase: string): Promise<Uint8Array> {
    try {
      return await open(bytes, this.certs!.signer);
    } catch (e) {
      if (!(e instanceof EnvelopeError)) throw e;
      if (e.fault === "unknown-signer") {
        await this.fetchCerts();
        try {
          return await open(bytes, this.certs!.signer);
        } catch (e2) {
          this.link.authVerifyFailure++;
          throw new SyncError(phase, `${(e2 as Error).message} (also after fetching the controller's certificates again)`);
        }
      }
      this.link.authVerifyFailure++;
      throw new SyncError(phase, e.message);
    }
  }

  private async onboard(): Promise<void> {
    this.connection = "onboarding";
    const ob = this.identity.onboard;
    if (ob && this.state("registration") === null) {
      const msg: ZRegisterMsg = {
        pemCert: new TextEncoder().encode(Buffer.from(this.identity.device.pem).toString("base64")),
        serial: this.identity.serial,
        softSerial: this.identity.softSerial,
      };
      const body = await seal(encodeMessage("org.lfedge.eve.register.ZRegisterMsg", msg), ob, { onboarding: true });
      const r = await this.call("POST", "/register", body);
      const id = `serial "${this.identity.serial || "(none)"}", soft serial ${this.identity.softSerial}`;
      switch (r.status) {
        case 201:
          this.registration = "registered (201)";
          this.setState("registration", this.registration);
          break;
        case 200:
          this.registration = "already registered with this certificate (200)";
          this.setState("registration", this.registration);
          break;
        case 409:
          this.registration = `conflict (409): the controller has another device certificate for this onboarding certificate and ${id}; remove the old device there`;
          break;
        case 403:
          this.registration = `refused (403): the controller does not accept this onboarding certificate with ${id}; pre-register the device there`;
          break;
        case 401:
          this.registration = "refused (401): the controller does not accept the onboarding certificate or its signature";
          break;
        default:
          if (r.status >= 500) throw httpFault("register", r);
          this.registration = `register answered ${r.status}${bodyText(r)}`;
      }
    }
    const body = await seal(encodeMessage("org.lfedge.eve.uuid.UuidRequest", {}), this.identity.device);
    const r = await this.call("POST", "/uuid", body);
    if (r.status !== 200) {
      if (r.status >= 500) throw httpFault("uuid", r);
      const why = this.registration && !this.state("registration")
        ? `registration failed: ${this.registration}`
        : ob
          ? `the controller does not know this device (uuid answered ${r.status})`
          : `the controller does not know this device certificate (fingerprint ${this.identity.fingerprint}; uuid answered ${r.status}): add the device there, or put ${IDENTITY_FILES.onboardCert} and ${IDENTITY_FILES.onboardKey} in ${this.deps.configDir}`;
      throw new SyncError("onboarding", why);
    }
    if (!isProto(r)) throw new SyncError("uuid", `POST /uuid answered Content-Type "${r.contentType}"`);
    const payload = await this.openSigned(r.body, "uuid");
    let resp: UuidResponse;
    try {
      resp = decodeMessage<UuidResponse>("org.lfedge.eve.uuid.UuidResponse", payload);
    } catch (e) {
      throw new SyncError("uuid", `malformed UuidResponse: ${(e as Error).message}`);
    }
    if (!resp.uuid || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(resp.uuid)) {
      throw new SyncError("uuid", `the controller sent no valid device UUID ("${resp.uuid ?? ""}")`);
    }
    this.setState("uuid", resp.uuid.toLowerCase());
    if (this.state("logs.cursor") === null) {
      // First contact: upload the recent past, not the whole journal.
      const max = (this.deps.store.sqlite.query("SELECT COALESCE(MAX(id), 0) AS n FROM logs").get() as { n: number }).n;
      this.setState("logs.cursor", String(Math.max(0, max - 5000)));
    }
    this.log.info(`onboarded with ${this.base} as device ${resp.uuid}`);
    this.deps.events.publish({ type: "controller.onboarded", message: `onboarded as device ${resp.uuid}`, data: { uuid: resp.uuid } });
    this.scheduleInfo();
  }

  private async fetchConfig(retriedAfterAttest = false): Promise<void> {
    const uuid = this.state("uuid")!;
    const req: ConfigRequest = { configHash: this.state("config.hash") ?? "" };
    const token = this.state("integrityToken");
    if (token) req.integrityToken = Buffer.from(token, "base64");
    const body = await seal(encodeMessage("org.lfedge.eve.config.ConfigRequest", req), this.identity.device);
    const r = await this.call("POST", `/id/${uuid}/config`, body);
    if (r.status === 304) {
      this.lastReceivedAt = new Date();
      this.checkpoints.touch(LAST_CONFIG);
      return;
    }
    if (r.status === 403) {
      if (retriedAfterAttest) throw new SyncError("attestation", "the controller still refuses the config request (403) after attestation");
      await this.attest(uuid);
      return this.fetchConfig(true);
    }
    if (r.status === 400 || r.status === 404) {
      // EVE: the device was deleted in the controller, or it changed our UUID. Onboard again.
      this.deleteState("uuid");
      this.deleteState("ecdh.sent");
      throw new SyncError("config", `the controller does not know device ${uuid} (${r.status}); onboarding again`);
    }
    if (r.status !== 200) throw httpFault("config", r);
    await this.acceptConfig(r);
  }

  private async acceptConfig(r: HttpResult): Promise<void> {
    this.lastReceivedAt = new Date();
    if (!isProto(r)) {
      this.refuse("?", `the config answer has Content-Type "${r.contentType}", not ${PROTO_MIME}`);
      return;
    }
    let payload: Uint8Array;
    try {
      payload = await this.openSigned(r.body, "config");
    } catch (e) {
      if (e instanceof SyncError && e.offline) throw e;
      this.refuse("?", (e as Error).message);
      return;
    }
    await this.applySigned(r.body, payload, false);
  }

  /** Applies a verified ConfigResponse; `signed` is the AuthContainer, checkpointed once accepted. */
  /** Applies a verified ConfigResponse (`via`: the LOC that relayed it); true when it runs (applied or unchanged). */
  private async applySigned(signed: Uint8Array, payload: Uint8Array, fromCheckpoint: boolean, via?: string): Promise<boolean> {
    let resp: { config?: Record<string, any> | null; configHash?: string };
    // Counted on the wire before decoding: a small body of empty entries must not become gigabytes of objects.
    const scan = scanBinary(lookupType(CONFIG_RESPONSE), payload);
    if (scan.total) {
      const shown = scan.problems.slice(0, 5).map((p) => (p.path ? `${p.path}: ${p.message}` : p.message));
      return this.refuse("?", `the ConfigResponse is over the device's bounds: ${shown.join("; ")}${scan.total > shown.length ? ` (and ${scan.total - shown.length} more)` : ""}`);
    }
    try {
      resp = lookupType(CONFIG_RESPONSE).decode(payload) as typeof resp;
    } catch (e) {
      return this.refuse("?", `malformed ConfigResponse (protobuf): ${(e as Error).message}`);
    }
    const hash = resp.configHash ?? "";
    if (!fromCheckpoint) {
      if (hash && hash === this.state("config.hash")) {
        this.checkpoints.touch(LAST_CONFIG);
        return true;
      }
      if (hash && hash === this.refused?.hash) return false; // refused already; status still says why
    }
    if (!resp.config) return this.refuse(hash, "the ConfigResponse carries no EdgeDevConfig");
    const cfg = resp.config;
    const uuid = this.state("uuid");
    const forDevice = cfg.id?.uuid as string | undefined;
    if (uuid && forDevice && forDevice.toLowerCase() !== uuid) return this.refuse(hash, `the config is for device ${forDevice}, this device is ${uuid}`);
    const ts = cfg.configTimestamp ? tsString(cfg.configTimestamp) : null;
    const lastTs = this.state("config.timestamp");
    if (ts && lastTs && compareTs(ts, lastTs) < 0) {
      return this.refuse(hash, `its config_timestamp ${tsIso(ts)} is older than that of the config applied (${tsIso(lastTs)})`);
    }
    if (!fromCheckpoint && this.namesUnknownEcdhCert(cfg)) {
      // A controller that rotated its ECDH certificate (EVE's doc: fetch the certificates again, then decrypt).
      await this.fetchCerts().catch((e) => this.log.warn(`the config's cipher contexts name an unknown controller certificate; fetching the certificates again failed: ${(e as Error).message}`));
    }
    const bytes = lookupType(EDGE_DEV_CONFIG).encode(cfg).finish();
    let result;
    try {
      result = this.deps.config.put(bytes, PROTO_MIME, {
        source: "controller",
        author: `controller ${this.base ? serverFileForm(this.base) : ""}`.trim(),
        note: fromCheckpoint ? `from ${this.checkpoints.dir}/${LAST_CONFIG} at start` : via ? `configHash ${hash || "(none)"}, relayed by the ${via}` : hash ? `configHash ${hash}` : undefined,
      });
    } catch (e) {
      if (e instanceof ConfigRejected) {
        return this.refuse(hash, `${e.message}: ${e.problems.slice(0, 5).map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join("; ")}`);
      }
      throw e;
    }
    this.setState("config.hash", hash);
    if (ts) this.setState("config.timestamp", ts);
    this.setState("config.appliedAt", new Date().toISOString());
    this.setState("config.objectErrors", JSON.stringify(result.objectErrors));
    const certHash = this.deps.config.model()?.model.device.controllerCertHash ?? null;
    const knownHash = this.state("controller.certHash");
    if (certHash && knownHash !== certHash) {
      // EVE: a new controllercert_confighash means new controller certificates; fetched before the next request.
      if (knownHash === null || fromCheckpoint) this.setState("controller.certHash", certHash);
      else {
        this.log.info(`controllercert_confighash changed (${knownHash} → ${certHash}): fetching the controller's certificates again`);
        this.certsStale = true;
      }
    }
    const epoch = String(cfg.controllerEpoch ?? "0");
    if (this.state("controller.epoch") !== epoch) {
      // A new controller epoch means it may have lost what it knew: report everything again.
      this.setState("controller.epoch", epoch);
      this.deleteState("info.reported");
      this.deleteState("ecdh.sent");
    }
    this.refused = null;
    this.fromCheckpoint = fromCheckpoint;
    if (!fromCheckpoint) this.loc.configFromLoc = !!via;
    if (!fromCheckpoint) this.checkpoints.write(LAST_CONFIG, signed);
    const what = result.unchanged ? "unchanged" : `version ${result.version}`;
    this.log.info(`config ${hash || "(no hash)"} applied (${what})${fromCheckpoint ? " from the checkpoint" : ""}${via ? ` from the ${via}` : ""}${result.objectErrors.length ? `; ${result.objectErrors.length} object(s) in error` : ""}`);
    this.deps.events.publish({
      type: "controller.config-applied",
      message: `controller config ${hash || "(no hash)"} applied (${what})${fromCheckpoint ? " from the checkpoint" : ""}`,
      data: { hash, version: result.version, unchanged: result.unchanged, fromCheckpoint, objectErrors: result.objectErrors.length, ...(via ? { via } : {}) },
    });
    this.scheduleInfo();
    return true;
  }

  private namesUnknownEcdhCert(cfg: Record<string, any>): boolean {
    const known = (this.certs?.ecdhCerts ?? []).flatMap((c) => [Buffer.from(c.hash).toString("hex"), Buffer.from(c.pemHash).toString("hex")]);
    return (cfg.cipherContexts ?? []).some((c: { controllerCertHash?: Uint8Array }) => {
      const h = Buffer.from(c.controllerCertHash ?? []).toString("hex");
      return h.length >= 32 && !known.some((k) => k.startsWith(h));
    });
  }

  private refuse(hash: string, reason: string): false {
    const first = this.refused?.reason !== reason;
    this.refused = { hash, reason, at: new Date().toISOString() };
    if (first) {
      this.log.error(`config refused: ${reason}; the running config is unchanged`);
      this.deps.events.publish({ type: "controller.config-refused", message: `controller config refused: ${reason}`, data: { hash } });
    }
    return false;
  }

  /**
   * EVE's ATTEST_REQ_CERT: the device's ECDH exchange certificate (CERT_TYPE_DEVICE_ECDH_EXCHANGE, its hash the
   * first 16 bytes of sha256 of the PEM as sent), so the controller can encrypt for this device. Sent once per
   * certificate and controller epoch; a failure is retried on the next round and never holds the config back.
   */
  private async sendEcdhCertificate(uuid: string): Promise<void> {
    if (!this.ecdh) return;
    const full = Buffer.from(this.ecdh.hash).toString("hex");
    if (this.state("ecdh.sent") === full) return;
    const req: ZAttestReq = {
      reqType: ZAttestReqType.ATTEST_REQ_CERT,
      certs: [
        {
          hashAlgo: CommonHashAlgorithm.HASH_ALGORITHM_SHA256_16BYTES,
          certHash: this.ecdh.hash.subarray(0, 16),
          type: ZCertType.CERT_TYPE_DEVICE_ECDH_EXCHANGE,
          cert: this.ecdh.cert,
          attributes: { isMutable: false, isTpm: false },
        },
      ],
    };
    try {
      const body = await seal(encodeMessage("org.lfedge.eve.attest.ZAttestReq", req), this.identity.device);
      const r = await this.call("POST", `/id/${uuid}/attest`, body);
      if (r.status < 200 || r.status >= 300) throw new Error(`the controller answered ${r.status}${bodyText(r)}`);
      this.setState("ecdh.sent", full);
      if (this.ecdhDetail) this.log.info("the device's ECDH certificate reached the controller");
      this.ecdhDetail = null;
    } catch (e) {
      if (e instanceof TransportError) throw e;
      const detail = `the device's ECDH certificate was not accepted (encrypted config cannot be opened until it is): ${(e as Error).message}`;
      if (this.ecdhDetail !== detail) this.log.warn(detail);
      this.ecdhDetail = detail;
    }
  }

  /** EVE's attestation when the controller wants it (403 on config): nonce, then a quote (no TPM: no PCRs). */
  private async attest(uuid: string): Promise<void> {
    const ask = async (req: ZAttestReq): Promise<ZAttestResponse> => {
      const body = await seal(encodeMessage("org.lfedge.eve.attest.ZAttestReq", req), this.identity.device);
      const r = await this.call("POST", `/id/${uuid}/attest`, body);
      if (r.status !== 200 && r.status !== 201) throw httpFault("attestation", r);
      const payload = await this.openSigned(r.body, "attestation");
      try {
        return decodeMessage<ZAttestResponse>("org.lfedge.eve.attest.ZAttestResponse", payload);
      } catch (e) {
        throw new SyncError("attestation", `malformed ZAttestResponse: ${(e as Error).message}`);
      }
    };
    try {
      const n = await ask({ reqType: ZAttestReqType.ATTEST_REQ_NONCE });
      if (!n.nonce?.nonce?.length) throw new SyncError("attestation", "the controller sent no nonce");
      const q = await ask({
        reqType: ZAttestReqType.ATTEST_REQ_QUOTE,
        quote: { versions: [{ versionType: AttestVersionType.ATTEST_VERSION_TYPE_EVE, version: this.deps.version }] },
      });
      const code = q.quoteResp?.response ?? ZAttestResponseCode.Z_ATTEST_RESPONSE_CODE_INVALID;
      if (code !== ZAttestResponseCode.Z_ATTEST_RESPONSE_CODE_SUCCESS || !q.quoteResp?.integrityToken?.length) {
        throw new SyncError("attestation", `the controller refused the quote (${ZAttestResponseCode[code] ?? code})`);
      }
      this.setState("integrityToken", Buffer.from(q.quoteResp.integrityToken).toString("base64"));
      this.attestation = { state: "done", at: new Date().toISOString(), detail: "integrity token received (no TPM: quote without PCRs)" };
      this.deps.events.publish({ type: "controller.attested", message: "attestation done: integrity token received" });
    } catch (e) {
      this.attestation = { state: "failed", at: new Date().toISOString(), detail: (e as Error).message };
      throw e;
    }
  }

  /** At start: the checkpointed config (verified with the checkpointed certificates) runs, whatever its age. */
  private async applyCheckpoint(): Promise<void> {
    const cp = this.checkpoints.read(LAST_CONFIG);
    const certs = this.checkpoints.read(CONTROLLER_CERTS);
    const root = this.readRoot();
    if (!cp || !certs || !root) return;
    const max = this.deps.checkpointMaxAgeMs;
    if (max != null && Date.now() - cp.savedAt.getTime() > max) {
      this.log.warn(`checkpointed config of ${cp.savedAt.toISOString()} is older than the operator's limit; not applied`);
      return;
    }
    try {
      const trusted = await verifyControllerCerts(certs.bytes, root, null);
      const payload = await open(cp.bytes, trusted.signer);
      if (!this.certs) {
        this.certs = trusted;
        this.certsEpoch++;
      }
      await this.applySigned(cp.bytes, payload, true);
    } catch (e) {
      this.log.error(`the checkpointed config cannot be used: ${(e as Error).message}`);
    }
  }

  // ---- reporting

  private scheduleInfo(): void {
    if (this.stopped || this.infoTimer) return;
    this.infoTimer = setTimeout(() => {
      this.infoTimer = null;
      this.guard("info", () => this.reportInfo());
    }, 100);
  }

  /** Queues an info message for each object whose state differs from what was last reported. */
  reportInfo(now = new Date()): number {
    const uuid = this.state("uuid");
    if (!this.base || !uuid) return 0;
    const reported: Record<string, string> = JSON.parse(this.state("info.reported") ?? "{}");
    // Device info at least every timer.deviceinfo.interval, changed or not (EVE's forced report).
    const forceMs = (this.setting("timer.deviceinfo.interval", "deviceInfoIntervalS") ?? 600) * 1000;
    if (now.getTime() - this.deviceInfoAt >= forceMs) delete reported.device;
    const items = this.infoItemsNow(uuid);
    let queued = 0;
    const seen = new Set<string>();
    for (const item of items) {
      seen.add(item.key);
      const digest = infoDigest(item.msg);
      if (reported[item.key] === digest) continue;
      if (item.key === "device") this.deviceInfoAt = now.getTime();
      this.outbox.enqueue("info", "info", encodeInfo(item.msg, now), item.key, now);
      reported[item.key] = digest;
      queued++;
    }
    for (const key of Object.keys(reported)) {
      if (seen.has(key)) continue;
      const gone = goneInfo(key, uuid);
      if (gone) this.outbox.enqueue("info", "info", encodeInfo(gone, now), key, now);
      delete reported[key];
      queued++;
    }
    if (queued) {
      this.setState("info.reported", JSON.stringify(reported));
      this.drainWaiter.wake();
    }
    return queued;
  }

  /** Every object's info message as of now (reportInfo sends those that changed; the LOC gets them all). */
  private infoItemsNow(uuid: string): ReturnType<typeof infoItems> {
    const objectErrors = new Map<string, string[]>();
    const doc = this.deps.config.currentDoc()?.doc;
    for (const p of JSON.parse(this.state("config.objectErrors") ?? "[]") as { path: string; message: string }[]) {
      const id = objectIdAt(doc, p.path);
      objectErrors.set(id, [...(objectErrors.get(id) ?? []), `${p.path}: ${p.message}`]);
    }
    let storageBytes = 0;
    try {
      const s = statfsSync(this.deps.dataDir);
      storageBytes = s.blocks * s.bsize;
    } catch {}
    const status = this.deps.device.status();
    const current = this.deps.config.model();
    const model = current?.model;
    return infoItems(status, {
      devId: uuid,
      version: this.deps.version,
      serial: this.identity.serial,
      softSerial: this.identity.softSerial,
      deviceName: this.deps.device.name(),
      bootTime: sampleDevice({ mounts: [] }).bootTime,
      storageBytes,
      dataDir: this.deps.dataDir,
      memoryBytes: status.device.memoryBytes,
      firstBoot: this.firstBoot,
      objectErrors,
      swList: this.deps.device.baseosSwList?.(),
      hardware: this.deps.device.hardware?.(),
      ops: this.deps.device.ops?.(),
      ports: this.deps.device.ports?.() ?? null,
      configItems: model?.configItemStatus ?? [],
      cluster: model?.device.cluster ?? null,
      patchEnvelopes: this.deps.patchEnvelopes?.() ?? model?.patchEnvelopes.map((pe) => envelopeReport(pe, current!.problems)) ?? [],
      appCustomStatus: this.deps.appCustomStatus?.() ?? [],
    });
  }

  /** Queues one ZMetricMsg (cumulative counters). */
  enqueueMetrics(now = new Date()): void {
    const uuid = this.state("uuid");
    if (!this.base || !uuid) return;
    this.outbox.enqueue("metrics", "metrics", encodeMetrics(this.metricsNow(uuid, now)), null, now);
    this.drainWaiter.wake();
  }

  private metricsNow(uuid: string, now: Date): ReturnType<typeof metricMsg> {
    const sample = sampleDevice({ mounts: [this.deps.dataDir] }, now);
    const c = this.outbox.counts();
    const d = this.outbox.depth();
    return metricMsg(uuid, sample, this.deps.appMetrics?.() ?? [], {
      outbox: {
        undelivered: d.messages,
        oldest: d.oldest ? new Date(d.oldest) : null,
        dropped: c.dropped.metrics + c.dropped.logs + c.dropped.flowlog,
        rejected: c.rejected,
        superseded: c.superseded,
        lastDropped: c.lastDroppedAt ? new Date(c.lastDroppedAt) : null,
      },
      link: this.link,
      lastReceivedConfig: this.lastReceivedAt,
      lastProcessedConfig: this.state("config.appliedAt") ? new Date(this.state("config.appliedAt")!) : null,
    });
  }

  // ---- the Local Operator Console (loc.ts)

  /** The LOC of the current config, or null. */
  private locUrl(): string | null {
    return this.deps.config.model()?.model.loc?.url ?? null;
  }

  private locCall(url: string, method: "GET" | "POST", path: string, body: Uint8Array | null, uuid: string | null): Promise<HttpResult> {
    // http or https (EVE: the LOC decides); over https the same trust anchor as the controller's.
    return callController({ base: url, rootPem: this.readRoot() ?? "" }, method, path, body, { timeoutMs: this.requestTimeoutMs(), headers: uuid ? { "X-Request-ID": uuid } : {} });
  }

  private locFault(message: string): void {
    if (this.loc.lastError?.message !== message) this.log.warn(`Local Operator Console: ${message}`);
    this.loc.lastError = { message, at: new Date().toISOString() };
  }

  /**
   * EVE's LOC round: the compound config from `<loc>/api/v2/edgedevice/id/<uuid>/compound-config`, its protected
   * config opened with the controller's certificates (from the LOC's /certs only when the device has none) and
   * applied as the controller's own answer would be; then its local commands, once per compound timestamp.
   * Never throws: the outcome is in status().loc.
   */
  private async syncViaLoc(url: string, uuid: string): Promise<void> {
    try {
      if (!this.certs) {
        const c = await this.locCall(url, "GET", locPath("certs", null), null, null);
        if (c.status !== 200 || !isProto(c)) throw new Error(`GET /certs answered ${c.status}${bodyText(c)}`);
        this.certs = await verifyControllerCerts(unwrap(c.body).payload, this.readRoot()!);
        this.certsEpoch++;
        this.checkpoints.write(CONTROLLER_CERTS, this.certs.raw);
      }
      const req: ConfigRequest = { configHash: this.state("config.hash") ?? "" };
      const token = this.state("integrityToken");
      if (token) req.integrityToken = Buffer.from(token, "base64");
      const last = this.state("loc.cmdTimestamp") ?? "0";
      const body = await seal(compoundRequest(req, last), this.identity.device);
      const r = await this.locCall(url, "POST", locPath("compound-config", uuid), body, uuid);
      this.loc.lastContact = new Date().toISOString();
      void this.reportToLoc(true); // EVE: device info with every LOC request (name, state) in case the LOC restarted
      if (r.status === 304 || r.status === 204) {
        this.loc.lastError = null;
        return;
      }
      if (r.status !== 200) throw new Error(`compound-config answered ${r.status}${bodyText(r)}`);
      if (!isProto(r)) throw new Error(`compound-config answered Content-Type "${r.contentType}", not ${PROTO_MIME}`);
      const { signed, commands } = readCompound(r.body);
      let payload: Uint8Array;
      try {
        payload = await open(signed, this.certs.signer);
      } catch (e) {
        this.link.authVerifyFailure++;
        throw new Error(`the config it relays is not signed by the controller: ${(e as Error).message}`);
      }
      this.lastReceivedAt = new Date();
      const hash = (lookupType(CONFIG_RESPONSE).decode(payload) as { configHash?: string }).configHash ?? "";
      const ran = await this.applySigned(signed, payload, false, `Local Operator Console ${url}`);
      if (!ran) throw new Error(`its config was refused: ${this.refused?.reason ?? "see the controller's status"}`);
      if (this.loc.configFromLoc) this.loc.lastConfig = { hash, at: new Date().toISOString() };
      // The main config runs: the commands beside it are done once (EVE acknowledges the timestamp).
      if (isNewer(commands.timestamp, last)) {
        this.setState("loc.cmdTimestamp", commands.timestamp);
        if (commands.devCmd || commands.appCmdList || commands.radioConfig) {
          this.log.info(`Local Operator Console: local commands of ${commands.timestamp}`);
          try {
            this.deps.locCommands?.(commands);
          } catch (e) {
            this.log.error(`Local Operator Console commands: ${(e as Error).message}`);
          }
        }
      }
      this.loc.lastError = null;
    } catch (e) {
      this.locFault(e instanceof TransportError ? `unreachable: ${e.message}` : (e as Error).message);
    }
  }

  /** Info (all of it, or the device's only) and metrics to the LOC, signed; best effort, counted, never queued. */
  async reportToLoc(deviceOnly = false): Promise<void> {
    const url = this.locUrl();
    const uuid = this.state("uuid");
    if (!url || !uuid) return;
    const now = new Date();
    const msgs: ["info" | "metrics", Uint8Array][] = this.infoItemsNow(uuid)
      .filter((i) => !deviceOnly || i.key === "device")
      .map((i) => ["info", encodeInfo(i.msg, now)]);
    if (!deviceOnly) msgs.push(["metrics", encodeMetrics(this.metricsNow(uuid, now))]);
    for (const [what, bytes] of msgs) {
      try {
        const r = await this.locCall(url, "POST", locPath(what, uuid), await seal(bytes, this.identity.device), uuid);
        if (r.status >= 200 && r.status < 300) this.loc.sent[what]++;
        else this.loc.sent.failed++;
      } catch {
        this.loc.sent.failed++;
        return; // unreachable: the rest would fail the same way; the next period tries again
      }
    }
  }


  /**
   * Queues the flow records collected since the last call, one FlowMessage per request to /flowlog (EVE's), only
   * once the device has its UUID (records are not collected before, so none are lost to it). The outbox keeps
   * an offline period within its bound, dropping the oldest first.
   */
  async enqueueFlows(now = new Date()): Promise<number> {
    const uuid = this.state("uuid");
    if (!this.base || !uuid || !this.deps.flowRecords) return 0;
    const msgs = (await this.deps.flowRecords(uuid)).filter((m) => m.flows?.length || m.dnsReqs?.length);
    for (const m of msgs) this.outbox.enqueue("flowlog", "flowlog", encodeMessage(FLOW_MESSAGE, m), null, now);
    if (msgs.length) this.drainWaiter.wake();
    return msgs.length;
  }

  /** Queues the log lines stored since the last upload: device lines to /newlogs, each app's to its own path. */
  enqueueLogs(now = new Date(), limit = 2000): number {
    const uuid = this.state("uuid");
    if (!this.base || !uuid) return 0;
    const cursor = Number(this.state("logs.cursor") ?? 0);
    const rows = (
      this.deps.store.sqlite
        .query("SELECT id, ts, source, object_id AS objectId, level, message FROM logs WHERE id > ? ORDER BY id LIMIT ?")
        .all(cursor, limit) as (Omit<LogRow, "ts"> & { ts: number })[]
    ).map((r) => ({ ...r, ts: new Date(r.ts) }));
    if (rows.length === 0) return 0;
    // debug.default.remote.loglevel, when the config sets it: device lines below it stay on the device.
    const remote = this.setting("debug.default.remote.loglevel", "remoteLogLevel");
    const device = rows.filter((r) => !(r.source === "app" && r.objectId) && (remote === null || levelPasses(r.level, remote)));
    const apps = new Map<string, LogRow[]>();
    for (const r of rows) if (r.source === "app" && r.objectId) apps.set(r.objectId, [...(apps.get(r.objectId) ?? []), r]);
    const meta = { devID: uuid, image: "IMGA", eveVersion: this.deps.version };
    for (const lines of bundleLines(device.map(entryFromRow))) this.outbox.enqueue("logs", "newlogs", deviceBundle(lines, meta, now), null, now);
    const names = new Map(this.deps.device.status().apps.map((a) => [a.uuid, a.name]));
    for (const [app, appRows] of apps) {
      for (const lines of bundleLines(appRows.map(entryFromRow))) {
        this.outbox.enqueue("logs", `apps/instanceid/${app}/newlogs`, appBundle(lines, names.get(app) ?? app, now), null, now);
      }
    }
    this.setState("logs.cursor", String(rows[rows.length - 1]!.id));
    this.drainWaiter.wake();
    return rows.length;
  }

  // ---- the drain loop: oldest first, signed when sent, backoff with jitter

  private async drainLoop(): Promise<void> {
    while (!this.stopped) {
      const uuid = this.state("uuid");
      const msg = this.base && uuid && this.certs ? this.outbox.peek() : null;
      if (!msg) {
        await this.drainWaiter.sleep(5_000);
        continue;
      }
      let ok = false;
      try {
        const body = await seal(msg.body, this.identity.device);
        const r = await this.call("POST", `/id/${uuid}/${msg.path}`, body);
        if (r.status >= 200 && r.status < 300) {
          this.outbox.ack(msg.id);
          ok = true;
        } else if (r.status >= 400 && r.status < 500 && ![401, 403, 408, 429].includes(r.status)) {
          // Refused for good (bad request, unknown object): dropping it unblocks the queue; it is counted.
          this.outbox.reject(msg.id);
          this.log.warn(`${msg.kind} message to ${msg.path} refused (${r.status}); dropped`);
          ok = true;
        }
      } catch {
        // unreachable or too slow: retried below
      }
      if (ok) {
        this.drainFailures = 0;
        continue;
      }
      this.outbox.attempted(msg.id);
      this.drainFailures++;
      await this.drainWaiter.sleep(backoffDelay({ baseMs: this.timers.backoffBaseMs, maxMs: this.timers.backoffMaxMs, jitter: [0.5, 1] }, this.drainFailures));
    }
  }

  // ---- small helpers

  private guard(what: string, fn: () => unknown): void {
    try {
      fn();
    } catch (e) {
      this.log.error(`${what}: ${(e as Error).message}`);
    }
  }

  private linkOk(): void {
    this.link.success++;
    this.link.lastSuccess = new Date();
  }
  private linkFailed(): void {
    this.link.failures++;
    this.link.lastFailure = new Date();
  }

  private readRoot(): string | null {
    try {
      const text = readFileSync(join(this.deps.configDir, IDENTITY_FILES.rootCert), "utf8");
      return splitPemCertificates(text).length ? text : null;
    } catch {
      return null;
    }
  }

  private readServer(): string | null {
    const path = join(this.deps.configDir, IDENTITY_FILES.server);
    if (!existsSync(path)) return null;
    const text = readFileSync(path, "utf8").trim();
    if (!text) return null;
    try {
      return parseControllerAddress(text);
    } catch (e) {
      this.log.error(`${path}: ${(e as Error).message}`);
      return null;
    }
  }

  private writeServer(base: string): void {
    writeFileSync(join(this.deps.configDir, IDENTITY_FILES.server), serverFileForm(base) + "\n", { mode: 0o644 });
  }

  private state(key: string): string | null {
    const r = this.deps.store.sqlite.query("SELECT value FROM controller_state WHERE key = ?").get(key) as { value: string } | null;
    return r?.value ?? null;
  }
  private setState(key: string, value: string): void {
    this.deps.store.sqlite
      .query("INSERT INTO controller_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
      .run(key, value);
  }
  private deleteState(key: string): void {
    this.deps.store.sqlite.query("DELETE FROM controller_state WHERE key = ?").run(key);
  }
}

function httpFault(phase: string, r: HttpResult): SyncError {
  const offline = r.status >= 500 || r.status === 429 || r.status === 408;
  return new SyncError(phase, `the controller answered ${r.status}${bodyText(r)}`, offline);
}

function bodyText(r: HttpResult): string {
  if (!r.body.byteLength || isProto(r)) return "";
  const t = new TextDecoder().decode(r.body.subarray(0, 200)).replace(/\s+/g, " ").trim();
  return t ? `: ${t}` : "";
}

/** A google.protobuf.Timestamp as "seconds.nanos" (9 digits), comparable and lossless. */
function tsString(t: { seconds?: number | string | { toString(): string }; nanos?: number }): string {
  return `${String(t.seconds ?? 0)}.${String(t.nanos ?? 0).padStart(9, "0")}`;
}

function compareTs(a: string, b: string): number {
  const [as, an] = a.split(".");
  const [bs, bn] = b.split(".");
  const ds = BigInt(as!) - BigInt(bs!);
  if (ds !== 0n) return ds < 0n ? -1 : 1;
  return Number(an) - Number(bn);
}

function tsIso(t: string): string {
  const [s, n] = t.split(".");
  return new Date(Number(s) * 1000 + Math.floor(Number(n) / 1e6)).toISOString();
}

/** The uuid of the object a problem path points into ("apps[2].fixedresources" → that app's uuid), "" otherwise. */
function objectIdAt(doc: Record<string, any> | undefined, path: string): string {
  const m = path.match(/^(apps|networkInstances|volumes|contentInfo|patchEnvelopes)\[(\d+)\]/);
  if (!doc || !m) return "";
  const o = doc[m[1]!]?.[Number(m[2])];
  return o?.uuidandversion?.uuid ?? o?.uuid ?? "";
}

function rootSubjects(pem: string): string[] {
  return splitPemCertificates(pem).map((p) => new X509Certificate(p).subject.replace(/\n/g, ", "));
}
