// The Updates page: the base OS on its two slots (A/B) — which runs, which is committed, each slot's version and
// state — the update in progress (receiving, verifying, writing, read-back, waiting for its reboot, on trial with
// its health checks), an upload for air-gapped devices (a file from a USB stick, with progress), when an update
// may reboot the device (now, a daily maintenance window, or when the operator says so), versions that failed and
// may be retried, and the history of updates. Reads GET /api/v1/baseos (every 2 s and on device events); writes
// POST /baseos/upload|activate|cancel|retry and PUT /baseos/settings (src/baseos/README.md).
import { useCallback, useRef, useState } from "preact/hooks";
import { RoleGate } from "../role";
import { ApiError, type ApiClient } from "../api";
import { DataTable } from "../components/DataTable";
import { FormError } from "../components/Field";
import { useLive } from "../hooks";
import { formatDateTime } from "../format";

const POLL_MS = 2_000;

type SlotName = "A" | "B";
type RebootMode = "now" | "window" | "hold";

interface SlotView {
  slot: SlotName;
  partition: string;
  device: string | null;
  capacityBytes: number | null;
  version: string | null;
  state: string;
  booted: boolean;
  committed: boolean;
  note: string | null;
}

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

interface Operation {
  id: string;
  source: "upload" | "config" | "manual";
  version: string | null;
  slot: SlotName;
  phase: string;
  progress: { done: number; total: number } | null;
  startedAt: string;
  updatedAt: string;
  manifest?: { version: string; board: string; arch: string; buildTime?: string };
  fileBytes?: number;
  schedule: { mode: string; at: string | null; note: string } | null;
  appsBefore: { uuid: string; name: string }[] | null;
  probation?: { startedAt: string; endsAt: string; checks: Check[]; failure?: string; okSince?: string | null };
}

interface HistoryEntry {
  id: string;
  source: string;
  version: string | null;
  slot: SlotName | null;
  outcome: string;
  reason: string;
  at: string;
}

interface Settings {
  reboot: RebootMode;
  window: { start: string; durationMinutes: number };
  testWindowSeconds: number;
  stableSeconds: number;
}

interface BaseOsView {
  available: boolean;
  reason: string | null;
  board: string | null;
  arch: string | null;
  booted: SlotName | null;
  active: SlotName | null;
  outcome: string | null;
  version: string | null;
  slots: SlotView[];
  update: Operation | null;
  lastBoot: string | null;
  settings: Settings | null;
  failedVersions: { version: string; reason: string; at: string }[];
  vendorKeys: { id: string; name: string }[];
  history: HistoryEntry[];
}

const PHASES: Record<string, string> = {
  receiving: "Receiving",
  verifying: "Verifying the signature and contents",
  writing: "Writing the other slot",
  "reading-back": "Reading the slot back",
  ready: "Written; waiting to reboot into it",
  rebooting: "Rebooting into the new version",
  testing: "On trial (test window)",
};

const SLOT_BADGE: Record<string, string> = { active: "badge-ok", inprogress: "badge-info", updating: "badge-info", unused: "badge-neutral", failed: "badge-error" };
const OUTCOME_BADGE: Record<string, string> = { committed: "badge-ok", "fell-back": "badge-error", failed: "badge-error", refused: "badge-warn", interrupted: "badge-warn", cancelled: "badge-neutral" };

function message(e: unknown): string {
  return e instanceof ApiError ? e.message : String(e);
}

function mib(n: number): string {
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(n < 10 * 1024 * 1024 ? 1 : 0)} MiB`;
}

function percent(p: { done: number; total: number } | null): number | null {
  return p && p.total > 0 ? Math.min(100, Math.floor((100 * p.done) / p.total)) : null;
}

/** POSTs a file with upload progress (fetch has none); resolves with the JSON answer or rejects with ApiError. */
function uploadFile(file: File, onProgress: (done: number, total: number) => void): { done: Promise<unknown>; abort: () => void } {
  const xhr = new XMLHttpRequest();
  const done = new Promise<unknown>((resolve, reject) => {
    xhr.open("POST", "/api/v1/baseos/upload");
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      let body: { error?: string } = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body.error ?? `The device answered ${xhr.status}.`));
    };
    xhr.onerror = () => reject(new ApiError(0, "The upload was cut off: the device could not be reached."));
    xhr.onabort = () => reject(new ApiError(0, "Upload cancelled."));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}

export function Updates({ api }: { api: ApiClient }) {
  const [view, setView] = useState<BaseOsView | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = useCallback(async () => {
    try {
      setView((await api.baseos()) as BaseOsView);
      setError(null);
    } catch (e) {
      setError(message(e));
    }
  }, [api]);
  useLive(api.eventsUrl, load, { pollMs: POLL_MS });

  return (
    <section id="updates" class="page" aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          Updates
        </h1>
        <p class="muted">
          The base OS lives on two slots. An update is written to the one not running, tried once, and kept only when the device is healthy on it; otherwise the device goes back to the
          other slot by itself.
        </p>
      </div>
      {error && (
        <div class="banner banner-error" role="alert">
          Could not load the update status: {error}
        </div>
      )}
      {!view && !error && <p class="muted">Loading…</p>}
      {view && !view.available && (
        <p class="empty card" id="updates-unavailable">
          Base-OS updates are not available here: {view.reason}.
        </p>
      )}
      {view && view.available && (
        <>
          <Overview view={view} />
          {view.update && <CurrentUpdate api={api} op={view.update} reload={load} />}
          <Upload busy={!!view.update} reload={load} onUnauthorized={() => void api.status().catch(() => {})} />
          {view.settings && <ScheduleForm api={api} settings={view.settings} reload={load} />}
          <Failed api={api} view={view} reload={load} />
          <History view={view} />
        </>
      )}
    </section>
  );
}

function Overview({ view }: { view: BaseOsView }) {
  return (
    <section class="card card-wide" aria-labelledby="slots-title">
      <h2 id="slots-title">
        Running <span id="running-version">{view.version ?? "unknown"}</span>{" "}
        <span class="muted">
          from slot {view.booted}
          {view.outcome === "trying" ? " (on trial)" : ""}
        </span>
      </h2>
      {view.lastBoot && (
        <p class={view.outcome === "fell-back" ? "form-error" : "notice"} role="status" id="last-boot">
          {view.lastBoot}
        </p>
      )}
      <dl class="facts">
        <dt>Board</dt>
        <dd class="mono">
          {view.board} ({view.arch})
        </dd>
        <dt>Vendor keys</dt>
        <dd>{view.vendorKeys.length === 0 ? "none: no update can be verified" : view.vendorKeys.map((k) => k.name || k.id).join(", ")}</dd>
      </dl>
      <DataTable id="slots" label="Slots" columns={["Slot", "Version", "State", "Size", "Note"]}>
            {view.slots.map((s) => (
              <tr key={s.slot} data-slot={s.slot}>
                <th scope="row">
                  {s.slot} <span class="muted mono">{s.partition}</span>
                  {s.booted && <span class="badge badge-info">running</span>}
                  {s.committed && <span class="badge badge-neutral">committed</span>}
                </th>
                <td class="mono">{s.version ?? "—"}</td>
                <td>
                  <span class={`badge ${SLOT_BADGE[s.state] ?? "badge-neutral"}`} data-state={s.state}>
                    {s.state}
                  </span>
                </td>
                <td>{s.capacityBytes ? mib(s.capacityBytes) : "—"}</td>
                <td>{s.note ?? ""}</td>
              </tr>
            ))}
      </DataTable>
    </section>
  );
}

function CurrentUpdate({ api, op, reload }: { api: ApiClient; op: Operation; reload: () => Promise<void> }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const pct = percent(op.progress);
  const act = async (path: "activate" | "cancel") => {
    setBusy(true);
    setError(null);
    try {
      await api.baseosAction(path);
      await reload();
    } catch (e) {
      setError(message(e));
    } finally {
      setBusy(false);
    }
  };
  const cancellable = ["receiving", "verifying", "writing", "reading-back", "ready", "rebooting"].includes(op.phase);
  return (
    <section class="card card-wide" aria-labelledby="update-title" id="current-update" data-phase={op.phase}>
      <h2 id="update-title">
        Update to {op.version ?? op.manifest?.version ?? "a new version"} <span class="badge badge-info">{PHASES[op.phase] ?? op.phase}</span>
      </h2>
      <dl class="facts">
        <dt>From</dt>
        <dd>{op.source === "config" ? "the controller (device configuration)" : op.source === "upload" ? "an upload in the console" : op.source}</dd>
        <dt>Into slot</dt>
        <dd>{op.slot}</dd>
        <dt>Started</dt>
        <dd>{formatDateTime(op.startedAt)}</dd>
        {op.fileBytes !== undefined && (
          <>
            <dt>Size</dt>
            <dd>{mib(op.fileBytes)}</dd>
          </>
        )}
        {op.schedule && (
          <>
            <dt>Reboot</dt>
            <dd id="update-schedule">{op.schedule.mode === "hold" ? "held until someone chooses “Reboot into it now”" : op.schedule.note}</dd>
          </>
        )}
        {op.appsBefore && op.appsBefore.length > 0 && (
          <>
            <dt>Apps that must run again</dt>
            <dd>{op.appsBefore.map((a) => a.name || a.uuid).join(", ")}</dd>
          </>
        )}
      </dl>
      {pct !== null && (
        <p class="app-progress">
          <progress max={100} value={pct} aria-label="Update progress" />
          <span>
            {pct} % ({mib(op.progress!.done)} of {mib(op.progress!.total)})
          </span>
        </p>
      )}
      {op.probation && (
        <>
          <h3>Test window</h3>
          <p>
            Until {formatDateTime(op.probation.endsAt)}
            {op.probation.okSince ? `; healthy since ${formatDateTime(op.probation.okSince)}` : ""}.
          </p>
          <ul class="plain-list" id="probation-checks">
            {op.probation.checks.map((c) => (
              <li key={c.name} data-ok={c.ok ? "yes" : "no"}>
                <span class={`badge ${c.ok ? "badge-ok" : "badge-warn"}`}>{c.ok ? "ok" : "waiting"}</span> {c.name}: {c.detail}
              </li>
            ))}
          </ul>
          {op.probation.failure && <p class="form-error">{op.probation.failure}</p>}
        </>
      )}
      <FormError id="update-error" messages={error ? [error] : []} />
      <RoleGate need="admin">
      <div class="form-actions">
        {op.phase === "ready" && (
          <button type="button" class="button primary" id="update-activate" disabled={busy} onClick={() => void act("activate")}>
            Reboot into it now
          </button>
        )}
        {cancellable && (
          <button type="button" class="button secondary" id="update-cancel" disabled={busy} onClick={() => void act("cancel")}>
            Cancel the update
          </button>
        )}
      </div>
      </RoleGate>
    </section>
  );
}

function Upload({ busy, reload, onUnauthorized }: { busy: boolean; reload: () => Promise<void>; onUnauthorized: () => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [sent, setSent] = useState<{ done: number; total: number } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [accepted, setAccepted] = useState<string | null>(null);
  const abort = useRef<(() => void) | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setAccepted(null);
    if (!file) return setError("Choose the update file (update.bin) first.");
    const up = uploadFile(file, (done, total) => setSent({ done, total }));
    abort.current = up.abort;
    setSent({ done: 0, total: file.size });
    try {
      await up.done;
      setAccepted(`${file.name} received; the device verifies and writes it (progress above).`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) onUnauthorized();
      setError(message(err));
    } finally {
      abort.current = null;
      setSent(null);
      await reload();
    }
  };

  const pct = percent(sent);
  return (
    <section class="card card-wide" aria-labelledby="upload-title">
      <h2 id="upload-title">Update from a file</h2>
      <p class="muted">
        For a device without a controller: the vendor's signed update file. It is checked before anything is written: signature, contents, board and architecture. A refused file
        changes nothing.
      </p>
      <RoleGate need="admin">
      <form class="form" onSubmit={submit} noValidate>
        <div class="field">
          <label for="update-file">Update file</label>
          <input
            id="update-file"
            type="file"
            class="input"
            aria-describedby={error ? "upload-error" : undefined}
            disabled={!!sent}
            onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)}
          />
        </div>
        {pct !== null && (
          <p class="app-progress">
            <progress max={100} value={pct} aria-label="Upload progress" />
            <span>Uploading: {pct} %</span>
          </p>
        )}
        <FormError id="upload-error" messages={error ? [error] : []} />
        {accepted && (
          <p class="notice" role="status" id="upload-accepted">
            {accepted}
          </p>
        )}
        <div class="form-actions">
          <button type="submit" class="button primary" id="upload-submit" disabled={!!sent || busy} title={busy ? "An update is in progress" : undefined}>
            Upload and verify
          </button>
          {sent && (
            <button type="button" class="button secondary" onClick={() => abort.current?.()}>
              Stop the upload
            </button>
          )}
        </div>
        {busy && !sent && <p class="muted">An update is in progress; a new one can be uploaded when it has finished.</p>}
      </form>
      </RoleGate>
    </section>
  );
}

function ScheduleForm({ api, settings, reload }: { api: ApiClient; settings: Settings; reload: () => Promise<void> }) {
  const [mode, setMode] = useState<RebootMode>(settings.reboot);
  const [start, setStart] = useState(settings.window.start);
  const [duration, setDuration] = useState(String(settings.window.durationMinutes));
  const [testWindow, setTestWindow] = useState(String(settings.testWindowSeconds));
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const [saving, setSaving] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setSaved(false);
    setError(null);
    const durationMinutes = Number(duration);
    const testWindowSeconds = Number(testWindow);
    if (!Number.isInteger(durationMinutes) || !Number.isInteger(testWindowSeconds)) return setError("The window's length and the test window are whole numbers.");
    setSaving(true);
    try {
      await api.baseosSettings({ reboot: mode, window: { start, durationMinutes }, testWindowSeconds });
      setSaved(true);
      await reload();
    } catch (err) {
      setError(message(err));
    } finally {
      setSaving(false);
    }
  };

  return (
    <section class="card card-wide" aria-labelledby="schedule-title">
      <h2 id="schedule-title">When updates reboot the device</h2>
      <RoleGate need="admin">
      <form class="form" onSubmit={submit} noValidate>
        <fieldset class="radios">
          <legend class="field-label">After an update is written</legend>
          {(
            [
              ["now", "Reboot at once"],
              ["window", "Reboot in the daily maintenance window"],
              ["hold", "Wait until someone chooses “Reboot into it now”"],
            ] as const
          ).map(([value, label]) => (
            <label class="radio" key={value}>
              <input type="radio" name="reboot" id={`reboot-${value}`} value={value} checked={mode === value} onChange={() => setMode(value)} />
              {label}
            </label>
          ))}
        </fieldset>
        <div class="field-row">
          <div class="field">
            <label for="window-start">Window starts (UTC)</label>
            <input id="window-start" class="input mono" type="time" value={start} onInput={(e) => setStart(e.currentTarget.value)} />
          </div>
          <div class="field">
            <label for="window-duration">Window length (minutes)</label>
            <input id="window-duration" class="input" type="number" min={1} max={1440} value={duration} onInput={(e) => setDuration(e.currentTarget.value)} />
          </div>
          <div class="field">
            <label for="test-window">Test window (seconds)</label>
            <input id="test-window" class="input" type="number" min={1} value={testWindow} onInput={(e) => setTestWindow(e.currentTarget.value)} />
          </div>
        </div>
        <FormError id="schedule-error" messages={error ? [error] : []} />
        {saved && (
          <p class="notice" role="status" id="schedule-saved">
            Saved.
          </p>
        )}
        <div class="form-actions">
          <button type="submit" class="button primary" id="schedule-save" disabled={saving}>
            Save
          </button>
        </div>
      </form>
      </RoleGate>
    </section>
  );
}

function Failed({ api, view, reload }: { api: ApiClient; view: BaseOsView; reload: () => Promise<void> }) {
  const [error, setError] = useState<string | null>(null);
  if (view.failedVersions.length === 0) return null;
  const retry = async (version: string) => {
    setError(null);
    try {
      await api.baseosRetry(version);
      await reload();
    } catch (e) {
      setError(message(e));
    }
  };
  return (
    <section class="card card-wide" aria-labelledby="failed-title">
      <h2 id="failed-title">Versions that failed</h2>
      <p class="muted">The device does not try these again until allowed to.</p>
      <ul class="plain-list" id="failed-versions">
        {view.failedVersions.map((f) => (
          <li key={f.version} data-version={f.version}>
            <strong class="mono">{f.version}</strong> — {f.reason} ({formatDateTime(f.at)}){" "}
            <button type="button" class="button small secondary" onClick={() => void retry(f.version)}>
              Allow a retry
            </button>
          </li>
        ))}
      </ul>
      <FormError id="retry-error" messages={error ? [error] : []} />
    </section>
  );
}

function History({ view }: { view: BaseOsView }) {
  return (
    <section class="card card-wide" aria-labelledby="history-title">
      <h2 id="history-title">History</h2>
      {view.history.length === 0 ? (
        <p class="muted">No updates yet.</p>
      ) : (
        <DataTable id="update-history" label="Update history" columns={["When", "Version", "From", "Slot", "Outcome", "Reason"]}>
              {view.history.map((h) => (
                <tr key={h.id + h.at} data-outcome={h.outcome}>
                  <td>{formatDateTime(h.at)}</td>
                  <td class="mono">{h.version ?? "—"}</td>
                  <td>{h.source}</td>
                  <td>{h.slot ?? "—"}</td>
                  <td>
                    <span class={`badge ${OUTCOME_BADGE[h.outcome] ?? "badge-neutral"}`}>{h.outcome}</span>
                  </td>
                  <td>{h.reason}</td>
                </tr>
              ))}
        </DataTable>
      )}
    </section>
  );
}
