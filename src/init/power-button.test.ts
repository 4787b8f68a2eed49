import { expect, test } from "bun:test";
import { hasPowerPress } from "./power-button.ts";

function event(type: number, code: number, value: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt16LE(type, 16);
  b.writeUInt16LE(code, 18);
  b.writeInt32LE(value, 20);
  return b;
}

test("a KEY_POWER press among input events is recognised; a release or another key is not", () => {
  const SYN = event(0, 0, 0);
  expect(hasPowerPress(Buffer.concat([event(1, 116, 1), SYN]))).toBe(true);
  expect(hasPowerPress(Buffer.concat([event(1, 116, 0), SYN]))).toBe(false);
  expect(hasPowerPress(Buffer.concat([event(1, 30, 1), SYN]))).toBe(false);
  expect(hasPowerPress(Buffer.concat([SYN, event(1, 116, 1)]))).toBe(true);
});
