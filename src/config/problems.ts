/** One thing wrong with a document, with the path of the field at fault (e.g. `apps[0].fixedresources.memory`). */
export interface Problem {
  path: string;
  message: string;
}

export function joinPath(base: string, key: string | number): string {
  if (typeof key === "number") return `${base}[${key}]`;
  return base ? `${base}.${key}` : key;
}

/** Problems a refusal lists; the rest are counted (`total`). A refusal stays small whatever was sent. */
export const MAX_PROBLEMS = 100;

/** A document refused whole; `problems` lists the first MAX_PROBLEMS faults found, `total` counts them all. */
export class ConfigRejected extends Error {
  readonly problems: Problem[];
  readonly total: number;

  constructor(
    problems: Problem[],
    readonly status: 400 | 413 | 415 = 400,
    total = problems.length,
  ) {
    const shown = problems.slice(0, MAX_PROBLEMS);
    const all = Math.max(total, problems.length);
    super(
      all === 1 && shown[0]
        ? `config refused: ${fmt(shown[0]!)}`
        : `config refused: ${all} problems: ${shown.slice(0, 5).map(fmt).join("; ")}${all > 5 ? "; …" : ""}`,
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

function fmt(p: Problem): string {
  return p.path ? `${p.path}: ${p.message}` : p.message;
}
