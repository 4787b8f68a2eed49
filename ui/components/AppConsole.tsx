// An app's console in the page: a shell in a container app, the serial console of a VM app, in an xterm.js
// terminal over the WebSocket /api/v1/apps/{uuid}/console (binary frames: terminal bytes; text frames: JSON
// control). xterm.js is loaded only when a console is opened, so the console's main bundle stays small.
import "@xterm/xterm/css/xterm.css";
import { useEffect, useRef, useState } from "preact/hooks";
import type { AppStatus } from "../api";

type Phase = { kind: "idle" } | { kind: "connecting" } | { kind: "open" } | { kind: "ended"; message: string; error?: boolean };

interface XTerm {
  cols: number;
  rows: number;
  open(el: HTMLElement): void;
  write(data: Uint8Array | string): void;
  onData(cb: (data: string) => void): { dispose(): void };
  onBinary(cb: (data: string) => void): { dispose(): void };
  resize(cols: number, rows: number): void;
  focus(): void;
  dispose(): void;
}

const ROWS = 24;

export function AppConsole({ app, kind }: { app: AppStatus; kind: "vm" | "container" | null }) {
  const [phase, setPhase] = useState<Phase>({ kind: "idle" });
  const host = useRef<HTMLDivElement>(null);
  const session = useRef<{ ws: WebSocket; term: XTerm; cleanup: () => void } | null>(null);
  const running = app.state === "RUNNING";
  const what = kind === "vm" ? "serial console" : "shell";

  const disconnect = (message?: string, error?: boolean) => {
    const s = session.current;
    session.current = null;
    if (s) {
      s.cleanup();
      try {
        s.ws.close(1000);
      } catch {}
    }
    setPhase(message ? { kind: "ended", message, error } : { kind: "idle" });
  };

  // Closed when the page goes away or shows another app.
  useEffect(() => () => disconnect(), [app.uuid]);

  const connect = async () => {
    if (session.current) return;
    setPhase({ kind: "connecting" });
    let Terminal: new (opts: object) => XTerm;
    try {
      ({ Terminal } = (await import("@xterm/xterm")) as unknown as { Terminal: new (opts: object) => XTerm });
    } catch (e) {
      setPhase({ kind: "ended", message: `Could not load the terminal: ${e instanceof Error ? e.message : String(e)}`, error: true });
      return;
    }
    const el = host.current;
    if (!el) return;
    el.replaceChildren();
    const term = new Terminal({ rows: ROWS, cols: 80, convertEol: false, cursorBlink: true, scrollback: 5000, fontFamily: "ui-monospace, Menlo, Consolas, 'DejaVu Sans Mono', monospace", fontSize: 14 });
    term.open(el);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/v1/apps/${encodeURIComponent(app.uuid)}/console`);
    ws.binaryType = "arraybuffer";
    const encoder = new TextEncoder();
    let opened = false;
    const fit = () => {
      const cols = Math.max(20, Math.min(400, Math.floor((el.clientWidth - 16) / charWidth(el))));
      if (cols !== term.cols) term.resize(cols, ROWS);
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "resize", cols: term.cols, rows: term.rows }));
    };
    const subs = [
      term.onData((d) => ws.readyState === WebSocket.OPEN && ws.send(encoder.encode(d))),
      term.onBinary((d) => ws.readyState === WebSocket.OPEN && ws.send(Uint8Array.from(d, (c) => c.charCodeAt(0)))),
    ];
    window.addEventListener("resize", fit);
    const cleanup = () => {
      window.removeEventListener("resize", fit);
      for (const s of subs) s.dispose();
    };
    session.current = { ws, term, cleanup };
    ws.onopen = () => {
      opened = true;
      setPhase({ kind: "open" });
      fit();
      term.focus();
    };
    ws.onmessage = (e) => {
      if (typeof e.data === "string") {
        try {
          const ctl = JSON.parse(e.data) as { type?: string; reason?: string };
          if (ctl.type === "closed") term.write(`\r\n\x1b[2m[${ctl.reason ?? "the console ended"}]\x1b[0m\r\n`);
        } catch {}
        return;
      }
      term.write(new Uint8Array(e.data as ArrayBuffer));
    };
    ws.onclose = (e) => {
      if (session.current?.ws !== ws) return;
      disconnect(
        opened ? `The ${what} was closed${e.reason ? `: ${e.reason}` : ""}.` : `Could not open the ${what}: the app may have stopped, or your session ended. Reload the page and try again.`,
        !opened,
      );
    };
  };

  const label = kind === "vm" ? "Open serial console" : "Open shell";
  return (
    <section id="app-console" class="card card-wide" aria-labelledby="console-heading">
      <div class="section-head">
        <h2 id="console-heading">Console</h2>
        <div class="log-controls">
          {phase.kind === "open" || phase.kind === "connecting" ? (
            <button type="button" id="console-close" class="button secondary small" onClick={() => disconnect()}>
              Disconnect
            </button>
          ) : (
            <button type="button" id="console-open" class="button small" disabled={!running || kind === null} aria-describedby="console-hint" onClick={() => void connect()}>
              {label}
            </button>
          )}
        </div>
      </div>
      <p class="muted" id="console-hint">
        {kind === null
          ? "This app has no console."
          : !running && phase.kind !== "open"
            ? `The ${what} is available while the app is running.`
            : kind === "vm"
              ? "The VM's first serial port (ttyS0): what the guest writes there, and your keystrokes."
              : "A shell (/bin/sh) in the app's container. Leaving it does not stop the app."}
      </p>
      <div role="status" aria-live="polite" class="status-line">
        {phase.kind === "connecting" && <p class="muted">Connecting…</p>}
        {phase.kind === "ended" && !phase.error && <p class="muted">{phase.message}</p>}
      </div>
      {phase.kind === "ended" && phase.error && (
        <div class="banner banner-error" role="alert">
          {phase.message}
        </div>
      )}
      <div
        ref={host}
        id="console-terminal"
        class="console-terminal"
        hidden={phase.kind === "idle"}
        aria-label={`${kind === "vm" ? "Serial console" : "Shell"} of ${app.name}`}
        data-state={phase.kind}
      />
    </section>
  );
}

/** The width of one character cell of the terminal's font (a fit without the fit add-on). */
function charWidth(el: HTMLElement): number {
  const probe = document.createElement("span");
  probe.textContent = "W".repeat(50);
  probe.style.cssText = "position:absolute;visibility:hidden;font-family:ui-monospace, Menlo, Consolas, 'DejaVu Sans Mono', monospace;font-size:14px;white-space:pre";
  el.appendChild(probe);
  const w = probe.getBoundingClientRect().width / 50;
  probe.remove();
  return w > 0 ? w : 8.4;
}
