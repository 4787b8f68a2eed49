// The console's /api/v1/bundles routes: app bundles imported from a file (bundles/service.ts, format in
// src/bundles/README.md). Mounted by app.ts behind its authentication and Origin checks; refusals are thrown and
// answered by the app's onError (console/errors.ts).
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import * as v from "valibot";
import type { BundleService } from "../bundles/service.ts";
import { describePrincipal, type Principal } from "../auth/auth.ts";
import { requires } from "../model/roles.ts";
import { HttpError } from "./errors.ts";
import { describe, jsonAnswer } from "./openapi.ts";
import { check } from "./validate.ts";

export const BundleQuery = v.object({
  dryRun: v.optional(v.pipe(v.string(), v.description("1 or true: verify and plan only; the file is kept staged (answered `staged`) for the apply"))),
  params: v.optional(v.pipe(v.string(), v.description("the parameters' values: a URL-encoded JSON object of name → string"))),
  staged: v.optional(v.pipe(v.string(), v.description("a bundle file sent before (the `staged` of a dry run): no body is sent then"))),
});
export const KeyBody = v.object({
  name: v.pipe(v.string(), v.description("what the key is called here: 1 to 64 of A-Z a-z 0-9 space . _ @ -")),
  publicKey: v.pipe(v.string(), v.description("the ed25519 public key, SPKI PEM (`openssl pkey -in KEY.pem -pubout`)")),
});
export const BundlePolicyBody = v.object({ requireSignature: v.pipe(v.boolean(), v.description("true: only bundles signed by a trusted key are imported")) });

const Ref = v.object({ collection: v.string(), kind: v.string(), id: v.string(), name: v.nullable(v.string()) });
const Param = v.object({
  name: v.string(),
  kind: v.picklist(["port", "serial", "subnet", "string"]),
  label: v.string(),
  default: v.nullable(v.string()),
  pattern: v.nullable(v.string()),
  value: v.nullable(v.string()),
  choices: v.nullable(v.array(v.string())),
  problem: v.nullable(v.string()),
});
export const BundlePlanBody = v.pipe(
  v.object({
    staged: v.pipe(v.string(), v.description("the staged file: send `staged` instead of the body again")),
    bundle: v.object({ name: v.string(), version: v.string(), description: v.string() }),
    signature: v.object({ status: v.picklist(["unsigned", "verified", "untrusted"]), key: v.nullable(v.object({ id: v.string(), name: v.string() })) }),
    images: v.array(v.object({ name: v.string(), sha256: v.string(), size: v.number(), present: v.boolean() })),
    parameters: v.array(Param),
    upgrade: v.nullable(v.object({ from: v.string() })),
    plan: v.nullable(v.object({ added: v.array(Ref), changed: v.array(Ref), unchanged: v.array(Ref), removed: v.array(Ref) })),
    problems: v.pipe(v.array(v.object({ path: v.string(), message: v.string() })), v.description("empty: it can be applied as it is")),
    configVersion: v.optional(v.nullable(v.number())),
  }),
  v.title("BundlePlan"),
);
const Installed = v.object({
  name: v.string(),
  version: v.string(),
  description: v.string(),
  params: v.record(v.string(), v.string()),
  objects: v.record(v.string(), v.array(v.string())),
  images: v.record(v.string(), v.string()),
  manifestSha256: v.string(),
  configVersion: v.nullable(v.number()),
  signer: v.nullable(v.string()),
  installedAt: v.string(),
  installedBy: v.string(),
});
export const BundleListBody = v.object({ bundles: v.array(Installed), requireSignature: v.boolean() });
const KeyRow = v.object({ id: v.string(), name: v.string(), publicKey: v.string(), addedAt: v.string(), addedBy: v.string() });

export interface BundleRoutesOptions {
  bundles: () => BundleService | null;
  managedBy: () => string | null;
}

const OCTETS = "application/octet-stream";
type Env = { Variables: { principal: Principal | null } };

export function bundleRoutes(o: BundleRoutesOptions) {
  const small = bodyLimit({ maxSize: 64 * 1024, onError: (c) => c.json({ error: "request body too large (limit 64 KiB)" }, 413) });
  const need = () => {
    const s = o.bundles();
    if (!s) throw new HttpError("not-implemented", "this device has no bundle importer (no content store)");
    return s;
  };
  const refuseEarly = async (c: Context, e: unknown): Promise<never> => {
    await c.req.raw.body?.cancel().catch(() => {});
    throw e;
  };
  const managed = (what: string) => {
    const by = o.managedBy();
    if (by) throw new HttpError("conflict", `this device is managed by the controller ${by}: it is the authority for the config, so it cannot ${what} here`);
  };
  const paramsOf = (raw: string | undefined): Record<string, unknown> | null => {
    if (raw === undefined) return null;
    let p: unknown;
    try {
      p = JSON.parse(raw);
    } catch {
      throw new HttpError("invalid", "params: expected a URL-encoded JSON object of name → value");
    }
    if (!p || typeof p !== "object" || Array.isArray(p)) throw new HttpError("invalid", "params: expected a JSON object of name → value");
    return p as Record<string, unknown>;
  };
  const who = (c: Context<Env>) => describePrincipal(c.get("principal")!);
  const row = <T extends { installedAt?: Date; addedAt?: Date }>(r: T) => ({
    ...r,
    ...(r.installedAt ? { installedAt: r.installedAt.toISOString() } : {}),
    ...(r.addedAt ? { addedAt: r.addedAt.toISOString() } : {}),
  });

  return new Hono<Env>()
    .get("/", requires("viewer"), describe({ tag: "bundles", summary: "The app bundles on this device: what each added, with which parameters", ok: { 200: jsonAnswer("`{bundles, requireSignature}`", BundleListBody) } }), (c) => {
      const s = need();
      return c.json({ bundles: s.list().map(row), requireSignature: s.policy().requireSignature });
    })
    .post(
      "/",
      requires("admin"),
      describe({
        tag: "bundles",
        summary: "Import an app bundle (the file as the body, application/octet-stream; or ?staged=): ?dryRun=1 answers the plan and the parameters; ?params= applies it",
        description:
          "The file is streamed to disk, then read: bundle.json checked, the signature verified against the trusted keys, every image's sha256 verified (a mismatch refuses the whole bundle, nothing stored), the parameters checked against the device, the merged config validated as PUT /config validates it. Applying puts the images into the content store by digest and the merged config in as a new config version authored by you. The same name with a higher version is an upgrade (objects keep their UUIDs, so volumes are kept; objects it no longer has are removed).",
        requestBody: { required: false, content: { [OCTETS]: { schema: { type: "string" as const, format: "binary" } } } },
        ok: { 200: jsonAnswer("a dry run: the plan (`problems` empty: it can be applied)", BundlePlanBody), 201: jsonAnswer("applied: the plan and `configVersion`", BundlePlanBody) },
        errors: {
          400: "refused: `problems` lists each (path, message): a bad manifest, a placeholder inside a longer string, an image whose bytes are not its sha256, a parameter the device does not have, a collision with an object not from this bundle, a config the device refuses",
          404: "no such staged bundle",
          409: "the device is managed by a controller, or this version is not higher than the one installed",
          413: "larger than the device accepts, or not enough free space",
          415: "not sent as application/octet-stream",
        },
      }),
      check("query", BundleQuery),
      async (c) => {
        const s = need();
        const q = c.req.valid("query");
        const dryRun = q.dryRun === "1" || q.dryRun === "true";
        let params: Record<string, unknown> | null;
        try {
          managed("import a bundle");
          params = paramsOf(q.params);
          if (!q.staged) {
            const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
            if (type !== OCTETS) throw new HttpError("unsupported-type", `send the bundle file as Content-Type: ${OCTETS} (or ?staged= of a dry run)`);
          }
        } catch (e) {
          return refuseEarly(c, e);
        }
        let staged = q.staged;
        const sentNow = !staged;
        if (!staged) {
          const len = c.req.header("content-length");
          staged = await s.stage(c.req.raw.body, len !== undefined && /^\d+$/.test(len) ? Number(len) : null, c.req.raw.signal);
        }
        try {
          if (dryRun) return c.json(await s.inspect(staged, params), 200);
          const r = await s.apply(staged, params, who(c));
          return c.json(r, 201);
        } catch (e) {
          if (sentNow) await s.dropStaged(staged).catch(() => {});
          throw e;
        }
      },
    )
    .get("/keys", requires("viewer"), describe({ tag: "bundles", summary: "The public keys whose bundle signatures this device trusts", ok: { 200: jsonAnswer("`{keys}`", v.object({ keys: v.array(KeyRow) })) } }), (c) =>
      c.json({ keys: need().keyList().map(row) }),
    )
    .post(
      "/keys",
      requires("admin"),
      describe({ tag: "bundles", summary: "Trust a bundle signing key (ed25519, SPKI PEM)", ok: { 201: jsonAnswer("trusted: the key with its id", KeyRow) }, errors: { 400: "not an ed25519 public key, or a bad name", 409: "trusted already", 413: "body over 64 KiB" } }),
      small,
      check("json", KeyBody),
      (c) => {
        const b = c.req.valid("json");
        return c.json(row(need().addKey(b.name, b.publicKey, who(c))), 201);
      },
    )
    .delete(
      "/keys/:id",
      requires("admin"),
      describe({ tag: "bundles", summary: "Stop trusting a bundle signing key", parameters: [{ name: "id", in: "path" as const, required: true, schema: { type: "string" as const }, description: "the key's id" }], ok: { 200: jsonAnswer("removed") }, errors: { 404: "no such key" } }),
      (c) => {
        need().removeKey(c.req.param("id"), who(c));
        return c.json({ ok: true as const });
      },
    )
    .put(
      "/policy",
      requires("admin"),
      describe({ tag: "bundles", summary: "Require bundles to be signed by a trusted key, or not (the default: unsigned bundles are imported)", ok: { 200: jsonAnswer("`{requireSignature}`") }, errors: { 413: "body over 64 KiB" } }),
      small,
      check("json", BundlePolicyBody),
      (c) => c.json(need().setPolicy(c.req.valid("json").requireSignature)),
    )
    .delete(
      "/:name",
      requires("admin"),
      describe({
        tag: "bundles",
        summary: "Remove a bundle: the objects it added (a new config version), then its images nothing uses any more; nothing else",
        parameters: [{ name: "name", in: "path" as const, required: true, schema: { type: "string" as const }, description: "the bundle's name" }],
        ok: { 200: jsonAnswer("removed: `{removed, kept, configVersion, images}`") },
        errors: { 400: "the config without its objects is refused (`problems`)", 404: "no such bundle", 409: "the device is managed by a controller" },
      }),
      async (c) => {
        managed("remove a bundle");
        return c.json(await need().remove(c.req.param("name"), who(c)));
      },
    );
}
