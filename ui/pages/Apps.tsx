// The Apps page: every app with its live state, the create form, and the actions on each app.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError, type ApiClient, type AppsApi, type AppStatus, type CurrentConfig, type Problem } from "../api";
import { type Doc, type FieldProblem, readApp, removeApp } from "../config-edit";
import { AppActions, AppStateView } from "../components/AppControls";
import { AppForm, type AppFormValues, emptyAppForm } from "../components/AppForm";
import { useHostView } from "../components/useHostView";
import { vmImageChoices } from "../vm-edit";
import { useImages } from "../images";
import { appCheck, appFieldProblems, createDoc, networksOf } from "./app-form/build";
import { useHardware } from "./app-form/AdaptersSection";
import { useConfigChange } from "../components/PlanDialog";
import { useRole } from "../role";
import { useLiveStatus } from "../components/useLiveStatus";
import { DataTable } from "../components/DataTable";
import { Link, navigate, useLocation } from "../router";

export interface AppsProps {
  api: ApiClient;
}

type Message = { text: string; error?: boolean } | null;

export function Apps({ api }: AppsProps) {
  const [mayCreate, createWhy] = useRole("admin");
  const appsApi = api;
  const live = useLiveStatus(api);
  const config = useCurrentConfig(appsApi, live.status?.device.configHash ?? null);
  const change = useConfigChange(appsApi);
  const location = useLocation();
  const [form, setForm] = useState<{ initial: AppFormValues; key: number } | null>(null);
  const [formProblems, setFormProblems] = useState<FieldProblem[]>([]);
  const [formError, setFormError] = useState<string | null>(null);
  const [message, setMessage] = useState<Message>(null);
  const host = useHostView(api);
  const hardware = useHardware(api, !!form);
  const uploaded = useImages(api);

  // A deletion made on an app's own page says so here (/apps?deleted=<name>).
  const deleted = location.query.get("deleted");
  useEffect(() => {
    if (deleted) {
      setMessage({ text: `${deleted} was deleted.` });
      navigate("/apps", { replace: true });
    }
  }, [deleted]);

  const status = live.status;
  const managed = status?.device.mode === "managed";
  const controller = (status?.device as { controller?: unknown } | undefined)?.controller;
  const apps = status?.apps ?? [];
  const doc = config.current?.doc ?? null;

  const openForm = () => {
    setFormProblems([]);
    setFormError(null);
    setMessage(null);
    void host.reload();
    setForm({ initial: emptyAppForm(doc), key: Date.now() });
  };
  const closeForm = () => {
    setForm(null);
    setTimeout(() => document.getElementById("app-create")?.focus(), 0);
  };

  const create = async (values: AppFormValues) => {
    const name = values.name.trim();
    setFormProblems([]);
    setFormError(null);
    const outcome = await change.propose({
      title: `Create ${values.kind === "vm" ? "virtual machine" : "app"} ${name}`,
      applyLabel: "Apply",
      edit: (current) => createDoc(current, values, uploaded.images),
      onProblems: (problems: Problem[], sent: Doc) => {
        const id = (sent.apps ?? []).find((a: Doc) => a.displayname === name)?.uuidandversion?.uuid;
        setFormProblems(appFieldProblems(sent, id, problems, values.kind, true));
      },
      onApplied: (result, applied) => {
        setForm(null);
        setMessage({ text: `${name} was added (configuration version ${result.version ?? "?"}). Its state is shown in the list as the device sets it up.` });
        config.applied(applied, result.hash);
        void live.refresh();
        setTimeout(() => document.getElementById("app-create")?.focus(), 0);
      },
    });
    if (outcome.status === "failed") setFormError(outcome.message);
  };

  const remove = async (app: AppStatus) => {
    setMessage(null);
    const outcome = await change.propose({
      title: `Delete app ${app.name}`,
      applyLabel: "Delete",
      danger: true,
      warning: "The app's container is removed, and its volumes with everything stored in them. This cannot be undone.",
      edit: (current) => {
        if (!current || !readApp(current, app.uuid)) throw new Error(`${app.name} is not in the device's configuration any more.`);
        return removeApp(current, app.uuid);
      },
      onApplied: (result, applied) => {
        setMessage({ text: `${app.name} was deleted.` });
        config.applied(applied, result.hash);
        void live.refresh();
        setTimeout(() => document.getElementById("page-title")?.focus(), 0);
      },
    });
    if (outcome.status === "failed") setMessage({ text: `Could not delete ${app.name}: ${outcome.message}`, error: true });
  };

  return (
    <section id="apps" class="page" aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          Apps
        </h1>
        {status && (
          <p class="muted live-state">
            <span class={live.live ? "dot dot-live" : "dot"} aria-hidden="true" />
            {live.live ? "Live updates" : "Refreshing every 5 s"} · updated {new Date(live.fetchedAt).toLocaleTimeString()}
          </p>
        )}
      </div>

      {managed && (
        <p class="notice banner" id="apps-managed">
          This device is managed by its controller{typeof controller === "string" && controller ? ` (${controller})` : ""}, which
          decides what apps it runs: create, change and delete apps there. Start, stop, restart and purge still work here.
        </p>
      )}
      {live.error && (
        <div class="banner banner-error" role="alert">
          Could not refresh the app states: {live.error}
          {status ? " Showing the last known state." : " Retrying every few seconds."}
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

      {!form && (
        <div class="toolbar">
          <button
            type="button"
            id="app-create"
            class="button primary"
            disabled={managed || !status || !mayCreate}
            title={mayCreate ? undefined : createWhy}
            aria-describedby={managed ? "apps-managed" : undefined}
            onClick={openForm}
          >
            New app
          </button>
          {!mayCreate && <span class="role-reason muted">{createWhy}</span>}
        </div>
      )}

      {form && (
        <div class="card form-card">
          <AppForm
            key={form.key}
            mode="create"
            initial={form.initial}
            doc={doc}
            busy={change.busy}
            problems={formProblems}
            error={formError}
            onSubmit={(values) => void create(values)}
            onCancel={closeForm}
            check={appCheck(doc, host.view, "create", undefined, uploaded.images)}
            imported={uploaded.images}
            networks={networksOf(doc)}
            images={vmImageChoices(doc)}
            hardware={hardware}
          />
        </div>
      )}

      {!status && !live.error && (
        <p class="muted" role="status">
          Loading apps…
        </p>
      )}
      {status && (
        <section class="card card-wide apps-list" aria-labelledby="apps-list-heading">
          <h2 id="apps-list-heading" class="visually-hidden">
            Apps on this device
          </h2>
          {apps.length === 0 ? (
            <p class="empty">
              No apps yet.{" "}
              {managed ? "Apps appear here when the controller deploys them." : "Create a container or a virtual machine with New app."}
            </p>
          ) : (
            <DataTable labelledBy="apps-list-heading" class="apps-table" columns={["App", "State", "Image", "Actions"]}>
                  {apps.map((app) => {
                    const view = readApp(doc, app.uuid);
                    return (
                      <tr key={app.uuid} data-app={app.name} data-uuid={app.uuid}>
                        <th scope="row" class="app-name">
                          <Link href={`/apps/${encodeURIComponent(app.uuid)}`}>{app.name || app.uuid}</Link>
                          {kindOf(app, view) && <span class="muted app-kind"> {kindOf(app, view)}</span>}
                        </th>
                        <td class="app-state">
                          <AppStateView app={app} />
                        </td>
                        <td class="detail app-image">{view?.image ? <code>{breakAtSlashes(view.image)}</code> : <span class="muted">—</span>}</td>
                        <td class="app-actions-cell">
                          <AppActions
                            app={app}
                            appsApi={appsApi}
                            view={view}
                            managed={managed}
                            inList
                            onDelete={(a) => void remove(a)}
                            onMessage={setMessage}
                            onCommandDone={() => void live.refresh()}
                          />
                        </td>
                      </tr>
                    );
                  })}
                </DataTable>
          )}
        </section>
      )}
      {config.error && (
        <p class="muted">
          The configuration could not be read ({config.error}); images and volumes are not shown.
        </p>
      )}
      {change.dialog}
    </section>
  );
}

/** An image reference that wraps after its slashes rather than mid-word. */
function breakAtSlashes(text: string) {
  const parts = text.split("/");
  return parts.map((part, i) => (i < parts.length - 1 ? [part, "/", <wbr key={i} />] : part));
}

function kindOf(app: AppStatus, view: ReturnType<typeof readApp>): string {
  const kind = typeof app.kind === "string" ? app.kind : view?.kind !== "unknown" ? view?.kind : undefined;
  return kind === "vm" ? "VM" : kind === "container" ? "container" : "";
}

/**
 * The current config document, loaded once and again whenever the device's config hash (from the status) differs
 * from the loaded one's ETag.
 */
export function useCurrentConfig(appsApi: AppsApi, configHash: string | null) {
  const [current, setCurrent] = useState<CurrentConfig | null>(null);
  const [error, setError] = useState<string | null>(null);
  const loading = useRef<Promise<void> | null>(null);

  const reload = useCallback(() => {
    loading.current ??= (async () => {
      try {
        setCurrent(await appsApi.config());
        setError(null);
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 401)) setError(e instanceof Error ? e.message : String(e));
      } finally {
        loading.current = null;
      }
    })();
    return loading.current;
  }, [appsApi]);

  const loadedHash = current?.etag?.replace(/"/g, "") ?? null;
  useEffect(() => {
    if (current === null || loadedHash !== configHash) void reload();
  }, [configHash, reload]);

  /** After an apply: show the document that was sent at once (the reload that follows brings the stored one). */
  const applied = useCallback(
    (doc: Doc, hash: string) => {
      setCurrent({ doc, etag: hash ? `"${hash}"` : null });
      void reload();
    },
    [reload],
  );

  return { current, error, reload, applied };
}
