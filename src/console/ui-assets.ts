/** The console's browser bundle: index.html plus content-hashed files, embedded in the binary by build.ts. */
export interface UiAssets {
  indexHtml: string;
  /** URL path (e.g. `/assets/main-abc123.js`) → file. */
  files: Map<string, { blob: Blob; type: string }>;
}

const TYPES: Record<string, string> = {
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  woff2: "font/woff2",
  map: "application/json",
  html: "text/html; charset=utf-8",
};

export function contentTypeOf(path: string): string {
  return TYPES[path.split(".").pop() ?? ""] ?? "application/octet-stream";
}
