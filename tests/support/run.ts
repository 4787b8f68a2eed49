// Running a program from a test or a fixture builder: src/lib/run.ts (argv only, no shell unless the argv is one),
// in the shape the tests use — the exit code and output, a non-zero exit thrown with what the program said unless
// `ok` lists it.
import { runChecked } from "../../src/lib/run.ts";

export interface RunOptions {
  /** Exit codes besides 0 that are answers, not failures. */
  ok?: number[];
  stdin?: string | Uint8Array;
  /** Kill the program (SIGKILL) after this long; that throws. */
  timeoutMs?: number;
  /** Added to the test process's environment. */
  env?: Record<string, string>;
  cwd?: string;
}

/** Runs `argv`; answers its exit code and output. */
export async function sh(argv: string[], opts: RunOptions = {}): Promise<{ code: number; out: string; err: string }> {
  const r = await runChecked(argv, { stdin: opts.stdin, timeoutMs: opts.timeoutMs, env: opts.env, cwd: opts.cwd, okCodes: opts.ok });
  return { code: r.code, out: r.stdout, err: r.stderr };
}

/** Runs `argv`; answers its standard output. */
export async function run(argv: string[], opts: RunOptions = {}): Promise<string> {
  return (await sh(argv, opts)).out;
}
