// Running a program: the one way evebox starts a short-lived external command (ip, nft, qemu-img, mkfs, …).
// Always an argv array, never a shell, so no text of a config can become shell syntax. Long-running children
// (QEMU, supervised services) are not started here: they are owned by the part that supervises them.

export interface RunOptions {
  /** Bytes or text written to the program's standard input (then closed); without it stdin is /dev/null. */
  stdin?: string | Uint8Array;
  /** Kill the program (SIGKILL) after this long; the result then has `timedOut: true`. */
  timeoutMs?: number;
  /**
   * Start the program in its own process group and kill the whole group on timeout, so children it started
   * (a shell script's, a helper's) go too and no grandchild keeps the output pipes open.
   */
  group?: boolean;
  /** Variables added to (or, with `inheritEnv: false`, instead of) evebox's own environment; undefined removes one. */
  env?: Record<string, string | undefined>;
  /** false: the program sees only `env`. Default true. */
  inheritEnv?: boolean;
  cwd?: string;
}

export interface RunResult {
  /** The exit code; 128 + the signal number when a signal ended it (137 for SIGKILL), 127 when it could not start. */
  code: number;
  stdout: string;
  stderr: string;
  /** The signal that ended it ("SIGKILL", …), or null when it exited by itself. */
  signal: string | null;
  /** It was killed because `timeoutMs` passed. */
  timedOut: boolean;
}

/** How long the output is still read after a timeout kill (a grandchild outside the group may hold the pipe). */
const DRAIN_AFTER_KILL_MS = 1_000;

function environment(o: RunOptions): Record<string, string> {
  const out: Record<string, string> = {};
  if (o.inheritEnv !== false) for (const [k, v] of Object.entries(process.env)) if (v !== undefined) out[k] = v;
  for (const [k, v] of Object.entries(o.env ?? {})) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** Reads a stream to its end, or up to the moment `stop` resolves; returns what was read. */
async function collect(stream: ReadableStream<Uint8Array>, stop: Promise<void>): Promise<string> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let stopped = false;
  stop.then(() => {
    stopped = true;
    reader.cancel().catch(() => {});
  });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || stopped) break;
      text += decoder.decode(value, { stream: true });
    }
  } catch {
    // cancelled after a timeout: keep what was read
  }
  return text + decoder.decode();
}

/**
 * Runs `argv[0]` with the arguments `argv[1..]` and returns how it ended. Never throws for the program's sake: a
 * non-zero exit, a timeout or a program that is not there (code 127) are all results. Use `runChecked` to throw.
 */
export async function run(argv: readonly string[], o: RunOptions = {}): Promise<RunResult> {
  if (argv.length === 0 || !argv[0]) throw new TypeError("run: empty argv");
  let proc: Bun.Subprocess<"pipe" | "ignore", "pipe", "pipe">;
  try {
    proc = Bun.spawn([...argv], {
      stdin: o.stdin !== undefined ? "pipe" : "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: environment(o),
      cwd: o.cwd,
      detached: o.group === true,
    });
  } catch (err) {
    return { code: 127, stdout: "", stderr: `cannot run ${argv[0]}: ${(err as Error).message}`, signal: null, timedOut: false };
  }
  if (o.stdin !== undefined) {
    const sink = proc.stdin as import("bun").FileSink;
    try {
      sink.write(o.stdin);
      await sink.end();
    } catch {
      // the program closed its stdin early (or exited): its exit code says what happened
    }
  }

  let timedOut = false;
  let killed!: () => void;
  const afterKill = new Promise<void>((resolve) => (killed = resolve)).then(() => Bun.sleep(DRAIN_AFTER_KILL_MS));
  const timer =
    o.timeoutMs !== undefined
      ? setTimeout(() => {
          timedOut = true;
          kill(proc.pid, o.group === true, () => proc.kill("SIGKILL"));
          killed();
        }, Math.max(0, o.timeoutMs))
      : null;
  try {
    const [stdout, stderr, code] = await Promise.all([collect(proc.stdout, afterKill), collect(proc.stderr, afterKill), proc.exited]);
    return { code, stdout, stderr, signal: proc.signalCode == null ? null : String(proc.signalCode), timedOut };
  } finally {
    if (timer) clearTimeout(timer);
  }
}

function kill(pid: number, group: boolean, fallback: () => void): void {
  if (group) {
    try {
      process.kill(-pid, "SIGKILL");
      return;
    } catch {
      // the group is gone already, or was never made: kill the process itself
    }
  }
  try {
    fallback();
  } catch {
    // already exited
  }
}

/** A program that failed: which one, with what arguments, how it ended and what it said. */
export class CommandError extends Error {
  override readonly name = "CommandError";
  readonly program: string;
  constructor(
    /** The whole command line, program first. */
    readonly argv: readonly string[],
    readonly code: number,
    /** What it said on stderr (or stdout when stderr was empty), trimmed. */
    readonly stderr: string,
    readonly timedOut = false,
    timeoutMs?: number,
  ) {
    const said = stderr.trim().split("\n").slice(0, 6).join("; ");
    const how = timedOut ? `did not finish within ${timeoutMs ?? "?"} ms` : `exited ${code}`;
    super(`${argv.join(" ")}: ${timedOut ? (said ? `${how}: ${said}` : how) : said || how}`);
    this.program = argv[0] ?? "";
    this.stderr = stderr.trim();
  }
}

export interface CheckedOptions extends RunOptions {
  /** Exit codes other than 0 that are not failures. */
  okCodes?: readonly number[];
}

/** Runs a program and returns its result; throws `CommandError` when it exits non-zero (not in `okCodes`) or times out. */
export async function runChecked(argv: readonly string[], o: CheckedOptions = {}): Promise<RunResult> {
  const r = await run(argv, o);
  if (r.timedOut || (r.code !== 0 && !(o.okCodes ?? []).includes(r.code))) {
    throw new CommandError(argv, r.code, r.stderr.trim() ? r.stderr : r.stdout, r.timedOut, o.timeoutMs);
  }
  return r;
}
