import { timingSafeEqual } from "node:crypto";
import { chmodSync, rmSync, writeFileSync } from "node:fs";
import { backoffDelay } from "../lib/backoff.ts";
import { DomainError } from "../model/errors.ts";
import type { Store } from "../store/store.ts";

const PASSWORD_KEY = "admin_password_hash";
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
export const MIN_PASSWORD_LENGTH = 8;

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

export type Principal = { kind: "session"; idHash: string } | { kind: "token"; id: string; name: string } | { kind: "local-socket" };

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

/** The console's credentials: admin password, one-time setup token, sessions, API tokens. */
export class Auth {
  private setupToken: string | null = null;
  /** Set while the one accepted setup hashes its password: a parallel setup is refused, not raced. */
  private settingUp = false;
  readonly throttle: LoginThrottle;
  private readonly hashes: HashGate;

  constructor(
    private readonly store: Store,
    private readonly setupTokenPath: string,
    limits: ThrottleLimits = DEFAULT_THROTTLE,
  ) {
    this.throttle = new LoginThrottle(limits);
    this.hashes = new HashGate(limits.concurrentHashes, limits.waitingHashes);
  }

  isSetUp(): boolean {
    return this.store.getSetting(PASSWORD_KEY) !== undefined;
  }

  /** When no password exists yet, makes a one-time setup token and writes it (mode 0600). */
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

  async setup(token: unknown, password: unknown, client: string): Promise<string> {
    if (this.isSetUp()) throw new AuthError("conflict", "the admin password is already set; log in instead");
    if (this.settingUp) throw new AuthError("conflict", "the admin password is being set by another request; log in once it is done");
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
      const hash = await this.hashes.run(() => Bun.password.hash(password, { algorithm: "argon2id" }));
      this.store.setSetting(PASSWORD_KEY, hash);
    } catch (e) {
      this.setupToken = taken; // not set (busy, a store fault): the token still works
      throw e;
    } finally {
      this.settingUp = false;
    }
    rmSync(this.setupTokenPath, { force: true });
    this.throttle.succeed(client);
    return this.newSession(client);
  }

  async login(password: unknown, client: string): Promise<string> {
    const hash = this.store.getSetting(PASSWORD_KEY);
    if (hash === undefined) throw new AuthError("conflict", "evebox is not set up yet: open the setup URL it printed at start");
    this.throttle.attempt(client);
    if (!(await this.verify(password, hash))) throw new AuthError("unauthorized", "wrong password");
    this.throttle.succeed(client);
    return this.newSession(client);
  }

  /**
   * Changes the admin password, throttled like a login (a wrong current password counts as a failed attempt).
   * Every session but `keepSession` (the browser that asked) ends; API tokens stay.
   */
  async changePassword(current: unknown, next: unknown, client: string, keepSession: string | null): Promise<void> {
    checkPassword(next);
    const hash = this.store.getSetting(PASSWORD_KEY);
    if (hash === undefined) throw new AuthError("conflict", "evebox is not set up yet: open the setup URL it printed at start");
    this.throttle.attempt(client);
    if (!(await this.verify(current, hash))) throw new AuthError("forbidden", "the current password is wrong");
    this.throttle.succeed(client);
    const nextHash = await this.hashes.run(() => Bun.password.hash(next, { algorithm: "argon2id" }));
    this.store.setSetting(PASSWORD_KEY, nextHash);
    this.store.deleteSessionsExcept(keepSession);
  }

  private async verify(password: unknown, hash: string): Promise<boolean> {
    if (typeof password !== "string" || password.length > 1024) return false;
    return this.hashes.run(() => Bun.password.verify(password, hash));
  }

  private newSession(client: string): string {
    const secret = randomSecret();
    this.store.deleteExpiredSessions();
    this.store.addSession(sha256(secret), new Date(Date.now() + SESSION_TTL_MS), client);
    return secret;
  }

  sessionFor(secret: string | undefined): Principal | null {
    if (!secret) return null;
    const idHash = sha256(secret);
    const s = this.store.session(idHash);
    if (!s || s.expiresAt.getTime() < Date.now()) return null;
    return { kind: "session", idHash };
  }

  logout(p: Principal | null): void {
    if (p?.kind === "session") this.store.deleteSession(p.idHash);
  }

  /** API tokens look like `ebx_<id>_<secret>`; only sha256(secret) is kept. */
  createToken(name: unknown): { id: string; name: string; token: string } {
    if (typeof name !== "string" || name.trim() === "" || name.length > 100) {
      throw new AuthError("invalid", "name: a token needs a name of 1 to 100 characters");
    }
    const id = randomSecret(6).replace(/[-_]/g, "x");
    const secret = randomSecret();
    this.store.addToken({ id, name: name.trim(), secretHash: sha256(secret), createdAt: new Date() });
    return { id, name: name.trim(), token: `ebx_${id}_${secret}` };
  }

  tokenFor(bearer: string | undefined): Principal | null {
    const m = bearer?.match(/^ebx_([A-Za-z0-9]+)_([A-Za-z0-9_-]+)$/);
    if (!m) return null;
    const row = this.store.token(m[1]!);
    if (!row || !constantTimeEqual(row.secretHash, sha256(m[2]!))) return null;
    // Coarse last-use: one write a minute per token at most.
    if (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > 60_000) this.store.touchToken(row.id);
    return { kind: "token", id: row.id, name: row.name };
  }
}

export function checkPassword(password: unknown): asserts password is string {
  if (typeof password !== "string" || password.length < MIN_PASSWORD_LENGTH) {
    throw new AuthError("invalid", `password: at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  if (password.length > 1024) throw new AuthError("invalid", "password: at most 1024 characters");
}

export function describePrincipal(p: Principal): string {
  switch (p.kind) {
    case "session":
      return "admin";
    case "token":
      return `token:${p.name}`;
    case "local-socket":
      return "local-socket";
  }
}
