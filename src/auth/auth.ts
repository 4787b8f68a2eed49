import { timingSafeEqual } from "node:crypto";
import { chmodSync, rmSync, writeFileSync } from "node:fs";
import type { Store } from "../store/store.ts";

const PASSWORD_KEY = "admin_password_hash";
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
export const MIN_PASSWORD_LENGTH = 8;

export class AuthError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 409 | 429,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
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

/**
 * Slows password guessing per client: the first few failures are free, then each further one
 * doubles the wait (capped), and a success clears the client's record.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, { count: number; until: number }>();
  constructor(
    private readonly freeAttempts = 5,
    private readonly maxDelayMs = 5 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  check(client: string): void {
    const f = this.failures.get(client);
    if (f && f.until > this.now()) {
      throw new AuthError(429, "too many failed logins from this client; wait before trying again", Math.ceil((f.until - this.now()) / 1000));
    }
  }
  fail(client: string): void {
    const f = this.failures.get(client) ?? { count: 0, until: 0 };
    f.count++;
    if (f.count > this.freeAttempts) f.until = this.now() + Math.min(this.maxDelayMs, 1000 * 2 ** (f.count - this.freeAttempts - 1));
    this.failures.set(client, f);
    if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value!);
  }
  succeed(client: string): void {
    this.failures.delete(client);
  }
}

/** The console's credentials: admin password, one-time setup token, sessions, API tokens. */
export class Auth {
  private setupToken: string | null = null;
  readonly throttle = new LoginThrottle();

  constructor(
    private readonly store: Store,
    private readonly setupTokenPath: string,
  ) {}

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
    writeFileSync(this.setupTokenPath, this.setupToken + "\n", { mode: 0o600 });
    chmodSync(this.setupTokenPath, 0o600);
    return this.setupToken;
  }

  async setup(token: unknown, password: unknown, client: string): Promise<string> {
    if (this.isSetUp()) throw new AuthError(409, "the admin password is already set; log in instead");
    this.throttle.check(client);
    if (typeof token !== "string" || this.setupToken === null || !constantTimeEqual(token.trim(), this.setupToken)) {
      this.throttle.fail(client);
      throw new AuthError(403, "the setup token is wrong: use the one evebox printed at start (also in run/setup-token)");
    }
    checkPassword(password);
    const hash = await Bun.password.hash(password as string, { algorithm: "argon2id" });
    this.store.setSetting(PASSWORD_KEY, hash);
    this.setupToken = null;
    rmSync(this.setupTokenPath, { force: true });
    this.throttle.succeed(client);
    return this.newSession(client);
  }

  async login(password: unknown, client: string): Promise<string> {
    const hash = this.store.getSetting(PASSWORD_KEY);
    if (hash === undefined) throw new AuthError(409, "evebox is not set up yet: open the setup URL it printed at start");
    this.throttle.check(client);
    if (typeof password !== "string" || !(await Bun.password.verify(password, hash))) {
      this.throttle.fail(client);
      throw new AuthError(401, "wrong password");
    }
    this.throttle.succeed(client);
    return this.newSession(client);
  }

  async changePassword(current: unknown, next: unknown): Promise<void> {
    const hash = this.store.getSetting(PASSWORD_KEY);
    if (hash === undefined || typeof current !== "string" || !(await Bun.password.verify(current, hash))) {
      throw new AuthError(403, "the current password is wrong");
    }
    checkPassword(next);
    this.store.setSetting(PASSWORD_KEY, await Bun.password.hash(next as string, { algorithm: "argon2id" }));
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
      throw new AuthError(400, "name: a token needs a name of 1 to 100 characters");
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
    throw new AuthError(400, `password: at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  if (password.length > 1024) throw new AuthError(400, "password: at most 1024 characters");
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
