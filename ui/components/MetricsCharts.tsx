// Time-series charts of the device or an app (CPU, memory, disk I/O, network; the device's data disk in use) over
// 1 h / 24 h / 7 d, from GET /api/v1/metrics/history. uPlot (~50 KB) is imported on demand, so the console's main
// bundle does not carry it; its stylesheet is a few hundred bytes in the main one.
import "uplot/dist/uPlot.min.css";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import type uPlot from "uplot";
import { type ApiClient, ApiError } from "../api";
import { formatBytes, formatRate } from "../format";

export type HistoryRange = "1h" | "24h" | "7d";
type History = Awaited<ReturnType<ApiClient["metricsHistory"]>>;
type Column = keyof History["series"];

const RANGES: { value: HistoryRange; label: string }[] = [
  { value: "1h", label: "1 hour" },
  { value: "24h", label: "24 hours" },
  { value: "7d", label: "7 days" },
];

interface ChartDef {
  metric: string;
  title: string;
  lines: { column: Exclude<Column, "ts">; label: string; tone: "a" | "b" }[];
  format: (v: number) => string;
}

const CHARTS: ChartDef[] = [
  { metric: "cpu", title: "CPU", lines: [{ column: "cpuPercent", label: "CPU", tone: "a" }], format: (v) => `${v < 10 ? v.toFixed(1) : Math.round(v)} %` },
  { metric: "memory", title: "Memory", lines: [{ column: "memoryBytes", label: "In use", tone: "a" }], format: formatBytes },
  {
    metric: "disk",
    title: "Disk I/O",
    lines: [
      { column: "diskReadBps", label: "Read", tone: "a" },
      { column: "diskWriteBps", label: "Write", tone: "b" },
    ],
    format: formatRate,
  },
  {
    metric: "network",
    title: "Network",
    lines: [
      { column: "netRxBps", label: "Received", tone: "a" },
      { column: "netTxBps", label: "Sent", tone: "b" },
    ],
    format: formatRate,
  },
];
const DISK_USED: ChartDef = { metric: "disk-used", title: "Data disk in use", lines: [{ column: "diskUsedBytes", label: "In use", tone: "a" }], format: formatBytes };

/** How often each range is fetched again while shown (its step, roughly). */
const REFRESH_MS: Record<HistoryRange, number> = { "1h": 10_000, "24h": 60_000, "7d": 600_000 };

let uplotModule: Promise<typeof uPlot> | null = null;
const loadUplot = () => (uplotModule ??= import("uplot").then((m) => m.default));

export interface MetricsChartsProps {
  api: ApiClient;
  /** `device`, or an app's UUID. */
  object: string;
  /** The section's id (`device-charts`, `app-charts`). */
  id: string;
  heading: string;
}

export function MetricsCharts({ api, object, id, heading }: MetricsChartsProps) {
  const [range, setRange] = useState<HistoryRange>("1h");
  const [history, setHistory] = useState<History | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setHistory(await api.metricsHistory(object, range));
      setError(null);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) setError(e instanceof Error ? e.message : String(e));
    }
  }, [api, object, range]);

  useEffect(() => {
    void load();
    const timer = setInterval(() => {
      if (!document.hidden) void load();
    }, REFRESH_MS[range]);
    return () => clearInterval(timer);
  }, [load, range]);

  const charts = object === "device" ? [...CHARTS, DISK_USED] : CHARTS;
  const headingId = `${id}-heading`;
  const empty = history !== null && history.series.ts.length === 0;
  return (
    <section class="card card-wide metrics" id={id} aria-labelledby={headingId} data-range={range}>
      <div class="section-head">
        <h2 id={headingId}>{heading}</h2>
        <div class="segmented" role="group" aria-label="Time range">
          {RANGES.map((r) => (
            <button key={r.value} type="button" class="button secondary small" data-range={r.value} aria-pressed={range === r.value} onClick={() => setRange(r.value)}>
              {r.label}
            </button>
          ))}
        </div>
      </div>
      {error && (
        <p class="form-error" role="alert">
          Could not load the history: {error}
        </p>
      )}
      {history === null && !error && (
        <p class="muted" role="status">
          Loading the history…
        </p>
      )}
      {empty && <p class="muted">No samples in this range yet: the device samples every {Math.round(history!.intervalMs / 1000)} s.</p>}
      {history && !empty && (
        <div class="charts">
          {charts.map((c) => (
            <Chart key={c.metric} def={c} history={history} />
          ))}
        </div>
      )}
    </section>
  );
}

function Chart({ def, history }: { def: ChartDef; history: History }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const [failed, setFailed] = useState<string | null>(null);
  const s = history.series;
  const columns = def.lines.map((l) => s[l.column]);
  const points = columns[0]!.filter((v) => v !== null).length;
  const latest = lastKnown(columns[0]!);
  const data = [s.ts.map((t) => t / 1000), ...columns] as uPlot.AlignedData;

  useEffect(() => {
    let disposed = false;
    let observer: ResizeObserver | null = null;
    void loadUplot()
      .then((UPlot) => {
        if (disposed || !box.current) return;
        const css = getComputedStyle(document.documentElement);
        const color = (name: string, fallback: string) => css.getPropertyValue(name).trim() || fallback;
        const tones = { a: color("--accent", "#0b5cad"), b: color("--warn-text", "#6f4500") };
        const axis = { stroke: color("--muted", "#566170"), grid: { stroke: color("--border", "#d3d9e0"), width: 1 }, ticks: { stroke: color("--border", "#d3d9e0"), width: 1 } };
        const width = Math.max(200, box.current.clientWidth);
        plot.current = new UPlot(
          {
            width,
            height: 150,
            legend: { show: def.lines.length > 1 },
            cursor: { drag: { x: false, y: false } },
            scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
            axes: [axis, { ...axis, size: 64, values: (_u, ticks) => ticks.map((t) => def.format(t)) }],
            series: [{}, ...def.lines.map((l) => ({ label: l.label, stroke: tones[l.tone], width: 1.5, spanGaps: false, value: (_u: uPlot, v: number | null) => (v === null ? "—" : def.format(v)) }))],
          },
          data,
          box.current,
        );
        observer = new ResizeObserver(() => {
          if (box.current && plot.current) plot.current.setSize({ width: Math.max(200, box.current.clientWidth), height: 150 });
        });
        observer.observe(box.current);
      })
      .catch((e) => setFailed(e instanceof Error ? e.message : String(e)));
    return () => {
      disposed = true;
      observer?.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // The plot is made once; new data goes through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    plot.current?.setData(data);
  });

  return (
    <figure class="chart" data-metric={def.metric} data-points={points}>
      <figcaption>
        <span class="chart-title">{def.title}</span>
        <span class="chart-now">{latest === null ? "—" : `${def.format(latest)} now`}</span>
      </figcaption>
      <div ref={box} class="chart-plot" role="img" aria-label={`${def.title} over time: ${points} points${latest === null ? "" : `, latest ${def.format(latest)}`}`} />
      {failed && <p class="form-error">The chart could not be drawn: {failed}</p>}
    </figure>
  );
}

function lastKnown(values: (number | null)[]): number | null {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i]!;
  return null;
}
