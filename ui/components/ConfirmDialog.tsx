// A modal question with one action and Cancel (focus starts on Cancel, Escape cancels).
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
  onConfirm: () => void;
  onCancel: () => void;
}

export function ConfirmDialog({ id, title, children, confirmLabel, danger, onConfirm, onCancel }: ConfirmDialogProps) {
  return (
    <Modal id={id} labelledBy={`${id}-title`} onCancel={onCancel} initialFocus={`#${id}-cancel`}>
      <h2 id={`${id}-title`} tabIndex={-1}>
        {title}
      </h2>
      <div class="modal-body">{children}</div>
      <div class="form-actions modal-actions">
        <button type="button" id={`${id}-confirm`} class={danger ? "button danger" : "button primary"} onClick={onConfirm}>
          {confirmLabel}
        </button>
        <button type="button" id={`${id}-cancel`} class="button secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </Modal>
  );
}
