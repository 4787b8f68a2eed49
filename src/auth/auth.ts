import { timingSafeEqual } from "node:crypto";
import { chmodSync, rmSync, writeFileSync } from "node:fs";
import { backoffDelay } from "../lib/backoff.ts";
import { DomainError } from "../model/errors.ts";
import { isRole, lowerRole, type Role, roleAtLeast } from "../model/roles.ts";
import { type Store, type UserView, userView } from "../store/store.ts";
import { enrolment, newRecoveryCodes, newTotpSecret, recoveryHash, totpStep } from "./totp.ts";

/** The setting naming the user made at setup (whom a login without a user name means). */
const SETUP_ADMIN_KEY = "setup_admin";
const REQUIRE_TOTP_KEY = "require_totp_for_admins";
export const DEFAULT_ADMIN = "admin";
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
export const MIN_PASSWORD_LENGTH = 8;
/** How long a principal found for a credential is kept at most (also how often a token's last use is written). */
const RECALL_MS = 60_000;
const RECALL_MAX = 1000;

/** A refused setup, login, password or token request; `too-many` ones say when to try again. */
export class AuthError extends DomainError {
  constructor(
    kind: "invalid" | "unauthorized" | "forbidden" | "conflict" | "too-many",
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(kind, message, { retryAfterSeconds });
  }
}

/** Who is asking: a user by their session or one of their tokens (with the role that counts now), or the local socket. */
export type Principal =
  | { kind: "session"; idHash: string; user: string; role: Role; mustEnrolTotp?: boolean }
  | { kind: "token"; id: string; name: string; user: string; role: Role }
  | { kind: "local-socket"; role: "admin" };

/** The principal's user, if it has one (the local socket has none). */
export function userOf(p: Principal | null): string | null {
  return p && p.kind !== "local-socket" ? p.user : null;
}

function randomSecret(bytes = 32): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("base64url");
}

function sha256(s: string): string {
  return new Bun.CryptoHasher("sha256").update(s).digest("hex");
}

function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  if (x.length !== y.length) return false;
  return timingSafeEqual(x, y);
}

/** Tunables of the password throttle; the defaults are what a device runs. */
export interface ThrottleLimits {
  /** Failures a client may make before it has to wait. */
  perClientFree: number;
  /** Failures all clients together may make before every client has to wait (many source addresses). */
  globalFree: number;
  /** The longest wait, for a client and for everyone. */
  maxDelayMs: number;
  /** A record with no failure for this long is forgotten. */
  forgetAfterMs: number;
  /** Password hashes computed at once (argon2id is costly; the device has few cores), and how many may wait. */
  concurrentHashes: number;
  waitingHashes: number;
}

export const DEFAULT_THROTTLE: ThrottleLimits = {
  perClientFree: 5,
  globalFree: 30,
  maxDelayMs: 5 * 60_000,
  forgetAfterMs: 60 * 60_000,
  concurrentHashes: 2,
  waitingHashes: 16,
};

/** The budget key of a client address: IPv4 as is, IPv6 by its /64 (one host owns a whole /64 by SLAAC). */
export function clientKey(address: string): string {
  const a = address.toLowerCase().replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, "");
  if (!a.includes(":")) return a;
  const [head, tail = ""] = a.split("%")[0]!.split("::") as [string, string?];
  const h = head ? head.split(":") : [];
  const t = a.includes("::") && tail ? tail.split(":") : [];
  const groups = a.includes("::") ? [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill("0"), ...t] : h;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}

type FailureRecord = { count: number; until: number; last: number };

/**
 * Slows password guessing: each attempt is counted before the password is checked (so parallel guesses all count),
 * per client and for all clients together. The first few failures are free, then each further attempt doubles the
 * wait (capped); a success clears the client's record and the global one.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, FailureRecord>();
  private readonly global: FailureRecord = { count: 0, until: 0, last: 0 };
  constructor(
    private readonly limits: ThrottleLimits = DEFAULT_THROTTLE,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Refuses (429) while the client or everyone has to wait; otherwise counts this attempt as a failure up front.
   * The caller calls `succeed` when the password was right. The trusted local socket has no global budget.
   */
  attempt(client: string): void {
    const key = clientKey(client);
    const now = this.now();
    const own = this.record(key, now);
    const global = key === "local-socket" ? null : this.fresh(this.global, now);
    if (own.until > now) {
      throw new AuthError("too-many", "too many failed attempts from this client; wait before trying again", Math.ceil((own.until - now) / 1000));
    }
    if (global && global.until > now) {
      throw new AuthError("too-many", "too many failed attempts on this device (from several clients); wait before trying again", Math.ceil((global.until - now) / 1000));
    }
    this.count(own, this.limits.perClientFree, now);
    if (global) this.count(global, this.limits.globalFree, now);
  }

  succeed(client: string): void {
    this.failures.delete(clientKey(client));
    Object.assign(this.global, { count: 0, until: 0, last: 0 });
  }

  private count(r: FailureRecord, free: number, now: number): void {
    r.count++;
    r.last = now;
    if (r.count > free) r.until = now + backoffDelay({ baseMs: 1000, maxMs: this.limits.maxDelayMs }, r.count - free);
  }

  private fresh(r: FailureRecord, now: number): FailureRecord {
    if (r.count > 0 && now - r.last > this.limits.forgetAfterMs && r.until <= now) Object.assign(r, { count: 0, until: 0, last: 0 });
    return r;
  }

  private record(key: string, now: number): FailureRecord {
    let r = this.failures.get(key);
    if (r) return this.fresh(r, now);
    r = { count: 0, until: 0, last: now };
    this.failures.set(key, r);
    // Bounded: the oldest record goes first (an attacker with many addresses meets the global budget anyway).
    if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value!);
    return r;
  }
}

/** At most `concurrent` password hashes at once, `waiting` more queued; beyond that the attempt is refused. */
export class HashGate {
  private running = 0;
  private readonly queue: (() => void)[] = [];
  constructor(
    private readonly concurrent: number,
    private readonly waiting: number,
  ) {}

  async run<T>(f: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrent) {
      if (this.queue.length >= this.waiting) throw new AuthError("too-many", "too many password checks at once; try again in a moment", 1);
      await new Promise<void>((r) => this.queue.push(r));
    } else this.running++;
    try {
      return await f();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.running--;
    }
  }
}

/** A login's answer: the session's secret (for the cookie) and who it is. */
export interface LoginResult {
  secret: string;
  user: string;
  role: Role;
}

/**
 * The console's credentials: users (each with a role and a password, argon2id), the one-time setup token, sessions,
 * API tokens (each a user's, with a role no higher than theirs, maybe expiring), and the second factor (TOTP).
 */
export class Auth {
  private setupToken: string | null = null;
  /** Set while the one accepted setup hashes its password: a parallel setup is refused, not raced. */
  private settingUp = false;
  readonly throttle: LoginThrottle;
  private readonly hashes: HashGate;
  /** A hash to verify against for an unknown user name, so a wrong name costs what a wrong password does. */
  private dummyHash: Promise<string> | null = null;

  constructor(
    private readonly store: Store,
    private readonly setupTokenPath: string,
    limits: ThrottleLimits = DEFAULT_THROTTLE,
    /** Shown in authenticator apps as the TOTP issuer. */
    private readonly issuer: () => string = () => "evebox",
  ) {
    this.throttle = new LoginThrottle(limits);
    this.hashes = new HashGate(limits.concurrentHashes, limits.waitingHashes);
  }

  isSetUp(): boolean {
    return this.store.countUsers() > 0;
  }

  /** Who `POST /login` means when it names no user: the admin made at setup. */
  setupAdmin(): string {
    return this.store.getSetting(SETUP_ADMIN_KEY) ?? DEFAULT_ADMIN;
  }

  /** When no user exists yet, makes a one-time setup token and writes it (mode 0600). */
  prepareSetup(): string | null {
    if (this.isSetUp()) {
      rmSync(this.setupTokenPath, { force: true });
      return null;
    }
    this.setupToken = randomSecret(24);
    rmSync(this.setupTokenPath, { force: true });
    writeFileSync(this.setupTokenPath, this.setupToken + "\n", { mode: 0o600 });
    chmodSync(this.setupTokenPath, 0o600);
    return this.setupToken;
  }

  /** Makes the first user, an admin (named `user`, "admin" by default), with the setup token; starts their session. */
  async setup(token: unknown, password: unknown, client: string, user: unknown = DEFAULT_ADMIN): Promise<LoginResult> {
    if (this.isSetUp()) throw new AuthError("conflict", "the admin password is already set; log in instead");
    if (this.settingUp) throw new AuthError("conflict", "the admin password is being set by another request; log in once it is done");
    checkUserName(user);
    checkPassword(password);
    this.throttle.attempt(client);
    if (typeof token !== "string" || this.setupToken === null || !constantTimeEqual(token.trim(), this.setupToken)) {
      throw new AuthError("forbidden", "the setup token is wrong: use the one evebox printed at start (also in run/setup-token)");
    }
    // The token is taken before the first await: of parallel setups with the right token exactly one goes on.
    const taken = this.setupToken;
    this.setupToken = null;
    this.settingUp = true;
    try {
      const hash = await this.hash(password);
      this.store.transaction(() => {
        this.store.addUser({ name: user, role: "admin", passwordHash: hash });
        this.store.setSetting(SETUP_ADMIN_KEY, user);
      });
    } catch (e) {
      this.setupToken = taken; // not set (busy, a store fault): the token still works
      throw e;
    } finally {
      this.settingUp = false;
    }
    rmSync(this.setupTokenPath, { force: true });
    this.throttle.succeed(client);
    return { secret: this.newSession(client, user), user, role: "admin" };
  }

  /**
   * Checks a user's password, and their second factor when they have one (a TOTP code or a recovery code), throttled
   * per client: each attempt counts before anything is checked, a wrong code as a wrong password. `user` defaults to
   * the setup admin. A right password without the code it needs is refused with `totpRequired`.
   */
  async login(input: { user?: string; password: unknown; totp?: string }, client: string): Promise<LoginResult> {
    if (!this.isSetUp()) throw new AuthError("conflict", "evebox is not set up yet: open the setup URL it printed at start");
    const name = input.user ?? this.setupAdmin();
    this.throttle.attempt(client);
    const row = typeof name === "string" ? this.store.user(name) : undefined;
    const right = await this.verify(input.password, row?.passwordHash ?? (await this.dummy()));
    if (!row || !right) throw new AuthError("unauthorized", input.user === undefined ? "wrong password" : "wrong user name or password");
    if (row.totpSecret) {
      if (!input.totp) throw new DomainError("unauthorized", "this user has a second factor: send the code from the authenticator app (or a recovery code) as totp", { totpRequired: true });
      if (!this.checkSecondFactor(row.name, input.totp)) throw new DomainError("unauthorized", "wrong or already used second-factor code", { totpRequired: true });
    }
    this.throttle.succeed(client);
    return { secret: this.newSession(client, row.name), user: row.name, role: row.role };
  }

  /** A TOTP code (each good once) or an unused recovery code (then used up). */
  private checkSecondFactor(user: string, code: string): boolean {
    const row = this.store.user(user);
    if (!row?.totpSecret) return false;
    const c = code.trim();
    const step = totpStep(row.totpSecret, c, row.totpLastStep ?? null);
    if (step !== null) {
      this.store.updateUser(user, { totpLastStep: step });
      return true;
    }
    const h = recoveryHash(c);
    const left = row.recoveryCodes ?? [];
    if (c.length >= 12 && left.includes(h)) {
      this.store.updateUser(user, { recoveryCodes: left.filter((x) => x !== h) });
      return true;
    }
    return false;
  }

  /**
   * Changes a user's own password, throttled like a login (a wrong current password counts as a failed attempt).
   * Every other session of theirs ends (`keepSession` is the browser that asked); their API tokens stay.
   */
  async changePassword(user: string, current: unknown, next: unknown, client: string, keepSession: string | null): Promise<void> {
    checkPassword(next);
    const row = this.store.user(user);
    if (!row) throw new AuthError("conflict", "no such user (removed?)");
    this.throttle.attempt(client);
    if (!(await this.verify(current, row.passwordHash))) throw new AuthError("forbidden", "the current password is wrong");
    this.throttle.succeed(client);
    this.store.updateUser(user, { passwordHash: await this.hash(next) });
    this.store.deleteSessionsOf(user, keepSession);
  }

  // ---- users (an admin's)
  users(): UserView[] {
    return this.store.users();
  }

  async createUser(name: unknown, password: unknown, role: unknown): Promise<UserView> {
    checkUserName(name);
    checkPassword(password);
    if (!isRole(role)) throw new AuthError("invalid", "role: one of viewer, operator, admin");
    if (this.store.user(name)) throw new AuthError("conflict", `a user named ${name} exists already`);
    const hash = await this.hash(password);
    this.store.transaction(() => {
      if (this.store.user(name)) throw new AuthError("conflict", `a user named ${name} exists already`);
      this.store.addUser({ name, role, passwordHash: hash });
    });
    return userView(this.store.user(name)!);
  }

  /**
   * Changes a user's role or sets a new password. A role change or a new password ends the user's sessions at once
   * (an admin who resets their own keeps `keepSession`); a lower role lowers their tokens too (the lower role counts
   * at each request). The last admin cannot be demoted.
   */
  async updateUser(name: string, change: { role?: unknown; password?: unknown }, keepSession: string | null = null): Promise<{ user: UserView; sessionsEnded: number }> {
    if (change.role !== undefined && !isRole(change.role)) throw new AuthError("invalid", "role: one of viewer, operator, admin");
    if (change.password !== undefined) checkPassword(change.password);
    if (!this.store.user(name)) throw new DomainError("not-found", `no user named ${name}`);
    const hash = change.password !== undefined ? await this.hash(change.password) : undefined;
    const role = change.role as Role | undefined;
    const ended = this.store.transaction(() => {
      const row = this.store.user(name);
      if (!row) throw new DomainError("not-found", `no user named ${name}`);
      const roleChanges = role !== undefined && role !== row.role;
      if (roleChanges && row.role === "admin" && this.store.countUsers("admin") <= 1) {
        throw new AuthError("conflict", `${name} is the last admin: make another user an admin first`);
      }
      this.store.updateUser(name, { ...(roleChanges ? { role } : {}), ...(hash ? { passwordHash: hash } : {}) });
      return roleChanges || hash ? this.store.deleteSessionsOf(name, roleChanges ? null : keepSession) : 0;
    });
    return { user: userView(this.store.user(name)!), sessionsEnded: ended };
  }

  /** Removes a user, their sessions and their tokens at once. The last admin cannot be removed. */
  deleteUser(name: string): void {
    this.store.transaction(() => {
      const row = this.store.user(name);
      if (!row) throw new DomainError("not-found", `no user named ${name}`);
      if (row.role === "admin" && this.store.countUsers("admin") <= 1) throw new AuthError("conflict", `${name} is the last admin: make another user an admin first`);
      this.store.deleteUser(name);
    });
  }

  // ---- the second factor
  requireTotpForAdmins(): boolean {
    return this.store.getSetting(REQUIRE_TOTP_KEY) === "1";
  }

  /** Turns the requirement on or off; on only by an admin who has a second factor (else they would lock themselves in). */
  setRequireTotpForAdmins(on: boolean, by: Principal): void {
    if (on && by.kind !== "local-socket" && !this.store.user(by.user)?.totpSecret) {
      throw new AuthError("conflict", "enrol a second factor for yourself first (Profile), then require it for every admin");
    }
    this.store.setSetting(REQUIRE_TOTP_KEY, on ? "1" : "0");
  }

  /** Starts enrolment: a new secret, kept pending until a code from it is confirmed. */
  startTotp(user: string): { secret: string; uri: string; qrSvg: string } {
    const row = this.store.user(user);
    if (!row) throw new DomainError("not-found", `no user named ${user}`);
    if (row.totpSecret) throw new AuthError("conflict", "a second factor is already set: remove it first to enrol a new one");
    const secret = newTotpSecret();
    this.store.updateUser(user, { totpPending: secret });
    return enrolment(secret, user, this.issuer());
  }

  /** Confirms enrolment with a code from the app (throttled like a password); answers the recovery codes, shown once. */
  confirmTotp(user: string, code: unknown, client: string): string[] {
    const row = this.store.user(user);
    if (!row?.totpPending) throw new AuthError("conflict", "no enrolment under way: start one first");
    this.throttle.attempt(client);
    const step = typeof code === "string" ? totpStep(row.totpPending, code.trim(), null) : null;
    if (step === null) throw new AuthError("forbidden", "wrong code: check the authenticator app's clock and try the newest code");
    this.throttle.succeed(client);
    const codes = newRecoveryCodes();
    this.store.updateUser(user, { totpSecret: row.totpPending, totpPending: null, totpLastStep: step, recoveryCodes: codes.map(recoveryHash) });
    return codes;
  }

  /** Removes a user's second factor: their own with their password; an admin's reset of another's needs none. */
  async removeTotp(user: string, password: unknown | null, client: string): Promise<void> {
    const row = this.store.user(user);
    if (!row) throw new DomainError("not-found", `no user named ${user}`);
    if (password !== null) {
      this.throttle.attempt(client);
      if (!(await this.verify(password, row.passwordHash))) throw new AuthError("forbidden", "the password is wrong");
      this.throttle.succeed(client);
    }
    this.store.updateUser(user, { totpSecret: null, totpPending: null, totpLastStep: null, recoveryCodes: null });
  }

  // ---- sessions
  private async verify(password: unknown, hash: string): Promise<boolean> {
    if (typeof password !== "string" || password.length > 1024) return false;
    return this.hashes.run(() => Bun.password.verify(password, hash));
  }

  private hash(password: string): Promise<string> {
    return this.hashes.run(() => Bun.password.hash(password, { algorithm: "argon2id" }));
  }

  private dummy(): Promise<string> {
    return (this.dummyHash ??= Bun.password.hash(randomSecret(), { algorithm: "argon2id" }));
  }

  private newSession(client: string, user: string): string {
    const secret = randomSecret();
    this.store.deleteExpiredSessions();
    this.store.addSession(sha256(secret), new Date(Date.now() + SESSION_TTL_MS), client, user);
    return secret;
  }

  /** The session's user with their role now (a removed user's session is none). */
  sessionFor(secret: string | undefined): Principal | null {
    if (!secret) return null;
    const now = Date.now();
    const known = this.recalled("s" + secret, now);
    if (known) return known;
    const idHash = sha256(secret);
    const s = this.store.session(idHash);
    if (!s || s.expiresAt.getTime() < now || !s.user) return null;
    const u = this.store.user(s.user);
    if (!u) return null;
    const mustEnrolTotp = u.role === "admin" && !u.totpSecret && this.requireTotpForAdmins();
    return this.remember("s" + secret, { kind: "session", idHash, user: u.name, role: u.role, mustEnrolTotp }, Math.min(s.expiresAt.getTime(), now + RECALL_MS));
  }

  // Every request names its session or token, and a console polls: the principal found for a credential is kept
  // until anything it is made of is written (users, sessions, tokens, settings: `Store.authChanges`), until the
  // session or token expires, and at most RECALL_MS (a token's last use is then written again, as before). So a
  // removed user, a changed role, a logout or a deleted token ends at once, as without it. Only credentials that
  // were valid are kept (a flood of wrong ones fills nothing), at most RECALL_MAX of them.
  private readonly recent = new Map<string, { p: Principal; changes: number; until: number }>();
  private recalled(key: string, now: number): Principal | null {
    const r = this.recent.get(key);
    if (!r) return null;
    if (r.changes === this.store.authChanges && now < r.until) return r.p;
    this.recent.delete(key);
    return null;
  }
  private remember(key: string, p: Principal, until: number): Principal {
    if (this.recent.size >= RECALL_MAX) this.recent.clear();
    this.recent.set(key, { p, changes: this.store.authChanges, until });
    return p;
  }

  logout(p: Principal | null): void {
    if (p?.kind === "session") this.store.deleteSession(p.idHash);
  }

  // ---- API tokens
  /**
   * API tokens look like `ebx_<id>_<secret>`; only sha256(secret) is kept. A token is its owner's, with a role no
   * higher than the owner's (the owner's by default), and may expire.
   */
  createToken(owner: Principal, name: unknown, role?: unknown, expiresAt?: Date | null): { id: string; name: string; token: string; user: string; role: Role; expiresAt: Date | null } {
    if (typeof name !== "string" || name.trim() === "" || name.length > 100) {
      throw new AuthError("invalid", "name: a token needs a name of 1 to 100 characters");
    }
    if (role !== undefined && !isRole(role)) throw new AuthError("invalid", "role: one of viewer, operator, admin");
    if (expiresAt && expiresAt.getTime() <= Date.now()) throw new AuthError("invalid", "expiresAt: a time in the future");
    const user = owner.kind === "local-socket" ? this.setupAdmin() : owner.user;
    const ownerRole = owner.role;
    const tokenRole = (role as Role | undefined) ?? ownerRole;
    if (!roleAtLeast(ownerRole, tokenRole)) throw new AuthError("forbidden", `role: a token's role cannot be above yours (${ownerRole})`);
    if (!this.store.user(user)) throw new AuthError("conflict", `no user ${user} to own the token`);
    const id = randomSecret(6).replace(/[-_]/g, "x");
    const secret = randomSecret();
    this.store.addToken({ id, name: name.trim(), secretHash: sha256(secret), createdAt: new Date(), user, role: tokenRole, expiresAt: expiresAt ?? null });
    return { id, name: name.trim(), token: `ebx_${id}_${secret}`, user, role: tokenRole, expiresAt: expiresAt ?? null };
  }

  tokenFor(bearer: string | undefined): Principal | null {
    if (!bearer) return null;
    const now = Date.now();
    const known = this.recalled("t" + bearer, now);
    if (known) return known;
    const m = bearer.match(/^ebx_([A-Za-z0-9]+)_([A-Za-z0-9_-]+)$/);
    if (!m) return null;
    const row = this.store.token(m[1]!);
    if (!row || !constantTimeEqual(row.secretHash, sha256(m[2]!))) return null;
    if (row.expiresAt && row.expiresAt.getTime() <= now) return null;
    const u = row.user ? this.store.user(row.user) : undefined;
    if (!u || !isRole(row.role)) return null;
    // Coarse last-use: one write a minute per token at most (the principal is kept until the next is due).
    let usedAt = row.lastUsedAt?.getTime() ?? 0;
    if (now - usedAt > RECALL_MS) (this.store.touchToken(row.id), (usedAt = now));
    const p: Principal = { kind: "token", id: row.id, name: row.name, user: u.name, role: lowerRole(row.role, u.role) };
    return this.remember("t" + bearer, p, Math.min(row.expiresAt?.getTime() ?? Infinity, usedAt + RECALL_MS));
  }
}

export function checkPassword(password: unknown): asserts password is string {
  if (typeof password !== "string" || password.length < MIN_PASSWORD_LENGTH) {
    throw new AuthError("invalid", `password: at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  if (password.length > 1024) throw new AuthError("invalid", "password: at most 1024 characters");
}

/** A user name: what a person types at login; shown in lists and the audit trail. */
export function checkUserName(name: unknown): asserts name is string {
  if (typeof name !== "string" || !/^[a-z][a-z0-9._-]{0,31}$/.test(name)) {
    throw new AuthError("invalid", "name: 1 to 32 characters, lower-case letters, digits, '.', '_' or '-', starting with a letter");
  }
}

/** Who did it, as config versions and the audit trail name them: the user, or the token and its user. */
export function describePrincipal(p: Principal): string {
  switch (p.kind) {
    case "session":
      return p.user;
    case "token":
      return `token:${p.name} (${p.user})`;
    case "local-socket":
      return "local-socket";
  }
}
