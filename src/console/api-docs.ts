// GET /api/docs: the OpenAPI document as one readable HTML page, rendered on the device. No script (the console's
// CSP allows no inline script) and nothing from outside (the device may be air-gapped); styles are inline.
// Every text from the document is escaped.

interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  description?: string;
  title?: string;
  enum?: unknown[];
  const?: unknown;
  anyOf?: Schema[];
  $ref?: string;
}
interface Operation {
  summary?: string;
  description?: string;
  tags?: string[];
  security?: unknown[];
  parameters?: { name: string; in: string; required?: boolean; description?: string; schema?: Schema }[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: Schema }> }>;
}
export interface OpenApiDoc {
  info?: { title?: string; version?: string; description?: string };
  paths?: Record<string, Record<string, Operation>>;
}

const METHODS = ["get", "put", "post", "delete", "patch"];

export function escapeHtml(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!);
}

/** A schema as a short type text: `{ password: string, name?: string }`. */
export function typeText(s: Schema | undefined, depth = 0): string {
  if (!s) return "any";
  if (s.$ref) return s.$ref.split("/").pop()!;
  if (s.title) return s.title;
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.enum) return s.enum.map((e) => JSON.stringify(e)).join(" | ");
  if (s.anyOf) return s.anyOf.map((x) => typeText(x, depth)).join(" | ");
  if (s.type === "array") return `${typeText(s.items, depth)}[]`;
  if (s.properties && depth < 3) {
    const req = new Set(s.required ?? []);
    return `{ ${Object.entries(s.properties)
      .map(([k, v]) => `${k}${req.has(k) ? "" : "?"}: ${typeText(v, depth + 1)}`)
      .join(", ")} }`;
  }
  return Array.isArray(s.type) ? s.type.join(" | ") : (s.type ?? "any");
}

function fieldRows(s: Schema | undefined): string {
  if (!s?.properties) return "";
  const req = new Set(s.required ?? []);
  return `<table><tr><th>field</th><th>type</th><th></th></tr>${Object.entries(s.properties)
    .map(([k, v]) => `<tr><td><code>${escapeHtml(k)}</code>${req.has(k) ? "" : " <i>optional</i>"}</td><td><code>${escapeHtml(typeText(v))}</code></td><td>${escapeHtml(v.description ?? "")}</td></tr>`)
    .join("")}</table>`;
}

function operationHtml(method: string, path: string, op: Operation): string {
  const id = `${method}-${path}`.replace(/[^A-Za-z0-9]+/g, "-");
  const open = Array.isArray(op.security) && op.security.length === 0;
  const params = (op.parameters ?? [])
    .map((p) => `<li><code>${escapeHtml(p.name)}</code> (${escapeHtml(p.in)}${p.required ? ", required" : ""}): <code>${escapeHtml(typeText(p.schema))}</code> ${escapeHtml(p.description ?? p.schema?.description ?? "")}</li>`)
    .join("");
  const body = Object.entries(op.requestBody?.content ?? {})
    .map(([media, m]) => `<p>Body <code>${escapeHtml(media)}</code>${m.schema ? `: <code>${escapeHtml(typeText(m.schema))}</code>` : ""}</p>${fieldRows(m.schema)}`)
    .join("");
  const answers = Object.entries(op.responses ?? {})
    .map(([status, r]) => {
      const media = Object.entries(r.content ?? {})
        .map(([t, m]) => (m.schema ? `<code>${escapeHtml(typeText(m.schema))}</code>` : `<code>${escapeHtml(t)}</code>`))
        .join(", ");
      return `<tr><td><b>${escapeHtml(status)}</b></td><td>${escapeHtml(r.description ?? "")}</td><td>${media}</td></tr>`;
    })
    .join("");
  return `<section id="${id}"><h3><span class="m ${escapeHtml(method)}">${escapeHtml(method.toUpperCase())}</span> <code>${escapeHtml(path)}</code>${open ? ' <span class="open">open</span>' : ""}</h3>
<p>${escapeHtml(op.summary ?? "")}</p>${op.description ? `<p class="d">${escapeHtml(op.description)}</p>` : ""}
${params ? `<ul>${params}</ul>` : ""}${body}
<table class="r"><tr><th>status</th><th>when</th><th>body</th></tr>${answers}</table></section>`;
}

export function renderApiDocs(doc: OpenApiDoc): string {
  const ops: { tag: string; method: string; path: string; op: Operation }[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (op) ops.push({ tag: op.tags?.[0] ?? "other", method, path, op });
    }
  }
  const tags = [...new Set(ops.map((o) => o.tag))];
  const toc = tags
    .map((t) => `<li>${escapeHtml(t)}: ${ops.filter((o) => o.tag === t).map((o) => `<a href="#${`${o.method}-${o.path}`.replace(/[^A-Za-z0-9]+/g, "-")}">${escapeHtml(o.method.toUpperCase())} ${escapeHtml(o.path)}</a>`).join(" · ")}</li>`)
    .join("");
  const sections = tags.map((t) => `<h2>${escapeHtml(t)}</h2>${ops.filter((o) => o.tag === t).map((o) => operationHtml(o.method, o.path, o.op)).join("\n")}`).join("\n");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(doc.info?.title ?? "API")}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2330}
code{font:13px ui-monospace,monospace;background:#f1f3f7;padding:0 .2em;border-radius:3px}
section{border-top:1px solid #dde1ea;padding:.5rem 0}h3{margin:.4rem 0;font-size:1rem}
table{border-collapse:collapse;margin:.3rem 0}td,th{text-align:left;padding:.15rem .6rem .15rem 0;vertical-align:top}
.m{display:inline-block;min-width:4em;font-size:12px;color:#fff;border-radius:3px;text-align:center;padding:0 .3em}
.get{background:#2f6fdf}.post{background:#1f9254}.put{background:#b7791f}.delete{background:#c53030}.patch{background:#6b46c1}
.open{font-size:12px;color:#1f9254;border:1px solid #1f9254;border-radius:3px;padding:0 .3em}.d{color:#4a5468}
</style></head><body>
<h1>${escapeHtml(doc.info?.title ?? "API")} <small>${escapeHtml(doc.info?.version ?? "")}</small></h1>
<p>${escapeHtml(doc.info?.description ?? "")}</p>
<p>Every refusal answers <code>Error</code>: <code>{ error: string, problems?: { path, message }[], problemCount?, truncated?, retryAfterSeconds? }</code>.</p>
<p>The machine-readable document: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</p>
<ul>${toc}</ul>
${sections}
</body></html>`;
}
