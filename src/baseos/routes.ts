// The console's /api/v1/baseos routes (mounted by console/app.ts behind its authentication and Origin checks).
// Refusals are thrown (BaseOsRefused, SettingsError) and answered by the console's onError, which maps every
// error's kind to its status in one place (console/errors.ts); this module has no error handler of its own.
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { describeRoute, resolver, uniqueSymbol, validator } from "hono-openapi";
import * as v from "valibot";
import { requires } from "../model/roles.ts";
import { BaseOsRefused, type BaseOs, notAbView } from "./manager.ts";

export interface BaseOsRef {
  baseos: BaseOs | null;
  reason: string | null;
}

/** Settings are checked by baseos/schedule.ts, which names every wrong and unknown field at once. */
const SettingsBody = v.pipe(
  v.record(v.string(), v.unknown()),
  v.description("the update settings (src/baseos/README.md): reboot, window {start, hours}, …; unknown fields are refused"),
);
const RetryBody = v.object({ version: v.optional(v.pipe(v.string(), v.description("the version to clear; all failed versions when absent"))) });

const errorBody = { "application/json": { schema: resolver(v.object({ error: v.string() })) } };
const answers = (ok: Record<string, string>, errors: Record<string, string>) => ({
  ...Object.fromEntries(Object.entries(ok).map(([s, d]) => [s, { description: d, content: { "application/json": {} } }])),
  ...Object.fromEntries(Object.entries({ 401: "not logged in", 501: "not an A/B device", ...errors }).map(([s, d]) => [s, { description: d, content: errorBody }])),
});
const doc = (summary: string, ok: Record<string, string>, errors: Record<string, string> = {}, extra: object = {}) =>
  describeRoute({ tags: ["baseos"], summary, responses: answers(ok, errors), ...extra });

/** A JSON body checked by `schema`; `required`: it must be sent as JSON (an empty object must not stand in). */
function json<S extends v.GenericSchema>(schema: S, required: boolean) {
  const validate = validator("json", schema, (result) => {
    if (result.success) return;
    const first = result.error[0];
    const path = (first?.path ?? []).map((p) => String(typeof p === "object" ? p.key : p)).join(".");
    throw new BaseOsRefused("invalid", path ? `${path}: ${first!.message}` : `expected a JSON object (Content-Type: application/json): ${first?.message ?? ""}`);
  });
  if (!required) return validate;
  const needJson: typeof validate = async (c, next) => {
    if (!/^application\/([\w.-]+\+)?json$/i.test((c.req.header("content-type") ?? "").split(";")[0]!.trim())) {
      throw new BaseOsRefused("invalid", "expected a JSON object of settings (Content-Type: application/json)");
    }
    return validate(c, next);
  };
  // hono-openapi finds a route's schemas by this mark on its middleware.
  return Object.assign(needJson, { [uniqueSymbol]: (validate as unknown as Record<symbol, unknown>)[uniqueSymbol] });
}

export function baseosRoutes(ref: () => BaseOsRef) {
  const small = bodyLimit({ maxSize: 64 * 1024, onError: (c) => c.json({ error: "request body too large (limit 64 KiB)" }, 413) });
  const need = () => {
    const { baseos, reason } = ref();
    if (!baseos) throw new BaseOsRefused("not-implemented", reason ?? "not an A/B device");
    return baseos;
  };

  return new Hono()
    .get("/", requires("viewer"), doc("The A/B slots, the running and the fallback version, the update in progress and the settings", { 200: "BaseOsView" }, { 501: "never: a device without slots answers its reason in the view" }), (c) => {
      const { baseos, reason } = ref();
      return c.json(baseos ? baseos.view() : notAbView(reason ?? "not an A/B device"));
    })
    .post(
      "/upload",
      requires("admin"),
      doc(
        "Upload a signed update file into the other slot (streamed; Content-Length checked against the slot)",
        { 202: "receiving: `{ok, update}`" },
        { 400: "not an evebox update, wrong board, wrong hash", 408: "the upload stalled", 409: "another update is in progress, or it failed before", 413: "larger than the slot", 415: "not application/octet-stream" },
        { requestBody: { required: true, content: { "application/octet-stream": {} } } },
      ),
      async (c) => {
        const b = need();
        const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim();
        if (type !== "application/octet-stream") return c.json({ error: "send the update file as Content-Type: application/octet-stream" }, 415);
        const len = c.req.header("content-length");
        try {
          const op = await b.upload(c.req.raw.body, len !== undefined && /^\d+$/.test(len) ? Number(len) : null);
          return c.json({ ok: true as const, update: op }, 202);
        } catch (e) {
          // Refused before the body was read (busy, too large): do not leave the sender waiting to send the rest.
          await c.req.raw.body?.cancel().catch(() => {});
          throw e;
        }
      },
    )
    .put("/settings", requires("admin"), doc("Change the update settings", { 200: "`{settings}`" }, { 400: "a wrong or unknown field (each is named)", 413: "body over 64 KiB" }), small, json(SettingsBody, true), (c) => {
      const b = need();
      return c.json({ settings: b.putSettings(c.req.valid("json")) });
    })
    .post("/activate", requires("admin"), doc("Reboot into the written update for its trial", { 202: "`{ok, update}`" }, { 409: "no update is written and waiting" }), (c) =>
      c.json({ ok: true as const, update: need().activate() }, 202),
    )
    .post("/cancel", requires("admin"), doc("Cancel the update in progress", { 200: "`{ok, update}`" }, { 409: "nothing to cancel, or past the point of cancelling" }), (c) =>
      c.json({ ok: true as const, update: need().cancel() }),
    )
    .post("/retry", requires("admin"), doc("Clear failed versions so that they are tried again", { 200: "`{ok, cleared}`" }, { 413: "body over 64 KiB" }), small, json(RetryBody, false), (c) =>
      c.json({ ok: true as const, cleared: need().retry(c.req.valid("json").version) }),
    );
}
