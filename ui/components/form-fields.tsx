// What the forms share for showing problems at their fields: the props that tie an input to its hint and error
// (aria-invalid, aria-describedby), the error text under it, and the summary at the top with a link to each field.
import type { FieldProblem } from "../config-edit";

export interface FieldHelpers {
  /** id, aria-invalid and aria-describedby of the input for `field` (`hint`: it has a `<id>-hint`). */
  props(field: string, hint?: boolean): { id: string; "aria-invalid"?: "true"; "aria-describedby"?: string };
  /** The error text of `field`, or null. */
  error(field: string): preact.JSX.Element | null;
  invalid(field: string): boolean;
  /** The DOM id of `field`'s input. */
  domId(field: string): string;
}

export function fieldHelpers(problems: FieldProblem[], domId: (field: string) => string): FieldHelpers {
  const byField = new Map<string, string[]>();
  for (const p of problems) if (p.field) byField.set(p.field, [...(byField.get(p.field) ?? []), p.message]);
  const invalid = (field: string) => byField.has(field);
  return {
    domId,
    invalid,
    props(field, hint) {
      const id = domId(field);
      const describedBy = [hint ? `${id}-hint` : "", invalid(field) ? `${id}-error` : ""].filter(Boolean).join(" ");
      return { id, ...(invalid(field) ? { "aria-invalid": "true" as const } : {}), ...(describedBy ? { "aria-describedby": describedBy } : {}) };
    },
    error(field) {
      return invalid(field) ? (
        <p class="field-error" id={`${domId(field)}-error`}>
          {byField.get(field)!.join(" ")}
        </p>
      ) : null;
    },
  };
}

/** The form's one error area: a general error and every problem, each linked to its field. */
export function ProblemSummary({ id, problems, error, f, names = {} }: { id: string; problems: FieldProblem[]; error: string | null; f: FieldHelpers; names?: Record<string, string> }) {
  if (!problems.length && !error) return null;
  return (
    <div class="form-error" role="alert" tabIndex={-1} id={id}>
      {error && <p>{error}</p>}
      {problems.length > 0 && (
        <>
          <p>{problems.length === 1 ? "Correct this to continue:" : `Correct these ${problems.length} things to continue:`}</p>
          <ul>
            {problems.map((p, i) => (
              <li key={`${p.field}:${i}`}>
                {p.field ? (
                  <a
                    href={`#${f.domId(p.field)}`}
                    onClick={(e) => {
                      e.preventDefault();
                      document.getElementById(f.domId(p.field))?.focus();
                    }}
                  >
                    {names[p.field] ? `${names[p.field]}: ` : ""}
                    {p.message}
                  </a>
                ) : (
                  p.message
                )}
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}

/** Focuses the first field with a problem (after the texts rendered), else the form's error area. */
export function focusFirstProblem(problems: FieldProblem[], domId: (field: string) => string, form: HTMLElement | null): void {
  setTimeout(() => {
    const p = problems.find((x) => x.field && document.getElementById(domId(x.field)));
    if (p) document.getElementById(domId(p.field))?.focus();
    else form?.querySelector<HTMLElement>(".form-error")?.focus();
  }, 0);
}
