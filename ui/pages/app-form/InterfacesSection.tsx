// The app form's network interfaces (containers and VMs): the network instance each is on, an optional fixed
// address and MAC, its port maps (a device port → the app's port, TCP or UDP), and a link to the interface's
// firewall rules (the firewall editor) for an app that exists.
import type { FieldHelpers } from "../../components/form-fields";
import { Link } from "../../router";
import { type InterfaceRow, nextRowId, type PortMapRow, type Setter } from "./values";

export interface InterfacesSectionProps {
  rows: InterfaceRow[];
  setRows: Setter<InterfaceRow[]>;
  f: FieldHelpers;
  networks: { uuid: string; name: string; kind: string; subnet: string | null }[];
  /** The app's uuid when it exists (the firewall editor's link). */
  appUuid?: string;
  /** A VM: changes restart it. */
  restartNote?: boolean;
}

export function InterfacesSection({ rows, setRows, f, networks, appUuid, restartNote }: InterfacesSectionProps) {
  const setRow = (j: number, patch: Partial<InterfaceRow>) => setRows((o) => o.map((r, i) => (i === j ? { ...r, ...patch } : r)));
  const setMap = (j: number, k: number, patch: Partial<PortMapRow>) =>
    setRows((o) => o.map((r, i) => (i === j ? { ...r, portMaps: r.portMaps.map((p, n) => (n === k ? { ...p, ...patch } : p)) } : r)));
  return (
    <fieldset class="fieldset" id="app-interfaces">
      <legend>
        Networks {restartNote && <span class="badge badge-info restart-note">restarts the VM</span>}
      </legend>
      <p class="field-hint">
        Each interface puts the app on a network instance (made on the Networks page). A port map forwards a port of the device's uplink to the app.
      </p>
      {rows.length === 0 && <p class="muted">No network: the app has no interfaces.</p>}
      <ol class="rows interfaces">
        {rows.map((r, j) => {
          const ni = networks.find((n) => n.uuid === r.networkId);
          return (
            <li class="interface-row card-inner" key={r.rowId} data-interface={j}>
              <div class="row-edit">
                <div class="field grow">
                  <label for={`ifc-network-${j}`}>Interface eth{j}: network</label>
                  <select {...f.props(`interfaces.${j}.network`)} class="input" value={r.networkId} onChange={(e) => setRow(j, { networkId: e.currentTarget.value })}>
                    <option value="">Choose a network…</option>
                    {networks.map((n) => (
                      <option key={n.uuid} value={n.uuid}>
                        {n.name} ({n.kind}
                        {n.subnet ? `, ${n.subnet}` : ""})
                      </option>
                    ))}
                  </select>
                </div>
                <div class="field">
                  <label for={`ifc-addr-${j}`}>Fixed address (optional)</label>
                  <input {...f.props(`interfaces.${j}.addr`)} class="input mono narrow-ip" type="text" autoComplete="off" spellcheck={false} placeholder={ni?.kind === "Switch" ? "from the port's DHCP" : "from DHCP"} value={r.addr} onInput={(e) => setRow(j, { addr: e.currentTarget.value })} />
                </div>
                <div class="field">
                  <label for={`ifc-mac-${j}`}>MAC (optional)</label>
                  <input {...f.props(`interfaces.${j}.mac`)} class="input mono narrow-ip" type="text" autoComplete="off" spellcheck={false} placeholder="derived" value={r.mac} onInput={(e) => setRow(j, { mac: e.currentTarget.value })} />
                </div>
                <button type="button" class="button ghost small row-remove" onClick={() => setRows((o) => o.filter((_, i) => i !== j))}>
                  Remove<span class="visually-hidden"> interface eth{j}</span>
                </button>
                {f.error(`interfaces.${j}.network`)}
                {f.error(`interfaces.${j}.addr`)}
                {f.error(`interfaces.${j}.mac`)}
                {f.error(`interfaces.${j}`)}
              </div>
              <h4 class="field-label">Port maps</h4>
              {r.portMaps.length === 0 && <p class="muted">None.</p>}
              <ul class="rows">
                {r.portMaps.map((p, k) => (
                  <li class="row-edit portmap-row" key={p.rowId}>
                    <div class="field">
                      <label for={`pm-device-${j}-${k}`}>Device port</label>
                      <input {...f.props(`interfaces.${j}.portMaps.${k}.devicePort`)} class="input narrow" type="text" inputMode="numeric" autoComplete="off" value={p.devicePort} onInput={(e) => setMap(j, k, { devicePort: e.currentTarget.value })} />
                    </div>
                    <div class="field">
                      <label for={`pm-app-${j}-${k}`}>App port</label>
                      <input {...f.props(`interfaces.${j}.portMaps.${k}.appPort`)} class="input narrow" type="text" inputMode="numeric" autoComplete="off" value={p.appPort} onInput={(e) => setMap(j, k, { appPort: e.currentTarget.value })} />
                    </div>
                    <div class="field">
                      <label for={`pm-proto-${j}-${k}`}>Protocol</label>
                      <select id={`pm-proto-${j}-${k}`} class="input" value={p.protocol} onChange={(e) => setMap(j, k, { protocol: e.currentTarget.value as PortMapRow["protocol"] })}>
                        <option value="tcp">TCP</option>
                        <option value="udp">UDP</option>
                      </select>
                    </div>
                    <button type="button" class="button ghost small row-remove" onClick={() => setRow(j, { portMaps: r.portMaps.filter((_, n) => n !== k) })}>
                      Remove<span class="visually-hidden"> port map {p.devicePort || k + 1}</span>
                    </button>
                    {f.error(`interfaces.${j}.portMaps.${k}.devicePort`)}
                    {f.error(`interfaces.${j}.portMaps.${k}.appPort`)}
                  </li>
                ))}
              </ul>
              <div class="actions">
                <button type="button" id={`pm-add-${j}`} class="button secondary small" onClick={() => setRow(j, { portMaps: [...r.portMaps, { rowId: nextRowId(), devicePort: "", appPort: "", protocol: "tcp" }] })}>
                  Add port map
                </button>
                {appUuid && (
                  <Link href={`/apps/${encodeURIComponent(appUuid)}/firewall`} class="button ghost small">
                    Firewall rules of eth{j}
                  </Link>
                )}
              </div>
            </li>
          );
        })}
      </ol>
      <div>
        <button
          type="button"
          id="ifc-add"
          class="button secondary small"
          disabled={networks.length === 0}
          onClick={() => setRows((o) => [...o, { rowId: nextRowId(), networkId: networks.length === 1 ? networks[0]!.uuid : "", addr: "", mac: "", portMaps: [] }])}
        >
          Add interface
        </button>
        {networks.length === 0 && <span class="muted"> No network instances yet: make one on the Networks page.</span>}
      </div>
      {f.error("interfaces")}
    </fieldset>
  );
}
