// The baseline: a bare Bun.serve answering JSON, compiled the same way as evebox.
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT ?? 0),
  fetch(req) {
    const path = new URL(req.url).pathname;
    if (path === "/api/v1/health") return Response.json({ ok: true });
    return Response.json({ device: { name: "bare", uptimeSeconds: process.uptime() }, parts: [], apps: [] });
  },
});
console.log(`bare: console on http://127.0.0.1:${server.port}`);
