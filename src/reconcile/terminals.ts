// Browser consoles of apps, opened by the app's workload kind: a shell in a container app's running container
// (exec with a TTY), a VM app's serial console (with its recent output first) or its display (VNC).
import { createConnection } from "node:net";
import { type TerminalSession, type Terminals, TerminalUnavailable } from "../model/terminal.ts";
import type { DesiredApp, DesiredState } from "./desired.ts";
import type { Workload } from "./workload.ts";

export interface AppTerminalsDeps {
  desired: () => DesiredState;
  workloads: readonly Workload[];
}

export class AppTerminals implements Terminals {
  constructor(private readonly deps: AppTerminalsDeps) {}

  private app(appUuid: string): DesiredApp {
    const app = this.deps.desired().apps.find((a) => a.uuid === appUuid);
    if (!app) throw new TerminalUnavailable(404, `no app ${appUuid} in the current config`);
    return app;
  }

  async open(appUuid: string): Promise<TerminalSession> {
    const app = this.app(appUuid);
    const w = this.deps.workloads.find((k) => k.kind === app.kind);
    if (!w) {
      if (app.kind === "vm") throw new TerminalUnavailable(409, `app ${app.name}: its VM is not running, so it has no serial console now`);
      throw new TerminalUnavailable(409, `app ${app.name}: ${app.error ?? "not a container or VM app"}`);
    }
    return w.openConsole(app);
  }

  async openDisplay(appUuid: string): Promise<TerminalSession> {
    const app = this.app(appUuid);
    const w = this.deps.workloads.find((k) => k.kind === app.kind);
    if (!w?.openDisplay) throw new TerminalUnavailable(409, `app ${app.name}: only a VM app has a graphical console`);
    return w.openDisplay(app);
  }
}

/** The VM's VNC unix socket as a session: QEMU serves one RFB client per connection. */
export function connectVnc(path: string): Promise<TerminalSession> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ path });
    let closed = false;
    sock.once("error", (e) => reject(new TerminalUnavailable(409, `the VM's display is not reachable: ${e.message}`)));
    sock.once("connect", () => {
      const readable = new ReadableStream<Uint8Array>({
        start(ctrl) {
          sock.on("data", (b: Buffer) => !closed && ctrl.enqueue(new Uint8Array(b)));
          const end = () => {
            if (closed) return;
            closed = true;
            try {
              ctrl.close();
            } catch {}
          };
          sock.on("end", end);
          sock.on("close", end);
          sock.on("error", end);
        },
        cancel() {
          closed = true;
          sock.destroy();
        },
      });
      resolve({
        kind: "vnc",
        readable,
        write: (d) => {
          if (!closed) sock.write(typeof d === "string" ? d : Buffer.from(d));
        },
        close: () => {
          closed = true;
          sock.destroy();
        },
      });
    });
  });
}
