// The config contract: every accepted document becomes a version in the store, exactly one is
// current, and whoever applies config (the reconciler) only ever reads the current one.
import type protobuf from "protobufjs";
import type { EventBus } from "../model/events.ts";
import type { ConfigSummary } from "../store/schema.ts";
import type { Store } from "../store/store.ts";
import { type ConfigChange, diffConfigs } from "./diff.ts";
import { fromProto3Json, toProto3Json } from "./json.ts";
import { type ScanResult, scanBinary, scanJson } from "./bounds.ts";
import { ConfigRejected, MAX_PROBLEMS, type Problem } from "./problems.ts";
import type { DeviceModel } from "./model.ts";
import { type ObjectProblem, readConfig, type ValidationEnv } from "./validate.ts";
import { DEVICE_ENV } from "./device-env.ts";
import { normalizeUuids } from "./uuids.ts";

export const EDGE_DEV_CONFIG = "org.lfedge.eve.config.EdgeDevConfig";

// The EVE API types (protobufjs and the config's part of the descriptor) load on first use, not at start-up:
// a device without a config yet, or one only asked for its health, never pays for them (proto/index.ts configType).
let proto: typeof import("../proto/index.ts") | null = null;
function lookupType(name: string): protobuf.Type {
  proto ??= require("../proto/index.ts") as typeof import("../proto/index.ts");
  return proto.configType(name);
}
const KEEP_REJECTED_BYTES = 1024 * 1024;

export type ConfigSource = "local" | "controller";
type Doc = Record<string, any>;

export interface PutOptions {
  source: ConfigSource;
  author: string;
  dryRun?: boolean;
  note?: string;
}

export interface PutResult {
  dryRun: boolean;
  /** The document is identical to the current one: nothing was stored. */
  unchanged: boolean;
  version: number | null;
  hash: string;
  /** What applying it changes, object by object. */
  plan: ConfigChange[];
  /** Semantic faults in a controller's document: accepted, but these objects are held in error. */
  objectErrors: ObjectProblem[];
}

export interface ParsedConfig {
  bytes: Uint8Array;
  hash: string;
  doc: Doc;
}

/** The model of one accepted version (model.ts) and its validation's problems (a controller's faulty objects). */
export interface VersionModel {
  version: number;
  model: DeviceModel;
  problems: ObjectProblem[];
}

export type ConfigListener = (current: { version: number; hash: string; doc: Doc; source: ConfigSource }) => void;

export class ConfigService {
  private cache: { version: number; doc: Doc; read?: { model: DeviceModel; problems: ObjectProblem[] } } | null = null;
  private readonly listeners = new Set<ConfigListener>();

  constructor(
    private readonly store: Store,
    private readonly events: EventBus,
    /** What validation asks of the device (its ports, networks, memory); the running device unless a test gives its own. */
    private readonly env: ValidationEnv = DEVICE_ENV,
  ) {}

  private get type(): protobuf.Type {
    return lookupType(EDGE_DEV_CONFIG);
  }

  /** Decodes and checks structure. Throws ConfigRejected listing every problem. */
  parse(body: Uint8Array, contentType: string): ParsedConfig {
    const type = this.type;
    const kind = bodyKind(contentType);
    let message: protobuf.Message;
    if (kind === "json") {
      let text: string;
      let json: unknown;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(body);
      } catch (e) {
        throw new ConfigRejected([{ path: "", message: `malformed JSON: ${(e as Error).message}` }]);
      }
      refuseOverBounds(scanJson(type, text));
      try {
        json = JSON.parse(text);
      } catch (e) {
        throw new ConfigRejected([{ path: "", message: `malformed JSON: ${(e as Error).message}` }]);
      }
      const { value, problems } = fromProto3Json(type, json);
      if (problems.length) throw new ConfigRejected(problems);
      message = type.fromObject(value);
    } else if (kind === "binary") {
      refuseOverBounds(scanBinary(type, body));
      try {
        message = type.decode(body);
      } catch (e) {
        throw new ConfigRejected([{ path: "", message: `malformed protobuf (EdgeDevConfig): ${(e as Error).message}` }]);
      }
      const err = type.verify(message);
      if (err) throw new ConfigRejected([{ path: "", message: `invalid EdgeDevConfig: ${err}` }]);
    } else {
      throw new ConfigRejected(
        [{ path: "", message: `unsupported Content-Type "${contentType}": send application/json (proto3 JSON) or application/x-proto-binary` }],
        "unsupported-type",
      );
    }
    const bytes = type.encode(message).finish();
    const doc = normalizeUuids(type.toObject(message, { longs: String, enums: String, bytes: String, arrays: true, defaults: false }) as Doc);
    return { bytes, hash: sha256hex(bytes), doc };
  }

  /**
   * Offers a document. Local documents are refused whole on any problem; a controller's is refused
   * only for structural faults, and its semantically faulty objects are reported in objectErrors.
   */
  put(body: Uint8Array, contentType: string, opts: PutOptions): PutResult {
    let parsed: ParsedConfig;
    try {
      parsed = this.parse(body, contentType);
    } catch (e) {
      if (e instanceof ConfigRejected && !opts.dryRun) this.recordRejected(body, opts, e.problems, e.total);
      throw e;
    }
    return this.offer(parsed, opts);
  }

  private offer(parsed: ParsedConfig, opts: PutOptions): PutResult {
    // Validation reads the document into the device's model; an accepted version keeps the model it was read into.
    const read = readConfig(parsed.doc, this.env);
    const objectErrors = read.problems;
    if (objectErrors.length && opts.source === "local") {
      const problems = objectErrors.map(({ path, message }) => ({ path, message }));
      if (!opts.dryRun) this.recordRejected(parsed.bytes, opts, problems);
      throw new ConfigRejected(problems);
    }
    const cur = this.currentDoc();
    const plan = diffConfigs(cur?.doc ?? null, parsed.doc);
    const curHash = this.store.current()?.hash;
    if (opts.dryRun) return { dryRun: true, unchanged: curHash === parsed.hash, version: null, hash: parsed.hash, plan, objectErrors };
    if (curHash === parsed.hash) return { dryRun: false, unchanged: true, version: cur!.version, hash: parsed.hash, plan: [], objectErrors };

    const version = this.store.addConfigVersion(
      {
        source: opts.source,
        author: opts.author,
        hash: parsed.hash,
        receivedAt: new Date(),
        bytes: Buffer.from(parsed.bytes),
        status: "accepted",
        error: objectErrors.length ? objectErrors.map((p) => `${p.path}: ${p.message}`).join("; ") : null,
        note: opts.note ?? null,
        summary: summarize(parsed.doc, objectErrors),
      },
      true,
    );
    this.cache = { version, doc: parsed.doc, read };
    this.events.publish({
      type: "config.accepted",
      message: `config version ${version} accepted from ${opts.source} (${opts.author}): ${plan.length} change(s)`,
      data: { version, hash: parsed.hash, source: opts.source, author: opts.author, changes: plan.length, note: opts.note ?? null },
    });
    for (const l of this.listeners) l({ version, hash: parsed.hash, doc: parsed.doc, source: opts.source });
    return { dryRun: false, unchanged: false, version, hash: parsed.hash, plan, objectErrors };
  }

  private recordRejected(body: Uint8Array, opts: PutOptions, problems: Problem[], total = problems.length): void {
    const listed = problems.slice(0, MAX_PROBLEMS).map((p) => (p.path ? `${p.path}: ${p.message}` : p.message));
    if (total > listed.length) listed.push(`… ${total - listed.length} more`);
    const error = listed.join("; ").slice(0, 8192);
    const kept = body.byteLength <= KEEP_REJECTED_BYTES ? body : new Uint8Array(0);
    const version = this.store.addConfigVersion(
      {
        source: opts.source,
        author: opts.author,
        hash: sha256hex(body),
        receivedAt: new Date(),
        bytes: Buffer.from(kept),
        status: "rejected",
        error,
        note: kept === body ? (opts.note ?? null) : `body of ${body.byteLength} bytes not kept`,
        summary: null,
      },
      false,
    );
    this.events.publish({
      type: "config.rejected",
      message: `config from ${opts.source} (${opts.author}) refused: ${total} problem(s); the running config is unchanged`,
      data: { version, source: opts.source, author: opts.author, problems: problems.slice(0, 50) },
    });
  }

  /** Makes an earlier accepted version current again, as a new version (history stays linear). */
  rollback(version: number, author: string, dryRun = false): PutResult {
    const row = this.store.configVersion(version);
    if (!row) throw new ConfigRejected([{ path: "version", message: `no config version ${version}` }]);
    if (row.status !== "accepted") throw new ConfigRejected([{ path: "version", message: `version ${version} was rejected; only accepted versions can be rolled back to` }]);
    const parsed = this.parse(new Uint8Array(row.bytes), "application/x-proto-binary");
    return this.offer(parsed, { source: "local", author, dryRun, note: `rollback to version ${version}` });
  }

  currentDoc(): { version: number; doc: Doc } | null {
    const cur = this.store.current();
    if (!cur) return null;
    if (this.cache?.version === cur.version) return this.cache;
    const row = this.store.currentBytes()!;
    const type = this.type;
    const doc = normalizeUuids(type.toObject(type.decode(row.bytes), { longs: String, enums: String, bytes: String, arrays: true, defaults: false }) as Doc);
    this.cache = { version: cur.version, doc };
    return this.cache;
  }

  /** The model of the current accepted version, read once per version (at acceptance, or on first use after a start). */
  model(): VersionModel | null {
    const cur = this.currentDoc();
    if (!cur) return null;
    const c = this.cache!;
    c.read ??= readConfig(c.doc, this.env);
    return { version: c.version, model: c.read.model, problems: c.read.problems };
  }

  current(format: "json" | "binary"): { version: number; hash: string; bytes: Uint8Array; json?: Doc } | null {
    const row = this.store.currentBytes();
    if (!row) return null;
    if (format === "binary") return { version: row.version, hash: row.hash, bytes: row.bytes };
    const type = this.type;
    return { version: row.version, hash: row.hash, bytes: row.bytes, json: toProto3Json(type, type.decode(row.bytes)) };
  }

  /** One version with its document as proto3 JSON (rejected ones as they were sent, when kept). */
  version(v: number) {
    const row = this.store.configVersion(v);
    if (!row) return null;
    const { bytes, ...meta } = row;
    let document: unknown = null;
    if (row.status === "accepted") document = toProto3Json(this.type, this.type.decode(bytes));
    return { ...meta, size: bytes.byteLength, current: this.store.current()?.version === v, document };
  }

  onChange(l: ConfigListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

/** Entry counts are checked on the bytes, before anything is materialised (bounds.ts). */
function refuseOverBounds(scan: ScanResult): void {
  if (scan.total) throw new ConfigRejected(scan.problems, "invalid", scan.total);
}

function bodyKind(contentType: string): "json" | "binary" | null {
  const ct = contentType.split(";")[0]!.trim().toLowerCase();
  if (ct === "application/json" || ct === "" || ct === "text/json") return "json";
  if (["application/x-proto-binary", "application/x-protobuf", "application/protobuf", "application/octet-stream"].includes(ct)) return "binary";
  return null;
}

export function sha256hex(bytes: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
}

function summarize(doc: Doc, errors: ObjectProblem[]): ConfigSummary {
  return {
    apps: doc.apps?.length ?? 0,
    volumes: doc.volumes?.length ?? 0,
    contentTrees: doc.contentInfo?.length ?? 0,
    networkInstances: doc.networkInstances?.length ?? 0,
    datastores: doc.datastores?.length ?? 0,
    configTimestamp: doc.configTimestamp ? String(doc.configTimestamp) : null,
    ...(errors.length ? { objectErrors: errors.length } : {}),
  } as ConfigSummary;
}
