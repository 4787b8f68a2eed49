// EVE's "newlogs" upload format (lf-edge/eve-api APIv2.md, EVE's newlogd): a gzip member whose lines are
// LogEntry objects as JSON, one per line. Device bundles carry {"devID","image","eveVersion"} as JSON in the
// gzip header's comment; app bundles carry the app's name in the header's file name field.
import type { LogRow } from "../store/store.ts";

/** Bundles are cut at this much JSON text (EVE cuts its gzip files at ~50 KB compressed). */
export const MAX_BUNDLE_TEXT = 256 * 1024;

export interface NewlogEntry {
  severity: string;
  source: string;
  iid?: string;
  content: string;
  msgid: number;
  tags?: Record<string, string>;
  timestamp: Date;
  filename?: string;
  function?: string;
}

/** One LogEntry as EVE's newlogd writes it: Go's encoding/json over the generated struct (proto field names, Timestamp as {seconds, nanos}). */
export function logEntryJson(e: NewlogEntry): string {
  const ms = e.timestamp.getTime();
  const o: Record<string, unknown> = { severity: e.severity, source: e.source };
  if (e.iid) o.iid = e.iid;
  o.content = e.content;
  if (e.msgid) o.msgid = e.msgid;
  if (e.tags && Object.keys(e.tags).length) o.tags = e.tags;
  o.timestamp = { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
  if (e.filename) o.filename = e.filename;
  if (e.function) o.function = e.function;
  return JSON.stringify(o);
}

/** A stored log line as a LogEntry. */
export function entryFromRow(row: LogRow): NewlogEntry {
  return {
    severity: row.level === "warn" ? "warning" : row.level,
    source: row.source,
    content: row.message,
    msgid: row.id,
    timestamp: row.ts,
  };
}

/** Splits entries into bundles of at most MAX_BUNDLE_TEXT bytes of JSON lines (at least one entry each). */
export function bundleLines(entries: NewlogEntry[], max = MAX_BUNDLE_TEXT): string[][] {
  const out: string[][] = [];
  let cur: string[] = [];
  let size = 0;
  for (const e of entries) {
    const line = logEntryJson(e);
    if (cur.length && size + line.length + 1 > max) {
      out.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(line);
    size += line.length + 1;
  }
  if (cur.length) out.push(cur);
  return out;
}

export function deviceBundle(lines: string[], meta: { devID: string; image: string; eveVersion: string }, at = new Date()): Uint8Array {
  return gzipWithHeader(new TextEncoder().encode(lines.join("\n") + "\n"), { comment: JSON.stringify(meta), mtime: at });
}

export function appBundle(lines: string[], appName: string, at = new Date()): Uint8Array {
  return gzipWithHeader(new TextEncoder().encode(lines.join("\n") + "\n"), { name: appName, mtime: at });
}

/**
 * A single gzip member (RFC 1952) with FNAME and/or FCOMMENT set. Bun's and node's gzip writers cannot set
 * those header fields, so the header and trailer are written here around a raw DEFLATE stream.
 */
export function gzipWithHeader(data: Uint8Array, h: { name?: string; comment?: string; mtime?: Date }): Uint8Array {
  const name = h.name !== undefined ? latin1(h.name) : null;
  const comment = h.comment !== undefined ? latin1(h.comment) : null;
  const deflated = Bun.deflateSync(data as Uint8Array<ArrayBuffer>, { level: 9 });
  const headerLen = 10 + (name ? name.length + 1 : 0) + (comment ? comment.length + 1 : 0);
  const out = new Uint8Array(headerLen + deflated.length + 8);
  const dv = new DataView(out.buffer);
  out[0] = 0x1f;
  out[1] = 0x8b;
  out[2] = 8; // deflate
  out[3] = (name ? 0x08 : 0) | (comment ? 0x10 : 0);
  dv.setUint32(4, Math.floor((h.mtime?.getTime() ?? 0) / 1000), true);
  out[8] = 2; // best compression
  out[9] = 255; // OS unknown, as Go writes it
  let p = 10;
  for (const field of [name, comment]) {
    if (!field) continue;
    out.set(field, p);
    p += field.length + 1; // NUL terminator (already 0)
  }
  out.set(deflated, p);
  p += deflated.length;
  dv.setUint32(p, Bun.hash.crc32(data) >>> 0, true);
  dv.setUint32(p + 4, data.byteLength >>> 0, true);
  return out;
}

/** Reads the header fields of a gzip member (for tests and the test controller). */
export function gzipHeader(buf: Uint8Array): { name: string | null; comment: string | null; mtime: Date } {
  if (buf[0] !== 0x1f || buf[1] !== 0x8b) throw new Error("not gzip");
  const flg = buf[3]!;
  const mtime = new Date(new DataView(buf.buffer, buf.byteOffset).getUint32(4, true) * 1000);
  let p = 10;
  if (flg & 0x04) p += 2 + (buf[p]! | (buf[p + 1]! << 8));
  const cstr = () => {
    const end = buf.indexOf(0, p);
    const s = String.fromCharCode(...buf.subarray(p, end));
    p = end + 1;
    return s;
  };
  const name = flg & 0x08 ? cstr() : null;
  const comment = flg & 0x10 ? cstr() : null;
  return { name, comment, mtime };
}

/** RFC 1952 header strings are NUL-free Latin-1: other characters become "?". */
function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out[i] = c === 0 || c > 255 ? 0x3f : c;
  }
  return out;
}
