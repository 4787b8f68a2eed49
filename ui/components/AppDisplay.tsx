// A VM app's graphical console (its VGA display, with `remoteConsole`): noVNC over the WebSocket
// /api/v1/apps/{uuid}/vnc, which carries the VM's VNC socket. noVNC is loaded only when the display is opened.
import { useEffect, useRef, useState } from "preact/hooks";
import type { AppStatus } from "../api";

type Phase = { kind: "idle" } | { kind: "connecting" } | { kind: "open" } | { kind: "ended"; message: string; error?: boolean };

interface Rfb extends EventTarget {
  scaleViewport: boolean;
  resizeSession: boolean;
  focusOnClick: boolean;
  disconnect(): void;
  sendCtrlAltDel(): void;
}

export function AppDisplay({ app }: { app: AppStatus }) {
  const [phase, setPhase] = useState<Phase>({ kind: "idle" });
  const host = useRef<HTMLDivElement>(null);
  const rfb = useRef<Rfb | null>(null);
  const running = app.state === "RUNNING";

  const disconnect = (message?: string, error?: boolean) => {
    const r = rfb.current;
    rfb.current = null;
    try {
      r?.disconnect();
    } catch {}
    setPhase(message ? { kind: "ended", message, error } : { kind: "idle" });
  };
  useEffect(() => () => disconnect(), [app.uuid]);

  const connect = async () => {
    if (rfb.current) return;
    setPhase({ kind: "connecting" });
    let RFB: new (target: HTMLElement, url: string, options?: object) => Rfb;
    try {
      ({ default: RFB } = (await import("@novnc/novnc")) as unknown as { default: typeof RFB });
    } catch (e) {
      setPhase({ kind: "ended", message: `Could not load the display client: ${e instanceof Error ? e.message : String(e)}`, error: true });
      return;
    }
    const el = host.current;
    if (!el) return;
    el.replaceChildren();
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const r = new RFB(el, `${proto}//${location.host}/api/v1/apps/${encodeURIComponent(app.uuid)}/vnc`, {});
    r.scaleViewport = true;
    r.resizeSession = false;
    rfb.current = r;
    let connected = false;
    r.addEventListener("connect", () => {
      connected = true;
      setPhase({ kind: "open" });
    });
    r.addEventListener("disconnect", (e) => {
      if (rfb.current !== r) return;
      rfb.current = null;
      const clean = (e as CustomEvent<{ clean: boolean }>).detail?.clean;
      setPhase(
        connected
          ? { kind: "ended", message: clean ? "The display was closed." : "The display connection was lost." }
          : { kind: "ended", message: "Could not open the display: the VM may have stopped, or your session ended.", error: true },
      );
    });
  };

  return (
    <section id="app-display" class="card card-wide" aria-labelledby="display-heading">
      <div class="section-head">
        <h2 id="display-heading">Graphical console</h2>
        <div class="log-controls">
          {phase.kind === "open" && (
            <button type="button" id="display-cad" class="button secondary small" onClick={() => rfb.current?.sendCtrlAltDel()}>
              Send Ctrl+Alt+Del
            </button>
          )}
          {phase.kind === "open" || phase.kind === "connecting" ? (
            <button type="button" id="display-close" class="button secondary small" onClick={() => disconnect()}>
              Disconnect
            </button>
          ) : (
            <button type="button" id="display-open" class="button small" disabled={!running} aria-describedby="display-hint" onClick={() => void connect()}>
              Open graphical console
            </button>
          )}
        </div>
      </div>
      <p class="muted" id="display-hint">
        {running || phase.kind === "open" ? "The VM's screen (VNC). Click it to type into the VM." : "The graphical console is available while the app is running."}
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
      <div ref={host} id="display-screen" class="display-screen" hidden={phase.kind === "idle"} aria-label={`Screen of ${app.name}`} data-state={phase.kind} />
    </section>
  );
}
