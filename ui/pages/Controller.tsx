// The Controller page: how the device stands with its EVE controller (connection, last contact, last config,
// identity, outbox), and the form that enrols it — controller URL and root certificate — so an air-gapped device
// can be put under a controller later. Reads GET /api/v1/controller, writes PUT /api/v1/controller.
import { useCallback, useEffect, useState } from "preact/hooks";
import { RoleGate } from "../role";
import { ApiError, type ApiClient } from "../api";
import { formatDateTime, locSummary, shortHash } from "../format";

const POLL_MS = 3_000;

interface ControllerStatus {
  mode: "local" | "managed";
  url: string | null;
  connection: "not-configured" | "connecting" | "onboarding" | "online" | "offline" | "error";
  detail: string;
  lastContact: string | null;
  lastError: { phase: string; message: string; at: string } | null;
  deviceUuid: string | null;
  registration: string | null;
  attestation: { state: string; at: string | null; detail: string | null };
  config: {
    hash: string | null;
    timestamp: string | null;
    appliedAt: string | null;
    fromCheckpoint: boolean;
    lastReceivedAt: string | null;
    refused: { hash: string; reason: string; at: string } | null;
  };
  identity: { serial: string; softSerial: string; fingerprint: string; onboardingCertificate: boolean };
  rootCertificate: { present: boolean; subjects: string[] };
  /** The Local Operator Console (loc_config): the config's source while the controller cannot be reached. */
  loc?: { url: string | null; configFromLoc: boolean; lastContact: string | null; lastError: { message: string; at: string } | null };
  outbox: {
    messages: number;
    bytes: number;
    maxBytes: number;
    oldest: string | null;
    dropped: { metrics: number; logs: number; flowlog: number };
    droppedBytes: number;
    lastDroppedAt: string | null;
    superseded: number;
    rejected: number;
    sent: number;
  };
}

const CONNECTION: Record<ControllerStatus["connection"], { label: string; badge: string }> = {
  "not-configured": { label: "Local mode", badge: "badge-neutral" },
  connecting: { label: "Connecting", badge: "badge-info" },
  onboarding: { label: "Onboarding", badge: "badge-info" },
  online: { label: "Online", badge: "badge-ok" },
  offline: { label: "Offline", badge: "badge-warn" },
  error: { label: "Error", badge: "badge-error" },
};

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function when(iso: string | null): string {
  return iso ? formatDateTime(iso) : "never";
}

export function Controller({ api }: { api: ApiClient }) {
  const [status, setStatus] = useState<ControllerStatus | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [url, setUrl] = useState("");
  const [root, setRoot] = useState("");
  const [saving, setSaving] = useState(false);
  const [formError, setFormError] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);

  const refresh = useCallback(async () => {
    try {
      setStatus((await api.controller()) as ControllerStatus);
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    }
  }, [api]);

  useEffect(() => {
    void refresh();
    const t = setInterval(() => void refresh(), POLL_MS);
    return () => clearInterval(t);
  }, [refresh]);

  const submit = async (ev: Event) => {
    ev.preventDefault();
    setFormError(null);
    setSaved(false);
    const body: Record<string, string> = {};
    if (url.trim()) body.url = url.trim();
    if (root.trim()) body.rootCertificate = root;
    if (!body.url && !body.rootCertificate) {
      setFormError("Enter the controller URL, the root certificate, or both.");
      return;
    }
    setSaving(true);
    try {
      setStatus((await api.configureController(body)) as ControllerStatus);
      setSaved(true);
      setRoot("");
    } catch (e) {
      setFormError((e as Error).message);
    } finally {
      setSaving(false);
    }
  };

  if (!status) {
    return error ? (
      <div class="banner-error" role="alert">
        <p>{error}</p>
      </div>
    ) : (
      <p class="muted" role="status">
        Loading the controller status…
      </p>
    );
  }
  const conn = CONNECTION[status.connection];
  const o = status.outbox;
  const lost = o.dropped.metrics + o.dropped.logs + o.dropped.flowlog;

  return (
    <div class="grid">
      {error && (
        <div class="banner-error card-wide" role="alert">
          <p>{error}</p>
        </div>
      )}
      <section class="card" aria-labelledby="link-heading">
        <h2 id="link-heading">Connection</h2>
        <dl class="facts">
          <div>
            <dt>State</dt>
            <dd id="controller-state">
              <span class={`badge ${conn.badge}`}>{conn.label}</span> {status.mode === "managed" ? "managed by its controller" : "configured from this console"}
            </dd>
          </div>
          <div>
            <dt>Controller</dt>
            <dd id="controller-url">{status.url ? <code>{status.url}</code> : <span class="muted">none</span>}</dd>
          </div>
          <div>
            <dt>Last contact</dt>
            <dd id="controller-last-contact">{when(status.lastContact)}</dd>
          </div>
          {status.deviceUuid && (
            <div>
              <dt>Device UUID</dt>
              <dd>
                <code>{status.deviceUuid}</code>
              </dd>
            </div>
          )}
          {status.registration && (
            <div>
              <dt>Registration</dt>
              <dd>{status.registration}</dd>
            </div>
          )}
          {status.attestation.state !== "not-needed" && (
            <div>
              <dt>Attestation</dt>
              <dd>
                {status.attestation.state} {status.attestation.detail && <span class="muted">({status.attestation.detail})</span>}
              </dd>
            </div>
          )}
          {status.loc?.url && (
            <div>
              <dt>Local Operator Console</dt>
              <dd id="controller-loc">
                <code>{status.loc.url}</code> <span class={status.loc.lastError ? "badge badge-warn" : "muted"}>{locSummary(status.loc, status.connection === "online")}</span>
              </dd>
            </div>
          )}
          {status.lastError && status.connection !== "online" && (
            <div>
              <dt>Last error</dt>
              <dd id="controller-error">
                <span class="badge badge-error">{status.lastError.phase}</span> {status.lastError.message}{" "}
                <span class="muted">({formatDateTime(status.lastError.at)})</span>
              </dd>
            </div>
          )}
        </dl>
      </section>

      <section class="card" aria-labelledby="config-heading">
        <h2 id="config-heading">Last config</h2>
        <dl class="facts">
          <div>
            <dt>Hash</dt>
            <dd id="controller-config-hash">{status.config.hash ? <code title={status.config.hash}>{shortHash(status.config.hash)}</code> : <span class="muted">none yet</span>}</dd>
          </div>
          <div>
            <dt>Applied</dt>
            <dd>
              {when(status.config.appliedAt)}
              {status.config.fromCheckpoint && <span class="muted"> (from the checkpoint at start)</span>}
            </dd>
          </div>
          <div>
            <dt>Last asked</dt>
            <dd>{when(status.config.lastReceivedAt)}</dd>
          </div>
          {status.config.refused && (
            <div>
              <dt>Refused</dt>
              <dd id="controller-refused">
                <span class="badge badge-error">refused</span> {status.config.refused.reason} <span class="muted">({formatDateTime(status.config.refused.at)}); the running config is unchanged</span>
              </dd>
            </div>
          )}
        </dl>
      </section>

      <section class="card" aria-labelledby="identity-heading">
        <h2 id="identity-heading">Identity</h2>
        <dl class="facts">
          <div>
            <dt>Serial</dt>
            <dd>{status.identity.serial || <span class="muted">not readable</span>}</dd>
          </div>
          <div>
            <dt>Soft serial</dt>
            <dd id="controller-soft-serial">
              <code>{status.identity.softSerial}</code>
            </dd>
          </div>
          <div>
            <dt>Device certificate</dt>
            <dd id="controller-fingerprint">
              <code class="mono" style="word-break: break-all">
                {status.identity.fingerprint}
              </code>{" "}
              <span class="muted">(SHA-256)</span>
            </dd>
          </div>
          <div>
            <dt>Onboarding certificate</dt>
            <dd>{status.identity.onboardingCertificate ? "present" : <span class="muted">none: add the device certificate in the controller</span>}</dd>
          </div>
        </dl>
      </section>

      <section class="card" aria-labelledby="outbox-heading">
        <h2 id="outbox-heading">Outbox</h2>
        <dl class="facts">
          <div>
            <dt>Waiting</dt>
            <dd id="controller-outbox-depth">
              {o.messages} {o.messages === 1 ? "message" : "messages"}, {bytes(o.bytes)} of {bytes(o.maxBytes)}
              {o.oldest && <span class="muted"> · oldest {formatDateTime(o.oldest)}</span>}
            </dd>
          </div>
          <div>
            <dt>Lost</dt>
            <dd id="controller-outbox-lost">
              {lost === 0 ? (
                "none"
              ) : (
                <>
                  <span class="badge badge-warn">{lost}</span> dropped to stay within the bound ({o.dropped.metrics} metrics, {o.dropped.logs} log bundles
                  {o.dropped.flowlog ? `, ${o.dropped.flowlog} flow logs` : ""}; {bytes(o.droppedBytes)})
                </>
              )}
            </dd>
          </div>
          <div>
            <dt>Sent</dt>
            <dd>
              {o.sent} {o.rejected > 0 && <span class="muted">· {o.rejected} refused by the controller</span>}
            </dd>
          </div>
        </dl>
      </section>

      <section class="card card-wide" aria-labelledby="enrol-heading">
        <h2 id="enrol-heading">{status.mode === "managed" ? "Change the controller" : "Connect to a controller"}</h2>
        <p class="muted">
          While a controller manages the device, it is the authority for the configuration: local edits are refused, local start, stop, restart and
          purge still work. The root certificate is the only one trusted for the controller's TLS and signatures.
        </p>
        <RoleGate need="admin">
        <form class="form" onSubmit={submit} noValidate>
          <div class="field">
            <label for="controller-url-input">Controller URL</label>
            <input
              id="controller-url-input"
              class="input mono"
              type="url"
              placeholder="https://controller.example:443"
              value={url}
              onInput={(e) => setUrl((e.target as HTMLInputElement).value)}
            />
          </div>
          <div class="field">
            <label for="controller-root-input">Root certificate (PEM)</label>
            <textarea
              id="controller-root-input"
              class="input mono"
              rows={6}
              placeholder="-----BEGIN CERTIFICATE-----"
              value={root}
              onInput={(e) => setRoot((e.target as HTMLTextAreaElement).value)}
            />
            <div class="field-hint">
              {status.rootCertificate.present ? `Now trusted: ${status.rootCertificate.subjects.join("; ")}` : "No root certificate yet: the device cannot connect without one."}
            </div>
          </div>
          {formError && (
            <div class="form-error" role="alert">
              <p>{formError}</p>
            </div>
          )}
          {saved && (
            <p class="notice" role="status">
              Saved. The device is connecting.
            </p>
          )}
          <div class="form-actions">
            <button type="submit" class="button primary" disabled={saving}>
              {saving ? "Saving…" : "Save"}
            </button>
          </div>
        </form>
        </RoleGate>
      </section>
    </div>
  );
}
