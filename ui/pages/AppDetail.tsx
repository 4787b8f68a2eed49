// One app: its live state, what it is configured as, its settings (edited through the plan), its network
// interfaces (with a link to its firewall: rules and hit counters), actions and logs.
import { useState } from "preact/hooks";
import type { ApiClient, AppStatus, Problem } from "../api";
import { type Doc, type FieldProblem, readApp, removeApp } from "../config-edit";
import { useHostView } from "../components/useHostView";
import { appCheck, appFieldProblems, networksOf, updateDoc } from "./app-form/build";
import { formatDateTime, shortHash } from "../format";
import { AppConsole } from "../components/AppConsole";
import { AppDisplay } from "../components/AppDisplay";
import { AppActions, AppStateView } from "../components/AppControls";
import { AppForm, appFormFrom, type AppFormValues } from "../components/AppForm";
import { AppHardware, useHardware } from "./app-form/AdaptersSection";
import { AppLogs } from "../components/AppLogs";
import { useConfigChange } from "../components/PlanDialog";
import { useLiveStatus } from "../components/useLiveStatus";
import { MetricsCharts } from "../components/MetricsCharts";
import { Link, navigate } from "../router";
import { useRole } from "../role";
import { useCurrentConfig } from "./Apps";

export interface AppDetailProps {
  api: ApiClient;
  uuid: string;
}

export function AppDetail({ api, uuid }: AppDetailProps) {
  const appsApi = api;
  const live = useLiveStatus(api);
  const hardware = useHardware(api, true);
  const config = useCurrentConfig(appsApi, live.status?.device.configHash ?? null);
  const change = useConfigChange(appsApi);
  const [editing, setEditing] = useState<{ initial: AppFormValues; key: number } | null>(null);
  const [formProblems, setFormProblems] = useState<FieldProblem[]>([]);
  const [formError, setFormError] = useState<string | null>(null);
  const [message, setMessage] = useState<{ text: string; error?: boolean } | null>(null);
  const host = useHostView(api);
  const [mayEdit, editWhy] = useRole("admin");
  const [mayConsole, consoleWhy] = useRole("operator");

  const status = live.status;
  const managed = status?.device.mode === "managed";
  const doc = config.current?.doc ?? null;
  const view = readApp(doc, uuid);
  const observed = status?.apps.find((a) => a.uuid === uuid);
  // An app only in the config (not reported yet) is shown as INITIAL, as the device would.
  const app: AppStatus | null = observed ?? (view ? { uuid, name: view.name, state: "INITIAL", error: null } : null);
  const name = app?.name || view?.name || uuid;
  const loaded = status !== null && config.current !== null;

  const edit = () => {
    if (!view) return;
    setFormProblems([]);
    setFormError(null);
    setMessage(null);
    void host.reload();
    setEditing({ initial: appFormFrom(view, doc), key: Date.now() });
  };
  const closeForm = () => {
    setEditing(null);
    setTimeout(() => document.getElementById("app-edit")?.focus(), 0);
  };

  const save = async (values: AppFormValues, envEditable: boolean) => {
    setFormProblems([]);
    setFormError(null);
    const outcome = await change.propose({
      title: `Change app ${name}`,
      edit: (current) => {
        if (!current || !readApp(current, uuid)) throw new Error(`${name} is not in the device's configuration any more.`);
        return updateDoc(current, uuid, values, envEditable);
      },
      onProblems: (problems: Problem[], sent: Doc) => setFormProblems(appFieldProblems(sent, uuid, problems, values.kind, true)),
      onApplied: (result, applied) => {
        setEditing(null);
        setMessage({ text: `The changes to ${name} were applied (configuration version ${result.version ?? "?"}). The device now recreates the app with them.` });
        config.applied(applied, result.hash);
        void live.refresh();
        setTimeout(() => document.getElementById("app-edit")?.focus(), 0);
      },
    });
    if (outcome.status === "failed") setFormError(outcome.message);
  };

  const remove = async () => {
    setMessage(null);
    const outcome = await change.propose({
      title: `Delete app ${name}`,
      applyLabel: "Delete",
      danger: true,
      warning: "The app's container is removed, and its volumes with everything stored in them. This cannot be undone.",
      edit: (current) => {
        if (!current || !readApp(current, uuid)) throw new Error(`${name} is not in the device's configuration any more.`);
        return removeApp(current, uuid);
      },
      onApplied: () => navigate(`/apps?deleted=${encodeURIComponent(name)}`),
    });
    if (outcome.status === "failed") setMessage({ text: `Could not delete ${name}: ${outcome.message}`, error: true });
  };

  return (
    <section id="app-detail" class="page" aria-labelledby="page-title" data-app={name}>
      <p class="breadcrumb">
        <Link href="/apps">← All apps</Link>
      </p>
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          {app || view ? name : loaded ? "App not found" : "App"}
        </h1>
        {status && (
          <p class="muted live-state">
            <span class={live.live ? "dot dot-live" : "dot"} aria-hidden="true" />
            {live.live ? "Live updates" : "Refreshing every 5 s"} · updated {new Date(live.fetchedAt).toLocaleTimeString()}
          </p>
        )}
      </div>

      {live.error && (
        <div class="banner banner-error" role="alert">
          Could not refresh the app's state: {live.error}
        </div>
      )}
      <div aria-live="polite" role="status" class="status-line">
        {message && !message.error && <p class="notice banner">{message.text}</p>}
      </div>
      {message?.error && (
        <div class="banner banner-error" role="alert">
          {message.text}
        </div>
      )}

      {!loaded && !live.error && (
        <p class="muted" role="status">
          Loading…
        </p>
      )}
      {loaded && !app && (
        <div class="card">
          <p>There is no app with the id <code>{uuid}</code> on this device. It may have been deleted.</p>
          <p>
            <Link href="/apps">Go to the list of apps</Link>
          </p>
        </div>
      )}

      {app && (
        <div class="grid">
          <section class="card card-wide" aria-labelledby="state-heading">
            <h2 id="state-heading">State</h2>
            <div class="app-state">
              <AppStateView app={app} />
            </div>
            <AppActions
              app={app}
              appsApi={appsApi}
              view={view}
              managed={managed}
              onDelete={() => void remove()}
              onMessage={setMessage}
              onCommandDone={() => void live.refresh()}
            />
          </section>

          <section class="card card-wide" aria-labelledby="settings-heading">
            <div class="section-head">
              <h2 id="settings-heading">Settings</h2>
              {view && !editing && (
                <button type="button" id="app-edit" class="button secondary small" disabled={managed || !mayEdit} title={mayEdit ? undefined : editWhy} aria-describedby={managed ? "app-managed" : undefined} onClick={edit}>
                  Change settings
                </button>
              )}
            </div>
            {managed && (
              <p class="muted" id="app-managed">
                This device is managed by its controller: change the app's settings there.
              </p>
            )}
            {editing && view ? (
              <AppForm
                key={editing.key}
                mode="edit"
                initial={editing.initial}
                doc={doc}
                view={view}
                busy={change.busy}
                problems={formProblems}
                error={formError}
                onSubmit={(values, envEditable) => void save(values, envEditable)}
                onCancel={closeForm}
                check={appCheck(doc, host.view, "edit", uuid)}
                networks={networksOf(doc)}
                hardware={hardware}
              />
            ) : (
              <Facts app={app} view={view} />
            )}
          </section>

          <MetricsCharts api={api} object={uuid} id="app-charts" heading="Resources" />

          <AppNetwork doc={doc} uuid={uuid} />
          <AppHardware hardware={hardware} uuid={uuid} />

          {mayConsole ? (
            <>
              <AppConsole key={`console-${uuid}`} app={app} kind={kindOf(app, view)} />
              {app.remoteConsole === true && <AppDisplay key={`display-${uuid}`} app={app} />}
            </>
          ) : (
            <section class="card card-wide" aria-labelledby="console-off-heading" id="console-refused">
              <h2 id="console-off-heading">Console</h2>
              <p class="role-reason muted">{consoleWhy}</p>
            </section>
          )}

          <AppLogs key={uuid} appsApi={appsApi} uuid={uuid} name={name} />
        </div>
      )}
      {change.dialog}
    </section>
  );
}

/** The app's interfaces and the network instances they are on; the firewall editor is one click away. */
function AppNetwork({ doc, uuid }: { doc: Doc | null; uuid: string }) {
  const entry = ((doc?.apps ?? []) as Doc[]).find((a) => a.uuidandversion?.uuid === uuid);
  const nis = new Map(((doc?.networkInstances ?? []) as Doc[]).map((n) => [n.uuidandversion?.uuid, n.displayname || n.uuidandversion?.uuid]));
  const ifaces = ((entry?.interfaces ?? []) as Doc[]).filter((i) => i.networkId);
  if (!ifaces.length) return null;
  return (
    <section class="card" id="app-network" aria-labelledby="network-heading">
      <h2 id="network-heading">Network</h2>
      <ul class="plain-list">
        {ifaces.map((i, n) => (
          <li key={n}>
            <code>{i.name || `eth${n}`}</code> on {nis.get(i.networkId) ?? <code>{i.networkId}</code>} · {(i.acls ?? []).length} rule{(i.acls ?? []).length === 1 ? "" : "s"}
          </li>
        ))}
      </ul>
      <p>
        <Link href={`/apps/${encodeURIComponent(uuid)}/firewall`}>Firewall rules and hits</Link>
      </p>
    </section>
  );
}

/** What the app sees of an envelope (its metadata server at 169.254.169.254 serves the active ones). */
const PATCH_STATE: Record<string, string> = {
  PATCH_ACTIVE: "served to the app",
  PATCH_READY: "stored, not served yet",
  PATCH_ERROR: "in error, not served",
};

function kindOf(app: AppStatus, view: ReturnType<typeof readApp>): "vm" | "container" | null {
  if (app.kind === "vm" || view?.kind === "vm") return "vm";
  if (app.kind === "container" || view?.kind === "container") return "container";
  return null;
}

function Facts({ app, view }: { app: AppStatus; view: ReturnType<typeof readApp> }) {
  const env = view?.userData.env ?? [];
  return (
    <dl class="facts" id="app-facts">
      <div>
        <dt>Kind</dt>
        <dd>{app.kind === "vm" || view?.kind === "vm" ? "Virtual machine" : app.kind === "container" || view?.kind === "container" ? "Container" : "—"}</dd>
      </div>
      <div>
        <dt>Image</dt>
        <dd>
          {view?.image ? <code>{view.image}</code> : <span class="muted">—</span>}
          {view?.imageSha256 && (
            <>
              {" "}
              <span class="muted">
                sha256 <code title={view.imageSha256}>{shortHash(view.imageSha256)}</code>
              </span>
            </>
          )}
        </dd>
      </div>
      <div>
        <dt>Resources</dt>
        <dd>{view ? `${view.memoryMiB} MiB memory · ${view.vcpus} ${view.vcpus === 1 ? "vCPU" : "vCPUs"}` : "—"}</dd>
      </div>
      <div>
        <dt>Environment</dt>
        <dd>
          {view?.userData.kind === "other" && env.length === 0 ? (
            <span class="muted">User data that is not KEY=VALUE lines</span>
          ) : env.length === 0 ? (
            <span class="muted">No variables</span>
          ) : (
            <ul class="plain-list">
              {env.map((e) => (
                <li key={e.key}>
                  <code>{e.key}</code> <span class="muted">=</span> <code>{e.value}</code>
                </li>
              ))}
            </ul>
          )}
        </dd>
      </div>
      <div>
        <dt>Volumes</dt>
        <dd>
          {!view || view.volumes.length === 0 ? (
            <span class="muted">No extra volumes</span>
          ) : (
            <ul class="plain-list">
              {view.volumes.map((v) => (
                <li key={v.uuid}>
                  {v.mountDir ? <code>{v.mountDir}</code> : v.name}
                  {v.sizeMiB !== null && ` · ${v.sizeMiB} MiB`}
                  {v.readonly && " · read-only"}
                  <span class="muted"> ({v.name})</span>
                </li>
              ))}
            </ul>
          )}
        </dd>
      </div>
      {view && view.patchEnvelopes.length > 0 && (
        <div>
          <dt>Patch envelopes</dt>
          <dd id="app-patch-envelopes">
            <ul class="plain-list">
              {view.patchEnvelopes.map((pe) => (
                <li key={pe.uuid}>
                  {pe.name || <code>{pe.uuid}</code>}
                  {pe.version && ` · version ${pe.version}`} · {PATCH_STATE[pe.state]}
                  {pe.files.length > 0 && (
                    <span class="muted">
                      {" "}
                      ({pe.files.map((f, i) => (
                        <>
                          {i > 0 && ", "}
                          <code>{f}</code>
                        </>
                      ))})
                    </span>
                  )}
                </li>
              ))}
            </ul>
          </dd>
        </div>
      )}
      {typeof app.accelerator === "string" && app.accelerator && (
        <div>
          <dt>Accelerator</dt>
          <dd id="app-accelerator">
            {app.accelerator === "kvm" ? "KVM (hardware virtualization)" : "TCG (software emulation: no hardware virtualization on this device)"}
          </dd>
        </div>
      )}
      {typeof app.containerId === "string" && app.containerId && (
        <div>
          <dt>Container</dt>
          <dd>
            <code title={app.containerId}>{shortHash(app.containerId)}</code>
          </dd>
        </div>
      )}
      {typeof app.startedAt === "string" && app.startedAt && (
        <div>
          <dt>Started</dt>
          <dd>
            <time dateTime={app.startedAt}>{formatDateTime(app.startedAt)}</time>
          </dd>
        </div>
      )}
      {typeof app.restarts === "number" && (
        <div>
          <dt>Restarts</dt>
          <dd>{app.restarts}</dd>
        </div>
      )}
      <div>
        <dt>Id</dt>
        <dd>
          <code>{app.uuid}</code>
          {view?.version && <span class="muted"> · version {view.version}</span>}
        </dd>
      </div>
    </dl>
  );
}
