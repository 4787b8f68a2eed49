import { describe, expect, test } from "bun:test";
import { decodeBase64, encodeBase64, envToUserData, readUserData, shellWords } from "./userdata.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");

describe("userData, read once", () => {
  test("base64 of KEY=VALUE lines: the environment, in order; EVE_ECO_CMD is the command", () => {
    const u = readUserData(b64(`GREETING=hello world\nPORT="8080"\n# a comment\n\nEVE_ECO_CMD=sh -c 'echo "hi there"; sleep 1'\nPORT=9090\r\n`));
    expect(u.kind).toBe("env");
    expect(u.encoding).toBe("base64");
    expect(u.vars.map((v) => v.key)).toEqual(["GREETING", "PORT", "EVE_ECO_CMD", "PORT"]);
    expect(u.env).toEqual({ GREETING: "hello world", PORT: "9090" });
    expect(u.cmd).toEqual(["sh", "-c", 'echo "hi there"; sleep 1']);
    expect(u.problems).toEqual([]);
  });

  test("a #cloud-config: the text for a VM, runcmd's KEY=VALUE items for a container (nothing outside runcmd)", () => {
    const text = "#cloud-config\nwrite_files:\n  - OUTSIDE=1\nruncmd:\n  - FOO=bar\n  - 'BAZ=1'\n  - echo hi\nother: x\n  - LATE=2\n";
    const u = readUserData(b64(text));
    expect(u.kind).toBe("cloud-config");
    expect(u.text).toBe(text);
    expect(u.env).toEqual({ FOO: "bar", BAZ: "1" });
    expect(u.cmd).toBeNull();
  });

  test("plain text (a locally written config) is the text itself; text that is valid base64 of non-text is plain", () => {
    const cfg = "#cloud-config\nhostname: vm1\n";
    expect(readUserData(cfg)).toMatchObject({ kind: "cloud-config", encoding: "plain", text: cfg });
    expect(readUserData("abcd")).toMatchObject({ encoding: "plain", text: "abcd", kind: "other" });
    expect(readUserData("FOO=bar")).toMatchObject({ encoding: "plain", kind: "env", env: { FOO: "bar" } });
    expect(readUserData("%%%not base64")).toMatchObject({ kind: "other", vars: [] });
  });

  test("none, other text, and a script with variables among other lines", () => {
    expect(readUserData(undefined)).toMatchObject({ kind: "none", text: null, vars: [], cmd: null });
    expect(readUserData("")).toMatchObject({ kind: "none" });
    expect(readUserData(b64("echo hello\n"))).toMatchObject({ kind: "other", vars: [] });
    // The device applies what it can read: the UI must show the same, so the variable is listed.
    expect(readUserData(b64("echo hello\nA=1\n"))).toMatchObject({ kind: "other", env: { A: "1" } });
  });

  test("a value with a control character cannot reach the engine: a problem naming the variable", () => {
    expect(readUserData(b64("A=x\u0000y\nB=tab\there\n")).problems).toEqual(["variable A: its value holds a control character at position 1"]);
    expect(readUserData(b64("A=x\u001b[2Jy\n")).problems).toHaveLength(1);
    // A lone carriage return ends the line for the pattern: that line is not a variable.
    expect(readUserData(b64("A=x\ry\n")).vars).toEqual([]);
  });

  test("base64 round trip with non-ASCII text; an empty list writes nothing", () => {
    const env = [
      { key: "A", value: "x=y" },
      { key: "NAME", value: "Zürich ✓" },
    ];
    expect(readUserData(envToUserData(env)).vars).toEqual(env);
    expect(envToUserData([{ key: " ", value: "x" }])).toBe("");
    expect(decodeBase64(encodeBase64("ünï"))).toBe("ünï");
    expect(decodeBase64("abc")).toBeNull(); // not padded
    expect(decodeBase64(b64("\xff"))).not.toBeNull(); // U+00FF as UTF-8 is text
    expect(decodeBase64(btoa("\xff\xfe"))).toBeNull(); // bytes that are not UTF-8
  });

  test("shell words: quotes, escapes, no shell", () => {
    expect(shellWords(`a "b c" 'd e' f\\g "h\\"i"`)).toEqual(["a", "b c", "d e", "f\\g", 'h"i']);
  });
});
