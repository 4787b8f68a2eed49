// The Bundles page: app bundles (a whole stack in one file: apps, images, networks, volumes; src/bundles/README.md)
// imported on this device, with Upgrade and Remove; "Import bundle" uploads a file with progress (its dry run),
// shows what it will add, change and remove and asks the site's choices as form fields (a serial port and a port
// as selects of what the device has, a subnet checked at the field), then applies it. Every choice is checked
// again by the device (a dry run with the staged file, not sent again) before Apply is offered.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError, type ApiClient } from "../api";
import { type BundleParam, type BundlePlan, type BundleRef, subnetSyntaxProblem, uploadBundle } from "../bundles";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { DataTable } from "../components/DataTable";
import { fieldHelpers, ProblemSummary } from "../components/form-fields";
import { Modal } from "../components/Modal";
import type { FieldProblem } from "../config-edit";
import { useLive } from "../hooks";
import { RoleGate } from "../role";

interface Installed {
  name: string;
  version: string;
  description: string;
  params: Record<string, string>;
  objects: Record<string, string[]>;
  images: Record<string, string>;
  installedAt: string;
  installedBy: string;
}

function size(b: number): string {
  if (b < 1024 * 1024) return `${(b / 1024).toFixed(1)} KiB`;
  if (b < 1024 ** 3) return `${(b / 1024 / 1024).toFixed(1)} MiB`;
  return `${(b / 1024 ** 3).toFixed(2)} GiB`;
}

const count = (o: Record<string, string[]>) => Object.values(o).reduce((n, l) => n + l.length, 0);

export function Bundles({ api }: { api: ApiClient }) {
  const [list, setList] = useState<Installed[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [importing, setImporting] = useState<{ upgrade: string | null } | null>(null);
  const [removing, setRemoving] = useState<Installed | null>(null);
  const [removeBusy, setRemoveBusy] = useState(false);
  const [removeError, setRemoveError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const load = useCallback(async () => {
    try {
      setList(((await api.bundles()) as { bundles: Installed[] }).bundles);
      setError(null);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  }, [api]);
  useLive(api.eventsUrl, load, { pollMs: 10_000 });

  const remove = async () => {
    if (!removing) return;
    setRemoveBusy(true);
    setRemoveError(null);
    try {
      await api.removeBundle(removing.name);
      setNotice(`Removed the bundle ${removing.name} ${removing.version} and what it added.`);
      setRemoving(null);
      void load();
    } catch (e) {
      setRemoveError(e instanceof ApiError ? e.message : String(e));
    } finally {
      setRemoveBusy(false);
    }
  };

  return (
    <section id="bundles" class="page" aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          Bundles
        </h1>
        <p class="muted">A bundle is a whole stack in one file: its apps, their images (verified by digest, kept on the device), networks and volumes. Import one on a device without a way to a registry; upgrading keeps its volumes, removing takes out what it added and nothing else.</p>
      </div>
      {error && (
        <div class="banner banner-error" role="alert">
          Could not load the bundles: {error}
        </div>
      )}
      {notice && (
        <p class="notice" role="status" id="bundle-notice">
          {notice}
        </p>
      )}
      <section class="card card-wide" aria-labelledby="bundles-title">
        <h2 id="bundles-title">Bundles on this device</h2>
        <RoleGate need="admin">
          <div class="form-actions">
            <button type="button" class="button primary" id="bundle-import" onClick={() => (setImporting({ upgrade: null }), setNotice(null))}>
              Import bundle
            </button>
          </div>
        </RoleGate>
        {list && list.length === 0 && <p class="muted">No bundles imported yet.</p>}
        {list && list.length > 0 && (
          <DataTable id="bundle-list" label="Bundles" columns={["Name", "Version", "Description", "Parameters", "Objects", "Imported", ""]}>
            {list.map((b) => (
              <tr key={b.name} data-bundle={b.name}>
                <th scope="row">{b.name}</th>
                <td>{b.version}</td>
                <td>{b.description}</td>
                <td>
                  {Object.entries(b.params).map(([k, v]) => (
                    <div key={k}>
                      <span class="muted">{k}</span> <span class="mono">{v}</span>
                    </div>
                  ))}
                </td>
                <td>{count(b.objects)}</td>
                <td>
                  {new Date(b.installedAt).toLocaleString()} by {b.installedBy}
                </td>
                <td>
                  <RoleGate need="admin">
                    <button type="button" class="button secondary small" aria-label={`Upgrade bundle ${b.name}`} onClick={() => (setImporting({ upgrade: b.name }), setNotice(null))}>
                      Upgrade
                    </button>{" "}
                    <button type="button" class="button secondary small" aria-label={`Remove bundle ${b.name}`} onClick={() => (setRemoving(b), setRemoveError(null), setNotice(null))}>
                      Remove
                    </button>
                  </RoleGate>
                </td>
              </tr>
            ))}
          </DataTable>
        )}
      </section>
      {importing && (
        <ImportDialog
          api={api}
          upgrade={importing.upgrade}
          onDone={(p) => {
            setImporting(null);
            setNotice(`${p.upgrade ? `Upgraded ${p.bundle.name} from ${p.upgrade.from} to ${p.bundle.version}` : `Imported ${p.bundle.name} ${p.bundle.version}`}: config version ${p.configVersion}.`);
            void load();
          }}
          onCancel={() => setImporting(null)}
        />
      )}
      {removing && (
        <ConfirmDialog id="bundle-remove" title={`Remove the bundle “${removing.name}”?`} confirmLabel="Remove" danger busy={removeBusy} error={removeError} onConfirm={remove} onCancel={() => setRemoving(null)}>
          <p>
            Its {count(removing.objects)} objects (apps, volumes with their data, networks) are removed from the configuration, and its images from the device when nothing else uses them. Nothing else changes.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}

function ImportDialog({ api, upgrade, onDone, onCancel }: { api: ApiClient; upgrade: string | null; onDone: (p: BundlePlan) => void; onCancel: () => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [progress, setProgress] = useState<{ sent: number; total: number } | null>(null);
  const [plan, setPlan] = useState<BundlePlan | null>(null);
  const [values, setValues] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const abort = useRef<AbortController | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  /** The values the shown plan was made for, and the newest check asked (an older answer is dropped). */
  const [checked, setChecked] = useState<Record<string, string>>({});
  const seq = useRef(0);

  useEffect(() => () => abort.current?.abort(), []);

  const upload = async (e: Event) => {
    e.preventDefault();
    if (!file) return setError("Choose a bundle file first.");
    setError(null);
    const ac = new AbortController();
    abort.current = ac;
    setProgress({ sent: 0, total: file.size });
    try {
      const p = await uploadBundle(api.bundleUploadUrl, file, (sent, total) => setProgress({ sent, total }), ac.signal);
      setPlan(p);
      setValues(Object.fromEntries(p.parameters.map((x) => [x.name, x.value ?? (x.kind === "serial" || x.kind === "port" ? (x.choices?.[0] ?? "") : "")])));
      // The first answer asked with no values: ask again with what the fields show.
      void check(p.staged, Object.fromEntries(p.parameters.map((x) => [x.name, x.value ?? (x.kind === "serial" || x.kind === "port" ? (x.choices?.[0] ?? "") : "")])));
    } catch (err) {
      setError(err instanceof ApiError ? [err.message, ...(err.problems ?? []).slice(0, 5).map((p) => `${p.path}: ${p.message}`)].join(" ") : String(err));
    } finally {
      abort.current = null;
      setProgress(null);
    }
  };

  const check = async (staged: string, v: Record<string, string>) => {
    const n = ++seq.current;
    try {
      const p = (await api.inspectBundle(staged, v)) as unknown as BundlePlan;
      if (n !== seq.current) return;
      setPlan(p);
      setChecked(v);
      setError(null);
    } catch (err) {
      if (n === seq.current) setError(err instanceof ApiError ? err.message : String(err));
    }
  };

  const set = (name: string, value: string, now = true) => {
    const v = { ...values, [name]: value };
    setValues(v);
    if (!plan) return;
    if (timer.current) clearTimeout(timer.current);
    timer.current = setTimeout(() => void check(plan.staged, v), now ? 0 : 400);
  };

  const apply = async () => {
    if (!plan) return;
    setBusy(true);
    setError(null);
    try {
      onDone((await api.applyBundle(plan.staged, values)) as unknown as BundlePlan);
    } catch (err) {
      setError(err instanceof ApiError ? [err.message].join(" ") : String(err));
    } finally {
      setBusy(false);
    }
  };

  // Problems of a parameter show at its field: the page's own check of what is typed first, else the device's
  // answer for that value; the rest in the summary. Apply waits for the device's answer to the values shown.
  const problems: FieldProblem[] = [];
  const stale = (plan?.parameters ?? []).some((x) => (values[x.name] ?? "") !== (checked[x.name] ?? ""));
  for (const x of plan?.parameters ?? []) {
    const local = x.kind === "subnet" && values[x.name] ? subnetSyntaxProblem(values[x.name]!) : null;
    if (local) problems.push({ field: x.name, message: local });
  }
  for (const p of plan?.problems ?? []) {
    if (!p.path.startsWith("params.")) problems.push({ field: "", message: `${p.path ? `${p.path}: ` : ""}${p.message}` });
    else {
      const field = p.path.slice(7);
      if ((values[field] ?? "") === (checked[field] ?? "") && !problems.some((q) => q.field === field)) problems.push({ field, message: p.message });
    }
  }
  const f = fieldHelpers(problems, (field) => `bundle-param-${field}`);
  const pct = progress && progress.total > 0 ? Math.floor((100 * progress.sent) / progress.total) : 0;
  const title = upgrade ? `Upgrade the bundle “${upgrade}”` : "Import a bundle";

  return (
    <Modal id="bundle-dialog" labelledBy="bundle-dialog-title" onCancel={() => !busy && onCancel()}>
      <h2 id="bundle-dialog-title" tabIndex={-1}>
        {title}
      </h2>
      <div class="modal-body">
        {!plan && (
          <form class="form" onSubmit={upload} noValidate>
            <div class="field">
              <label for="bundle-file">Bundle file</label>
              <p class="field-hint" id="bundle-file-hint">
                Made with <span class="mono">evebox bundle build</span>. It is checked (every image against its sha256, its signature) before anything changes.
              </p>
              <input id="bundle-file" type="file" class="input" aria-describedby="bundle-file-hint" disabled={!!progress} onChange={(e) => (setFile(e.currentTarget.files?.[0] ?? null), setError(null))} />
            </div>
            {progress && (
              <p class="app-progress" id="bundle-progress">
                <progress max={100} value={pct} aria-label="Bundle upload progress" />
                <span>
                  Uploading and verifying: {pct} % ({size(progress.sent)} of {size(progress.total)})
                </span>
              </p>
            )}
            {error && (
              <div class="form-error" role="alert" id="bundle-error">
                <p>{error}</p>
              </div>
            )}
            <div class="form-actions">
              <button type="submit" class="button primary" id="bundle-upload" disabled={!!progress}>
                Upload and check
              </button>
              <button type="button" class="button secondary" onClick={() => (abort.current?.abort(), onCancel())}>
                Cancel
              </button>
            </div>
          </form>
        )}
        {plan && (
          <form class="form" id="bundle-plan" onSubmit={(e) => (e.preventDefault(), void apply())} noValidate>
            <p>
              <strong id="bundle-name">
                {plan.bundle.name} {plan.bundle.version}
              </strong>
              {plan.upgrade && <span id="bundle-upgrade"> — upgrade from {plan.upgrade.from}: volumes are kept</span>}
            </p>
            <p class="muted">{plan.bundle.description}</p>
            {upgrade && plan.bundle.name !== upgrade && (
              <p class="notice" role="status" id="bundle-other">
                This file is the bundle {plan.bundle.name}, not {upgrade}: applying it adds another bundle.
              </p>
            )}
            <p id="bundle-signature">
              {plan.signature.status === "verified" ? `Signed by ${plan.signature.key?.name} (trusted).` : plan.signature.status === "untrusted" ? "Signed by a key this device does not trust." : "Not signed."}{" "}
              {plan.images.length} image(s) verified by their sha256 ({size(plan.images.reduce((n, i) => n + i.size, 0))}).
            </p>
            {plan.parameters.map((x) => (
              <ParamField key={x.name} p={x} value={values[x.name] ?? ""} f={f} onChange={(v, now) => set(x.name, v, now)} />
            ))}
            <ProblemSummary id="bundle-problems" problems={problems} error={error} f={f} />
            {plan.plan && !stale && problems.length === 0 && <PlanList plan={plan.plan} />}
            <div class="form-actions">
              <button type="submit" class="button primary" id="bundle-apply" disabled={busy || stale || problems.length > 0 || !plan.plan}>
                {busy ? "Applying…" : plan.upgrade ? "Upgrade" : "Apply"}
              </button>
              <button type="button" class="button secondary" disabled={busy} onClick={onCancel}>
                Cancel
              </button>
            </div>
          </form>
        )}
      </div>
    </Modal>
  );
}

function ParamField({ p, value, f, onChange }: { p: BundleParam; value: string; f: ReturnType<typeof fieldHelpers>; onChange: (v: string, now: boolean) => void }) {
  const hint = p.kind === "subnet" ? "An IPv4 subnet (10.77.0.0/24) no other network uses." : p.kind === "serial" ? "A serial port of this device." : p.kind === "port" ? "uplink: the device's management ports." : p.pattern ? `Matching ${p.pattern}.` : "";
  return (
    <div class="field" data-param={p.name}>
      <label for={f.domId(p.name)}>{p.label}</label>
      <p class="field-hint" id={`${f.domId(p.name)}-hint`}>
        {hint}
      </p>
      {p.choices ? (
        <select class="input" {...f.props(p.name, true)} value={value} onChange={(e) => onChange(e.currentTarget.value, true)}>
          {p.choices.length === 0 && <option value="">(none on this device)</option>}
          {p.choices.map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
      ) : (
        <input class="input" {...f.props(p.name, true)} value={value} onInput={(e) => onChange(e.currentTarget.value, false)} />
      )}
      {f.error(p.name)}
    </div>
  );
}

function PlanList({ plan }: { plan: NonNullable<BundlePlan["plan"]> }) {
  const row = (what: string, refs: BundleRef[]) =>
    refs.length > 0 && (
      <li>
        {what}: {refs.map((r) => `${r.kind} ${r.name ?? r.id}`).join(", ")}
      </li>
    );
  return (
    <div id="bundle-plan-list">
      <p>What it will do:</p>
      <ul>
        {row("Add", plan.added)}
        {row("Change", plan.changed)}
        {row("Remove", plan.removed)}
        {row("Keep as it is", plan.unchanged)}
      </ul>
    </div>
  );
}
