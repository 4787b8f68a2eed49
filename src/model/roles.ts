// The console's roles, and how a route says which one it needs. A route of the API declares its role once, where it
// is defined, with `requires(role)` as its first handler: the middleware is the check, and its tag is what the
// console's guard (console/app.ts), the OpenAPI document and the route→role table test (console/roles.test.ts) read.
import { DomainError } from "./errors.ts";

/** Lowest to highest: each role may do what the ones below it may. */
export const ROLES = ["viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

/**
 * What a route needs: a role, or `self` — any signed-in user, also one whose session may do nothing else yet
 * (an admin who must enrol a second factor first): their own session, password and second factor.
 */
export type RouteNeed = Role | "self";

/** What one may do, for the console's help texts and the refusals. */
export const ROLE_CAN: Record<Role, string> = {
  viewer: "read status, logs, graphs, config and the audit trail",
  operator: "also start, stop, restart and purge apps, open their consoles, reboot the device",
  admin: "also change the config, the users, the settings",
};

export function isRole(s: unknown): s is Role {
  return typeof s === "string" && (ROLES as readonly string[]).includes(s);
}

export function roleRank(r: Role): number {
  return ROLES.indexOf(r);
}

/** Whether `have` may do what `need` allows. */
export function roleAtLeast(have: Role, need: Role): boolean {
  return roleRank(have) >= roleRank(need);
}

/** The lower of two roles (a token's role is never above its user's). */
export function lowerRole(a: Role, b: Role): Role {
  return roleRank(a) <= roleRank(b) ? a : b;
}

/** Who is asking, as far as the role check needs it. */
export interface RoleHolder {
  role: Role;
  /** Only `self` routes, until the user enrols a second factor (an admin-wide requirement). */
  mustEnrolTotp?: boolean;
}

export const ROUTE_NEED = Symbol.for("evebox.route-need");

export class RoleRefused extends DomainError {
  constructor(need: RouteNeed, have: RoleHolder) {
    const message =
      need === "self" || have.mustEnrolTotp
        ? "a second factor (TOTP) is required for admins on this device: enrol one on your profile first"
        : `this needs the ${need} role (you are ${have.role === "admin" || have.role === "operator" ? "an" : "a"} ${have.role})`;
    super("forbidden", message, { requiredRole: need === "self" ? null : need, role: have.role });
  }
}

/** Refuses unless `holder` may use a route that needs `need`. */
export function checkRole(need: RouteNeed, holder: RoleHolder | null): void {
  if (!holder) return; // not signed in: the 401 of the console's guard answers first
  if (holder.mustEnrolTotp && need !== "self") throw new RoleRefused(need, holder);
  if (need !== "self" && !roleAtLeast(holder.role, need)) throw new RoleRefused(need, holder);
}

// Any framework's context with the principal under "principal" (Hono's in console/ and the parts' routes).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Ctx = any;
type Middleware = ((c: Ctx, next: () => Promise<void>) => Promise<void>) & { [ROUTE_NEED]: RouteNeed };

/**
 * The role a route needs, as its first handler: `.post("/apps/:uuid/restart", requires("operator"), …)`. It refuses
 * with 403 naming the role needed; the tag lets the guard and the tests read the declaration from `app.routes`.
 */
export function requires(need: RouteNeed): Middleware {
  const mw = async (c: Ctx, next: () => Promise<void>) => {
    checkRole(need, (c.get("principal") as RoleHolder | null | undefined) ?? null);
    await next();
  };
  return Object.assign(mw, { [ROUTE_NEED]: need });
}

/** The role a handler declares, if it is a `requires` middleware. */
export function declaredNeed(handler: unknown): RouteNeed | null {
  return typeof handler === "function" && ROUTE_NEED in handler ? ((handler as Middleware)[ROUTE_NEED] ?? null) : null;
}
