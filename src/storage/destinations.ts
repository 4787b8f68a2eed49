// Where a datastore may send the device. A config names datastores by URL; without a check, one at
// http://127.0.0.1:<console port> (or a name that resolves there, or a redirect to it) makes the device
// fetch its own services. By default a datastore destination on loopback, link-local, the unspecified
// address or one of the device's own addresses is refused. The check is on the address the connection
// is then made to (downloads are pinned to it), for every hop of a redirect.
import { lookup as dnsLookup } from "node:dns/promises";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";

/** Env var that allows local destinations (`1`/`true`); for tests and development hosts. */
export const ALLOW_LOCAL_ENV = "EVEBOX_DATASTORE_ALLOW_LOCAL";
/** Store setting that allows local destinations (`true`/`1`); read through `Store.getSetting`. */
export const ALLOW_LOCAL_SETTING = "datastore.allowLocal";

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export interface DestinationPolicy {
  /** True: local destinations are allowed (nothing is checked). Asked at each connection. */
  allowLocal(): boolean;
  /** The device's own addresses; default: the addresses of every interface (`os.networkInterfaces`). */
  ownAddresses?(): Iterable<string>;
  /** Name resolution; default: the system resolver (`dns.lookup`, every address). */
  lookup?(host: string): Promise<ResolvedAddress[]>;
}

/** A datastore destination the policy refuses; the message names it, the address and the setting. */
export class DestinationRefused extends Error {
  constructor(
    /** What was to be connected to: the datastore's origin, or where it redirected. */
    readonly destination: string,
    readonly host: string,
    readonly address: string,
    readonly why: string,
  ) {
    super(
      `datastore ${destination}: ${host === address ? address : `${host} resolves to ${address}`}, ${why}, is refused as a destination ` +
        `(loopback, link-local, unspecified and this device's own addresses are; ` +
        `the setting ${ALLOW_LOCAL_SETTING}=true or ${ALLOW_LOCAL_ENV}=1 allows them)`,
    );
    this.name = "DestinationRefused";
  }
}

function truthy(v: string | undefined | null): boolean {
  return v !== undefined && v !== null && /^(1|true|yes|on)$/i.test(v.trim());
}

/**
 * The device's policy: local destinations refused unless the operator allows them at start (`allowedAtStart`:
 * ALLOW_LOCAL_ENV, read by device/env.ts) or the store setting does (read at each connection).
 */
export function datastorePolicy(getSetting: (key: string) => string | undefined, allowedAtStart: boolean): DestinationPolicy {
  return { allowLocal: () => allowedAtStart || truthy(getSetting(ALLOW_LOCAL_SETTING)) };
}

/** Allows everything (what a bare `download()` does). */
export const ALLOW_ALL: DestinationPolicy = { allowLocal: () => true };

/** Why `address` is a local destination, or null when it is not one. */
export function localAddressReason(address: string, own: Iterable<string> = ownAddresses()): string | null {
  const a = normalize(address);
  const v4 = ipv4Bytes(a);
  if (v4) {
    const [b0, b1] = v4;
    if (b0 === 127) return "a loopback address";
    if (b0 === 0) return "an unspecified address";
    if (b0 === 169 && b1 === 254) return "a link-local address";
  } else {
    const words = ipv6Words(a);
    if (!words) return null;
    if (words.every((w) => w === 0)) return "an unspecified address";
    if (words.slice(0, 7).every((w) => w === 0) && words[7] === 1) return "a loopback address";
    if ((words[0]! & 0xffc0) === 0xfe80) return "a link-local address";
  }
  for (const o of own) if (normalize(o) === a) return "an address of this device";
  return null;
}

/** The addresses of this device's interfaces (in its network namespace). */
export function ownAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
}

/**
 * Resolves `url`'s host and checks every address it resolves to. Returns the address to connect to, or
 * null when the policy allows local destinations (the URL is then used as it is).
 */
export async function resolveDestination(url: URL, policy: DestinationPolicy, label = url.origin): Promise<ResolvedAddress | null> {
  if (policy.allowLocal()) return null;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const own = [...(policy.ownAddresses?.() ?? ownAddresses())];
  const literal = isIP(host);
  const addrs: ResolvedAddress[] = literal ? [{ address: host, family: literal as 4 | 6 }] : await (policy.lookup ?? systemLookup)(host);
  if (!addrs.length) throw new Error(`${host}: host name not resolved`);
  for (const a of addrs) {
    const why = localAddressReason(a.address, own);
    if (why) throw new DestinationRefused(label, host, a.address, why);
  }
  return addrs[0]!;
}

async function systemLookup(host: string): Promise<ResolvedAddress[]> {
  const list = await dnsLookup(host, { all: true, verbatim: true });
  return list.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
}

/** One spelling per address: `::ffff:127.0.0.1` is 127.0.0.1; IPv6 as eight hex words, without a zone. */
function normalize(address: string): string {
  const a = address.toLowerCase().replace(/%.*$/, "");
  const words = ipv6Words(a);
  if (!words) return a;
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return [words[6]! >> 8, words[6]! & 255, words[7]! >> 8, words[7]! & 255].join(".");
  }
  return words.map((w) => w.toString(16)).join(":");
}

function ipv4Bytes(a: string): number[] | null {
  if (isIP(a) !== 4) return null;
  return a.split(".").map(Number);
}

function ipv6Words(a: string): number[] | null {
  if (isIP(a) !== 6) return null;
  let s = a;
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (tail) {
    const b = tail[1]!.split(".").map(Number);
    s = `${s.slice(0, -tail[1]!.length)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, rest] = s.includes("::") ? s.split("::") : [s, null];
  const h = head ? head.split(":") : [];
  const r = rest ? rest.split(":") : [];
  const fill = rest === null ? [] : new Array(8 - h.length - r.length).fill("0");
  const words = [...h, ...fill, ...r].map((w) => parseInt(w || "0", 16));
  return words.length === 8 ? words : null;
}
