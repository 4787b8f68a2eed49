// An app's log: the newest lines, and with "Follow" on, new lines as they come (polled every 1.5 s with
// after=<last id>). The view stays at the bottom while it is scrolled to the bottom, and stays put otherwise.
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import type { AppsApi, LogLine } from "../api";

const FOLLOW_MS = 1_500;
const PAGE = 500;
const KEEP = 2_000;

export function AppLogs({ appsApi, uuid, name }: { appsApi: AppsApi; uuid: string; name: string }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [loaded, setLoaded] = useState(false);
  const [follow, setFollow] = useState(true);
  const [error, setError] = useState<string | null>(null);
  /** Bumped by "Load new lines" while not following: one more fetch. */
  const [tick, setTick] = useState(0);
  const lastId = useRef(0);
  const view = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);

  useEffect(() => {
    let disposed = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const fetchNew = async () => {
      try {
        // More than a page may have arrived: keep asking while full pages come back.
        for (let round = 0; round < 10; round++) {
          const got = await appsApi.logs(uuid, lastId.current, PAGE);
          if (disposed) return;
          if (got.length) {
            lastId.current = got[got.length - 1]!.id;
            setLines((old) => {
              const all = old.concat(got);
              return all.length > KEEP ? all.slice(all.length - KEEP) : all;
            });
          }
          if (got.length < PAGE) break;
        }
        setError(null);
      } catch (e) {
        if (!disposed && !(e instanceof ApiError && e.status === 401)) {
          setError(e instanceof Error ? e.message : String(e));
        }
      } finally {
        if (!disposed) setLoaded(true);
      }
    };
    const loop = async () => {
      await fetchNew();
      if (!disposed && follow) timer = setTimeout(loop, FOLLOW_MS);
    };
    void loop();
    return () => {
      disposed = true;
      clearTimeout(timer);
    };
  }, [appsApi, uuid, follow, tick]);

  // Keep the newest line in sight while the reader is at the bottom.
  useLayoutEffect(() => {
    const el = view.current;
    if (el && atBottom.current) el.scrollTop = el.scrollHeight;
  }, [lines]);

  return (
    <section id="app-logs" class="card card-wide" aria-labelledby="logs-heading">
      <div class="section-head">
        <h2 id="logs-heading">Logs</h2>
        <div class="log-controls">
          <label class="checkbox">
            <input type="checkbox" id="logs-follow" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} />
            Follow new lines
          </label>
          {!follow && (
            <button type="button" id="logs-refresh" class="button secondary small" onClick={() => setTick((t) => t + 1)}>
              Load new lines
            </button>
          )}
        </div>
      </div>
      {error && (
        <div class="banner banner-error" role="alert">
          Could not load the log: {error}
          {follow ? " Trying again." : ""}
        </div>
      )}
      <div
        ref={view}
        class="log-view"
        role="log"
        aria-live="off"
        aria-label={`Log of ${name}`}
        tabIndex={0}
        onScroll={(e) => {
          const el = e.currentTarget;
          atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
        }}
      >
        {!loaded ? (
          <p class="muted">Loading the log…</p>
        ) : lines.length === 0 ? (
          <p class="muted">No log lines yet.</p>
        ) : (
          lines.map((line) => (
            <div class="log-line" key={line.id} data-level={line.level}>
              <time class="log-time" dateTime={isoOf(line.ts)} title={isoOf(line.ts)}>
                {timeOf(line.ts)}
              </time>
              <span class={`log-level log-${line.level}`}>{line.level}</span>
              <span class="log-message">{line.message}</span>
            </div>
          ))
        )}
      </div>
      <p class="muted log-count">
        {lines.length === KEEP ? `The newest ${KEEP} lines.` : `${lines.length} ${lines.length === 1 ? "line" : "lines"}.`}
        {follow ? " New lines appear as they are written." : ""}
      </p>
    </section>
  );
}

function toDate(ts: string | number): Date {
  return new Date(typeof ts === "number" ? ts : /^\d+$/.test(ts) ? Number(ts) : ts);
}

function isoOf(ts: string | number): string {
  const d = toDate(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : d.toISOString();
}

function timeOf(ts: string | number): string {
  const d = toDate(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}
