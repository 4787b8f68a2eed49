// An app's firewall (EVE ACLs per network interface) with live hit counters, and the editor of its rules:
// rows in the order they are checked (the first that matches a new flow decides; what none matches is
// dropped). An edit shows the device's plan before it applies (the shared plan dialog).
// Reads GET /api/v1/apps/{uuid}/firewall (counters, every 2 s) and the config; writes PUT /api/v1/config.
import { useEffect, useState } from "preact/hooks";
import { RoleGate } from "../role";
import { ApiError, type ApiClient, type CurrentConfig } from "../api";
import { DataTable } from "./DataTable";
import type { Doc } from "../config-edit";
import { Link } from "../router";
import { describeRule, emptyRule, readInterfaces, type RuleProblem, type RuleRow, setInterfaceRules, validateRules } from "./firewall-edit";
import { useConfigChange } from "./PlanDialog";
import { useLiveStatus } from "./useLiveStatus";

const COUNTER_POLL_MS = 2_000;

interface RuleCounter {
  index: number;
  packets: number;
  bytes: number;
  limitedPackets?: number;
  note?: string;
}

interface InterfaceCounters {
  index: number;
  ifname: string;
  mac: string;
  ip: string | null;
  rules: RuleCounter[];
  implicitDrop: { packets: number; bytes: number };
}

function useCounters(api: ApiClient, uuid: string): { counters: InterfaceCounters[]; error: string | null } {
  const [counters, setCounters] = useState<InterfaceCounters[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        const interfaces = (await api.firewall(uuid)) as InterfaceCounters[] | undefined;
        if (stop) return;
        setCounters(interfaces ?? []);
        setError(null);
      } catch (e) {
        if (!stop) setError(e instanceof ApiError && e.status !== 0 ? e.message : "The device could not be reached.");
      }
      if (!stop) timer = setTimeout(() => void tick(), COUNTER_POLL_MS);
    };
    void tick();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [api, uuid]);
  return { counters, error };
}

function n(x: number | undefined): string {
  return (x ?? 0).toLocaleString();
}

export function AppFirewall({ api, uuid }: { api: ApiClient; uuid: string }) {
  const appsApi = api;
  const live = useLiveStatus(api);
  const change = useConfigChange(appsApi);
  const { counters, error: counterError } = useCounters(api, uuid);
  const [config, setConfig] = useState<CurrentConfig | null>(null);
  const [configError, setConfigError] = useState<string | null>(null);
  const [editing, setEditing] = useState<{ index: number; rows: RuleRow[]; problems: RuleProblem[] } | null>(null);
  const [message, setMessage] = useState<{ text: string; error?: boolean } | null>(null);
  const hash = live.status?.device.configHash ?? null;

  useEffect(() => {
    appsApi.config().then(
      (c) => {
        setConfig(c);
        setConfigError(null);
      },
      (e) => setConfigError(e instanceof Error ? e.message : String(e)),
    );
  }, [appsApi, hash]);

  const doc: Doc | null = config?.doc ?? null;
  const app = (doc?.apps ?? []).find((a: Doc) => a.uuidandversion?.uuid === uuid);
  const name: string = app?.displayname ?? live.status?.apps.find((a) => a.uuid === uuid)?.name ?? uuid;
  const managed = live.status?.device.mode === "managed";
  const interfaces = readInterfaces(doc, uuid);

  const review = async () => {
    if (!editing) return;
    const problems = validateRules(editing.rows);
    setEditing({ ...editing, problems });
    if (problems.length) return;
    const { index, rows } = editing;
    const outcome = await change.propose({
      title: `Change the firewall of ${name} (${interfaces[index]?.name ?? `interface ${index}`})`,
      edit: (d) => {
        if (!d) throw new Error("The device has no configuration.");
        return setInterfaceRules(d, uuid, index, rows);
      },
      onProblems: (ps) =>
        setEditing((e) => e && { ...e, problems: ps.map((p) => ({ row: ruleIndexOf(p.path), field: "matches", message: p.path ? `${p.message} (${p.path})` : p.message })) }),
      onApplied: () => {
        setEditing(null);
        setMessage({ text: "The firewall change was applied. Hit counters of changed rules start again from zero." });
      },
    });
    if (outcome.status === "failed") setMessage({ text: outcome.message, error: true });
  };

  return (
    <section id="app-firewall" class="page" aria-labelledby="page-title">
      <nav class="breadcrumb" aria-label="Breadcrumb">
        <Link href="/apps">Apps</Link> › <Link href={`/apps/${encodeURIComponent(uuid)}`}>{name}</Link> › Firewall
      </nav>
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          Firewall of {name}
        </h1>
        <p class="muted">Rules are checked in order for each new flow: the first that matches decides; a flow no rule matches is dropped. DHCP and DNS always pass.</p>
      </div>
      {managed && (
        <p class="notice banner" id="firewall-managed">
          This device is managed by its controller, which decides the firewall rules: change them there.
        </p>
      )}
      <div aria-live="polite" role="status" class="status-line">
        {message && !message.error && <p class="notice banner">{message.text}</p>}
      </div>
      {(message?.error || configError || counterError) && (
        <div class="banner banner-error" role="alert">
          {message?.error ? message.text : (configError ?? `Hit counters: ${counterError}`)}
        </div>
      )}
      {!config && !configError && <p class="muted">Loading…</p>}
      {config && interfaces.length === 0 && <p class="empty card">This app has no network interfaces, so it has no network and no firewall.</p>}
      {interfaces.map((ifc) => {
        const c = counters.find((x) => x.index === ifc.index);
        const isEditing = editing?.index === ifc.index;
        const rows = isEditing ? editing!.rows : ifc.rules;
        return (
          <section key={ifc.index} class="card card-wide" aria-labelledby={`ifc-${ifc.index}`} data-interface={ifc.name}>
            <div class="section-head">
              <h2 id={`ifc-${ifc.index}`}>
                {ifc.name} <span class="muted">on</span> {ifc.networkName} <span class="badge badge-neutral">{ifc.networkKind}</span>
              </h2>
              {c && (
                <p class="muted mono">
                  {c.ip ?? "no address yet"} · {c.mac} · {c.ifname}
                </p>
              )}
            </div>
            {isEditing ? (
              <RuleEditor
                rows={rows}
                problems={editing!.problems}
                onChange={(next) => setEditing({ ...editing!, rows: next })}
                onCancel={() => setEditing(null)}
                onReview={() => void review()}
                busy={change.busy}
              />
            ) : (
              <>
                <DataTable label={`Rules of ${ifc.name}`} class="firewall-table" columns={["#", "Rule", "Direction", "Action", "Hits"]}>
                      {rows.map((r, i) => {
                        const hit = c?.rules.find((x) => x.index === i);
                        return (
                          <tr key={r.rowId} data-rule={i}>
                            <td>{i + 1}</td>
                            <td>
                              {r.name && <strong>{r.name} </strong>}
                              {describeRule(r)}
                              {hit?.note && <div class="field-hint">{hit.note}</div>}
                            </td>
                            <td>{r.dir === "BOTH" ? "both" : r.dir === "INGRESS" ? "incoming" : "outgoing"}</td>
                            <td>
                              {r.action === "limit" ? `limit ${r.limitRate}/${r.limitUnit}${r.limitBurst ? ` (burst ${r.limitBurst})` : ""}` : r.action === "portmap" ? "port map" : r.action}
                            </td>
                            <td class="mono rule-hits" title={hit ? `${n(hit.bytes)} bytes` : undefined}>
                              {n(hit?.packets)}
                              {hit?.limitedPackets ? <div class="muted">{n(hit.limitedPackets)} over the limit</div> : null}
                            </td>
                          </tr>
                        );
                      })}
                      <tr class="muted" data-rule="implicit">
                        <td>—</td>
                        <td>Everything else</td>
                        <td>both</td>
                        <td>drop</td>
                        <td class="mono rule-hits">{n(c?.implicitDrop.packets)}</td>
                      </tr>
                    </DataTable>
                {!managed && (
                  <div class="toolbar">
                    <RoleGate need="admin">
                    <button type="button" class="button secondary" disabled={!!editing} onClick={() => setEditing({ index: ifc.index, rows: ifc.rules.map((r) => ({ ...r })), problems: [] })}>
                      Edit rules
                    </button>
                    </RoleGate>
                  </div>
                )}
              </>
            )}
          </section>
        );
      })}
      {change.dialog}
    </section>
  );
}

function ruleIndexOf(path: string): number {
  const m = path.match(/\.acls\[(\d+)\]/);
  return m ? Number(m[1]) : -1;
}

function RuleEditor({
  rows,
  problems,
  onChange,
  onCancel,
  onReview,
  busy,
}: {
  rows: RuleRow[];
  problems: RuleProblem[];
  onChange: (rows: RuleRow[]) => void;
  onCancel: () => void;
  onReview: () => void;
  busy: boolean;
}) {
  const set = (i: number, patch: Partial<RuleRow>) => onChange(rows.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  const move = (i: number, d: -1 | 1) => {
    const next = [...rows];
    [next[i], next[i + d]] = [next[i + d]!, next[i]!];
    onChange(next);
  };
  const general = problems.filter((p) => p.row < 0);
  return (
    <form
      class="form firewall-editor"
      onSubmit={(e) => {
        e.preventDefault();
        onReview();
      }}
    >
      <ol class="rows">
        {rows.map((r, i) => {
          const err = (f: RuleProblem["field"]) => problems.find((p) => p.row === i && p.field === f)?.message;
          const field = (label: string, key: keyof RuleRow, hint?: string) => (
            <label class="field">
              <span class="field-label">{label}</span>
              <input class="input" name={`${key}-${i}`} value={String(r[key])} aria-invalid={err(key) ? "true" : undefined} placeholder={hint} onInput={(e) => set(i, { [key]: (e.target as HTMLInputElement).value } as Partial<RuleRow>)} />
              {err(key) && <span class="field-error">{err(key)}</span>}
            </label>
          );
          return (
            <li key={r.rowId} class="row-edit fieldset" data-rule={i}>
              <div class="field-row">
                {field("Name", "name", "optional")}
                <label class="field">
                  <span class="field-label">Action</span>
                  <select class="input" name={`action-${i}`} value={r.action} onChange={(e) => set(i, { action: (e.target as HTMLSelectElement).value as RuleRow["action"] })}>
                    <option value="allow">allow</option>
                    <option value="drop">drop</option>
                    <option value="limit">limit</option>
                    <option value="portmap">port map</option>
                  </select>
                </label>
                <label class="field">
                  <span class="field-label">Direction</span>
                  <select class="input" name={`dir-${i}`} value={r.dir} onChange={(e) => set(i, { dir: (e.target as HTMLSelectElement).value as RuleRow["dir"] })}>
                    <option value="BOTH">both</option>
                    <option value="EGRESS">outgoing (the app opens it)</option>
                    <option value="INGRESS">incoming (towards the app)</option>
                  </select>
                </label>
              </div>
              <div class="field-row">
                {field("Address or CIDR", "remote", "203.0.113.0/24")}
                {field("Host name", "host", "updates.example.com")}
                {field("Protocol", "protocol", "tcp, udp, icmp")}
                {field("Remote port", "fport")}
                {field(r.action === "portmap" ? "Device port" : "Local port", "lport")}
                {field("Uplink (adapter)", "adapter", "optional")}
              </div>
              {r.action === "limit" && (
                <div class="field-row">
                  {field("Rate", "limitRate")}
                  <label class="field">
                    <span class="field-label">Per</span>
                    <select class="input" name={`limitUnit-${i}`} value={r.limitUnit} onChange={(e) => set(i, { limitUnit: (e.target as HTMLSelectElement).value as RuleRow["limitUnit"] })}>
                      <option value="s">second</option>
                      <option value="m">minute</option>
                      <option value="h">hour</option>
                      <option value="d">day</option>
                    </select>
                  </label>
                  {field("Burst", "limitBurst", "optional")}
                </div>
              )}
              {r.action === "portmap" && <div class="field-row">{field("App port", "appPort", "80")}</div>}
              {err("matches") && <p class="field-error">{err("matches")}</p>}
              <div class="form-actions">
                <button type="button" class="button secondary" aria-label={`Move rule ${i + 1} up`} disabled={i === 0} onClick={() => move(i, -1)}>
                  ↑
                </button>
                <button type="button" class="button secondary" aria-label={`Move rule ${i + 1} down`} disabled={i === rows.length - 1} onClick={() => move(i, 1)}>
                  ↓
                </button>
                <button type="button" class="button secondary" onClick={() => onChange(rows.filter((_, j) => j !== i))}>
                  Remove rule {i + 1}
                </button>
              </div>
            </li>
          );
        })}
      </ol>
      {general.length > 0 && (
        <div class="form-error" role="alert">
          {general.map((p) => (
            <p key={p.message}>{p.message}</p>
          ))}
        </div>
      )}
      <div class="form-actions">
        <button type="button" class="button secondary" id="rule-add" onClick={() => onChange([...rows, emptyRule()])}>
          Add rule
        </button>
        <button type="submit" class="button primary" id="rules-review" disabled={busy}>
          {busy ? "Asking the device…" : "Review changes"}
        </button>
        <button type="button" class="button secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
