// What the device did and is doing: config versions applied (and by whom), downloads with progress and speed,
// app state changes and commands, updates; failures with their reason and a link to the object. Live.
import { useState } from "preact/hooks";
import type { ApiClient } from "../api";
import { type ActivityEntry, ActivityEntries, ActivityNow, useActivity } from "../components/ActivityList";

const PAGE = 50;

export function Activity({ api }: { api: ApiClient }) {
  const { activity, error, live } = useActivity(api, PAGE);
  const [older, setOlder] = useState<ActivityEntry[]>([]);
  const [more, setMore] = useState<{ busy: boolean; done: boolean; error: string | null }>({ busy: false, done: false, error: null });
  const latest = activity?.entries ?? [];
  // The live first page and the older pages fetched on demand, without an entry twice.
  const shown = [...latest, ...older.filter((o) => !latest.some((e) => e.id === o.id))];

  const loadOlder = async () => {
    const last = shown.at(-1);
    if (!last) return;
    setMore({ busy: true, done: false, error: null });
    try {
      const page = await api.activity(PAGE, last.id);
      setOlder((o) => [...o, ...page.entries]);
      setMore({ busy: false, done: page.entries.length < PAGE, error: null });
    } catch (e) {
      setMore({ busy: false, done: false, error: e instanceof Error ? e.message : String(e) });
    }
  };

  return (
    <section id="activity-page" class="page" aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          Activity
        </h1>
        {activity && (
          <p class="muted live-state">
            <span class={live ? "dot dot-live" : "dot"} aria-hidden="true" />
            {live ? "Live updates" : "Refreshing every 15 s"}
          </p>
        )}
      </div>
      {error && (
        <div class="banner banner-error" role="alert">
          Could not load the activity: {error}
        </div>
      )}
      {!activity && !error && (
        <p class="muted" role="status">
          Loading…
        </p>
      )}
      {activity && (
        <div class="grid">
          <section class="card card-wide" aria-labelledby="now-heading">
            <h2 id="now-heading">Under way</h2>
            <ActivityNow now={activity.now} />
          </section>
          <section class="card card-wide" aria-labelledby="log-heading">
            <h2 id="log-heading">What happened</h2>
            <ActivityEntries entries={shown} id="activity-list" />
            {shown.length >= PAGE && !more.done && (
              <p>
                <button type="button" class="button secondary small" id="activity-older" disabled={more.busy} onClick={() => void loadOlder()}>
                  {more.busy ? "Loading…" : "Show older"}
                </button>
              </p>
            )}
            {more.error && (
              <p class="form-error" role="alert">
                {more.error}
              </p>
            )}
          </section>
        </div>
      )}
    </section>
  );
}
