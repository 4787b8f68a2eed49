// Request validation for the API: valibot schemas checked by Hono's validator (through hono-openapi, which also
// reads the same schemas into the OpenAPI document). A failed check is a 400 `{error}` naming the field.
import type { StandardSchemaV1 } from "@standard-schema/spec";
import type { Context, ValidationTargets } from "hono";
import { uniqueSymbol, validator } from "hono-openapi";
import { HttpError } from "./errors.ts";

/** "password: Invalid type: Expected string but received undefined"; a wrong root is "expected a JSON object". */
export function describeIssues(issues: readonly StandardSchemaV1.Issue[], target: keyof ValidationTargets): string {
  const root = target === "json" ? "expected a JSON object in the request body" : `invalid ${target}`;
  return issues
    .slice(0, 10)
    .map((i) => {
      const path = (i.path ?? []).map((p) => String(typeof p === "object" ? p.key : p)).join(".");
      return path ? `${path}: ${i.message}` : `${root}: ${i.message}`;
    })
    .join("; ");
}

const JSON_TYPE = /^application\/([\w.-]+\+)?json$/i;

export function isJsonRequest(c: Context): boolean {
  return JSON_TYPE.test((c.req.header("content-type") ?? "").split(";")[0]!.trim());
}

/**
 * Hono's validator for `target` with `schema`; a failure throws HttpError("invalid"), answered by onError.
 * A JSON body must say so (Content-Type: application/json): Hono's validator reads no other, and an empty
 * object must not stand in for a body that was sent some other way.
 */
export function check<S extends StandardSchemaV1, T extends keyof ValidationTargets>(target: T, schema: S) {
  const validate = validator(target, schema, (result) => {
    if (!result.success) throw new HttpError("invalid", describeIssues(result.error, target));
  });
  if (target !== "json") return validate;
  const needJson: typeof validate = async (c, next) => {
    if (!isJsonRequest(c)) throw new HttpError("invalid", "expected a JSON object in the request body (Content-Type: application/json)");
    return validate(c, next);
  };
  // hono-openapi finds a route's schemas by this mark on its middleware.
  return Object.assign(needJson, { [uniqueSymbol]: (validate as unknown as Record<symbol, unknown>)[uniqueSymbol] });
}
