// The one place a domain error's kind becomes an HTTP status, and the one shape of an error's JSON body:
// `{ error: message, ...details }` (details: a config's problems, retryAfterSeconds), with Retry-After when set.
// The API's onError (console/app.ts) answers every route with errorResponse, those of baseos/routes.ts included.
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { DomainError, type ErrorKind } from "../model/errors.ts";

const STATUS: Record<ErrorKind, 400 | 401 | 403 | 404 | 408 | 409 | 412 | 413 | 415 | 429 | 500 | 501 | 503> = {
  invalid: 400,
  unauthorized: 401,
  forbidden: 403,
  "not-found": 404,
  conflict: 409,
  "timed-out": 408,
  "precondition-failed": 412,
  "too-large": 413,
  "unsupported-type": 415,
  "too-many": 429,
  internal: 500,
  "not-implemented": 501,
  unavailable: 503,
};

export type ErrorStatus = (typeof STATUS)[ErrorKind];

export function statusOf(kind: ErrorKind): ErrorStatus {
  return STATUS[kind];
}

/** The status, headers and JSON body the console answers a domain error with. */
export function errorBody(err: DomainError): { status: ErrorStatus; headers: Record<string, string>; body: Record<string, unknown> } {
  const headers: Record<string, string> = {};
  const retry = err.details.retryAfterSeconds;
  if (typeof retry === "number" && retry > 0) headers["Retry-After"] = String(Math.ceil(retry));
  return { status: statusOf(err.kind), headers, body: { error: err.message, ...err.details } };
}

/** A refusal of the console itself (a route's own check). */
export class HttpError extends DomainError {
  override name = "HttpError";
}

const KIND_OF_STATUS = new Map<number, ErrorKind>(Object.entries(STATUS).map(([k, s]) => [s, k as ErrorKind]));

/**
 * What kind of failure `err` is: a DomainError's kind; for a part's error class that still carries an HTTP
 * status instead (until it extends DomainError), the kind of that status. Null: not a failure a user can act on.
 */
export function kindOf(err: unknown): ErrorKind | null {
  if (err instanceof DomainError) return err.kind;
  const status = legacyStatus(err);
  return status === null ? null : (KIND_OF_STATUS.get(status) ?? null);
}

function legacyStatus(err: unknown): number | null {
  const s = err instanceof Error ? (err as { status?: unknown }).status : undefined;
  return typeof s === "number" && s >= 400 && s < 600 ? s : null;
}

/**
 * The answer for an error, or null for an unexpected one (a bug: the caller logs it and answers 500).
 * Bodies: `{error}`; a refused config adds `problems`, `problemCount`, `truncated`; a throttled login adds
 * `retryAfterSeconds` and the `Retry-After` header.
 */
export function errorResponse(c: Context, err: unknown): Response | null {
  if (err instanceof DomainError) {
    const { status, headers, body } = errorBody(err);
    for (const [k, v] of Object.entries(headers)) c.header(k, v);
    return c.json(body, status);
  }
  // Hono's own (a malformed JSON body in its validator): its status, our shape.
  if (err instanceof HTTPException) return c.json({ error: err.message || "bad request" }, err.status as ContentfulStatusCode);
  const status = legacyStatus(err);
  if (status === null) return null;
  // A part's error class that carries its status (ConfigRejected, AuthError, BaseOsRefused, TerminalUnavailable):
  // the same body shape as a DomainError's details.
  const e = err as Error & { problems?: unknown; total?: unknown; truncated?: unknown; retryAfterSeconds?: unknown };
  const code = status as ContentfulStatusCode;
  if (Array.isArray(e.problems)) return c.json({ error: e.message, problems: e.problems, problemCount: e.total, truncated: e.truncated }, code);
  if ("retryAfterSeconds" in e) {
    const after = typeof e.retryAfterSeconds === "number" ? e.retryAfterSeconds : undefined;
    if (after) c.header("Retry-After", String(Math.ceil(after)));
    return c.json({ error: e.message, retryAfterSeconds: after }, code);
  }
  return c.json({ error: e.message }, code);
}
