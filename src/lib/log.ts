// Logging with a source: every part gets a Logger made here, so each kept line says which part wrote it
// ("controller", "network", "baseos", …) and every line not at debug level is also echoed to stderr.
import type { LogLevel, Logger } from "../model/log.ts";

export type { LogLevel, Logger } from "../model/log.ts";

/** One kept line, as the store's logs table holds it. */
export interface LogRecord {
  ts: Date;
  source: string;
  objectId: string | null;
  level: LogLevel;
  message: string;
}

/** Where lines are kept: the store's `addLogs` in practice. */
export interface LogSink {
  addLogs(rows: LogRecord[]): void;
}

export interface LoggerOptions {
  /** The object the lines are about (an app's UUID), kept with each line. */
  objectId?: string | null;
  /** Echo lines above debug to stderr (default true); a function receives the line instead. */
  echo?: boolean | ((line: string) => void);
  now?: () => Date;
}

const toStderr = (line: string) => process.stderr.write(`${line}\n`);

/**
 * A logger for `source`. With a sink, lines are kept there; every line above debug is also written to stderr as
 * `evebox: <source>: <level>: <message>`. Without a sink (before the store is open, in a tool), stderr is all and
 * debug lines are dropped. A sink that throws (a closed store) does not take the caller down: the line still
 * reaches stderr, even with `echo: false`.
 */
export function createLogger(source: string, sink?: LogSink | null, o: LoggerOptions = {}): Logger {
  const echo = o.echo === false ? null : typeof o.echo === "function" ? o.echo : toStderr;
  const now = o.now ?? (() => new Date());
  const log = (level: LogLevel, message: string) => {
    let kept = false;
    if (sink) {
      try {
        sink.addLogs([{ ts: now(), source, objectId: o.objectId ?? null, level, message }]);
        kept = true;
      } catch {
        // fall through to stderr
      }
    }
    if (level === "debug") return; // debug lines are only kept
    const line = `evebox: ${source}: ${level}: ${message}`;
    if (echo) echo(line);
    else if (!kept) toStderr(line);
  };
  return {
    log,
    debug: (m) => log("debug", m),
    info: (m) => log("info", m),
    warn: (m) => log("warn", m),
    error: (m) => log("error", m),
  };
}
