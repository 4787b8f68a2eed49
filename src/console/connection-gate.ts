// The console's TCP front: the port the LAN connects to. Bun.serve has no hook where a connection is accepted,
// so an HTTP server alone cannot refuse the 4,000th idle keep-alive connection of one client before the process
// runs out of file descriptors (and then even the trusted unix socket stops answering). The gate accepts every
// connection itself, counts it per client and in all, closes what is over a cap at once, and pipes the rest,
// bytes unchanged (TLS included), to the console's Bun.serve on a loopback port. The console learns who the
// client is from the gate (`clientOf`), by the port its side of the pipe connects from.
import { edenGC } from "bun:jsc";
import { readFileSync } from "node:fs";
import type { Socket, TCPSocketListener } from "bun";
import { clientKey } from "../auth/auth.ts";

export interface ConnectionLimits {
  /** Open connections one client (an IPv4 address, an IPv6 /64) may have. */
  perClient: number;
  /** Open connections of all clients together. */
  total: number;
  /** The console closes a connection with no byte either way for this long (not the event stream, which sends
   * keep-alives; WebSockets ping); the gate closes one idle longer still (`gateIdleSeconds`), should the console not. */
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
  /**
   * The gate closes a connection with no byte either way for this long (seconds; a backstop, should the console not
   * close it: longer than the console's idle timeout and than the event stream's 15 s keep-alive).
   */
  idleTimeoutS: number;
}

/** The gate's idle timeout for a console idle timeout (ms): 15 s longer, and never under 20 s (the keep-alives). */
export function gateIdleSeconds(consoleIdleMs: number): number {
  return Math.max(20, Math.ceil(consoleIdleMs / 1000) + 15);
}

/** One client connection and its pipe to the console; each side's bytes wait in a queue while the other is full. */
interface Pipe {
  key: string;
  address: string;
  client: Socket<Side>;
  up: Socket<Side> | null;
  toUp: Uint8Array[];
  toClient: Uint8Array[];
  /** A side ended: the other ends once its queue is written. */
  endUp: boolean;
  endClient: boolean;
  upClosed: boolean;
  localPort: number | null;
  done: boolean;
}
type Side = { pipe: Pipe | null; role: "client" | "up" };

/** Bytes piped between two eden collections (see `piped`). */
const COLLECT_AFTER_BYTES = 4 * 1024 * 1024;

/** The addresses the gate's own pipe connects from (IPv4 loopback, as the kernel may name it on a dual-stack socket). */
const LOOPBACK = new Set(["127.0.0.1", "::1", "::ffff:127.0.0.1"]);

export class ConnectionGate {
  private readonly clients = new Map<number, string>();
  private readonly pipes = new Set<Pipe>();
  private backendPort = 0;
  private listener: TCPSocketListener<Side> | null = null;

  private constructor(private readonly o: ConnectionGateOptions) {}

  /** Listens (throws when the address is in use); connections are piped once `setBackend` names the console. */
  static listen(o: ConnectionGateOptions): ConnectionGate {
    const gate = new ConnectionGate(o);
    gate.listener = Bun.listen<Side>({
      hostname: o.hostname,
      port: o.port,
      exclusive: true,
      data: { pipe: null, role: "client" },
      socket: {
        open: (s) => gate.accept(s),
        data: (s, chunk) => gate.forward(s, chunk),
        drain: (s) => gate.drained(s),
        end: (s) => gate.ended(s),
        close: (s) => gate.finish(s.data.pipe),
        error: (s) => gate.finish(s.data.pipe),
        timeout: (s) => gate.finish(s.data.pipe),
      },
    });
    return gate;
  }

  get port(): number {
    return this.listener!.port;
  }
  get hostname(): string {
    return this.listener!.hostname;
  }

  /** Where the console's Bun.serve listens (loopback); set before the first connection is served. */
  setBackend(port: number): void {
    this.backendPort = port;
  }

  /** The client behind a connection the console received from the gate (by its source port), or null. */
  clientOf(from: { address: string; port: number } | null): string | null {
    if (!from || !LOOPBACK.has(from.address)) return null;
    return this.clients.get(from.port) ?? null;
  }

  private accept(client: Socket<Side>): void {
    client.data = { pipe: null, role: "client" };
    const address = (client.remoteAddress || "unknown").replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, "");
    const key = clientKey(address);
    const refused = this.o.budget.take(key);
    if (refused) {
      // Closed at once, whatever the client does: a refused connection must not hold a descriptor.
      if (this.o.tls) client.terminate();
      else {
        const body = JSON.stringify({ error: `${refused}; close idle connections and try again` });
        client.end(`HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nRetry-After: 5\r\nConnection: close\r\n\r\n${body}`);
        setTimeout(() => client.terminate(), 1_000).unref();
      }
      return;
    }
    const pipe: Pipe = { key, address, client, up: null, toUp: [], toClient: [], endUp: false, endClient: false, upClosed: false, localPort: null, done: false };
    client.data.pipe = pipe;
    this.pipes.add(pipe);
    client.timeout(this.o.idleTimeoutS);
    // The client's bytes wait until the pipe's own end is connected and its port known to the console.
    client.pause();
    Bun.connect<Side>({
      hostname: "127.0.0.1",
      port: this.backendPort,
      data: { pipe, role: "up" },
      socket: {
        open: (up) => {
          if (pipe.done) return void up.terminate();
          if (pipe.upClosed) return;
          pipe.up = up;
          pipe.localPort = up.localPort;
          this.clients.set(up.localPort, address);
          this.flush(pipe, "up");
          client.resume();
        },
        data: (s, chunk) => this.forward(s, chunk),
        drain: (s) => this.drained(s),
        end: (s) => this.ended(s),
        close: () => this.upClosed(pipe),
        error: () => this.upClosed(pipe),
        connectError: () => this.finish(pipe),
      },
    }).catch(() => this.finish(pipe));
  }

  /** Bytes from one side to the other; when the other cannot take them all, the rest waits and this side pauses. */
  private forward(from: Socket<Side>, chunk: Uint8Array): void {
    const pipe = from.data.pipe;
    if (!pipe || pipe.done) return;
    this.piped += chunk.length;
    if (this.piped >= COLLECT_AFTER_BYTES) {
      this.piped = 0;
      edenGC();
    }
    // A socket's timeout runs from when it was set, whatever flows: set again on every chunk, either way.
    pipe.client.timeout(this.o.idleTimeoutS);
    const toUp = from.data.role === "client";
    if (toUp && pipe.upClosed) return; // the console has answered and closed: the rest of the body goes nowhere
    const to = toUp ? pipe.up : pipe.client;
    const queue = toUp ? pipe.toUp : pipe.toClient;
    if (!to || queue.length > 0) {
      queue.push(chunk.slice());
      from.pause();
      return;
    }
    const n = to.write(chunk);
    if (n < chunk.length) {
      queue.push(chunk.slice(Math.max(0, n)));
      from.pause();
    }
  }

  // Every chunk the gate is handed is a new buffer, garbage once written, as are Bun.serve's objects of each request.
  // JSC collects by how its own heap grows and counts such buffers late: under load they piled up (RssAnon +20-25
  // MiB over 10,000 GET /status, given back only seconds after the load ended). So after every COLLECT_AFTER_BYTES
  // piped the gate runs an eden collection (young objects only: these buffers are), and mimalloc hands the freed
  // memory to the next chunks. Every 4 MiB cost no CPU per request that the bench could tell from noise; every
  // 2 MiB kept ~4 MiB less but cost ~1.4 µs a request (bench/README.md, third pass).
  private piped = 0;

  private drained(s: Socket<Side>): void {
    const pipe = s.data.pipe;
    if (pipe) this.flush(pipe, s.data.role);
  }

  /** Writes what waits for `side`; once all is written, the other side reads again (or this one ends). */
  private flush(pipe: Pipe, side: "client" | "up"): void {
    const to = side === "up" ? pipe.up : pipe.client;
    const from = side === "up" ? pipe.client : pipe.up;
    const queue = side === "up" ? pipe.toUp : pipe.toClient;
    if (!to || pipe.done) return;
    while (queue.length > 0) {
      const head = queue[0]!;
      const n = to.write(head);
      if (n < head.length) {
        queue[0] = head.subarray(Math.max(0, n));
        return;
      }
      queue.shift();
    }
    if (side === "up" ? pipe.endUp : pipe.endClient) to.end();
    else from?.resume();
  }

  /** One side sent FIN: the other ends after what is still queued for it. */
  private ended(s: Socket<Side>): void {
    const pipe = s.data.pipe;
    if (!pipe) return;
    if (s.data.role === "client") {
      pipe.endUp = true;
      this.flush(pipe, "up");
    } else {
      pipe.endClient = true;
      this.flush(pipe, "client");
    }
  }

  /** The console closed its side: what it answered last still goes out, then the client's side ends. */
  private upClosed(pipe: Pipe): void {
    if (pipe.done || pipe.upClosed) return;
    pipe.upClosed = true;
    pipe.up = null;
    if (pipe.localPort !== null) this.clients.delete(pipe.localPort);
    pipe.endClient = true;
    this.flush(pipe, "client");
  }

  /** The client's connection is gone (closed, failed, idle too long): both sides close, its place is free. */
  private finish(pipe: Pipe | null): void {
    if (!pipe || pipe.done) return;
    pipe.done = true;
    this.pipes.delete(pipe);
    this.o.budget.give(pipe.key);
    if (pipe.localPort !== null) this.clients.delete(pipe.localPort);
    pipe.client.terminate();
    pipe.up?.terminate();
  }

  stop(): void {
    this.listener?.stop(true);
    for (const p of [...this.pipes]) this.finish(p);
  }
}
