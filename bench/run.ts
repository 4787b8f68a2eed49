// npm run bench: runs every benchmark in bench/ (each prints its figures as ratios against a
// baseline measured in the same run, one line each: figure, baseline, ratio, aim, met; bench/report.ts).
// `npm run bench -- console apps` runs only those. The soak bench runs 30 minutes unless
// BENCH_SOAK_MINUTES says less (CI: a few).
import { existsSync } from "node:fs";
import { join } from "node:path";

const ALL = ["console", "apps", "controller", "vms", "network", "network-api", "image", "metrics-history", "images", "soak"];
const wanted = Bun.argv.slice(2).length ? Bun.argv.slice(2) : ALL;
let failed = 0;
for (const name of wanted) {
  const file = join(import.meta.dir, `${name}.ts`);
  if (!existsSync(file)) {
    console.log(`(bench ${name}: not present)`);
    continue;
  }
  console.log(`\n=== bench ${name}`);
  const p = Bun.spawn([process.execPath, file], { stdout: "inherit", stderr: "inherit" });
  if ((await p.exited) !== 0) {
    failed++;
    console.log(`bench ${name} failed`);
  }
}
process.exit(failed ? 1 : 0);
