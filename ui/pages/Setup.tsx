import { useEffect, useRef, useState } from "preact/hooks";
import type { TargetedSubmitEvent } from "preact";
import { ApiError, type ApiClient, type Health } from "../api";
import { AuthFrame } from "../components/AuthFrame";
import { Field, FormError } from "../components/Field";

export const MIN_PASSWORD_LENGTH = 8;

type SetupField = "token" | "password" | "confirm";

export interface SetupProps {
  api: ApiClient;
  health: Health;
  /** The token from the link's ?token=, or "" when the link had none. */
  initialToken: string;
  onSetUp: () => void;
  /** The device answered that it is already set up: re-check and go to sign in. */
  onAlreadySetUp: () => void;
}

/** First start: choose the console password, proving presence with the one-time setup token. */
export function Setup({ api, health, initialToken, onSetUp, onAlreadySetUp }: SetupProps) {
  const tokenFromLink = initialToken.trim() !== "";
  const [token, setToken] = useState(initialToken.trim());
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [showPasswords, setShowPasswords] = useState(false);
  const [errors, setErrors] = useState<string[]>([]);
  const [invalid, setInvalid] = useState<SetupField[]>([]);
  const [busy, setBusy] = useState(false);
  const [alreadySetUp, setAlreadySetUp] = useState(false);
  const refs = {
    token: useRef<HTMLInputElement>(null),
    password: useRef<HTMLInputElement>(null),
    confirm: useRef<HTMLInputElement>(null),
  };

  useEffect(() => {
    (tokenFromLink ? refs.password : refs.token).current?.focus();
  }, []);

  const fail = (messages: string[], fields: SetupField[]) => {
    setErrors(messages);
    setInvalid(fields);
    if (fields[0]) refs[fields[0]].current?.focus();
  };

  const submit = async (event: TargetedSubmitEvent<HTMLFormElement>) => {
    event.preventDefault();
    if (busy) return;
    const messages: string[] = [];
    const fields: SetupField[] = [];
    const trimmedToken = token.trim();
    if (trimmedToken === "") {
      messages.push("Enter the setup token.");
      fields.push("token");
    }
    if (password.length < MIN_PASSWORD_LENGTH) {
      messages.push(`The password must be at least ${MIN_PASSWORD_LENGTH} characters long.`);
      fields.push("password");
    } else if (confirm !== password) {
      messages.push("The two passwords do not match. Type the same password in both fields.");
      fields.push("confirm");
    }
    if (messages.length > 0) return fail(messages, fields);

    setBusy(true);
    setErrors([]);
    setInvalid([]);
    try {
      await api.setup(trimmedToken, password);
      onSetUp();
      return;
    } catch (e) {
      const error = e instanceof ApiError ? e : new ApiError(0, String(e));
      if (error.status === 403) {
        fail(
          [
            "The setup token is not valid. Copy it again from evebox's start-up output or from run/setup-token on the device.",
          ],
          ["token"],
        );
      } else if (error.status === 409) {
        setAlreadySetUp(true);
        fail(["This device is already set up. Sign in with its console password."], []);
      } else if (error.problems) {
        const fieldsWithProblems = error.problems
          .map((p) => p.path.replace(/^\//, ""))
          .filter((p): p is SetupField => p === "token" || p === "password");
        fail(
          error.problems.map((p) => p.message),
          fieldsWithProblems,
        );
      } else {
        fail([error.message], error.status === 400 ? ["password"] : []);
      }
    }
    setBusy(false);
  };

  const has = (field: SetupField) => invalid.includes(field);
  const passwordType = showPasswords ? "text" : "password";

  return (
    <AuthFrame deviceName={health.deviceName} version={health.version}>
      <h1>Set up this device</h1>
      <p>
        Choose the password that protects this console. You need the one-time setup token to prove you have
        access to the device.
      </p>
      <form class="form" onSubmit={submit} noValidate aria-describedby={errors.length ? "setup-error" : undefined}>
        <Field
          id="setup-token"
          name="token"
          label="Setup token"
          type="text"
          mono
          autoComplete="off"
          autoCapitalize="off"
          spellcheck={false}
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
          invalid={has("token")}
          errorId="setup-error"
          inputRef={refs.token}
          hint={
            tokenFromLink ? (
              "Filled in from the link you opened."
            ) : (
              <>
                evebox prints the token when it starts, and stores it on the device in <code>run/setup-token</code>.
                Paste it here.
              </>
            )
          }
        />
        <Field
          id="setup-password"
          name="password"
          label="New password"
          type={passwordType}
          autoComplete="new-password"
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
          invalid={has("password")}
          errorId="setup-error"
          inputRef={refs.password}
          hint={`At least ${MIN_PASSWORD_LENGTH} characters.`}
        />
        <Field
          id="setup-confirm"
          name="confirm"
          label="Confirm password"
          type={passwordType}
          autoComplete="new-password"
          value={confirm}
          onInput={(e) => setConfirm(e.currentTarget.value)}
          invalid={has("confirm")}
          errorId="setup-error"
          inputRef={refs.confirm}
        />
        <div class="checkbox">
          <input
            id="setup-show"
            type="checkbox"
            checked={showPasswords}
            onChange={(e) => setShowPasswords(e.currentTarget.checked)}
          />
          <label for="setup-show">Show passwords</label>
        </div>
        <FormError id="setup-error" messages={errors} />
        <div class="form-actions">
          <button type="submit" id="setup-submit" class="button primary" disabled={busy}>
            {busy ? "Setting up…" : "Set password and continue"}
          </button>
          {alreadySetUp && (
            <button type="button" class="button secondary" onClick={onAlreadySetUp}>
              Go to sign in
            </button>
          )}
        </div>
      </form>
    </AuthFrame>
  );
}
