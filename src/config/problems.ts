/** One thing wrong with a document, with the path of the field at fault (e.g. `apps[0].fixedresources.memory`). */
export interface Problem {
  path: string;
  message: string;
}

export function joinPath(base: string, key: string | number): string {
  if (typeof key === "number") return `${base}[${key}]`;
  return base ? `${base}.${key}` : key;
}

/** A document refused whole; `problems` lists every fault found, not just the first. */
export class ConfigRejected extends Error {
  constructor(
    readonly problems: Problem[],
    readonly status: 400 | 413 | 415 = 400,
  ) {
    super(
      problems.length === 1
        ? `config refused: ${fmt(problems[0]!)}`
        : `config refused: ${problems.length} problems: ${problems.slice(0, 5).map(fmt).join("; ")}${problems.length > 5 ? "; …" : ""}`,
    );
    this.name = "ConfigRejected";
  }
}

function fmt(p: Problem): string {
  return p.path ? `${p.path}: ${p.message}` : p.message;
}
