// The store's tables. Change this file, then `npm run db:generate` writes a new migration
// (drizzle-kit) and re-embeds every migration in migrations.gen.ts.
import { blob, index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** Every config document ever offered to the device, accepted or not. Its id is the version number. */
export const configVersions = sqliteTable(
  "config_versions",
  {
    version: integer("version").primaryKey({ autoIncrement: true }),
    source: text("source", { enum: ["local", "controller"] }).notNull(),
    author: text("author").notNull(),
    hash: text("hash").notNull(),
    receivedAt: integer("received_at", { mode: "timestamp_ms" }).notNull(),
    bytes: blob("bytes", { mode: "buffer" }).notNull(),
    status: text("status", { enum: ["accepted", "rejected"] }).notNull(),
    error: text("error"),
    note: text("note"),
    /** A small JSON summary (object counts, names) so status never has to decode the document. */
    summary: text("summary", { mode: "json" }).$type<ConfigSummary>(),
  },
  (t) => [index("config_versions_hash").on(t.hash)],
);

export interface ConfigSummary {
  apps: number;
  volumes: number;
  contentTrees: number;
  networkInstances: number;
  datastores: number;
  configTimestamp?: string | null;
}

/** Exactly one row (id = 1) naming the version the reconciler runs. */
export const currentConfig = sqliteTable("current_config", {
  id: integer("id").primaryKey(),
  version: integer("version")
    .notNull()
    .references(() => configVersions.version),
  since: integer("since", { mode: "timestamp_ms" }).notNull(),
});

/** Small device-wide settings (admin password hash, device name, …). */
export const settings = sqliteTable("settings", {
  key: text("key").primaryKey(),
  value: text("value").notNull(),
});

/** Console sessions; the cookie holds a random secret, only its sha256 is stored. */
export const sessions = sqliteTable("sessions", {
  idHash: text("id_hash").primaryKey(),
  createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
  expiresAt: integer("expires_at", { mode: "timestamp_ms" }).notNull(),
  client: text("client"),
  /** Whose session (users.name); ended when the user is removed or their role changes. */
  user: text("user"),
});

/** API tokens for scripts; shown once, stored as sha256 of the secret part. */
export const apiTokens = sqliteTable("api_tokens", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  secretHash: text("secret_hash").notNull(),
  createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
  lastUsedAt: integer("last_used_at", { mode: "timestamp_ms" }),
  /** Whose token (users.name): removed with the user. */
  user: text("user"),
  /** Never above the user's role (the lower of the two counts at each request). */
  role: text("role", { enum: ["viewer", "operator", "admin"] }),
  expiresAt: integer("expires_at", { mode: "timestamp_ms" }),
});

/** The console's users, each with one role; the one made at setup is an admin (settings.setup_admin). */
export const users = sqliteTable("users", {
  name: text("name").primaryKey(),
  role: text("role", { enum: ["viewer", "operator", "admin"] }).notNull(),
  passwordHash: text("password_hash").notNull(),
  createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
  updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
  /** The confirmed TOTP secret (base32); null: no second factor. */
  totpSecret: text("totp_secret"),
  /** A secret being enrolled, until a code from it is confirmed. */
  totpPending: text("totp_pending"),
  /** The last TOTP time step accepted: a code is good once. */
  totpLastStep: integer("totp_last_step"),
  /** sha256 of each unused one-time recovery code. */
  recoveryCodes: text("recovery_codes", { mode: "json" }).$type<string[]>(),
});

/**
 * Who did what: every state-changing request and every login. Append-only from the API; bounded in bytes by
 * store.addAudit (oldest first), the loss counted in settings.audit_lost.
 */
export const audit = sqliteTable(
  "audit",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    ts: integer("ts", { mode: "timestamp_ms" }).notNull(),
    /** The user who asked (by session or through their token); null: not signed in (a failed login names who was tried in `object`). */
    user: text("user"),
    /** The API token's id and name, when one was used. */
    token: text("token"),
    client: text("client").notNull(),
    /** What was asked: "login", or the route ("POST /api/v1/apps/{uuid}/restart"). */
    action: text("action").notNull(),
    /** What it was asked of: the path's object (an app's uuid, a user's name, a config version). */
    object: text("object"),
    /** "ok", "refused" (4xx) or "failed" (5xx), and the status. */
    result: text("result").notNull(),
    status: integer("status").notNull(),
    detail: text("detail"),
    size: integer("size").notNull(),
  },
  (t) => [index("audit_ts").on(t.ts)],
);

/** What evebox last observed of each object it manages (apps, volumes, networks, …). */
export const observedObjects = sqliteTable(
  "observed_objects",
  {
    kind: text("kind").notNull(),
    id: text("id").notNull(),
    name: text("name"),
    state: text("state").notNull(),
    error: text("error"),
    data: text("data", { mode: "json" }).$type<Record<string, unknown>>(),
    updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.kind, t.id] })],
);

/** Things that happened (config accepted, app state changed, login failed, …); bounded. */
export const events = sqliteTable(
  "events",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    ts: integer("ts", { mode: "timestamp_ms" }).notNull(),
    type: text("type").notNull(),
    objectKind: text("object_kind"),
    objectId: text("object_id"),
    message: text("message").notNull(),
    data: text("data", { mode: "json" }).$type<Record<string, unknown>>(),
  },
  (t) => [index("events_object").on(t.objectKind, t.objectId)],
);

/** Device and app log lines; bounded. */
export const logs = sqliteTable(
  "logs",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    ts: integer("ts", { mode: "timestamp_ms" }).notNull(),
    source: text("source").notNull(), // "device" | "app" | a service name
    objectId: text("object_id"),
    level: text("level").notNull().default("info"),
    message: text("message").notNull(),
  },
  (t) => [index("logs_object").on(t.source, t.objectId, t.id)],
);

/**
 * Metrics history for the console's graphs (telemetry/history.ts writes it, store/metrics-history.ts reads it):
 * one row per object (`device` or an app's UUID), tier and time. Tier 0 holds the 10 s samples for an hour, tier
 * 1 their 1-minute averages for a day, tier 2 10-minute averages for 30 days, so its size is bounded by the number
 * of objects (src/store/README.md). Rates are per second over the sample's interval; null where not known yet.
 * The migration makes it WITHOUT ROWID: the primary key is the row, no second copy in an index.
 */
export const metricPoints = sqliteTable(
  "metric_points",
  {
    tier: integer("tier").notNull(),
    object: text("object").notNull(),
    ts: integer("ts").notNull(),
    /** CPU use in hundredths of a percent of the whole device (all CPUs = 10000). */
    cpu: integer("cpu"),
    memoryBytes: integer("memory_bytes"),
    diskReadBps: integer("disk_read_bps"),
    diskWriteBps: integer("disk_write_bps"),
    netRxBps: integer("net_rx_bps"),
    netTxBps: integer("net_tx_bps"),
    /** The device's data filesystem in use; null for apps. */
    diskUsedBytes: integer("disk_used_bytes"),
  },
  (t) => [primaryKey({ columns: [t.tier, t.object, t.ts] })],
);

/**
 * Messages waiting for the controller (info, metrics, logs, flow logs), sent oldest first. Bounded in bytes by
 * controller/outbox.ts: metrics and logs are dropped oldest-first; the latest info per object is never dropped.
 */
export const controllerOutbox = sqliteTable(
  "controller_outbox",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    kind: text("kind", { enum: ["info", "metrics", "logs", "flowlog"] }).notNull(),
    /** For info: the object described ("app:<uuid>"); a newer info for it replaces an unsent older one. */
    key: text("key"),
    /** Below /api/v2/edgedevice/id/{device uuid}/, e.g. "info" or "apps/instanceid/{uuid}/newlogs". */
    path: text("path").notNull(),
    /** The unsigned payload; it is signed when sent, with the device certificate of that moment. */
    body: blob("body", { mode: "buffer" }).notNull(),
    size: integer("size").notNull(),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
    attempts: integer("attempts").notNull().default(0),
  },
  (t) => [index("controller_outbox_key").on(t.key)],
);

/** Controller sync state that outlives a restart: device UUID, last config hash and timestamp, counters, digests of what was last reported. */
export const controllerState = sqliteTable("controller_state", {
  key: text("key").primaryKey(),
  value: text("value").notNull(),
});

/** App bundles imported on this device (src/bundles/): what each added, with which parameters. */
export const bundles = sqliteTable("bundles", {
  name: text("name").primaryKey(),
  version: text("version").notNull(),
  description: text("description").notNull(),
  /** The parameter values it was imported with. */
  params: text("params", { mode: "json" }).$type<Record<string, string>>().notNull(),
  /** The objects it added, by collection (bundles/plan.ts ObjectRefs). */
  objects: text("objects", { mode: "json" }).$type<Record<string, string[]>>().notNull(),
  /** The images it brought: name → sha256. */
  images: text("images", { mode: "json" }).$type<Record<string, string>>().notNull(),
  manifestSha256: text("manifest_sha256").notNull(),
  configVersion: integer("config_version"),
  /** The trusted key that signed it, or null. */
  signer: text("signer"),
  installedAt: integer("installed_at", { mode: "timestamp_ms" }).notNull(),
  installedBy: text("installed_by").notNull(),
});

/** Public keys (ed25519) whose bundle signatures this device trusts. */
export const bundleKeys = sqliteTable("bundle_keys", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  publicKey: text("public_key").notNull(),
  addedAt: integer("added_at", { mode: "timestamp_ms" }).notNull(),
  addedBy: text("added_by").notNull(),
});

/**
 * Each app's use of each patch envelope it sees (the metadata server's counters: EVE's AppPatchEnvelopeMetric),
 * kept across restarts as EVE keeps them. Bounded: rows of an app, envelope or version no longer in the current
 * config are removed (store/metadata-state.ts `keepUsage`).
 */
export const patchEnvelopeUsage = sqliteTable(
  "patch_envelope_usage",
  {
    app: text("app").notNull(),
    envelope: text("envelope").notNull(),
    version: text("version").notNull(),
    /** description.json answers that listed it. */
    apiCalls: integer("api_calls").notNull(),
    /** Its files (one, or the zip of all) served. */
    downloads: integer("downloads").notNull(),
  },
  (t) => [primaryKey({ columns: [t.app, t.envelope, t.version] })],
);

/**
 * The last status each app posted to the metadata server's appCustomStatus (at most 32 KiB, the server checks it),
 * as posted: what the controller gets as ZInfoAppInstMetaData. One row per app of the current config.
 */
export const appCustomStatus = sqliteTable("app_custom_status", {
  app: text("app").primaryKey(),
  data: blob("data", { mode: "buffer" }).notNull(),
  updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
});
