// Helpers of the security tests: a raw HTTP/1.1 request from a chosen local address (127.0.0.2, … are all this host).
import { connect } from "node:net";

/** One request on its own connection from `localAddress`; resolves with the status and the body. */
export function requestFrom(
  localAddress: string,
  url: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; headers: Record<string, string> }> {
  const u = new URL(url);
  const payload = body === undefined ? "" : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const sock = connect({ host: u.hostname, port: Number(u.port), localAddress }, () => {
      const h = { host: u.host, origin: url, connection: "close", "content-type": "application/json", "content-length": String(Buffer.byteLength(payload)), ...headers };
      sock.write(`${method} ${path} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}`).join("\r\n")}\r\n\r\n${payload}`);
    });
    let raw = "";
    sock.setEncoding("utf8");
    sock.on("data", (d) => (raw += d));
    sock.on("error", reject);
    sock.on("close", () => {
      const [head = "", ...rest] = raw.split("\r\n\r\n");
      const status = Number(head.match(/^HTTP\/1\.1 (\d{3})/)?.[1] ?? 0);
      const hdrs = Object.fromEntries(head.split("\r\n").slice(1).map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
      const text = rest.join("\r\n\r\n");
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(hdrs["transfer-encoding"] === "chunked" ? dechunk(text) : text);
      } catch {}
      resolve({ status, body: parsed, headers: hdrs });
    });
  });
}

function dechunk(s: string): string {
  let out = "";
  let i = 0;
  for (;;) {
    const nl = s.indexOf("\r\n", i);
    if (nl < 0) break;
    const n = parseInt(s.slice(i, nl), 16);
    if (!n) break;
    out += s.slice(nl + 2, nl + 2 + n);
    i = nl + 2 + n + 2;
  }
  return out;
}
