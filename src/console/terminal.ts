// Interactive consoles in the browser: a shell in an app's container, a VM's serial console, or a VM's
// display (VNC, for noVNC), carried over a WebSocket (binary frames are terminal or RFB bytes; text frames are
// JSON control messages).

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

export type TerminalControl = { type: "resize"; cols: number; rows: number };

export function parseControl(text: string): TerminalControl | null {
  try {
    const m = JSON.parse(text) as TerminalControl;
    if (m?.type === "resize" && Number.isInteger(m.cols) && Number.isInteger(m.rows) && m.cols > 0 && m.rows > 0 && m.cols < 1000 && m.rows < 1000) return m;
  } catch {
    // not a control message
  }
  return null;
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
