// The app runtime as the composition root holds it: one object from the start. Before the engines' code has
// loaded (it starts after the console answers) and when it is off, it answers "not running yet" (or "off"),
// so the console, the controller and the status need no null checks.
import type { AppCommands, PartStatus } from "../model/status.ts";
import { type TerminalSession, type Terminals, TerminalUnavailable } from "../model/terminal.ts";
import type { NetworkManager } from "../network/manager.ts";
import type { FlowMessage } from "../proto/index.ts";
import type { AppSample } from "../telemetry/metrics.ts";
import type { AppRuntimeConfig, BuiltAppRuntime } from "./app-runtime-build.ts";
import { notStarted } from "./not-started.ts";
import type { PatchEnvelopeReport } from "../config/patch-envelopes.ts";

export interface AppRuntimeOptions extends AppRuntimeConfig {
  /** false: no app runtime at all (EVEBOX_APPS=off, tests of the console alone). */
  enabled: boolean;
  /** Where a failure to start is reported. */
  onError: (message: string) => void;
}

const NOT_RUNNING = "the app runtime is not running yet; try again in a moment";

export class AppRuntimePart implements AppCommands, Terminals {
  private built: BuiltAppRuntime | null = null;
  private starting: Promise<void> | null = null;
  private failure: string | null = null;

  constructor(private readonly o: AppRuntimeOptions) {}

  /** Loads and starts the engine client, network part, VM runtime and reconciler; a failure is reported, not thrown. */
  start(): Promise<void> {
    if (!this.o.enabled) return Promise.resolve();
    this.starting ??= import("./app-runtime-build.ts")
      .then(async ({ buildAppRuntime }) => {
        const built = buildAppRuntime(this.o);
        try {
          await built.reconciler.start();
        } catch (e) {
          built.metadata?.server.stop();
          throw e;
        }
        this.built = built;
      })
      .catch((e) => {
        this.failure = (e as Error).message;
        this.o.onError(`the app runtime did not start: ${this.failure}`);
      });
    return this.starting;
  }

  /** Stops watching the workloads (they outlive the agent: the apps keep running). */
  async stop(): Promise<void> {
    await this.starting;
    await this.built?.reconciler.stop();
    this.built?.metadata?.server.stop();
  }

  /** Plans again now (the local profile changed: which apps are active). */
  replan(): void {
    this.built?.reconciler.trigger(false);
  }

  localCommand(uuid: string, command: "start" | "stop" | "restart" | "purge", by?: string): void {
    if (!this.built) throw notStarted("the app runtime");
    this.built.reconciler.localCommand(uuid, command, by);
  }

  async open(appUuid: string): Promise<TerminalSession> {
    return await this.terminals().open(appUuid);
  }

  async openDisplay(appUuid: string): Promise<TerminalSession> {
    return await this.terminals().openDisplay(appUuid);
  }

  private terminals() {
    if (!this.built) throw new TerminalUnavailable("conflict", NOT_RUNNING);
    return this.built.reconciler.terminals();
  }

  /** The latest CPU and memory figures of each running app (none before the runtime runs). */
  appSamples(): AppSample[] {
    const samples = this.built?.reconciler.appSamples() ?? [];
    const meta = this.built?.metadata?.service;
    if (!meta) return samples;
    // With each app's use of its patch envelopes (the metadata server's counters: EVE's AppPatchEnvelopeMetric).
    return samples.map((s) => {
      const used = meta.usageOf(s.uuid);
      return used.length ? { ...s, patchEnvelopes: used.map((u) => ({ uuid: u.uuid, version: u.version, apiCalls: u.apiCalls, downloads: u.downloads })) } : s;
    });
  }

  /** The patch envelopes' states as the metadata server sees them (a volume file not there yet); null before the runtime runs. */
  patchEnvelopes(): PatchEnvelopeReport[] | null {
    return this.built?.metadata?.service.reports() ?? null;
  }

  /** What each app last posted to its metadata server's appCustomStatus (none before the runtime runs). */
  appCustomStatus(): { uuid: string; data: Uint8Array }[] {
    return this.built?.metadata?.service.customStatuses() ?? [];
  }

  /** Samples every running app now (the metrics history's timer calls it); none before the runtime runs. */
  async sampleApps(): Promise<AppSample[]> {
    return (await this.built?.reconciler.sampleApps()) ?? [];
  }

  /** The device-wide halt changed (ops/): plan again now. */
  haltChanged(): void {
    this.built?.reconciler.trigger(false);
  }

  /** Flow records since the last call (none before the network part runs). */
  async collectFlows(devUuid: string): Promise<FlowMessage[]> {
    return (await this.built?.network?.collectFlows(devUuid)) ?? [];
  }

  /** The network part for the console's leases and firewall counters; null before it runs. */
  network(): NetworkManager | null {
    return this.built?.network ?? null;
  }

  /** runtime, vms and network in GET /status; nothing when the runtime is off. */
  parts(): PartStatus[] {
    if (!this.o.enabled) return [];
    if (this.failure) return [{ name: "runtime", state: "error", detail: `the app runtime did not start: ${this.failure}` }];
    const b = this.built;
    if (!b) return [{ name: "runtime", state: "idle", detail: "starting" }];
    return [b.reconciler.part(), ...(b.vms ? [b.vms.part()] : []), ...(b.network ? [b.network.part()] : [])];
  }
}
