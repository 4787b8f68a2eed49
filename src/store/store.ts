import { Database, type Statement } from "bun:sqlite";
import { chmodSync, closeSync, existsSync, openSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { and, desc, eq, sql } from "drizzle-orm";
import { type BunSQLiteDatabase, drizzle } from "drizzle-orm/bun-sqlite";
import { MetadataState } from "./metadata-state.ts";
import { DEFAULT_MAX_OBJECTS, MetricsHistory } from "./metrics-history.ts";
import { applyMigrations } from "./migrate.ts";
import * as schema from "./schema.ts";
import type { ConfigSummary } from "./schema.ts";

export interface StoreLimits {
  /** Rows kept per bounded table; the oldest go first. */
  events: number;
  logs: number;
  /** Objects (the device, apps) the metrics history keeps; a sample of one more is dropped and counted. */
  metricObjects: number;
  /** Config versions kept (the current one is never removed). */
  configVersions: number;
  /** Bytes of audit records kept (their text, roughly); the oldest go first, and the loss is counted. 16 MiB when absent. */
  auditBytes?: number;
}

export const defaultLimits: StoreLimits = { events: 10_000, logs: 100_000, metricObjects: DEFAULT_MAX_OBJECTS, configVersions: 500, auditBytes: 16 * 1024 * 1024 };

export type ConfigVersionRow = typeof schema.configVersions.$inferSelect;
export type NewConfigVersion = typeof schema.configVersions.$inferInsert;
export type ObservedRow = typeof schema.observedObjects.$inferSelect;
export type EventRow = typeof schema.events.$inferSelect;
export type LogRow = typeof schema.logs.$inferSelect;
export type ApiTokenRow = typeof schema.apiTokens.$inferSelect;
export type SessionRow = typeof schema.sessions.$inferSelect;
export type UserRow = typeof schema.users.$inferSelect;
export type AuditRow = typeof schema.audit.$inferSelect;
export type NewAudit = Omit<typeof schema.audit.$inferInsert, "id" | "size">;
/** A user as the API shows it: no hashes, no secrets. */
export type UserView = { name: string; role: UserRow["role"]; createdAt: Date; updatedAt: Date; totp: boolean; recoveryCodesLeft: number };
export const AUDIT_LOST_KEY = "audit_lost";

/** The device's SQLite store. One per process; passed to whoever needs it. */
/** `make()`, called once, at the first call. */
function once<T>(make: () => T): () => T {
  let v: T | undefined;
  return () => (v ??= make());
}

/** The current config version, as `Store.current()` answers it. */
export interface CurrentConfig {
  version: number;
  hash: string;
  source: "local" | "controller";
  receivedAt: Date;
  summary: ConfigSummary | null;
  since: Date;
}

export class Store {
  readonly db: BunSQLiteDatabase<typeof schema>;
  /** The metrics history of the graphs (bounded by objects, see metrics-history.ts). */
  readonly history: MetricsHistory;
  /** What the apps' metadata server keeps across restarts (patch envelope use, the apps' custom statuses). */
  readonly metadata: MetadataState;
  private readonly q;
  // Read-through caches for what every status request reads. This process is the store's only
  // writer (a second evebox on the same data directory is refused), so write-through keeps them exact.
  private readonly settingsCache = new Map<string, string | undefined>();
  private currentCache: ReturnType<Store["loadCurrent"]> | undefined = undefined;
  private readonly observedCache = new Map<string, ObservedRow[]>();
  /** Counts writes of what GET /status shows (settings, the current config, observed objects): its cache key. */
  changes = 0;
  /**
   * Counts writes of what a request's principal is made of (users, sessions, tokens, settings): the key of the
   * principals Auth remembers per credential. A token's last use is not counted (it is not part of a principal).
   */
  authChanges = 0;
  private readonly tokenCache = new Map<string, ApiTokenRow | undefined>();
  private readonly sessionCache = new Map<string, SessionRow | undefined>();
  private readonly userCache = new Map<string, UserRow | undefined>();
  /** Bytes of audit records held, read once at open and kept in step by addAudit. */
  private auditSize: number | null = null;

  private constructor(
    readonly sqlite: Database,
    readonly path: string,
    readonly limits: StoreLimits,
  ) {
    this.db = drizzle(sqlite, { schema });
    this.history = new MetricsHistory(sqlite, limits.metricObjects);
    this.metadata = new MetadataState(sqlite);
    const db = this.db;
    const p = sql.placeholder;
    // Hot paths (every request, every status) are prepared once, each at its first use: building them with drizzle's
    // query builder at open cost ~4–6 ms of a start's CPU before the console's first answer (issue 17).
    this.q = {
      sessionByHash: once(() => db.select().from(schema.sessions).where(eq(schema.sessions.idHash, p("h"))).prepare()),
      tokenById: once(() => db.select().from(schema.apiTokens).where(eq(schema.apiTokens.id, p("id"))).prepare()),
      // These two are read before the console's first answer (the instance id, the device's name, the current
      // config): plain SQL, so that drizzle's query builder is not first run (and compiled) then.
      setting: once(() => sqlite.query<{ value: string }, { k: string }>("SELECT value FROM settings WHERE key = $k")),
      current: once(() =>
        sqlite.query<{ version: number; hash: string; source: CurrentConfig["source"]; receivedAt: number; summary: string | null; since: number }, []>(
          "SELECT v.version, v.hash, v.source, v.received_at AS receivedAt, v.summary, c.since FROM current_config c " +
            "JOIN config_versions v ON v.version = c.version WHERE c.id = 1",
        ),
      ),
      observedByKind: once(() => db.select().from(schema.observedObjects).where(eq(schema.observedObjects.kind, p("kind"))).prepare()),
      // Every reconcile pass writes each object's state: one statement prepared once (drizzle's builder built the
      // SQL again on every call, ~70 µs of the ~80 a write took).
      putObserved: sqlite.query(
        "INSERT INTO observed_objects (kind, id, name, state, error, data, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) " +
          "ON CONFLICT (kind, id) DO UPDATE SET name = ?3, state = ?4, error = ?5, data = ?6, updated_at = ?7",
      ),
      // Every published event (a state change of each object in a pass, …): prepared once, like putObserved.
      addEvent: sqlite.query<{ id: number }, [number, string, string | null, string | null, string, string | null]>(
        "INSERT INTO events (ts, type, object_kind, object_id, message, data) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
      ),
    };
  }

  static open(path: string, limits: StoreLimits = defaultLimits): Store {
    // The store holds the password hash and the sessions: owner only. SQLite gives its -wal and -shm the
    // database's mode when it creates them; ones left by an older evebox are tightened too.
    if (path !== ":memory:") closeSync(openSync(path, "a", 0o600));
    const sqlite = new Database(path, { create: true, strict: true });
    const finalizeStatements = trackStatements(sqlite);
    try {
      if (path !== ":memory:") chmodPrivate(path);
      sqlite.run("PRAGMA journal_mode = WAL");
      sqlite.run("PRAGMA synchronous = NORMAL");
      sqlite.run("PRAGMA foreign_keys = ON");
      sqlite.run("PRAGMA busy_timeout = 5000");
      applyMigrations(sqlite, path);
      if (path !== ":memory:") for (const f of [`${path}-wal`, `${path}-shm`]) if (existsSync(f)) chmodPrivate(f);
    } catch (e) {
      finalizeStatements();
      sqlite.close();
      throw e;
    }
    const store = new Store(sqlite, path, limits);
    store.finalizeStatements = finalizeStatements;
    return store;
  }

  private finalizeStatements: () => void = () => {};

  /** Closes the database for real: its files are closed (the WAL checkpointed) when this returns. */
  close(): void {
    this.finalizeStatements();
    this.sqlite.close();
    // A statement the collector found dead (its WeakRef cleared) but has not swept yet is still prepared, so
    // SQLite only marks the connection for closing and keeps its files open until that statement's destructor
    // runs (a reboot then found /persist busy with evebox.db open). A synchronous full collection sweeps: the
    // statements are finalized and the connection closes. Only when a file is still open (a few ms).
    if (this.path !== ":memory:" && openFilesOf(resolve(this.path)) > 0) Bun.gc(true);
  }

  // ---- settings
  getSetting(key: string): string | undefined {
    if (this.settingsCache.has(key)) return this.settingsCache.get(key);
    const v = this.q.setting().get({ k: key })?.value;
    this.settingsCache.set(key, v);
    return v;
  }
  setSetting(key: string, value: string): void {
    this.authChanges++;
    this.changes++;
    this.settingsCache.delete(key);
    this.db
      .insert(schema.settings)
      .values({ key, value })
      .onConflictDoUpdate({ target: schema.settings.key, set: { value } })
      .run();
  }
  deleteSetting(key: string): void {
    this.authChanges++;
    this.changes++;
    this.settingsCache.delete(key);
    this.db.delete(schema.settings).where(eq(schema.settings.key, key)).run();
  }

  // ---- config versions
  /** Records a version; when `makeCurrent`, it becomes the current one in the same transaction. */
  addConfigVersion(v: Omit<NewConfigVersion, "version">, makeCurrent: boolean): number {
    return this.sqlite.transaction(() => {
      const row = this.db.insert(schema.configVersions).values(v).returning({ version: schema.configVersions.version }).get();
      if (makeCurrent) this.setCurrentVersion(row.version);
      this.pruneConfigVersions();
      return row.version;
    })();
  }

  setCurrentVersion(version: number): void {
    this.changes++;
    this.currentCache = undefined;
    const since = new Date();
    this.db
      .insert(schema.currentConfig)
      .values({ id: 1, version, since })
      .onConflictDoUpdate({ target: schema.currentConfig.id, set: { version, since } })
      .run();
  }

  current() {
    if (this.currentCache === undefined) this.currentCache = this.loadCurrent();
    return this.currentCache;
  }
  private loadCurrent(): CurrentConfig | null {
    const r = this.q.current().get();
    return r ? { ...r, receivedAt: new Date(r.receivedAt), summary: r.summary === null ? null : (JSON.parse(r.summary) as ConfigSummary), since: new Date(r.since) } : null;
  }

  currentBytes(): { version: number; bytes: Uint8Array; hash: string; source: string } | null {
    const row = this.db
      .select({
        version: schema.configVersions.version,
        bytes: schema.configVersions.bytes,
        hash: schema.configVersions.hash,
        source: schema.configVersions.source,
      })
      .from(schema.currentConfig)
      .innerJoin(schema.configVersions, eq(schema.currentConfig.version, schema.configVersions.version))
      .get();
    return row ?? null;
  }

  configVersion(version: number): ConfigVersionRow | undefined {
    return this.db.select().from(schema.configVersions).where(eq(schema.configVersions.version, version)).get();
  }

  configHistory(limit = 100, before?: number) {
    const cols = {
      version: schema.configVersions.version,
      source: schema.configVersions.source,
      author: schema.configVersions.author,
      hash: schema.configVersions.hash,
      receivedAt: schema.configVersions.receivedAt,
      status: schema.configVersions.status,
      error: schema.configVersions.error,
      note: schema.configVersions.note,
      summary: schema.configVersions.summary,
      size: sql<number>`length(${schema.configVersions.bytes})`,
    };
    const where = before ? sql`${schema.configVersions.version} < ${before}` : undefined;
    return this.db.select(cols).from(schema.configVersions).where(where).orderBy(desc(schema.configVersions.version)).limit(limit).all();
  }

  private pruneConfigVersions(): void {
    this.sqlite.run(
      `DELETE FROM config_versions WHERE version NOT IN (SELECT version FROM current_config)
         AND version <= (SELECT MAX(version) FROM config_versions) - ?`,
      [this.limits.configVersions],
    );
  }

  // ---- sessions and tokens
  // Every authenticated request looks its session up: a write-through cache (one evebox per store) keeps that
  // off SQLite; bounded, since unknown cookies are cached as misses too.
  addSession(idHash: string, expiresAt: Date, client: string | null, user: string): void {
    this.authChanges++;
    this.sessionCache.delete(idHash);
    this.db.insert(schema.sessions).values({ idHash, createdAt: new Date(), expiresAt, client, user }).run();
  }
  /** Ends every session of `user` but `keep`; answers how many ended. */
  deleteSessionsOf(user: string, keep: string | null = null): number {
    this.authChanges++;
    this.sessionCache.clear();
    return this.sqlite.run("DELETE FROM sessions WHERE user = ? AND id_hash IS NOT ?", [user, keep]).changes;
  }
  session(idHash: string): SessionRow | undefined {
    if (this.sessionCache.has(idHash)) return this.sessionCache.get(idHash);
    const row = this.q.sessionByHash().get({ h: idHash });
    if (this.sessionCache.size > 1000) this.sessionCache.clear();
    this.sessionCache.set(idHash, row);
    return row;
  }
  deleteSession(idHash: string): void {
    this.authChanges++;
    this.sessionCache.delete(idHash);
    this.db.delete(schema.sessions).where(eq(schema.sessions.idHash, idHash)).run();
  }
  /** Ends every session but `keep` (a password change keeps the browser that made it). */
  deleteSessionsExcept(keep: string | null): void {
    this.authChanges++;
    this.sessionCache.clear();
    if (keep === null) this.sqlite.run("DELETE FROM sessions");
    else this.sqlite.run("DELETE FROM sessions WHERE id_hash <> ?", [keep]);
  }
  deleteExpiredSessions(now = new Date()): void {
    this.authChanges++;
    this.sessionCache.clear();
    this.db.delete(schema.sessions).where(sql`${schema.sessions.expiresAt} < ${now.getTime()}`).run();
  }
  addToken(row: typeof schema.apiTokens.$inferInsert): void {
    this.authChanges++;
    this.tokenCache.delete(row.id);
    this.db.insert(schema.apiTokens).values(row).run();
  }
  token(id: string): ApiTokenRow | undefined {
    if (this.tokenCache.has(id)) return this.tokenCache.get(id);
    const row = this.q.tokenById().get({ id });
    if (this.tokenCache.size > 1000) this.tokenCache.clear();
    this.tokenCache.set(id, row);
    return row;
  }
  /** The tokens (no secrets): all, or one user's. */
  tokens(user?: string): Omit<ApiTokenRow, "secretHash">[] {
    const t = schema.apiTokens;
    const q = this.db
      .select({ id: t.id, name: t.name, createdAt: t.createdAt, lastUsedAt: t.lastUsedAt, user: t.user, role: t.role, expiresAt: t.expiresAt })
      .from(t);
    return (user === undefined ? q : q.where(eq(t.user, user))).orderBy(t.createdAt).all();
  }
  deleteTokensOf(user: string): number {
    this.authChanges++;
    this.tokenCache.clear();
    return this.sqlite.run("DELETE FROM api_tokens WHERE user = ?", [user]).changes;
  }

  // ---- users (a write-through cache: every request looks its user up)
  user(name: string): UserRow | undefined {
    if (this.userCache.has(name)) return this.userCache.get(name);
    const row = this.db.select().from(schema.users).where(eq(schema.users.name, name)).get();
    if (this.userCache.size > 1000) this.userCache.clear();
    this.userCache.set(name, row);
    return row;
  }
  users(): UserView[] {
    return this.db.select().from(schema.users).orderBy(schema.users.name).all().map(userView);
  }
  countUsers(role?: UserRow["role"]): number {
    const r = role
      ? this.sqlite.query("SELECT COUNT(*) AS n FROM users WHERE role = ?").get(role)
      : this.sqlite.query("SELECT COUNT(*) AS n FROM users").get();
    return (r as { n: number }).n;
  }
  addUser(row: Omit<typeof schema.users.$inferInsert, "createdAt" | "updatedAt">): void {
    this.authChanges++;
    this.userCache.delete(row.name);
    const now = new Date();
    this.db.insert(schema.users).values({ ...row, createdAt: now, updatedAt: now }).run();
  }
  updateUser(name: string, set: Partial<Omit<UserRow, "name" | "createdAt">>): void {
    this.authChanges++;
    this.userCache.delete(name);
    this.db.update(schema.users).set({ ...set, updatedAt: new Date() }).where(eq(schema.users.name, name)).run();
  }
  /** Removes a user with their sessions and tokens, in one transaction. */
  deleteUser(name: string): boolean {
    return this.sqlite.transaction(() => {
      this.authChanges++;
      this.userCache.delete(name);
      this.deleteSessionsOf(name);
      this.deleteTokensOf(name);
      return this.sqlite.run("DELETE FROM users WHERE name = ?", [name]).changes > 0;
    })();
  }
  /** Runs `f` in one transaction (a check and the change it guards, e.g. "not the last admin"). */
  transaction<T>(f: () => T): T {
    return this.sqlite.transaction(f).immediate();
  }

  // ---- the audit trail: appended only; bounded in bytes, oldest first, the loss counted
  addAudit(a: NewAudit): void {
    const size = 64 + [a.user, a.token, a.client, a.action, a.object, a.result, a.detail].reduce((n, s) => n + (s?.length ?? 0), 0);
    this.auditSize ??= (this.sqlite.query("SELECT COALESCE(SUM(size), 0) AS n FROM audit").get() as { n: number }).n;
    this.db.insert(schema.audit).values({ ...a, size }).run();
    this.auditSize += size;
    if (this.auditSize > this.auditBudget()) this.trimAudit();
  }
  /** Drops the oldest records down to 90% of the budget (so a full trail trims now and then, not on every write). */
  private trimAudit(): void {
    const goal = Math.floor(this.auditBudget() * 0.9);
    this.sqlite.transaction(() => {
      const rows = this.sqlite.query("SELECT id, size FROM audit ORDER BY id").all() as { id: number; size: number }[];
      let size = this.auditSize!;
      let lastId = 0;
      let dropped = 0;
      for (const r of rows) {
        if (size <= goal) break;
        size -= r.size;
        lastId = r.id;
        dropped++;
      }
      if (dropped === 0) return;
      this.sqlite.run("DELETE FROM audit WHERE id <= ?", [lastId]);
      this.setSetting(AUDIT_LOST_KEY, String(this.auditLost() + dropped));
      this.auditSize = size;
    })();
  }
  private auditBudget(): number {
    return this.limits.auditBytes ?? 16 * 1024 * 1024;
  }
  /** Records dropped to keep the trail within its budget, since the device was set up. */
  auditLost(): number {
    return Number(this.getSetting(AUDIT_LOST_KEY) ?? 0);
  }
  /** Records after `since` (a time) and id `after`, oldest first, filtered. */
  auditRecords(f: { since?: Date; after?: number; user?: string; action?: string; result?: string; limit: number }): AuditRow[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (f.since) (where.push("ts >= ?"), args.push(f.since.getTime()));
    if (f.after) (where.push("id > ?"), args.push(f.after));
    if (f.user) (where.push("(user = ? OR token LIKE ?)"), args.push(f.user, `%(${f.user})`));
    if (f.action) (where.push("instr(action, ?) > 0"), args.push(f.action));
    if (f.result) (where.push("result = ?"), args.push(f.result));
    args.push(f.limit);
    const rows = this.sqlite
      .query(`SELECT * FROM audit ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY id LIMIT ?`)
      .all(...args) as Record<string, unknown>[];
    return rows.map((r) => ({
      id: r.id as number,
      ts: new Date(r.ts as number),
      user: r.user as string | null,
      token: r.token as string | null,
      client: r.client as string,
      action: r.action as string,
      object: r.object as string | null,
      result: r.result as string,
      status: r.status as number,
      detail: r.detail as string | null,
      size: r.size as number,
    }));
  }
  touchToken(id: string, at = new Date()): void {
    this.tokenCache.delete(id);
    this.db.update(schema.apiTokens).set({ lastUsedAt: at }).where(eq(schema.apiTokens.id, id)).run();
  }
  deleteToken(id: string): boolean {
    this.authChanges++;
    this.tokenCache.delete(id);
    return this.sqlite.run("DELETE FROM api_tokens WHERE id = ?", [id]).changes > 0;
  }

  // ---- observed objects
  // A pass writes the state of every object and reads the previous one first: the cached rows of a kind are patched
  // on a write rather than read again (which made a pass over n objects cost n full reads: 2 s at 1,000 apps).
  // Copy on write, so an array handed out never changes; in SQLite's order (by id, the primary key's index; ids
  // are ASCII: UUIDs).
  putObserved(o: Omit<typeof schema.observedObjects.$inferInsert, "updatedAt">): void {
    this.changes++;
    const updatedAt = new Date();
    if (o.name === undefined || o.error === undefined || o.data === undefined) {
      // drizzle leaves a column it is given no value for as it was: its own statement keeps that meaning.
      this.observedCache.delete(o.kind);
      const row = { ...o, updatedAt };
      this.db
        .insert(schema.observedObjects)
        .values(row)
        .onConflictDoUpdate({ target: [schema.observedObjects.kind, schema.observedObjects.id], set: row })
        .run();
      return;
    }
    const data = o.data === null ? null : JSON.stringify(o.data);
    this.q.putObserved.run(o.kind, o.id, o.name, o.state, o.error, data, updatedAt.getTime());
    const rows = this.observedCache.get(o.kind);
    if (!rows) return;
    if (!ASCII.test(o.id)) return void this.observedCache.delete(o.kind); // JS and SQLite order agree on ASCII
    // The row as a read would give it: data through JSON and back (dates become strings, undefined goes).
    const row: ObservedRow = { kind: o.kind, id: o.id, name: o.name, state: o.state, error: o.error, data: data === null ? null : JSON.parse(data), updatedAt };
    const at = indexById(rows, o.id);
    const next = rows.slice();
    if (next[at]?.id === o.id) next[at] = row;
    else next.splice(at, 0, row);
    this.observedCache.set(o.kind, next);
  }
  /** The rows of one kind. Callers must not mutate them (they are shared from the cache). */
  observed(kind: string): ObservedRow[] {
    let rows = this.observedCache.get(kind);
    if (!rows) {
      rows = this.q.observedByKind().all({ kind });
      this.observedCache.set(kind, rows);
    }
    return rows;
  }
  /** One row of a kind, by id (from the cached rows). */
  observedOne(kind: string, id: string): ObservedRow | undefined {
    const rows = this.observed(kind);
    if (!ASCII.test(id)) return rows.find((o) => o.id === id);
    const r = rows[indexById(rows, id)];
    return r?.id === id ? r : undefined;
  }
  deleteObserved(kind: string, id: string): void {
    this.changes++;
    this.observedCache.delete(kind);
    this.db.delete(schema.observedObjects).where(and(eq(schema.observedObjects.kind, kind), eq(schema.observedObjects.id, id))).run();
  }

  // ---- bounded journals
  addEvent(e: Omit<typeof schema.events.$inferInsert, "id">): number {
    const id =
      e.objectKind === undefined || e.objectId === undefined || e.data === undefined
        ? this.db.insert(schema.events).values(e).returning({ id: schema.events.id }).get().id
        : this.q.addEvent.get(e.ts.getTime(), e.type, e.objectKind, e.objectId, e.message, e.data === null ? null : JSON.stringify(e.data))!.id;
    if (id % 100 === 0) this.trim("events", this.limits.events);
    return id;
  }
  /** The newest events older than `before` (an id), but those whose type matches one of the `except` LIKE patterns. */
  eventsExcept(except: readonly string[], limit = 100, before?: number): EventRow[] {
    const not = except.map((p) => sql`${schema.events.type} NOT LIKE ${p}`);
    const where = and(...not, before ? sql`${schema.events.id} < ${before}` : undefined);
    return this.db.select().from(schema.events).where(where).orderBy(desc(schema.events.id)).limit(limit).all();
  }
  recentEvents(limit = 100): EventRow[] {
    return this.db.select().from(schema.events).orderBy(desc(schema.events.id)).limit(limit).all();
  }
  /** Which of the device's own lines (not apps') are kept (debug.default.loglevel); null keeps every line. */
  keepLevel: ((level: string) => boolean) | null = null;

  addLogs(rows: Omit<typeof schema.logs.$inferInsert, "id">[]): void {
    const keep = this.keepLevel;
    if (keep) rows = rows.filter((r) => r.source === "app" || keep(r.level ?? "info"));
    if (rows.length === 0) return;
    this.sqlite.transaction(() => {
      for (let i = 0; i < rows.length; i += 200) this.db.insert(schema.logs).values(rows.slice(i, i + 200)).run();
    })();
    this.trim("logs", this.limits.logs);
  }
  logsFor(source: string, objectId: string | null, limit = 500, afterId = 0): LogRow[] {
    const where = objectId === null
      ? and(eq(schema.logs.source, source), sql`${schema.logs.id} > ${afterId}`)
      : and(eq(schema.logs.source, source), eq(schema.logs.objectId, objectId), sql`${schema.logs.id} > ${afterId}`);
    return this.db.select().from(schema.logs).where(where).orderBy(desc(schema.logs.id)).limit(limit).all().reverse();
  }
  count(table: "events" | "logs" | "config_versions"): number {
    return (this.sqlite.query(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
  }

  /** Keeps the newest `keep` rows of a journal table. Ids are monotonic, so this is one range delete. */
  private trim(table: "events" | "logs", keep: number): void {
    this.sqlite.run(`DELETE FROM ${table} WHERE id <= (SELECT MAX(id) FROM ${table}) - ?`, [keep]);
  }
}

export function userView(u: UserRow): UserView {
  return { name: u.name, role: u.role, createdAt: u.createdAt, updatedAt: u.updatedAt, totp: !!u.totpSecret, recoveryCodesLeft: u.recoveryCodes?.length ?? 0 };
}

/** Makes a file readable and writable by its owner only (the store, its WAL and shared memory). */
export function chmodPrivate(path: string): void {
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
}

const ASCII = /^[\x00-\x7f]*$/;

/** Where `id` is, or would go, in rows sorted by id as SQLite's BINARY collation sorts them (ids are ASCII). */
function indexById(rows: readonly ObservedRow[], id: string): number {
  let lo = 0;
  let hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (rows[mid]!.id < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * bun:sqlite's close() finalizes the statements of `query()`, not those of `prepare()`, and while one of those lives
 * the database stays open behind it (sqlite3_close_v2): its files held, the WAL not checkpointed — at a reboot,
 * PERSIST could not be unmounted. drizzle prepares a statement per query, so every one is tracked (weakly: the
 * ones no longer used go with the garbage) and finalized before the close.
 */
/** How many of this process's file descriptors are the database's files (the file, -wal, -shm). */
export function openFilesOf(path: string): number {
  let n = 0;
  let fds: string[];
  try {
    fds = readdirSync("/proc/self/fd");
  } catch {
    return 0;
  }
  for (const fd of fds) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target === path || target === `${path}-wal` || target === `${path}-shm`) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

function trackStatements(db: Database): () => void {
  const live = new Set<WeakRef<Statement>>();
  const prepare = db.prepare.bind(db);
  let sinceSweep = 0;
  db.prepare = ((...args: Parameters<typeof prepare>) => {
    const st = prepare(...args);
    live.add(new WeakRef(st));
    if (++sinceSweep >= 1024) {
      sinceSweep = 0;
      for (const r of live) if (r.deref() === undefined) live.delete(r);
    }
    return st;
  }) as typeof db.prepare;
  return () => {
    for (const r of live) r.deref()?.finalize();
    live.clear();
  };
}
