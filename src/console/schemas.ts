// The shapes of the API's requests (checked by console/validate.ts) and of its small answers (documented in the
// OpenAPI document). Domain rules (a password's length, a controller URL's scheme) stay with the part that owns
// them (auth/, controller/), so there is one message for each; the schemas say the types.
import * as v from "valibot";

// ---- requests
export const SetupBody = v.object({
  token: v.pipe(v.string(), v.description("the setup token evebox printed at start (also in run/setup-token)")),
  password: v.pipe(v.string(), v.description("the admin password to set: 8 to 1024 characters")),
});
export const LoginBody = v.object({ password: v.string() });
export const PasswordBody = v.object({
  current: v.pipe(v.string(), v.description("the password now")),
  password: v.pipe(v.string(), v.description("the new password: 8 to 1024 characters")),
});
export const TokenBody = v.object({ name: v.pipe(v.string(), v.description("1 to 100 characters")) });
export const ControllerBody = v.object({
  url: v.optional(v.pipe(v.string(), v.description("the controller's address, https://host[:port]"))),
  rootCertificate: v.optional(v.pipe(v.string(), v.description("PEM: the controller's root certificate(s)"))),
});

/** Query numbers are clamped, not refused (a UI asking for too much gets the most there is). */
const intText = (what: string) => v.optional(v.pipe(v.string(), v.description(what)));
export const HistoryQuery = v.object({
  limit: intText("versions to list, 1–500 (default 100)"),
  before: intText("list versions older than this one"),
});
export const DryRunQuery = v.object({ dryRun: v.optional(v.pipe(v.string(), v.description("1 or true: check and plan only, store nothing"))) });
export const LogsQuery = v.object({
  limit: intText("lines, 1–5000 (default 500)"),
  after: intText("only lines after this sequence number"),
});
export const RecentEventsQuery = v.object({ limit: intText("events, 1–1000 (default 100)") });

// ---- answers
export const ErrorBody = v.pipe(
  v.object({
    error: v.string(),
    problems: v.optional(v.array(v.object({ path: v.string(), message: v.string() }))),
    problemCount: v.optional(v.number()),
    truncated: v.optional(v.boolean()),
    retryAfterSeconds: v.optional(v.number()),
  }),
  v.title("Error"),
  v.description("what went wrong; a refused config adds problems (path, message), a throttled login retryAfterSeconds"),
);
export const OkBody = v.object({ ok: v.literal(true) });
export const HealthBody = v.object({ ok: v.literal(true), version: v.string(), setupRequired: v.boolean(), deviceName: v.string() });
export const SessionBody = v.object({ authenticated: v.literal(true), as: v.string(), power: v.boolean() });
export const NewTokenBody = v.object({ id: v.string(), name: v.string(), token: v.pipe(v.string(), v.description("shown once: ebx_<id>_<secret>")) });
