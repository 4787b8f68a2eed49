// The audit trail's recorder: every state-changing request (POST, PUT, PATCH, DELETE) and every console upgrade
// (WebSocket) under /api is written to the store after it is answered, with who asked (user, token), from where,
// what (the route), of what (the path's object), and how it ended. Logins are POSTs: recorded the same way, the
// handler naming the user (a failed one the name that was tried). The API has no route that changes or deletes a
// record: the store trims the oldest ones to its byte budget and counts them (store.addAudit).
import type { Context, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import type { Principal } from "../auth/auth.ts";
import { createLogger } from "../lib/log.ts";
import type { Store } from "../store/store.ts";

/** What a handler may add to its request's record (a login's user; a more telling object). */
export interface AuditNote {
  user?: string | null;
  object?: string | null;
  detail?: string | null;
}

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** The route that answered: the last one of the request's method that is not a catch-all (the UI's `*`). */
function routePattern(c: Context): string | null {
  const mine = matchedRoutes(c).filter((r) => r.method === c.req.method && !r.path.endsWith("*"));
  return mine.at(-1)?.path ?? null;
}

/** The route of this request as the OpenAPI document names it: `POST /api/v1/apps/{uuid}/{command}`. */
export function routeOf(c: Context): string {
  const path = routePattern(c) ?? c.req.path;
  return `${c.req.method} ${path.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, "{$1}")}`;
}

/** The values of the route's path parameters, joined (an app's uuid and its command, a user's name). */
function objectOf(c: Context): string | null {
  const pattern = (routePattern(c) ?? "").split("/");
  const actual = c.req.path.split("/");
  const values = pattern.flatMap((seg, i) => (seg.startsWith(":") && actual[i] !== undefined ? [decodeURIComponent(actual[i]!)] : []));
  return values.length ? values.join(" ").slice(0, 200) : null;
}

export function auditTrail(store: Store, client: (c: Context) => string): MiddlewareHandler {
  const log = createLogger("console", store);
  return async (c, next) => {
    const upgrade = c.req.header("upgrade")?.toLowerCase() === "websocket";
    if (!UNSAFE.has(c.req.method) && !upgrade) return next();
    const note: AuditNote = {};
    c.set("audit", note);
    let failed = false;
    try {
      await next();
    } catch (e) {
      failed = true;
      throw e;
    } finally {
      try {
        const status = failed ? 500 : c.res.status;
        const p = c.get("principal") as Principal | null;
        let detail = note.detail ?? null;
        if (!detail && status >= 400 && c.res.headers.get("content-type")?.includes("json")) {
          detail = String(((await c.res.clone().json().catch(() => ({}))) as { error?: unknown }).error ?? "").slice(0, 500) || null;
        }
        store.addAudit({
          ts: new Date(),
          user: note.user !== undefined ? note.user : p && p.kind !== "local-socket" ? p.user : p ? "local-socket" : null,
          token: p?.kind === "token" ? `${p.id} ${p.name}` : null,
          client: client(c),
          action: routeOf(c),
          object: note.object !== undefined ? note.object : objectOf(c),
          result: status < 400 ? "ok" : status < 500 ? "refused" : "failed",
          status,
          detail,
        });
      } catch (e) {
        // The request was answered; a store fault must not turn it into another answer.
        log.error(`audit record of ${c.req.method} ${c.req.path} not written: ${(e as Error).message}`);
      }
    }
  };
}
