import { Link } from "../router";
import type { Section } from "../sections";

/** One placeholder for every section whose page is not built yet. */
export function NotAvailable({ section }: { section: Section }) {
  return (
    <section class="page placeholder" aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        {section.label}
      </h1>
      <div class="card">
        <p>
          <strong>Not available yet.</strong> This version of the console does not have the {section.label} page.
        </p>
        <p class="muted">{section.purpose}</p>
        <p>
          <Link href="/">Back to the dashboard</Link>
        </p>
      </div>
    </section>
  );
}

export function NotFound({ path }: { path: string }) {
  return (
    <section class="page placeholder" aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Page not found
      </h1>
      <div class="card">
        <p>
          There is no page at <code>{path}</code>.
        </p>
        <p>
          <Link href="/">Go to the dashboard</Link>
        </p>
      </div>
    </section>
  );
}
