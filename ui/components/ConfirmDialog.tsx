// The one yes/no question before an action: one action and Cancel (the focus starts on Cancel, Escape cancels,
// not while the action runs). Used for revoking a token, reboot and shutdown, purging an app.
import type { ComponentChildren } from "preact";
import { Modal } from "./Modal";

export interface ConfirmDialogProps {
  /** Prefix of the element ids: `<id>-title`, `<id>-confirm`, `<id>-cancel`. */
  id: string;
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  /** The action loses something (data, access, uptime): shown as a dangerous button. */
  danger?: boolean;
  /** The action runs: both buttons are disabled and the action's shows "Working…". */
  busy?: boolean;
  /** Why the action failed, shown in the dialog. */
  error?: string | null;
  onConfirm: () => void;
  onCancel: () => void;
}

export function ConfirmDialog({ id, title, children, confirmLabel, danger, busy, error, onConfirm, onCancel }: ConfirmDialogProps) {
  return (
    <Modal id={id} labelledBy={`${id}-title`} onCancel={() => !busy && onCancel()} initialFocus={`#${id}-cancel`}>
      <h2 id={`${id}-title`} tabIndex={-1}>
        {title}
      </h2>
      <div class="modal-body">{children}</div>
      {error && (
        <div class="form-error" role="alert">
          <p>{error}</p>
        </div>
      )}
      <div class="form-actions modal-actions">
        <button type="button" id={`${id}-confirm`} class={danger ? "button danger" : "button primary"} disabled={busy} onClick={onConfirm}>
          {busy ? "Working…" : confirmLabel}
        </button>
        <button type="button" id={`${id}-cancel`} class="button secondary" disabled={busy} onClick={onCancel}>
          Cancel
        </button>
      </div>
    </Modal>
  );
}
