// Interactive consoles of apps as parts share them: the app runtime opens them (reconcile/terminals.ts), the
// console carries them over a WebSocket (console/console-socket.ts).
import { DomainError } from "./errors.ts";

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

/**
 * Why a console cannot be opened: no such app (`not-found`) or it is not running (`conflict`). The message says
 * which. The numbers 404 and 409 are still taken for those two kinds, until reconcile/terminals.ts passes kinds.
 */
export class TerminalUnavailable extends DomainError {
  constructor(kind: "not-found" | "conflict" | 404 | 409, message: string) {
    super(kind === 404 || kind === "not-found" ? "not-found" : "conflict", message);
  }
}
