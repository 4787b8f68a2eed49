import { useEffect, useRef, useState } from "preact/hooks";
import type { TargetedSubmitEvent } from "preact";
import { ApiError, type ApiClient, type Health } from "../api";
import { AuthFrame } from "../components/AuthFrame";
import { Field, FormError } from "../components/Field";
import { formatWait } from "../format";

export interface LoginProps {
  api: ApiClient;
  health: Health;
  /** Why the user is here, e.g. an expired session; shown as a calm note, not an error. */
  notice?: string | null;
  onLoggedIn: () => void;
}

export function Login({ api, health, notice, onLoggedIn }: LoginProps) {
  const [user, setUser] = useState("");
  const [password, setPassword] = useState("");
  // Shown once the device says this user has a second factor.
  const [needCode, setNeedCode] = useState(false);
  const [code, setCode] = useState("");
  const codeInput = useRef<HTMLInputElement>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // When the device slows sign-in attempts (429), the button stays disabled until this time.
  const [retryAt, setRetryAt] = useState<number | null>(null);
  const [now, setNow] = useState(() => Date.now());
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => input.current?.focus(), []);

  useEffect(() => {
    if (retryAt === null) return;
    const timer = setInterval(() => {
      const t = Date.now();
      setNow(t);
      if (t >= retryAt) {
        setRetryAt(null);
        setError(null);
        input.current?.focus();
      }
    }, 250);
    return () => clearInterval(timer);
  }, [retryAt]);

  const waiting = retryAt !== null && now < retryAt;
  const secondsLeft = waiting ? Math.ceil((retryAt - now) / 1000) : 0;

  const submit = async (event: TargetedSubmitEvent<HTMLFormElement>) => {
    event.preventDefault();
    if (busy || waiting) return;
    if (password === "") {
      setError("Enter the console password.");
      input.current?.focus();
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api.login(password, user.trim() || undefined, needCode ? code.trim() : undefined);
      onLoggedIn();
      return;
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(0, String(e));
      if (err.status === 401 && err.details.totpRequired) {
        const first = !needCode;
        setNeedCode(true);
        setError(first ? null : "Wrong or already used code. Enter the newest code from your authenticator app, or a recovery code.");
        setCode("");
        setBusy(false);
        setTimeout(() => codeInput.current?.focus(), 0);
        return;
      } else if (err.status === 401) {
        setError(user.trim() ? "Wrong user name or password. Check them and try again." : "Wrong password. Check it and try again.");
      } else if (err.status === 429) {
        const wait = err.retryAfterSeconds ?? 30;
        setError(`Too many sign-in attempts. Try again in ${formatWait(wait)}.`);
        setNow(Date.now());
        setRetryAt(Date.now() + Math.max(1, wait) * 1000);
      } else {
        setError(err.message);
      }
      setPassword("");
      input.current?.focus();
    }
    setBusy(false);
  };

  return (
    <AuthFrame deviceName={health.deviceName} version={health.version}>
      <h1>Sign in</h1>
      {notice && !error && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <form class="form" onSubmit={submit} noValidate>
        <Field
          id="login-user"
          name="username"
          label="User name"
          hint="Leave empty for the admin made at setup."
          type="text"
          autoComplete="username"
          autoCapitalize="off"
          spellcheck={false}
          value={user}
          onInput={(e) => setUser(e.currentTarget.value)}
        />
        <Field
          id="login-password"
          name="password"
          label="Console password"
          type="password"
          autoComplete="current-password"
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
          invalid={error !== null && !waiting}
          errorId="login-error"
          inputRef={input}
        />
        {needCode && (
          <Field
            id="login-totp"
            name="totp"
            label="Code from your authenticator app"
            hint="Six digits, or one of your recovery codes."
            type="text"
            autoComplete="one-time-code"
            value={code}
            onInput={(e) => setCode(e.currentTarget.value)}
            invalid={error !== null && !waiting}
            errorId="login-error"
            inputRef={codeInput}
          />
        )}
        <FormError id="login-error" messages={error ? [error] : []} />
        <div class="form-actions">
          <button type="submit" id="login-submit" class="button primary" disabled={busy || waiting}>
            {busy ? "Signing in…" : waiting ? `Wait ${secondsLeft} s` : "Sign in"}
          </button>
        </div>
      </form>
    </AuthFrame>
  );
}
