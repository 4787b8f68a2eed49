// A client of an app's console WebSocket (/api/v1/apps/{uuid}/console), as the browser's console panel
// uses it: terminal bytes in binary frames, JSON control messages in text frames.

export interface ConsoleClient {
  /** Everything received so far as text (terminal output). */
  text(): string;
  /** Control messages received (text frames). */
  controls(): any[];
  /** Types this (sent as a binary frame, as xterm's input is). */
  type(input: string): void;
  send(frame: string | Uint8Array): void;
  /** Resolves with the received text once `pattern` shows in what arrived after `from` (an offset in text()). */
  waitFor(pattern: RegExp | string, timeoutMs?: number, from?: number): Promise<string>;
  closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

export async function openConsole(baseUrl: string, appUuid: string, headers: Record<string, string>): Promise<ConsoleClient> {
  const url = `${baseUrl.replace(/^http/, "ws")}/api/v1/apps/${appUuid}/console`;
  const ws = new WebSocket(url, { headers } as unknown as string[]);
  ws.binaryType = "arraybuffer";
  let text = "";
  const controls: any[] = [];
  const decoder = new TextDecoder();
  const waiters = new Set<() => void>();
  ws.onmessage = (e) => {
    if (typeof e.data === "string") controls.push(JSON.parse(e.data));
    else text += decoder.decode(new Uint8Array(e.data as ArrayBuffer), { stream: true });
    for (const w of [...waiters]) w();
  };
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.onclose = (e) => {
      resolve({ code: e.code, reason: e.reason });
      for (const w of [...waiters]) w();
    };
  });
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`console WebSocket ${url} failed to open`));
  });
  const client: ConsoleClient = {
    text: () => text,
    controls: () => controls,
    type: (input) => ws.send(new TextEncoder().encode(input)),
    send: (frame) => ws.send(frame),
    waitFor(pattern, timeoutMs = 20_000, from = 0) {
      const re = typeof pattern === "string" ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : pattern;
      return new Promise((resolve, reject) => {
        const check = () => {
          if (re.test(text.slice(from))) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(text.slice(from));
          } else if (ws.readyState === WebSocket.CLOSED) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error(`console closed before ${re} showed; it showed:\n${text.slice(-2000)}`));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`console: ${re} did not show within ${timeoutMs} ms; it showed:\n${text.slice(-2000)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    closed,
    close: () => ws.close(),
  };
  return client;
}

let nonce = 0;

/**
 * Types `command` into a shell on the console and resolves with its output (one line), framed by markers
 * split by quotes in what is typed, so the terminal's echo of the input never matches them.
 */
export async function ask(c: ConsoleClient, command: string, timeoutMs = 20_000): Promise<string> {
  const n = `${process.pid}-${++nonce}`;
  const from = c.text().length;
  c.type(`echo "ANS""WER-${n}:$(${command}):E""ND"\n`);
  const re = new RegExp(`ANSWER-${n}:([^\\r\\n]*):END`);
  const seen = await c.waitFor(re, timeoutMs, from);
  return seen.match(re)![1]!;
}
