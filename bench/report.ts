// One way for every bench to print a figure: the figure, its baseline measured in the same run, the ratio, the
// aim and whether it is met. A figure without a baseline or an aim (a size, a count, a reference) says so.
//   what                                   figure        baseline (same run)            ratio   aim       met
export interface Line {
  what: string;
  value: number;
  unit: string;
  /** The same-run baseline: what it is and its value (same unit). */
  baseline?: { what: string; value: number };
  /**
   * The aim: on the ratio (`ratio ≤ 3`, `ratio ≥ 0.6`) or on the figure itself (`≤ 60 MiB`). `ratio` is
   * figure / baseline unless given (e.g. throughput, where higher is better, is still figure / baseline).
   */
  aim?: { on: "ratio" | "value"; op: "<=" | ">="; limit: number };
  note?: string;
}

const fmt = (n: number) => (Math.abs(n) >= 100 ? Math.round(n).toLocaleString("en-US") : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2));

export class Report {
  private readonly lines: Line[] = [];
  constructor(readonly title: string) {}

  add(l: Line): this {
    this.lines.push(l);
    return this;
  }

  /** The lines as text (also what `print` writes). */
  text(): string {
    const rows = this.lines.map((l) => {
      const ratio = l.baseline && l.baseline.value !== 0 ? l.value / l.baseline.value : null;
      let aim = "—";
      let met = "—";
      if (l.aim) {
        const x = l.aim.on === "ratio" ? ratio : l.value;
        aim = `${l.aim.op === "<=" ? "≤" : "≥"} ${l.aim.on === "ratio" ? `${l.aim.limit}×` : `${fmt(l.aim.limit)} ${l.unit}`}`;
        met = x === null ? "?" : (l.aim.op === "<=" ? x <= l.aim.limit : x >= l.aim.limit) ? "met" : "NOT met";
      }
      return [
        l.what,
        `${fmt(l.value)} ${l.unit}`,
        l.baseline ? `${l.baseline.what} ${fmt(l.baseline.value)} ${l.unit}` : "—",
        ratio === null ? "—" : `${ratio.toFixed(2)}×`,
        aim,
        met + (l.note ? `  (${l.note})` : ""),
      ];
    });
    const head = ["figure", "value", "baseline (same run)", "ratio", "aim", "met"];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ");
    return [`\n${this.title}`, line(head), ...rows.map(line)].join("\n");
  }

  print(): void {
    console.log(this.text());
  }
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
/** The spread of repeated runs, for the noise a shared machine adds: "min–max (n runs)". */
export const spread = (xs: number[], unit = "") => `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}${unit} over ${xs.length} runs`;
