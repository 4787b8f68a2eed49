import { useEffect, useRef } from "preact/hooks";
import type { ApiClient, DeviceStatus, PartState } from "../api";
import { useLiveStatus } from "../components/useLiveStatus";
import { DataTable } from "../components/DataTable";
import { formatDateTime, formatUptime, shortHash } from "../format";
import { useNow } from "../hooks";
import { Link } from "../router";
import { ActivityEntries, ActivityNow, useActivity } from "../components/ActivityList";
import { MetricsCharts } from "../components/MetricsCharts";

/** With the event stream up, a slow safety poll only (down: every 5 s, as everywhere). */
const SAFETY_POLL_MS = 30_000;

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
  const { status, fetchedAt, error, live } = useLiveStatus(api, { safetyPollMs: SAFETY_POLL_MS });
  const now = useNow(1000);
  const reportName = useRef(onDeviceName);
  reportName.current = onDeviceName;
  const name = status?.device?.name;
  useEffect(() => {
    if (name) reportName.current(name);
  }, [name, fetchedAt]);

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
      {status && (
        <div class="grid dashboard-more">
          <MetricsCharts api={api} object="device" id="device-charts" heading="Device resources" />
          <RecentActivity api={api} />
        </div>
      )}
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
          <DataTable id="parts" labelledBy="parts-heading" columns={["Part", "State", "Detail"]}>
                {parts.map((part) => (
                  <tr key={part.name} data-part={part.name}>
                    <th scope="row">{part.name}</th>
                    <td>
                      <StateBadge state={part.state} />
                    </td>
                    <td class="detail">{part.detail || <span class="muted">—</span>}</td>
                  </tr>
                ))}
              </DataTable>
        )}
      </section>
    </div>
  );
}

/** The latest entries of the Activity log, live, with what is under way. */
function RecentActivity({ api }: { api: ApiClient }) {
  const { activity, error } = useActivity(api, 8);
  return (
    <section class="card card-wide" id="dashboard-activity" aria-labelledby="activity-heading">
      <div class="section-head">
        <h2 id="activity-heading">Activity</h2>
        <Link href="/activity">All activity</Link>
      </div>
      {error && <p class="form-error" role="alert">Could not load the activity: {error}</p>}
      {activity && (
        <>
          {(activity.now.downloads.length > 0 || activity.now.apps.length > 0) && <ActivityNow now={activity.now} />}
          <ActivityEntries entries={activity.entries} id="dashboard-activity-list" />
        </>
      )}
    </section>
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
