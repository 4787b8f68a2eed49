// The API's OpenAPI document, made by hono-openapi from the routes themselves: each route names its summary and
// answers with `describe`, and its request schemas come from its validators (console/validate.ts).
import type { Hono } from "hono";
import { describeRoute, generateSpecs, resolver, type DescribeRouteOptions } from "hono-openapi";
import type { GenericSchema } from "valibot";
import { declaredNeed } from "../model/roles.ts";
import { ErrorBody } from "./schemas.ts";

type Responses = NonNullable<DescribeRouteOptions["responses"]>;

/** An answer with a JSON body of `schema`. */
export function jsonAnswer(description: string, schema?: GenericSchema): Responses[string] {
  return schema ? { description, content: { "application/json": { schema: resolver(schema) } } } : { description, content: { "application/json": {} } };
}

const errorAnswer = (description: string) => jsonAnswer(description, ErrorBody);

export interface Describe {
  tag: string;
  summary: string;
  description?: string;
  /** Open to anyone (no session or token). */
  open?: boolean;
  /** The success answers, by status. */
  ok: Responses;
  /** The refusals this route can answer, by status, besides the ones every route can (401, 403, 500). */
  errors?: Record<number, string>;
  requestBody?: DescribeRouteOptions["requestBody"];
  parameters?: DescribeRouteOptions["parameters"];
}

export function describe(d: Describe) {
  const responses: Responses = { ...d.ok };
  for (const [status, why] of Object.entries(d.errors ?? {})) responses[status] = errorAnswer(why);
  if (!d.open) {
    responses["401"] ??= errorAnswer("no session cookie and no API token");
    responses["403"] ??= errorAnswer("the role this route needs (x-evebox-role; `requiredRole` in the answer), or a state change from another origin (with a cookie)");
  }
  return describeRoute({
    tags: [d.tag],
    summary: d.summary,
    ...(d.description ? { description: d.description } : {}),
    ...(d.open ? { security: [] } : {}),
    ...(d.requestBody ? { requestBody: d.requestBody } : {}),
    ...(d.parameters ? { parameters: d.parameters } : {}),
    responses,
  });
}

/** The document for every route of `app` under /api/v1 (made once: the routes do not change while running). */
export function openApiDocument(app: () => Hono<any>, version: string): () => Promise<unknown> { // eslint-disable-line @typescript-eslint/no-explicit-any
  let doc: Promise<unknown> | null = null;
  return () =>
    (doc ??= generateSpecs(app(), {
      documentation: {
        openapi: "3.1.0",
        info: {
          title: "evebox console API",
          version,
          description:
            "The device's local REST API. Authenticate with the console's session cookie (POST /api/v1/login) or " +
            "`Authorization: Bearer <token>` (POST /api/v1/tokens). State changes with a cookie must come from the console's own origin. " +
            "Errors are JSON `{error}`; a refused config adds `problems`; a throttled login adds `retryAfterSeconds` and `Retry-After`.",
        },
        components: {
          securitySchemes: {
            session: { type: "apiKey", in: "cookie", name: "evebox_session" },
            token: { type: "http", scheme: "bearer", description: "an API token, ebx_<id>_<secret>" },
          },
        },
        security: [{ session: [] }, { token: [] }],
      },
      exclude: [/^(?!\/api\/v1\/)/],
      excludeStaticFile: false,
      defaultValidationErrorResponse: {
        description: "the request does not fit the schema: `{error}` names the field",
        content: { "application/json": { schema: { type: "object", properties: { error: { type: "string" } }, required: ["error"] } } },
      },
    }).then((d) => withRoles(d as unknown as OpenApiPaths, app())));
}

type OpenApiPaths = { paths: Record<string, Record<string, Record<string, unknown>>> };

/** Each operation names the role its route declares (`requires`, model/roles.ts) as `x-evebox-role`. */
function withRoles(doc: OpenApiPaths, app: Hono<any>): OpenApiPaths { // eslint-disable-line @typescript-eslint/no-explicit-any
  for (const r of app.routes) {
    const need = declaredNeed(r.handler);
    if (!need) continue;
    const op = doc.paths[r.path.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, "{$1}")]?.[r.method.toLowerCase()];
    if (op) op["x-evebox-role"] = need;
  }
  return doc;
}
