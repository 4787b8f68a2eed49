// The Storage page's imported images: upload a disk image or a container image tarball from this computer into
// the device's content store (resumable: a dropped connection is resumed by itself from where the device stands),
// with a progress bar, the sha256 and the detected format once stored; the list of imported images with what
// uses each, and Delete (refused, with who uses it, while a content tree of the config does). ui/images.ts does
// the upload and the list.
import { useRef, useState } from "preact/hooks";
import { ApiError, type ApiClient } from "../api";
import { type ImportedImage, uploadImage, useImages } from "../images";
import { ConfirmDialog } from "./ConfirmDialog";
import { DataTable } from "./DataTable";
import { FormError } from "./Field";

function size(b: number): string {
  if (b < 1024 * 1024) return `${(b / 1024).toFixed(1)} KiB`;
  if (b < 1024 ** 3) return `${(b / 1024 / 1024).toFixed(1)} MiB`;
  return `${(b / 1024 ** 3).toFixed(2)} GiB`;
}

const FORMAT_LABEL: Record<string, string> = {
  qcow2: "qcow2 disk",
  raw: "raw disk",
  iso: "ISO (installer CD)",
  vmdk: "VMDK disk",
  vhdx: "VHDX disk",
  vhd: "VHD disk",
  "docker-archive": "container image (docker save)",
  "oci-layout": "container image (OCI layout)",
};

interface Progress {
  sent: number;
  total: number;
  startedAt: number;
  startOffset: number;
  retry: string | null;
}

export function ImageUpload({ api }: { api: ApiClient }) {
  const { images, uploads, loaded, error: listError, refresh } = useImages(api);
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState("");
  const [progress, setProgress] = useState<Progress | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<ImportedImage | null>(null);
  const [removing, setRemoving] = useState<ImportedImage | null>(null);
  const [removeError, setRemoveError] = useState<string | null>(null);
  const [removeBusy, setRemoveBusy] = useState(false);
  const abort = useRef<AbortController | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setDone(null);
    if (!file) return setError("Choose an image file first.");
    const label = name.trim() || file.name;
    const ac = new AbortController();
    abort.current = ac;
    const startedAt = Date.now();
    let first: number | null = null;
    setProgress({ sent: 0, total: file.size, startedAt, startOffset: 0, retry: null });
    try {
      const image = await uploadImage(api, file, label, {
        signal: ac.signal,
        onProgress: (sent, total) => {
          first ??= sent;
          setProgress((p) => ({ sent, total, startedAt: p?.startedAt ?? startedAt, startOffset: first ?? 0, retry: null }));
        },
        onRetry: (offset, waitMs) =>
          setProgress((p) => (p ? { ...p, sent: offset, retry: `The connection dropped; continuing from ${size(offset)} in ${Math.ceil(waitMs / 1000)} s…` } : p)),
      });
      setDone(image);
      setFile(null);
      setName("");
      if (fileInput.current) fileInput.current.value = "";
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      abort.current = null;
      setProgress(null);
      void refresh();
    }
  };

  const remove = async () => {
    if (!removing) return;
    setRemoveBusy(true);
    setRemoveError(null);
    try {
      await api.deleteImage(removing.sha256);
      setRemoving(null);
      void refresh();
    } catch (err) {
      setRemoveError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setRemoveBusy(false);
    }
  };

  const pct = progress && progress.total > 0 ? Math.floor((100 * progress.sent) / progress.total) : null;
  const elapsed = progress ? (Date.now() - progress.startedAt) / 1000 : 0;
  const rate = progress && elapsed > 0.5 ? (progress.sent - progress.startOffset) / elapsed : null;

  return (
    <section class="card card-wide" aria-labelledby="images-title" id="images">
      <h2 id="images-title">Imported images</h2>
      <p class="muted">
        Bring a VM disk (qcow2, raw, ISO, VMDK, VHDX, VHD) or a container image (a <span class="mono">docker save</span> or OCI layout tarball) onto the device from
        this computer. It is checked (format, sha256, no backing file) and kept by its digest; an app whose image has that sha256 runs from it without any download.
      </p>
      <form class="form" onSubmit={submit} noValidate>
        <div class="field">
          <label for="image-file">Image file</label>
          <input
            id="image-file"
            ref={fileInput}
            type="file"
            class="input"
            accept=".qcow2,.img,.raw,.iso,.vmdk,.vhdx,.vhd,.tar,application/x-tar"
            aria-describedby={error ? "image-upload-error" : undefined}
            aria-invalid={error ? "true" : undefined}
            disabled={!!progress}
            onChange={(e) => {
              const f = e.currentTarget.files?.[0] ?? null;
              setFile(f);
              if (f && !name) setName(f.name);
              setError(null);
            }}
          />
        </div>
        <div class="field">
          <label for="image-name">Name</label>
          <p class="field-hint" id="image-name-hint">
            How apps and this page show it (one line, up to 128 characters).
          </p>
          <input id="image-name" class="input" value={name} maxLength={128} disabled={!!progress} aria-describedby="image-name-hint" onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        {progress && (
          <p class="app-progress" id="image-progress">
            <progress max={100} value={pct ?? 0} aria-label="Image upload progress" />
            <span>
              Uploading: {pct ?? 0} % ({size(progress.sent)} of {size(progress.total)}
              {rate ? `, ${size(rate)}/s` : ""})
            </span>
            {progress.retry && (
              <span role="status" class="muted">
                {" "}
                {progress.retry}
              </span>
            )}
          </p>
        )}
        <FormError id="image-upload-error" messages={error ? [error] : []} />
        {done && (
          <p class="notice" role="status" id="image-uploaded">
            Imported “{done.name}”: {FORMAT_LABEL[done.format] ?? done.format}, {size(done.size)}, sha256 <span class="mono">{done.sha256}</span>
          </p>
        )}
        <div class="form-actions">
          <button type="submit" class="button primary" id="image-upload" disabled={!!progress}>
            Upload and verify
          </button>
          {progress && (
            <button type="button" class="button secondary" id="image-upload-stop" onClick={() => abort.current?.abort()}>
              Stop the upload
            </button>
          )}
        </div>
      </form>
      {listError && (
        <div class="banner banner-error" role="alert">
          Could not load the imported images: {listError}
        </div>
      )}
      {loaded && images.length === 0 && <p class="muted">No imported images yet.</p>}
      {images.length > 0 && (
        <DataTable id="imported-images" label="Imported images" columns={["Name", "Format", "Size", "sha256", "Used by", ""]}>
          {images.map((img) => (
            <tr key={img.sha256} data-image={img.name}>
              <th scope="row">{img.name}</th>
              <td>{FORMAT_LABEL[img.format] ?? img.format}</td>
              <td>{size(img.size)}</td>
              <td class="mono" title={img.sha256}>
                {img.sha256.slice(0, 16)}…
              </td>
              <td>{img.usedBy.contentTrees.length === 0 ? "nothing" : [...img.usedBy.apps.map((a) => a.name), ...(img.usedBy.apps.length ? [] : img.usedBy.contentTrees.map((t) => t.name))].join(", ")}</td>
              <td>
                <button type="button" class="button secondary small" onClick={() => (setRemoving(img), setRemoveError(null))} aria-label={`Delete image ${img.name}`}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </DataTable>
      )}
      {uploads.length > 0 && !progress && (
        <div id="open-uploads">
          <p class="muted">Unfinished uploads: choose the same file again to continue one, or cancel it (the device keeps its bytes for a day).</p>
          <ul>
            {uploads.map((u) => (
              <li key={u.id} data-upload={u.name}>
                {u.name}: {size(u.offset)} of {size(u.size)}{" "}
                <button type="button" class="button secondary small" aria-label={`Cancel the upload of ${u.name}`} onClick={() => void api.cancelImageUpload(u.id).catch(() => {}).finally(() => void refresh())}>
                  Cancel
                </button>
              </li>
            ))}
          </ul>
        </div>
      )}
      {removing && (
        <ConfirmDialog id="image-delete" title={`Delete the image “${removing.name}”?`} confirmLabel="Delete" danger busy={removeBusy} error={removeError} onConfirm={remove} onCancel={() => setRemoving(null)}>
          <p>
            Its file ({size(removing.size)}) is removed from the device. An app whose config names its sha256 could then only run if its datastore can be reached.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
