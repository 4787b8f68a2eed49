// Edits of the device's desired-state document (an EVE EdgeDevConfig as proto3 JSON) made by the Apps page.
// Pure functions: each takes a document and returns a new one, never changing its argument, so the page can
// re-apply the same edit to a freshly loaded document when the device's config changed meanwhile (412).
//
// How a container app is written, after EVE's conventions (lf-edge/eve pkg/pillar):
// - a datastore: `DsContainerRegistry` with fqdn `docker://<host[:port]>`, or `DsHttp`/`DsHttps` with fqdn
//   `<scheme>://<host[:port]>` (reused when one with the same fqdn exists);
// - a content tree of format CONTAINER: URL `repository:tag` in a registry, or the file's path for http(s),
//   with the sha256 (registry: the manifest digest, optional; http: the file's hash, required);
// - the image volume (origin VCOT_DOWNLOAD of that content tree), first in the app's volumeRefList;
// - blank data volumes (origin VCOT_BLANK) mounted at a directory;
// - the app: fixedresources in KiB, userData = base64 of `KEY=VALUE` lines (the container's environment).

import { buildDeviceModel, type ContentTreeModel, type DeviceModel } from "../src/config/model.ts";
import { patchState, type PatchState } from "../src/config/patch-envelopes.ts";
import { interfaceProblemField } from "./interfaces-edit";
import { adapterEntries } from "./adapters-edit";
import { type ImportedImage, withImportedImage } from "./images";
import { decodeBase64, encodeBase64, ENV_KEY_RE, type EnvVar, envToUserData, readUserData, type UserDataKind } from "../src/config/userdata.ts";

export type Doc = Record<string, any>;

export type { EnvVar };

/** One extra (data) volume of an app, as the form edits it. */
export interface VolumeInput {
  /** The existing volume's uuid; absent for a volume to create. */
  uuid?: string;
  /** Required for a new volume; for an existing one, absent keeps its size. */
  sizeMiB?: number;
  mountDir: string;
  readonly: boolean;
}

export type ImageSource =
  | { kind: "registry"; registry: string; repository: string; digest?: string }
  | { kind: "url"; url: string; sha256: string }
  /** An image uploaded to the device (GET /api/v1/images): named by its sha256, never downloaded. */
  | { kind: "imported"; image: ImportedImage | null };

export interface ContainerAppInput {
  name: string;
  source: ImageSource;
  memoryMiB: number;
  vcpus: number;
  env: EnvVar[];
  volumes: VolumeInput[];
  /** Assignment groups of deviceIoList given to the app (adapters-edit.ts). */
  adapters?: string[];
}

/** What an edit may change of an existing app; absent fields stay as they are. */
export interface AppChanges {
  env?: EnvVar[];
  memoryMiB?: number;
  vcpus?: number;
  /** The app's complete list of extra volumes (after the image): listed ones are kept or added, others removed. */
  volumes?: VolumeInput[];
  /** The app's complete list of adapters (assignment groups); an empty list removes them all. */
  adapters?: string[];
}

export interface EditOptions {
  /** Makes new UUIDs; crypto.randomUUID() unless a test supplies its own. */
  newId?: () => string;
}

/** A form field a problem belongs to: `name`, `memory`, `env.2.key`, `volumes.0.mountDir`, … */
export type FieldKey = string;

export interface FieldProblem {
  field: FieldKey;
  message: string;
}

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export { ENV_KEY_RE };
const HEX64_RE = /^[0-9a-f]{64}$/;
const HOST_RE = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?$/;
const REPO_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const MIB = 1024 * 1024;

export const LIMITS = { minMemoryMiB: 8, maxMemoryMiB: 1024 * 1024, maxVcpus: 256, maxVolumeMiB: 16 * 1024 * 1024 };

// ---- user data (the environment): read and written by config/userdata.ts, the parser the device uses

export { decodeBase64, encodeBase64, envToUserData };

export interface ParsedUserData {
  /** `env`: KEY=VALUE lines (editable); `cloud-config`: a #cloud-config (its runcmd KEY=VALUE entries are shown,
   *  but the document is not rewritten); `other`: text or bytes this page does not edit (the variables the device
   *  still reads from it are shown); `none`: no user data. */
  kind: UserDataKind;
  /** The variables as the device reads them, in order (EVE_ECO_CMD included). */
  env: EnvVar[];
}

export function parseUserData(userData: string | undefined | null): ParsedUserData {
  const u = readUserData(userData);
  return { kind: u.kind, env: u.vars };
}

// ---- normalising what the operator typed

/** `docker://127.0.0.1:5000/` → `127.0.0.1:5000`. */
export function normalizeRegistry(input: string): string {
  return input
    .trim()
    .replace(/^(docker|oci|https?):\/\//i, "")
    .replace(/\/+$/, "")
    .toLowerCase();
}

/** `evebox/busybox` → `evebox/busybox:latest`; a tag or digest already there is kept. */
export function normalizeRepository(input: string): string {
  const repo = input.trim().replace(/^\/+/, "");
  if (!repo || repo.includes("@")) return repo;
  const last = repo.slice(repo.lastIndexOf("/") + 1);
  return last.includes(":") ? repo : `${repo}:latest`;
}

/** `sha256:ABC…` → `abc…`; "" stays "". */
export function normalizeSha256(input: string | undefined): string {
  return (input ?? "").trim().replace(/^sha256:/i, "").toLowerCase();
}

/**
 * What an operator pastes into the repository field, split: `127.0.0.1:5000/team/app:1@sha256:…` gives the
 * registry (when its first part looks like a host), the repository:tag and the digest.
 */
export function splitImageReference(input: string): { registry?: string; repository: string; digest?: string } {
  let rest = input.trim().replace(/^(docker|oci):\/\//i, "");
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = normalizeSha256(rest.slice(at + 1));
    rest = rest.slice(0, at);
  }
  const slash = rest.indexOf("/");
  const first = slash > 0 ? rest.slice(0, slash) : "";
  if (first && (first.includes(".") || first.includes(":") || first === "localhost")) {
    return { registry: first.toLowerCase(), repository: rest.slice(slash + 1), ...(digest ? { digest } : {}) };
  }
  return { repository: rest, ...(digest ? { digest } : {}) };
}

// ---- validation of the form's input (the device checks the document again; this catches what it can early)

export function validateContainerAppInput(input: ContainerAppInput, doc: Doc | null): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const name = input.name.trim();
  if (!name) problems.push({ field: "name", message: "Enter a name for the app." });
  else if (!NAME_RE.test(name)) {
    problems.push({ field: "name", message: "Use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit." });
  } else if ((doc?.apps ?? []).some((a: Doc) => a.displayname === name)) {
    problems.push({ field: "name", message: `There is already an app named ${name}. Choose another name.` });
  }
  const src = input.source;
  if (src.kind === "registry") {
    const host = normalizeRegistry(src.registry);
    if (!host) problems.push({ field: "registry", message: "Enter the registry's host, such as 127.0.0.1:5000." });
    else if (!HOST_RE.test(host) || hasBadPort(host)) {
      problems.push({ field: "registry", message: `"${src.registry.trim()}" is not a registry host (host or host:port).` });
    }
    const repoProblem = checkRepository(normalizeRepository(src.repository));
    if (repoProblem) problems.push({ field: "repository", message: repoProblem });
    const digest = normalizeSha256(src.digest);
    if (digest && !HEX64_RE.test(digest)) {
      problems.push({ field: "sha256", message: "The digest is 64 hexadecimal digits, optionally after sha256:." });
    }
  } else if (src.kind === "imported") {
    if (!src.image) problems.push({ field: "imported", message: "Choose an image uploaded to the device (on the Storage page)." });
  } else {
    const urlProblem = checkDownloadUrl(src.url);
    if (urlProblem) problems.push({ field: "url", message: urlProblem });
    const sha = normalizeSha256(src.sha256);
    if (!sha) problems.push({ field: "sha256", message: "Enter the file's sha256, so the device can verify what it downloads." });
    else if (!HEX64_RE.test(sha)) problems.push({ field: "sha256", message: "The sha256 is 64 hexadecimal digits." });
  }
  problems.push(...validateResources(input.memoryMiB, input.vcpus));
  problems.push(...validateEnv(input.env));
  problems.push(...validateVolumes(input.volumes));
  return problems;
}

export function validateAppChanges(changes: AppChanges): FieldProblem[] {
  const problems: FieldProblem[] = [];
  if (changes.memoryMiB !== undefined || changes.vcpus !== undefined) {
    problems.push(...validateResources(changes.memoryMiB ?? LIMITS.minMemoryMiB, changes.vcpus ?? 1));
  }
  if (changes.env) problems.push(...validateEnv(changes.env));
  if (changes.volumes) problems.push(...validateVolumes(changes.volumes));
  return problems;
}

function validateResources(memoryMiB: number, vcpus: number): FieldProblem[] {
  const problems: FieldProblem[] = [];
  if (!Number.isInteger(memoryMiB) || memoryMiB < LIMITS.minMemoryMiB || memoryMiB > LIMITS.maxMemoryMiB) {
    problems.push({ field: "memory", message: `Memory is a whole number of MiB, at least ${LIMITS.minMemoryMiB}.` });
  }
  if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > LIMITS.maxVcpus) {
    problems.push({ field: "vcpus", message: `vCPUs is a whole number from 1 to ${LIMITS.maxVcpus}.` });
  }
  return problems;
}

function validateEnv(env: EnvVar[]): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const seen = new Set<string>();
  env.forEach((e, i) => {
    const key = e.key.trim();
    if (!key && e.value === "") return; // an empty row is ignored
    if (!key) problems.push({ field: `env.${i}.key`, message: `Variable ${i + 1}: enter a name.` });
    else if (!ENV_KEY_RE.test(key)) {
      problems.push({ field: `env.${i}.key`, message: `${key}: a name is letters, digits and '_', not starting with a digit.` });
    } else if (seen.has(key)) problems.push({ field: `env.${i}.key`, message: `${key} is set twice.` });
    seen.add(key);
    if (/[\r\n]/.test(e.value)) problems.push({ field: `env.${i}.value`, message: `${key || `Variable ${i + 1}`}: a value is one line.` });
  });
  return problems;
}

function validateVolumes(volumes: VolumeInput[]): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const dirs = new Set<string>();
  volumes.forEach((v, i) => {
    if (v.uuid === undefined || v.sizeMiB !== undefined) {
      const size = v.sizeMiB ?? Number.NaN;
      if (!Number.isInteger(size) || size < 1 || size > LIMITS.maxVolumeMiB) {
        problems.push({ field: `volumes.${i}.size`, message: `Volume ${i + 1}: the size is a whole number of MiB, at least 1.` });
      }
    }
    const dir = normalizeMountDir(v.mountDir);
    if (v.uuid !== undefined && dir === "") return; // an existing volume mounted where the runtime decides
    if (!dir.startsWith("/") || dir === "/" || dir.split("/").some((part) => part === "..")) {
      problems.push({ field: `volumes.${i}.mountDir`, message: `Volume ${i + 1}: the mount directory is an absolute path such as /data (not / itself).` });
    } else if (dirs.has(dir)) {
      problems.push({ field: `volumes.${i}.mountDir`, message: `Volume ${i + 1}: ${dir} is already used by another volume.` });
    }
    dirs.add(dir);
  });
  return problems;
}

function normalizeMountDir(dir: string): string {
  const d = dir.trim().replace(/\/+/g, "/");
  return d.length > 1 ? d.replace(/\/$/, "") : d;
}

function hasBadPort(host: string): boolean {
  const port = /:(\d+)$/.exec(host)?.[1];
  return port !== undefined && (Number(port) < 1 || Number(port) > 65535);
}

function checkRepository(repo: string): string | null {
  if (!repo) return "Enter the image's repository and tag, such as evebox/busybox:latest.";
  let name = repo;
  const at = name.indexOf("@");
  if (at >= 0) {
    if (!/^sha256:[0-9a-f]{64}$/.test(name.slice(at + 1))) return "The digest after @ is sha256: and 64 hexadecimal digits.";
    name = name.slice(0, at);
  } else {
    const colon = name.lastIndexOf(":");
    if (colon > name.lastIndexOf("/")) {
      if (!TAG_RE.test(name.slice(colon + 1))) return `"${name.slice(colon + 1)}" is not a valid tag.`;
      name = name.slice(0, colon);
    }
  }
  if (!name.split("/").every((c) => REPO_COMPONENT_RE.test(c))) {
    return "A repository is lower-case parts separated by '/', such as evebox/busybox (the registry goes in its own field).";
  }
  return null;
}

function checkDownloadUrl(input: string): string | null {
  const text = input.trim();
  if (!text) return "Enter the image tarball's address, such as http://10.0.0.5:8000/images/app.tar.";
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `"${text}" is not a web address.`;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return "The address must start with http:// or https://.";
  if (!url.hostname) return "The address needs a host.";
  if (url.username || url.password) return "Do not put credentials in the address.";
  if (url.pathname === "/" || url.pathname === "") return "The address must name the file, not just the server.";
  return null;
}

// ---- the edits

export function addContainerApp(doc: Doc | null, input: ContainerAppInput, options: EditOptions = {}): Doc {
  const newId = options.newId ?? (() => crypto.randomUUID());
  const next = clone(doc ?? {});
  const name = input.name.trim();
  next.datastores ??= [];
  next.contentInfo ??= [];
  next.volumes ??= [];
  next.apps ??= [];

  // Datastore and content tree.
  let dsId: string;
  let tree: Doc | null = null;
  let ctId = newId();
  if (input.source.kind === "imported") {
    if (!input.source.image) throw new Error("choose an image uploaded to the device");
    const imported = withImportedImage(next, input.source.image, newId);
    next.datastores = imported.doc.datastores;
    next.contentInfo = imported.doc.contentInfo;
    ctId = imported.contentTreeId;
  } else if (input.source.kind === "registry") {
    const fqdn = `docker://${normalizeRegistry(input.source.registry)}`;
    dsId = findOrAddDatastore(next, { dType: "DsContainerRegistry", fqdn }, newId);
    const url = normalizeRepository(input.source.repository);
    const digest = normalizeSha256(input.source.digest);
    tree = { uuid: ctId, dsId, URL: url, iformat: "CONTAINER", ...(digest ? { sha256: digest } : {}), displayName: url };
  } else {
    const url = new URL(input.source.url.trim());
    const https = url.protocol === "https:";
    const fqdn = `${url.protocol}//${url.host}`;
    dsId = findOrAddDatastore(next, { dType: https ? "DsHttps" : "DsHttp", fqdn }, newId);
    const path = url.pathname.replace(/^\/+/, "") + url.search;
    const file = decodeURIComponentSafe(url.pathname.slice(url.pathname.lastIndexOf("/") + 1)) || path;
    tree = { uuid: ctId, dsId, URL: path, iformat: "CONTAINER", sha256: normalizeSha256(input.source.sha256), displayName: file };
  }
  if (tree) next.contentInfo.push(tree);

  // Image volume, then data volumes.
  const imageVolumeId = newId();
  next.volumes.push({
    uuid: imageVolumeId,
    origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: ctId },
    displayName: name,
    generationCount: "0",
  });
  const refs: Doc[] = [{ uuid: imageVolumeId }];
  for (const v of input.volumes) refs.push(addDataVolume(next, name, v, newId));

  next.apps.push({
    uuidandversion: { uuid: newId(), version: "1" },
    displayname: name,
    activate: true,
    fixedresources: resources(input.memoryMiB, input.vcpus),
    volumeRefList: refs,
    ...userDataField(input.env),
    interfaces: [],
    ...(input.adapters?.length ? { adapters: adapterEntries(next, input.adapters) } : {}),
  });
  return next;
}

export function updateApp(doc: Doc, uuid: string, changes: AppChanges, options: EditOptions = {}): Doc {
  const newId = options.newId ?? (() => crypto.randomUUID());
  const next = clone(doc);
  const app = findApp(next, uuid);
  if (!app) throw new Error(`no app with uuid ${uuid} in the configuration`);

  if (changes.memoryMiB !== undefined || changes.vcpus !== undefined) {
    const current = app.fixedresources ?? {};
    const memoryMiB = changes.memoryMiB ?? Math.round(Number(current.memory ?? 0) / 1024);
    const vcpus = changes.vcpus ?? Number(current.vcpus ?? 1);
    app.fixedresources = { ...current, ...resources(memoryMiB, vcpus) };
  }
  if (changes.env) {
    const userData = envToUserData(changes.env);
    if (userData) app.userData = userData;
    else delete app.userData;
  }
  if (changes.volumes) {
    const refs: Doc[] = app.volumeRefList ?? [];
    const [imageRef, ...extraRefs] = refs;
    const kept = new Set(changes.volumes.map((v) => v.uuid).filter(Boolean));
    const dropped = extraRefs.filter((r) => !kept.has(r.uuid)).map((r) => r.uuid as string);
    const nextRefs: Doc[] = imageRef ? [imageRef] : [];
    for (const v of changes.volumes) {
      if (v.uuid) {
        const ref = extraRefs.find((r) => r.uuid === v.uuid);
        if (!ref) throw new Error(`the app has no volume ${v.uuid}`);
        const mountDir = normalizeMountDir(v.mountDir);
        const { mountDir: _old, ...rest } = ref;
        nextRefs.push(mountDir ? { ...rest, mountDir } : rest);
        const vol = (next.volumes ?? []).find((x: Doc) => x.uuid === v.uuid);
        if (vol) {
          if (v.sizeMiB !== undefined) vol.maxsizebytes = String(v.sizeMiB * MIB);
          if (v.readonly) vol.readonly = true;
          else delete vol.readonly;
        }
      } else {
        next.volumes ??= [];
        nextRefs.push(addDataVolume(next, app.displayname ?? "app", v, newId));
      }
    }
    app.volumeRefList = nextRefs;
    removeUnreferenced(next, dropped, []);
  }
  if (changes.adapters) {
    if (changes.adapters.length) app.adapters = adapterEntries(next, changes.adapters);
    else delete app.adapters;
  }
  bumpVersion(app);
  return next;
}

/** Removes the app, its volumes and, when nothing else refers to them, its content trees and datastores. */
export function removeApp(doc: Doc, uuid: string): Doc {
  const next = clone(doc);
  const index = (next.apps ?? []).findIndex((a: Doc) => a.uuidandversion?.uuid === uuid);
  if (index < 0) throw new Error(`no app with uuid ${uuid} in the configuration`);
  const [app] = next.apps.splice(index, 1) as Doc[];
  const volumeIds = (app!.volumeRefList ?? []).map((r: Doc) => r.uuid).filter(Boolean);
  const driveDatastores = (app!.drives ?? []).map((d: Doc) => d.image?.dsId).filter(Boolean);
  removeUnreferenced(next, volumeIds, driveDatastores);
  return next;
}

// ---- reading an app for the pages

export interface AppView {
  uuid: string;
  name: string;
  version: string;
  activate: boolean;
  kind: "container" | "vm" | "unknown";
  memoryMiB: number;
  vcpus: number;
  userData: ParsedUserData;
  /** The image the app is made from, in words: `127.0.0.1:5000/evebox/busybox:latest`, or a URL. */
  image: string;
  imageSha256: string;
  /** Extra volumes, in volumeRefList order after the image. */
  volumes: Array<{ uuid: string; name: string; sizeMiB: number | null; mountDir: string; readonly: boolean; blank: boolean }>;
  /** The adapters (assignment groups, as the app names them). */
  adapters: string[];
  /** The config's patch envelopes naming this app (served to it by the metadata server when ACTIVE). */
  patchEnvelopes: Array<{ uuid: string; name: string; version: string; state: PatchState; files: string[] }>;
}

// The device model of a document (config/model.ts, the reading the device makes), once per document: the page's
// documents are never changed in place (every edit returns a new one).
const models = new WeakMap<Doc, ReturnType<typeof buildDeviceModel>>();
function modelOf(doc: Doc): DeviceModel {
  return builtOf(doc).model;
}
function builtOf(doc: Doc): ReturnType<typeof buildDeviceModel> {
  let m = models.get(doc);
  if (!m) models.set(doc, (m = buildDeviceModel(doc)));
  return m;
}
/** An envelope's state as the device would report it from this document (its problems count: a volume named that is not there). */
function envelopeState(doc: Doc, pe: DeviceModel["patchEnvelopes"][number]): PatchState {
  return patchState(pe, builtOf(doc).problems.filter((p) => p.objectKind === "patchEnvelope" && p.objectId === pe.uuid).length);
}

/** An app as the device reads it (its kind, resources, environment, image and volumes), for the app's page. */
export function readApp(doc: Doc | null, uuid: string): AppView | null {
  const model = doc ? modelOf(doc) : null;
  const app = model?.apps.find((a) => a.uuid === uuid);
  if (!model || !app) return null;
  const volume = (id: string) => model.volumes.find((v) => v.uuid === id);
  const tree = app.imageContentTree ? model.contentTrees.find((c) => c.uuid === app.imageContentTree) : undefined;
  return {
    uuid,
    name: app.name,
    version: app.version,
    activate: app.activate,
    kind: app.kind ?? "unknown",
    memoryMiB: Math.round(app.resources.memoryKiB / 1024),
    vcpus: app.resources.vcpus,
    userData: { kind: app.userData.kind, env: app.userData.vars },
    image: tree ? imageLocation(tree) : "",
    imageSha256: tree?.sha256 ?? "",
    adapters: app.adapters.map((a) => a.name),
    volumes: app.volumeRefs.slice(1).map((r) => {
      const v = volume(r.uuid);
      return {
        uuid: r.uuid,
        name: v?.name || r.uuid,
        sizeMiB: v && v.sizeBytes > 0 ? Math.round(v.sizeBytes / MIB) : null,
        mountDir: r.mountDir ?? "",
        readonly: !!v?.readOnly,
        blank: v?.origin === "blank",
      };
    }),
    patchEnvelopes: model.patchEnvelopes
      .filter((pe) => pe.apps.includes(uuid))
      .map((pe) => ({ uuid: pe.uuid, name: pe.name, version: pe.version, state: envelopeState(doc!, pe), files: pe.artifacts.map((a) => a.fileName).filter(Boolean) })),
  };
}

/** Where the image comes from, in words: the registry host and repository, or the URL the device fetches. */
function imageLocation(tree: ContentTreeModel): string {
  const src = tree.source;
  if (!src) return tree.url;
  return src.kind === "registry" ? `${normalizeRegistry(src.fqdn)}/${src.url}` : src.url;
}

/** The volumes a purge of the app recreates empty (its extra volumes; the image volume is rebuilt from the image). */
export function purgedVolumes(doc: Doc | null, uuid: string): AppView["volumes"] {
  return (readApp(doc, uuid)?.volumes ?? []).filter((v) => !v.readonly || v.blank);
}

// ---- the device's problems, mapped to form fields

/**
 * The form field a problem of the device (path like `apps[3].fixedresources.memory`) belongs to, for the app
 * `uuid` in the document that was sent; null when it is about something else.
 */
export function problemField(doc: Doc, uuid: string, path: string): FieldKey | null {
  const appIndex = (doc.apps ?? []).findIndex((a: Doc) => a.uuidandversion?.uuid === uuid);
  if (appIndex < 0) return null;
  const app = doc.apps[appIndex];
  const refs: Doc[] = app.volumeRefList ?? [];
  const isRegistry = (ctUuid: string) => {
    const tree = (doc.contentInfo ?? []).find((c: Doc) => c.uuid === ctUuid);
    const ds = (doc.datastores ?? []).find((d: Doc) => d.id === tree?.dsId);
    return ds?.dType === "DsContainerRegistry";
  };
  const imageVolume = refs[0] ? (doc.volumes ?? []).find((v: Doc) => v.uuid === refs[0]!.uuid) : undefined;
  const imageTreeId: string | undefined = imageVolume?.origin?.downloadContentTreeID;
  const imageTree = imageTreeId ? (doc.contentInfo ?? []).find((c: Doc) => c.uuid === imageTreeId) : undefined;

  let m = /^apps\[(\d+)\]\.?(.*)$/.exec(path);
  if (m) {
    if (Number(m[1]) !== appIndex) return null;
    const rest = m[2]!;
    if (rest.startsWith("displayname")) return "name";
    if (rest.startsWith("fixedresources.vcpus")) return "vcpus";
    if (rest.startsWith("fixedresources")) return "memory";
    if (rest.startsWith("userData")) return "env";
    if (rest.startsWith("startDelayInSeconds")) return "vm.startDelay";
    if (rest.startsWith("interfaces")) return interfaceProblemField(rest, app);
    const ref = /^volumeRefList\[(\d+)\](?:\.(\w+))?/.exec(rest);
    if (ref) return Number(ref[1]) === 0 ? "source" : ref[2] === "mountDir" ? `volumes.${Number(ref[1]) - 1}.mountDir` : `volumes.${Number(ref[1]) - 1}`;
    if (rest.startsWith("volumeRefList")) return "source";
    if (rest.startsWith("adapters")) return "adapters";
    return null;
  }
  m = /^volumes\[(\d+)\]\.?(.*)$/.exec(path);
  if (m) {
    const vol = (doc.volumes ?? [])[Number(m[1])];
    const at = refs.findIndex((r) => r.uuid === vol?.uuid);
    if (at < 0) return null;
    if (at === 0) return "source";
    return /^maxsizebytes/i.test(m[2]!) ? `volumes.${at - 1}.size` : `volumes.${at - 1}`;
  }
  m = /^contentInfo\[(\d+)\]\.?(.*)$/.exec(path);
  if (m) {
    const tree = (doc.contentInfo ?? [])[Number(m[1])];
    if (!tree || tree.uuid !== imageTreeId) return null;
    if (m[2]!.startsWith("sha256")) return "sha256";
    if (m[2]!.startsWith("URL")) return isRegistry(tree.uuid) ? "repository" : "url";
    return "source";
  }
  m = /^datastores\[(\d+)\]/.exec(path);
  if (m) {
    const ds = (doc.datastores ?? [])[Number(m[1])];
    if (!ds || !imageTree || imageTree.dsId !== ds.id) return null;
    return ds.dType === "DsContainerRegistry" ? "registry" : "url";
  }
  return null;
}

// ---- the plan, in words

export interface PlanStep {
  action: "add" | "remove" | "change";
  kind: string;
  id: string;
  name: string;
  fields?: string[];
}

const KIND_LABELS: Record<string, string> = {
  app: "app",
  volume: "volume",
  contentTree: "image (content tree)",
  datastore: "datastore",
  networkInstance: "network instance",
  configItem: "setting",
  systemAdapter: "network adapter",
  baseos: "base OS",
  deviceName: "device name",
};

const FIELD_LABELS: Record<string, string> = {
  userData: "environment",
  fixedresources: "memory and vCPUs",
  volumeRefList: "volumes",
  uuidandversion: "version",
  activate: "whether it runs",
  displayname: "name",
  displayName: "name",
  maxsizebytes: "size",
  maxSizeBytes: "size limit",
  readonly: "read-only",
  restart: "restart counter",
  purge: "purge counter",
  interfaces: "network interfaces",
  generationCount: "generation",
  URL: "address",
  sha256: "sha256",
  fqdn: "address",
  origin: "origin",
};

export const ACTION_LABELS: Record<PlanStep["action"], string> = { add: "Add", remove: "Remove", change: "Change" };

export function kindLabel(kind: string): string {
  return KIND_LABELS[kind] ?? kind;
}

/** Human words for the changed fields of a `change` step (unknown ones keep their own name). */
export function fieldLabels(fields: string[] | undefined): string[] {
  return [...new Set((fields ?? []).map((f) => FIELD_LABELS[f] ?? f))];
}

/**
 * Details of one step, from the documents before and after: what the environment, resources and volumes of a
 * changed app become. Values of variables are not shown (they may be secrets), only their names.
 */
export function stepDetails(step: PlanStep, before: Doc | null, after: Doc): string[] {
  if (step.kind === "app" && step.action === "add") {
    const b = readApp(after, step.id);
    if (!b) return [];
    const parts = [`${b.memoryMiB} MiB memory`, `${b.vcpus} ${b.vcpus === 1 ? "vCPU" : "vCPUs"}`];
    const n = b.userData.env.length;
    if (n) parts.push(`${n} environment ${n === 1 ? "variable" : "variables"}`);
    if (b.volumes.length) parts.push(`${b.volumes.length} extra ${b.volumes.length === 1 ? "volume" : "volumes"}`);
    return [parts.join(", ")];
  }
  if (step.kind !== "app" || step.action !== "change") {
    if (step.action === "add" && step.kind === "volume") {
      const v = (after.volumes ?? []).find((x: Doc) => x.uuid === step.id);
      const bytes = Number(v?.maxsizebytes ?? 0);
      const parts = [v?.origin?.type === "VCOT_BLANK" ? "empty" : "from the image"];
      if (bytes > 0) parts.push(`${Math.round(bytes / MIB)} MiB`);
      if (v?.readonly) parts.push("read-only");
      return [parts.join(", ")];
    }
    return [];
  }
  const a = readApp(before, step.id);
  const b = readApp(after, step.id);
  if (!a || !b) return [];
  const out: string[] = [];
  if (a.memoryMiB !== b.memoryMiB) out.push(`memory ${a.memoryMiB} MiB → ${b.memoryMiB} MiB`);
  if (a.vcpus !== b.vcpus) out.push(`vCPUs ${a.vcpus} → ${b.vcpus}`);
  const envA = new Map(a.userData.env.map((e) => [e.key, e.value]));
  const envB = new Map(b.userData.env.map((e) => [e.key, e.value]));
  const added = [...envB.keys()].filter((k) => !envA.has(k));
  const removed = [...envA.keys()].filter((k) => !envB.has(k));
  const changed = [...envB.keys()].filter((k) => envA.has(k) && envA.get(k) !== envB.get(k));
  if (added.length) out.push(`environment: ${added.join(", ")} added`);
  if (changed.length) out.push(`environment: ${changed.join(", ")} changed`);
  if (removed.length) out.push(`environment: ${removed.join(", ")} removed`);
  const volsA = new Map(a.volumes.map((v) => [v.uuid, v]));
  for (const v of b.volumes) {
    const old = volsA.get(v.uuid);
    if (!old) out.push(`volume ${v.mountDir || v.name} added`);
    else {
      if (old.mountDir !== v.mountDir) out.push(`volume ${old.mountDir} now mounted at ${v.mountDir}`);
      if (old.readonly !== v.readonly) out.push(`volume ${v.mountDir} ${v.readonly ? "read-only" : "writable"}`);
      if (old.sizeMiB !== v.sizeMiB) out.push(`volume ${v.mountDir} ${old.sizeMiB ?? "?"} MiB → ${v.sizeMiB ?? "?"} MiB`);
    }
    volsA.delete(v.uuid);
  }
  for (const v of volsA.values()) out.push(`volume ${v.mountDir || v.name} removed (its data is deleted)`);
  if (a.version !== b.version) out.push(`version ${a.version || "–"} → ${b.version}`);
  return out;
}

// ---- helpers

function clone<T>(value: T): T {
  return structuredClone(value);
}

function findApp(doc: Doc, uuid: string): Doc | undefined {
  return (doc.apps ?? []).find((a: Doc) => a.uuidandversion?.uuid === uuid);
}

function resources(memoryMiB: number, vcpus: number): Doc {
  const kib = Math.round(memoryMiB * 1024);
  return { memory: kib, maxmem: kib, vcpus };
}

function userDataField(env: EnvVar[]): Doc {
  const userData = envToUserData(env);
  return userData ? { userData } : {};
}

export function bumpVersion(app: Doc): void {
  const current = Number.parseInt(String(app.uuidandversion?.version ?? "0"), 10);
  app.uuidandversion = { ...app.uuidandversion, version: String(Number.isFinite(current) ? current + 1 : 1) };
}

export function findOrAddDatastore(doc: Doc, want: { dType: string; fqdn: string }, newId: () => string): string {
  const same = (doc.datastores as Doc[]).find(
    (d) => d.dType === want.dType && String(d.fqdn ?? "").replace(/\/+$/, "").toLowerCase() === want.fqdn.toLowerCase() && !d.dpath,
  );
  if (same) return same.id;
  const id = newId();
  doc.datastores.push({ id, dType: want.dType, fqdn: want.fqdn });
  return id;
}

function addDataVolume(doc: Doc, appName: string, v: VolumeInput, newId: () => string): Doc {
  const uuid = newId();
  const taken = new Set((doc.volumes as Doc[]).map((x) => x.displayName));
  let displayName = `${appName}-data`;
  for (let n = 2; taken.has(displayName); n++) displayName = `${appName}-data-${n}`;
  doc.volumes.push({
    uuid,
    origin: { type: "VCOT_BLANK" },
    maxsizebytes: String((v.sizeMiB ?? 0) * MIB),
    displayName,
    generationCount: "0",
    ...(v.readonly ? { readonly: true } : {}),
  });
  return { uuid, mountDir: normalizeMountDir(v.mountDir) };
}

/**
 * Removes the given volumes when no app refers to them any more, then content trees no volume (or anything
 * else) refers to, then datastores nothing refers to. "Refers" is any string field anywhere in the rest of the
 * document equal to the id, so a base-OS or another kind of object keeping a content tree keeps it.
 */
export function removeUnreferenced(doc: Doc, volumeIds: string[], datastoreIds: string[]): void {
  const trees = new Set<string>();
  const stores = new Set<string>(datastoreIds);
  for (const id of volumeIds) {
    const index = (doc.volumes ?? []).findIndex((v: Doc) => v.uuid === id);
    if (index < 0) continue;
    const vol = doc.volumes[index];
    doc.volumes.splice(index, 1);
    if (referenced(doc, id)) {
      doc.volumes.splice(index, 0, vol); // another app still uses it
      continue;
    }
    if (vol.origin?.downloadContentTreeID) trees.add(vol.origin.downloadContentTreeID);
  }
  for (const id of trees) {
    const index = (doc.contentInfo ?? []).findIndex((c: Doc) => c.uuid === id);
    if (index < 0) continue;
    const tree = doc.contentInfo[index];
    doc.contentInfo.splice(index, 1);
    if (referenced(doc, id)) {
      doc.contentInfo.splice(index, 0, tree);
      continue;
    }
    if (tree.dsId) stores.add(tree.dsId);
    for (const ds of tree.dsIdsList ?? tree.ds_ids_list ?? []) stores.add(ds);
  }
  for (const id of stores) {
    const index = (doc.datastores ?? []).findIndex((d: Doc) => d.id === id);
    if (index < 0) continue;
    const ds = doc.datastores[index];
    doc.datastores.splice(index, 1);
    if (referenced(doc, id)) doc.datastores.splice(index, 0, ds);
  }
}

function referenced(value: unknown, id: string): boolean {
  if (value === id) return true;
  if (Array.isArray(value)) return value.some((v) => referenced(v, id));
  if (value && typeof value === "object") return Object.values(value).some((v) => referenced(v, id));
  return false;
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
