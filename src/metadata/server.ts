// The metadata server's listener: one Bun.serve on the device, reached only through the network part's DNAT of
// each Local instance's 169.254.169.254:80 to its gateway and this port (its input rules drop the port from
// anywhere else). The port is evebox's (`DEFAULT_METADATA_PORT`, stable across restarts so the loaded ruleset is
// adopted as it is); when another program holds it, a free one is taken and the ruleset follows. It listens only
// while the device has a Local instance (`want`, from the network part): with none there is no DNAT and no input
// rule of evebox's, so an open port would be reachable from the LAN (answering 403, but reachable).
import type { Server } from "bun";
import { MAX_POST_BODY, type MetadataService } from "./service.ts";

export const DEFAULT_METADATA_PORT = 8169;
/** Nothing an app sends the metadata server has a body worth more (the signer: 64 KiB; appCustomStatus: 32 KiB; the rest are GETs). */
const MAX_BODY = MAX_POST_BODY + 1024;

export class MetadataServer {
  private server: Server<undefined> | null = null;
  /** The port chosen at start(), kept while not listening: the firewall's DNAT names it. */
  private chosen: number | null = null;

  constructor(private readonly service: MetadataService, private readonly log: (level: "info" | "warn" | "error", m: string) => void) {}

  /** Listens on `port` (0: any free one), else on a free port when `port` is taken; returns the port. */
  start(port = DEFAULT_METADATA_PORT): number {
    try {
      this.server = this.serve(port);
    } catch (e) {
      if (port === 0) throw e;
      this.log("warn", `metadata server: port ${port} is taken (${(e as Error).message}); listening on a free port`);
      this.server = this.serve(0);
    }
    this.chosen = this.server.port!;
    this.log("info", `metadata server on port ${this.server.port} (apps on Local instances: http://169.254.169.254/)`);
    return this.server.port!;
  }

  /**
   * Listens on the chosen port while `on` (the device has a Local instance), and not otherwise. A port another
   * program took meanwhile is logged: the apps' 169.254.169.254 then gets no answer until it is free again.
   */
  want(on: boolean): void {
    if (this.chosen === null || on === (this.server !== null)) return;
    if (!on) {
      void this.server!.stop(true);
      this.server = null;
      return;
    }
    try {
      this.server = this.serve(this.chosen);
    } catch (e) {
      this.log("error", `metadata server: cannot listen on port ${this.chosen} again (${(e as Error).message}): apps get no answer at 169.254.169.254`);
    }
  }

  private serve(p: number): Server<undefined> {
    return Bun.serve({
      hostname: "0.0.0.0",
      port: p,
      maxRequestBodySize: MAX_BODY,
      idleTimeout: 10,
      fetch: (req, server) => {
        const from = server.requestIP(req);
        if (!from) return new Response(null, { status: 403 });
        return this.service.fetch(req, from.address.replace(/^::ffff:/, ""), from.port);
      },
      error: (e) => {
        this.log("error", `metadata server: ${e.message}`);
        return new Response(JSON.stringify({ message: "internal error" }), { status: 500, headers: { "Content-Type": "application/json" } });
      },
    });
  }

  /** The chosen port (also while not listening). */
  get port(): number | null {
    return this.chosen;
  }

  get listening(): boolean {
    return this.server !== null;
  }

  stop(): void {
    void this.server?.stop(true);
    this.server = null;
    this.chosen = null;
  }
}
