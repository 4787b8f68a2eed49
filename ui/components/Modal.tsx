import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";

export interface ModalProps {
  id: string;
  /** The id of the dialog's heading. */
  labelledBy: string;
  /** Escape (or the dialog's own cancel) asks to close; the owner unmounts the modal when it agrees. */
  onCancel: () => void;
  /** A selector of the element to focus when the dialog opens; the heading (tabindex -1) otherwise. */
  initialFocus?: string;
  children: ComponentChildren;
}

/**
 * A modal dialog on the native <dialog>: showModal() makes the rest of the page inert (focus stays inside,
 * Escape cancels), and the focus goes back to what had it when the dialog closes.
 */
export function Modal({ id, labelledBy, onCancel, initialFocus, children }: ModalProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const cancel = useRef(onCancel);
  cancel.current = onCancel;

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    if (!dialog.open) {
      if (typeof dialog.showModal === "function") dialog.showModal();
      else dialog.setAttribute("open", "");
    }
    const target = (initialFocus && dialog.querySelector<HTMLElement>(initialFocus)) || dialog.querySelector<HTMLElement>(`#${labelledBy}`);
    target?.focus();
    return () => {
      if (dialog.open) dialog.close();
      if (opener?.isConnected && !opener.matches(":disabled")) opener.focus();
    };
  }, []);

  return (
    <dialog
      ref={ref}
      id={id}
      class="modal"
      aria-labelledby={labelledBy}
      aria-modal="true"
      onCancel={(event) => {
        event.preventDefault();
        cancel.current();
      }}
    >
      {children}
    </dialog>
  );
}
