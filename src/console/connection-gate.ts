// The console's TCP front: the port the LAN connects to. Bun.serve has no hook where a connection is accepted,
// so an HTTP server alone cannot refuse the 4,000th idle keep-alive connection of one client before the process
// runs out of file descriptors (and then even the trusted unix socket stops answering). The gate accepts every
// connection itself, counts it per client and in all, closes what is over a cap at once, and pipes the rest,
// bytes unchanged (TLS included), to the console's Bun.serve on a loopback port. The console learns who the
// client is from the gate (`clientOf`), by the port its side of the pipe connects from.
import { connect, createServer, type Server, type Socket } from "node:net";
import { readFileSync } from "node:fs";
import { clientKey } from "../auth/auth.ts";

export interface ConnectionLimits {
  /** Open connections one client (an IPv4 address, an IPv6 /64) may have. */
  perClient: number;
  /** Open connections of all clients together. */
  total: number;
  /**
   * The console closes a connection with no byte either way for this long (the event stream and WebSockets send
   * keep-alives); the gate closes one idle 15 s longer, should the console not.
   */
  idleTimeoutMs: number;
}

/**
 * The defaults: 32 per client (a browser opens 6 per host, plus an event stream and consoles; a few people behind
 * one NAT), and in all at most 1,024 or what a third of the file descriptors left after 256 allow (each gated
 * connection holds three: the client's, the pipe's two ends).
 */
export function defaultConnectionLimits(openFilesLimit = openFilesSoftLimit()): ConnectionLimits {
  return { perClient: 32, total: Math.max(16, Math.min(1024, Math.floor((openFilesLimit - 256) / 3))), idleTimeoutMs: 60_000 };
}

function openFilesSoftLimit(): number {
  try {
    const m = readFileSync("/proc/self/limits", "utf8").match(/^Max open files\s+(\d+|unlimited)/m);
    return m?.[1] === "unlimited" ? 1 << 20 : Number(m?.[1] ?? 1024);
  } catch {
    return 1024;
  }
}

/** Open connections per client key and in all, shared by every gate of the process (console and redirect). */
export class ConnectionBudget {
  private readonly open = new Map<string, number>();
  private count = 0;
  constructor(readonly limits: ConnectionLimits) {}

  /** Takes a place for a connection of `key`, or says why there is none. */
  take(key: string): string | null {
    const n = this.open.get(key) ?? 0;
    if (n >= this.limits.perClient) return `too many connections from this client (limit ${this.limits.perClient})`;
    if (this.count >= this.limits.total) return `too many connections (limit ${this.limits.total})`;
    this.open.set(key, n + 1);
    this.count++;
    return null;
  }
  give(key: string): void {
    const n = this.open.get(key) ?? 0;
    if (n <= 1) this.open.delete(key);
    else this.open.set(key, n - 1);
    this.count--;
  }
  get total(): number {
    return this.count;
  }
}

export interface ConnectionGateOptions {
  hostname: string;
  port: number;
  budget: ConnectionBudget;
  /** The console speaks TLS: a refusal is a plain close (an HTTP answer would be noise to a TLS client). */
  tls: boolean;
}

export class ConnectionGate {
  private readonly clients = new Map<number, string>();
  private readonly sockets = new Set<Socket>();
  private backendPort = 0;

  private constructor(
    private readonly server: Server,
    private readonly o: ConnectionGateOptions,
  ) {}

  static listen(o: ConnectionGateOptions): Promise<ConnectionGate> {
    const server = createServer({ pauseOnConnect: true, allowHalfOpen: false });
    const gate = new ConnectionGate(server, o);
    server.on("connection", (s) => gate.accept(s));
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: o.hostname, port: o.port, exclusive: true }, () => {
        server.off("error", reject);
        server.on("error", () => {}); // accept errors (EMFILE …) are retried by the runtime
        resolve(gate);
      });
    });
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }
  get hostname(): string {
    return (this.server.address() as { address: string }).address;
  }

  /** Where the console's Bun.serve listens (loopback); set before the first connection is served. */
  setBackend(port: number): void {
    this.backendPort = port;
  }

  /** The client behind a connection the console received from the gate (by its source port), or null. */
  clientOf(from: { address: string; port: number } | null): string | null {
    if (!from || !/^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)$/.test(from.address)) return null;
    return this.clients.get(from.port) ?? null;
  }

  private accept(client: Socket): void {
    const address = (client.remoteAddress ?? "unknown").replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, "");
    const key = clientKey(address);
    const refused = this.o.budget.take(key);
    if (refused) {
      // Closed at once, whatever the client does: a refused connection must not hold a descriptor.
      client.on("error", () => {});
      if (this.o.tls) client.destroy();
      else {
        const body = JSON.stringify({ error: `${refused}; close idle connections and try again` });
        client.end(`HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nRetry-After: 5\r\nConnection: close\r\n\r\n${body}`, () => client.destroy());
        setTimeout(() => client.destroy(), 1_000).unref();
      }
      return;
    }
    this.sockets.add(client);
    let localPort: number | null = null;
    let done = false;
    const up = connect({ host: "127.0.0.1", port: this.backendPort });
    this.sockets.add(up);
    const close = () => {
      if (done) return;
      done = true;
      this.o.budget.give(key);
      if (localPort !== null && this.clients.get(localPort) === address) this.clients.delete(localPort);
      this.sockets.delete(client);
      this.sockets.delete(up);
      client.destroy();
      up.destroy();
    };
    up.once("connect", () => {
      // Known before the first byte reaches the console: the client's data waits (paused) until now.
      localPort = up.localPort ?? null;
      if (localPort !== null) this.clients.set(localPort, address);
      client.pipe(up);
      up.pipe(client);
      client.resume();
    });
    // An end from either side ends the other once what is in flight has been written (pipe's default); any error,
    // the idle timeout or a full close tears both down.
    client.setTimeout(this.o.budget.limits.idleTimeoutMs + 15_000, close);
    client.on("error", close);
    up.on("error", close);
    client.on("close", close);
    up.on("close", close);
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => {
      this.server.close(() => r());
      for (const s of this.sockets) s.destroy();
    });
  }
}
