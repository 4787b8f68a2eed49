// Errors a user can act on, by kind. A part throws a DomainError with the kind that says what went wrong; the
// console maps the kind to an HTTP status in one place (console/errors.ts). No status lives here.

export type ErrorKind =
  /** The request or the config is wrong: a field, a value, a shape. */
  | "invalid"
  /** Who is asking is not known (not logged in, a bad password or token). */
  | "unauthorized"
  /** Known, but not allowed to do this. */
  | "forbidden"
  | "not-found"
  /** The state of the device does not allow it now (busy, already done, in use). */
  | "conflict"
  /** The caller was too slow: an upload that stalled. */
  | "timed-out"
  /** A condition the caller set (the config version it read) no longer holds. */
  | "precondition-failed"
  | "too-large"
  /** The body is not of a type that is accepted. */
  | "unsupported-type"
  /** Too many tries or too many things; `retryAfterSeconds` says when to try again. */
  | "too-many"
  /** This device cannot do it at all (not evebox's init, not an A/B device). */
  | "not-implemented"
  /** A part it needs is not there or not answering now. */
  | "unavailable"
  | "internal";

export const ERROR_KINDS: readonly ErrorKind[] = [
  "invalid",
  "unauthorized",
  "forbidden",
  "not-found",
  "conflict",
  "timed-out",
  "precondition-failed",
  "too-large",
  "unsupported-type",
  "too-many",
  "not-implemented",
  "unavailable",
  "internal",
];

/**
 * What the caller is told besides the message (the console puts each field into the error's JSON body, so only
 * what a user may see goes here): the config's problems, when to retry.
 */
export interface ErrorDetails {
  retryAfterSeconds?: number;
  [field: string]: unknown;
}

export class DomainError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly details: ErrorDetails = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export function isDomainError(err: unknown): err is DomainError {
  return err instanceof DomainError;
}
