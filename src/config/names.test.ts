import { describe, expect, test } from "bun:test";
import { commentText, displayNameProblem, hasControl, isHostname, isIfname } from "./names.ts";

describe("names", () => {
  test("interface names: what Linux takes", () => {
    for (const ok of ["eth0", "eth0.100", "wlan_1", "a23456789012345", "-x", "br-lan"]) expect(isIfname(ok)).toBe(true);
    for (const bad of ["", ".", "..", "a234567890123456", "eth 0", "eth0/x", "eth0\n", "ethé", 7]) expect(isIfname(bad)).toBe(false);
  });

  test("host names: labels of letters, digits, - and _, 63 each, 253 in all, an optional final dot", () => {
    for (const ok of ["lan", "plant.example.lan", "plant.example.lan.", "_svc.x", "a-b.c", `${"a".repeat(63)}.b`]) expect(isHostname(ok)).toBe(true);
    for (const bad of ["", ".", "a..b", "-a", "a-", "a b", "a\nb", "a/b", `${"a".repeat(64)}.b`, `${"a.".repeat(127)}ab`, null]) expect(isHostname(bad)).toBe(false);
  });

  test("control characters, display names, comment text", () => {
    for (const c of ["\n", "\r", "\t", "\u0000", "\u007f", "\u0085", "\u2028", "\u2029"]) expect(hasControl(`a${c}b`)).toBe(true);
    expect(hasControl("Plant LAN – hall 2 ✓")).toBe(false);
    expect(displayNameProblem("Plant LAN")).toBeNull();
    expect(displayNameProblem("a\nb")).toMatch(/control character/);
    expect(displayNameProblem("x".repeat(257))).toMatch(/at most 256/);
    expect(commentText("lan\ndhcp-script=/x.sh ✓")).toBe("lan?dhcp-script=/x.sh ?");
  });
});
