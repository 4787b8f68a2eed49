// Browser consoles of apps: a shell in a container app's running container (exec with a TTY), or a VM
// app's serial console (with its recent output first).
import { createConnection } from "node:net";
import { type TerminalSession, type Terminals, TerminalUnavailable } from "../model/terminal.ts";
import type { ContainerRuntime } from "../runtime/containers/runtime.ts";
import type { DesiredState } from "./desired.ts";
import type { VmApps } from "./vms.ts";

export interface AppTerminalsDeps {
  desired: () => DesiredState;
  containers: Pick<ContainerRuntime, "listOwned" | "openShell">;
  vms: VmApps | null;
}

export class AppTerminals implements Terminals {
  constructor(private readonly deps: AppTerminalsDeps) {}

  async open(appUuid: string): Promise<TerminalSession> {
    const app = this.deps.desired().apps.find((a) => a.uuid === appUuid);
    if (!app) throw new TerminalUnavailable(404, `no app ${appUuid} in the current config`);
    if (app.kind === "vm") {
      const vms = this.deps.vms;
      if (!vms || !vms.runtime.list().some((v) => v.appUuid === appUuid))
        throw new TerminalUnavailable(409, `app ${app.name}: its VM is not running, so it has no serial console now`);
      const c = vms.openConsole(appUuid);
      return { kind: "serial", history: c.history, readable: c.readable, write: (d) => c.write(d), close: () => c.close() };
    }
    if (app.kind !== "container") throw new TerminalUnavailable(409, `app ${app.name}: ${app.error ?? "not a container or VM app"}`);
    const containers = await this.deps.containers.listOwned();
    const c = containers.find((x) => x.appUuid === appUuid && x.state === "running");
    if (!c) throw new TerminalUnavailable(409, `app ${app.name}: its container is not running, so there is no shell to open`);
    const shell = await this.deps.containers.openShell(c.id);
    return { kind: "shell", readable: shell.readable, write: shell.write, resize: shell.resize, close: shell.close };
  }

  async openDisplay(appUuid: string): Promise<TerminalSession> {
    const app = this.deps.desired().apps.find((a) => a.uuid === appUuid);
    if (!app) throw new TerminalUnavailable(404, `no app ${appUuid} in the current config`);
    const vms = this.deps.vms;
    if (app.kind !== "vm" || !vms) throw new TerminalUnavailable(409, `app ${app.name}: only a VM app has a graphical console`);
    if (!vms.runtime.list().some((v) => v.appUuid === appUuid)) throw new TerminalUnavailable(409, `app ${app.name}: its VM is not running`);
    const path = vms.vncSocket(appUuid);
    if (!path) throw new TerminalUnavailable(409, `app ${app.name}: its VM has no graphical console (set remoteConsole in the app's config)`);
    return connectVnc(path);
  }
}

/** The VM's VNC unix socket as a session: QEMU serves one RFB client per connection. */
function connectVnc(path: string): Promise<TerminalSession> {
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
