// The one place a domain error's kind becomes an HTTP status, and the one shape of an error's JSON body:
// `{ error: message, ...details }` (details: a config's problems, retryAfterSeconds), with Retry-After when set.
import type { DomainError, ErrorKind } from "../model/errors.ts";

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
