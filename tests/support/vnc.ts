// The first steps of RFB with a VNC server on TCP: its version, and the security types it offers to a 3.8 client
// (2 is VNC authentication, 1 none). Connection errors resolve as their code (ECONNREFUSED: nothing listens).
import { connect } from "node:net";

export function rfbSecurityTypes(port: number, host = "127.0.0.1", timeoutMs = 10_000): Promise<{ version: string; types: number[] } | string> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    let buf = Buffer.alloc(0);
    let version = "";
    const timer = setTimeout(() => (sock.destroy(), resolve("no RFB answer")), timeoutMs);
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!version && buf.length >= 12) {
        version = buf.subarray(0, 12).toString("latin1");
        sock.write("RFB 003.008\n");
        buf = buf.subarray(12);
      }
      if (version && buf.length >= 1 && buf.length >= 1 + buf[0]!) {
        clearTimeout(timer);
        resolve({ version, types: [...buf.subarray(1, 1 + buf[0]!)] });
        sock.destroy();
      }
    });
    sock.on("error", (e: NodeJS.ErrnoException) => (clearTimeout(timer), resolve(e.code ?? e.message)));
  });
}
