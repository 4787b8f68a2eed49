// Base OS updates on A/B slots: receive (upload or the config's content tree), verify, write the inactive slot,
// read it back, mark it to be tried once, reboot when allowed, watch the trial (test window) and commit it, or
// let the device fall back and remember why. The state lives in one JSON file on PERSIST (written atomically,
// flushed), so every boot — the trial's, the fallen-back one's — continues where the last one stopped.
import { DomainError } from "../model/errors.ts";
import type { PartStatus } from "../model/status.ts";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { type BootEnv, bootState, type BootState, otherSlot, type Slot, withCommitted, withTrialCleared, withTryOnce } from "./bootenv.ts";
import { BundleError, readBundleHead, type BundleManifest, type VendorKey } from "./bundle.ts";
import { type BaseOsSettings, DEFAULT_SETTINGS, mergeSettings, rebootAt } from "./schedule.ts";
import type { BoardInfo, SlotBackend } from "./slots.ts";
import { download } from "../storage/download.ts";
import { datastorePolicy, type DestinationPolicy } from "../storage/destinations.ts";

const MiB = 1024 * 1024;
const HISTORY_MAX = 50;

export type Phase =
  | "receiving" // upload or download to PERSIST
  | "verifying" // footer, signature, board, hash
  | "writing" // the inactive slot
  | "reading-back" // the slot read back and hashed
  | "ready" // written, evebox_try set; waiting for the reboot (schedule)
  | "rebooting"
  | "testing"; // the trial boot: the test window runs

export type Outcome = "committed" | "fell-back" | "refused" | "failed" | "interrupted" | "cancelled";

export interface Operation {
  id: string;
  source: "upload" | "config" | "manual";
  version: string | null;
  slot: Slot;
  phase: Phase;
  progress: { done: number; total: number } | null;
  startedAt: string;
  updatedAt: string;
  manifest?: Pick<BundleManifest, "version" | "board" | "arch" | "squashfs" | "buildTime" | "keyId">;
  fileSha256?: string;
  fileBytes?: number;
  timings: Record<string, number>;
  schedule: { mode: string; at: string | null; note: string } | null;
  /** Apps RUNNING before the reboot into the trial: they must run again. */
  appsBefore?: { uuid: string; name: string }[];
  probation?: { startedAt: string; endsAt: string; aliveAt: string; checks: Check[]; failure?: string; okSince?: string | null };
  contentTreeUuid?: string;
}

export interface HistoryEntry {
  id: string;
  source: Operation["source"];
  version: string | null;
  slot: Slot | null;
  outcome: Outcome;
  reason: string;
  at: string;
  startedAt: string | null;
  timings?: Record<string, number>;
}

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

interface SlotRecord {
  version: string | null;
  sha256?: string;
  writtenAt?: string;
  note?: string;
}

interface PersistedState {
  settings: BaseOsSettings;
  slots: Partial<Record<Slot, SlotRecord>>;
  current: Operation | null;
  failed: Record<string, { reason: string; at: string }>;
  retryCounter: number | null;
  history: HistoryEntry[];
}

/** An update or a request about updates that is refused; the slot is untouched. */
export class BaseOsRefused extends DomainError {
  constructor(kind: "invalid" | "timed-out" | "conflict" | "too-large" | "not-implemented", message: string) {
    super(kind, message);
  }
}

export interface BaseOsHooks {
  publish(type: string, message: string, data?: Record<string, unknown>): void;
  log(level: "info" | "warn" | "error", message: string): void;
  /** The apps and their states (EVE names); `observedAt` (ms): when the runtime last looked (a state from before this boot is stale). */
  apps(): { uuid: string; name: string; state: string; observedAt?: number | null }[];
  managed(): boolean;
  /** The device's other parts (init: mounts and PERSIST; store): one in "error" fails the trial. */
  parts?: () => { name: string; state: string; detail: string }[];
  /** The controller reached lately (managed mode). */
  controller(): { ok: boolean; detail: string };
  /** The supervised services (containerd, dockerd) on a device; absent in host mode. */
  services?: () => { name: string; state: string }[];
  /** An orderly reboot (init's); absent off-device: the reboot is only recorded. */
  reboot?: (reason: string) => { accepted: boolean; message: string };
  /** The current config document (proto3 JSON names), for its `baseos`, `contentInfo`, `datastores`. */
  configDoc?: () => Record<string, any> | null;
  /** The config's timer.test.baseimage.update, seconds, when it sets one: it wins over the console's setting. */
  testWindowSeconds?: () => number | null;
}

export interface BaseOsOptions {
  backend: SlotBackend;
  board: BoardInfo;
  /** The version of the system running now (its /etc/evebox/release.json). */
  bootedVersion: string;
  stateDir: string;
  keys: VendorKey[];
  hooks: BaseOsHooks;
  /** How often the trial's checks run, ms. */
  checkIntervalMs?: number;
  /** The kernel's last words from the boot before, when it crashed (pstore). */
  lastCrash?: string | null;
  /** An upload that sends no byte for this long is refused (ms; 120 s): a stalled sender does not hold the slot. */
  uploadStallMs?: number;
  /** Which datastore addresses a download may reach (loopback, link-local and the device's own refused by default). */
  destinations?: DestinationPolicy;
}

/** Why an upload's body stopped being read: the operator cancelled it. */
class UploadCancelled extends Error {}
type BodyChunk = Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]>>;

const ACTIVE_PHASES: Phase[] = ["receiving", "verifying", "writing", "reading-back", "ready", "rebooting", "testing"];

export class BaseOs {
  private state: PersistedState;
  private readonly file: string;
  private boot: BootState;
  private abort: AbortController | null = null;
  /** The upload being received, so that cancel (and stop) can end it. */
  private receiving: AbortController | null = null;
  private timers: ReturnType<typeof setTimeout>[] = [];
  private stopped = false;
  /** Set at start: what this boot found (an interrupted write, a fallback …). */
  private bootNote: string | null = null;

  constructor(private readonly o: BaseOsOptions) {
    mkdirSync(o.stateDir, { recursive: true });
    this.file = join(o.stateDir, "state.json");
    this.state = this.load();
    this.boot = bootState(o.backend.booted, this.readEnvSafe());
  }

  // ---- persistence

  private load(): PersistedState {
    const empty: PersistedState = { settings: { ...DEFAULT_SETTINGS, window: { ...DEFAULT_SETTINGS.window } }, slots: {}, current: null, failed: {}, retryCounter: null, history: [] };
    if (!existsSync(this.file)) return empty;
    try {
      const s = JSON.parse(readFileSync(this.file, "utf8")) as PersistedState;
      return { ...empty, ...s, settings: { ...empty.settings, ...s.settings } };
    } catch (e) {
      this.o.hooks.log("error", `baseos: ${this.file} unreadable (${(e as Error).message}); starting with an empty update state`);
      return empty;
    }
  }

  private save(): void {
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, JSON.stringify(this.state, null, 1));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    try {
      const d = openSync(this.o.stateDir, "r");
      fsyncSync(d);
      closeSync(d);
    } catch {
      // directory fsync is best effort
    }
  }

  private readEnvSafe(): BootEnv {
    try {
      return this.o.backend.readEnv();
    } catch (e) {
      this.o.hooks.log("error", `baseos: cannot read the boot environment: ${(e as Error).message}`);
      return {};
    }
  }

  // ---- start: continue what the last boot left

  /** Called once the device runs: settles an interrupted write, a fallback, or starts the trial's test window. */
  start(): void {
    const cur = this.state.current;
    const b = this.boot;
    const now = new Date().toISOString();
    if (cur && (cur.phase === "receiving" || cur.phase === "verifying")) {
      this.finish("interrupted", `the ${cur.source === "upload" ? "upload" : "download"}${cur.version ? ` of version ${cur.version}` : ""} was interrupted by a restart; nothing was written`);
      rmSync(this.incomingPath(), { force: true });
    } else if (cur && (cur.phase === "writing" || cur.phase === "reading-back")) {
      const pct = cur.progress && cur.progress.total ? Math.floor((100 * cur.progress.done) / cur.progress.total) : 0;
      this.state.slots[cur.slot] = { version: null, note: `incomplete: the write of ${cur.version} was interrupted` };
      const reason = `the write of version ${cur.version} to slot ${cur.slot} was interrupted (power cut or restart) ${cur.phase === "writing" ? `at ${pct}%` : "during its read-back"}; slot ${cur.slot} is not tried and the device runs slot ${b.booted}`;
      this.bootNote = reason;
      this.finish("interrupted", reason);
      rmSync(this.incomingPath(), { force: true });
    }
    if (this.o.lastCrash && b.outcome !== "fell-back") this.o.hooks.publish("baseos.crash-record", `the boot before this one ended in a kernel crash: ${this.o.lastCrash}`, { crash: this.o.lastCrash });
    if (b.outcome === "fell-back") this.settleFallback();
    else if (b.outcome === "trying") this.startProbation();
    else if (this.state.current && (this.state.current.phase === "rebooting" || this.state.current.phase === "testing")) {
      const c = this.state.current;
      if (b.booted === c.slot && b.active === c.slot) {
        // Committed by the trial, which stopped before it recorded so.
        this.state.slots[c.slot] = { ...this.state.slots[c.slot], version: c.version };
        this.finish("committed", `version ${c.version} committed on slot ${c.slot}`);
      } else if (c.phase === "rebooting" && b.outcome === "pending") {
        // The reboot did not happen (host mode records it only): still waiting.
      } else if (b.outcome === "committed" && b.booted !== c.slot) {
        // GRUB never booted the trial (a slot it could not load falls back at once, before setting evebox_trying).
        this.markFailed(c, `did not come up: the boot loader could not start slot ${c.slot}`);
      }
    } else if (this.state.current?.phase === "ready") {
      this.schedule(this.state.current);
    }
    void now;
    this.save();
    if (this.o.hooks.configDoc) {
      const poll = () => {
        if (this.stopped) return;
        void this.applyConfig().finally(() => {
          if (!this.stopped) this.timers.push(setTimeout(poll, 5000));
        });
      };
      this.timers.push(setTimeout(poll, 1000));
    }
  }

  // ---- the config's baseos (EVE: BaseOS {content_tree_uuid, retry_update, activate, base_os_version})

  private configKey: string | null = null;

  /** Follows the config's `baseos`: the retry counter, activate, and a version to download and write. */
  async applyConfig(): Promise<void> {
    const doc = this.o.hooks.configDoc?.();
    const b = doc?.baseos;
    if (!b) return;
    if (b.retryUpdate) this.noteRetryCounter(Number(b.retryUpdate.counter ?? 0));
    this.setManagedActivate(!!b.activate);
    const version = String(b.baseOsVersion ?? "");
    const treeId = String(b.contentTreeUuid ?? "");
    if (!version || !treeId || version === this.o.bootedVersion) return;
    const key = JSON.stringify([treeId, version, this.state.retryCounter]);
    if (this.configKey === key) return;
    const c = this.state.current;
    if (c && c.source === "config" && c.version === version) return; // already on its way
    if (this.busy()) return; // tried again once the device is free
    this.configKey = key;
    // A version that failed is reported once (its fallback or refusal is the newest entry), not at every boot.
    if (this.state.failed[version] && this.state.history[0]?.version === version) return;
    const ct = (doc.contentInfo ?? []).find((x: any) => x.uuid === treeId);
    const ds = ct ? (doc.datastores ?? []).find((d: any) => d.id === ct.dsId) : null;
    const op = this.begin("config");
    op.id = `cfg-${newId()}`;
    op.version = version;
    op.contentTreeUuid = treeId;
    const t0 = performance.now();
    try {
      if (!ct) throw new BaseOsRefused("invalid", `baseos: no content tree ${treeId} in the config`);
      if (!ds || !["DsHttp", "DsHttps"].includes(ds.dType)) throw new BaseOsRefused("invalid", `baseos: content tree ${treeId} is not on an Http(s) datastore`);
      if (!ct.sha256) throw new BaseOsRefused("invalid", `baseos: content tree ${treeId} has no sha256`);
      if (this.state.failed[version]) throw new BaseOsRefused("conflict", `version ${version} failed before (${this.state.failed[version]!.reason}); it is not tried again until retry_update changes`);
      const url = [String(ds.fqdn).replace(/\/+$/, ""), String(ds.dpath ?? "").replace(/^\/+|\/+$/g, ""), String(ct.URL ?? "").replace(/^\/+/, "")].filter(Boolean).join("/");
      op.progress = { done: 0, total: 0 };
      this.touch(op);
      this.o.hooks.publish("baseos.downloading", `downloading base OS ${version} from ${url}`, { version, url });
      let last = 0;
      await download({
        url,
        dest: this.incomingPath(),
        expectedSha256: ct.sha256,
        maxSizeBytes: this.o.backend.capacity(op.slot),
        destinations: this.o.destinations ?? datastorePolicy(() => undefined, false),
        onProgress: (p) => {
          op.progress = { done: p.bytesDone, total: p.bytesTotal ?? 0 };
          if (p.bytesDone - last >= 16 * MiB) {
            last = p.bytesDone;
            this.progressEvent(op);
          }
        },
      });
      op.timings.receiveMs = Math.round(performance.now() - t0);
      await this.verify(op, this.incomingPath());
      if (op.version !== version) throw new BaseOsRefused("invalid", `the content tree holds version ${op.version}; the config asks for ${version}`);
    } catch (e) {
      try {
        this.refuse(op, e);
      } catch {
        // recorded in the history, the status and the events; the controller sees it in the swList
      }
      return;
    }
    await this.writeAndSchedule(op);
  }

  private settleFallback(): void {
    const failedSlot = this.boot.trying!;
    const c = this.state.current;
    let reason: string;
    const p = c?.probation;
    const crash = this.o.lastCrash;
    if (p?.failure) reason = p.failure;
    else if (p) {
      const ran = Math.round((Date.parse(p.aliveAt) - Date.parse(p.startedAt)) / 1000);
      reason = `the trial stopped before its test window ended: evebox on slot ${failedSlot} ran about ${ran} s of its ${this.testWindow()} s window, then the device restarted (${crash ? `the kernel's last words: ${crash}` : "evebox exited, hung — watchdog — or a kernel panic; the kernel left no crash record"})`;
    } else if (crash) {
      reason = `did not come up: slot ${failedSlot} never reached evebox's test window; the kernel crashed — its last words: ${crash}; the device fell back to slot ${this.boot.booted}`;
    } else {
      reason = `did not come up: slot ${failedSlot} never reached evebox's test window (no kernel crash record: a hang and a watchdog reset, a boot loader or firmware failure, or a power cut); the device fell back to slot ${this.boot.booted}`;
    }
    const op: Operation = c && c.slot === failedSlot ? c : this.manualOp(failedSlot, null);
    this.markFailed(op, reason);
    this.o.backend.writeEnv(withTrialCleared(this.readEnvSafe()));
    this.boot = bootState(this.o.backend.booted, this.readEnvSafe());
    this.bootNote = `fell back from slot ${failedSlot}: ${reason}`;
  }

  private markFailed(op: Operation, reason: string): void {
    if (op.version) this.state.failed[op.version] = { reason, at: new Date().toISOString() };
    this.state.slots[op.slot] = { ...this.state.slots[op.slot], version: op.version, note: `failed: ${reason}` };
    this.state.current = op;
    this.finish("fell-back", reason);
    this.o.hooks.publish("baseos.fell-back", `version ${op.version ?? "?"} on slot ${op.slot} failed its trial: ${reason}`, { version: op.version, slot: op.slot, reason });
  }

  private manualOp(slot: Slot, version: string | null): Operation {
    const now = new Date().toISOString();
    return { id: newId(), source: "manual", version, slot, phase: "testing", progress: null, startedAt: now, updatedAt: now, timings: {}, schedule: null };
  }

  // ---- the trial

  private startProbation(): void {
    const slot = this.o.backend.booted;
    let c = this.state.current;
    if (!c || c.slot !== slot) c = this.manualOp(slot, this.o.bootedVersion);
    c.version ??= this.o.bootedVersion;
    if (c.version !== this.o.bootedVersion) {
      this.o.hooks.log("warn", `baseos: the trial runs version ${this.o.bootedVersion}, the update said ${c.version}`);
      c.version = this.o.bootedVersion;
    }
    const now = Date.now();
    const window = this.testWindow();
    c.phase = "testing";
    c.probation = { startedAt: new Date(now).toISOString(), endsAt: new Date(now + window * 1000).toISOString(), aliveAt: new Date(now).toISOString(), checks: [], okSince: null };
    c.updatedAt = new Date(now).toISOString();
    this.state.current = c;
    this.save();
    this.o.hooks.publish("baseos.testing", `slot ${slot} (version ${c.version}) on trial: ${window} s test window`, { slot, version: c.version, endsAt: c.probation.endsAt });
    const tick = () => {
      if (this.stopped) return;
      void this.probationTick().then((done) => {
        if (!done && !this.stopped) this.timers.push(setTimeout(tick, this.o.checkIntervalMs ?? 2000));
      });
    };
    tick();
  }

  /** The trial's checks now; true when it is decided (committed, or failed and rebooting). */
  async probationTick(): Promise<boolean> {
    const c = this.state.current;
    if (!c || c.phase !== "testing" || !c.probation) return true;
    const p = c.probation;
    if (p.failure) return true; // decided: the reboot is under way
    const checks = this.checks(c);
    const now = Date.now();
    p.checks = checks;
    p.aliveAt = new Date(now).toISOString();
    const allOk = checks.every((x) => x.ok);
    if (!allOk) p.okSince = null;
    else p.okSince ??= new Date(now).toISOString();
    // As EVE: the new system must stay functional for the whole window; it commits at the window's end.
    if (now < Date.parse(p.endsAt)) {
      this.save();
      return false;
    }
    if (allOk && now - Date.parse(p.okSince!) >= this.state.settings.stableSeconds * 1000) {
      this.commit(c);
      return true;
    }
    {
      const failing = checks.filter((x) => !x.ok).map((x) => `${x.name}: ${x.detail}`);
      p.failure = `the test window (${this.testWindow()} s) ended with ${failing.length ? failing.join("; ") : "the checks not yet holding for " + this.state.settings.stableSeconds + " s"}`;
      this.save();
      this.o.hooks.publish("baseos.trial-failed", `slot ${c.slot} (version ${c.version}) failed its trial: ${p.failure}; rebooting into slot ${this.boot.active}`, { reason: p.failure });
      this.o.hooks.log("error", `baseos: trial failed: ${p.failure}`);
      if (this.o.hooks.reboot) this.o.hooks.reboot(`base OS trial failed: ${p.failure}`);
      return true;
    }
    this.save();
    return false;
  }

  private checks(c: Operation): Check[] {
    const h = this.o.hooks;
    const out: Check[] = [];
    try {
      h.apps();
      const broken = (h.parts?.() ?? []).filter((p) => (p.name === "init" || p.name === "store") && p.state === "error");
      out.push(broken.length ? { name: "evebox", ok: false, detail: broken.map((p) => `${p.name}: ${p.detail}`).join("; ") } : { name: "evebox", ok: true, detail: "running, store readable" });
    } catch (e) {
      out.push({ name: "evebox", ok: false, detail: (e as Error).message });
    }
    if (h.services) {
      const st = h.services().filter((s) => s.name === "containerd" || s.name === "dockerd");
      const bad = st.filter((s) => s.state !== "running");
      out.push({ name: "services", ok: st.length === 2 && !bad.length, detail: st.length === 2 ? (bad.length ? bad.map((s) => `${s.name} ${s.state}`).join(", ") : "containerd, dockerd running") : "containerd or dockerd not started" });
    }
    const before = c.appsBefore ?? [];
    if (before.length) {
      const now = new Map(h.apps().map((a) => [a.uuid, a]));
      // Seen RUNNING by this boot's runtime: the store still holds the states the last boot observed.
      const since = Date.parse(c.probation?.startedAt ?? c.updatedAt);
      const stale = (a: { observedAt?: number | null } | undefined) => a?.observedAt !== undefined && (a.observedAt === null || a.observedAt < since);
      const notRunning = before.filter((a) => now.get(a.uuid)?.state !== "RUNNING" || stale(now.get(a.uuid)));
      const why = (a: { uuid: string; name: string }) => {
        const x = now.get(a.uuid);
        return `${a.name} (${!x ? "absent" : stale(x) ? `${x.state}, not observed since this boot` : x.state})`;
      };
      out.push({ name: "apps", ok: !notRunning.length, detail: notRunning.length ? `not RUNNING yet: ${notRunning.map(why).join(", ")}` : `${before.length} app(s) RUNNING as before` });
    } else out.push({ name: "apps", ok: true, detail: "no app was running before the update" });
    if (h.managed()) {
      const ctl = h.controller();
      out.push({ name: "controller", ok: ctl.ok, detail: ctl.detail });
    }
    return out;
  }

  private commit(c: Operation): void {
    this.o.backend.writeEnv(withCommitted(this.readEnvSafe(), c.slot));
    this.boot = bootState(this.o.backend.booted, this.readEnvSafe());
    this.state.slots[c.slot] = { ...this.state.slots[c.slot], version: c.version, note: undefined };
    const took = Math.round((Date.now() - Date.parse(c.probation!.startedAt)) / 1000);
    c.timings.trialSeconds = took;
    this.finish("committed", `version ${c.version} committed on slot ${c.slot} after ${took} s of its test window (${c.probation!.checks.map((x) => x.detail).join("; ")})`);
    this.save();
    this.o.hooks.publish("baseos.committed", `slot ${c.slot} (version ${c.version}) committed`, { slot: c.slot, version: c.version });
  }

  // ---- receiving and verifying

  incomingPath(): string {
    return join(this.o.stateDir, "incoming.bin");
  }

  private busy(): string | null {
    const c = this.state.current;
    if (this.boot.outcome === "trying" || c?.phase === "testing") return `slot ${this.boot.booted} is on probation (its test window runs); try again once it is committed or has fallen back`;
    if (c && ACTIVE_PHASES.includes(c.phase)) return `another update (version ${c.version ?? "?"}, ${c.phase}) is in progress; cancel it first (POST /api/v1/baseos/cancel)`;
    return null;
  }

  private begin(source: Operation["source"]): Operation {
    const busy = this.busy();
    if (busy) throw new BaseOsRefused("conflict", busy);
    const now = new Date().toISOString();
    const op: Operation = { id: newId(), source, version: null, slot: otherSlot(this.o.backend.booted), phase: "receiving", progress: null, startedAt: now, updatedAt: now, timings: {}, schedule: null };
    this.state.current = op;
    this.save();
    return op;
  }

  /** An upload, streamed to PERSIST (never whole in memory), verified, then written in the background. */
  async upload(body: ReadableStream<Uint8Array> | null, declaredBytes: number | null): Promise<Operation> {
    const op = this.begin("upload");
    const t0 = performance.now();
    const maxBytes = this.o.backend.capacity(op.slot) + 1 * MiB;
    const receiving = (this.receiving = new AbortController());
    try {
      if (!body) throw new BaseOsRefused("invalid", "empty request body: send the update file as application/octet-stream");
      if (declaredBytes !== null && declaredBytes > maxBytes) throw new BaseOsRefused("too-large", `the update (${declaredBytes} bytes) is larger than slot ${op.slot} (${this.o.backend.capacity(op.slot)} bytes)`);
      op.progress = { done: 0, total: declaredBytes ?? 0 };
      const fh = await open(this.incomingPath(), "w", 0o600);
      let got = 0;
      let lastReport = 0;
      try {
        const reader = body.getReader();
        for (;;) {
          let chunk: BodyChunk;
          try {
            chunk = await readOrGiveUp(reader, receiving.signal, this.o.uploadStallMs ?? 120_000);
          } catch (e) {
            await reader.cancel().catch(() => {});
            throw e;
          }
          const { value, done } = chunk;
          if (done) break;
          got += value.byteLength;
          if (got > maxBytes) {
            await reader.cancel().catch(() => {});
            throw new BaseOsRefused("too-large", `the update is larger than slot ${op.slot} (${this.o.backend.capacity(op.slot)} bytes)`);
          }
          await fh.write(value);
          op.progress.done = got;
          if (got - lastReport >= 16 * MiB) {
            lastReport = got;
            this.progressEvent(op);
          }
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (declaredBytes !== null && got !== declaredBytes) throw new BaseOsRefused("invalid", `the upload ended after ${got} of ${declaredBytes} bytes`);
      op.timings.receiveMs = Math.round(performance.now() - t0);
      if (receiving.signal.aborted) throw new UploadCancelled();
      await this.verify(op, this.incomingPath());
      if (receiving.signal.aborted) throw new UploadCancelled();
    } catch (e) {
      // Cancelled: cancel() has recorded it already and the slot was never touched.
      if (e instanceof UploadCancelled || receiving.signal.aborted) throw new BaseOsRefused("conflict", "the upload was cancelled by the operator; nothing was written");
      this.refuse(op, e);
    } finally {
      if (this.receiving === receiving) this.receiving = null;
    }
    void this.writeAndSchedule(op);
    return op;
  }

  /** Turns an error into a refusal: history, status, event; the slot untouched; rethrown for the API answer. */
  private refuse(op: Operation, e: unknown): never {
    rmSync(this.incomingPath(), { force: true });
    const refused = e instanceof BaseOsRefused ? e : e instanceof BundleError ? new BaseOsRefused("invalid", e.message) : new BaseOsRefused("invalid", (e as Error).message);
    this.state.current = op;
    this.finish("refused", refused.message);
    this.save();
    this.o.hooks.publish("baseos.refused", `update refused: ${refused.message}`, { version: op.version, reason: refused.message });
    throw refused;
  }

  private async verify(op: Operation, path: string): Promise<void> {
    const t0 = performance.now();
    op.phase = "verifying";
    this.touch(op);
    const { manifest, layout, key } = await readBundleHead(path, this.o.keys);
    op.version = manifest.version;
    op.manifest = { version: manifest.version, board: manifest.board, arch: manifest.arch, squashfs: manifest.squashfs, buildTime: manifest.buildTime, keyId: key.id };
    if (manifest.board !== this.o.board.board) throw new BaseOsRefused("invalid", `the update is for board ${manifest.board}; this device is ${this.o.board.board}`);
    if (manifest.arch !== this.o.board.arch) throw new BaseOsRefused("invalid", `the update is for architecture ${manifest.arch}; this device is ${this.o.board.arch}`);
    const cap = this.o.backend.capacity(op.slot);
    if (layout.fileBytes > cap) throw new BaseOsRefused("invalid", `the update (${layout.fileBytes} bytes) does not fit slot ${op.slot} (${cap} bytes)`);
    const failed = this.state.failed[manifest.version];
    if (failed) throw new BaseOsRefused("conflict", `version ${manifest.version} failed before (${failed.reason}); it is not tried again until a retry (POST /api/v1/baseos/retry, or the controller's retry_update)`);
    // One pass: the payload's hash (against the signed manifest) and the whole file's (for the read-back).
    const fh = await open(path, "r");
    try {
      const whole = createHash("sha256");
      const payload = createHash("sha256");
      op.progress = { done: 0, total: layout.fileBytes };
      await readRange(fh, 0, layout.fileBytes, (chunk, at) => {
        whole.update(chunk);
        if (at < layout.payloadBytes) payload.update(chunk.subarray(0, Math.min(chunk.length, layout.payloadBytes - at)));
        op.progress!.done = at + chunk.length;
      });
      const got = payload.digest("hex");
      if (got !== manifest.squashfs.sha256) throw new BaseOsRefused("invalid", `wrong hash: the squashfs's sha256 is ${got}, the signed manifest says ${manifest.squashfs.sha256}`);
      op.fileSha256 = whole.digest("hex");
      op.fileBytes = layout.fileBytes;
    } finally {
      await fh.close();
    }
    op.timings.verifyMs = Math.round(performance.now() - t0);
    this.o.hooks.publish("baseos.verified", `update ${manifest.version} verified (signed by key ${key.id}, ${layout.fileBytes} bytes)`, { version: manifest.version });
  }

  // ---- writing

  private async writeAndSchedule(op: Operation): Promise<void> {
    const abort = (this.abort = new AbortController());
    const t0 = performance.now();
    try {
      const dev = this.o.backend.path(op.slot);
      const total = op.fileBytes!;
      op.phase = "writing";
      op.progress = { done: 0, total };
      // The other slot is about to change: it no longer holds what it held.
      this.state.slots[op.slot] = { version: null, note: `being written with ${op.version}` };
      this.touch(op);
      this.o.hooks.publish("baseos.writing", `writing version ${op.version} to slot ${op.slot} (${dev})`, { version: op.version, slot: op.slot });
      const src = await open(this.incomingPath(), "r");
      const dst = await open(dev, "r+");
      try {
        let lastSave = 0;
        await readRange(src, 0, total, async (chunk, at) => {
          if (abort.signal.aborted) throw new Error("cancelled");
          let off = 0;
          while (off < chunk.length) {
            const { bytesWritten } = await dst.write(chunk, off, chunk.length - off, at + off);
            off += bytesWritten;
          }
          op.progress!.done = at + chunk.length;
          if (op.progress!.done - lastSave >= 32 * MiB) {
            lastSave = op.progress!.done;
            this.touch(op);
            this.progressEvent(op);
          }
        });
        await dst.sync();
      } finally {
        await Promise.all([src.close(), dst.close()]);
      }
      op.timings.writeMs = Math.round(performance.now() - t0);
      // Read back from the medium (not the page cache) and compare.
      const t1 = performance.now();
      op.phase = "reading-back";
      op.progress = { done: 0, total };
      this.touch(op);
      this.o.backend.dropCaches?.();
      const h = createHash("sha256");
      const rb = await open(dev, "r");
      try {
        await readRange(rb, 0, total, (chunk, at) => {
          if (abort.signal.aborted) throw new Error("cancelled");
          h.update(chunk);
          op.progress!.done = at + chunk.length;
        });
      } finally {
        await rb.close();
      }
      const back = h.digest("hex");
      op.timings.readBackMs = Math.round(performance.now() - t1);
      if (back !== op.fileSha256) throw new Error(`read-back mismatch: slot ${op.slot} holds sha256 ${back}, written ${op.fileSha256}`);
      // Only now: the boot loader is asked to try the slot once.
      this.o.backend.writeEnv(withTryOnce(this.readEnvSafe(), op.slot));
      this.boot = bootState(this.o.backend.booted, this.readEnvSafe());
      this.state.slots[op.slot] = { version: op.version, sha256: op.manifest?.squashfs.sha256, writtenAt: new Date().toISOString() };
      rmSync(this.incomingPath(), { force: true });
      op.phase = "ready";
      op.progress = null;
      this.touch(op);
      this.o.hooks.publish("baseos.written", `version ${op.version} written to slot ${op.slot} and read back (write ${(op.timings.writeMs / 1000).toFixed(1)} s, read-back ${(op.timings.readBackMs / 1000).toFixed(1)} s); slot ${op.slot} will be tried once at the next boot`, { version: op.version, slot: op.slot, timings: op.timings });
      this.schedule(op);
    } catch (e) {
      const msg = (e as Error).message;
      this.state.slots[op.slot] = { version: null, note: `incomplete: ${msg}` };
      rmSync(this.incomingPath(), { force: true });
      this.finish(msg === "cancelled" ? "cancelled" : "failed", msg === "cancelled" ? `cancelled while ${op.phase}; slot ${op.slot} holds an incomplete image and is not tried` : `writing slot ${op.slot} failed: ${msg}`);
      this.save();
      this.o.hooks.publish(`baseos.${msg === "cancelled" ? "cancelled" : "failed"}`, msg);
    } finally {
      if (this.abort === abort) this.abort = null;
    }
  }

  // ---- rebooting into the trial

  private managedActivate: boolean = false;

  private schedule(op: Operation): void {
    const s = this.state.settings;
    // The config's update reboots when the config says activate (EVE); an upload in the console follows the settings.
    const managed = op.source === "config" && this.o.hooks.managed() ? { activate: this.managedActivate } : null;
    const at = rebootAt(new Date(), s, managed);
    const mode = managed ? "controller" : s.reboot;
    op.schedule = {
      mode,
      at: at ? at.toISOString() : null,
      note: at ? (mode === "window" ? `in the maintenance window ${s.window.start} UTC + ${s.window.durationMinutes} min` : "now") : managed ? "waiting for the controller's activate" : "held until POST /api/v1/baseos/activate",
    };
    this.touch(op);
    if (!at) return;
    const delay = Math.max(0, at.getTime() - Date.now());
    this.timers.push(setTimeout(() => this.rebootIntoTrial(op, mode === "window" ? "maintenance window" : "update written"), Math.min(delay, 2 ** 31 - 1)));
  }

  private rebootIntoTrial(op: Operation, why: string): void {
    if (this.stopped || this.state.current !== op || op.phase !== "ready") return;
    op.appsBefore = this.o.hooks.apps().filter((a) => a.state === "RUNNING").map((a) => ({ uuid: a.uuid, name: a.name }));
    // The slot we leave keeps its version: after a commit it is the other, unused slot.
    this.state.slots[this.o.backend.booted] = { version: this.o.bootedVersion };
    op.phase = "rebooting";
    op.timings.rebootAt = Date.now();
    this.touch(op);
    const msg = `rebooting into slot ${op.slot} (version ${op.version}) on trial (${why}); ${op.appsBefore.length} app(s) RUNNING must run again`;
    this.o.hooks.publish("baseos.rebooting", msg, { slot: op.slot, version: op.version });
    if (this.o.hooks.reboot) {
      const r = this.o.hooks.reboot(`base OS update: ${msg}`);
      if (!r.accepted) this.o.hooks.log("warn", `baseos: reboot not accepted: ${r.message}`);
    } else if (op.schedule) {
      op.schedule.note = "host mode: the reboot is recorded, not done";
      this.touch(op);
    }
  }

  /** POST /baseos/activate: reboot into a written update now (held, or outside the window). */
  activate(): Operation {
    const c = this.state.current;
    if (!c || c.phase !== "ready") throw new BaseOsRefused("conflict", c ? `the update is ${c.phase}, not written and waiting` : "no update is written and waiting");
    this.rebootIntoTrial(c, "activated by the operator");
    return c;
  }

  cancel(): Operation {
    const c = this.state.current;
    if (!c || !ACTIVE_PHASES.includes(c.phase)) throw new BaseOsRefused("conflict", "no update in progress");
    if (c.phase === "testing") throw new BaseOsRefused("conflict", "the trial's test window runs; it commits or falls back by itself");
    if (c.phase === "rebooting" && this.o.hooks.reboot) throw new BaseOsRefused("conflict", "the device is rebooting into the update");
    if (c.phase === "writing" || c.phase === "reading-back") {
      this.abort?.abort();
      return c;
    }
    if ((c.phase === "receiving" || c.phase === "verifying") && c.source === "upload" && this.receiving) {
      // Recorded now, so the answer is final; the upload's own request ends with 409 once its body read stops.
      this.receiving.abort();
      this.receiving = null;
      rmSync(this.incomingPath(), { force: true });
      this.finish("cancelled", `the upload${c.version ? ` of version ${c.version}` : ""} was cancelled by the operator while ${c.phase}; nothing was written`);
      this.save();
      this.o.hooks.publish("baseos.cancelled", "upload cancelled while it was received");
      return c;
    }
    if (c.phase === "receiving" || c.phase === "verifying") throw new BaseOsRefused("conflict", "the controller's update is being downloaded; change the config to stop it");
    // ready (or rebooting recorded in host mode): the try is withdrawn; the slot keeps bytes nobody boots.
    this.o.backend.writeEnv({ ...this.readEnvSafe(), evebox_try: "" });
    this.boot = bootState(this.o.backend.booted, this.readEnvSafe());
    this.state.slots[c.slot] = { ...this.state.slots[c.slot], version: c.version, note: "cancelled: written, never tried" };
    this.finish("cancelled", `cancelled by the operator; slot ${c.slot} will not be tried`);
    this.save();
    this.o.hooks.publish("baseos.cancelled", `update ${c.version} cancelled`);
    return c;
  }

  /** POST /baseos/retry (or the controller's retry_update): failed versions may be tried again. */
  retry(version?: string): string[] {
    const cleared = Object.keys(this.state.failed).filter((v) => !version || v === version);
    for (const v of cleared) delete this.state.failed[v];
    this.save();
    this.o.hooks.publish("baseos.retry", cleared.length ? `failed versions may be tried again: ${cleared.join(", ")}` : "retry: no failed version to clear", { versions: cleared });
    return cleared;
  }

  /** The config's retry_update counter: a change clears the failed versions (as EVE does). */
  noteRetryCounter(counter: number): void {
    if (this.state.retryCounter !== null && counter !== this.state.retryCounter) this.retry();
    if (this.state.retryCounter !== counter) {
      this.state.retryCounter = counter;
      this.save();
    }
  }

  setManagedActivate(activate: boolean): void {
    const was = this.managedActivate;
    this.managedActivate = activate;
    const c = this.state.current;
    if (activate && !was && c?.phase === "ready" && c.source === "config" && this.o.hooks.managed()) this.schedule(c);
  }

  settings(): BaseOsSettings {
    return this.state.settings;
  }

  /** The trial's test window: the config's timer.test.baseimage.update when set (and longer than the checks must hold), else the setting. */
  private testWindow(): number {
    const fromConfig = this.o.hooks.testWindowSeconds?.() ?? null;
    return fromConfig !== null && fromConfig > this.state.settings.stableSeconds ? fromConfig : this.state.settings.testWindowSeconds;
  }

  putSettings(input: unknown): BaseOsSettings {
    this.state.settings = mergeSettings(this.state.settings, input);
    this.save();
    this.o.hooks.publish("baseos.settings", "base OS update settings changed", { settings: this.state.settings });
    const c = this.state.current;
    if (c?.phase === "ready") this.schedule(c);
    return this.state.settings;
  }

  // ---- bookkeeping

  private touch(op: Operation): void {
    op.updatedAt = new Date().toISOString();
    if (this.state.current === op) this.save();
  }

  private progressEvent(op: Operation): void {
    const p = op.progress;
    if (!p) return;
    this.o.hooks.publish("baseos.progress", `${op.phase} ${op.version ?? ""} ${p.total ? Math.floor((100 * p.done) / p.total) + "%" : `${Math.round(p.done / MiB)} MiB`}`.replace(/\s+/g, " "), { phase: op.phase, done: p.done, total: p.total });
  }

  private finish(outcome: Outcome, reason: string): void {
    const c = this.state.current;
    const entry: HistoryEntry = { id: c?.id ?? newId(), source: c?.source ?? "manual", version: c?.version ?? null, slot: c?.slot ?? null, outcome, reason, at: new Date().toISOString(), startedAt: c?.startedAt ?? null, timings: c?.timings };
    this.state.history.unshift(entry);
    this.state.history.length = Math.min(this.state.history.length, HISTORY_MAX);
    this.state.current = null;
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.abort?.abort();
    this.receiving?.abort();
  }

  // ---- reporting

  slotState(slot: Slot): "active" | "updating" | "inprogress" | "unused" | "failed" {
    const b = this.boot;
    const c = this.state.current;
    if (slot === b.booted) return b.outcome === "trying" ? "inprogress" : "active";
    if (b.outcome === "trying" && slot === b.active) return "active";
    if (c && c.slot === slot && ACTIVE_PHASES.includes(c.phase)) return "updating";
    if (this.state.slots[slot]?.note?.startsWith("failed")) return "failed";
    return "unused";
  }

  slots() {
    return (["A", "B"] as Slot[]).map((slot) => {
      const rec = this.state.slots[slot];
      const version = slot === this.boot.booted ? this.o.bootedVersion : (rec?.version ?? null);
      return {
        slot,
        partition: `IMG${slot}`,
        device: this.o.backend.path(slot),
        capacityBytes: this.o.backend.capacity(slot),
        version,
        state: this.slotState(slot),
        booted: slot === this.boot.booted,
        committed: slot === this.boot.active,
        note: slot === this.boot.booted ? null : (rec?.note ?? null),
      };
    });
  }

  view() {
    const c = this.state.current;
    return {
      available: true,
      reason: null,
      board: this.o.board.board,
      arch: this.o.board.arch,
      backend: this.o.backend.kind,
      booted: this.boot.booted,
      active: this.boot.active,
      outcome: this.boot.outcome,
      version: this.o.bootedVersion,
      slots: this.slots(),
      update: c ? { ...c, appsBefore: c.appsBefore ?? null } : null,
      lastBoot: this.bootNote,
      settings: this.state.settings,
      failedVersions: Object.entries(this.state.failed).map(([version, f]) => ({ version, ...f })),
      vendorKeys: this.o.keys.map((k) => ({ id: k.id, name: k.name })),
      history: this.state.history,
    };
  }

  part(): PartStatus {
    const c = this.state.current;
    const last = this.state.history[0];
    let detail = `slot ${this.boot.booted} (${this.o.bootedVersion}) ${this.slotState(this.boot.booted)}`;
    if (c) {
      const pct = c.progress?.total ? ` ${Math.floor((100 * c.progress.done) / c.progress.total)}%` : "";
      detail += `; update ${c.version ?? "?"} ${c.phase}${pct}${c.phase === "testing" && c.probation ? ` until ${c.probation.endsAt}` : ""}${c.phase === "ready" && c.schedule ? ` (reboot: ${c.schedule.note})` : ""}`;
    } else if (last) detail += `; last update ${last.version ?? "?"} ${last.outcome}: ${last.reason}`;
    const state = c?.phase === "testing" ? "degraded" : !c && last && (last.outcome === "fell-back" || last.outcome === "failed" || last.outcome === "interrupted") ? "degraded" : "ok";
    return { name: "baseos", state, detail };
  }

  /** EVE's ZInfoDevSW entries, one per partition (controller/report.ts). */
  swList(): Record<string, unknown>[] {
    const c = this.state.current;
    return this.slots().map((s) => {
      const mine = c && c.slot === s.slot;
      let userStatus = "NONE";
      let subStatus = "NONE_SUBSTATUS";
      let status = s.state === "unused" ? "INITIAL" : "INSTALLED";
      if (s.booted && s.state === "active") status = "RUNNING";
      if (mine) {
        if (c.phase === "receiving") [userStatus, subStatus, status] = ["DOWNLOADING", "DOWNLOAD_INPROGRESS", "DOWNLOAD_STARTED"];
        else if (c.phase === "verifying") [userStatus, subStatus, status] = ["DOWNLOAD_DONE", "VERIFY_INPROGRESS", "VERIFYING"];
        else if (c.phase === "writing" || c.phase === "reading-back") [userStatus, subStatus, status] = ["UPDATING", "UPDATE_INITIALIZING", "LOADING"];
        else if (c.phase === "ready") [userStatus, subStatus, status] = ["UPDATING", c.schedule?.at ? "UPDATE_REBOOTING" : "UPDATE_DEFERRED", "LOADED"];
        else if (c.phase === "rebooting") [userStatus, subStatus, status] = ["UPDATING", "UPDATE_REBOOTING", "BOOTING"];
        else if (c.phase === "testing") [userStatus, subStatus, status] = ["UPDATING", "UPDATE_TESTING", "RUNNING"];
      } else if (s.state === "failed") [userStatus, status] = ["FAILED", "ERROR"];
      else if (s.booted && this.state.history[0]?.outcome === "committed" && this.state.history[0].slot === s.slot) userStatus = "UPDATED";
      else if (s.booted && this.state.history[0]?.outcome === "fell-back") userStatus = "FALLBACK";
      const failed = s.version ? this.state.failed[s.version] : undefined;
      return {
        activated: s.committed,
        partitionLabel: s.partition,
        partitionDevice: s.device,
        partitionState: s.state,
        status,
        shortVersion: s.version ?? "",
        longVersion: s.version ? `evebox ${s.version} (${this.o.board.board}, ${this.o.board.arch})` : "",
        userStatus,
        subStatus,
        subStatusStr: mine ? `${c.phase}${c.progress?.total ? ` ${Math.floor((100 * c.progress.done) / c.progress.total)}%` : ""}` : (s.note ?? ""),
        subStatusProgress: mine && c.progress?.total ? Math.floor((100 * c.progress.done) / c.progress.total) : 0,
        ...(failed && s.state === "failed" ? { swErr: { description: failed.reason, timestamp: { seconds: Math.floor(Date.parse(failed.at) / 1000), nanos: 0 } } } : {}),
      };
    });
  }
}

async function readRange(fh: FileHandle, offset: number, length: number, each: (chunk: Uint8Array, at: number) => unknown): Promise<void> {
  const buf = Buffer.allocUnsafe(4 * MiB);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, length - done), offset + done);
    if (bytesRead <= 0) throw new Error(`read ended early at ${offset + done} (${done} of ${length} bytes)`);
    await each(buf.subarray(0, bytesRead), done);
    done += bytesRead;
  }
}

function newId(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString("hex");
}

/** What the API and status say where there are no A/B slots. */
export function notAbView(reason: string) {
  return { available: false, reason, board: null, arch: null, backend: null, booted: null, active: null, outcome: null, version: null, slots: [], update: null, lastBoot: null, settings: null, failedVersions: [], vendorKeys: [], history: [] };
}

/** The next chunk of an upload, unless the operator cancels it first or the sender stalls for `stallMs`. */
function readOrGiveUp(reader: ReadableStreamDefaultReader<Uint8Array>, signal: AbortSignal, stallMs: number): Promise<BodyChunk> {
  if (signal.aborted) return Promise.reject(new UploadCancelled());
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new UploadCancelled());
    const timer = setTimeout(() => reject(new BaseOsRefused("timed-out", `the upload stalled: no data for ${Math.round(stallMs / 1000)} s`)), stallMs);
    signal.addEventListener("abort", onAbort, { once: true });
    reader.read().then(resolve, reject).finally(() => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    });
  });
}
