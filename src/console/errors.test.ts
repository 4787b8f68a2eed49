import { describe, expect, test } from "bun:test";
import { DomainError, ERROR_KINDS, isDomainError } from "../model/errors.ts";
import { errorBody, statusOf } from "./errors.ts";

describe("error kinds → HTTP", () => {
  test("every kind has its status", () => {
    expect(Object.fromEntries(ERROR_KINDS.map((k) => [k, statusOf(k)]))).toEqual({
      invalid: 400,
      unauthorized: 401,
      forbidden: 403,
      "not-found": 404,
      conflict: 409,
      "precondition-failed": 412,
      "too-large": 413,
      "unsupported-type": 415,
      "too-many": 429,
      "not-implemented": 501,
      unavailable: 503,
      internal: 500,
    });
  });

  test("the body is the message and the details; Retry-After when there is a retry time", () => {
    const e = new DomainError("too-many", "too many failed logins", { retryAfterSeconds: 30 });
    expect(isDomainError(e)).toBe(true);
    expect(e).toBeInstanceOf(Error);
    expect(errorBody(e)).toEqual({ status: 429, headers: { "Retry-After": "30" }, body: { error: "too many failed logins", retryAfterSeconds: 30 } });
    const p = new DomainError("invalid", "config refused: 2 problems", { problems: [{ path: "/a", message: "x" }], problemCount: 2 });
    expect(errorBody(p)).toEqual({
      status: 400,
      headers: {},
      body: { error: "config refused: 2 problems", problems: [{ path: "/a", message: "x" }], problemCount: 2 },
    });
    expect(isDomainError(new Error("plain"))).toBe(false);
  });
});
