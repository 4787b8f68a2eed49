import type { LogLine } from "./types.ts";

// The engine multiplexes stdout and stderr of a non-TTY container into frames:
// [stream type (1 stdout, 2 stderr, 3 engine error), 0, 0, 0, payload size (uint32 BE)] + payload.
// With `timestamps: true` every frame is one log message prefixed by an RFC 3339 nano timestamp.

const HEADER = 8;

export class LogDemuxer {
  private pending: Buffer = Buffer.alloc(0);
  private readonly decoder = new TextDecoder();

  /** Feeds raw bytes; returns the lines completed by them. */
  push(chunk: Uint8Array): LogLine[] {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const lines: LogLine[] = [];
    let offset = 0;
    while (this.pending.length - offset >= HEADER) {
      const type = this.pending[offset];
      const size = this.pending.readUInt32BE(offset + 4);
      if (this.pending.length - offset - HEADER < size) break;
      const payload = this.pending.subarray(offset + HEADER, offset + HEADER + size);
      offset += HEADER + size;
      if (type === 0) continue; // stdin is never attached; skip defensively
      const stream = type === 1 ? "stdout" : "stderr";
      for (const raw of this.decoder.decode(payload).split("\n")) {
        if (raw === "") continue;
        lines.push(parseTimestamped(stream, raw));
      }
    }
    this.pending = this.pending.subarray(offset);
    return lines;
  }

  /** Bytes left over that never made a whole frame (a truncated stream). */
  get leftover(): number {
    return this.pending.length;
  }
}

export function parseTimestamped(stream: LogLine["stream"], raw: string): LogLine {
  const space = raw.indexOf(" ");
  const stamp = space > 0 ? raw.slice(0, space) : raw;
  const ts = parseEngineTime(stamp);
  if (ts === null) return { stream, ts: new Date(), line: raw };
  return { stream, ts, line: space > 0 ? raw.slice(space + 1) : "" };
}

/** Parses RFC 3339 with up to nanoseconds (JS dates hold milliseconds). Null when not a timestamp. */
export function parseEngineTime(stamp: string): Date | null {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/.exec(stamp);
  if (!m) return null;
  const millis = (m[2] ?? "").padEnd(3, "0").slice(0, 3);
  const date = new Date(`${m[1]}.${millis}${m[3]}`);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** The engine reports "never" as the zero time. */
export function engineTimeOrNull(stamp: string | undefined): Date | null {
  if (!stamp || stamp.startsWith("0001-01-01")) return null;
  return parseEngineTime(stamp);
}
