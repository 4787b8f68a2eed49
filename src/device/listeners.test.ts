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
  return { l, release: () => release(), entered: () => entered, localBuilt: () => localBuilt, socketPath: join(dir, "evebox.sock") };
}

describe("the console's listeners", () => {
  test("quiet() waits for a request in flight to be answered, then resolves", async () => {
    const { l, release, entered } = await listeners();
    try {
      const answer = fetch(`${l.url}/slow`);
      while (!entered()) await Bun.sleep(5);
      let quiet = false;
      const q = l.quiet(5, 60_000).then(() => (quiet = true));
      await Bun.sleep(100);
      expect(quiet).toBe(false); // the request is still being answered
      release();
      expect(await (await answer).text()).toBe("done");
      await q;
      expect(quiet).toBe(true);
    } finally {
      release();
      await l.stop();
    }
  });

  test("quiet() gives up waiting at its bound (an event stream may stay open)", async () => {
    const { l, release, entered } = await listeners();
    try {
      const answer = fetch(`${l.url}/slow`);
      while (!entered()) await Bun.sleep(5);
      await l.quiet(5, 50); // resolves although /slow is still in flight
      release();
      await answer;
    } finally {
      release();
      await l.stop();
    }
  });

  test("the trusted socket's app is built at its first request, once", async () => {
    const { l, localBuilt, socketPath } = await listeners();
    try {
      expect(localBuilt()).toBe(0);
      for (let i = 0; i < 2; i++) {
        const r = await fetch("http://localhost/health", { unix: socketPath } as RequestInit);
        expect(await r.json()).toEqual({ ok: true });
      }
      expect(localBuilt()).toBe(1);
    } finally {
      await l.stop();
    }
  });
});
