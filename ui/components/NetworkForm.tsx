// The form of a network instance (Networks page): Local (NAT to an uplink, DHCP range, upstream DNS servers,
// static DNS entries) or Switch (the device port it bridges). On submit the document it would send is checked with
// the device's own validation (device-check.ts) and its problems shown at their fields; only a clean document goes
// on to the plan.
import type { TargetedSubmitEvent } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { FieldProblem } from "../config-edit";
import { ANY_UPLINK, type NetworkInput, portChoices, type Doc } from "../network-edit";
import type { HostView } from "../device-check";
import { fieldHelpers, focusFirstProblem, ProblemSummary } from "./form-fields";

const NAMES: Record<string, string> = { name: "Name", port: "Port", subnet: "Subnet", gateway: "Gateway", dhcpStart: "DHCP range", dhcpEnd: "DHCP range end", dns: "DNS servers", kind: "Kind" };

export const networkFieldId = (field: string): string => {
  const m = /^staticDns\.(\d+)\.(host|addrs)$/.exec(field);
  if (m) return `ni-dns-${m[2]}-${m[1]}`;
  return field === "staticDns" ? "ni-dns-add" : `ni-${field}`;
};

export interface NetworkFormProps {
  mode: "create" | "edit";
  initial: NetworkInput;
  doc: Doc | null;
  host: HostView | null;
  busy: boolean;
  problems: FieldProblem[];
  error: string | null;
  /** Checks the input (the device's validation on the document it makes); answers the problems, [] when clean. */
  check: (input: NetworkInput) => FieldProblem[];
  onSubmit: (input: NetworkInput) => void;
  onCancel: () => void;
}

export function NetworkForm({ mode, initial, doc, host, busy, problems: external, error, check, onSubmit, onCancel }: NetworkFormProps) {
  const [v, setV] = useState<NetworkInput>(initial);
  const [local, setLocal] = useState<FieldProblem[]>([]);
  const formRef = useRef<HTMLFormElement>(null);
  const problems = [...local, ...external];
  const f = fieldHelpers(problems, networkFieldId);
  const set = <K extends keyof NetworkInput>(k: K, value: NetworkInput[K]) => {
    setV((old) => ({ ...old, [k]: value }));
  };
  useEffect(() => {
    formRef.current?.querySelector<HTMLElement>("#ni-name")?.focus();
  }, []);
  useEffect(() => {
    if (external.length || error) focusFirstProblem(external, networkFieldId, formRef.current);
  }, [external, error]);

  const choices = portChoices(doc, host?.ports ?? []);
  const submit = (e: TargetedSubmitEvent<HTMLFormElement>) => {
    e.preventDefault();
    if (busy) return;
    const found: FieldProblem[] = [];
    if (!v.name.trim()) found.push({ field: "name", message: "Enter a name for the network." });
    if (v.kind === "switch" && !v.port.trim()) found.push({ field: "port", message: "Choose the device port the switch bridges." });
    if (!found.length) found.push(...check(v));
    setLocal(found);
    if (found.length) return focusFirstProblem(found, networkFieldId, formRef.current);
    onSubmit(v);
  };

  return (
    <form ref={formRef} class="form network-form" id="ni-form" onSubmit={submit} noValidate aria-labelledby="ni-form-title">
      <h2 id="ni-form-title" tabIndex={-1}>
        {mode === "create" ? "New network" : `Change ${initial.name || "network"}`}
      </h2>
      <ProblemSummary id="ni-form-error" problems={problems} error={error} f={f} names={NAMES} />
      <div class="field">
        <label for="ni-name">Name</label>
        <input {...f.props("name")} class="input" type="text" autoComplete="off" value={v.name} onInput={(e) => set("name", e.currentTarget.value)} />
        {f.error("name")}
      </div>
      <fieldset class="radios" disabled={mode === "edit"}>
        <legend class="field-label">Kind</legend>
        <label class="radio">
          <input type="radio" id="ni-kind-local" name="ni-kind" checked={v.kind === "local"} onChange={() => setV((o) => ({ ...o, kind: "local", port: o.port || ANY_UPLINK }))} />
          Local: its own subnet, with DHCP, DNS and NAT to an uplink
        </label>
        <label class="radio">
          <input type="radio" id="ni-kind-switch" name="ni-kind" checked={v.kind === "switch"} onChange={() => setV((o) => ({ ...o, kind: "switch", port: o.port === ANY_UPLINK ? "" : o.port }))} />
          Switch: apps join a device port's own network (bridged)
        </label>
      </fieldset>
      {f.error("kind")}
      <div class="field">
        <label for="ni-port">{v.kind === "local" ? "Uplink (NAT)" : "Device port to bridge"}</label>
        <p class="field-hint" id="ni-port-hint">
          {v.kind === "local"
            ? "The port the network's traffic leaves by, translated to the port's address. None: an isolated network (no way out)."
            : "The port must carry no address of its own: bridging it would cut the device's own traffic on it."}
        </p>
        <select {...f.props("port", true)} class="input" value={v.port} onChange={(e) => set("port", e.currentTarget.value)}>
          {v.kind === "local" && <option value={ANY_UPLINK}>Any uplink (the port with the default route)</option>}
          {v.kind === "local" && <option value="">None: isolated, no NAT</option>}
          {v.kind === "switch" && <option value="">Choose a port…</option>}
          {choices.map((c) => (
            <option key={c.value} value={c.value}>
              {c.label}
            </option>
          ))}
          {v.port && v.port !== ANY_UPLINK && !choices.some((c) => c.value === v.port) && <option value={v.port}>{v.port}</option>}
        </select>
        {f.error("port")}
      </div>
      {v.kind === "local" && (
        <>
          <div class="field">
            <label for="ni-subnet">Subnet (optional)</label>
            <p class="field-hint" id="ni-subnet-hint">
              Such as <code>10.20.0.0/24</code>. Empty: the device picks a free /24 from 10.111.0.0/16.
            </p>
            <input {...f.props("subnet", true)} class="input mono" type="text" autoComplete="off" spellcheck={false} value={v.subnet} onInput={(e) => set("subnet", e.currentTarget.value)} />
            {f.error("subnet")}
          </div>
          <div class="field-row">
            <div class="field">
              <label for="ni-gateway">Gateway (optional)</label>
              <input {...f.props("gateway")} class="input mono" type="text" autoComplete="off" spellcheck={false} placeholder="first address" value={v.gateway} onInput={(e) => set("gateway", e.currentTarget.value)} />
              {f.error("gateway")}
            </div>
            <div class="field">
              <label for="ni-dhcpStart">DHCP range from</label>
              <input {...f.props("dhcpStart")} class="input mono" type="text" autoComplete="off" spellcheck={false} value={v.dhcpStart} onInput={(e) => set("dhcpStart", e.currentTarget.value)} />
              {f.error("dhcpStart")}
            </div>
            <div class="field">
              <label for="ni-dhcpEnd">to</label>
              <input {...f.props("dhcpEnd")} class="input mono" type="text" autoComplete="off" spellcheck={false} value={v.dhcpEnd} onInput={(e) => set("dhcpEnd", e.currentTarget.value)} />
              {f.error("dhcpEnd")}
            </div>
          </div>
          <div class="field">
            <label for="ni-dns">Upstream DNS servers (optional)</label>
            <p class="field-hint" id="ni-dns-hint">
              Comma separated. Empty: the device's own resolvers.
            </p>
            <input {...f.props("dns", true)} class="input mono" type="text" autoComplete="off" spellcheck={false} value={v.dns} onInput={(e) => set("dns", e.currentTarget.value)} />
            {f.error("dns")}
          </div>
          <fieldset class="fieldset">
            <legend>Static DNS entries</legend>
            {v.staticDns.length === 0 && <p class="muted">None. Apps are found by their names anyway.</p>}
            <ul class="rows">
              {v.staticDns.map((d, i) => (
                <li class="row-edit" key={i}>
                  <div class="field">
                    <label for={`ni-dns-host-${i}`}>Name</label>
                    <input {...f.props(`staticDns.${i}.host`)} class="input mono" type="text" autoComplete="off" spellcheck={false} value={d.host} onInput={(e) => set("staticDns", v.staticDns.map((x, j) => (j === i ? { ...x, host: e.currentTarget.value } : x)))} />
                  </div>
                  <div class="field grow">
                    <label for={`ni-dns-addrs-${i}`}>Addresses</label>
                    <input {...f.props(`staticDns.${i}.addrs`)} class="input mono" type="text" autoComplete="off" spellcheck={false} value={d.addrs} onInput={(e) => set("staticDns", v.staticDns.map((x, j) => (j === i ? { ...x, addrs: e.currentTarget.value } : x)))} />
                  </div>
                  <button type="button" class="button ghost small row-remove" onClick={() => set("staticDns", v.staticDns.filter((_, j) => j !== i))}>
                    Remove<span class="visually-hidden"> entry {d.host || i + 1}</span>
                  </button>
                  {f.error(`staticDns.${i}.host`)}
                  {f.error(`staticDns.${i}.addrs`)}
                </li>
              ))}
            </ul>
            <div>
              <button type="button" id="ni-dns-add" class="button secondary small" onClick={() => set("staticDns", [...v.staticDns, { host: "", addrs: "" }])}>
                Add entry
              </button>
            </div>
            {f.error("staticDns")}
          </fieldset>
        </>
      )}
      <div class="form-actions">
        <button type="submit" id="ni-submit" class="button primary" disabled={busy}>
          {busy ? "Checking…" : mode === "create" ? "Review and create" : "Review changes"}
        </button>
        <button type="button" id="ni-cancel" class="button secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
      <p class="muted form-note">Nothing is changed until you have seen the plan and chosen Apply.</p>
    </form>
  );
}
