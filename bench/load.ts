export {};
// A closed-loop HTTP load generator, run as its own process so it does not share the server's event loop.
// usage: bun bench/load.ts URL REQUESTS CONCURRENCY [BEARER]
const [url, total, concurrency, bearer] = Bun.argv.slice(2);
const n = Number(total);
const headers: Record<string, string> = bearer ? { authorization: `Bearer ${bearer}` } : {};
let issued = 0;
let failed = 0;
const t0 = performance.now();
await Promise.all(
  Array.from({ length: Number(concurrency) }, async () => {
    while (issued < n) {
      issued++;
      const res = await fetch(url!, { headers });
      if (res.status !== 200) failed++;
      await res.arrayBuffer();
    }
  }),
);
const seconds = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ requests: n, failed, seconds, rps: n / seconds }));
