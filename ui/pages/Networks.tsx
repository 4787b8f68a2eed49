// The Networks page: the device's network instances (Local: NAT, DHCP, DNS; Switch: a bridge on a port), each
// with its state, bridge, addresses, uplink port, the app interfaces on it (with a link to each app's firewall)
// and its DHCP leases. Reads GET /api/v1/networks, refreshed every 5 s and on device events.
import { useCallback, useState } from "preact/hooks";
import { ApiError, type ApiClient } from "../api";
import { DataTable } from "../components/DataTable";
import { useLive } from "../hooks";
import { Link } from "../router";

const POLL_MS = 5_000;

interface NetworkInterface {
  app: string;
  appName: string;
  name: string;
  ifname: string;
  mac: string;
  ip: string | null;
}

interface Lease {
  expires: number;
  mac: string;
  ip: string;
  hostname: string | null;
}

interface NetworkInstance {
  uuid: string;
  name: string;
  state: string;
  error: string | null;
  kind?: "Local" | "Switch";
  bridge?: string;
  subnet?: string | null;
  gateway?: string | null;
  dhcpRange?: { start: string; end: string } | null;
  uplink?: { label: string; ifname: string } | null;
  mtu?: number;
  dnsServers?: string[];
  flowlog?: boolean;
  interfaces?: NetworkInterface[];
  leases: Lease[];
}

const STATE_BADGE: Record<string, string> = { ONLINE: "badge-ok", INIT: "badge-info", INITIAL: "badge-info", ERROR: "badge-error" };

export function Networks({ api }: { api: ApiClient }) {
  const [instances, setInstances] = useState<NetworkInstance[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const got = (await api.networks()) as unknown as NetworkInstance[] | undefined;
      setInstances(got ?? []);
      setError(null);
    } catch (e) {
      // A 401 has sent the app to sign in already.
      if (!(e instanceof ApiError && e.status === 401)) setError(e instanceof ApiError && e.status !== 0 ? e.message : "The device could not be reached.");
    }
  }, [api]);
  useLive(api.eventsUrl, load, { pollMs: POLL_MS });

  return (
    <section id="networks" class="page" aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          Networks
        </h1>
        <p class="muted">Network instances are part of the device's configuration: a Local one gives its apps NAT, DHCP and DNS; a Switch one puts them on a device port's network.</p>
      </div>
      {error && (
        <div class="banner banner-error" role="alert">
          Could not load the networks: {error}
        </div>
      )}
      {!instances && !error && <p class="muted">Loading…</p>}
      {instances && instances.length === 0 && <p class="empty card">No network instances. Apps with no interfaces have no network.</p>}
      {(instances ?? []).map((ni) => (
        <section key={ni.uuid} class="card card-wide network" aria-labelledby={`ni-${ni.uuid}`} data-network={ni.name}>
          <div class="section-head">
            <h2 id={`ni-${ni.uuid}`}>
              {ni.name} {ni.kind && <span class="badge badge-neutral">{ni.kind}</span>} <span class={`badge ${STATE_BADGE[ni.state] ?? "badge-neutral"}`}>{ni.state}</span>
            </h2>
          </div>
          {ni.error && (
            <p class="form-error" role="alert">
              {ni.error}
            </p>
          )}
          <dl class="facts">
            {ni.bridge && (
              <>
                <dt>Bridge</dt>
                <dd class="mono">{ni.bridge}</dd>
              </>
            )}
            {ni.subnet && (
              <>
                <dt>Subnet</dt>
                <dd class="mono">
                  {ni.subnet}, gateway {ni.gateway}
                </dd>
              </>
            )}
            {ni.dhcpRange && (
              <>
                <dt>DHCP range</dt>
                <dd class="mono">
                  {ni.dhcpRange.start} – {ni.dhcpRange.end}
                </dd>
              </>
            )}
            <dt>{ni.kind === "Switch" ? "Port" : "Uplink"}</dt>
            <dd class="mono">{ni.uplink ? `${ni.uplink.label}${ni.uplink.ifname !== ni.uplink.label ? ` (${ni.uplink.ifname})` : ""}` : ni.kind === "Local" ? "none (air-gapped: no NAT)" : "—"}</dd>
            {ni.dnsServers && ni.dnsServers.length > 0 && (
              <>
                <dt>Upstream DNS</dt>
                <dd class="mono">{ni.dnsServers.join(", ")}</dd>
              </>
            )}
            {ni.mtu && (
              <>
                <dt>MTU</dt>
                <dd>{ni.mtu}</dd>
              </>
            )}
            {ni.flowlog === false && (
              <>
                <dt>Flow log</dt>
                <dd>off</dd>
              </>
            )}
          </dl>
          <h3>App interfaces</h3>
          {(ni.interfaces ?? []).length === 0 ? (
            <p class="muted">No app is on this network.</p>
          ) : (
            <DataTable label={`App interfaces on ${ni.name}`} columns={["App", "Interface", "Address", "MAC", "Host side", "Firewall"]}>
                  {(ni.interfaces ?? []).map((i) => (
                    <tr key={`${i.app}/${i.name}`} data-app={i.appName}>
                      <th scope="row">
                        <Link href={`/apps/${encodeURIComponent(i.app)}`}>{i.appName}</Link>
                      </th>
                      <td class="mono">{i.name}</td>
                      <td class="mono">{i.ip ?? "—"}</td>
                      <td class="mono">{i.mac}</td>
                      <td class="mono">{i.ifname}</td>
                      <td>
                        <Link href={`/apps/${encodeURIComponent(i.app)}/firewall`}>Rules and hits</Link>
                      </td>
                    </tr>
                  ))}
                </DataTable>
          )}
          {ni.kind === "Local" && (
            <>
              <h3>DHCP leases</h3>
              {ni.leases.length === 0 ? (
                <p class="muted">No leases handed out (containers are configured directly; VMs and DHCP clients show here).</p>
              ) : (
                <DataTable label={`DHCP leases of ${ni.name}`} columns={["Address", "MAC", "Name", "Expires"]}>
                      {ni.leases.map((l) => (
                        <tr key={l.mac}>
                          <td class="mono">{l.ip}</td>
                          <td class="mono">{l.mac}</td>
                          <td>{l.hostname ?? "—"}</td>
                          <td>{l.expires ? new Date(l.expires).toLocaleString() : "never"}</td>
                        </tr>
                      ))}
                    </DataTable>
              )}
            </>
          )}
        </section>
      ))}
    </section>
  );
}
