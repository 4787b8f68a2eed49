// Talking to the test guest's shell over a console of a running VM.
import type { ConsolePort, QemuRuntime } from "../../../src/runtime/vms/index.ts";

let nonce = 0;

/**
 * Types `command` into the guest's shell and resolves with its output (one line). The answer is framed by
 * markers split by quotes in what is typed, so the terminal's echo of the input never matches them.
 */
export async function askGuest(runtime: QemuRuntime, appUuid: string, command: string, port: ConsolePort = "serial", timeoutMs = 15_000): Promise<string> {
  const n = `${process.pid}-${++nonce}`;
  const console = runtime.openConsole(appUuid, port);
  try {
    const answer = runtime.waitForConsole(appUuid, new RegExp(`ANSWER-${n}:([^\\r\\n]*):END`), timeoutMs, port);
    console.write(`echo "ANS""WER-${n}:$(${command}):E""ND"\n`);
    const text = await answer;
    return text.match(new RegExp(`ANSWER-${n}:([^\\r\\n]*):END`))![1]!;
  } finally {
    console.close();
  }
}
