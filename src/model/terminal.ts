// Interactive consoles of apps as parts share them: the app runtime opens them (reconcile/terminals.ts), the
// console carries them over a WebSocket (console/console-socket.ts).

/** One open console. `history` is what a late viewer should see first (a VM's recent output). */
export interface TerminalSession {
  kind: "shell" | "serial" | "vnc";
  history?: Uint8Array;
  readable: ReadableStream<Uint8Array>;
  write(data: Uint8Array | string): void;
  resize?(cols: number, rows: number): Promise<void> | void;
  close(): void;
}

/** Opens consoles of apps (the app runtime provides it). */
export interface Terminals {
  open(appUuid: string): Promise<TerminalSession>;
  /** A VM app's graphical console: the raw RFB (VNC) stream of its display. */
  openDisplay?(appUuid: string): Promise<TerminalSession>;
}

/** Why a console cannot be opened: no such app (404) or it is not running (409). The message says which. */
export class TerminalUnavailable extends Error {
  constructor(
    readonly status: 404 | 409,
    message: string,
  ) {
    super(message);
  }
}
