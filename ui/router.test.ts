import { describe, expect, test } from "bun:test";
import { isActivePath, matchRoute, normalisePath, safeReturnPath } from "./router";

describe("matchRoute", () => {
  test("static paths, ignoring a trailing slash", () => {
    expect(matchRoute("/", "/")).toEqual({});
    expect(matchRoute("/apps", "/apps/")).toEqual({});
    expect(matchRoute("/apps", "/networks")).toBeNull();
    expect(matchRoute("/apps", "/apps/x")).toBeNull();
    expect(matchRoute("/apps/x", "/apps")).toBeNull();
  });
  test("parameters are decoded", () => {
    expect(matchRoute("/apps/:uuid", "/apps/a%20b")).toEqual({ uuid: "a b" });
    expect(matchRoute("/apps/:uuid/logs", "/apps/1/logs")).toEqual({ uuid: "1" });
  });
  test("a star takes the rest", () => {
    expect(matchRoute("/files/*", "/files/a/b")).toEqual({ "*": "a/b" });
    expect(matchRoute("/files/*", "/files")).toEqual({ "*": "" });
  });
});

describe("isActivePath", () => {
  test("the dashboard is active only on /", () => {
    expect(isActivePath("/", "/")).toBe(true);
    expect(isActivePath("/", "/apps")).toBe(false);
  });
  test("a section is active on its sub-pages, not on lookalikes", () => {
    expect(isActivePath("/apps", "/apps/123")).toBe(true);
    expect(isActivePath("/apps", "/appsx")).toBe(false);
  });
});

test("normalisePath", () => {
  expect(normalisePath("")).toBe("/");
  expect(normalisePath("///")).toBe("/");
  expect(normalisePath("/apps//")).toBe("/apps");
});

test("safeReturnPath only accepts in-app paths", () => {
  expect(safeReturnPath("/apps?x=1")).toBe("/apps?x=1");
  expect(safeReturnPath("//evil.example")).toBeNull();
  expect(safeReturnPath("/\\evil.example")).toBeNull();
  expect(safeReturnPath("https://evil.example")).toBeNull();
  expect(safeReturnPath(null)).toBeNull();
});
