import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { connect, type Socket } from "node:net";
import { ConnectionBudget, ConnectionGate, defaultConnectionLimits } from "./connection-gate.ts";

let backend: ReturnType<typeof Bun.serve>;
let gate: ConnectionGate;
const budget = new ConnectionBudget({ perClient: 3, total: 5, idleTimeoutMs: 1000 });
let seen: (string | null)[] = [];

beforeAll(() => {
  gate = ConnectionGate.listen({ hostname: "127.0.0.1", port: 0, budget, tls: false, idleTimeoutS: 5 }); // socket timers tick every 4 s: 5 s is two ticks, re-armed by traffic
  backend = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0, // the gate's own timeout is under test
    maxRequestBodySize: 2 ** 30,
    fetch: async (req, server) => {
      seen.push(gate.clientOf(server.requestIP(req)));
      const u = new URL(req.url);
      if (u.pathname === "/drip") {
        let n = 0;
        return new Response(
          new ReadableStream({
            async pull(c) {
              await Bun.sleep(400);
              if (n++ >= 24) return c.close();
              c.enqueue(new TextEncoder().encode("."));
            },
          }),
        );
      }
      if (u.pathname === "/upload") {
        const h = createHash("sha256");
        const reader = req.body!.getReader();
        for (let r = await reader.read(); !r.done; r = await reader.read()) h.update(r.value);
        return new Response(h.digest("hex"));
      }
      if (u.pathname === "/download") return new Response(new Uint8Array(32 * 2 ** 20).fill(7));
      return new Response("ok");
    },
  });
  gate.setBackend(backend.port!);
});
afterAll(() => {
  gate.stop();
  backend.stop(true);
});

const url = () => `http://127.0.0.1:${gate.port}`;

function open(localAddress = "127.0.0.1"): Promise<{ s: Socket; closed: Promise<string> }> {
  return new Promise((resolve) => {
    let data = "";
    const s = connect({ host: "127.0.0.1", port: gate.port, localAddress });
    s.on("error", () => {});
    s.on("data", (d) => (data += d));
    const closed = new Promise<string>((r) => s.on("close", () => r(data)));
    s.on("connect", () => resolve({ s, closed }));
  });
}

describe("ConnectionGate", () => {
  test("the defaults follow the file descriptor limit", () => {
    expect(defaultConnectionLimits(20_000)).toMatchObject({ perClient: 32, total: 1024, idleTimeoutMs: 60_000 });
    expect(defaultConnectionLimits(1024)).toMatchObject({ total: 256 });
    expect(defaultConnectionLimits(400)).toMatchObject({ total: 48 });
  });

  test("a request goes through and the console learns the client's address; a direct connection is nobody", async () => {
    seen = [];
    expect(await (await fetch(`${url()}/x`)).text()).toBe("ok");
    await fetch(`http://127.0.0.1:${backend.port}/x`);
    expect(seen).toEqual(["127.0.0.1", null]);
  });

  test("over the per-client cap a connection is answered 503 and closed; another client still gets in; a place comes back", async () => {
    const held = await Promise.all([open(), open(), open()]);
    await Bun.sleep(50);
    const over = await open();
    expect(await over.closed).toMatch(/^HTTP\/1\.1 503 [^]*too many connections from this client \(limit 3\)/);
    const other = await open("127.0.0.9");
    other.s.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(await other.closed).toMatch(/^HTTP\/1\.1 200/);
    held[0]!.s.destroy();
    await held[0]!.closed;
    await Bun.sleep(50);
    const again = await open();
    again.s.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(await again.closed).toMatch(/^HTTP\/1\.1 200/);
    for (const h of held) h.s.destroy();
    await Bun.sleep(50);
    expect(budget.total).toBeLessThanOrEqual(1); // fetch's pooled connection of the test above
  });

  test("a response that keeps flowing outlives the idle timeout; an idle connection does not", async () => {
    const t0 = Date.now();
    const idle = await open("127.0.0.10");
    // 10 s, a byte every 0.4 s, the client silent: longer than the timeout can take to fire (4 to 8 s, two ticks).
    const drip = await (await fetch(`${url()}/drip`)).text();
    expect(drip).toBe(".".repeat(24));
    expect(Date.now() - t0).toBeGreaterThan(9_000);
    // The idle one was closed meanwhile.
    expect(await Promise.race([idle.closed.then(() => "closed"), Bun.sleep(100).then(() => "open")])).toBe("closed");
  }, 20_000);

  test("large bodies both ways arrive whole (backpressure, not loss)", async () => {
    const body = new Uint8Array(48 * 2 ** 20).map((_, i) => i * 31);
    const up = await fetch(`${url()}/upload`, { method: "POST", body });
    expect(await up.text()).toBe(createHash("sha256").update(body).digest("hex"));
    const down = new Uint8Array(await (await fetch(`${url()}/download`)).arrayBuffer());
    expect(down.length).toBe(32 * 2 ** 20);
    expect(down.every((b) => b === 7)).toBe(true);
  }, 30_000);
});
