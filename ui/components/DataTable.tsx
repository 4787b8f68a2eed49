// A table in a scrollable, keyboard-reachable region with its column headings: the frame every list page uses.
import type { ComponentChildren } from "preact";

export interface DataTableProps {
  id?: string;
  /** The region's accessible name ("API tokens", "Volumes"). */
  label: string;
  /** Column headings; an empty string is a visually hidden "Actions" heading. */
  columns: string[];
  children: ComponentChildren;
}

export function DataTable({ id, label, columns, children }: DataTableProps) {
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label={label}>
      <table class="table" id={id}>
        <thead>
          <tr>
            {columns.map((c, i) => (
              <th scope="col" key={i}>
                {c || <span class="visually-hidden">Actions</span>}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}
