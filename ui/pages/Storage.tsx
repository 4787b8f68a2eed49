// The Storage page: the content trees (images the device downloads and keeps, by digest) with their state,
// download progress and size, and the volumes built from them or blank, with the apps that mount each. Reads
// GET /api/v1/status (objects with EVE's state names) and GET /api/v1/config (which app mounts which volume),
// refreshed on device events and every 5 s. What the device downloads follows the apps' configuration; images
// can also be uploaded from this computer (components/ImageUpload.tsx: resumable, verified, kept by digest).
import { useCallback, useState } from "preact/hooks";
import { ApiError, type ApiClient, type DeviceStatus, type StatusItem } from "../api";
import { DataTable } from "../components/DataTable";
import { ImageUpload } from "../components/ImageUpload";
import { useLive } from "../hooks";
import { RoleGate } from "../role";
import { Link } from "../router";

const POLL_MS = 5_000;

const STATE_BADGE: Record<string, string> = {
  LOADED: "badge-ok",
  CREATED_VOLUME: "badge-ok",
  DOWNLOADING: "badge-info",
  DOWNLOAD_STARTED: "badge-info",
  VERIFYING: "badge-info",
  LOADING: "badge-info",
  CREATING_VOLUME: "badge-info",
  INITIAL: "badge-neutral",
  ERROR: "badge-error",
};

type Doc = Record<string, any>;

function size(n: unknown): string {
  const b = typeof n === "number" ? n : Number(n);
  if (!Number.isFinite(b) || b <= 0) return "—";
  if (b < 1024 * 1024) return `${(b / 1024).toFixed(1)} KiB`;
  if (b < 1024 ** 3) return `${(b / 1024 / 1024).toFixed(1)} MiB`;
  return `${(b / 1024 ** 3).toFixed(2)} GiB`;
}

function text(v: unknown): string {
  return typeof v === "string" ? v : "";
}

export function Storage({ api }: { api: ApiClient }) {
  const [status, setStatus] = useState<DeviceStatus | null>(null);
  const [config, setConfig] = useState<Doc | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = useCallback(async () => {
    try {
      const [s, c] = await Promise.all([api.status(), api.config().then((c) => c.doc).catch(() => null)]);
      setStatus(s);
      setConfig(c);
      setError(null);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  }, [api]);
  useLive(api.eventsUrl, load, { pollMs: POLL_MS });

  // Which apps mount each volume, and where each volume comes from, from the desired document.
  const mountedBy = new Map<string, { uuid: string; name: string }[]>();
  for (const app of (config?.apps ?? []) as Doc[]) {
    for (const ref of (app.volumeRefList ?? []) as Doc[]) {
      const id = text(ref.uuid).toLowerCase();
      mountedBy.set(id, [...(mountedBy.get(id) ?? []), { uuid: text(app.uuidandversion?.uuid), name: text(app.displayname) }]);
    }
  }
  const origin = new Map<string, string>();
  const treeNames = new Map<string, string>(((config?.contentInfo ?? []) as Doc[]).map((t) => [text(t.uuid).toLowerCase(), text(t.displayName) || text(t.URL)]));
  for (const v of (config?.volumes ?? []) as Doc[]) {
    const tree = text(v.origin?.downloadContentTreeID).toLowerCase();
    origin.set(text(v.uuid).toLowerCase(), tree ? `from ${treeNames.get(tree) ?? tree}` : "blank");
  }

  return (
    <section id="storage" class="page" aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          Storage
        </h1>
        <p class="muted">Images the device keeps (verified by their digest, kept offline) and the volumes of its apps. Upload an image here for a device without a way to a datastore.</p>
      </div>
      {error && (
        <div class="banner banner-error" role="alert">
          Could not load the storage status: {error}
        </div>
      )}
      {/* Uploading and removing images is an admin's (the server refuses anyone else: roles.test.ts). */}
      <RoleGate need="admin" id="images-gate">
        <ImageUpload api={api} />
      </RoleGate>
      {!status && !error && <p class="muted">Loading…</p>}
      {status && (
        <>
          <section class="card card-wide" aria-labelledby="trees-title">
            <h2 id="trees-title">Content trees (images)</h2>
            {status.contentTrees.length === 0 ? (
              <p class="muted">No images: no app needs one.</p>
            ) : (
              <DataTable id="content-trees" label="Content trees" columns={["Name", "State", "Size", "Loaded as"]}>
                    {status.contentTrees.map((t: StatusItem) => (
                      <tr key={text(t.uuid)} data-tree={text(t.name)}>
                        <th scope="row">
                          {text(t.name) || text(t.uuid)}
                          {t.error ? <p class="app-error">{text(t.error)}</p> : null}
                        </th>
                        <td>
                          <span class={`badge ${STATE_BADGE[text(t.state)] ?? "badge-neutral"}`}>{text(t.state)}</span>
                          {text(t.state) === "DOWNLOADING" && typeof t.progress === "number" && (
                            <span class="app-progress">
                              <progress max={100} value={t.progress} aria-label={`Download of ${text(t.name)}`} /> {t.progress} %
                            </span>
                          )}
                        </td>
                        <td>{size(t.sizeBytes)}</td>
                        <td class="mono">{text(t.image) || "—"}</td>
                      </tr>
                    ))}
              </DataTable>
            )}
          </section>
          <section class="card card-wide" aria-labelledby="volumes-title">
            <h2 id="volumes-title">Volumes</h2>
            {status.volumes.length === 0 ? (
              <p class="muted">No volumes.</p>
            ) : (
              <DataTable id="volumes" label="Volumes" columns={["Name", "State", "Size", "Origin", "Mounted by"]}>
                    {status.volumes.map((v: StatusItem) => {
                      const id = text(v.uuid).toLowerCase();
                      const apps = mountedBy.get(id) ?? [];
                      return (
                        <tr key={id} data-volume={text(v.name)}>
                          <th scope="row">
                            {text(v.name) || text(v.uuid)}
                            {v.error ? <p class="app-error">{text(v.error)}</p> : null}
                          </th>
                          <td>
                            <span class={`badge ${STATE_BADGE[text(v.state)] ?? "badge-neutral"}`}>{text(v.state)}</span>
                          </td>
                          <td>{size(v.sizeBytes)}</td>
                          <td>{origin.get(id) ?? "—"}</td>
                          <td>
                            {apps.length === 0
                              ? "no app"
                              : apps.map((a, i) => (
                                  <span key={a.uuid}>
                                    {i > 0 && ", "}
                                    <Link href={`/apps/${encodeURIComponent(a.uuid)}`}>{a.name || a.uuid}</Link>
                                  </span>
                                ))}
                          </td>
                        </tr>
                      );
                    })}
              </DataTable>
            )}
          </section>
        </>
      )}
    </section>
  );
}
