import type { ComponentChildren, Ref, TargetedInputEvent } from "preact";

export interface FieldProps {
  id: string;
  name: string;
  type: "text" | "password";
  value: string;
  onInput: (event: TargetedInputEvent<HTMLInputElement>) => void;
  autoComplete: string;
  autoCapitalize?: "off";
  spellcheck?: boolean;
  label: string;
  /** Help shown under the label and read with the input. */
  hint?: ComponentChildren;
  /** Marks the input invalid and points its description at the form's error message. */
  invalid?: boolean;
  errorId?: string;
  inputRef?: Ref<HTMLInputElement>;
  mono?: boolean;
}

/** A labelled input: the label is bound with for/id, the hint and any error with aria-describedby. */
export function Field({ id, label, hint, invalid, errorId, inputRef, mono, type, ...input }: FieldProps) {
  const hintId = hint ? `${id}-hint` : undefined;
  const describedBy = [hintId, invalid ? errorId : undefined].filter(Boolean).join(" ") || undefined;
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {hint && (
        <p class="field-hint" id={hintId}>
          {hint}
        </p>
      )}
      <input
        id={id}
        // Preact types each input type's allowed roles separately, so a union of types must be narrowed.
        type={type as "text"}
        ref={inputRef}
        class={mono ? "input mono" : "input"}
        aria-invalid={invalid ? "true" : undefined}
        aria-describedby={describedBy}
        {...input}
      />
    </div>
  );
}

/** The one error area of a form. Rendered only when there is something to say, so screen readers announce it. */
export function FormError({ id, messages }: { id: string; messages: string[] }) {
  if (messages.length === 0) return null;
  return (
    <div class="form-error" role="alert" id={id}>
      {messages.length === 1 ? (
        <p>{messages[0]}</p>
      ) : (
        <ul>
          {messages.map((m) => (
            <li key={m}>{m}</li>
          ))}
        </ul>
      )}
    </div>
  );
}
