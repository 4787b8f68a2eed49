import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store } from "../store/index.ts";
import { Outbox } from "./outbox.ts";

const dirs: string[] = [];
function store(): Store {
  const d = mkdtempSync(join(tmpdir(), "evebox-outbox-"));
  dirs.push(d);
  return Store.open(join(d, "evebox.db"));
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const bytes = (n: number, v = 1) => new Uint8Array(n).fill(v);

describe("Outbox", () => {
  test("oldest first; ack removes; counters survive a reopen", () => {
    const s = store();
    const o = new Outbox(s, 10_000);
    o.enqueue("metrics", "metrics", bytes(10, 1));
    o.enqueue("logs", "newlogs", bytes(10, 2));
    const a = o.peek()!;
    expect(a.kind).toBe("metrics");
    o.ack(a.id);
    expect(o.peek()!.kind).toBe("logs");
    expect(o.counts().sent).toBe(1);
    expect(new Outbox(s, 10_000).counts().sent).toBe(1);
    expect(new Outbox(s, 10_000).depth()).toMatchObject({ messages: 1, bytes: 10 });
  });

  test("over the bound: metrics and logs dropped oldest-first and counted; info never dropped", () => {
    const s = store();
    const o = new Outbox(s, 1000);
    o.enqueue("info", "info", bytes(300), "app:a");
    for (let i = 0; i < 10; i++) o.enqueue("metrics", "metrics", bytes(100, i));
    const d = o.depth();
    expect(d.bytes).toBeLessThanOrEqual(1000);
    expect(d.byKind.info).toBe(1);
    expect(o.counts().dropped.metrics).toBe(3);
    // The survivors are the newest metrics, still in order.
    const seen: number[] = [];
    for (let m = o.peek(); m; m = o.peek()) {
      if (m.kind === "metrics") seen.push(m.body[0]!);
      o.ack(m.id);
    }
    expect(seen).toEqual([3, 4, 5, 6, 7, 8, 9]);
  });

  test("only info left over the bound: it is kept", () => {
    const o = new Outbox(store(), 100);
    o.enqueue("info", "info", bytes(80), "app:a");
    o.enqueue("info", "info", bytes(80), "app:b");
    expect(o.depth().messages).toBe(2);
    expect(o.totalDropped).toBe(0);
  });

  test("a newer info for an object replaces the unsent older one; reject counts a refusal", () => {
    const o = new Outbox(store(), 10_000);
    o.enqueue("info", "info", bytes(10, 1), "app:a");
    o.enqueue("info", "info", bytes(10, 2), "app:b");
    o.enqueue("info", "info", bytes(10, 3), "app:a");
    expect(o.depth().messages).toBe(2);
    expect(o.counts().superseded).toBe(1);
    const first = o.peek()!;
    expect(first.key).toBe("app:b");
    o.reject(first.id);
    expect(o.counts().rejected).toBe(1);
    expect(o.peek()!.body[0]).toBe(3);
  });
});
