import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, type ApiClient, type DeviceStatus, type PartState } from "../api";
import { formatDateTime, formatUptime, shortHash } from "../format";
import { useNow } from "../hooks";
import { Link } from "../router";

/** Poll period when the event stream is down; with the stream up, a slow safety poll only. */
const POLL_MS = 5_000;
const SAFETY_POLL_MS = 30_000;
const RECONNECT_MS = 10_000;

const STATE_LABELS: Record<PartState, string> = {
  ok: "OK",
  degraded: "Degraded",
  error: "Error",
  idle: "Idle",
};

export interface DashboardProps {
  api: ApiClient;
  /** Tells the frame the device's current name, which the status may have changed. */
  onDeviceName: (name: string) => void;
}

export function Dashboard({ api, onDeviceName }: DashboardProps) {
  const [status, setStatus] = useState<DeviceStatus | null>(null);
  const [fetchedAt, setFetchedAt] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [live, setLive] = useState(false);
  const now = useNow(1000);
  const reportName = useRef(onDeviceName);
  reportName.current = onDeviceName;

  useEffect(() => {
    let disposed = false;
    let inFlight = false;
    let again = false;
    let streamOpen = false;
    let lastRefresh = 0;
    let source: EventSource | null = null;
    let reconnectTimer: ReturnType<typeof setTimeout> | undefined;

    // Refreshes never overlap; a burst of events while one is running costs exactly one more.
    const refresh = async (): Promise<void> => {
      if (inFlight) {
        again = true;
        return;
      }
      inFlight = true;
      lastRefresh = Date.now();
      try {
        const next = await api.status();
        if (disposed) return;
        setStatus(next);
        setFetchedAt(Date.now());
        setError(null);
        if (next.device?.name) reportName.current(next.device.name);
      } catch (e) {
        // A 401 has already sent the app to sign in; anything else is shown, keeping the last known state.
        if (!disposed && !(e instanceof ApiError && e.status === 401)) {
          setError(e instanceof Error ? e.message : String(e));
        }
      } finally {
        inFlight = false;
        if (again && !disposed) {
          again = false;
          void refresh();
        }
      }
    };

    const connect = () => {
      if (disposed || typeof EventSource === "undefined") return;
      const stream = new EventSource(api.eventsUrl);
      source = stream;
      stream.onopen = () => {
        streamOpen = true;
        setLive(true);
        void refresh(); // catch up on whatever happened while disconnected
      };
      stream.onmessage = () => void refresh();
      stream.onerror = () => {
        streamOpen = false;
        setLive(false);
        // EventSource retries by itself unless the server refused the stream; then try again later.
        if (stream.readyState === EventSource.CLOSED) {
          stream.close();
          reconnectTimer = setTimeout(connect, RECONNECT_MS);
        }
      };
    };

    const poll = setInterval(() => {
      if (document.hidden) return;
      const period = streamOpen ? SAFETY_POLL_MS : POLL_MS;
      if (Date.now() - lastRefresh >= period - 250) void refresh();
    }, POLL_MS);
    const onVisible = () => {
      if (!document.hidden) void refresh();
    };
    document.addEventListener("visibilitychange", onVisible);

    void refresh();
    connect();
    return () => {
      disposed = true;
      clearInterval(poll);
      clearTimeout(reconnectTimer);
      document.removeEventListener("visibilitychange", onVisible);
      source?.close();
    };
  }, [api]);

  return (
    <section id="dashboard" class="page" aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          Dashboard
        </h1>
        {status && (
          <p class="muted live-state">
            <span class={live ? "dot dot-live" : "dot"} aria-hidden="true" />
            {live ? "Live updates" : "Refreshing every 5 s"} · updated {new Date(fetchedAt).toLocaleTimeString()}
          </p>
        )}
      </div>
      {error && (
        <div class="banner banner-error" role="alert">
          Could not refresh the device status: {error}
          {status ? " Showing the last known state." : " Retrying every few seconds."}
        </div>
      )}
      {!status && !error && (
        <p class="muted" role="status">
          Loading device status…
        </p>
      )}
      {status && <StatusView status={status} uptimeSeconds={uptimeAt(status, fetchedAt, now)} />}
    </section>
  );
}

function uptimeAt(status: DeviceStatus, fetchedAt: number, now: number): number {
  return status.device.uptimeSeconds + Math.max(0, now - fetchedAt) / 1000;
}

function StatusView({ status, uptimeSeconds }: { status: DeviceStatus; uptimeSeconds: number }) {
  const { device } = status;
  const parts = status.parts ?? [];
  const apps = status.apps ?? [];
  const appsWithErrors = apps.filter((app) => app.error).length;
  const networks = (status.networkInstances ?? []).length;
  const volumes = (status.volumes ?? []).length;
  const contentTrees = (status.contentTrees ?? []).length;
  const troubled = parts.filter((p) => p.state === "error" || p.state === "degraded").length;

  return (
    <div class="grid">
      <section class="card" aria-labelledby="device-heading">
        <h2 id="device-heading">Device</h2>
        <dl class="facts">
          <div>
            <dt>Name</dt>
            <dd id="device-name">{device.name}</dd>
          </div>
          <div>
            <dt>Version</dt>
            <dd id="device-version">{device.version}</dd>
          </div>
          <div>
            <dt>Mode</dt>
            <dd id="device-mode">
              {device.mode === "managed" ? (
                <>
                  <span class="badge badge-info">Managed</span> configured by its controller
                </>
              ) : (
                <>
                  <span class="badge badge-neutral">Local</span> configured from this console
                </>
              )}
            </dd>
          </div>
          <div>
            <dt>Uptime</dt>
            <dd id="device-uptime">{formatUptime(uptimeSeconds)}</dd>
          </div>
          <div>
            <dt>Started</dt>
            <dd>
              <time dateTime={device.startedAt}>{formatDateTime(device.startedAt)}</time>
            </dd>
          </div>
          <div>
            <dt>Host</dt>
            <dd>
              {device.hostname} <span class="muted">({device.arch})</span>
            </dd>
          </div>
          <div>
            <dt>Configuration</dt>
            <dd id="device-config">
              {device.configVersion === null ? (
                <span class="muted">No configuration yet</span>
              ) : (
                <>
                  Version {device.configVersion}
                  {device.configHash && (
                    <>
                      {" · "}
                      <code title={device.configHash}>{shortHash(device.configHash)}</code>
                    </>
                  )}
                </>
              )}
            </dd>
          </div>
        </dl>
      </section>

      <section class="card" aria-labelledby="workloads-heading">
        <h2 id="workloads-heading">Workloads</h2>
        <ul class="counts">
          <li>
            <Link href="/apps">
              <span class="count" id="count-apps">
                {apps.length}
              </span>
              <span class="count-label">{plural(apps.length, "app", "apps")}</span>
            </Link>
            {appsWithErrors > 0 && <span class="badge badge-error">{appsWithErrors} with errors</span>}
          </li>
          <li>
            <Link href="/networks">
              <span class="count" id="count-networks">
                {networks}
              </span>
              <span class="count-label">{plural(networks, "network instance", "network instances")}</span>
            </Link>
          </li>
          <li>
            <Link href="/storage">
              <span class="count" id="count-volumes">
                {volumes}
              </span>
              <span class="count-label">{plural(volumes, "volume", "volumes")}</span>
            </Link>
          </li>
          <li>
            <Link href="/storage">
              <span class="count" id="count-content-trees">
                {contentTrees}
              </span>
              <span class="count-label">{plural(contentTrees, "content tree", "content trees")}</span>
            </Link>
          </li>
        </ul>
      </section>

      <section class="card card-wide" aria-labelledby="parts-heading">
        <h2 id="parts-heading">System parts</h2>
        <p class={troubled > 0 ? "summary summary-warn" : "summary"}>
          {parts.length === 0
            ? "No parts reported."
            : troubled === 0
              ? "All parts are working."
              : `${troubled} ${troubled === 1 ? "part needs" : "parts need"} attention.`}
        </p>
        {parts.length > 0 && (
          <div class="table-wrap" tabIndex={0} role="region" aria-labelledby="parts-heading">
            <table class="table" id="parts">
              <thead>
                <tr>
                  <th scope="col">Part</th>
                  <th scope="col">State</th>
                  <th scope="col">Detail</th>
                </tr>
              </thead>
              <tbody>
                {parts.map((part) => (
                  <tr key={part.name} data-part={part.name}>
                    <th scope="row">{part.name}</th>
                    <td>
                      <StateBadge state={part.state} />
                    </td>
                    <td class="detail">{part.detail || <span class="muted">—</span>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </div>
  );
}

function plural(n: number, one: string, many: string): string {
  return n === 1 ? one : many;
}

function StateBadge({ state }: { state: PartState }) {
  const label = STATE_LABELS[state] ?? String(state);
  const tone = state === "ok" ? "ok" : state === "degraded" ? "warn" : state === "error" ? "error" : "neutral";
  return <span class={`badge badge-${tone}`}>{label}</span>;
}
