// An app's live state (EVE's state name, download progress, error) and its actions: the local commands start,
// stop, restart and purge (no config change; purge asks first, naming what is lost), and delete (a config
// change, so it goes through the plan).
import { useState } from "preact/hooks";
import { ApiError, type AppStatus } from "../api";
import type { AppView } from "../config-edit";
import type { AppCommand, AppsApi } from "../api";
import { useRole } from "../role";
import { ConfirmDialog } from "./ConfirmDialog";

const RUNNING_LIKE = new Set(["RUNNING", "BOOTING", "RESTARTING", "START_DELAYED"]);
const STOPPED_LIKE = new Set(["HALTED", "HALTING"]);
const IN_PROGRESS = new Set([
  "INITIAL",
  "RESOLVING_TAG",
  "RESOLVED_TAG",
  "DOWNLOADING",
  "DOWNLOADED",
  "VERIFYING",
  "VERIFIED",
  "LOADING",
  "LOADED",
  "CREATING_VOLUME",
  "CREATED_VOLUME",
  "INSTALLED",
  "AWAITNETWORKINSTANCE",
  "START_DELAYED",
  "BOOTING",
  "RESTARTING",
  "PURGING",
]);

export function stateTone(state: string): "ok" | "warn" | "error" | "neutral" | "info" {
  if (state === "RUNNING") return "ok";
  if (state === "HALTED") return "neutral";
  if (state === "BROKEN" || state === "ERROR") return "error";
  if (state === "HALTING" || state === "PURGING" || state === "RESTARTING") return "warn";
  return "info";
}

export function appProgress(app: AppStatus): number | null {
  const p = app.progress;
  if (typeof p !== "number" || !Number.isFinite(p) || !IN_PROGRESS.has(app.state)) return null;
  if (p <= 0 && app.state !== "DOWNLOADING") return null; // nothing to show before a download starts
  return Math.max(0, Math.min(100, Math.round(p)));
}

/** The state word, a progress bar while downloading, and the error text when there is one. */
export function AppStateView({ app }: { app: AppStatus }) {
  const progress = appProgress(app);
  return (
    <div class="app-state-view">
      <span class={`badge badge-${stateTone(app.state)} state-name`}>{app.state}</span>
      {progress !== null && (
        <span class="app-progress">
          <progress max={100} value={progress} aria-label={`${app.name}: ${app.state.toLowerCase().replace(/_/g, " ")}`} />
          <span class="app-progress-text">{progress} %</span>
        </span>
      )}
      {app.error && <p class="app-error">{app.error}</p>}
    </div>
  );
}

export interface AppActionsProps {
  app: AppStatus;
  appsApi: AppsApi;
  /** The app as configured (for the purge warning); null when not known. */
  view: AppView | null;
  /** Creating, editing and deleting are disabled: the device is managed by a controller. */
  managed: boolean;
  onDelete: (app: AppStatus) => void;
  /** A short result for the page's status line, or an error for its alert. */
  onMessage: (message: { text: string; error?: boolean }) => void;
  onCommandDone: () => void;
  /** Show the app's name in the accessible names of the buttons (in a list of apps). */
  inList?: boolean;
}

const COMMAND_WORDS: Record<AppCommand, { label: string; done: string }> = {
  start: { label: "Start", done: "Start requested for" },
  stop: { label: "Stop", done: "Stop requested for" },
  restart: { label: "Restart", done: "Restart requested for" },
  purge: { label: "Purge…", done: "Purge requested for" },
};

export function AppActions({ app, appsApi, view, managed, onDelete, onMessage, onCommandDone, inList }: AppActionsProps) {
  const [busy, setBusy] = useState<AppCommand | null>(null);
  const [confirmPurge, setConfirmPurge] = useState(false);
  const [purgeError, setPurgeError] = useState<string | null>(null);

  const run = async (command: AppCommand): Promise<boolean> => {
    setBusy(command);
    try {
      await appsApi.command(app.uuid, command);
      onMessage({ text: `${COMMAND_WORDS[command].done} ${app.name}.` });
      onCommandDone();
      return true;
    } catch (e) {
      const text = `Could not ${command} ${app.name}: ${e instanceof ApiError ? e.message : String(e)}`;
      if (command === "purge") setPurgeError(text);
      else onMessage({ text, error: true });
      return false;
    } finally {
      setBusy(null);
    }
  };

  const label = (text: string) => (
    <>
      {text}
      {inList && <span class="visually-hidden"> {app.name}</span>}
    </>
  );
  const [mayCommand, commandWhy] = useRole("operator");
  const [mayDelete, deleteWhy] = useRole("admin");
  const showStart = !RUNNING_LIKE.has(app.state);
  const showStop = !STOPPED_LIKE.has(app.state);
  const volumes = view?.volumes ?? [];

  return (
    <div class="app-actions" role="group" aria-label={`Actions for ${app.name}`}>
      {showStart && (
        <button type="button" class="button secondary small" data-action="start" disabled={busy !== null || !mayCommand} title={mayCommand ? undefined : commandWhy} onClick={() => void run("start")}>
          {label(busy === "start" ? "Starting…" : "Start")}
        </button>
      )}
      {showStop && (
        <button type="button" class="button secondary small" data-action="stop" disabled={busy !== null || !mayCommand} title={mayCommand ? undefined : commandWhy} onClick={() => void run("stop")}>
          {label(busy === "stop" ? "Stopping…" : "Stop")}
        </button>
      )}
      <button type="button" class="button secondary small" data-action="restart" disabled={busy !== null || !mayCommand} title={mayCommand ? undefined : commandWhy} onClick={() => void run("restart")}>
        {label(busy === "restart" ? "Restarting…" : "Restart")}
      </button>
      <button
        type="button"
        class="button secondary small"
        data-action="purge"
        disabled={busy !== null || !mayCommand}
        title={mayCommand ? undefined : commandWhy}
        onClick={() => {
          setPurgeError(null);
          setConfirmPurge(true);
        }}
      >
        {label("Purge…")}
      </button>
      <button
        type="button"
        class="button secondary small danger-text"
        data-action="delete"
        disabled={busy !== null || managed || !mayDelete}
        title={managed ? "This device is managed by its controller: delete the app there." : mayDelete ? undefined : deleteWhy}
        onClick={() => onDelete(app)}
      >
        {label("Delete…")}
      </button>
      {!mayCommand && !inList && <span class="role-reason muted">{commandWhy}</span>}
      {confirmPurge && (
        <ConfirmDialog
          id="purge"
          title={`Purge ${app.name}?`}
          confirmLabel="Purge"
          danger
          busy={busy === "purge"}
          error={purgeError}
          onCancel={() => setConfirmPurge(false)}
          onConfirm={async () => {
            if (await run("purge")) setConfirmPurge(false);
          }}
        >
          <p>
            The app is stopped, its container is made again from the image, and its volumes are recreated empty. The
            configuration does not change.
          </p>
          {volumes.length > 0 ? (
            <>
              <p>
                <strong>Everything stored in these volumes is lost:</strong>
              </p>
              <ul>
                {volumes.map((v) => (
                  <li key={v.uuid}>
                    {v.name}
                    {v.mountDir && (
                      <>
                        {" "}
                        at <code>{v.mountDir}</code>
                      </>
                    )}
                    {v.sizeMiB !== null && <span class="muted"> ({v.sizeMiB} MiB)</span>}
                  </li>
                ))}
              </ul>
            </>
          ) : (
            <p>
              <strong>Anything the app wrote inside its container is lost.</strong>
              {view ? " It has no extra volumes." : ""}
            </p>
          )}
        </ConfirmDialog>
      )}
    </div>
  );
}
