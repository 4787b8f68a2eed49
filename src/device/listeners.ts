// The console's listeners: TCP behind the connection gate (per-client and total caps, idle timeouts; see
// console/connection-gate.ts), an optional plain-HTTP listener that only redirects to HTTPS, and the trusted
// local socket run/evebox.sock (mode 0600: file permissions are the authentication; no gate, so it answers
// when the TCP console is full).
import { chmodSync, existsSync, rmSync } from "node:fs";
import type { Hono } from "hono";
import { websocket } from "../console/console-socket.ts";
import { ConnectionBudget, ConnectionGate, type ConnectionLimits, gateIdleSeconds } from "../console/connection-gate.ts";
import { StartupError } from "./errors.ts";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type App = Hono<any>;

export interface ListenerOptions {
  listen: string;
  /** Also listen on this HOST:PORT with plain HTTP that redirects every request to the HTTPS console. */
  redirectHttp?: string;
  tls?: { cert: string; key: string };
  limits: ConnectionLimits;
  socketPath: string;
  /** The TCP console; `clients` tells it who sent a request (its peer is the gate). */
  tcpApp: (clients: WeakMap<Request, string>) => App;
  /** The trusted socket's app, built at its first request (a device whose socket nobody uses never builds it). */
  localApp: () => App;
  onRequest: () => void;
}

export function parseListen(listen: string): { hostname: string; port: number } {
  const m = listen.match(/^(?:\[([0-9a-fA-F:]+)\]|([^:]+)):(\d{1,5})$/) ?? listen.match(/^()()(\d{1,5})$/);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new StartupError(`--listen ${listen}: expected HOST:PORT, e.g. 127.0.0.1:8080`);
  return { hostname: m[1] || m[2] || "127.0.0.1", port };
}

/** Refuses a second evebox on the same data directory; removes a stale socket of one that died. */
export async function claimSocket(socketPath: string, root: string): Promise<void> {
  if (!existsSync(socketPath)) return;
  const alive = await fetch("http://localhost/api/v1/health", { unix: socketPath } as RequestInit).then(
    () => true,
    () => false,
  );
  if (alive) throw new StartupError(`another evebox is already running with data directory ${root} (${socketPath} answers)`);
  rmSync(socketPath, { force: true });
}

export class ConsoleListeners {
  private tcp: ReturnType<typeof Bun.serve> | null = null;
  private gate: ConnectionGate | null = null;
  private redirect: { gate: ConnectionGate; server: ReturnType<typeof Bun.serve> } | null = null;
  private local: ReturnType<typeof Bun.serve> | null = null;
  /** The console's URL, once listening. */
  url = "";
  /** While `quiet()` waits: requests in flight, and when one last began or ended (or the console began to listen). */
  private settling: { inFlight: number; lastAt: number } | null = null;

  constructor(private readonly o: ListenerOptions) {}

  /** Listens on TCP (and the redirect), then on the local socket; a fault is a StartupError and nothing is left open. */
  async start(): Promise<void> {
    const o = this.o;
    const listen = parseListen(o.listen);
    const clients = new WeakMap<Request, string>();
    const tcpApp = o.tcpApp(clients);
    const budget = new ConnectionBudget(o.limits);
    const idleTimeout = Math.max(1, Math.min(255, Math.round(o.limits.idleTimeoutMs / 1000)));
    const ws = { ...websocket, idleTimeout: Math.max(8, idleTimeout), sendPings: true }; // app consoles (GET /api/v1/apps/{uuid}/console)
    try {
      let g: ConnectionGate;
      try {
        g = ConnectionGate.listen({ hostname: listen.hostname, port: listen.port, budget, tls: !!o.tls, idleTimeoutS: gateIdleSeconds(o.limits.idleTimeoutMs) });
      } catch (e) {
        throw new StartupError(`cannot listen on ${o.listen}: ${listenError(e)}`);
      }
      this.gate = g;
      this.tcp = Bun.serve({
        hostname: "127.0.0.1",
        port: 0,
        idleTimeout, // seconds; the event stream turns it off for itself (it sends keep-alives)
        maxRequestBodySize: 2 ** 31, // base OS uploads (streamed to PERSIST)
        websocket: ws,
        ...(o.tls ? { tls: { cert: o.tls.cert, key: o.tls.key } } : {}),
        fetch: (req, server) => {
          const client = g.clientOf(server.requestIP(req));
          if (!client) return Response.json({ error: "connect to the console's own address" }, { status: 421, headers: { Connection: "close" } });
          clients.set(req, client);
          o.onRequest();
          return this.watched(() => tcpApp.fetch(req, server));
        },
      });
      g.setBackend(this.tcp.port!);
      if (o.redirectHttp) {
        const r = parseListen(o.redirectHttp);
        const httpsPort = g.port;
        let rg: ConnectionGate;
        try {
          rg = ConnectionGate.listen({ hostname: r.hostname, port: r.port, budget, tls: false, idleTimeoutS: gateIdleSeconds(o.limits.idleTimeoutMs) });
        } catch (e) {
          throw new StartupError(`cannot listen on ${o.redirectHttp}: ${listenError(e)}`);
        }
        const server = Bun.serve({ hostname: "127.0.0.1", port: 0, idleTimeout, fetch: (req) => redirectToHttps(req, httpsPort) });
        rg.setBackend(server.port!);
        this.redirect = { gate: rg, server };
      }
    } catch (e) {
      await this.stop();
      if (e instanceof StartupError) throw e;
      throw new StartupError(`cannot listen on ${o.listen}: ${(e as Error).message}`);
    }
    let localApp: App | null = null;
    this.local = Bun.serve({
      unix: o.socketPath,
      websocket: ws,
      maxRequestBodySize: 2 ** 31,
      fetch: (req, server) => this.watched(() => (localApp ??= o.localApp()).fetch(req, server)),
    });
    chmodSync(o.socketPath, 0o600);
    const host = this.gate.hostname.includes(":") ? `[${this.gate.hostname}]` : this.gate.hostname;
    this.url = `${o.tls ? "https" : "http"}://${host}:${this.gate.port}`;
    this.settling = { inFlight: 0, lastAt: performance.now() };
  }

  /**
   * Resolves once the console has been quiet for `quietMs` (no request in flight, none begun or answered), or
   * `maxMs` after it began to listen: the parts that answer no request start then, so that evaluating their modules
   * (tens of milliseconds of a held event loop) does not delay the answers to a browser reloading or a health probe
   * that were waiting for the console. An event stream held open only makes it wait `maxMs`.
   */
  async quiet(quietMs = 10, maxMs = 100): Promise<void> {
    const s = this.settling;
    if (!s) return;
    const until = s.lastAt + maxMs;
    for (;;) {
      const now = performance.now();
      if (now >= until || (s.inFlight === 0 && now - s.lastAt >= quietMs)) break;
      await Bun.sleep(Math.max(1, Math.min(until - now, s.inFlight ? quietMs : s.lastAt + quietMs - now)));
    }
    this.settling = null;
  }

  /** Runs a request's handler, counted while `quiet()` waits (afterwards: nothing but one check). */
  private watched(handle: () => Response | Promise<Response>): Response | Promise<Response> {
    const s = this.settling;
    if (!s) return handle();
    s.inFlight++;
    s.lastAt = performance.now();
    const done = () => {
      s.inFlight--;
      s.lastAt = performance.now();
    };
    let r: Response | Promise<Response>;
    try {
      r = handle();
    } catch (e) {
      done();
      throw e;
    }
    if (r instanceof Promise) return r.finally(done);
    done();
    return r;
  }

  async stop(): Promise<void> {
    this.gate?.stop();
    this.redirect?.gate.stop();
    await Promise.all([this.tcp?.stop(true), this.redirect?.server.stop(true), this.local?.stop(true)]);
    if (this.local) rmSync(this.o.socketPath, { force: true });
    this.tcp = this.redirect = this.local = this.gate = null;
  }
}

function listenError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "EADDRINUSE") return "the port is in use (another evebox or another server?)";
  if (code === "EACCES") return "permission denied (a port under 1024 needs root)";
  if (code === "EADDRNOTAVAIL") return "no such address on this machine";
  return `${(e as Error).message}${code ? ` (${code})` : ""}`;
}

/** The plain-HTTP listener's only answer: the same path on the HTTPS console (308 keeps the method). */
export function redirectToHttps(req: Request, httpsPort: number): Response {
  const u = new URL(req.url);
  const host = (req.headers.get("host") ?? u.host).replace(/:\d+$/, "");
  return new Response(null, { status: 308, headers: { Location: `https://${host}${httpsPort === 443 ? "" : `:${httpsPort}`}${u.pathname}${u.search}` } });
}
