// A VM console port (serial or virtio) as a bounded history plus live fan-out. QEMU serves one client per chardev
// socket, so the runtime holds that one connection and every viewer (a WebSocket, a test) shares it.
import { createConnection, type Socket } from "node:net";
import { statSync, truncateSync } from "node:fs";
import { waitFor, WaitTimeout } from "../../lib/wait.ts";
import type { VmConsole } from "./types.ts";

/** A fixed-size byte ring: keeps the last `capacity` bytes pushed. */
export class ByteRing {
  private readonly buf: Uint8Array;
  private start = 0;
  private length = 0;

  constructor(readonly capacity: number) {
    this.buf = new Uint8Array(capacity);
  }

  push(chunk: Uint8Array): void {
    if (chunk.byteLength >= this.capacity) {
      this.buf.set(chunk.subarray(chunk.byteLength - this.capacity));
      this.start = 0;
      this.length = this.capacity;
      return;
    }
    let end = (this.start + this.length) % this.capacity;
    const first = Math.min(chunk.byteLength, this.capacity - end);
    this.buf.set(chunk.subarray(0, first), end);
    this.buf.set(chunk.subarray(first), 0);
    end = this.length + chunk.byteLength;
    if (end > this.capacity) {
      this.start = (this.start + end - this.capacity) % this.capacity;
      this.length = this.capacity;
    } else this.length = end;
  }

  snapshot(): Uint8Array {
    const out = new Uint8Array(this.length);
    const first = Math.min(this.length, this.capacity - this.start);
    out.set(this.buf.subarray(this.start, this.start + first));
    out.set(this.buf.subarray(0, this.length - first), first);
    return out;
  }

  get size(): number {
    return this.length;
  }
}

type Viewer = (chunk: Uint8Array | null) => void;

export interface ConsoleBridgeOptions {
  ringBytes: number;
  /** QEMU's logfile of this port: truncated when it grows past `logMaxBytes` (QEMU appends with O_APPEND). */
  logFile?: string;
  logMaxBytes?: number;
  /** Bytes a viewer may have unread before further output is dropped for that viewer. */
  viewerBufferBytes?: number;
}

export class ConsoleBridge {
  private socket: Socket | null = null;
  private readonly ring: ByteRing;
  private readonly viewers = new Set<Viewer>();
  private sinceLogCheck = 0;
  private ended = false;

  constructor(
    readonly path: string,
    private readonly opts: ConsoleBridgeOptions,
  ) {
    this.ring = new ByteRing(opts.ringBytes);
  }

  /** Connects to QEMU's chardev socket (retrying while QEMU is still creating it). */
  async connect(timeoutMs = 5000): Promise<void> {
    const connect = () =>
      new Promise<Socket>((resolve, reject) => {
        const s = createConnection({ path: this.path });
        s.once("connect", () => resolve(s));
        s.once("error", reject);
      });
    this.socket = await waitFor(connect, { timeoutMs, intervalMs: 20, what: `console ${this.path}` }).catch((err) => {
      const cause = err instanceof WaitTimeout ? err.lastError : err;
      throw new Error(`console ${this.path}: ${cause instanceof Error ? cause.message : String(cause)}`);
    });
    this.socket.on("data", (chunk: Buffer) => this.onOutput(new Uint8Array(chunk)));
    this.socket.on("error", () => {});
    this.socket.on("close", () => this.end());
  }

  /** Preloads history (the tail of the port's logfile after evebox restarted). */
  seed(bytes: Uint8Array): void {
    this.ring.push(bytes);
  }

  history(): Uint8Array {
    return this.ring.snapshot();
  }

  get connected(): boolean {
    return this.socket !== null && !this.ended;
  }

  write(data: string | Uint8Array): void {
    if (!this.connected) throw new Error(`console ${this.path}: not connected`);
    this.socket!.write(data);
  }

  /** Subscribes to live output; `null` means the port closed (the VM stopped). */
  subscribe(viewer: Viewer): () => void {
    if (this.ended) {
      queueMicrotask(() => viewer(null));
      return () => {};
    }
    this.viewers.add(viewer);
    return () => this.viewers.delete(viewer);
  }

  open(): VmConsole {
    const history = this.history();
    const limit = this.opts.viewerBufferBytes ?? 1 << 20;
    let unsubscribe = () => {};
    const readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          unsubscribe = this.subscribe((chunk) => {
            if (chunk === null) {
              unsubscribe();
              try {
                controller.close();
              } catch {}
              return;
            }
            // A viewer that does not read loses output rather than growing evebox's memory.
            if ((controller.desiredSize ?? 0) > 0) controller.enqueue(chunk);
          });
        },
        cancel: () => unsubscribe(),
      },
      { highWaterMark: limit, size: (chunk) => chunk?.byteLength ?? 0 },
    );
    return {
      history,
      readable,
      write: (data) => this.write(data),
      close: () => {
        unsubscribe();
        readable.cancel().catch(() => {});
      },
    };
  }

  /**
   * Resolves with the text seen (history included) once `pattern` appears in the output; rejects after
   * `timeoutMs` or when the port closes. Matching runs over a window of the last 64 KiB.
   */
  waitFor(pattern: string | RegExp, timeoutMs: number, opts: { includeHistory?: boolean } = {}): Promise<string> {
    const decoder = new TextDecoder();
    let text = opts.includeHistory === false ? "" : decoder.decode(this.history(), { stream: true });
    const matches = () => (typeof pattern === "string" ? text.includes(pattern) : pattern.test(text));
    if (matches()) return Promise.resolve(text);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new ConsoleTimeout(`no ${String(pattern)} within ${timeoutMs} ms`, text));
      }, timeoutMs);
      const off = this.subscribe((chunk) => {
        if (chunk === null) {
          clearTimeout(timer);
          off();
          reject(new ConsoleTimeout(`the console closed before ${String(pattern)} appeared`, text));
          return;
        }
        text = (text + decoder.decode(chunk, { stream: true })).slice(-65536);
        if (matches()) {
          clearTimeout(timer);
          off();
          resolve(text);
        }
      });
    });
  }

  close(): void {
    this.socket?.destroy();
    this.end();
  }

  private onOutput(chunk: Uint8Array): void {
    this.ring.push(chunk);
    for (const v of this.viewers) v(chunk);
    if (this.opts.logFile) {
      this.sinceLogCheck += chunk.byteLength;
      const max = this.opts.logMaxBytes ?? 1 << 20;
      if (this.sinceLogCheck > max / 4) {
        this.sinceLogCheck = 0;
        try {
          if (statSync(this.opts.logFile).size > max) truncateSync(this.opts.logFile, 0);
        } catch {}
      }
    }
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const v of [...this.viewers]) v(null);
    this.viewers.clear();
  }
}

export class ConsoleTimeout extends Error {
  override readonly name = "ConsoleTimeout";
  constructor(
    message: string,
    /** What the console showed up to then. */
    readonly seen: string,
  ) {
    super(message);
  }
}
