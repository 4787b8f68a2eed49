// Who is signed in (GET /session), for every page: which controls their role may use. A control a role may not use is
// hidden (a whole page or section) or disabled with the reason next to it; the server refuses it anyway (403).
import type { ComponentChildren } from "preact";
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Role } from "./api";

export interface Me {
  user: string | null;
  role: Role;
  /** An admin who must enrol a second factor before anything else. */
  mustEnrolTotp: boolean;
  totp: boolean;
  requireTotpForAdmins: boolean;
  power: boolean;
}

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** Until the session is read, nothing is allowed (the controls appear disabled for a moment, not enabled). */
export const MeContext = createContext<Me | null>(null);

export function useMe(): Me | null {
  return useContext(MeContext);
}

export function mayUse(me: Me | null, need: Role): boolean {
  return !!me && !me.mustEnrolTotp && RANK[me.role] >= RANK[need];
}

const article = (r: Role) => (r === "viewer" ? "a" : "an");

/** Why a control is off, in the words the server's 403 uses. */
export function roleReason(me: Me | null, need: Role): string {
  if (!me) return "Checking what you may do…";
  if (me.mustEnrolTotp) return "Enrol a second factor on the Settings page first.";
  return `Needs the ${need} role; you are ${article(me.role)} ${me.role}.`;
}

/** The hook form: `const [ok, why] = useRole("operator")`. */
export function useRole(need: Role): [boolean, string] {
  const me = useMe();
  return [mayUse(me, need), roleReason(me, need)];
}

/**
 * Controls that need `need`: shown as they are when the role allows, otherwise inside a disabled fieldset (every
 * button and field in it is disabled) with the reason under them.
 */
export function RoleGate({ need, children, id }: { need: Role; children: ComponentChildren; id?: string }) {
  const [ok, why] = useRole(need);
  if (ok) return <>{children}</>;
  return (
    <fieldset class="role-gate" disabled title={why} data-needs={need} id={id}>
      {children}
      <p class="role-reason muted">{why}</p>
    </fieldset>
  );
}

/** Shown only to a role that may use it (navigation entries, pages of admins). */
export function IfRole({ need, children }: { need: Role; children: ComponentChildren }) {
  const [ok] = useRole(need);
  return ok ? <>{children}</> : null;
}
