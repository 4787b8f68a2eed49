// Interactive consoles in the browser: a shell in an app's container, a VM's serial console, or a VM's
// display (VNC, for noVNC), carried over a WebSocket (binary frames are terminal or RFB bytes; text frames are
// JSON control messages).

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
