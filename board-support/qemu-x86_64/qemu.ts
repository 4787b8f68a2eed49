// The qemu-x86_64 board: a q35 machine with OVMF (UEFI), the image on a virtio disk, virtio network with QEMU's
// user-mode networking (a DHCP server at 10.0.2.2, the host's loopback reachable as 10.0.2.2) and the console's
// ports forwarded to the host's loopback. TCG: KVM is not relied on (where it exists it is often broken in CI).
// Serial ttyS0 (kernel and evebox's console lines) goes to a file; ttyS1, when asked, to a unix socket where
// evebox's debug shell (evebox.shell=ttyS1 on the kernel command line) answers.
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";

export const OVMF_CODE = ["/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd"].find(existsSync) ?? "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS = OVMF_CODE.replace("CODE", "VARS");

export interface Forward {
  /** Host port on 127.0.0.1 (0 is not allowed by QEMU: pick a free one, see freePort). */
  host: number;
  guest: number;
}

export interface QemuDeviceOptions {
  disk: string;
  /** OVMF variables, serial logs and sockets of this device (kept across its boots). */
  workDir: string;
  forwards: Forward[];
  memoryMiB?: number;
  cpus?: number;
  /** ttyS1 on a unix socket (for the debug shell). */
  shell?: boolean;
  /** Extra QEMU arguments. */
  extra?: string[];
  /** Serial output to the terminal too (npm run image:boot). */
  inheritSerial?: boolean;
  /** Direct kernel boot (no firmware, no GRUB): for measurements that leave the firmware out. */
  direct?: { kernel: string; initrd: string; append: string };
}

export async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

export function qemuArgs(o: QemuDeviceOptions, serialLog: string | null, shellSocket: string | null, qmpSocket: string | null = null): string[] {
  const fwd = o.forwards.map((f) => `,hostfwd=tcp:127.0.0.1:${f.host}-:${f.guest}`).join("");
  return [
    "qemu-system-x86_64",
    "-machine", "q35",
    "-accel", "tcg",
    "-cpu", "max",
    "-smp", String(o.cpus ?? 2),
    "-m", String(o.memoryMiB ?? 2048),
    "-nodefaults",
    "-no-user-config",
    "-display", "none",
    ...(o.direct
      ? ["-kernel", o.direct.kernel, "-initrd", o.direct.initrd, "-append", o.direct.append]
      : ["-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`, "-drive", `if=pflash,format=raw,unit=1,file=${join(o.workDir, "OVMF_VARS.fd")}`]),
    "-drive", `file=${o.disk},format=raw,if=none,id=disk0,cache=unsafe`,
    "-device", `virtio-blk-pci,drive=disk0${o.direct ? "" : ",bootindex=0"}`,
    "-netdev", `user,id=net0${fwd}`,
    "-device", "virtio-net-pci,netdev=net0",
    "-device", "virtio-rng-pci",
    ...(serialLog ? ["-chardev", `file,id=ttyS0,path=${serialLog}`, "-serial", "chardev:ttyS0"] : ["-serial", "mon:stdio"]),
    ...(shellSocket ? ["-chardev", `socket,id=ttyS1,path=${shellSocket},server=on,wait=off`, "-serial", "chardev:ttyS1"] : []),
    ...(qmpSocket ? ["-qmp", `unix:${qmpSocket},server=on,wait=off`] : []),
    ...(o.extra ?? []),
  ];
}

/** One boot of the device (a QEMU process); a reboot inside the guest stays in the same process. */
export class QemuDevice {
  readonly startedAt = performance.now();
  /** What QEMU itself printed (errors). */
  stderr = "";
  private constructor(
    readonly proc: Subprocess,
    readonly serialLog: string | null,
    readonly shellSocket: string | null,
    readonly qmpSocket: string,
    readonly options: QemuDeviceOptions,
  ) {}

  static start(o: QemuDeviceOptions, label = "boot"): QemuDevice {
    mkdirSync(o.workDir, { recursive: true });
    if (!existsSync(join(o.workDir, "OVMF_VARS.fd"))) copyFileSync(OVMF_VARS, join(o.workDir, "OVMF_VARS.fd"));
    const serialLog = o.inheritSerial ? null : join(o.workDir, `${label}.serial.log`);
    const shellSocket = o.shell ? join(o.workDir, `${label}.shell.sock`) : null;
    const qmpSocket = join(o.workDir, `${label}.qmp.sock`);
    const proc = Bun.spawn(qemuArgs(o, serialLog, shellSocket, qmpSocket), {
      stdin: o.inheritSerial ? "inherit" : "ignore",
      stdout: o.inheritSerial ? "inherit" : "pipe",
      stderr: o.inheritSerial ? "inherit" : "pipe",
    });
    const device = new QemuDevice(proc, serialLog, shellSocket, qmpSocket, o);
    if (proc.stderr instanceof ReadableStream) void new Response(proc.stderr as ReadableStream).text().then((t) => (device.stderr = t));
    if (proc.stdout instanceof ReadableStream) void new Response(proc.stdout as ReadableStream).text();
    // A test process that dies leaves no QEMU behind.
    process.once("exit", () => {
      if (device.alive()) proc.kill("SIGKILL");
    });
    return device;
  }

  /** Everything the device printed on ttyS0 so far. */
  serial(): string {
    try {
      return this.serialLog ? readFileSync(this.serialLog, "utf8") : "";
    } catch {
      return "";
    }
  }

  alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Waits for `re` in the serial output after character `from`; returns the match and where it ends. */
  async waitSerial(re: RegExp, timeoutMs: number, from = 0): Promise<{ match: RegExpExecArray; end: number; seconds: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = this.serial().slice(from);
      const m = re.exec(text);
      if (m) return { match: m, end: from + m.index + m[0].length, seconds: (performance.now() - this.startedAt) / 1000 };
      if (!this.alive()) throw new Error(`QEMU exited (${this.proc.exitCode ?? this.proc.signalCode}) before ${re} appeared: ${this.stderr.trim()}; serial tail:\n${this.serial().slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${re} on the serial console; tail:\n${this.serial().slice(-3000)}`);
      await Bun.sleep(200);
    }
  }

  /** Presses the ACPI power button (QMP system_powerdown). */
  async powerButton(): Promise<void> {
    await this.qmp("system_powerdown");
  }

  /** Cable in or out: the carrier of the NIC with this QEMU device id (QMP set_link). */
  async setLink(id: string, up: boolean): Promise<void> {
    await this.qmp("set_link", { name: id, up });
  }

  /** One QMP command on a connection of its own; throws with QEMU's answer when it is an error. */
  async qmp(command: string, args?: Record<string, unknown>): Promise<unknown> {
    let got = "";
    const socket = await Bun.connect({
      unix: this.qmpSocket,
      socket: {
        data(_s, chunk) {
          got += new TextDecoder().decode(chunk);
        },
      },
    });
    const until = async (re: RegExp) => {
      const deadline = Date.now() + 10_000;
      while (!re.test(got)) {
        if (Date.now() > deadline) throw new Error(`QMP: no ${re} in ${got}`);
        await Bun.sleep(20);
      }
    };
    try {
      await until(/"QMP"/);
      socket.write(`{"execute":"qmp_capabilities"}\n`);
      await until(/"return"/);
      got = "";
      socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) })}\n`);
      await until(/"return"|"error"/);
      const answer = got.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => JSON.parse(l)).find((m) => "return" in m || "error" in m);
      if (answer?.error) throw new Error(`QMP ${command}: ${answer.error.desc ?? JSON.stringify(answer.error)}`);
      return answer?.return;
    } finally {
      socket.end();
    }
  }

  /** A power cut: QEMU is killed, the guest gets no chance to sync. */
  async kill(): Promise<void> {
    if (this.alive()) this.proc.kill("SIGKILL");
    await this.proc.exited;
  }

  /** Connects to the debug shell on ttyS1 (the guest must run it: evebox.shell=ttyS1). */
  async shell(timeoutMs = 60_000): Promise<DebugShell> {
    if (!this.shellSocket) throw new Error("this device was started without a shell socket");
    return DebugShell.connect(this.shellSocket, timeoutMs);
  }
}

/** A root shell on a serial line: commands framed by markers the echo of the typed line cannot contain. */
export class DebugShell {
  private buf = "";
  private seq = 0;
  private constructor(private readonly socket: Awaited<ReturnType<typeof Bun.connect>>) {}

  static async connect(path: string, timeoutMs: number): Promise<DebugShell> {
    const deadline = Date.now() + timeoutMs;
    let shell: DebugShell | null = null;
    const decoder = new TextDecoder();
    let socket: Awaited<ReturnType<typeof Bun.connect>> | null = null;
    while (!socket) {
      try {
        socket = await Bun.connect({
          unix: path,
          socket: {
            data(_s, chunk) {
              if (shell) shell.buf += decoder.decode(chunk, { stream: true });
            },
          },
        });
      } catch (e) {
        // QEMU creates the socket a moment after it starts
        if (Date.now() > deadline) throw new Error(`cannot connect to the debug shell at ${path}: ${(e as Error).message}`);
        await Bun.sleep(200);
      }
    }
    shell = new DebugShell(socket);
    // getty starts the shell once evebox has started the service: poke until a command answers.
    for (;;) {
      try {
        await shell.run("stty -echo 2>/dev/null; PS1=''; PS2=''; true", 3000);
        return shell;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`the debug shell did not answer within ${Math.round(timeoutMs / 1000)} s: ${(e as Error).message}`);
      }
    }
  }

  /** Runs `cmd` in the guest's shell; resolves with its output and exit code. */
  async run(cmd: string, timeoutMs = 60_000): Promise<{ code: number; out: string }> {
    const id = `${Date.now().toString(36)}${++this.seq}`;
    this.buf = "";
    // The markers are printed as two words joined by the shell, so the echoed command line never matches.
    this.socket.write(`printf '%s%s\\n' __EBB_ ${id}; ${cmd}\nprintf '%s%s %s\\n' __EBE_ ${id} $?\n`);
    const begin = `__EBB_${id}\n`;
    const end = new RegExp(`__EBE_${id} (\\d+)`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const b = this.buf.replace(/\r/g, "");
      const i = b.indexOf(begin);
      const m = i >= 0 ? end.exec(b.slice(i)) : null;
      if (m) return { code: Number(m[1]), out: b.slice(i + begin.length, i + m.index).replace(/\n$/, "") };
      if (Date.now() > deadline) throw new Error(`guest command timed out after ${Math.round(timeoutMs / 1000)} s: ${cmd}\n${b.slice(-1000)}`);
      await Bun.sleep(50);
    }
  }

  close(): void {
    this.socket.end();
  }
}
