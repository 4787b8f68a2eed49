import { describe, expect, test } from "bun:test";
import { DomainError, ERROR_KINDS, isDomainError } from "../model/errors.ts";
import { errorBody, statusOf } from "./errors.ts";
import { AuthError } from "../auth/auth.ts";
import { BaseOsRefused } from "../baseos/manager.ts";
import { BundleError } from "../baseos/bundle.ts";
import { SettingsError } from "../baseos/schedule.ts";
import { ConfigRejected, MAX_PROBLEMS } from "../config/problems.ts";
import { TerminalUnavailable } from "../model/terminal.ts";

describe("error kinds → HTTP", () => {
  test("every kind has its status", () => {
    expect(Object.fromEntries(ERROR_KINDS.map((k) => [k, statusOf(k)]))).toEqual({
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

  test("each part's refusal keeps the status and body the API has always answered", () => {
    const many = Array.from({ length: MAX_PROBLEMS + 3 }, (_, i) => ({ path: `apps[${i}]`, message: "bad" }));
    const cfg = errorBody(new ConfigRejected(many));
    expect(cfg.status).toBe(400);
    expect(Object.keys(cfg.body)).toEqual(["error", "problems", "problemCount", "truncated"]);
    expect(cfg.body).toMatchObject({ problemCount: MAX_PROBLEMS + 3, truncated: true });
    expect((cfg.body.problems as unknown[]).length).toBe(MAX_PROBLEMS);
    expect(errorBody(new ConfigRejected([{ path: "", message: "x" }], "unsupported-type")).status).toBe(415);
    expect(errorBody(new ConfigRejected([{ path: "", message: "x" }])).body).toEqual({ error: "config refused: x", problems: [{ path: "", message: "x" }], problemCount: 1, truncated: false });

    const throttled = errorBody(new AuthError("too-many", "wait", 7));
    expect(throttled).toEqual({ status: 429, headers: { "Retry-After": "7" }, body: { error: "wait", retryAfterSeconds: 7 } });
    const wrong = errorBody(new AuthError("unauthorized", "wrong password"));
    expect(wrong.status).toBe(401);
    expect(wrong.headers).toEqual({});
    expect(JSON.parse(JSON.stringify(wrong.body))).toEqual({ error: "wrong password" });

    expect(errorBody(new BaseOsRefused("timed-out", "the upload stalled"))).toEqual({ status: 408, headers: {}, body: { error: "the upload stalled" } });
    expect(errorBody(new BaseOsRefused("not-implemented", "not an A/B device")).status).toBe(501);
    expect(errorBody(new SettingsError("window.start: expected HH:MM")).status).toBe(400);
    expect(errorBody(new BundleError("bad signature")).status).toBe(400);
    expect(errorBody(new TerminalUnavailable(404, "no app x")).status).toBe(404);
    expect(errorBody(new TerminalUnavailable("conflict", "not running")).status).toBe(409);
    expect(new TerminalUnavailable(409, "x").name).toBe("TerminalUnavailable");
  });
});
