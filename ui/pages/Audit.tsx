// The Audit page: who did what, when and from where — every change and every sign-in, with its result — filtered by
// user, action, result and time, newest last; exported as JSON lines with the same filters. Reads GET /audit (and
// GET /audit?format=jsonl for the download). The trail is append-only: nothing on this page changes it.
import { useCallback, useEffect, useState } from "preact/hooks";
import { ApiError, type ApiClient, type AuditFilter, type AuditRecord } from "../api";
import { DataTable } from "../components/DataTable";
import { FormError } from "../components/Field";
import { formatDateTime } from "../format";

export function Audit({ api }: { api: ApiClient }) {
  const [filter, setFilter] = useState<AuditFilter>({ user: "", action: "", result: "", since: "" });
  const [applied, setApplied] = useState<AuditFilter>({});
  const [data, setData] = useState<{ records: AuditRecord[]; lost: number } | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    setError(null);
    try {
      const r = await api.audit({ ...applied, limit: 5000 });
      setData({ records: r.records, lost: r.lost });
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  }, [api, applied]);
  useEffect(() => void load(), [load]);

  const set = (k: keyof AuditFilter) => (e: { currentTarget: { value: string } }) => setFilter({ ...filter, [k]: e.currentTarget.value });
  const records = data ? [...data.records].reverse() : [];

  return (
    <section id="audit" class="page" aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          Audit
        </h1>
        <p class="muted">Every change and every sign-in on this console and its API, with who asked (a user, or a user's token), from where, and how it ended. Newest first.</p>
      </div>
      <form
        class="form filters"
        id="audit-filters"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied({ ...filter });
        }}
      >
        <div class="field-row">
          <div class="field">
            <label for="audit-user">User</label>
            <input id="audit-user" class="input" value={filter.user} onInput={set("user")} autoComplete="off" />
          </div>
          <div class="field">
            <label for="audit-action">Action contains</label>
            <input id="audit-action" class="input" value={filter.action} onInput={set("action")} placeholder="restart, /users, login" autoComplete="off" />
          </div>
          <div class="field">
            <label for="audit-result">Result</label>
            <select id="audit-result" class="input" value={filter.result} onChange={set("result")}>
              <option value="">any</option>
              <option value="ok">ok</option>
              <option value="refused">refused</option>
              <option value="failed">failed</option>
            </select>
          </div>
          <div class="field">
            <label for="audit-since">Since</label>
            <input id="audit-since" class="input" type="datetime-local" value={filter.since} onInput={set("since")} />
          </div>
        </div>
        <div class="form-actions">
          <button type="submit" class="button primary" id="audit-apply">
            Show
          </button>
          <a class="button secondary" id="audit-export" href={api.auditExportUrl(applied)} download>
            Export as JSON lines
          </a>
        </div>
      </form>
      <FormError id="audit-error" messages={error ? [error] : []} />
      {data && data.lost > 0 && (
        <p class="notice" id="audit-lost">
          {data.lost} older records were dropped to keep the trail within its space on the device.
        </p>
      )}
      {data && records.length === 0 && <p class="empty">No records match.</p>}
      {records.length > 0 && (
        <DataTable id="audit-table" label="Audit trail" columns={["Time", "User", "Token", "Client", "Action", "Object", "Result"]}>
          {records.map((r) => (
            <tr key={r.id} data-action={r.action} data-user={r.user ?? ""} data-result={r.result}>
              <td>{formatDateTime(new Date(r.ts).toISOString())}</td>
              <td>{r.user ?? <span class="muted">not signed in</span>}</td>
              <td class="mono">{r.token ?? ""}</td>
              <td class="mono">{r.client}</td>
              <td class="mono">{r.action}</td>
              <td class="mono">{r.object ?? ""}</td>
              <td title={r.detail ?? undefined}>
                <span class={r.result === "ok" ? "badge ok" : "badge bad"}>
                  {r.result} {r.status}
                </span>
                {r.detail && <span class="muted"> {r.detail}</span>}
              </td>
            </tr>
          ))}
        </DataTable>
      )}
    </section>
  );
}
