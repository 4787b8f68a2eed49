// The Users page (admins): who may use this console and with which role; add a user, change a role, set a new
// password, remove a user (their sessions and tokens end at once), reset a lost second factor, and require a second
// factor for every admin. Reads GET /users; writes POST /users, PATCH|DELETE /users/{name},
// DELETE /users/{name}/totp, PUT /auth/policy. Shown in the navigation to admins only; the server refuses the rest.
import { useCallback, useEffect, useState } from "preact/hooks";
import { ApiError, type ApiClient, type Role, type UserInfo } from "../api";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { DataTable } from "../components/DataTable";
import { Field, FormError } from "../components/Field";
import { formatDateTime } from "../format";
import { RoleGate, useMe, useRole } from "../role";

const ROLES: Role[] = ["viewer", "operator", "admin"];
const CAN: Record<Role, string> = {
  viewer: "reads status, logs, graphs, config and the audit trail",
  operator: "also starts, stops, restarts and purges apps, opens their consoles, reboots the device",
  admin: "also changes the config, the users and the settings",
};

function message(e: unknown): string {
  return e instanceof ApiError ? e.message : String(e);
}

export function Users({ api }: { api: ApiClient }) {
  const me = useMe();
  const [isAdmin, why] = useRole("admin");
  const [data, setData] = useState<{ users: UserInfo[]; setupAdmin: string; requireTotpForAdmins: boolean } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [removing, setRemoving] = useState<UserInfo | null>(null);
  const [resetting, setResetting] = useState<UserInfo | null>(null);

  const load = useCallback(async () => {
    try {
      setData(await api.users());
    } catch (e) {
      setError(message(e));
    }
  }, [api]);
  useEffect(() => {
    if (isAdmin) void load();
  }, [load, isAdmin]);

  const act = async (f: () => Promise<unknown>, done: string) => {
    setError(null);
    setNotice(null);
    try {
      await f();
      setNotice(done);
      await load();
    } catch (e) {
      setError(message(e));
    }
  };

  return (
    <section id="users" class="page" aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          Users
        </h1>
        <p class="muted">Who may use this console, and what each role may do: {ROLES.map((r) => `${r} ${CAN[r]}`).join("; ")}.</p>
      </div>
      {me && !isAdmin && (
        <p class="notice" id="users-refused">
          {why} Ask an admin to change a user.
        </p>
      )}
      {notice && (
        <p class="notice" role="status" id="users-notice">
          {notice}
        </p>
      )}
      <FormError id="users-error" messages={error ? [error] : []} />
      {data && (
        <DataTable id="users-table" label="Users" columns={["Name", "Role", "Second factor", "Changed", ""]}>
          {data.users.map((u) => (
            <tr key={u.name} data-user={u.name}>
              <th scope="row">
                {u.name}
                {u.name === data.setupAdmin && <span class="muted"> (made at setup)</span>}
                {u.name === me?.user && <span class="muted"> (you)</span>}
              </th>
              <td>
                <select
                  aria-label={`role of ${u.name}`}
                  class="role-select"
                  value={u.role}
                  onChange={(e) => {
                    const role = e.currentTarget.value as Role;
                    void act(() => api.changeUser(u.name, { role }), `${u.name} is now ${role === "admin" || role === "operator" ? "an" : "a"} ${role}; their sessions have ended.`);
                  }}
                >
                  {ROLES.map((r) => (
                    <option key={r} value={r}>
                      {r}
                    </option>
                  ))}
                </select>
              </td>
              <td>{u.totp ? `on (${u.recoveryCodesLeft} recovery codes left)` : "off"}</td>
              <td>{formatDateTime(new Date(u.updatedAt).toISOString())}</td>
              <td>
                <NewPassword name={u.name} onSet={(password) => act(() => api.changeUser(u.name, { password }), `New password set for ${u.name}; their sessions have ended.`)} />
                {u.totp && (
                  <button type="button" class="button small secondary" onClick={() => setResetting(u)}>
                    Reset second factor
                  </button>
                )}{" "}
                <button type="button" class="button small danger-text" data-remove={u.name} onClick={() => setRemoving(u)}>
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </DataTable>
      )}
      {data && <AddUser api={api} onAdded={(name) => act(async () => undefined, `User ${name} added.`)} />}
      {data && (
        <section class="card card-wide" aria-labelledby="policy-title">
          <h2 id="policy-title">Second factor for admins</h2>
          <label class="checkbox">
            <input
              type="checkbox"
              id="require-totp"
              checked={data.requireTotpForAdmins}
              onChange={(e) => {
                const on = e.currentTarget.checked;
                void act(() => api.setPolicy(on), on ? "Every admin now needs a second factor to sign in; one without it can only enrol one." : "A second factor is no longer required for admins.");
              }}
            />{" "}
            Require a second factor (TOTP) for every admin
          </label>
          <p class="muted">Turn this on once you have a second factor yourself (Settings). An admin without one can then only enrol one after signing in.</p>
        </section>
      )}
      {removing && (
        <ConfirmDialog
          id="remove-user"
          title={`Remove ${removing.name}?`}
          confirmLabel="Remove"
          danger
          onConfirm={() => {
            const u = removing;
            setRemoving(null);
            void act(() => api.removeUser(u.name), `${u.name} removed; their sessions and API tokens ended.`);
          }}
          onCancel={() => setRemoving(null)}
        >
          <p>Their open sessions end and their API tokens stop working at once. The audit trail keeps what they did.</p>
        </ConfirmDialog>
      )}
      {resetting && (
        <ConfirmDialog
          id="reset-totp"
          title={`Reset ${resetting.name}'s second factor?`}
          confirmLabel="Reset"
          onConfirm={() => {
            const u = resetting;
            setResetting(null);
            void act(() => api.resetTotp(u.name), `${u.name}'s second factor removed: they sign in with their password and can enrol again.`);
          }}
          onCancel={() => setResetting(null)}
        >
          <p>For a user who lost their authenticator and recovery codes.</p>
        </ConfirmDialog>
      )}
    </section>
  );
}

function NewPassword({ name, onSet }: { name: string; onSet: (password: string) => Promise<void> }) {
  const [open, setOpen] = useState(false);
  const [password, setPassword] = useState("");
  if (!open)
    return (
      <>
        <button type="button" class="button small secondary" onClick={() => setOpen(true)}>
          New password…
        </button>{" "}
      </>
    );
  return (
    <form
      class="inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        void onSet(password).then(() => {
          setOpen(false);
          setPassword("");
        });
      }}
    >
      <input class="input" type="password" aria-label={`new password for ${name}`} autoComplete="new-password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
      <button type="submit" class="button small primary" disabled={password.length < 8}>
        Set
      </button>
      <button type="button" class="button small ghost" onClick={() => setOpen(false)}>
        Cancel
      </button>
    </form>
  );
}

function AddUser({ api, onAdded }: { api: ApiClient; onAdded: (name: string) => Promise<void> }) {
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const [errors, setErrors] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const problems: string[] = [];
    if (!/^[a-z][a-z0-9._-]{0,31}$/.test(name)) problems.push("Name: 1 to 32 characters, lower-case letters, digits, '.', '_' or '-', starting with a letter.");
    if (password.length < 8) problems.push("Password: at least 8 characters.");
    setErrors(problems);
    if (problems.length) return;
    setBusy(true);
    try {
      await api.addUser(name, password, role);
      await onAdded(name);
      setName("");
      setPassword("");
    } catch (err) {
      setErrors([message(err)]);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="card card-wide" aria-labelledby="add-user-title">
      <h2 id="add-user-title">Add a user</h2>
      <RoleGate need="admin">
        <form class="form" onSubmit={submit} noValidate>
          <Field id="user-name" name="name" type="text" label="Name" value={name} onInput={(e) => setName(e.currentTarget.value)} autoComplete="off" autoCapitalize="off" invalid={errors.length > 0} errorId="add-user-error" />
          <Field id="user-password" name="password" type="password" label="Password" hint="At least 8 characters; they can change it on their Settings page." value={password} onInput={(e) => setPassword(e.currentTarget.value)} autoComplete="new-password" />
          <div class="field">
            <label for="user-role">Role</label>
            <select id="user-role" class="input" value={role} onChange={(e) => setRole(e.currentTarget.value as Role)}>
              {ROLES.map((r) => (
                <option key={r} value={r}>
                  {r}: {CAN[r]}
                </option>
              ))}
            </select>
          </div>
          <FormError id="add-user-error" messages={errors} />
          <div class="form-actions">
            <button type="submit" class="button primary" id="user-add" disabled={busy}>
              Add user
            </button>
          </div>
        </form>
      </RoleGate>
    </section>
  );
}
