// Follows the output of each running container, and the serial console of each running VM, and keeps it in the
// store (bounded), so app logs survive container removal and evebox restarts and can be read in the console or
// uploaded.
import type { ContainerRuntime } from "../runtime/containers/runtime.ts";
import type { OwnedContainer } from "../runtime/containers/types.ts";
import type { VmConsole } from "../runtime/vms/types.ts";
import type { Store } from "../store/store.ts";

const FLUSH_MS = 250;
/** A serial line longer than this is stored in pieces (a guest printing without line breaks). */
const MAX_LINE = 4096;

/** A running VM, as far as following its console goes (a restarted VM has another QEMU pid). */
type RunningVmRef = { appUuid: string; name: string; pid: number };

/** What the VM log follower needs of the QEMU runtime. */
export interface VmConsoles {
  openConsole(uuid: string, port?: "serial"): VmConsole;
}

/**
 * One line of terminal output as log text: escape sequences (colours, cursor moves, titles) and carriage
 * returns removed, other control characters dropped; tabs kept. Pure, unit-tested.
 */
export function serialLine(raw: string): string {
  return raw
    .replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, "") // CSI
    .replace(/\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g, "") // OSC
    .replace(/\x1b[@-Z\\-_]/g, "") // other two-byte escapes
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "")
    .trimEnd();
}

/** Splits a stream of terminal bytes into cleaned lines; `end()` returns what is left without a line break. */
export class SerialLines {
  private readonly decoder = new TextDecoder();
  private partial = "";

  push(chunk: Uint8Array): string[] {
    this.partial += this.decoder.decode(chunk, { stream: true });
    const parts = this.partial.split("\n");
    this.partial = parts.pop() ?? "";
    while (this.partial.length > MAX_LINE) {
      parts.push(this.partial.slice(0, MAX_LINE));
      this.partial = this.partial.slice(MAX_LINE);
    }
    return parts.flatMap((p) => (p.length > MAX_LINE ? (p.match(new RegExp(`[^]{1,${MAX_LINE}}`, "g")) ?? []) : [p])).map(serialLine).filter((l) => l !== "");
  }

  end(): string[] {
    const rest = serialLine(this.partial + this.decoder.decode());
    this.partial = "";
    return rest ? [rest] : [];
  }
}

export class AppLogCollector {
  private readonly following = new Map<string, AbortController>();
  /** VM serial consoles followed, by "<app uuid>:<QEMU pid>" (a restarted VM is a new console). */
  private readonly followingVms = new Map<string, VmConsole>();
  private buffer: { ts: Date; source: string; objectId: string; level: string; message: string }[] = [];
  private flushTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly store: Store,
    private readonly log: (level: "info" | "warn" | "error", message: string) => void,
  ) {}

  /** Follows every running container not yet followed; stops following the ones gone. */
  sync(runtime: Pick<ContainerRuntime, "logs">, containers: OwnedContainer[]): void {
    const running = new Map(containers.filter((c) => c.state === "running").map((c) => [c.id, c]));
    for (const [id, ac] of this.following) {
      if (!running.has(id)) {
        ac.abort();
        this.following.delete(id);
      }
    }
    for (const c of running.values()) if (!this.following.has(c.id)) this.follow(runtime, c);
  }

  private follow(runtime: Pick<ContainerRuntime, "logs">, c: OwnedContainer): void {
    const ac = new AbortController();
    this.following.set(c.id, ac);
    const last = this.store.logsFor("app", c.appUuid, 1).at(-1);
    // Resume after what is stored (the store keeps ms, the engine ns: skip what is not newer). With
    // nothing stored, read from the container's beginning: its first lines can carry a timestamp
    // just before the engine's StartedAt.
    const since = last ? new Date(last.ts.getTime() - 1) : undefined;
    const isOld = (ts: Date, message: string) => !!last && (ts.getTime() < last.ts.getTime() || (ts.getTime() === last.ts.getTime() && message === last.message));
    void (async () => {
      try {
        for await (const line of runtime.logs(c.id, { follow: true, since, signal: ac.signal })) {
          if (isOld(line.ts, line.line)) continue;
          this.buffer.push({ ts: line.ts, source: "app", objectId: c.appUuid, level: line.stream === "stderr" ? "warn" : "info", message: line.line });
          this.flushSoon();
        }
      } catch (e) {
        if (!ac.signal.aborted) this.log("warn", `logs of app ${c.appName}: ${(e as Error).message}`);
      } finally {
        if (this.following.get(c.id) === ac) this.following.delete(c.id);
      }
    })();
  }

  /**
   * Follows the serial console of each running VM (what the guest prints: boot messages, its services' output)
   * as that app's log; stops with the VM. The console's recent history is taken too when nothing of this app is
   * stored yet (the guest's first lines, printed before the first pass saw the VM); after an evebox restart,
   * what the guest printed meanwhile is in the console's history but not stored again.
   */
  syncVms(consoles: VmConsoles | null, running: Iterable<RunningVmRef>): void {
    const now = new Map<string, RunningVmRef>();
    for (const vm of running) now.set(`${vm.appUuid}:${vm.pid}`, vm);
    for (const [key, con] of this.followingVms) {
      if (!now.has(key)) {
        con.close();
        this.followingVms.delete(key);
      }
    }
    if (!consoles) return;
    for (const [key, vm] of now) {
      if (this.followingVms.has(key)) continue;
      let con: VmConsole;
      try {
        con = consoles.openConsole(vm.appUuid, "serial");
      } catch {
        continue; // stopped meanwhile
      }
      this.followingVms.set(key, con);
      const lines = new SerialLines();
      const add = (text: string[]) => {
        const ts = new Date();
        for (const message of text) this.buffer.push({ ts, source: "app", objectId: vm.appUuid, level: "info", message });
        if (text.length) this.flushSoon();
      };
      if (this.store.logsFor("app", vm.appUuid, 1).length === 0) add(lines.push(con.history));
      else lines.push(con.history.subarray(con.history.lastIndexOf(10) + 1)); // continue the line in progress
      void (async () => {
        const reader = con.readable.getReader();
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            add(lines.push(value));
          }
        } catch (e) {
          this.log("warn", `serial log of VM app ${vm.name}: ${(e as Error).message}`);
        } finally {
          add(lines.end());
          if (this.followingVms.get(key) === con) this.followingVms.delete(key);
        }
      })();
    }
  }

  private flushSoon(): void {
    if (this.buffer.length >= 500) return this.flush();
    this.flushTimer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const rows = this.buffer;
    this.buffer = [];
    try {
      this.store.addLogs(rows);
    } catch {
      // the store is closing; these lines are lost with the process anyway
    }
  }

  stopAll(): void {
    for (const ac of this.following.values()) ac.abort();
    this.following.clear();
    for (const con of this.followingVms.values()) con.close();
    this.followingVms.clear();
    this.flush();
  }
}
