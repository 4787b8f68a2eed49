// The metadata server's listener: one Bun.serve on the device, reached only through the network part's DNAT of
// each Local instance's 169.254.169.254:80 to its gateway and this port (its input rules drop the port from
// anywhere else). The port is evebox's (`DEFAULT_METADATA_PORT`, stable across restarts so the loaded ruleset is
// adopted as it is); when another program holds it, a free one is taken and the ruleset follows.
import type { Server } from "bun";
import type { MetadataService } from "./service.ts";

export const DEFAULT_METADATA_PORT = 8169;
/** Nothing an app sends the metadata server has a body worth more (appCustomStatus: 32 KiB; the rest are GETs). */
const MAX_BODY = 33 * 1024;

export class MetadataServer {
  private server: Server<undefined> | null = null;

  constructor(private readonly service: MetadataService, private readonly log: (level: "info" | "warn" | "error", m: string) => void) {}

  /** Listens on `port` (0: any free one), else on a free port when `port` is taken; returns the port. */
  start(port = DEFAULT_METADATA_PORT): number {
    const serve = (p: number) =>
      Bun.serve({
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
    try {
      this.server = serve(port);
    } catch (e) {
      if (port === 0) throw e;
      this.log("warn", `metadata server: port ${port} is taken (${(e as Error).message}); listening on a free port`);
      this.server = serve(0);
    }
    this.log("info", `metadata server on port ${this.server.port} (apps on Local instances: http://169.254.169.254/)`);
    return this.server.port!;
  }

  get port(): number | null {
    return this.server?.port ?? null;
  }

  stop(): void {
    void this.server?.stop(true);
    this.server = null;
  }
}
