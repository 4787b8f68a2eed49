// A QMP client: one long-lived connection per VM, for commands and for events (SHUTDOWN tells why QEMU is
// going away, and the connection's end is the quickest sign that it went). QEMU serves one client per QMP
// socket, so the runtime holds this one and everything else goes through it.
import { createConnection, type Socket } from "node:net";

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
}

export class QmpError extends Error {
  override readonly name = "QmpError";
  constructor(
    message: string,
    /** QMP's error class (`GenericError`, `CommandNotFound`, …), or `connection`/`timeout` for transport faults. */
    readonly errorClass: string,
  ) {
    super(message);
  }
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: Timer;
  command: string;
}

export interface QmpConnectOptions {
  timeoutMs?: number;
  onEvent?: (event: QmpEvent) => void;
  onClose?: () => void;
}

export class QmpClient {
  private buffer = "";
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private greeted: (() => void) | null = null;
  private isClosed = false;

  private constructor(
    private readonly socket: Socket,
    private readonly path: string,
    private readonly opts: QmpConnectOptions,
  ) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.onData(chunk));
    socket.on("close", () => this.onClosed());
    socket.on("error", () => {}); // "close" follows and rejects what is pending
  }

  /** Connects, reads the greeting and negotiates capabilities. */
  static connect(path: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    return new Promise((resolve, reject) => {
      const socket = createConnection({ path });
      const client = new QmpClient(socket, path, opts);
      const fail = (why: string) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new QmpError(`QMP ${path}: ${why}`, "connection"));
      };
      // A QMP socket that already has a client accepts the connection but never greets.
      const timer = setTimeout(() => fail(`no greeting within ${timeoutMs} ms (another client connected, or QEMU hung)`), timeoutMs);
      socket.once("error", (err) => fail(err.message));
      client.greeted = () => {
        client
          .execute("qmp_capabilities", undefined, timeoutMs)
          .then(() => {
            clearTimeout(timer);
            resolve(client);
          })
          .catch((err: Error) => fail(err.message));
      };
    });
  }

  /** Replaces the event and close handlers (the runtime connects before it knows which VM record owns this). */
  setHandlers(handlers: Pick<QmpConnectOptions, "onEvent" | "onClose">): void {
    this.opts.onEvent = handlers.onEvent;
    this.opts.onClose = handlers.onClose;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 5000): Promise<T> {
    if (this.isClosed) return Promise.reject(new QmpError(`QMP ${command}: connection closed`, "connection"));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpError(`QMP ${command}: no answer within ${timeoutMs} ms`, "timeout"));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, command });
      this.socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line);
      } catch {
        continue;
      }
      if ("QMP" in msg) {
        const greeted = this.greeted;
        this.greeted = null;
        greeted?.();
      } else if ("event" in msg) {
        this.opts.onEvent?.(msg as unknown as QmpEvent);
      } else if (typeof msg.id === "number") {
        const p = this.pending.get(msg.id);
        if (!p) continue;
        this.pending.delete(msg.id);
        clearTimeout(p.timer);
        if ("error" in msg) {
          const e = msg.error as { class?: string; desc?: string };
          p.reject(new QmpError(`QMP ${p.command}: ${e.desc ?? "error"}`, e.class ?? "GenericError"));
        } else p.resolve(msg.return);
      }
    }
  }

  private onClosed(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new QmpError(`QMP ${p.command}: connection closed (${this.path})`, "connection"));
      this.pending.delete(id);
    }
    this.opts.onClose?.();
  }
}
