// The console's /api/v1/baseos routes (mounted by console/app.ts behind its authentication and Origin checks).
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { BaseOsRefused, type BaseOs, notAbView } from "./manager.ts";

export interface BaseOsRef {
  baseos: BaseOs | null;
  reason: string | null;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function baseosRoutes(ref: () => BaseOsRef): Hono<any> {
  const r = new Hono();
  const small = bodyLimit({ maxSize: 64 * 1024, onError: (c) => c.json({ error: "request body too large (limit 64 KiB)" }, 413) });
  const need = () => {
    const { baseos, reason } = ref();
    if (!baseos) throw new BaseOsRefused("not-implemented", reason ?? "not an A/B device");
    return baseos;
  };
  // BaseOsRefused, SettingsError and BundleError are DomainErrors: the console's onError answers them.

  r.get("/", (c) => {
    const { baseos, reason } = ref();
    return c.json(baseos ? baseos.view() : notAbView(reason ?? "not an A/B device"));
  });

  r.post("/upload", async (c) => {
    const b = need();
    const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim();
    if (type !== "application/octet-stream") return c.json({ error: "send the update file as Content-Type: application/octet-stream" }, 415);
    const len = c.req.header("content-length");
    try {
      const op = await b.upload(c.req.raw.body, len !== undefined && /^\d+$/.test(len) ? Number(len) : null);
      return c.json({ ok: true, update: op }, 202);
    } catch (e) {
      // Refused before the body was read (busy, too large): do not leave the sender waiting to send the rest.
      await c.req.raw.body?.cancel().catch(() => {});
      throw e;
    }
  });

  r.put("/settings", small, async (c) => {
    const b = need();
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return c.json({ error: "expected a JSON object of settings" }, 400);
    }
    return c.json({ settings: b.putSettings(body) });
  });
  r.post("/activate", (c) => c.json({ ok: true, update: need().activate() }, 202));
  r.post("/cancel", (c) => c.json({ ok: true, update: need().cancel() }));
  r.post("/retry", small, async (c) => {
    const body = (await c.req.json().catch(() => ({}))) as { version?: unknown };
    const version = typeof body?.version === "string" ? body.version : undefined;
    return c.json({ ok: true, cleared: need().retry(version) });
  });
  return r;
}
