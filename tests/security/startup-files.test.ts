// The compiled binary takes its settings from its environment and flags only: a .env, bunfig.toml, tsconfig.json
// or package.json in the directory it is started in is not read (Bun's standalone executables read them by
// default: a .env there set EVEBOX_DATA, a bunfig.toml could preload a script of its own).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary } from "../support/evebox.ts";

let binary = "";
let dir = "";

beforeAll(async () => {
  binary = await ensureBinary();
  dir = mkdtempSync(join(tmpdir(), "evebox-startup-files-"));
}, 300_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("files in the working directory", () => {
  test("a .env and a bunfig.toml there change nothing: no setting taken, no script preloaded", async () => {
    const marker = join(dir, "preloaded");
    writeFileSync(join(dir, ".env"), `EVEBOX_DATA=${join(dir, "from-dotenv")}\n`);
    writeFileSync(join(dir, "evil.ts"), `require("node:fs").writeFileSync(${JSON.stringify(marker)}, "ran");\n`);
    writeFileSync(join(dir, "bunfig.toml"), `preload = ["./evil.ts"]\n`);
    writeFileSync(join(dir, "package.json"), `{"name":"x","type":"module"}\n`);
    const env = { ...process.env };
    delete env.EVEBOX_DATA;
    const own = join(dir, "own-data");
    const r = Bun.spawnSync([binary, "status", "--data", own], { cwd: dir, env, stdout: "pipe", stderr: "pipe" });
    const out = `${r.stdout}${r.stderr}`;
    // Nothing runs at that data directory: the answer names it, and not the .env's.
    expect(out).toContain(join(own, "run", "evebox.sock"));
    expect(out).not.toContain("from-dotenv");
    const bare = Bun.spawnSync([binary, "status"], { cwd: dir, env, stdout: "pipe", stderr: "pipe" });
    expect(`${bare.stdout}${bare.stderr}`).not.toContain("from-dotenv");
    expect(existsSync(marker)).toBe(false);
  });
});
