// The Settings page: the device's global settings (EVE config items: read-only while a controller sets them,
// else edited into the config's configItems; admins), and your own profile: your password, your second factor
// (TOTP: enrol with the QR code, confirm with a code, keep the recovery codes), the API tokens you made for scripts
// (a role no higher than yours, maybe an expiry, shown once, revoked), and the device's power (reboot, shut down;
// operators) where evebox is the device's init. Reads GET /device/settings, GET /session and GET /tokens; writes
// PUT /config (configItems), POST /password, POST|DELETE /me/totp, POST /me/totp/confirm, POST /tokens,
// DELETE /tokens/{id}, POST /device/{reboot|shutdown}.
import { useCallback, useEffect, useState } from "preact/hooks";
import { ApiError, type ApiClient, type Role } from "../api";
import { RoleGate, useMe } from "../role";
import { Field, FormError } from "../components/Field";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { DataTable } from "../components/DataTable";
import { formatDateTime } from "../format";

interface Token {
  id: string;
  name: string;
  createdAt: string | number;
  lastUsedAt: string | number | null;
  user: string | null;
  role: Role | null;
  expiresAt: string | number | null;
}

interface Session {
  authenticated: boolean;
  as: string;
  power?: boolean;
}

const MIN_PASSWORD = 8;

function message(e: unknown): string {
  return e instanceof ApiError ? e.message : String(e);
}

function when(v: string | number | null): string {
  return v === null || v === undefined ? "never" : formatDateTime(new Date(v).toISOString());
}

export function Settings({ api, onChanged }: { api: ApiClient; onChanged?: () => void }) {
  const me = useMe();
  return (
    <section id="settings" class="page" aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          Settings
        </h1>
        <p class="muted">
          {me ? (
            <>
              Signed in as <strong id="me-user">{me.user}</strong> (<span id="me-role">{me.role}</span>). The device's settings; your password, second factor and API tokens; the device's power.
            </>
          ) : (
            "The device's settings; your password, second factor and API tokens; the device's power."
          )}
        </p>
      </div>
      {!me?.mustEnrolTotp && <DeviceSettings api={api} />}
      {me?.mustEnrolTotp && (
        <div class="banner banner-error" role="alert" id="must-enrol">
          Admins on this device need a second factor. Enrol one below; until then the console can do nothing else.
        </div>
      )}
      <PasswordForm api={api} />
      <SecondFactor api={api} onChanged={onChanged} />
      {!me?.mustEnrolTotp && <Tokens api={api} />}
      {!me?.mustEnrolTotp && <Power api={api} />}
    </section>
  );
}

function SecondFactor({ api, onChanged }: { api: ApiClient; onChanged?: () => void }) {
  const me = useMe();
  const [enrolment, setEnrolment] = useState<{ secret: string; qrSvg: string; uri: string } | null>(null);
  const [code, setCode] = useState("");
  const [recovery, setRecovery] = useState<string[] | null>(null);
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const has = !!me?.totp;
  const lockedIn = has && me?.role === "admin" && me.requireTotpForAdmins;

  const start = async () => {
    setError(null);
    setRecovery(null);
    try {
      setEnrolment(await api.startTotp());
    } catch (e) {
      setError(message(e));
    }
  };
  const confirm = async (e: Event) => {
    e.preventDefault();
    setError(null);
    if (!/^\d{6}$/.test(code.trim())) return setError("Enter the 6-digit code your authenticator app shows now.");
    setBusy(true);
    try {
      setRecovery(await api.confirmTotp(code.trim()));
      setEnrolment(null);
      setCode("");
      onChanged?.();
    } catch (err) {
      setError(message(err));
    } finally {
      setBusy(false);
    }
  };
  const remove = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      await api.removeTotp(password);
      setPassword("");
      setRecovery(null);
      onChanged?.();
    } catch (err) {
      setError(message(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="card card-wide" aria-labelledby="totp-title" id="totp">
      <h2 id="totp-title">Second factor</h2>
      <p class="muted" id="totp-state">
        {has ? "On: signing in needs a code from your authenticator app (or a recovery code)." : "Off: signing in needs only your password."}
      </p>
      {recovery && (
        <div class="notice" role="status" id="totp-recovery">
          <p>
            Second factor on. Keep these one-time recovery codes somewhere safe; each signs you in once if you lose the authenticator. They are not shown again:
          </p>
          <ul class="mono recovery-codes">
            {recovery.map((c) => (
              <li key={c}>{c}</li>
            ))}
          </ul>
          <button type="button" class="button small ghost" onClick={() => setRecovery(null)}>
            Done
          </button>
        </div>
      )}
      {!has && !enrolment && (
        <div class="form-actions">
          <button type="button" class="button primary" id="totp-start" onClick={() => void start()}>
            Set up a second factor
          </button>
        </div>
      )}
      {enrolment && (
        <form class="form" onSubmit={confirm} noValidate>
          <p>Scan this code with an authenticator app (any app for TOTP, RFC 6238), then enter the code it shows.</p>
          <img id="totp-qr" class="qr" alt="QR code of the second factor's secret" width={200} height={200} src={`data:image/svg+xml;base64,${btoa(enrolment.qrSvg)}`} />
          <p class="muted">
            Or type the secret: <code id="totp-secret">{enrolment.secret}</code>
          </p>
          <Field id="totp-code" name="code" type="text" label="Code from the app" value={code} onInput={(e) => setCode(e.currentTarget.value)} autoComplete="one-time-code" invalid={!!error} errorId="totp-error" />
          <div class="form-actions">
            <button type="submit" class="button primary" id="totp-confirm" disabled={busy}>
              Turn on
            </button>
            <button type="button" class="button ghost" onClick={() => setEnrolment(null)}>
              Cancel
            </button>
          </div>
        </form>
      )}
      {has && !lockedIn && (
        <form class="form field-row" onSubmit={remove} noValidate>
          <Field id="totp-remove-password" name="password" type="password" label="Your password, to turn it off" value={password} onInput={(e) => setPassword(e.currentTarget.value)} autoComplete="current-password" />
          <div class="form-actions">
            <button type="submit" class="button secondary" id="totp-remove" disabled={busy || !password}>
              Turn off
            </button>
          </div>
        </form>
      )}
      {lockedIn && <p class="muted" id="totp-required">Required for admins on this device: it cannot be turned off here.</p>}
      <FormError id="totp-error" messages={error ? [error] : []} />
    </section>
  );
}

function PasswordForm({ api }: { api: ApiClient }) {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [repeat, setRepeat] = useState("");
  const [errors, setErrors] = useState<string[]>([]);
  const [done, setDone] = useState(false);
  const [saving, setSaving] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setDone(false);
    const problems: string[] = [];
    if (!current) problems.push("Enter the current password.");
    if (next.length < MIN_PASSWORD) problems.push(`The new password needs at least ${MIN_PASSWORD} characters.`);
    if (next !== repeat) problems.push("The new password and its repetition differ.");
    setErrors(problems);
    if (problems.length) return;
    setSaving(true);
    try {
      await api.changePassword(current, next);
      setCurrent("");
      setNext("");
      setRepeat("");
      setDone(true);
    } catch (err) {
      setErrors([message(err)]);
    } finally {
      setSaving(false);
    }
  };

  return (
    <section class="card card-wide" aria-labelledby="password-title">
      <h2 id="password-title">Console password</h2>
      <form class="form" onSubmit={submit} noValidate>
        <Field id="pw-current" name="current" type="password" label="Current password" value={current} onInput={(e) => setCurrent(e.currentTarget.value)} autoComplete="current-password" invalid={errors.length > 0} errorId="pw-error" />
        <Field id="pw-new" name="password" type="password" label="New password" hint={`At least ${MIN_PASSWORD} characters.`} value={next} onInput={(e) => setNext(e.currentTarget.value)} autoComplete="new-password" />
        <Field id="pw-repeat" name="repeat" type="password" label="New password again" value={repeat} onInput={(e) => setRepeat(e.currentTarget.value)} autoComplete="new-password" />
        <p class="muted" id="pw-note">Changing the password signs out every other browser; API tokens are not affected.</p>
        <FormError id="pw-error" messages={errors} />
        {done && (
          <p class="notice" role="status" id="pw-done">
            Password changed. Every other browser signed in to this console is signed out; this one stays signed in. API tokens keep working: delete any you no longer trust below.
          </p>
        )}
        <div class="form-actions">
          <button type="submit" class="button primary" id="pw-submit" disabled={saving}>
            {saving ? "Changing…" : "Change password"}
          </button>
        </div>
      </form>
    </section>
  );
}

function Tokens({ api }: { api: ApiClient }) {
  const [tokens, setTokens] = useState<Token[] | null>(null);
  const me = useMe();
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role | "">("");
  const [days, setDays] = useState("");
  const [created, setCreated] = useState<{ name: string; token: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [revoking, setRevoking] = useState<Token | null>(null);

  const load = useCallback(async () => {
    try {
      setTokens((await api.tokens()) as Token[]);
    } catch (e) {
      setError(message(e));
    }
  }, [api]);
  useEffect(() => void load(), [load]);

  const create = async (e: Event) => {
    e.preventDefault();
    setError(null);
    if (!name.trim()) return setError("Give the token a name, e.g. the script or person that uses it.");
    const expires = days.trim() === "" ? undefined : Number(days);
    if (expires !== undefined && (!Number.isInteger(expires) || expires < 1 || expires > 3650)) return setError("Expires after: a whole number of days, 1 to 3650, or empty for never.");
    try {
      const t = await api.createToken(name, role || undefined, expires);
      setCreated(t);
      setName("");
      await load();
    } catch (err) {
      setError(message(err));
    }
  };

  const revoke = async () => {
    if (!revoking) return;
    try {
      await api.deleteToken(revoking.id);
      setRevoking(null);
      await load();
    } catch (err) {
      setRevoking(null);
      setError(message(err));
    }
  };

  return (
    <section class="card card-wide" aria-labelledby="tokens-title">
      <h2 id="tokens-title">API tokens</h2>
      <p class="muted">
        A script sends a token as <code>Authorization: Bearer …</code>. A token is yours and can do what its role allows, never more than your own role; it stops working
        when it expires or when your user is removed. The device keeps only its hash, so it is shown once.
      </p>
      {created && (
        <div class="notice" role="status" id="token-created">
          <p>
            Token <strong>{created.name}</strong> created. Copy it now; it is not shown again:
          </p>
          <p class="mono" id="token-value">
            {created.token}
          </p>
          <button type="button" class="button small secondary" onClick={() => void navigator.clipboard?.writeText(created.token)}>
            Copy
          </button>{" "}
          <button type="button" class="button small ghost" onClick={() => setCreated(null)}>
            Done
          </button>
        </div>
      )}
      {tokens && tokens.length === 0 && <p class="empty">No API tokens.</p>}
      {tokens && tokens.length > 0 && (
        <DataTable id="tokens" label="API tokens" columns={["Name", "User", "Role", "Created", "Expires", "Last used", ""]}>
              {tokens.map((t) => (
                <tr key={t.id} data-token={t.name}>
                  <th scope="row">{t.name}</th>
                  <td>{t.user ?? ""}</td>
                  <td>{t.role ?? ""}</td>
                  <td>{when(t.createdAt)}</td>
                  <td>{t.expiresAt === null ? "never" : when(t.expiresAt)}</td>
                  <td>{when(t.lastUsedAt)}</td>
                  <td>
                    <button type="button" class="button small danger-text" onClick={() => setRevoking(t)}>
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
        </DataTable>
      )}
      <form class="form field-row" onSubmit={create} noValidate>
        <Field id="token-name" name="name" type="text" label="New token's name" value={name} onInput={(e) => setName(e.currentTarget.value)} autoComplete="off" invalid={!!error} errorId="token-error" />
        <div class="field">
          <label for="token-role">Role</label>
          <select id="token-role" class="input" value={role} onChange={(e) => setRole(e.currentTarget.value as Role | "")}>
            <option value="">yours ({me?.role ?? "…"})</option>
            {(["viewer", "operator", "admin"] as const)
              .filter((r) => me && ["viewer", "operator", "admin"].indexOf(r) <= ["viewer", "operator", "admin"].indexOf(me.role))
              .map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
          </select>
        </div>
        <Field id="token-days" name="days" type="text" label="Expires after (days)" hint="Empty: never." value={days} onInput={(e) => setDays(e.currentTarget.value)} autoComplete="off" />
        <div class="form-actions">
          <button type="submit" class="button primary" id="token-create">
            Create token
          </button>
        </div>
      </form>
      <FormError id="token-error" messages={error ? [error] : []} />
      {revoking && (
        <ConfirmDialog id="revoke" title={`Revoke “${revoking.name}”?`} confirmLabel="Revoke" danger onConfirm={() => void revoke()} onCancel={() => setRevoking(null)}>
          <p>Scripts using this token are refused from now on.</p>
        </ConfirmDialog>
      )}
    </section>
  );
}

type SettingsAnswer = Awaited<ReturnType<ApiClient["deviceSettings"]>>;

/** EVE's config items evebox applies: in effect, default, range; editable here only in local mode. */
function DeviceSettings({ api }: { api: ApiClient }) {
  const [data, setData] = useState<SettingsAnswer | null>(null);
  const [edits, setEdits] = useState<Record<string, string>>({});
  const [errors, setErrors] = useState<string[]>([]);
  const [saved, setSaved] = useState(false);
  const [saving, setSaving] = useState(false);

  const load = useCallback(async () => {
    try {
      setData(await api.deviceSettings());
    } catch (e) {
      setErrors([message(e)]);
    }
  }, [api]);
  useEffect(() => void load(), [load]);

  const save = async (e: Event) => {
    e.preventDefault();
    if (!data) return;
    setSaving(true);
    setSaved(false);
    setErrors([]);
    try {
      const { doc, etag } = await api.config();
      const next = { ...(doc ?? {}) } as Record<string, unknown>;
      const edited = new Set(Object.keys(edits));
      const kept = ((next.configItems as { key: string; value: string }[] | undefined) ?? []).filter((i) => !edited.has(i.key));
      const set = Object.entries(edits)
        .filter(([, v]) => v.trim() !== "")
        .map(([key, value]) => ({ key, value: value.trim() }));
      next.configItems = [...kept, ...set];
      await api.apply(next, etag);
      setEdits({});
      setSaved(true);
      await load();
    } catch (err) {
      setErrors(err instanceof ApiError && err.problems ? err.problems.map((p) => `${p.path}: ${p.message}`) : [message(err)]);
    } finally {
      setSaving(false);
    }
  };

  const readOnly = !data || data.managed;
  return (
    <section class="card card-wide" aria-labelledby="device-settings-title" id="device-settings">
      <h2 id="device-settings-title">Device settings</h2>
      <p class="muted" id="device-settings-note">
        {data?.managed
          ? "Set by the controller (its config items): shown here, changed there."
          : "EVE's config items this device applies. Leave a value empty for the default; saving writes a new config version."}
      </p>
      {data && (
        <RoleGate need="admin" id="device-settings-gate">
        <form onSubmit={save} noValidate>
          <DataTable id="settings-table" label="Device settings" columns={["Setting", "In effect", "Default", "Range", "What it does", readOnly ? "State" : "Config value"]}>
            {data.settings.map((s) => (
              <tr key={s.key} data-setting={s.key} data-state={s.state}>
                <th scope="row" class="mono">
                  {s.key}
                </th>
                <td>{s.value}</td>
                <td class="muted">{s.default}</td>
                <td class="muted">{s.range}</td>
                <td>{s.effect}</td>
                <td>
                  {readOnly ? (
                    <span>
                      {s.state === "default" ? "default" : `${s.state}: ${s.configValue}`}
                      {s.detail && <span class="muted"> — {s.detail}</span>}
                    </span>
                  ) : (
                    <>
                      <input
                        class="input"
                        aria-label={`${s.key} in the config`}
                        name={s.key}
                        value={edits[s.key] ?? s.configValue ?? ""}
                        placeholder={s.default}
                        onInput={(e) => setEdits({ ...edits, [s.key]: e.currentTarget.value })}
                      />
                      {s.detail && <span class="field-error"> {s.detail}</span>}
                    </>
                  )}
                </td>
              </tr>
            ))}
          </DataTable>
          {data.others.length > 0 && (
            <>
              <h3>Other items in the config</h3>
              <ul id="settings-others">
                {data.others.map((o) => (
                  <li key={o.key} data-item={o.key}>
                    <code>{o.key}</code> = <code>{o.value}</code>: {o.state === "unknown" ? "unknown to this device" : "no effect on this device"}
                    {o.detail ? ` (${o.detail})` : ""}
                  </li>
                ))}
              </ul>
            </>
          )}
          <FormError id="settings-error" messages={errors} />
          {saved && (
            <p class="notice" role="status" id="settings-saved">
              Saved as a new config version; the settings apply now.
            </p>
          )}
          {!readOnly && (
            <div class="form-actions">
              <button type="submit" class="button primary" id="settings-save" disabled={saving || Object.keys(edits).length === 0}>
                {saving ? "Saving…" : "Save settings"}
              </button>
            </div>
          )}
        </form>
        </RoleGate>
      )}
      {!data && <FormError id="settings-error" messages={errors} />}
    </section>
  );
}

type PowerAction = "reboot" | "shutdown";

function Power({ api }: { api: ApiClient }) {
  const [available, setAvailable] = useState<boolean | null>(null);
  const [asking, setAsking] = useState<PowerAction | null>(null);
  const [result, setResult] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    api.sessionInfo().then(
      (s) => setAvailable(s.power === true),
      () => setAvailable(false),
    );
  }, [api]);

  const confirm = async () => {
    const action = asking;
    setAsking(null);
    if (!action) return;
    setError(null);
    try {
      const r = await api.power(action);
      setResult(r.message || (action === "reboot" ? "The device is restarting." : "The device is shutting down."));
    } catch (e) {
      setError(message(e));
    }
  };

  return (
    <section class="card card-wide" aria-labelledby="power-heading">
      <h2 id="power-heading">Device power</h2>
      {available === false && (
        <p class="muted" id="power-unavailable">
          Reboot and shut down work where evebox is the device's init. This evebox runs as a program on a host, which manages its own power.
        </p>
      )}
      {available && (
        <p class="muted">
          An orderly stop: apps are stopped, the services and the store are closed, then the device restarts or powers off. Apps set to run start again after a reboot. A shut-down device
          needs someone at it to power it on again.
        </p>
      )}
      {result && (
        <p class="notice" role="status" id="power-result">
          {result}
        </p>
      )}
      <FormError id="power-error" messages={error ? [error] : []} />
      <RoleGate need="operator" id="power-gate">
      <div class="form-actions">
        <button type="button" class="button secondary" id="power-reboot" disabled={!available || !!result} onClick={() => setAsking("reboot")}>
          Reboot…
        </button>
        <button type="button" class="button danger" id="power-shutdown" disabled={!available || !!result} onClick={() => setAsking("shutdown")}>
          Shut down…
        </button>
      </div>
      </RoleGate>
      {asking && (
        <ConfirmDialog
          id="power"
          title={asking === "reboot" ? "Reboot the device?" : "Shut the device down?"}
          confirmLabel={asking === "reboot" ? "Reboot" : "Shut down"}
          danger
          onConfirm={() => void confirm()}
          onCancel={() => setAsking(null)}
        >
          <p>
            {asking === "reboot"
              ? "Every app stops while the device restarts; the console is back in about a minute."
              : "Every app stops and the device powers off. It stays off until someone powers it on at the device."}
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
