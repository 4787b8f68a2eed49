// The Local Profile Server client as the composition root holds it: one object from the start, which loads the
// client's code only once a config names a local profile server (most devices never have one).
import type { ConfigService } from "../config/service.ts";
import type { LocCommands } from "../controller/loc.ts";
import type { LpsClient, LpsDeps } from "../lps/client.ts";
import { readBootOrders } from "../lps/commands.ts";
import type { PartStatus } from "../model/status.ts";

export interface LpsPartOptions extends Omit<LpsDeps, "model"> {
  config: ConfigService;
}

export class LpsPart {
  private client: LpsClient | null = null;
  private loading: Promise<void> | null = null;
  private unsubscribe: (() => void) | null = null;
  private stopped = true;

  constructor(private readonly o: LpsPartOptions) {}

  start(): void {
    this.stopped = false;
    this.check();
    this.unsubscribe = this.o.config.onChange(() => this.check());
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    this.client?.stop();
  }

  /** The VM boot orders the LPS set (appbootinfo), kept in the store: they hold before the client loads, and after a restart. */
  bootOrders(): Map<string, "usb" | "nousb"> {
    return readBootOrders(this.o.store);
  }

  /** The local profile the LPS set (null: none). */
  profile(): string | null {
    return this.client?.profile() ?? null;
  }

  status(): object | null {
    return this.client?.status() ?? null;
  }

  /**
   * The local commands of a Local Operator Console's compound config (EVE: the same command handling as the LPS's,
   * without its token: the LOC is trusted by the config that names it). Radio silence is recorded in the log:
   * evebox drives no radios.
   */
  async applyLoc(c: LocCommands): Promise<void> {
    const { applyAppCommands, applyDevCommand } = await import("../lps/commands.ts");
    const by = "Local Operator Console";
    if (c.appCmdList) applyAppCommands(this.o, c.appCmdList, by);
    if (c.devCmd) applyDevCommand(this.o, c.devCmd, by);
    if (c.radioConfig) this.o.log.info(`${by}: radio silence ${c.radioConfig.radioSilence ? "on" : "off"} (this device has no radios evebox drives)`);
  }

  /** The `lps` part once a config named a local profile server; none before (most devices never have one). */
  parts(): PartStatus[] {
    return this.client ? [this.client.part()] : [];
  }

  private check(): void {
    if (this.client || this.loading || this.stopped || !this.o.config.model()?.model.localProfileServer) return;
    this.loading = import("../lps/client.ts").then(({ LpsClient }) => {
      if (this.stopped) return;
      this.client = new LpsClient({ ...this.o, model: () => this.o.config.model()?.model ?? null });
      this.client.start();
    });
  }
}
