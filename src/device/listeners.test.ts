import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import { defaultConnectionLimits } from "../console/connection-gate.ts";
import { ConsoleListeners } from "./listeners.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Listeners on a free port whose TCP app answers /slow only when `release()` is called. */
async function listeners() {
  const dir = mkdtempSync(join(tmpdir(), "evebox-listeners-"));
  dirs.push(dir);
  let release = () => {};
  let entered = false;
  const held = new Promise<void>((r) => (release = r));
  const tcp = new Hono().get("/slow", async (c) => {
    entered = true;
    await held;
    return c.text("done");
  });
  let localBuilt = 0;
  const l = new ConsoleListeners({
    listen: "127.0.0.1:0",
    limits: defaultConnectionLimits(),
    socketPath: join(dir, "evebox.sock"),
    tcpApp: () => tcp,
    localApp: () => {
      localBuilt++;
      return new Hono().get("/health", (c) => c.json({ ok: true }));
    },
    onRequest: () => {},
  });
  await l.start();
  /** Sends GET /slow and resolves once its handler runs (the request is then in flight until `release()`). */
  const slow = async () => {
    const answer = fetch(`${l.url}/slow`);
    while (!entered) await Bun.sleep(5);
    return { answer };
  };
  return { l, release: () => release(), slow, localBuilt: () => localBuilt, socketPath: join(dir, "evebox.sock") };
}

/** Runs `f` on fresh listeners, then lets /slow answer and stops them. */
async function withListeners(f: (x: Awaited<ReturnType<typeof listeners>>) => Promise<void>): Promise<void> {
  const x = await listeners();
  try {
    await f(x);
  } finally {
    x.release();
    await x.l.stop();
  }
}

describe("the console's listeners", () => {
  test("quiet() waits for a request in flight to be answered, then resolves", () =>
    withListeners(async ({ l, release, slow }) => {
      const { answer } = await slow();
      let quiet = false;
      const q = l.quiet(5, 60_000).then(() => (quiet = true));
      await Bun.sleep(100);
      expect(quiet).toBe(false); // the request is still being answered
      release();
      expect(await (await answer).text()).toBe("done");
      await q;
      expect(quiet).toBe(true);
    }));

  test("quiet() gives up waiting at its bound (an event stream may stay open)", () =>
    withListeners(async ({ l, release, slow }) => {
      const { answer } = await slow();
      await l.quiet(5, 50); // resolves although /slow is still in flight
      release();
      await answer;
    }));

  test("the trusted socket's app is built at its first request, once", () =>
    withListeners(async ({ localBuilt, socketPath }) => {
      expect(localBuilt()).toBe(0);
      for (let i = 0; i < 2; i++) {
        const r = await fetch("http://localhost/health", { unix: socketPath } as RequestInit);
        expect(await r.json()).toEqual({ ok: true });
      }
      expect(localBuilt()).toBe(1);
    }));
});
