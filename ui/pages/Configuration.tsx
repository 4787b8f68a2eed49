// The Configuration page: the device's desired-state document (an EVE EdgeDevConfig) as a whole — the current
// version, a download of it (to keep, or to set up another box the same way), an upload of a document from a file
// (planned first, applied on confirmation, refused with every problem and its field), and the history of
// versions: who set each, when, accepted or refused with the reason, and a roll back to any accepted one (planned
// first too). Reads GET /config/history, GET /config, GET /config/versions/{v}; writes PUT /config (dry run, then
// with If-Match). When a controller manages the device, it is the authority: upload and roll back are off.
import { useCallback, useState } from "preact/hooks";
import { useRole } from "../role";
import { ApiError, type ApiClient, type Problem } from "../api";
import { DataTable } from "../components/DataTable";
import { useLive } from "../hooks";
import { Modal } from "../components/Modal";
import { useConfigChange } from "../components/PlanDialog";
import type { Doc } from "../config-edit";
import { formatDateTime } from "../format";

interface VersionRow {
  version: number;
  source: string;
  author: string | null;
  hash: string;
  receivedAt: string | number;
  status: "accepted" | "rejected";
  error: string | null;
  note: string | null;
  summary: Record<string, number> | null;
  size: number;
  current: boolean;
}

interface History {
  current: number | null;
  versions: VersionRow[];
}

const MAX_FILE = 16 * 1024 * 1024;

function when(v: string | number): string {
  return formatDateTime(new Date(v).toISOString());
}

function summary(s: VersionRow["summary"]): string {
  if (!s) return "";
  const parts = Object.entries(s)
    .filter(([, n]) => typeof n === "number" && n > 0)
    .map(([k, n]) => {
      const label = k.replace(/([A-Z])/g, " $1").toLowerCase();
      return `${n} ${n === 1 ? label.replace(/s$/, "") : label}`;
    });
  return parts.length ? parts.join(", ") : "empty";
}

function download(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function Configuration({ api }: { api: ApiClient }) {
  const [mayChange, changeWhy] = useRole("admin");
  const appsApi = api;
  const change = useConfigChange(appsApi);
  const [history, setHistory] = useState<History | null>(null);
  const [managed, setManaged] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [problems, setProblems] = useState<{ title: string; items: Problem[] } | null>(null);
  const [viewing, setViewing] = useState<{ version: number; text: string } | null>(null);

  const load = useCallback(async () => {
    try {
      const [h, s] = await Promise.all([api.configHistory(200) as Promise<History>, api.status()]);
      setHistory(h);
      setManaged(s.device.mode === "managed" ? String((s.device as unknown as { controller?: string }).controller ?? "its controller") : null);
      setError(null);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  }, [api]);

  useLive(api.eventsUrl, load);

  const applied = (what: string) => (result: { version: number | null }) => {
    setMessage(`${what}: now configuration version ${result.version ?? "?"}.`);
    setProblems(null);
    void load();
  };

  const downloadCurrent = async () => {
    setError(null);
    try {
      const { doc } = await appsApi.config();
      if (!doc) return setError("The device has no configuration yet.");
      download(`evebox-config-v${history?.current ?? "current"}.json`, `${JSON.stringify(doc, null, 2)}\n`);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  };

  const upload = async (file: File | undefined) => {
    setMessage(null);
    setProblems(null);
    if (!file) return;
    if (file.size > MAX_FILE) return setProblems({ title: `${file.name} is not a configuration`, items: [{ path: "", message: `the file is ${file.size} bytes; a configuration is at most 16 MiB` }] });
    let doc: Doc;
    try {
      doc = JSON.parse(await file.text()) as Doc;
      if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw new Error("the file holds JSON, but not an object (an EdgeDevConfig in proto3 JSON)");
    } catch (e) {
      return setProblems({ title: `${file.name} is not a configuration`, items: [{ path: "", message: e instanceof SyntaxError ? `not JSON: ${e.message}` : (e as Error).message }] });
    }
    const outcome = await change.propose({
      title: `Apply the configuration in ${file.name}`,
      warning: "The whole configuration is replaced: apps, networks and volumes not in the file are removed, with their data.",
      applyLabel: "Apply",
      edit: () => doc,
      onProblems: (items) => setProblems({ title: `The device refused ${file.name}; nothing changed`, items }),
      onApplied: applied(`Applied ${file.name}`),
    });
    if (outcome.status === "failed") setProblems({ title: `Could not plan ${file.name}`, items: [{ path: "", message: outcome.message }] });
  };

  const rollback = async (v: VersionRow) => {
    setMessage(null);
    setProblems(null);
    let doc: Doc;
    try {
      const got = (await api.configVersion(v.version)) as { document: Doc | null };
      if (!got.document) throw new Error(`version ${v.version} has no document to go back to`);
      doc = got.document;
    } catch (e) {
      return setError(e instanceof ApiError ? e.message : String(e));
    }
    const outcome = await change.propose({
      title: `Roll back to configuration version ${v.version}`,
      warning: "Apps, networks and volumes added since that version are removed, with their data.",
      applyLabel: "Roll back",
      danger: true,
      edit: () => doc,
      onProblems: (items) => setProblems({ title: `The device refused version ${v.version}; nothing changed`, items }),
      onApplied: applied(`Rolled back to the configuration of version ${v.version}`),
    });
    if (outcome.status === "failed") setError(outcome.message);
  };

  const view = async (v: VersionRow) => {
    try {
      const got = (await api.configVersion(v.version)) as { document: Doc | null; error: string | null };
      setViewing({ version: v.version, text: got.document ? JSON.stringify(got.document, null, 2) : `Refused: ${got.error ?? "no document kept"}` });
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  };

  const current = history?.versions.find((v) => v.current);
  return (
    <section id="configuration" class="page" aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          Configuration
        </h1>
        <p class="muted">The device runs one configuration document (an EVE EdgeDevConfig). Every accepted change is a version; a refused one is kept with its reason.</p>
      </div>
      {managed && (
        <p class="notice banner" id="config-managed">
          This device is managed by {managed}: the controller is the authority for its configuration. Upload and roll back are done there.
        </p>
      )}
      {error && (
        <div class="banner banner-error" role="alert">
          {error}
        </div>
      )}
      {message && (
        <p class="notice" role="status" id="config-message">
          {message}
        </p>
      )}
      {problems && (
        <div class="form-error" role="alert" id="config-problems">
          <p>{problems.title}:</p>
          <ul>
            {problems.items.map((p) => (
              <li key={`${p.path}:${p.message}`}>
                {p.path && <span class="mono">{p.path}: </span>}
                {p.message}
              </li>
            ))}
          </ul>
        </div>
      )}
      <section class="card card-wide" aria-labelledby="current-title">
        <h2 id="current-title">Current</h2>
        {!history && !error && <p class="muted">Loading…</p>}
        {history && !current && <p class="muted">No configuration yet: the device runs nothing. Create an app, or upload a configuration.</p>}
        {current && (
          <dl class="facts" id="config-current">
            <dt>Version</dt>
            <dd>{current.version}</dd>
            <dt>Set by</dt>
            <dd>
              {current.author ?? current.source} ({current.source}), {when(current.receivedAt)}
            </dd>
            <dt>Contents</dt>
            <dd>{summary(current.summary)}</dd>
            <dt>Hash</dt>
            <dd class="mono">{current.hash.slice(0, 16)}</dd>
          </dl>
        )}
        <div class="form-actions">
          <button type="button" class="button secondary" id="config-download" disabled={!current} onClick={() => void downloadCurrent()}>
            Download (JSON)
          </button>
          <label class={`button ${managed || !mayChange ? "secondary disabled" : "primary"}`} for="config-file" aria-disabled={managed || !mayChange ? "true" : undefined} title={mayChange ? undefined : changeWhy}>
            Upload a configuration…
          </label>
          <input
            id="config-file"
            type="file"
            accept="application/json,.json"
            class="visually-hidden"
            disabled={!!managed || change.busy || !mayChange}
            onChange={(e) => {
              const f = e.currentTarget.files?.[0];
              e.currentTarget.value = "";
              void upload(f);
            }}
          />
          {!mayChange && <span class="role-reason muted">{changeWhy}</span>}
        </div>
      </section>
      <section class="card card-wide" aria-labelledby="versions-title">
        <h2 id="versions-title">History</h2>
        {history && history.versions.length === 0 && <p class="muted">No versions yet.</p>}
        {history && history.versions.length > 0 && (
          <DataTable id="config-versions" label="Configuration versions" columns={["Version", "When", "By", "Outcome", "Contents", ""]}>
                {history.versions.map((v) => (
                  <tr key={v.version} data-version={v.version} data-status={v.status}>
                    <th scope="row">
                      {v.version} {v.current && <span class="badge badge-ok">current</span>}
                    </th>
                    <td>{when(v.receivedAt)}</td>
                    <td>
                      {v.author ?? "—"} <span class="muted">({v.source})</span>
                    </td>
                    <td>
                      <span class={`badge ${v.status === "accepted" ? "badge-neutral" : "badge-error"}`}>{v.status === "accepted" ? "accepted" : "refused"}</span>
                      {v.error && <p class="app-error">{v.error}</p>}
                      {v.note && <p class="muted">{v.note}</p>}
                    </td>
                    <td>{summary(v.summary)}</td>
                    <td class="app-actions">
                      <button type="button" class="button small ghost" onClick={() => void view(v)}>
                        View
                      </button>
                      {v.status === "accepted" && !v.current && (
                        <button type="button" class="button small secondary" data-action="rollback" disabled={!!managed || change.busy || !mayChange} title={mayChange ? undefined : changeWhy} onClick={() => void rollback(v)}>
                          Roll back
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
          </DataTable>
        )}
      </section>
      {viewing && (
        <Modal id="config-view" labelledBy="config-view-title" onCancel={() => setViewing(null)} initialFocus="#config-view-close">
          <h2 id="config-view-title" tabIndex={-1}>
            Configuration version {viewing.version}
          </h2>
          <div class="modal-body">
            <pre class="log-view" id="config-view-text">
              {viewing.text}
            </pre>
          </div>
          <div class="form-actions modal-actions">
            <button type="button" class="button secondary" id="config-view-close" onClick={() => setViewing(null)}>
              Close
            </button>
          </div>
        </Modal>
      )}
      {change.dialog}
    </section>
  );
}
