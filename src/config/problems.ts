import { DomainError } from "../model/errors.ts";

/** One thing wrong with a document, with the path of the field at fault (e.g. `apps[0].fixedresources.memory`). */
export interface Problem {
  path: string;
  message: string;
}

export type ObjectKind = "app" | "volume" | "contentTree" | "datastore" | "networkInstance" | "patchEnvelope" | "device";

/** A problem tied to the object it makes faulty, so a controller config can hold just that object in error. */
export interface ObjectProblem extends Problem {
  objectKind: ObjectKind;
  objectId: string;
}

export function joinPath(base: string, key: string | number): string {
  if (typeof key === "number") return `${base}[${key}]`;
  return base ? `${base}.${key}` : key;
}

/** Problems a refusal lists; the rest are counted (`total`). A refusal stays small whatever was sent. */
export const MAX_PROBLEMS = 100;

/**
 * A document refused whole; `problems` lists the first MAX_PROBLEMS faults found, `total` counts them all. Its
 * details (what the console answers besides the message) are the problems, their count and whether the list is cut.
 */
export class ConfigRejected extends DomainError {
  readonly problems: Problem[];
  readonly total: number;

  constructor(problems: Problem[], kind: "invalid" | "too-large" | "unsupported-type" = "invalid", total = problems.length) {
    const shown = problems.slice(0, MAX_PROBLEMS).map(clip);
    const all = Math.max(total, problems.length);
    super(
      kind,
      all === 1 && shown[0]
        ? `config refused: ${fmt(shown[0]!)}`
        : `config refused: ${all} problems: ${shown.slice(0, 5).map(fmt).join("; ")}${all > 5 ? "; …" : ""}`,
      { problems: shown, problemCount: all, truncated: all > shown.length },
    );
    this.name = "ConfigRejected";
    this.problems = shown;
    this.total = all;
  }

  /** More problems were found than `problems` lists. */
  get truncated(): boolean {
    return this.total > this.problems.length;
  }
}

/** A problem may quote what was sent (a name, a value): quoted at most this much, so a refusal stays small. */
export const MAX_PROBLEM_TEXT = 512;

function clip(p: Problem): Problem {
  if (p.path.length <= MAX_PROBLEM_TEXT && p.message.length <= MAX_PROBLEM_TEXT) return p;
  const cut = (s: string) => (s.length <= MAX_PROBLEM_TEXT ? s : `${s.slice(0, MAX_PROBLEM_TEXT)}… (${s.length} characters)`);
  return { path: cut(p.path), message: cut(p.message) };
}

function fmt(p: Problem): string {
  return p.path ? `${p.path}: ${p.message}` : p.message;
}
