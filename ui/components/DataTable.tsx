// A table in a scrollable, keyboard-reachable region with its column headings: the frame every table uses
// (lists, the dashboard's parts, networks' interfaces and leases, firewall rules).
import type { ComponentChildren } from "preact";

export interface DataTableProps {
  id?: string;
  /** The region's accessible name ("API tokens", "Volumes"), or the id of the heading that names it. */
  label?: string;
  labelledBy?: string;
  /** More classes of the table ("apps-table"). */
  class?: string;
  /** Column headings; an empty string is a visually hidden "Actions" heading. */
  columns: string[];
  children: ComponentChildren;
}

export function DataTable({ id, label, labelledBy, class: extra, columns, children }: DataTableProps) {
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label={label} aria-labelledby={labelledBy}>
      <table class={extra ? `table ${extra}` : "table"} id={id}>
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
