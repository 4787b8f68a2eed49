// A zip archive of an envelope's files, stored (no compression), streamed: what `GET /eve/v1/patch/download/{patch}`
// answers (EVE's is a zip of the envelope's files). Inline artifacts are small texts; a volume artifact's file may be
// large, so each entry's bytes are streamed from where they are and its CRC-32 is known before (computed once per
// content-addressed file, `crc32OfFile`), which lets every header be written before its data (no data descriptors,
// which some unzip programs reading a stream do not take for stored entries). No zip64: an archive over 4 GiB is
// refused (`zipLength` null). PKWARE APPNOTE 6.3: local headers, central directory, end.
const enc = new TextEncoder();

/** The largest size or offset a zip without zip64 records. */
export const ZIP_MAX = 0xffffffff;

export interface ZipEntry {
  name: string;
  size: number;
  /** CRC-32 of the bytes `body` gives. */
  crc: number;
  body: () => Uint8Array | ReadableStream<Uint8Array>;
}

function dosDateTime(date: Date): { time: number; date: number } {
  // MS-DOS time and date (the epoch of zip is 1980: anything earlier is written as 1980-01-01 00:00).
  const d = date.getUTCFullYear() < 1980 ? new Date(Date.UTC(1980, 0, 1)) : date;
  return {
    time: (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1),
    date: ((d.getUTCFullYear() - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
  };
}

function localHeader(name: Uint8Array, e: ZipEntry, t: { time: number; date: number }): Uint8Array {
  const local = new Uint8Array(30 + name.length);
  const l = new DataView(local.buffer);
  l.setUint32(0, 0x04034b50, true);
  l.setUint16(4, 10, true); // version needed: 1.0 (stored)
  l.setUint16(6, 0x0800, true); // UTF-8 names
  l.setUint16(8, 0, true); // stored
  l.setUint16(10, t.time, true);
  l.setUint16(12, t.date, true);
  l.setUint32(14, e.crc >>> 0, true);
  l.setUint32(18, e.size, true);
  l.setUint32(22, e.size, true);
  l.setUint16(26, name.length, true);
  local.set(name, 30);
  return local;
}

function centralHeader(name: Uint8Array, e: ZipEntry, t: { time: number; date: number }, offset: number): Uint8Array {
  const central = new Uint8Array(46 + name.length);
  const c = new DataView(central.buffer);
  c.setUint32(0, 0x02014b50, true);
  c.setUint16(4, 0x031e, true); // made by: Unix, 3.0
  c.setUint16(6, 10, true);
  c.setUint16(8, 0x0800, true);
  c.setUint16(10, 0, true);
  c.setUint16(12, t.time, true);
  c.setUint16(14, t.date, true);
  c.setUint32(16, e.crc >>> 0, true);
  c.setUint32(20, e.size, true);
  c.setUint32(24, e.size, true);
  c.setUint16(28, name.length, true);
  c.setUint32(38, (0o100644 << 16) >>> 0, true); // a regular file, rw-r--r--
  c.setUint32(42, offset, true);
  central.set(name, 46);
  return central;
}

function endRecord(count: number, cdSize: number, cdOffset: number): Uint8Array {
  const end = new Uint8Array(22);
  const e = new DataView(end.buffer);
  e.setUint32(0, 0x06054b50, true);
  e.setUint16(8, count, true);
  e.setUint16(10, count, true);
  e.setUint32(12, cdSize, true);
  e.setUint32(16, cdOffset, true);
  return end;
}

async function* chunks(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
    await stream.cancel().catch(() => undefined);
  }
}

/** The archive's length in bytes, or null when it needs zip64 (an entry, an offset over 4 GiB, or over 65,535 entries). */
export function zipLength(entries: readonly ZipEntry[]): number | null {
  if (entries.length > 0xffff) return null;
  let offset = 0;
  let cd = 0;
  for (const e of entries) {
    const n = enc.encode(e.name).length;
    if (e.size > ZIP_MAX || offset > ZIP_MAX) return null;
    offset += 30 + n + e.size;
    cd += 46 + n;
  }
  if (offset > ZIP_MAX || cd > ZIP_MAX) return null;
  return offset + cd + 22;
}

/** The archive, streamed (each entry's body read as it is sent); a body that gives another size than its entry's ends the stream with an error. */
export function zipStream(entries: readonly ZipEntry[], date = new Date(0)): ReadableStream<Uint8Array> {
  const t = dosDateTime(date);
  async function* parts(): AsyncGenerator<Uint8Array> {
    const centrals: Uint8Array[] = [];
    let offset = 0;
    for (const e of entries) {
      const name = enc.encode(e.name);
      centrals.push(centralHeader(name, e, t, offset));
      const local = localHeader(name, e, t);
      yield local;
      let sent = 0;
      const body = e.body();
      if (body instanceof Uint8Array) {
        sent = body.length;
        yield body;
      } else {
        for await (const chunk of chunks(body)) {
          sent += chunk.length;
          if (sent > e.size) break;
          yield chunk;
        }
      }
      if (sent !== e.size) throw new Error(`zip entry ${e.name}: ${sent} bytes read, ${e.size} expected`);
      offset += local.length + e.size;
    }
    const cdSize = centrals.reduce((n, c) => n + c.length, 0);
    for (const c of centrals) yield c;
    yield endRecord(entries.length, cdSize, offset);
  }
  const it = parts();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await it.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel() {
      await it.return(undefined);
    },
  });
}

/** The archive in memory (small archives, tests). */
export async function zipBytes(entries: readonly ZipEntry[], date = new Date(0)): Promise<Uint8Array> {
  return new Uint8Array(await new Response(zipStream(entries, date)).arrayBuffer());
}

/** CRC-32 of a stored file's first `size` bytes, remembered by its sha256 (its content's address: it never changes). */
const crcByContent = new Map<string, Promise<number>>();
export function crc32OfFile(path: string, size: number, sha256: string): Promise<number> {
  const key = `${sha256}/${size}`;
  let p = crcByContent.get(key);
  if (!p) {
    if (crcByContent.size >= 256) crcByContent.delete(crcByContent.keys().next().value!);
    p = (async () => {
      let crc = 0;
      for await (const chunk of chunks(Bun.file(path).slice(0, size).stream())) crc = Bun.hash.crc32(chunk, crc);
      return crc >>> 0;
    })();
    p.catch(() => crcByContent.delete(key));
    crcByContent.set(key, p);
  }
  return p;
}
