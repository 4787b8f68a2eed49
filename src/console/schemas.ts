// The shapes of the API's requests (checked by console/validate.ts) and of its small answers (documented in the
// OpenAPI document). Domain rules (a password's length, a controller URL's scheme) stay with the part that owns
// them (auth/, controller/), so there is one message for each; the schemas say the types.
import * as v from "valibot";

// ---- requests
export const SetupBody = v.object({
  token: v.pipe(v.string(), v.description("the setup token evebox printed at start (also in run/setup-token)")),
  password: v.pipe(v.string(), v.description("the admin password to set: 8 to 1024 characters")),
  user: v.optional(v.pipe(v.string(), v.description("the admin's user name (default admin)"))),
});
export const LoginBody = v.object({
  user: v.optional(v.pipe(v.string(), v.description("the user name; default: the admin made at setup"))),
  password: v.string(),
  totp: v.optional(v.pipe(v.string(), v.description("the 6-digit code of the authenticator app, or a recovery code, for a user with a second factor"))),
});
const RoleField = v.pipe(v.picklist(["viewer", "operator", "admin"]), v.description("viewer: read only; operator: also start/stop/restart/purge, consoles, reboot; admin: everything"));
export const NewUserBody = v.object({
  name: v.pipe(v.string(), v.description("1 to 32 characters: a-z, 0-9, '.', '_', '-', starting with a letter")),
  password: v.pipe(v.string(), v.description("8 to 1024 characters")),
  role: RoleField,
});
export const UserPatchBody = v.object({
  role: v.optional(RoleField),
  password: v.optional(v.pipe(v.string(), v.description("a new password: 8 to 1024 characters"))),
});
export const PolicyBody = v.object({ requireTotpForAdmins: v.boolean() });
export const TotpCodeBody = v.object({ code: v.pipe(v.string(), v.description("the 6-digit code the authenticator app shows now")) });
export const RemoveTotpBody = v.object({ password: v.pipe(v.string(), v.description("your password")) });
export const AuditQuery = v.object({
  since: v.optional(v.pipe(v.string(), v.description("records at or after this time: ISO 8601, or ms since 1970"))),
  after: v.optional(v.pipe(v.string(), v.description("records after this id (paging: the `next` of the last answer)"))),
  user: v.optional(v.pipe(v.string(), v.description("only this user's records (their tokens' included)"))),
  action: v.optional(v.pipe(v.string(), v.description("only actions containing this text, e.g. restart or /users"))),
  result: v.optional(v.pipe(v.picklist(["ok", "refused", "failed"]), v.description("only records with this result"))),
  limit: v.optional(v.pipe(v.string(), v.description("records, 1–5000 (default 500; JSON lines: up to 100,000)"))),
  format: v.optional(v.pipe(v.picklist(["json", "jsonl"]), v.description("jsonl: JSON lines, as a download"))),
});
export const PasswordBody = v.object({
  current: v.pipe(v.string(), v.description("the password now")),
  password: v.pipe(v.string(), v.description("the new password: 8 to 1024 characters")),
});
export const TokenBody = v.object({
  name: v.pipe(v.string(), v.description("1 to 100 characters")),
  role: v.optional(v.pipe(v.picklist(["viewer", "operator", "admin"]), v.description("at most yours (the default)"))),
  expiresAt: v.optional(v.pipe(v.string(), v.description("when it stops working: ISO 8601, or ms since 1970"))),
  expiresInDays: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(3650), v.description("or: days from now"))),
});
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
export const ActivityQuery = v.object({
  limit: intText("entries, 1–500 (default 50)"),
  before: intText("entries older than this id (the next page)"),
});
export const MetricsHistoryQuery = v.object({
  object: v.pipe(v.string(), v.description("`device`, or an app's UUID")),
  range: v.optional(v.pipe(v.picklist(["1h", "24h", "7d"]), v.description("how far back: 1h (10 s samples), 24h (1-minute averages), 7d (10-minute averages); default 1h"))),
});

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
export const ActivityBody = v.pipe(
  v.object({
    entries: v.array(
      v.object({
        id: v.number(),
        ts: v.string(),
        type: v.pipe(v.string(), v.description("the event's type: config.accepted, app.state, contentTree.state, reconcile.step-failed, baseos.…")),
        area: v.picklist(["config", "app", "download", "volume", "network", "update", "device", "controller", "image"]),
        message: v.string(),
        by: v.pipe(v.nullable(v.string()), v.description("who caused it: admin (the console), token:<name>, controller <host>, local-socket; null: the device")),
        object: v.nullable(v.object({ kind: v.string(), id: v.string() })),
        failed: v.boolean(),
        reason: v.nullable(v.string()),
      }),
    ),
    now: v.object({
      downloads: v.array(
        v.object({ uuid: v.string(), name: v.string(), state: v.string(), progress: v.number(), bytesDone: v.nullable(v.number()), bytesTotal: v.nullable(v.number()), bytesPerSecond: v.nullable(v.number()) }),
      ),
      apps: v.array(v.object({ uuid: v.string(), name: v.string(), state: v.string() })),
    }),
  }),
  v.title("Activity"),
  v.description("what the device did (newest first) and what it is doing now"),
);
const column = (what: string) => v.pipe(v.array(v.nullable(v.number())), v.description(what));
export const MetricsHistoryBody = v.pipe(
  v.object({
    object: v.string(),
    range: v.picklist(["1h", "24h", "7d"]),
    from: v.pipe(v.number(), v.description("start of the range, ms since the epoch")),
    to: v.pipe(v.number(), v.description("end of the range (now), ms since the epoch")),
    intervalMs: v.pipe(v.number(), v.description("the sampling interval (the 1h range's step)")),
    dropped: v.pipe(v.number(), v.description("samples not kept since start: an object over the history's cap, or a failed write")),
    series: v.object({
      ts: v.pipe(v.array(v.number()), v.description("each point's time, ms since the epoch, oldest first")),
      cpuPercent: column("CPU in use, percent of the whole device (all CPUs)"),
      memoryBytes: column("memory in use"),
      diskReadBps: column("bytes read from storage per second"),
      diskWriteBps: column("bytes written to storage per second"),
      netRxBps: column("bytes received per second"),
      netTxBps: column("bytes sent per second"),
      diskUsedBytes: column("the device's data filesystem in use (device only)"),
    }),
  }),
  v.title("MetricsHistory"),
  v.description("a series in columns: value i of each column is at ts[i]; null where not known (a first sample)"),
);
export const HealthBody = v.object({ ok: v.literal(true), version: v.string(), setupRequired: v.boolean(), deviceName: v.string() });
const RoleAnswer = v.picklist(["viewer", "operator", "admin"]);
export const SessionBody = v.object({
  authenticated: v.literal(true),
  as: v.string(),
  user: v.nullable(v.string()),
  role: RoleAnswer,
  via: v.picklist(["session", "token", "local-socket"]),
  totp: v.boolean(),
  mustEnrolTotp: v.boolean(),
  requireTotpForAdmins: v.boolean(),
  roles: v.array(v.object({ role: RoleAnswer, can: v.string() })),
  power: v.boolean(),
});
const ItemState = v.picklist(["applied", "invalid", "unknown", "ignored"]);
export const DeviceSettingsBody = v.object({
  managed: v.pipe(v.boolean(), v.description("managed: the controller sets these (read-only here)")),
  settings: v.array(
    v.object({
      key: v.string(),
      value: v.pipe(v.string(), v.description("in effect")),
      default: v.string(),
      range: v.string(),
      effect: v.string(),
      state: v.picklist(["default", "applied", "invalid", "ignored"]),
      configValue: v.nullable(v.string()),
      detail: v.nullable(v.string()),
    }),
  ),
  others: v.pipe(v.array(v.object({ key: v.string(), value: v.string(), state: ItemState, detail: v.nullable(v.string()) })), v.description("the config's items that are not settings of evebox")),
});
export const NewTokenBody = v.object({
  id: v.string(),
  name: v.string(),
  token: v.pipe(v.string(), v.description("shown once: ebx_<id>_<secret>")),
  user: v.string(),
  role: RoleAnswer,
  expiresAt: v.nullable(v.date()),
});
