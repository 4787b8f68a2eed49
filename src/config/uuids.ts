// UUIDs compare case-insensitively (RFC 4122; EVE's controllers send lower case). A document is read with
// every UUID-valued id field in lower case, once, so that every part compares plain strings and two
// objects whose ids differ only in case are one id — a duplicate validation refuses.

type Doc = Record<string, any>;

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** Fields that hold ids: `uuid`, `id`, and lowerCamel names ending in Id, ID, Uuid or UUID (`networkId`, `dsId`, …). */
const ID_KEY_RE = /^(?:uuid|id|UUID|ID)$|[a-z0-9_](?:Id|ID|Uuid|UUID|uuid)$/;
/** Ends in "ID" but is not one. */
const NOT_ID = /ssid$/i;

const idKeys = new Map<string, boolean>();
function isIdKey(key: string): boolean {
  let yes = idKeys.get(key);
  if (yes === undefined) {
    yes = ID_KEY_RE.test(key) && !NOT_ID.test(key);
    if (idKeys.size < 1000) idKeys.set(key, yes);
  }
  return yes;
}
/** An upper-case hex digit: most documents have none, and a string without one needs no other test. */
const UPPER_HEX = /[A-F]/;

/**
 * `doc` with its UUID ids in lower case: the same object when there was nothing to change (a document is
 * often read many times), else a copy that shares every subtree without an upper-case id.
 */
export function normalizeUuids<T>(doc: T): T {
  return walk(doc, null) as T;
}

function walk(v: unknown, key: string | null): unknown {
  if (typeof v === "string") return v.length === 36 && key !== null && UPPER_HEX.test(v) && UUID_RE.test(v) && isIdKey(key) ? v.toLowerCase() : v;
  if (Array.isArray(v)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < v.length; i++) {
      // A repeated id field carries its key to its elements.
      const n = walk(v[i], key);
      if (n !== v[i]) (out ??= v.slice())[i] = n;
    }
    return out ?? v;
  }
  if (v && typeof v === "object" && !ArrayBuffer.isView(v)) {
    let out: Doc | null = null;
    for (const k in v as Doc) {
      const old = (v as Doc)[k];
      const n = walk(old, k);
      if (n !== old) (out ??= { ...(v as Doc) })[k] = n;
    }
    return out ?? v;
  }
  return v;
}

export function sameUuid(a: string | null | undefined, b: string | null | undefined): boolean {
  return typeof a === "string" && typeof b === "string" && a.toLowerCase() === b.toLowerCase();
}
