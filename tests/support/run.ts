// Running a program from a test or a fixture builder: argv only (no shell unless the argv is one), output
// collected, a non-zero exit thrown with its stderr (or stdout) unless `ok` lists it.

export interface RunOptions {
  /** Exit codes besides 0 that are answers, not failures. */
  ok?: number[];
  stdin?: string | Uint8Array;
  /** Kill the program (SIGKILL) after this long. */
  timeoutMs?: number;
  /** Added to the test process's environment. */
  env?: Record<string, string>;
  cwd?: string;
}

/** Runs `argv`; answers its exit code and output. */
export async function sh(argv: string[], opts: RunOptions = {}): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(argv, {
    cwd: opts.cwd,
    stdin: opts.stdin === undefined ? "ignore" : typeof opts.stdin === "string" ? new TextEncoder().encode(opts.stdin) : opts.stdin,
    stdout: "pipe",
    stderr: "pipe",
    env: opts.env ? { ...process.env, ...opts.env } : undefined,
  });
  const timer = opts.timeoutMs ? setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs) : null;
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (timer) clearTimeout(timer);
  if (code !== 0 && !(opts.ok ?? []).includes(code)) throw new Error(`${argv.join(" ")} exited ${code}: ${(err.trim() || out.trim()).slice(-2000)}`);
  return { code, out, err };
}

/** Runs `argv`; answers its standard output. */
export async function run(argv: string[], opts: RunOptions = {}): Promise<string> {
  return (await sh(argv, opts)).out;
}
