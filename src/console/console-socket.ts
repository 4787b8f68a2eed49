// WebSocket /api/v1/apps/{uuid}/console: an app's console in the browser. Binary frames carry terminal bytes
// both ways; text frames carry JSON control messages (`{type:"resize",cols,rows}` in, `{type:"closed",reason}` out).
// WebSocket /api/v1/apps/{uuid}/vnc: a VM app's display, the raw RFB stream of its VNC socket (for noVNC): binary only.
import type { Context, MiddlewareHandler } from "hono";
import { upgradeWebSocket } from "hono/bun";
import type { WSContext } from "hono/ws";
import type { TerminalSession, Terminals } from "../model/terminal.ts";
import { TerminalUnavailable } from "../model/terminal.ts";
import { parseControl } from "./terminal.ts";

export { websocket } from "hono/bun";

/** Frames a slow browser has not taken yet, in bytes, before output is dropped rather than queued. */
const MAX_BUFFERED = 4 << 20;
/** How often an open console asks whether its session or token still may use it (removed user, changed role). */
export const RECHECK_MS = 2_000;

/**
 * The console route's handler. Authentication is the API's (cookie or bearer token); since a browser sends
 * the cookie with a cross-site WebSocket too, the upgrade must come from the console's own origin.
 */
export function consoleSocket(terminals: () => Terminals | null, stillAllowed: (c: Context) => () => boolean = () => () => true): MiddlewareHandler {
  const upgrade = upgradeWebSocket(async (c: Context) => {
    const uuid = c.req.param("uuid") ?? "";
    const t = terminals();
    if (!t) throw new TerminalUnavailable("conflict", "the app runtime is not running yet; try again in a moment");
    const display = c.req.param("kind") === "vnc";
    if (display && !t.openDisplay) throw new TerminalUnavailable("conflict", "graphical consoles are not available on this device");
    const session = display ? await t.openDisplay!(uuid) : await t.open(uuid);
    return sessionEvents(session, stillAllowed(c));
  });
  return async (c, next) => {
    const origin = c.req.header("origin");
    if (origin) {
      let same = false;
      try {
        same = new URL(origin).host === c.req.header("host");
      } catch {}
      if (!same) return c.json({ error: `cross-origin console refused (Origin ${origin} is not this console)` }, 403);
    }
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") return c.json({ error: "this endpoint is a WebSocket: connect with Upgrade: websocket" }, 426);
    // A TerminalUnavailable is answered by the console's onError, as every DomainError (console/errors.ts).
    return await upgrade(c, next);
  };
}

function sessionEvents(session: TerminalSession, allowed: () => boolean) {
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  let closed = false;
  let recheck: ReturnType<typeof setInterval> | null = null;
  const end = () => {
    if (closed) return;
    closed = true;
    if (recheck) clearInterval(recheck);
    reader?.cancel().catch(() => {});
    session.close();
  };
  return {
    onOpen(_e: Event, ws: WSContext) {
      // A console outlives the request that opened it: when its user is removed, demoted below operator, or its
      // session or token ends, it is closed (1008) within RECHECK_MS.
      recheck = setInterval(() => {
        if (closed || allowed()) return;
        const reason = "your session or token ended, or your role no longer allows consoles";
        try {
          if (session.kind !== "vnc") ws.send(JSON.stringify({ type: "closed", reason }));
          ws.close(1008, reason);
        } catch {}
        end();
      }, RECHECK_MS);
      if (session.history?.length) ws.send(session.history as Uint8Array<ArrayBuffer>);
      reader = session.readable.getReader();
      void (async () => {
        try {
          for (;;) {
            const { value, done } = await reader!.read();
            if (done || closed) break;
            const raw = ws.raw as { getBufferedAmount?: () => number } | undefined;
            if ((raw?.getBufferedAmount?.() ?? 0) > MAX_BUFFERED) continue;
            ws.send(value as Uint8Array<ArrayBuffer>);
          }
        } catch {
          // the session ended under us
        }
        if (!closed) {
          const reason = session.kind === "shell" ? "the shell exited" : "the VM stopped";
          try {
            // An RFB stream has no text frames: noVNC would take one for protocol bytes.
            if (session.kind !== "vnc") ws.send(JSON.stringify({ type: "closed", reason }));
            ws.close(1000, reason);
          } catch {}
          end();
        }
      })();
    },
    onMessage(e: MessageEvent, _ws: WSContext) {
      if (closed) return;
      if (typeof e.data === "string") {
        if (session.kind === "vnc") return;
        const ctl = parseControl(e.data);
        if (ctl?.type === "resize") void session.resize?.(ctl.cols, ctl.rows);
        return;
      }
      const bytes = e.data instanceof ArrayBuffer ? new Uint8Array(e.data) : new Uint8Array(e.data as ArrayBufferLike);
      session.write(bytes);
    },
    onClose() {
      end();
    },
    onError() {
      end();
    },
  };
}
