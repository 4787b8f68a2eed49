// The Adapters section of the app form: the configuration's assignment groups (serial ports, USB devices, PCI
// functions, CAN) the app is given. Only free, assignable groups can be chosen; the others say why not. A chosen
// group that is no longer offered (gone from the configuration) stays listed so it can be removed.
import { useEffect, useState } from "preact/hooks";
import { type OfferedAdapter, offeredAdapters } from "../../adapters-edit";
import type { HardwareStatus } from "../../api";

export interface AppAdaptersProps {
  hardware: HardwareStatus | null;
  /** The app being edited (its own groups are not "in use by another app"); absent for a new app. */
  appUuid?: string;
  selected: string[];
  onChange: (groups: string[]) => void;
}

export function AppAdapters({ hardware, appUuid, selected, onChange }: AppAdaptersProps) {
  const offered = offeredAdapters(hardware, appUuid);
  const known = new Set(offered.map((o) => o.name));
  const stale: OfferedAdapter[] = selected.filter((s) => !known.has(s)).map((name) => ({ name, type: "", what: "", unavailable: "not in the configuration's deviceIoList" }));
  const toggle = (name: string, on: boolean) => onChange(on ? [...selected, name] : selected.filter((s) => s !== name));
  return (
    <fieldset class="fieldset" id="app-adapters">
      <legend>Adapters</legend>
      <p class="field-hint">Serial ports, USB devices, PCI functions and CAN interfaces given to this app only (a whole assignment group each).</p>
      {!hardware && <p class="muted">Loading the device's hardware…</p>}
      {hardware && offered.length + stale.length === 0 && (
        <p class="muted" id="adapters-none">
          The configuration lists no I/O for apps (deviceIoList is empty).
        </p>
      )}
      <ul class="rows">
        {[...offered, ...stale].map((o, i) => {
          const checked = selected.includes(o.name);
          const id = `adapter-${i}`;
          return (
            <li key={o.name} class="adapter-row" data-group={o.name}>
              <label class="checkbox" for={id}>
                <input
                  type="checkbox"
                  id={id}
                  class="adapter-check"
                  checked={checked}
                  disabled={!!o.unavailable && !checked}
                  aria-describedby={`${id}-what`}
                  onChange={(e) => toggle(o.name, e.currentTarget.checked)}
                />
                <span class="mono">{o.name}</span> {o.type && <span class="muted">({o.type})</span>}
              </label>
              <p class="muted small" id={`${id}-what`}>
                {o.what}
                {o.unavailable ? <span class="adapter-why"> — cannot be given: {o.unavailable}</span> : null}
              </p>
            </li>
          );
        })}
      </ul>
    </fieldset>
  );
}

/** The device's hardware while `open` (the form is shown): null while loading, or when it cannot be read. */
export function useHardware(api: { hardware(): Promise<HardwareStatus> }, open: boolean): HardwareStatus | null {
  const [hw, setHw] = useState<HardwareStatus | null>(null);
  useEffect(() => {
    if (!open) return;
    let live = true;
    api.hardware().then((h) => live && setHw(h), () => live && setHw(null));
    return () => {
      live = false;
    };
  }, [api, open]);
  return hw;
}

/** On an app's page: the assignment groups it holds, and what each member is on this device. */
export function AppHardware({ hardware, uuid }: { hardware: HardwareStatus | null; uuid: string }) {
  const held = (hardware?.bundles ?? []).filter((b) => b.usedBy.some((u) => u.uuid === uuid));
  if (!held.length) return null;
  return (
    <section class="card card-wide" aria-labelledby="app-hardware-heading" id="app-hardware">
      <h2 id="app-hardware-heading">Hardware</h2>
      <ul class="plain">
        {held.map((b) => (
          <li key={b.name}>
            <span class="mono">{b.name}</span>: {b.found.map((f) => f.what).join("; ")}
          </li>
        ))}
      </ul>
    </section>
  );
}
