// The Hardware page: the device's I/O as evebox read it from sysfs (PCI functions, USB devices, serial ports,
// network ports, CAN interfaces), the configuration's assignment groups (deviceIoList) with what each member is on
// this host, which app holds it, and why one cannot be given to an app (a management port, the console's port, no
// IOMMU, a device not here). Reads GET /api/v1/hardware, refreshed on device events and every 10 s. Which app gets
// a group is set in the app's form (Adapters).
import { useCallback, useState } from "preact/hooks";
import { ApiError, type ApiClient, type HardwareStatus } from "../api";
import { DataTable } from "../components/DataTable";
import { useLive } from "../hooks";
import { Link } from "../router";

const POLL_MS = 10_000;
const hex4 = (n: number) => n.toString(16).padStart(4, "0");

type Bundle = HardwareStatus["bundles"][number];

function bundleState(b: Bundle): { label: string; badge: string } {
  if (b.usedBy.length) return { label: "in use", badge: "badge-ok" };
  if (b.found.some((f) => f.missing)) return { label: "missing", badge: "badge-error" };
  if (b.notAssignable) return { label: b.usedByBaseOs ? "kept by the device" : "not assignable", badge: b.usedByBaseOs ? "badge-neutral" : "badge-warn" };
  return { label: "free", badge: "badge-neutral" };
}

export function Hardware({ api }: { api: ApiClient }) {
  const [hw, setHw] = useState<HardwareStatus | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = useCallback(async () => {
    try {
      setHw(await api.hardware());
      setError(null);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  }, [api]);
  useLive(api.eventsUrl, load, { pollMs: POLL_MS });
  const inv = hw?.inventory;
  // Which group (and app) holds a PCI address, serial node, USB address or interface: the member that names it.
  const groupOf = (needle: string) => (hw?.bundles ?? []).find((b) => b.found.some((f) => f.what.includes(needle)));
  const usedBy = (needle: string) => {
    const b = groupOf(needle);
    if (!b) return <span class="muted">—</span>;
    return (
      <>
        <span class="mono">{b.name}</span>
        {b.usedBy.map((u) => (
          <span key={u.uuid}>
            {" → "}
            <Link href={`/apps/${u.uuid}`}>{u.name}</Link>
          </span>
        ))}
      </>
    );
  };

  return (
    <section id="hardware" class="page" aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          Hardware
        </h1>
        <p class="muted">
          The device's I/O and who uses it. The configuration's assignment groups (deviceIoList) are what apps can be given: a group goes whole to one app,
          set in the app's settings (Adapters).
        </p>
      </div>
      {error && (
        <div class="banner banner-error" role="alert">
          Could not load the hardware: {error}
        </div>
      )}
      {!hw && !error && (
        <p class="muted" role="status">
          Loading the hardware…
        </p>
      )}
      {hw && inv && (
        <>
          <section class="card card-wide" aria-labelledby="bundles-heading">
            <h2 id="bundles-heading">Assignment groups</h2>
            {hw.bundles.length === 0 ? (
              <p class="muted" id="bundles-none">
                The configuration lists no I/O for apps (deviceIoList is empty): nothing can be assigned.
              </p>
            ) : (
              <DataTable id="bundles-table" labelledBy="bundles-heading" columns={["Group", "Type", "Members on this device", "Usage", "Used by", "State"]}>
                {hw.bundles.map((b) => {
                  const st = bundleState(b);
                  return (
                    <tr key={b.name} data-group={b.name}>
                      <td class="mono">{b.name}</td>
                      <td>{b.type.replace(/^PhyIo/, "")}</td>
                      <td>
                        <ul class="plain">
                          {b.found.map((f) => (
                            <li key={f.label}>
                              <span class="mono">{f.label}</span>: {f.missing ? <span class="error-text">{f.missing}</span> : f.what}
                            </li>
                          ))}
                        </ul>
                      </td>
                      <td>{b.usage.replace(/^PhyIoUsage/, "")}</td>
                      <td class="bundle-used-by">
                        {b.usedBy.length
                          ? b.usedBy.map((u, i) => (
                              <span key={u.uuid}>
                                {i > 0 ? ", " : ""}
                                <Link href={`/apps/${u.uuid}`}>{u.name}</Link>
                              </span>
                            ))
                          : b.usedByBaseOs
                            ? "the device"
                            : "—"}
                      </td>
                      <td>
                        <span class={`badge ${st.badge}`}>{st.label}</span>
                        {b.notAssignable && !b.usedBy.length && <p class="muted small bundle-reason">{b.notAssignable}</p>}
                      </td>
                    </tr>
                  );
                })}
              </DataTable>
            )}
            {hw.reserved.length > 0 && (
              <p class="muted" id="reserved">
                Never given to an app: {hw.reserved.map((r) => `${r.ifname} (${r.why})`).join("; ")}.
              </p>
            )}
          </section>

          <section class="card card-wide" aria-labelledby="serial-heading">
            <h2 id="serial-heading">Serial ports</h2>
            {inv.serial.length === 0 ? (
              <p class="muted">No serial ports found.</p>
            ) : (
              <DataTable id="serial-table" labelledBy="serial-heading" columns={["Port", "Where", "Group"]}>
                {inv.serial.map((s) => (
                  <tr key={s.devPath}>
                    <td class="mono">{s.devPath}</td>
                    <td>{s.ioPort ? `I/O ${s.ioPort}, IRQ ${s.irq}` : s.usbParent ? `USB ${s.usbParent}` : "—"}</td>
                    <td>{usedBy(s.devPath)}</td>
                  </tr>
                ))}
              </DataTable>
            )}
          </section>

          <section class="card card-wide" aria-labelledby="usb-heading">
            <h2 id="usb-heading">USB devices</h2>
            {inv.usb.filter((u) => !u.rootHub).length === 0 ? (
              <p class="muted" id="usb-none">
                No USB devices{inv.usb.length === 0 ? " (this device has no USB bus)" : ""}.
              </p>
            ) : (
              <DataTable id="usb-table" labelledBy="usb-heading" columns={["Address", "Device", "Serial", "Controller", "Group"]}>
                {inv.usb
                  .filter((u) => !u.rootHub)
                  .map((u) => (
                    <tr key={u.name}>
                      <td class="mono">
                        {u.bus}:{u.port}
                      </td>
                      <td>
                        {[u.manufacturer, u.product].filter(Boolean).join(" ") || "USB device"} <span class="mono muted">{hex4(u.vendorId)}:{hex4(u.productId)}</span>
                      </td>
                      <td class="mono">{u.serial ?? "—"}</td>
                      <td class="mono">{u.controllerPci ?? "—"}</td>
                      <td>{usedBy(`at USB ${u.bus}:${u.port}`)}</td>
                    </tr>
                  ))}
              </DataTable>
            )}
          </section>

          <section class="card card-wide" aria-labelledby="pci-heading">
            <h2 id="pci-heading">PCI functions</h2>
            <p class="muted" id="iommu">
              {inv.iommu ? "The IOMMU is on: PCI functions can be passed through to VMs, a whole IOMMU group at a time." : "No IOMMU on this device: PCI functions cannot be passed through (VT-d or AMD-Vi is off or absent)."}
            </p>
            <DataTable id="pci-table" labelledBy="pci-heading" columns={["Address", "Class", "Vendor:device", "Driver", "IOMMU group", "Interfaces", "Group"]}>
              {inv.pci.map((p) => (
                <tr key={p.address} data-address={p.address}>
                  <td class="mono">{p.address}</td>
                  <td>
                    {p.className}
                    {p.gpu ? " (GPU)" : ""}
                  </td>
                  <td class="mono">
                    {hex4(p.vendorId)}:{hex4(p.deviceId)}
                  </td>
                  <td class="mono">{p.driver ?? "—"}</td>
                  <td>{p.iommuGroup ?? "—"}</td>
                  <td class="mono">{p.ifnames.join(", ") || "—"}</td>
                  <td>{usedBy(`at ${p.address}`)}</td>
                </tr>
              ))}
            </DataTable>
          </section>

          <section class="card card-wide" aria-labelledby="net-heading">
            <h2 id="net-heading">Network ports and CAN</h2>
            <DataTable id="net-table" labelledBy="net-heading" columns={["Interface", "Kind", "MAC", "On", "Group"]}>
              {inv.net.map((n) => (
                <tr key={n.ifname}>
                  <td class="mono">{n.ifname}</td>
                  <td>{n.kind}</td>
                  <td class="mono">{n.mac ?? "—"}</td>
                  <td class="mono">{n.pciParent ?? n.usbParent ?? "—"}</td>
                  <td>{usedBy(n.ifname)}</td>
                </tr>
              ))}
              {inv.can.map((c) => (
                <tr key={c.ifname}>
                  <td class="mono">{c.ifname}</td>
                  <td>{c.virtual ? "CAN (vcan)" : "CAN"}</td>
                  <td>—</td>
                  <td class="mono">{c.pciParent ?? c.usbParent ?? "—"}</td>
                  <td>{usedBy(`CAN interface ${c.ifname}`)}</td>
                </tr>
              ))}
            </DataTable>
          </section>
        </>
      )}
    </section>
  );
}
