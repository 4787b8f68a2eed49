// Every change to the device's configuration goes through here: the edit is applied to the current document,
// the device is asked for a dry run, and its plan is shown ("Apply" / "Cancel") before anything is stored.
import { useRef, useState } from "preact/hooks";
import { ApiError, type Problem } from "../api";
import { ACTION_LABELS, type Doc, fieldLabels, kindLabel, type PlanStep, stepDetails } from "../config-edit";
import type { ApplyResult, AppsApi } from "../api";
import { Modal } from "./Modal";
import { vmStepDetails } from "../vm-edit";

export interface ChangeRequest {
  /** The dialog's heading: "Create app web", "Delete app web". */
  title: string;
  /** Said above the plan, for changes that lose data. */
  warning?: string;
  /** The label of the apply button ("Apply" unless given). */
  applyLabel?: string;
  danger?: boolean;
  /** Makes the new document from the current one (null when the device has none). May throw to refuse. */
  edit: (doc: Doc | null) => Doc;
  /** The device refused the document with these problems (`sent` is the document, for mapping paths). */
  onProblems?: (problems: Problem[], sent: Doc) => void;
  /** Applied: the device's answer and the document that was sent (now the current one). */
  onApplied?: (result: ApplyResult, applied: Doc) => void;
}

interface PlanState {
  request: ChangeRequest;
  before: Doc | null;
  after: Doc;
  etag: string | null;
  plan: PlanStep[];
  unchanged: boolean;
  note: string | null;
  error: string | null;
  applying: boolean;
}

/** `shown`: the plan is on screen; `problems`: the device's problems went to `onProblems`; `failed`: `message` says why. */
export type ProposeOutcome = { status: "shown" } | { status: "problems" } | { status: "failed"; message: string };

const ORDER = ["app", "volume", "contentTree", "datastore"];

/** The plan dialog and the calls behind it. Render `dialog` somewhere on the page. */
export function useConfigChange(appsApi: AppsApi) {
  const [state, setState] = useState<PlanState | null>(null);
  const [busy, setBusy] = useState(false);
  const current = useRef<PlanState | null>(null);
  current.current = state;

  /** Loads the current document, applies the edit and asks for a dry run. Throws ApiError or Error. */
  const prepare = async (request: ChangeRequest, note: string | null): Promise<PlanState> => {
    const { doc, etag } = await appsApi.config();
    const after = request.edit(doc);
    try {
      const dry = await appsApi.dryRun(after);
      return { request, before: doc, after, etag, plan: dry.plan, unchanged: dry.unchanged, note, error: null, applying: false };
    } catch (e) {
      if (e instanceof ApiError && e.problems && request.onProblems) {
        request.onProblems(e.problems, after);
        throw new Handled();
      }
      throw e;
    }
  };

  /** Shows the plan of `request`; when it cannot be made, says why (the caller shows `message`). */
  const propose = async (request: ChangeRequest): Promise<ProposeOutcome> => {
    setBusy(true);
    try {
      setState(await prepare(request, null));
      return { status: "shown" };
    } catch (e) {
      if (e instanceof Handled) return { status: "problems" };
      return { status: "failed", message: describeError(e) };
    } finally {
      setBusy(false);
    }
  };

  const apply = async () => {
    const s = current.current;
    if (!s || s.applying) return;
    setState({ ...s, applying: true, error: null });
    try {
      const result = await appsApi.apply(s.after, s.etag);
      setState(null);
      s.request.onApplied?.(result, s.after);
    } catch (e) {
      if (e instanceof ApiError && e.status === 412) {
        // Someone changed the configuration meanwhile: make the plan again from the current one.
        try {
          const fresh = await prepare(
            s.request,
            "The device's configuration changed while you were reviewing this. The plan below was made again from the current configuration: review it, then apply.",
          );
          setState(fresh);
        } catch (again) {
          if (again instanceof Handled) setState(null);
          else setState({ ...s, applying: false, error: describeError(again) });
        }
        return;
      }
      if (e instanceof ApiError && e.problems && s.request.onProblems) {
        setState(null);
        s.request.onProblems(e.problems, s.after);
        return;
      }
      setState({ ...s, applying: false, error: describeError(e) });
    }
  };

  const cancel = () => {
    if (current.current?.applying) return;
    setState(null);
  };

  const dialog = state ? <PlanDialog state={state} onApply={() => void apply()} onCancel={cancel} /> : null;
  return { propose, busy, dialog, open: state !== null };
}

class Handled extends Error {}

function describeError(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 409) return `The device refused the change: ${e.message}`;
    if (e.problems?.length) return `The device refused the change: ${e.problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join("; ")}`;
    return e.message;
  }
  return e instanceof Error ? e.message : String(e);
}

function PlanDialog({ state, onApply, onCancel }: { state: PlanState; onApply: () => void; onCancel: () => void }) {
  const { request, plan, unchanged, note, error, applying } = state;
  const steps = [...plan].sort((a, b) => rank(a.kind) - rank(b.kind));
  const nothing = unchanged || steps.length === 0;
  return (
    <Modal id="plan" labelledBy="plan-title" onCancel={onCancel}>
      <h2 id="plan-title" tabIndex={-1}>
        {request.title}
      </h2>
      <div class="modal-body">
        {note && (
          <p class="notice" role="status">
            {note}
          </p>
        )}
        {nothing ? (
          <p>Nothing changes: the device's configuration already says this.</p>
        ) : (
          <>
            <p>
              Review the plan. Nothing has changed yet; applying makes{" "}
              {steps.length === 1 ? "this change" : `these ${steps.length} changes`} to the device's configuration:
            </p>
            <ol class="plan-steps" aria-label="Planned changes">
              {steps.map((step) => {
                const details = [...stepDetails(step, state.before, state.after), ...vmStepDetails(step, state.before, state.after)];
                const fields = step.action === "change" ? fieldLabels(step.fields) : [];
                return (
                  <li key={`${step.kind}:${step.id}`} class="plan-step" data-action={step.action} data-kind={step.kind}>
                    <span class={`plan-action plan-${step.action}`}>{ACTION_LABELS[step.action] ?? step.action}</span>{" "}
                    {kindLabel(step.kind)} <strong class="plan-name">{step.name || step.id}</strong>
                    {fields.length > 0 && <span class="muted"> — changes its {fields.join(", ")}</span>}
                    {details.length > 0 && (
                      <ul class="plan-details">
                        {details.map((d) => (
                          <li key={d}>{d}</li>
                        ))}
                      </ul>
                    )}
                  </li>
                );
              })}
            </ol>
            {request.warning && <p class="warning-text">{request.warning}</p>}
          </>
        )}
        {error && (
          <div class="form-error" role="alert">
            <p>{error}</p>
          </div>
        )}
      </div>
      <div class="form-actions modal-actions">
        {!nothing && (
          <button
            type="button"
            id="plan-apply"
            class={request.danger ? "button danger" : "button primary"}
            disabled={applying}
            onClick={onApply}
          >
            {applying ? "Applying…" : (request.applyLabel ?? "Apply")}
          </button>
        )}
        <button type="button" id="plan-cancel" class="button secondary" disabled={applying} onClick={onCancel}>
          {nothing ? "Close" : "Cancel"}
        </button>
      </div>
    </Modal>
  );
}

function rank(kind: string): number {
  const i = ORDER.indexOf(kind);
  return i < 0 ? ORDER.length : i;
}
