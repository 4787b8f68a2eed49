// Count bounds of an EdgeDevConfig, checked on the bytes before any message is materialised: a 2-byte
// empty entry becomes a JS object of hundreds of bytes (and a problem or three), so without them a 1 MB body
// of 500,000 empty apps took 1.25 GB. Both readers (binary and proto3 JSON) scan first, with the protobufjs
// type as guide, counting entries of every repeated and map field at every depth, without allocating them.
import type protobuf from "protobufjs";
import { joinPath, MAX_PROBLEMS, type Problem } from "./problems.ts";

type Type = protobuf.Type;
type Field = protobuf.Field;

/** The firewall's bounds: far above what EVE devices carry, low enough to load in well under a second. */
export const MAX_ACES_PER_INTERFACE = 20_000;
export const MAX_ACES_PER_DEVICE = 50_000;
/** Network instances on one device (EVE devices carry a handful; each is a bridge, a dnsmasq and nft rules). */
export const MAX_NETWORK_INSTANCES = 256;
/** Any repeated or map field not named in FIELD_BOUNDS, per message. */
export const DEFAULT_MAX_ENTRIES = 1024;
/** Entries of all repeated and map fields in one document, at every depth (a full firewall is ~250,000). */
export const MAX_TOTAL_ENTRIES = 300_000;
/** Keys of one JSON object that is a message (not a map): EVE's largest message has fewer than 64 fields. */
export const MAX_OBJECT_KEYS = 256;
/** Nesting of messages (EdgeDevConfig's deepest real path is 5; DisksConfig nests itself). */
export const MAX_NESTING = 32;

/** Entries per message, by `Type.field` (short type name): what an EVE device carries, many times over. */
export const FIELD_BOUNDS: Readonly<Record<string, number>> = {
  "EdgeDevConfig.apps": 1024,
  "EdgeDevConfig.networkInstances": MAX_NETWORK_INSTANCES,
  "EdgeDevConfig.volumes": 4096,
  "EdgeDevConfig.contentInfo": 4096,
  "EdgeDevConfig.datastores": 256,
  "EdgeDevConfig.configItems": 4096,
  "EdgeDevConfig.deviceIoList": 1024,
  "EdgeDevConfig.systemAdapterList": 1024,
  "EdgeDevConfig.networks": 256,
  "EdgeDevConfig.vlans": 1024,
  "EdgeDevConfig.bonds": 256,
  "EdgeDevConfig.base": 16,
  "AppInstanceConfig.interfaces": 64,
  "AppInstanceConfig.volumeRefList": 256,
  "AppInstanceConfig.drives": 256,
  "NetworkAdapter.acls": MAX_ACES_PER_INTERFACE,
  "ACE.matches": 64,
  "ACE.actions": 16,
};

/** Entries of one field summed over the whole document. */
export const TOTAL_BOUNDS: Readonly<Record<string, number>> = {
  "NetworkAdapter.acls": MAX_ACES_PER_DEVICE,
};

function fieldKey(field: Field): string {
  return `${field.parent?.name ?? ""}.${field.name}`;
}

/** How many entries this repeated or map field may hold in one message. */
export function boundFor(field: Field): number {
  return FIELD_BOUNDS[fieldKey(field)] ?? DEFAULT_MAX_ENTRIES;
}

export function tooMany(count: number, bound: number, what = "entries"): string {
  return `${count} ${what}: at most ${bound}`;
}

/** Where a scan is: a chain of (field, index) from the document, turned into a path only when a problem is found. */
interface At {
  up: At | null;
  key: string | number;
}
function pathOf(at: At | null): string {
  const keys: (string | number)[] = [];
  for (let a = at; a; a = a.up) keys.push(a.key);
  let p = "";
  for (let i = keys.length - 1; i >= 0; i--) p = joinPath(p, keys[i]!);
  return p;
}

/** Counts kept over one scan; problems beyond MAX_PROBLEMS are counted, not kept. */
class Tally {
  readonly problems: Problem[] = [];
  extra = 0;
  entries = 0;
  private readonly totals = new Map<string, number>();

  push(path: string, message: string): void {
    if (this.problems.length < MAX_PROBLEMS) this.problems.push({ path, message });
    else this.extra++;
  }

  /** One message's count of one field: checked against its bound, and added to the document's totals. */
  count(field: Field, n: number, at: At | null): void {
    const bound = boundFor(field);
    if (n > bound) this.push(pathOf({ up: at, key: field.name }), tooMany(n, bound));
    this.entries += n;
    const key = fieldKey(field);
    if (TOTAL_BOUNDS[key] !== undefined) this.totals.set(key, (this.totals.get(key) ?? 0) + n);
  }

  finish(): void {
    for (const [key, n] of this.totals) {
      const bound = TOTAL_BOUNDS[key]!;
      if (n > bound) this.push("", tooMany(n, bound, `${key.split(".")[1]} entries in all`));
    }
    if (this.entries > MAX_TOTAL_ENTRIES) this.push("", tooMany(this.entries, MAX_TOTAL_ENTRIES, "entries of repeated fields in all"));
  }
}

export interface ScanResult {
  /** The first MAX_PROBLEMS problems. */
  problems: Problem[];
  /** Every problem found, kept or not. */
  total: number;
}

function result(t: Tally): ScanResult {
  t.finish();
  return { problems: t.problems, total: t.problems.length + t.extra };
}

// ---- binary

const PACKED_FIXED: Record<string, number> = { double: 8, fixed64: 8, sfixed64: 8, float: 4, fixed32: 4, sfixed32: 4 };
/** Wire types of scalars other than varints (0); enums are varints. */
const WIRE_TYPES: Record<string, number> = { string: 2, bytes: 2, double: 1, fixed64: 1, sfixed64: 1, float: 5, fixed32: 5, sfixed32: 5 };

/**
 * Counts, on the wire, the entries of every repeated and map field of `type` in `bytes` at every depth and
 * checks them against their bounds. Faults of the encoding itself (truncation, bad wire types) end the scan
 * quietly: the decoder reports them.
 */
export function scanBinary(type: Type, bytes: Uint8Array): ScanResult {
  const t = new Tally();
  const wire = new Wire(bytes);
  try {
      scanMessage(type, wire, 0, bytes.length, null, 0, t);
    } catch (e) {
      if (!(e instanceof Malformed)) throw e;
    }
    return result(t);
  }

  class Malformed extends Error {}

  class Wire {
    pos = 0;
    constructor(readonly b: Uint8Array) {}
    varint(end: number): number {
      // Up to 10 bytes; values above 2^53 lose precision, which only matters for lengths (then out of range anyway).
      let v = 0;
      let mul = 1;
      for (let i = 0; i < 10; i++) {
        if (this.pos >= end) throw new Malformed();
        const c = this.b[this.pos++]!;
        v += (c & 0x7f) * mul;
        if (c < 0x80) return v;
        mul *= 128;
      }
      throw new Malformed();
    }
  }

  function scanMessage(type: Type, w: Wire, start: number, end: number, at: At | null, depth: number, t: Tally): void {
    if (depth > MAX_NESTING) {
      t.push(pathOf(at), `nested more than ${MAX_NESTING} messages deep`);
      throw new Malformed(); // nothing below can be trusted to be cheap to decode; the problem above refuses it
    }
    let counts: Map<number, number> | null = null;
    w.pos = start;
    // Counted even when the encoding breaks off: protobufjs materialises every entry before the fault.
    try {
    while (w.pos < end) {
      const tag = w.varint(end);
      const id = Math.floor(tag / 8);
      const wt = tag % 8;
      if (id === 0) throw new Malformed();
      const field = type.fieldsById[id];
      let p0 = w.pos;
      switch (wt) {
        case 0:
          w.varint(end);
          break;
        case 1:
          w.pos += 8;
          break;
        case 5:
          w.pos += 4;
          break;
        case 2: {
          const len = w.varint(end);
          p0 = w.pos;
          w.pos += len;
          break;
        }
        default:
          // Groups (3, 4) are not used by the EVE API (proto3) and nest without a length: refused.
          t.push(pathOf(at), `wire type ${wt} (group) of field ${id}: not used by ${type.name}`);
          throw new Malformed();
      }
      if (w.pos > end) throw new Malformed();
      if (!field) continue;
      field.resolve();
      const rt = field.resolvedType;
      const isMsg = isType(rt);
      // protobufjs reads a known field by its declared type whatever the wire type says, so a mismatch would
      // make it decode bytes this scan skipped.
      const expected = field.map || isMsg ? 2 : (WIRE_TYPES[field.type] ?? 0);
      if (wt !== expected && !(wt === 2 && field.repeated)) {
        t.push(pathOf({ up: at, key: field.name }), `wire type ${wt} for a field of type ${field.type} (expected ${expected})`);
        throw new Malformed();
      }
      if (field.repeated || field.map) {
        let n = 1;
        if (wt === 2 && !isMsg && !field.map && field.type !== "string" && field.type !== "bytes") {
          const size = PACKED_FIXED[field.type];
          if (size) n = Math.floor((w.pos - p0) / size);
          else {
            n = 0;
            for (let i = p0; i < w.pos; i++) if (w.b[i]! < 0x80) n++;
          }
        }
        counts ??= new Map();
        counts.set(id, (counts.get(id) ?? 0) + n);
      }
      if (wt !== 2) continue;
      const after = w.pos;
      if (field.map && isMsg) {
        // A map entry is a message { key = 1; value = 2 }; only a message value can hold more entries.
        const idx = counts!.get(id)! - 1;
        w.pos = p0;
        while (w.pos < after) {
          const etag = w.varint(after);
          const ewt = etag % 8;
          if (ewt === 2) {
            const len = w.varint(after);
            const v0 = w.pos;
            if (v0 + len > after) throw new Malformed();
            if (Math.floor(etag / 8) === 2) scanMessage(rt, w, v0, v0 + len, { up: { up: at, key: field.name }, key: idx }, depth + 1, t);
            w.pos = v0 + len;
          } else if (ewt === 0) w.varint(after);
          else if (ewt === 1) w.pos += 8;
          else if (ewt === 5) w.pos += 4;
          else throw new Malformed();
        }
      } else if (isMsg && !field.map) {
        const here: At = field.repeated ? { up: { up: at, key: field.name }, key: counts!.get(id)! - 1 } : { up: at, key: field.name };
        scanMessage(rt, w, p0, after, here, depth + 1, t);
      }
      w.pos = after;
    }
  } finally {
    if (counts) for (const [id, n] of counts) t.count(type.fieldsById[id]!, n, at);
  }
}

// ---- proto3 JSON text

interface Frame {
  array: boolean;
  /** Object frames: the message type (null under a map, an unknown field or a scalar); array frames: the element type. */
  type: Type | null;
  /** The repeated or map field this frame holds the entries of. */
  field: Field | null;
  /** Entries so far (array elements, map keys). */
  n: number;
  /** Object frames: the last key read, and whether the next string is a key. */
  key: string | null;
  wantKey: boolean;
  at: At | null;
}

/**
 * The same counts over proto3 JSON text, before JSON.parse materialises it (a 16 MiB `[{},{},…]` is 470 MB of
 * objects). Not a JSON parser: it follows strings, brackets, commas and colons; JSON.parse reports bad syntax.
 */
export function scanJson(type: Type, text: string): ScanResult {
  const t = new Tally();
  const stack: Frame[] = [];
  let top: Frame | null = null;
  let pendingRoot: Type | null = type;

  // What a value starting now belongs to: its message type (for an object), and the repeated/map field (for an array or map).
  const open = (array: boolean): Frame | null => {
    let vt: Type | null = null;
    let field: Field | null = null;
    let at: At | null = null;
    if (!top) {
      vt = pendingRoot;
      pendingRoot = null;
    } else if (top.array) {
      at = { up: top.at, key: top.n - 1 };
      vt = top.type;
    } else {
      at = { up: top.at, key: top.key ?? "" };
      if (top.field) {
        // A value of a map: its type is the map's value type.
        top.field.resolve();
        vt = isType(top.field.resolvedType) ? top.field.resolvedType : null;
      } else if (top.type && top.key !== null) {
        const f = jsonField(top.type, top.key);
        if (f) {
          f.resolve();
          const rt = isType(f.resolvedType) ? f.resolvedType : null;
          if (array && f.repeated) return { array, type: rt, field: f, n: 0, key: null, wantKey: false, at };
          if (!array && f.map) return { array, type: null, field: f, n: 0, key: null, wantKey: true, at };
          vt = rt;
        }
      }
    }
    if (array) return { array, type: null, field: null, n: 0, key: null, wantKey: false, at };
    return { array, type: vt, field: null, n: 0, key: null, wantKey: true, at };
  };
  const close = (f: Frame) => {
    if (f.field) t.count(f.field, f.n, f.at?.up ?? null);
    else if (!f.array && f.n > MAX_OBJECT_KEYS) t.push(pathOf(f.at) || "(document)", tooMany(f.n, MAX_OBJECT_KEYS, "keys")); // each may be a problem of its own
    else if (f.array && f.n > DEFAULT_MAX_ENTRIES) t.push(pathOf(f.at), tooMany(f.n, DEFAULT_MAX_ENTRIES)); // arrays outside the schema
  };
  const valueStarts = () => {
    if (top?.array) {
      top.n++;
      t.entries += top.field ? 0 : 1; // counted in close() for fields of the schema
    }
  };

  const len = text.length;
  let i = 0;
  while (i < len) {
    const c = text.charCodeAt(i);
    switch (c) {
      case 0x20: case 0x0a: case 0x0d: case 0x09: case 0x2c /* , */:
        if (c === 0x2c && top && !top.array) top.wantKey = true;
        i++;
        continue;
      case 0x3a /* : */:
        if (top && !top.array) top.wantKey = false;
        i++;
        continue;
      case 0x22 /* " */: {
        let j = i + 1;
        let escaped = false;
        while (j < len) {
          const d = text.charCodeAt(j);
          if (d === 0x5c) {
            escaped = true;
            j += 2;
          } else if (d === 0x22) break;
          else j++;
        }
        if (top && !top.array && top.wantKey) {
          const raw = text.slice(i + 1, j);
          let key = raw;
          if (escaped) {
            try {
              key = JSON.parse(`"${raw}"`) as string;
            } catch {
              key = raw;
            }
          }
          top.key = key;
          top.n++; // a map's key is one entry; a message's keys are its fields
        } else valueStarts();
        i = j + 1;
        continue;
      }
      case 0x7b /* { */:
      case 0x5b /* [ */: {
        valueStarts();
        if (stack.length >= MAX_NESTING * 2) {
          t.push(pathOf(top?.at ?? null), `nested more than ${MAX_NESTING * 2} objects and arrays deep`);
          return result(t);
        }
        const f = open(c === 0x5b);
        if (f) {
          stack.push(f);
          top = f;
        }
        i++;
        continue;
      }
      case 0x7d /* } */:
      case 0x5d /* ] */: {
        const f = stack.pop();
        if (f) close(f);
        top = stack.at(-1) ?? null;
        i++;
        continue;
      }
      default: {
        // A number or a literal: one value, up to the next delimiter.
        valueStarts();
        i++;
        while (i < len) {
          const d = text.charCodeAt(i);
          if (d === 0x2c || d === 0x5d || d === 0x7d || d === 0x20 || d === 0x0a || d === 0x0d || d === 0x09 || d === 0x3a) break;
          i++;
        }
      }
    }
  }
  // An unclosed document is malformed (JSON.parse says so); its counts so far still bound it.
  for (let f = stack.pop(); f; f = stack.pop()) close(f);
  return result(t);
}

function jsonField(type: Type, key: string): Field | undefined {
  // Own properties only: a key "constructor" or "__proto__" must not find Object's.
  const own = (k: string) => (Object.hasOwn(type.fields, k) ? type.fields[k] : undefined);
  return own(key) ?? own(key.replace(/_([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase()));
}

// Duck-typed so that two copies of protobufjs (a test's and the app's) still interoperate.
function isType(t: unknown): t is Type {
  return !!t && Array.isArray((t as Type).fieldsArray);
}
