import { describe, expect, test } from "bun:test";
import protobuf from "protobufjs";
import { fromProto3Json, toProto3Json } from "./json.ts";

const root = new protobuf.Root();
root.addJSON((protobuf.common as unknown as Record<string, protobuf.INamespace>)["google/protobuf/timestamp.proto"]!.nested!);
protobuf.parse(`
syntax = "proto3";
package t;
import "google/protobuf/timestamp.proto";
enum Kind { KIND_UNSPECIFIED = 0; KIND_A = 1; KIND_B = 2; }
message Inner { string name = 1; uint32 port = 2; }
message Outer {
  string display_name = 1;
  int32 small = 2;
  uint64 big = 3;
  bool flag = 4;
  bytes blob = 5;
  Kind kind = 6;
  repeated Inner items = 7;
  map<string, string> labels = 8;
  Inner one = 9;
  oneof choice { string a = 10; uint32 b = 11; }
  google.protobuf.Timestamp at = 12;
  double ratio = 13;
}`, root, { keepCase: false });
root.resolveAll();
const Outer = root.lookupType("t.Outer");

describe("strict proto3 JSON", () => {
  test("a valid document round-trips through binary and back to JSON", () => {
    const json = {
      displayName: "x",
      small: -5,
      big: "18446744073709551615",
      flag: true,
      blob: "AAEC",
      kind: "KIND_B",
      items: [{ name: "i", port: 80 }],
      labels: { a: "b" },
      one: { name: "o" },
      a: "chosen",
      at: "2024-05-06T07:08:09.5Z",
      ratio: 0.25,
    };
    const { value, problems } = fromProto3Json(Outer, json);
    expect(problems).toEqual([]);
    const bytes = Outer.encode(Outer.fromObject(value)).finish();
    const back = toProto3Json(Outer, Outer.decode(bytes));
    expect(back).toEqual({ ...json, at: "2024-05-06T07:08:09.500Z" });
  });

  test("the original snake_case field name is accepted too", () => {
    const { value, problems } = fromProto3Json(Outer, { display_name: "x" });
    expect(problems).toEqual([]);
    expect(value).toEqual({ displayName: "x" });
  });

  test("every problem is listed with its path", () => {
    const { problems } = fromProto3Json(Outer, {
      displayNme: "typo",
      small: "ten",
      big: 1.5,
      flag: "yes",
      kind: "KIND_C",
      items: [{ name: 3 }, { port: -1 }, { porty: 1 }],
      labels: { a: 1 },
      one: [],
      a: "x",
      b: 2,
      at: "yesterday",
    });
    const byPath = Object.fromEntries(problems.map((p) => [p.path, p.message]));
    expect(byPath.displayNme).toMatch(/unknown field.*did you mean "displayName"/);
    expect(byPath.small).toMatch(/integer/);
    expect(byPath.big).toMatch(/integer/);
    expect(byPath.flag).toMatch(/true or false/);
    expect(byPath.kind).toMatch(/unknown Kind value "KIND_C"/);
    expect(byPath["items[0].name"]).toMatch(/string/);
    expect(byPath["items[1].port"]).toMatch(/0\.\.4294967295/);
    expect(byPath["items[2].porty"]).toMatch(/unknown field/);
    expect(byPath['labels["a"]']).toMatch(/string/);
    expect(byPath.one).toMatch(/object/);
    expect(byPath.b).toMatch(/only one of the oneof 'choice'/);
    expect(byPath.at).toMatch(/RFC 3339/);
    expect(problems.length).toBe(12);
  });

  test("a document that is not an object is refused", () => {
    expect(fromProto3Json(Outer, [1, 2]).problems[0]!.message).toMatch(/expected an object/);
    expect(fromProto3Json(Outer, "x").problems.length).toBe(1);
  });

  test("null means not set", () => {
    expect(fromProto3Json(Outer, { one: null, items: null }).value).toEqual({});
  });
});
