import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Database } from "bun:sqlite";
import { applyMigrations, StoreTooNewError } from "./migrate.ts";
import { migrations } from "./migrations.gen.ts";
import { defaultLimits, openFilesOf, Store } from "./store.ts";

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "evebox-store-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("store", () => {
  test("close() closes the files: nothing of the database stays open, the WAL is checkpointed and gone", () => {
    const path = join(tmp(), "evebox.db");
    const s = Store.open(path);
    s.setSetting("k", "v");
    expect(s.getSetting("k")).toBe("v");
    expect(openFilesOf(path)).toBeGreaterThan(0);
    s.close();
    expect(openFilesOf(path)).toBe(0);
    expect(existsSync(`${path}-wal`)).toBe(false);
    const again = Store.open(path);
    expect(again.getSetting("k")).toBe("v");
    again.close();
  });

  test("close() closes the files also when the collector found statements dead but has not swept them yet", async () => {
    // Statements a query made and dropped: a collection clears their WeakRefs (so close() cannot finalize them)
    // and leaves their destructors for a later sweep; SQLite then keeps the connection and its files open (a
    // reboot found /persist busy). Several rounds: the collector's timing varies.
    for (let round = 0; round < 5; round++) {
      const path = join(tmp(), "evebox.db");
      const s = Store.open(path);
      for (let i = 0; i < 400; i++) s.sqlite.prepare("SELECT ? AS v").get(i);
      await Bun.sleep(0);
      Bun.gc(false);
      await Bun.sleep(0);
      s.close();
      expect(openFilesOf(path)).toBe(0);
    }
  });

  test("opens with WAL, foreign keys and busy timeout, at the latest schema", () => {
    const s = Store.open(join(tmp(), "evebox.db"));
    expect((s.sqlite.query("PRAGMA journal_mode").get() as any).journal_mode).toBe("wal");
    expect((s.sqlite.query("PRAGMA foreign_keys").get() as any).foreign_keys).toBe(1);
    expect((s.sqlite.query("PRAGMA busy_timeout").get() as any).timeout).toBe(5000);
    expect((s.sqlite.query("PRAGMA user_version").get() as any).user_version).toBe(migrations.length);
    s.close();
  });

  test("a store written by a newer evebox is refused with a clear message", () => {
    const path = join(tmp(), "evebox.db");
    Store.open(path).close();
    const raw = new Database(path);
    raw.run(`PRAGMA user_version = ${migrations.length + 3}`);
    raw.close();
    expect(() => Store.open(path)).toThrow(StoreTooNewError);
    expect(() => Store.open(path)).toThrow(/newer evebox.*schema \d+/);
  });

  test("migrations run in one transaction: a failing one leaves the store untouched", () => {
    const path = join(tmp(), "evebox.db");
    const raw = new Database(path);
    const broken = [...migrations, { tag: "9999_broken", statements: ["CREATE TABLE ok_table (x int)", "THIS IS NOT SQL"] }];
    expect(() => applyMigrations(raw, path, broken)).toThrow();
    expect((raw.query("PRAGMA user_version").get() as any).user_version).toBe(0);
    expect(raw.query("SELECT name FROM sqlite_master WHERE name IN ('ok_table','config_versions')").all()).toEqual([]);
    raw.close();
  });

  test("config versions: one current, foreign key enforced, history newest first", () => {
    const s = Store.open(join(tmp(), "evebox.db"));
    const base = { source: "local" as const, author: "admin", receivedAt: new Date(), status: "accepted" as const };
    const v1 = s.addConfigVersion({ ...base, hash: "a", bytes: Buffer.from([1]) }, true);
    const v2 = s.addConfigVersion({ ...base, hash: "b", bytes: Buffer.from([2]), status: "rejected", error: "bad" }, false);
    expect(s.current()?.version).toBe(v1);
    expect(s.configHistory().map((h) => h.version)).toEqual([v2, v1]);
    expect(s.configHistory()[0]!.error).toBe("bad");
    expect(() => s.setCurrentVersion(9999)).toThrow(/FOREIGN KEY/);
    expect(s.current()?.version).toBe(v1);
    s.close();
  });

  test("the current version as stored: its times as dates, its summary as written (read with plain SQL)", () => {
    const s = Store.open(join(tmp(), "evebox.db"));
    expect(s.current()).toBeNull();
    const receivedAt = new Date(1_700_000_000_123);
    const summary = { apps: 2, names: ["web", "db"] } as any;
    const v = s.addConfigVersion({ source: "controller", author: "ctl", receivedAt, status: "accepted", hash: "h", bytes: Buffer.from([1]), summary }, true);
    const cur = s.current()!;
    expect(cur).toMatchObject({ version: v, hash: "h", source: "controller", summary });
    expect(cur.receivedAt).toEqual(receivedAt);
    expect(cur.since).toBeInstanceOf(Date);
    expect(Math.abs(cur.since.getTime() - Date.now())).toBeLessThan(60_000);
    s.addConfigVersion({ source: "local", author: "a", receivedAt, status: "accepted", hash: "h2", bytes: Buffer.from([2]) }, true);
    expect(s.current()).toMatchObject({ hash: "h2", source: "local", summary: null });
    s.close();
  });

  test("config history is bounded but never loses the current version", () => {
    const s = Store.open(join(tmp(), "evebox.db"), { ...defaultLimits, events: 10, logs: 10, metricObjects: 10, configVersions: 5 });
    const base = { source: "local" as const, author: "admin", receivedAt: new Date(), status: "accepted" as const };
    const first = s.addConfigVersion({ ...base, hash: "first", bytes: Buffer.from([0]) }, true);
    for (let i = 0; i < 20; i++) s.addConfigVersion({ ...base, hash: `h${i}`, bytes: Buffer.from([i]), status: "rejected" }, false);
    expect(s.count("config_versions")).toBeLessThanOrEqual(6);
    expect(s.current()?.version).toBe(first);
    s.close();
  });

  test("logs and events are bounded, oldest dropped first", () => {
    const s = Store.open(join(tmp(), "evebox.db"), { ...defaultLimits, events: 50, logs: 100, metricObjects: 10, configVersions: 5 });
    for (let i = 0; i < 10; i++) {
      s.addLogs(Array.from({ length: 50 }, (_, j) => ({ ts: new Date(), source: "app", objectId: "x", message: `l${i * 50 + j}` })));
    }
    expect(s.count("logs")).toBe(100);
    const lines = s.logsFor("app", "x", 1000);
    expect(lines[0]!.message).toBe("l400");
    expect(lines.at(-1)!.message).toBe("l499");
    for (let i = 0; i < 300; i++) s.addEvent({ ts: new Date(), type: "t", message: `e${i}` });
    expect(s.count("events")).toBeLessThanOrEqual(150);
    expect(s.recentEvents(1)[0]!.message).toBe("e299");
    s.close();
  });

  test("data survives close and reopen", () => {
    const path = join(tmp(), "evebox.db");
    const s = Store.open(path);
    s.setSetting("k", "v");
    s.putObserved({ kind: "app", id: "u1", name: "a", state: "RUNNING", error: null, data: { x: 1 } });
    s.close();
    const s2 = Store.open(path);
    expect(s2.getSetting("k")).toBe("v");
    expect(s2.observed("app")[0]).toMatchObject({ id: "u1", state: "RUNNING", data: { x: 1 } });
    s2.close();
  });
  test("observed rows patched on write are what a fresh read gives, and an array handed out never changes", () => {
    const path = join(tmp(), "evebox.db");
    const s = Store.open(path);
    const put = (id: string, state: string, data: Record<string, unknown> | null = { at: new Date(5), gone: undefined, n: [1] }) =>
      s.putObserved({ kind: "app", id, name: `n-${id}`, state, error: state === "ERROR" ? "broken" : null, data });
    put("b", "RUNNING");
    const first = s.observed("app"); // cached from here on
    for (const id of ["d", "a", "C", "_x", "10", "9", "b"]) put(id, "BOOTING");
    put("a", "ERROR", null);
    s.putObserved({ kind: "app", id: "é", name: "non-ascii", state: "RUNNING", error: null, data: {} });
    expect(first.map((o) => [o.id, o.state])).toEqual([["b", "RUNNING"]]);
    const fresh = Store.open(path);
    expect(s.observed("app")).toEqual(fresh.observed("app"));
    expect(s.observed("app").map((o) => o.id)).toEqual(["10", "9", "C", "_x", "a", "b", "d", "é"]);
    expect(s.observedOne("app", "a")).toMatchObject({ state: "ERROR", error: "broken", data: null });
    expect(s.observedOne("app", "b")!.data).toEqual({ at: new Date(5).toISOString(), n: [1] });
    expect(s.observedOne("app", "é")!.name).toBe("non-ascii");
    expect(s.observedOne("app", "zz")).toBeUndefined();
    s.deleteObserved("app", "b");
    expect(s.observed("app").map((o) => o.id)).toEqual(fresh.observed("app").filter((o) => o.id !== "b").map((o) => o.id));
    fresh.close();
    s.close();
  });

  test("an event is stored as given (its id returned, data through JSON, nulls kept)", () => {
    const s = Store.open(join(tmp(), "evebox.db"));
    const a = s.addEvent({ ts: new Date(1000), type: "app.state", objectKind: "app", objectId: "u1", message: "m1", data: { state: "RUNNING", at: new Date(0), gone: undefined } });
    const b = s.addEvent({ ts: new Date(2000), type: "config.accepted", objectKind: null, objectId: null, message: "m2", data: null });
    expect(b).toBe(a + 1);
    expect(s.recentEvents(2)).toEqual([
      { id: b, ts: new Date(2000), type: "config.accepted", objectKind: null, objectId: null, message: "m2", data: null },
      { id: a, ts: new Date(1000), type: "app.state", objectKind: "app", objectId: "u1", message: "m1", data: { state: "RUNNING", at: new Date(0).toISOString() } },
    ]);
    s.close();
  });

  test("the audit trail is bounded in bytes, oldest first, and counts what it dropped", () => {
    const path = join(tmp(), "evebox.db");
    const s = Store.open(path, { ...defaultLimits, auditBytes: 10_000 });
    const add = (i: number) => s.addAudit({ ts: new Date(1000 + i), user: "olga", token: null, client: "192.0.2.1", action: "POST /api/v1/apps/{uuid}/{command}", object: `app ${i}`, result: "ok", status: 200, detail: "x".repeat(100) });
    for (let i = 0; i < 200; i++) add(i);
    const kept = s.auditRecords({ limit: 1000 });
    const bytes = (s.sqlite.query("SELECT SUM(size) AS n FROM audit").get() as { n: number }).n;
    expect(bytes).toBeLessThanOrEqual(10_000);
    expect(kept.length + s.auditLost()).toBe(200);
    expect(s.auditLost()).toBeGreaterThan(0);
    expect(kept.at(-1)!.object).toBe("app 199");
    expect(kept[0]!.object).toBe(`app ${s.auditLost()}`);
    expect(s.auditRecords({ limit: 5, since: new Date(1000 + 195) }).map((r) => r.object)).toEqual(["app 195", "app 196", "app 197", "app 198", "app 199"]);
    s.close();
    // The count survives a restart, and trimming goes on from the size on disk.
    const again = Store.open(path, { ...defaultLimits, auditBytes: 10_000 });
    const lost = again.auditLost();
    expect(lost).toBeGreaterThan(0);
    for (let i = 200; i < 300; i++) again.addAudit({ ts: new Date(1000 + i), user: null, token: null, client: "c", action: "login", object: null, result: "refused", status: 401, detail: "x".repeat(100) });
    expect(again.auditRecords({ limit: 1000 }).length + again.auditLost()).toBe(300);
    again.close();
  });
});
