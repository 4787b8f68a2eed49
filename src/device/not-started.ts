// What a part answers before it has started (it loads after the console answers): try again soon (409).
import { DomainError } from "../model/errors.ts";

export function notStarted(what: string): DomainError {
  return new DomainError("conflict", `${what} is not running yet; try again in a moment`);
}
