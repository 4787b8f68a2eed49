// The logger every part is given: four levels, each line tagged with the part's source when it is kept.

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** The same, with the level as an argument (for code that passes it through). */
  log(level: LogLevel, message: string): void;
}
