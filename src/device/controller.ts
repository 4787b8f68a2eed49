// The controller part as the composition root holds it: one object from the start, which answers for the
// controller link (URL, part, status) before the controller's code and identity have loaded, and after.
import type { Controller, ControllerDeps, ControllerTimers } from "../controller/sync.ts";
import type { SecretOpener } from "../config/cipher.ts";
import type { ControllerLink, PartStatus } from "../model/status.ts";
import type { FlowMessage } from "../proto/index.ts";
import type { AppSample } from "../telemetry/metrics.ts";
import { notStarted } from "./not-started.ts";
import type { PatchEnvelopeReport } from "../config/patch-envelopes.ts";

/** What the controller part is built from: the controller's own dependencies it passes through, and its own. */
export interface ControllerPartOptions
  extends Pick<ControllerDeps, "configDir" | "persistDir" | "dataDir" | "version" | "store" | "events" | "config" | "device" | "locCommands"> {
  /** --controller / EVEBOX_CONTROLLER, written to config/server when the part starts. */
  url: string | null;
  /** The controller's address known before the part starts (from `url` or config/server): managed or not. */
  hint: string | null;
  timers: Partial<ControllerTimers>;
  checkpointMaxAgeMs: number | null;
  /** The apps' CPU and memory (the app runtime). */
  appMetrics: { appSamples(): AppSample[]; appCustomStatus?(): { uuid: string; data: Uint8Array }[]; patchEnvelopes?(): PatchEnvelopeReport[] | null };
  /** Flow records since the last call (the app runtime's network part). */
  flows: { collectFlows(devUuid: string): Promise<FlowMessage[]> };
}

export class ControllerPart implements ControllerLink {
  private controller: Controller | null = null;
  private loading: Promise<Controller> | null = null;
  private started = false;

  constructor(private readonly o: ControllerPartOptions) {}

  /**
   * A managed device loads the device identity and the controller's code now and applies its checkpointed
   * config. In local mode nothing loads (X.509, protobufjs reflection and the sync loops cost memory and start
   * time for nothing): the Controller page (status) or an enrollment (configure) loads them when first asked.
   */
  async start(): Promise<void> {
    this.started = true;
    if (this.o.url || this.o.hint) await this.load();
  }

  private load(): Promise<Controller> {
    this.loading ??= (async () => {
      const [{ DeviceIdentity }, { Controller }] = await Promise.all([import("../controller/identity.ts"), import("../controller/sync.ts")]);
      const identity = await DeviceIdentity.loadOrCreate(this.o.configDir);
      const c = Controller.create({
        configDir: this.o.configDir,
        persistDir: this.o.persistDir,
        dataDir: this.o.dataDir,
        version: this.o.version,
        store: this.o.store,
        events: this.o.events,
        config: this.o.config,
        device: this.o.device,
        identity,
        url: this.o.url,
        timers: this.o.timers,
        appMetrics: () => this.o.appMetrics.appSamples(),
        appCustomStatus: () => this.o.appMetrics.appCustomStatus?.() ?? [],
        patchEnvelopes: () => this.o.appMetrics.patchEnvelopes?.() ?? null,
        flowRecords: (devUuid) => this.o.flows.collectFlows(devUuid),
        checkpointMaxAgeMs: this.o.checkpointMaxAgeMs,
        locCommands: this.o.locCommands,
      });
      this.controller = c;
      await c.start();
      return c;
    })();
    // A failed load may be tried again by the next request.
    this.loading.catch(() => (this.loading = null));
    return this.loading;
  }

  async stop(): Promise<void> {
    this.started = false;
    await this.loading?.catch(() => undefined);
    await this.controller?.stop();
  }

  url(): string | null {
    return this.controller ? this.controller.url() : this.o.hint;
  }

  part(): PartStatus {
    if (this.controller) return this.controller.part();
    return this.o.hint
      ? { name: "controller", state: "degraded", detail: `configured (${this.o.hint}); controller sync is not running yet` }
      : { name: "controller", state: "idle", detail: "local mode: no controller configured" };
  }

  async status(): Promise<object> {
    if (this.controller) return this.controller.status();
    if (!this.started) throw notStarted("controller sync");
    return (await this.load()).status();
  }

  /**
   * Signs an app's payload with the device's key (the metadata server's signer, EVE's AddAuthentication): an
   * AuthContainer as the device's controller messages are. The identity is the controller link's when it runs;
   * otherwise it is loaded (created on a first start) from the config directory, as the link would.
   */
  async signForApp(payload: Uint8Array): Promise<Uint8Array> {
    const { seal } = await import("../controller/envelope.ts");
    if (this.controller) return seal(payload, this.controller.identity.device);
    this.ownIdentity ??= import("../controller/identity.ts").then(({ DeviceIdentity }) => DeviceIdentity.loadOrCreate(this.o.configDir));
    this.ownIdentity.catch(() => (this.ownIdentity = null));
    return seal(payload, (await this.ownIdentity).device);
  }
  private ownIdentity: Promise<import("../controller/identity.ts").DeviceIdentity> | null = null;

  /** Opens the config's encrypted blocks (the controller's ECDH certificates and the device's ECDH key). */
  readonly secrets: SecretOpener = {
    epoch: () => (this.controller ? this.controller.cipher().epoch() : -1),
    open: (block, ctx) => (this.controller ? this.controller.cipher().open(block, ctx) : Promise.reject(this.noOpener())),
    openBytes: (block, ctx) => (this.controller ? this.controller.cipher().openBytes!(block, ctx) : Promise.reject(this.noOpener())),
  };

  private noOpener(): Error {
    return new Error(this.o.url || this.o.hint ? "the controller link is not running yet" : "no controller is configured: encrypted data (cipherData) is opened with a controller's ECDH certificate");
  }

  async configure(input: { url?: unknown; rootCertificate?: unknown }): Promise<object> {
    if (this.controller) return await this.controller.configure(input);
    if (!this.started) throw notStarted("controller sync");
    return await (await this.load()).configure(input);
  }
}
