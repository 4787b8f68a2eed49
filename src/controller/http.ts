// HTTPS to the controller: TLS 1.2 or newer, config/root-certificate.pem as the only trust anchor, a deadline
// on every call (headers and body), EVE's media type and troubleshooting headers.
import { constants } from "node:crypto";

export const PROTO_MIME = "application/x-proto-binary";
const MAX_BODY = 64 * 1024 * 1024;

export interface ControllerEndpoint {
  /** https://host[:port] */
  base: string;
  rootPem: string;
}

export interface HttpResult {
  status: number;
  body: Uint8Array;
  contentType: string;
}

export type TransportFault = "timeout" | "tls" | "network" | "too-large";

export class TransportError extends Error {
  constructor(
    readonly fault: TransportFault,
    message: string,
  ) {
    super(message);
  }
}

export interface RequestOptions {
  timeoutMs: number;
  headers?: Record<string, string>;
}

/** One call; network, TLS and timeout faults are TransportErrors, any HTTP status is a result. */
export async function callController(ep: ControllerEndpoint, method: "GET" | "POST", path: string, body: Uint8Array | null, opts: RequestOptions): Promise<HttpResult> {
  const url = ep.base + path;
  const headers: Record<string, string> = { ...opts.headers };
  if (method === "POST") headers["Content-Type"] = PROTO_MIME;
  const signal = AbortSignal.timeout(opts.timeoutMs);
  try {
    const res = await fetch(url, {
      method,
      headers,
      body: body ? (body as Uint8Array<ArrayBuffer>) : undefined,
      redirect: "manual",
      signal,
      tls: {
        ca: ep.rootPem,
        rejectUnauthorized: true,
        // TLS 1.0 and 1.1 off: the EVE API requires 1.2 or newer.
        secureOptions: constants.SSL_OP_NO_TLSv1 | constants.SSL_OP_NO_TLSv1_1,
      },
    } as RequestInit);
    const length = Number(res.headers.get("content-length") ?? 0);
    if (length > MAX_BODY) {
      await res.body?.cancel();
      throw new TransportError("too-large", `${method} ${path}: answer of ${length} bytes is over the ${MAX_BODY}-byte limit`);
    }
    const buf = new Uint8Array(await res.arrayBuffer());
    if (buf.byteLength > MAX_BODY) throw new TransportError("too-large", `${method} ${path}: answer over the ${MAX_BODY}-byte limit`);
    return { status: res.status, body: buf, contentType: res.headers.get("content-type") ?? "" };
  } catch (e) {
    if (e instanceof TransportError) throw e;
    const err = e as Error & { code?: string };
    if (signal.aborted || err.name === "TimeoutError" || err.name === "AbortError") {
      throw new TransportError("timeout", `${method} ${path}: no complete answer within ${opts.timeoutMs} ms`);
    }
    const msg = `${err.code ? err.code + ": " : ""}${err.message}`;
    if (/cert|tls|ssl|handshake|self.signed|issuer|verify/i.test(msg)) throw new TransportError("tls", `${method} ${path}: TLS failed: ${msg}`);
    throw new TransportError("network", `${method} ${path}: ${msg}`);
  }
}

/** The body is protobuf (EVE's media type), or the answer has no body at all. */
export function isProto(r: HttpResult): boolean {
  return r.body.byteLength === 0 || r.contentType.split(";")[0]!.trim().toLowerCase() === PROTO_MIME;
}

/**
 * A controller address from config/server (EVE writes "host:port"), --controller or the console (a URL):
 * normalized to https://host[:port]. Plain http is refused: the API needs TLS.
 */
export function parseControllerAddress(input: string): string {
  const s = input.trim();
  if (!s) throw new Error("the controller address is empty");
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(s) ? s : `https://${s}`);
  } catch {
    throw new Error(`"${s}" is not a controller address: expected https://host[:port] or host[:port]`);
  }
  if (url.protocol !== "https:") throw new Error(`"${s}": the controller must be reached over https (the EVE API requires TLS)`);
  if (url.pathname !== "/" || url.search || url.hash || url.username || url.password) {
    throw new Error(`"${s}": give only https://host[:port]; the API paths (/api/v2/edgedevice/…) are added by evebox`);
  }
  return `https://${url.host}`;
}

/** The config/server form: host[:port], as EVE writes and reads it. */
export function serverFileForm(base: string): string {
  return new URL(base).host;
}
