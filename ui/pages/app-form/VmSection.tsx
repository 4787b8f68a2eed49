// The VM parts of the app form: the boot image (an image the device has, or one at a web address: qcow2, raw, or
// an ISO installed to a blank disk), the firmware, cloud-init user data, the graphical console, the start delay,
// and extra disks. In an edit, the image is shown, not changed, and the fields that restart the VM say so.
import type { FieldHelpers } from "../../components/form-fields";
import { CLOUD_INIT_EXAMPLE } from "../../vm-edit";
import { nextRowId, type Setter, type VmValues } from "./values";
import type { ImportedImage } from "../../images";
import { ImportedImagePicker } from "./ImportedImagePicker";

export interface VmSectionProps {
  mode: "create" | "edit";
  vm: VmValues;
  setVm: Setter<VmValues>;
  f: FieldHelpers;
  /** Images in the configuration a VM can boot from. */
  images: { uuid: string; name: string; format: string }[];
  /** Edit: the image the VM boots from, in words. */
  image?: string;
  /** Disk images uploaded to the device (GET /api/v1/images). */
  uploaded?: ImportedImage[];
}

const RESTARTS = <span class="badge badge-info restart-note">restarts the VM</span>;

export function VmImageSection({ mode, vm, setVm, f, images, image, uploaded = [] }: VmSectionProps) {
  const set = <K extends keyof VmValues>(k: K, value: VmValues[K]) => setVm((o) => ({ ...o, [k]: value }));
  if (mode === "edit") {
    return (
      <dl class="facts">
        <div>
          <dt>Boot image</dt>
          <dd>
            <code>{image || "—"}</code>
          </dd>
        </div>
      </dl>
    );
  }
  const iso =
    vm.sourceKind === "url" ? vm.format === "ISO" : vm.sourceKind === "imported" ? uploaded.find((i) => i.sha256 === vm.importedSha)?.eveFormat === "ISO" : images.find((i) => i.uuid === vm.treeUuid)?.format === "ISO";
  return (
    <fieldset class="fieldset" id="vm-image">
      <legend>Boot disk</legend>
      <fieldset class="radios">
        <legend class="field-label">Where the image comes from</legend>
        <label class="radio">
          <input type="radio" id="vm-source-imported" name="vm-source" checked={vm.sourceKind === "imported"} disabled={uploaded.length === 0} onChange={() => set("sourceKind", "imported")} />
          An image uploaded to the device{uploaded.length === 0 ? " (none yet: upload one on the Storage page)" : ""}
        </label>
        <label class="radio">
          <input type="radio" id="vm-source-tree" name="vm-source" checked={vm.sourceKind === "tree"} disabled={images.length === 0} onChange={() => set("sourceKind", "tree")} />
          An image another app of the device uses{images.length === 0 ? " (none yet)" : ""}
        </label>
        <label class="radio">
          <input type="radio" id="vm-source-url" name="vm-source" checked={vm.sourceKind === "url"} onChange={() => set("sourceKind", "url")} />
          A disk image at a web address
        </label>
      </fieldset>
      {vm.sourceKind === "imported" ? (
        <ImportedImagePicker field="vm.imported" images={uploaded} value={vm.importedSha} onChange={(sha) => set("importedSha", sha)} f={f} />
      ) : vm.sourceKind === "tree" ? (
        <div class="field">
          <label for="vm-tree">Image</label>
          <select {...f.props("vm.tree")} class="input" value={vm.treeUuid} onChange={(e) => set("treeUuid", e.currentTarget.value)}>
            <option value="">Choose an image…</option>
            {images.map((i) => (
              <option key={i.uuid} value={i.uuid}>
                {i.name} ({i.format})
              </option>
            ))}
          </select>
          {f.error("vm.tree")}
        </div>
      ) : (
        <>
          <div class="field">
            <label for="app-url">Address of the disk image</label>
            <p class="field-hint" id="app-url-hint">
              An <code>http://</code> or <code>https://</code> address, such as <code>http://10.0.0.5:8000/images/debian.qcow2</code>.
            </p>
            <input {...f.props("url", true)} class="input mono" type="url" autoComplete="off" spellcheck={false} value={vm.url} onInput={(e) => set("url", e.currentTarget.value)} />
            {f.error("url")}
          </div>
          <div class="field-row">
            <div class="field">
              <label for="vm-format">Format</label>
              <select id="vm-format" class="input" value={vm.format} onChange={(e) => set("format", e.currentTarget.value as VmValues["format"])}>
                <option value="QCOW2">qcow2</option>
                <option value="RAW">raw</option>
                <option value="ISO">ISO (installer CD)</option>
              </select>
            </div>
            <div class="field grow">
              <label for="app-sha256">sha256 of the file</label>
              <input {...f.props("sha256")} class="input mono" type="text" autoComplete="off" spellcheck={false} value={vm.sha256} onInput={(e) => set("sha256", e.currentTarget.value)} />
              {f.error("sha256")}
            </div>
          </div>
        </>
      )}
      {f.error("source")}
      <div class="field">
        <label for="vm-disk">{iso ? "Size of the disk to install to (MiB)" : "Disk size (MiB, optional)"}</label>
        <p class="field-hint" id="vm-disk-hint">
          {iso ? "The ISO is attached as a CD-ROM; the VM gets a blank disk of this size." : "The VM runs on a copy of the image grown to this size. Empty: the image's own size."}
        </p>
        <input {...f.props("vm.disk", true)} class="input narrow" type="text" inputMode="numeric" autoComplete="off" value={vm.diskMiB} onInput={(e) => set("diskMiB", e.currentTarget.value)} />
        {f.error("vm.disk")}
      </div>
    </fieldset>
  );
}

export function VmSettingsSection({ mode, vm, setVm, f }: VmSectionProps) {
  const set = <K extends keyof VmValues>(k: K, value: VmValues[K]) => setVm((o) => ({ ...o, [k]: value }));
  const edit = mode === "edit";
  return (
    <fieldset class="fieldset" id="vm-settings">
      <legend>Virtual machine</legend>
      <fieldset class="radios">
        <legend class="field-label">Firmware {edit && RESTARTS}</legend>
        <label class="radio">
          <input type="radio" id="vm-firmware-bios" name="vm-firmware" checked={vm.firmware === "bios"} onChange={() => set("firmware", "bios")} />
          BIOS
        </label>
        <label class="radio">
          <input type="radio" id="vm-firmware-uefi" name="vm-firmware" checked={vm.firmware === "uefi"} onChange={() => set("firmware", "uefi")} />
          UEFI
        </label>
      </fieldset>
      <div class="field">
        <label for="vm-cloud-init">Cloud-init user data (optional) {edit && RESTARTS}</label>
        <p class="field-hint" id="vm-cloud-init-hint">
          Given to the VM as a NoCloud seed. Images with cloud-init read it on their first boot.{" "}
          <button type="button" class="button ghost small" id="vm-cloud-init-example" onClick={() => set("cloudInit", CLOUD_INIT_EXAMPLE)}>
            Insert an example
          </button>
        </p>
        <textarea {...f.props("vm.cloudInit", true)} class="input mono" rows={6} spellcheck={false} placeholder={"#cloud-config\n…"} value={vm.cloudInit} onInput={(e) => set("cloudInit", e.currentTarget.value)} />
        {f.error("vm.cloudInit")}
      </div>
      <label class="checkbox">
        <input type="checkbox" id="vm-vnc" checked={vm.vnc} onChange={(e) => set("vnc", e.currentTarget.checked)} />
        Graphical console (VNC, shown on the app's page) {edit && RESTARTS}
      </label>
      <div class="field">
        <label for="vm-start-delay">Start delay (seconds)</label>
        <p class="field-hint" id="vm-start-delay-hint">
          How long the device waits before starting it (after a boot, to let other apps come up first). Takes effect without a restart.
        </p>
        <input {...f.props("vm.startDelay", true)} class="input narrow" type="text" inputMode="numeric" autoComplete="off" value={vm.startDelay} onInput={(e) => set("startDelay", e.currentTarget.value)} />
        {f.error("vm.startDelay")}
      </div>
    </fieldset>
  );
}

export function VmDisksSection({ mode, vm, setVm, f }: VmSectionProps) {
  return (
    <fieldset class="fieldset" id="vm-disks">
      <legend>Extra disks {mode === "edit" && RESTARTS}</legend>
      <p class="field-hint">Blank disks after the boot disk. {mode === "edit" ? "Removing a disk deletes its data." : ""}</p>
      {vm.disks.length === 0 && <p class="muted">No extra disks.</p>}
      <ul class="rows">
        {vm.disks.map((d, i) => (
          <li class="row-edit" key={d.rowId}>
            <div class="field">
              <label for={`vm-disk-size-${i}`}>{d.name ? `${d.name} (MiB)` : `Disk ${i + 1} size (MiB)`}</label>
              <input
                {...f.props(`vm.disks.${i}`)}
                class="input narrow"
                type="text"
                inputMode="numeric"
                autoComplete="off"
                value={d.size}
                disabled={!!d.uuid}
                onInput={(e) => {
                  const size = e.currentTarget.value;
                  setVm((o) => ({ ...o, disks: o.disks.map((x, j) => (j === i ? { ...x, size } : x)) }));
                }}
              />
            </div>
            {!d.locked && (
              <button type="button" class="button ghost small row-remove" onClick={() => setVm((o) => ({ ...o, disks: o.disks.filter((_, j) => j !== i) }))}>
                Remove<span class="visually-hidden"> disk {i + 1}</span>
              </button>
            )}
            {f.error(`vm.disks.${i}`)}
          </li>
        ))}
      </ul>
      <div>
        <button type="button" id="vm-disk-add" class="button secondary small" onClick={() => setVm((o) => ({ ...o, disks: [...o.disks, { rowId: nextRowId(), size: "1024" }] }))}>
          Add disk
        </button>
      </div>
    </fieldset>
  );
}
