// The Activity log as a list (the Activity page, and the dashboard's latest entries): when, what, who caused it,
// the object it is about (a link), and for a failure its reason. Live: every device event loads it again.
import { useCallback, useState } from "preact/hooks";
import { type ApiClient, ApiError } from "../api";
import { formatDateTime, formatRate, formatBytes } from "../format";
import { useLive } from "../hooks";
import { Link } from "../router";

export type Activity = Awaited<ReturnType<ApiClient["activity"]>>;
export type ActivityEntry = Activity["entries"][number];

const AREA_LABELS: Record<ActivityEntry["area"], string> = {
  config: "Configuration",
  app: "App",
  download: "Download",
  volume: "Volume",
  network: "Network",
  update: "Update",
  device: "Device",
  controller: "Controller",
  image: "Image",
};

/** Where an entry's object is shown. */
export function objectHref(o: ActivityEntry["object"]): string | null {
  if (!o) return null;
  switch (o.kind) {
    case "app":
      return `/apps/${encodeURIComponent(o.id)}`;
    case "contentTree":
    case "volume":
      return "/storage";
    case "networkInstance":
      return "/networks";
    case "config":
      return "/config";
    default:
      return null;
  }
}

/** Loads the activity now, on every device event, and every 15 s while the event stream is down. */
export function useActivity(api: ApiClient, limit: number) {
  const [activity, setActivity] = useState<Activity | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = useCallback(async () => {
    try {
      setActivity(await api.activity(limit));
      setError(null);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) setError(e instanceof Error ? e.message : String(e));
    }
  }, [api, limit]);
  const { live } = useLive(api.eventsUrl, load, { pollMs: 15_000, safetyPollMs: 60_000 });
  return { activity, error, live };
}

export function ActivityEntries({ entries, id }: { entries: ActivityEntry[]; id: string }) {
  if (entries.length === 0) return <p class="muted">Nothing has happened yet.</p>;
  return (
    <ol class="activity" id={id}>
      {entries.map((e) => {
        const href = objectHref(e.object);
        return (
          <li key={e.id} class={e.failed ? "activity-entry failed" : "activity-entry"} data-type={e.type} data-area={e.area} data-failed={e.failed ? "true" : "false"}>
            <div class="activity-head">
              <time dateTime={e.ts}>{formatDateTime(e.ts)}</time>
              <span class="badge badge-neutral">{AREA_LABELS[e.area] ?? e.area}</span>
              {e.failed && <span class="badge badge-error">Failed</span>}
              <span class="activity-by muted">{e.by ? `by ${e.by}` : "by the device"}</span>
            </div>
            <p class="activity-message">{e.message}</p>
            {e.failed && e.reason && e.reason !== e.message && <p class="activity-reason">Reason: {e.reason}</p>}
            {href && (
              <p class="activity-link">
                <Link href={href}>{linkLabel(e)}</Link>
              </p>
            )}
          </li>
        );
      })}
    </ol>
  );
}

function linkLabel(e: ActivityEntry): string {
  switch (e.object?.kind) {
    case "app":
      return "Open the app";
    case "config":
      return `Configuration version ${e.object.id}`;
    case "networkInstance":
      return "Open Networks";
    default:
      return "Open Storage";
  }
}

/** What is under way: downloads with progress and speed, apps between states. */
export function ActivityNow({ now }: { now: Activity["now"] }) {
  if (now.downloads.length === 0 && now.apps.length === 0) return <p class="muted">Nothing is under way.</p>;
  return (
    <ul class="plain-list activity-now" id="activity-now">
      {now.downloads.map((d) => (
        <li key={d.uuid} data-download={d.uuid}>
          <strong>{d.name}</strong> {d.state.toLowerCase()}: <progress max={100} value={d.progress} aria-label={`${d.name}: ${d.progress} %`} /> {d.progress} %
          {d.bytesDone !== null && d.bytesTotal ? ` · ${formatBytes(d.bytesDone)} of ${formatBytes(d.bytesTotal)}` : ""}
          {d.bytesPerSecond ? ` · ${formatRate(d.bytesPerSecond)}` : ""}
        </li>
      ))}
      {now.apps.map((a) => (
        <li key={a.uuid} data-app={a.uuid}>
          <Link href={`/apps/${encodeURIComponent(a.uuid)}`}>{a.name}</Link> is {a.state.toLowerCase().replace(/_/g, " ")}
        </li>
      ))}
    </ul>
  );
}
