import { expect, test } from "bun:test";
import { renderApiDocs, typeText } from "./api-docs.ts";

test("a schema reads as a short type", () => {
  expect(typeText({ type: "object", properties: { a: { type: "string" }, b: { type: "array", items: { type: "number" } } }, required: ["a"] })).toBe("{ a: string, b?: number[] }");
  expect(typeText({ type: "string", enum: ["on", "off"] })).toBe('"on" | "off"');
  expect(typeText({ title: "Error", type: "object", properties: {} })).toBe("Error");
});

test("the page escapes every text of the document and lists each operation", () => {
  const html = renderApiDocs({
    info: { title: "<b>t</b>", version: "1" },
    paths: { "/api/v1/x/{id}": { get: { summary: "<script>alert(1)</script>", tags: ["x"], security: [], responses: { "200": { description: "ok" } } }, delete: { summary: "gone" } } },
  });
  expect(html).not.toContain("<script>");
  expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
  expect(html).toContain("&lt;b&gt;t&lt;/b&gt;");
  expect(html).toContain('<span class="m get">GET</span> <code>/api/v1/x/{id}</code> <span class="open">open</span>');
  expect(html).toContain('<span class="m delete">DELETE</span>');
});
