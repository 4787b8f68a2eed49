// A byte relay between two stream endpoints (TCP host:port or a unix socket path). A server on the host's loopback
// is reached from inside a network namespace through a unix socket: the file is shared, the loopbacks are not.
// `bun tests/support/relay.ts LISTEN TARGET` runs one (in a namespace); `relay()` runs one in this process.
import net from "node:net";

export type Endpoint = { host: string; port: number } | { path: string };

export function endpoint(s: string): Endpoint {
  const m = s.match(/^(\d+\.\d+\.\d+\.\d+):(\d+)$/);
  return m ? { host: m[1]!, port: Number(m[2]) } : { path: s };
}

export function relay(listen: Endpoint, target: Endpoint): Promise<net.Server> {
  const server = net.createServer((client) => {
    const upstream = net.connect(target as net.NetConnectOpts);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen, () => resolve(server));
  });
}

if (import.meta.main) {
  const [from, to] = process.argv.slice(2);
  if (!from || !to) {
    console.error("usage: relay.ts LISTEN TARGET (each host:port or a unix socket path)");
    process.exit(2);
  }
  await relay(endpoint(from), endpoint(to));
  console.log(`relay: ${from} -> ${to}`);
}
