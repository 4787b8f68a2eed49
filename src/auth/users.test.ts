import { Database } from "bun:sqlite";
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { statusOf } from "../console/errors.ts";
import { DomainError } from "../model/errors.ts";
import { applyMigrations } from "../store/migrate.ts";
import { migrations } from "../store/migrations.gen.ts";
import { Store } from "../store/store.ts";
import { Auth, type Principal } from "./auth.ts";
import { totpCode, TOTP_PERIOD_S } from "./totp.ts";

const dir = mkdtempSync(join(tmpdir(), "evebox-users-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const LIMITS = { perClientFree: 1000, globalFree: 1000, maxDelayMs: 1, forgetAfterMs: 1, concurrentHashes: 2, waitingHashes: 100 };

async function setUp() {
  const store = Store.open(join(dir, `${Math.random().toString(36).slice(2)}.db`));
  const auth = new Auth(store, join(dir, `setup-${Math.random()}`), LIMITS);
  await auth.setup(auth.prepareSetup(), "admin password", "c");
  return { store, auth };
}

async function status(p: Promise<unknown> | (() => unknown)): Promise<number> {
  try {
    await (typeof p === "function" ? p() : p);
    return 0;
  } catch (e) {
    if (e instanceof DomainError) return statusOf(e.kind);
    throw e;
  }
}

const sessionOf = (auth: Auth, secret: string) => auth.sessionFor(secret);

describe("users and roles", () => {
  test("setup makes the admin; login without a user name means them; with one, that user", async () => {
    const { auth } = await setUp();
    await auth.createUser("olga", "operator pass", "operator");
    expect((await auth.login({ password: "admin password" }, "c")).user).toBe("admin");
    const r = await auth.login({ user: "olga", password: "operator pass" }, "c");
    expect(r).toMatchObject({ user: "olga", role: "operator" });
    expect(sessionOf(auth, r.secret)).toMatchObject({ kind: "session", user: "olga", role: "operator" });
    expect(await status(auth.login({ user: "olga", password: "admin password" }, "c"))).toBe(401);
    expect(await status(auth.login({ user: "nobody", password: "admin password" }, "c"))).toBe(401);
  }, 30_000);

  test("the last admin can be neither removed nor demoted; with a second admin, it can", async () => {
    const { auth } = await setUp();
    expect(await status(() => auth.deleteUser("admin"))).toBe(409);
    expect(await status(auth.updateUser("admin", { role: "viewer" }))).toBe(409);
    await auth.createUser("second", "second pass", "admin");
    await auth.updateUser("admin", { role: "viewer" });
    expect(await status(() => auth.deleteUser("second"))).toBe(409); // now the last admin
    expect(auth.users().map((u) => `${u.name}:${u.role}`)).toEqual(["admin:viewer", "second:admin"]);
  }, 30_000);

  test("a role change ends the user's sessions at once; removal ends them and revokes the tokens", async () => {
    const { auth } = await setUp();
    await auth.createUser("olga", "operator pass", "operator");
    const s1 = (await auth.login({ user: "olga", password: "operator pass" }, "c")).secret;
    expect(sessionOf(auth, s1)).toMatchObject({ user: "olga", role: "operator" }); // found once, so kept (auth.ts)
    await auth.updateUser("olga", { role: "viewer" });
    expect(sessionOf(auth, s1)).toBeNull();
    const s2 = (await auth.login({ user: "olga", password: "operator pass" }, "c")).secret;
    const owner = sessionOf(auth, s2)!;
    const t = auth.createToken(owner, "script");
    expect(auth.tokenFor(t.token)).toMatchObject({ user: "olga", role: "viewer" });
    auth.deleteUser("olga");
    expect(sessionOf(auth, s2)).toBeNull();
    expect(auth.tokenFor(t.token)).toBeNull();
  }, 30_000);

  test("a token's role is never above its user's, counts the lower of the two, and may expire", async () => {
    const { auth, store } = await setUp();
    await auth.createUser("olga", "operator pass", "operator");
    const olga: Principal = { kind: "session", idHash: "-", user: "olga", role: "operator" };
    expect(await status(() => auth.createToken(olga, "too high", "admin"))).toBe(403);
    const t = auth.createToken(olga, "ops");
    expect(t.role).toBe("operator");
    await auth.updateUser("olga", { role: "viewer" });
    expect(auth.tokenFor(t.token)?.role).toBe("viewer");
    const soon = auth.createToken(olga, "short", "viewer", new Date(Date.now() + 60_000));
    expect(auth.tokenFor(soon.token)).not.toBeNull();
    store.sqlite.run("UPDATE api_tokens SET expires_at = ? WHERE id = ?", [Date.now() - 1, soon.id]);
    (store as unknown as { tokenCache: Map<string, unknown> }).tokenCache.clear(); // as a restart would
    expect(new Auth(store, join(dir, `setup-${Math.random()}`), LIMITS).tokenFor(soon.token)).toBeNull();
    expect(await status(() => auth.createToken(olga, "past", "viewer", new Date(Date.now() - 1000)))).toBe(400);
  }, 30_000);
});

describe("the principal kept per credential (every request names one: auth.ts keeps what it found)", () => {
  test("a logout, a deleted token, a demotion, a new password and the second-factor policy end it at once", async () => {
    const { auth, store } = await setUp();
    await auth.createUser("olga", "operator pass", "operator");
    const admin = (await auth.login({ password: "admin password" }, "c")).secret;
    const s1 = (await auth.login({ user: "olga", password: "operator pass" }, "c")).secret;
    const s2 = (await auth.login({ user: "olga", password: "operator pass" }, "c")).secret;
    const t1 = auth.createToken(sessionOf(auth, s1)!, "one");
    const t2 = auth.createToken(sessionOf(auth, s1)!, "two");
    for (const s of [s1, s2]) expect(sessionOf(auth, s)).toMatchObject({ user: "olga", role: "operator" });
    for (const t of [t1, t2]) expect(auth.tokenFor(t.token)).toMatchObject({ user: "olga", role: "operator" });
    // the same object again: kept, not looked up
    expect(auth.tokenFor(t1.token)).toBe(auth.tokenFor(t1.token));

    auth.logout(sessionOf(auth, s1));
    expect(sessionOf(auth, s1)).toBeNull();
    expect(sessionOf(auth, s2)).not.toBeNull();

    expect(store.deleteToken(t1.id)).toBe(true);
    expect(auth.tokenFor(t1.token)).toBeNull();
    expect(auth.tokenFor(t2.token)?.role).toBe("operator");

    await auth.updateUser("olga", { role: "viewer" });
    expect(sessionOf(auth, s2)).toBeNull();
    expect(auth.tokenFor(t2.token)?.role).toBe("viewer");

    await auth.updateUser("olga", { password: "a new password" });
    expect(auth.tokenFor(t2.token)?.role).toBe("viewer"); // tokens outlive a new password

    expect(sessionOf(auth, admin)).toMatchObject({ user: "admin", mustEnrolTotp: false });
    auth.setRequireTotpForAdmins(true, { kind: "local-socket", role: "admin" });
    expect(sessionOf(auth, admin)).toMatchObject({ user: "admin", mustEnrolTotp: true });
  }, 30_000);

  test("a wrong credential is never kept, and a token's last use is still written", async () => {
    const { auth, store } = await setUp();
    const t = auth.createToken({ kind: "local-socket", role: "admin" }, "script");
    const wrong = t.token.slice(0, -2) + (t.token.endsWith("AA") ? "BB" : "AA");
    expect(auth.tokenFor(wrong)).toBeNull();
    expect(auth.tokenFor(t.token)).not.toBeNull();
    expect(auth.tokenFor(wrong)).toBeNull();
    expect(auth.sessionFor("no-such-session")).toBeNull();
    expect(store.tokens()[0]!.lastUsedAt).not.toBeNull();
  }, 30_000);
});

describe("the second factor", () => {
  test("enrol with a code, then login needs a code; each code once; recovery codes once", async () => {
    const { auth } = await setUp();
    const { secret, uri, qrSvg } = auth.startTotp("admin");
    expect(uri).toStartWith("otpauth://totp/");
    expect(uri).toContain(`secret=${secret}`);
    expect(qrSvg).toStartWith("<svg");
    expect(await status(() => auth.confirmTotp("admin", "000000", "c"))).toBe(totpCode(secret) === "000000" ? 0 : 403);
    const now = Date.now();
    const recovery = auth.confirmTotp("admin", totpCode(secret, now), "c");
    expect(recovery).toHaveLength(10);

    const noCode = await auth.login({ password: "admin password" }, "c").catch((e) => e);
    expect(noCode).toBeInstanceOf(DomainError);
    expect((noCode as DomainError).details.totpRequired).toBe(true);
    // The code used to confirm is spent: the next step's code works.
    const next = totpCode(secret, now + TOTP_PERIOD_S * 1000);
    expect(await status(auth.login({ password: "admin password", totp: totpCode(secret, now) }, "c"))).toBe(401);
    expect((await auth.login({ password: "admin password", totp: next }, "c")).user).toBe("admin");
    expect(await status(auth.login({ password: "admin password", totp: next }, "c"))).toBe(401);
    expect((await auth.login({ password: "admin password", totp: recovery[0]!.toUpperCase() }, "c")).user).toBe("admin");
    expect(await status(auth.login({ password: "admin password", totp: recovery[0]! }, "c"))).toBe(401);
    expect(auth.users()[0]!.recoveryCodesLeft).toBe(9);
  }, 30_000);

  test("required for admins: an admin without one may only enrol; turning it on needs one yourself", async () => {
    const { auth } = await setUp();
    await auth.createUser("root2", "second admin", "admin");
    const me = sessionOf(auth, (await auth.login({ password: "admin password" }, "c")).secret)!;
    expect(await status(() => auth.setRequireTotpForAdmins(true, me))).toBe(409);
    const { secret } = auth.startTotp("admin");
    auth.confirmTotp("admin", totpCode(secret), "c");
    auth.setRequireTotpForAdmins(true, me);
    const other = sessionOf(auth, (await auth.login({ user: "root2", password: "second admin" }, "c")).secret)!;
    expect(other).toMatchObject({ role: "admin", mustEnrolTotp: true });
  }, 30_000);

  test("a wrong code counts against the password throttle", async () => {
    const store = Store.open(join(dir, `t-${Math.random()}.db`));
    const auth = new Auth(store, join(dir, `setup-${Math.random()}`), { ...LIMITS, perClientFree: 2, maxDelayMs: 60_000, forgetAfterMs: 3_600_000 });
    await auth.setup(auth.prepareSetup(), "admin password", "c");
    const { secret } = auth.startTotp("admin");
    auth.confirmTotp("admin", totpCode(secret), "c");
    const codes: number[] = [];
    for (let i = 0; i < 8 && !codes.includes(429); i++) codes.push(await status(auth.login({ password: "admin password", totp: "999999" }, "attacker")));
    expect(codes.slice(0, 2)).toEqual([401, 401]);
    expect(codes.at(-1)).toBe(429); // the right password with a wrong code is a failure like a wrong password
  }, 30_000);
});

describe("upgrade", () => {
  test("a single-password store becomes the user admin with the same password; its sessions and tokens stay the admin's", async () => {
    const path = join(dir, "old.db");
    const db = new Database(path, { create: true, strict: true });
    applyMigrations(db, path, migrations.slice(0, migrations.findIndex((m) => m.tag.endsWith("_users"))));
    const hash = await Bun.password.hash("the old password", { algorithm: "argon2id" });
    db.run("INSERT INTO settings (key, value) VALUES ('admin_password_hash', ?)", [hash]);
    db.run("INSERT INTO api_tokens (id, name, secret_hash, created_at) VALUES ('t1', 'old', 'x', 0)");
    db.close();
    const store = Store.open(path);
    const auth = new Auth(store, join(dir, "setup-old"), LIMITS);
    expect(auth.isSetUp()).toBe(true);
    expect(auth.prepareSetup()).toBeNull();
    expect(auth.users()).toMatchObject([{ name: "admin", role: "admin" }]);
    expect((await auth.login({ password: "the old password" }, "c")).role).toBe("admin");
    expect(store.tokens()).toMatchObject([{ id: "t1", user: "admin", role: "admin" }]);
    expect(store.getSetting("admin_password_hash")).toBeUndefined();
  }, 30_000);
});
