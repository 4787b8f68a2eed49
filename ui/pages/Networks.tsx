// The Networks page: the device's network instances (Local: NAT, DHCP, DNS; Switch: a bridge on a port), each
// with its state, bridge, addresses, uplink port, the app interfaces on it (with a link to each app's firewall)
// and its DHCP leases. Reads GET /api/v1/networks, refreshed every 5 s and on device events. "New network", Change
// and Delete edit the document (network-edit.ts), checked by the device's own validation in the browser first
// (device-check.ts), then planned and applied like every change (PlanDialog).
import { useCallback, useState } from "preact/hooks";
import type { PortStatus } from "../../src/network/manager.ts";
import { RoleGate } from "../role";
import { ApiError, type ApiClient, type Problem } from "../api";
import type { FieldProblem } from "../config-edit";
import { DataTable } from "../components/DataTable";
import { NetworkForm } from "../components/NetworkForm";
import { useConfigChange } from "../components/PlanDialog";
import { useLiveStatus } from "../components/useLiveStatus";
import { checkDoc } from "../device-check";
import { useHostView } from "../components/useHostView";
import { useLive } from "../hooks";
import { addNetworkInstance, appsOnNetwork, type Doc, emptyNetwork, type NetworkInput, networkInputOf, networkProblemField, removeNetworkInstance, updateNetworkInstance } from "../network-edit";
import { Link } from "../router";
import { useCurrentConfig } from "./Apps";

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
  /** What the apps get (DHCP option 121, set on containers) and, for `apps+table`, the instance's own next hop. */
  routes?: { dst: string; via: string; to: "apps" | "apps+table"; tableVia?: string | null }[];
  leases: Lease[];
}

/** A VLAN sub-interface or bond the device makes (GET /api/v1/networks → ports): the server's own type. */
type DevicePort = PortStatus;

const PORT_BADGE: Record<string, string> = { UP: "badge-ok", INIT: "badge-info", DOWN: "badge-warn", ERROR: "badge-error" };

const STATE_BADGE: Record<string, string> = { ONLINE: "badge-ok", INIT: "badge-info", INITIAL: "badge-info", ERROR: "badge-error" };

export function Networks({ api }: { api: ApiClient }) {
  const [instances, setInstances] = useState<NetworkInstance[] | null>(null);
  const [ports, setPorts] = useState<DevicePort[]>([]);
  const [error, setError] = useState<string | null>(null);
  const status = useLiveStatus(api).status;
  const managed = status?.device.mode === "managed";
  const config = useCurrentConfig(api, status?.device.configHash ?? null);
  const change = useConfigChange(api);
  const host = useHostView(api);
  const [form, setForm] = useState<{ mode: "create" | "edit"; uuid: string; initial: NetworkInput; key: number } | null>(null);
  const [formProblems, setFormProblems] = useState<FieldProblem[]>([]);
  const [formError, setFormError] = useState<string | null>(null);
  const [message, setMessage] = useState<{ text: string; error?: boolean } | null>(null);
  const doc = config.current?.doc ?? null;

  const load = useCallback(async () => {
    try {
      const got = await api.networksAndPorts();
      setInstances((got.instances as unknown as NetworkInstance[] | undefined) ?? []);
      setPorts((got.ports as DevicePort[] | undefined) ?? []);
      setError(null);
    } catch (e) {
      // A 401 has sent the app to sign in already.
      if (!(e instanceof ApiError && e.status === 401)) setError(e instanceof ApiError && e.status !== 0 ? e.message : "The device could not be reached.");
    }
  }, [api]);
  useLive(api.eventsUrl, load, { pollMs: POLL_MS });

  const openCreate = () => {
    setFormProblems([]);
    setFormError(null);
    setMessage(null);
    void host.reload();
    setForm({ mode: "create", uuid: crypto.randomUUID(), initial: emptyNetwork(), key: Date.now() });
  };
  const openEdit = (uuid: string) => {
    const initial = networkInputOf(doc, uuid);
    if (!initial) return;
    setFormProblems([]);
    setFormError(null);
    setMessage(null);
    void host.reload();
    setForm({ mode: "edit", uuid, initial, key: Date.now() });
  };
  const closeForm = () => {
    setForm(null);
    setTimeout(() => document.getElementById("ni-create")?.focus(), 0);
  };
  const editOf = (mode: "create" | "edit", uuid: string, input: NetworkInput) => (current: Doc | null) =>
    mode === "create" ? addNetworkInstance(current, input, uuid) : updateNetworkInstance(current ?? {}, uuid, input);
  /** The device's problems of this instance in the document, at the form's fields. */
  const fieldProblems = (sent: Doc, uuid: string, problems: Problem[]): FieldProblem[] => {
    const index = (sent.networkInstances ?? []).findIndex((n: Doc) => n.uuidandversion?.uuid === uuid);
    return problems.map((p) => ({ field: networkProblemField(p.path, index) ?? "", message: p.message }));
  };
  const check = (mode: "create" | "edit", uuid: string) => (input: NetworkInput) => {
    const sent = editOf(mode, uuid, input)(doc);
    const mine = checkDoc(sent, host.view).filter((p) => p.objectKind === "networkInstance" && p.objectId === uuid);
    return fieldProblems(sent, uuid, mine);
  };
  const submit = async (input: NetworkInput) => {
    if (!form) return;
    const { mode, uuid } = form;
    setFormProblems([]);
    setFormError(null);
    const outcome = await change.propose({
      title: mode === "create" ? `Create network ${input.name.trim()}` : `Change network ${input.name.trim()}`,
      edit: editOf(mode, uuid, input),
      onProblems: (problems, sent) => setFormProblems(fieldProblems(sent, uuid, problems)),
      onApplied: (result, applied) => {
        setForm(null);
        setMessage({ text: `${input.name.trim()} was ${mode === "create" ? "added" : "changed"} (configuration version ${result.version ?? "?"}). Its state shows below as the device builds it.` });
        config.applied(applied, result.hash);
        void load();
        setTimeout(() => document.getElementById("ni-create")?.focus(), 0);
      },
    });
    if (outcome.status === "failed") setFormError(outcome.message);
  };
  const remove = async (uuid: string, name: string) => {
    setMessage(null);
    const users = appsOnNetwork(doc, uuid);
    if (users.length) {
      setMessage({ text: `${name} cannot be deleted: ${users.length === 1 ? "the app" : "the apps"} ${users.join(", ")} ${users.length === 1 ? "is" : "are"} on it. Remove ${users.length === 1 ? "its interface" : "their interfaces"} on ${name} first.`, error: true });
      return;
    }
    const outcome = await change.propose({
      title: `Delete network ${name}`,
      applyLabel: "Delete",
      danger: true,
      warning: "Its bridge, DHCP and DNS server and firewall rules are removed.",
      edit: (current) => removeNetworkInstance(current ?? {}, uuid),
      onApplied: (result, applied) => {
        setMessage({ text: `${name} was deleted.` });
        config.applied(applied, result.hash);
        void load();
      },
    });
    if (outcome.status === "failed") setMessage({ text: `Could not delete ${name}: ${outcome.message}`, error: true });
  };

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
      {managed && (
        <p class="notice banner" id="networks-managed">
          This device is managed by its controller, which decides its networks: create, change and delete them there.
        </p>
      )}
      <div aria-live="polite" role="status" class="status-line">
        {message && !message.error && <p class="notice banner">{message.text}</p>}
      </div>
      {message?.error && (
        <div class="banner banner-error" role="alert" id="networks-error">
          {message.text}
        </div>
      )}
      {!form && (
        <div class="toolbar">
          <RoleGate need="admin">
          <button type="button" id="ni-create" class="button primary" disabled={managed || !status || !config.current} onClick={openCreate}>
            New network
          </button>
          </RoleGate>
        </div>
      )}
      {form && (
        <div class="card form-card">
          <NetworkForm
            key={form.key}
            mode={form.mode}
            initial={form.initial}
            doc={doc}
            host={host.view}
            busy={change.busy}
            problems={formProblems}
            error={formError}
            check={check(form.mode, form.uuid)}
            onSubmit={(input) => void submit(input)}
            onCancel={closeForm}
          />
        </div>
      )}
      {!instances && !error && <p class="muted">Loading…</p>}
      {instances && instances.length === 0 && <p class="empty card">No network instances. Apps with no interfaces have no network.</p>}
      {ports.length > 0 && (
        <section class="card card-wide" id="device-ports" aria-labelledby="device-ports-title">
          <h2 id="device-ports-title">VLANs and bonds</h2>
          <DataTable label="VLAN sub-interfaces and bonds the device makes" columns={["Label", "Kind", "State", "Host name", "On", "Members"]}>
            {ports.map((p) => (
              <tr key={p.ifname} data-port={p.label}>
                <th scope="row">{p.label}</th>
                <td>{p.kind === "vlan" ? `VLAN ${p.vlanId}` : `bond (${p.mode})`}</td>
                <td>
                  <span class={`badge ${PORT_BADGE[p.state] ?? "badge-info"}`}>{p.state}</span>
                  {p.error && <span class="field-error"> {p.error}</span>}
                </td>
                <td class="mono">{p.ifname}</td>
                <td class="mono">{p.kind === "vlan" ? (p.parent ?? "—") : "—"}</td>
                <td class="mono">
                  {(p.members ?? []).map((m) => `${m.ifname} ${m.operstate ?? "?"}${m.ifname === p.activeMember ? " (active)" : ""}${m.enslaved ? "" : " (not enslaved)"}`).join(", ") || "—"}
                </td>
              </tr>
            ))}
          </DataTable>
        </section>
      )}
      {(instances ?? []).map((ni) => (
        <section key={ni.uuid} class="card card-wide network" aria-labelledby={`ni-${ni.uuid}`} data-network={ni.name}>
          <div class="section-head">
            <h2 id={`ni-${ni.uuid}`}>
              {ni.name} {ni.kind && <span class="badge badge-neutral">{ni.kind}</span>} <span class={`badge ${STATE_BADGE[ni.state] ?? "badge-neutral"}`}>{ni.state}</span>
            </h2>
            {!managed && networkInputOf(doc, ni.uuid) && (
              <RoleGate need="admin">
              <div class="actions">
                <button type="button" class="button secondary small ni-edit" disabled={!!form} onClick={() => openEdit(ni.uuid)}>
                  Change<span class="visually-hidden"> {ni.name}</span>
                </button>
                <button type="button" class="button ghost small ni-delete" disabled={!!form} onClick={() => void remove(ni.uuid, ni.name)}>
                  Delete<span class="visually-hidden"> {ni.name}</span>
                </button>
              </div>
              </RoleGate>
            )}
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
          {(ni.routes ?? []).length > 0 && (
            <>
              <h3>Routes</h3>
              <DataTable label={`Routes of ${ni.name}`} columns={["Destination", "Apps' gateway", "Next hop on the device"]}>
                {(ni.routes ?? []).map((r) => (
                  <tr key={r.dst}>
                    <td class="mono">{r.dst}</td>
                    <td class="mono">{r.via}</td>
                    <td class="mono">{r.to === "apps+table" ? (r.tableVia ?? `${ni.uplink?.ifname ?? ""} (on link)`) : r.via === ni.gateway ? `connected to ${ni.uplink?.label ?? "the port"}` : "— (an app of this network routes it)"}</td>
                  </tr>
                ))}
              </DataTable>
            </>
          )}
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
      {change.dialog}
    </section>
  );
}
