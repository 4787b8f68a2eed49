// The form that creates a container app, or edits one: image source (create only), resources, environment and
// extra volumes. It checks what it can itself, and shows the device's problems next to the fields they are about.
import type { ComponentChildren, TargetedSubmitEvent } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import {
  type AppChanges,
  type AppView,
  type ContainerAppInput,
  type FieldProblem,
  normalizeRegistry,
  splitImageReference,
  validateAppChanges,
  validateContainerAppInput,
  type Doc,
} from "../config-edit";
import { interfacesOf, portMapProblems } from "../interfaces-edit";
import { readVm } from "../vm-edit";
import { sectionFieldId } from "../pages/app-form/ids";
import { InterfacesSection } from "../pages/app-form/InterfacesSection";
import { emptyVm, type InterfaceRow, interfaceRowsFrom, toInterfaces, toVmInput, vmProblems, type VmValues, vmValuesFrom } from "../pages/app-form/values";
import { VmDisksSection, VmImageSection, VmSettingsSection } from "../pages/app-form/VmSection";
import { fieldHelpers, ProblemSummary } from "./form-fields";
import type { HardwareStatus } from "../api";
import { AppAdapters } from "../pages/app-form/AdaptersSection";
import { imageSources, type ImportedImage } from "../images";
import { ImportedImagePicker } from "../pages/app-form/ImportedImagePicker";

/** What the error summary calls a field (env and volume messages name their row themselves). */
const FIELD_NAMES: Record<string, string> = {
  name: "Name",
  registry: "Registry",
  repository: "Repository and tag",
  url: "Address",
  sha256: "sha256",
  memory: "Memory",
  vcpus: "vCPUs",
};

let rowIds = 0;
const nextRowId = () => ++rowIds;

interface EnvRow {
  rowId: number;
  key: string;
  value: string;
}

interface VolumeRow {
  rowId: number;
  uuid?: string;
  size: string;
  mountDir: string;
  readonly: boolean;
  /** An existing volume that is not blank (made from content): shown, kept, not editable here. */
  locked?: boolean;
  name?: string;
}

export interface AppFormValues {
  kind: "container" | "vm";
  name: string;
  sourceKind: "registry" | "url" | "imported";
  /** The uploaded image chosen (its sha256). */
  importedSha: string;
  registry: string;
  repository: string;
  digest: string;
  url: string;
  sha256: string;
  memory: string;
  vcpus: string;
  env: EnvRow[];
  volumes: VolumeRow[];
  vm: VmValues;
  interfaces: InterfaceRow[];
  /** Assignment groups given to the app (AppAdapters). */
  adapters: string[];
}

export function emptyAppForm(doc: Doc | null): AppFormValues {
  // Offer the registry the device already uses, if any.
  const registry = [...(doc?.datastores ?? [])].reverse().find((d: Doc) => d.dType === "DsContainerRegistry");
  return {
    kind: "container",
    vm: emptyVm(),
    interfaces: [],
    name: "",
    sourceKind: "registry",
    importedSha: "",
    registry: registry ? normalizeRegistry(registry.fqdn ?? "") : "",
    repository: "",
    digest: "",
    url: "",
    sha256: "",
    memory: "256",
    vcpus: "1",
    env: [],
    volumes: [],
    adapters: [],
  };
}

export function appFormFrom(view: AppView, doc: Doc | null = null): AppFormValues {
  const vm = view.kind === "vm" ? readVm(doc, view.uuid) : null;
  return {
    kind: view.kind === "vm" ? "vm" : "container",
    vm: vm ? vmValuesFrom(vm) : emptyVm(),
    interfaces: interfaceRowsFrom(interfacesOf(doc, view.uuid)),
    name: view.name,
    sourceKind: "registry",
    importedSha: "",
    registry: "",
    repository: "",
    digest: "",
    url: "",
    sha256: "",
    memory: String(view.memoryMiB || 256),
    vcpus: String(view.vcpus || 1),
    env: view.userData.env.map((e) => ({ rowId: nextRowId(), ...e })),
    volumes: view.volumes.map((v) => ({
      rowId: nextRowId(),
      uuid: v.uuid,
      size: v.sizeMiB === null ? "" : String(v.sizeMiB),
      mountDir: v.mountDir,
      readonly: v.readonly,
      locked: !v.blank,
      name: v.name,
    })),
    adapters: view.adapters,
  };
}

export function toCreateInput(v: AppFormValues, imported: readonly ImportedImage[] = []): ContainerAppInput {
  return {
    name: v.name.trim(),
    source:
      v.sourceKind === "registry"
        ? { kind: "registry", registry: v.registry, repository: v.repository, digest: v.digest }
        : v.sourceKind === "imported"
          ? { kind: "imported", image: imported.find((i) => i.sha256 === v.importedSha) ?? null }
          : { kind: "url", url: v.url, sha256: v.sha256 },
    memoryMiB: toNumber(v.memory),
    vcpus: toNumber(v.vcpus),
    env: v.env.map(({ key, value }) => ({ key, value })),
    // An existing volume keeps its size (the field is not editable); a new one needs one.
    volumes: v.volumes.map((r) => (r.uuid ? { uuid: r.uuid, mountDir: r.mountDir, readonly: r.readonly } : { sizeMiB: toNumber(r.size), mountDir: r.mountDir, readonly: r.readonly })),
    adapters: v.adapters,
  };
}

export function toChanges(v: AppFormValues, envEditable: boolean): AppChanges {
  const input = toCreateInput(v);
  return {
    memoryMiB: input.memoryMiB,
    vcpus: input.vcpus,
    ...(envEditable ? { env: input.env } : {}),
    volumes: input.volumes,
    adapters: input.adapters,
  };
}

function toNumber(s: string): number {
  const t = s.trim();
  return t === "" ? Number.NaN : Number(t);
}

/** The DOM id of the input a field key is about. */
export function fieldDomId(field: string): string {
  const inSection = sectionFieldId(field);
  if (inSection) return inSection;
  const m = /^(env|volumes)\.(\d+)(?:\.(\w+))?$/.exec(field);
  if (m) {
    if (m[1] === "env") return `env-${m[3] === "value" ? "value" : "key"}-${m[2]}`;
    return m[3] === "mountDir" ? `volume-dir-${m[2]}` : `volume-size-${m[2]}`;
  }
  switch (field) {
    case "source":
      return "app-source-registry";
    case "env":
      return "env-add";
    case "adapters":
      return "app-adapters";
    default:
      return `app-${field}`;
  }
}

export interface AppFormProps {
  mode: "create" | "edit";
  initial: AppFormValues;
  /** The current document, for checks such as a name already in use. */
  doc: Doc | null;
  /** Edit: the app being edited (its image and user data are shown, not edited). */
  view?: AppView;
  busy: boolean;
  /** Problems from the device, mapped to fields where possible (the rest have field ""). */
  problems: FieldProblem[];
  /** A general error (the device unreachable, managed, …). */
  error: string | null;
  onSubmit: (values: AppFormValues, envEditable: boolean) => void;
  onCancel: () => void;
  /** The device's own validation of the document these values make (device-check.ts): its problems, at fields. */
  check?: (values: AppFormValues, envEditable: boolean) => FieldProblem[];
  /** The network instances an interface can be on. */
  networks?: { uuid: string; name: string; kind: string; subnet: string | null }[];
  /** Images in the configuration a VM can boot from. */
  images?: { uuid: string; name: string; format: string }[];
  /** The device's hardware (GET /hardware) for the Adapters section; absent: no such section. */
  hardware?: HardwareStatus | null;
  /** Images uploaded to the device (GET /api/v1/images). */
  imported?: readonly ImportedImage[];
}

export function AppForm({ mode, initial, doc, view, busy, problems: external, error, onSubmit, onCancel, check, networks = [], images = [], hardware, imported = [] }: AppFormProps) {
  const uploadedContainers = imageSources(imported, "container");
  const uploadedDisks = imageSources(imported, "vm");
  const [v, setV] = useState<AppFormValues>(initial);
  const [local, setLocal] = useState<FieldProblem[]>([]);
  const formRef = useRef<HTMLFormElement>(null);
  const focusAfter = useRef<string | null>(null);
  const envEditable = mode === "create" || view?.userData.kind === "env" || view?.userData.kind === "none";

  const problems = [...local, ...external];
  const sf = fieldHelpers(problems, fieldDomId);
  const invalid = sf.invalid;

  // Focus: the first field on opening; the first faulty field when problems arrive from the device.
  useEffect(() => {
    formRef.current?.querySelector<HTMLElement>(mode === "create" ? "#app-name" : "#app-memory")?.focus();
  }, []);
  useEffect(() => {
    if (external.length) focusFirst(external);
    else if (error) formRef.current?.querySelector<HTMLElement>(".form-error")?.focus();
  }, [external, error]);
  useEffect(() => {
    if (focusAfter.current) {
      document.getElementById(focusAfter.current)?.focus();
      focusAfter.current = null;
    }
  });

  const focusFirst = (list: FieldProblem[]) => {
    const withField = list.find((p) => p.field && document.getElementById(fieldDomId(p.field)));
    if (withField) document.getElementById(fieldDomId(withField.field))?.focus();
    else formRef.current?.querySelector<HTMLElement>(".form-error")?.focus();
  };

  const set = <K extends keyof AppFormValues>(key: K, value: AppFormValues[K]) => setV((old) => ({ ...old, [key]: value }));
  const setEnv = (i: number, patch: Partial<EnvRow>) => setV((old) => ({ ...old, env: old.env.map((r, j) => (j === i ? { ...r, ...patch } : r)) }));
  const setVolume = (i: number, patch: Partial<VolumeRow>) =>
    setV((old) => ({ ...old, volumes: old.volumes.map((r, j) => (j === i ? { ...r, ...patch } : r)) }));

  const submit = (event: TargetedSubmitEvent<HTMLFormElement>) => {
    event.preventDefault();
    if (busy) return;
    const names = (doc?.apps ?? []).map((a: Doc) => a.displayname);
    const found =
      v.kind === "vm"
        ? vmProblems(mode === "create" ? toVmInput(v.name, v.memory, v.vcpus, v.vm, v.interfaces, imported) : null, v.vm, mode, toNumber(v.memory), toNumber(v.vcpus), names)
        : mode === "create"
          ? validateContainerAppInput(toCreateInput(v, imported), doc)
          : validateAppChanges(toChanges(v, envEditable));
    found.push(...portMapProblems(toInterfaces(v.interfaces)));
    // What the form cannot see is the device's to say: its own validation of the document, here, before the plan.
    if (!found.length && check) found.push(...check(v, envEditable));
    setLocal(found);
    if (found.length) {
      // Wait for the error texts to render, then focus the first faulty field.
      setTimeout(() => focusFirst(found), 0);
      return;
    }
    onSubmit(v, envEditable);
  };

  // Pasting `host:port/repo:tag@sha256:…` into the repository field fills the registry and digest fields.
  const splitRepository = () => {
    const parts = splitImageReference(v.repository);
    setV((old) => ({
      ...old,
      repository: parts.repository,
      registry: parts.registry && (!old.registry.trim() || normalizeRegistry(old.registry) === parts.registry) ? parts.registry : old.registry,
      digest: parts.digest && !old.digest.trim() ? parts.digest : old.digest,
    }));
  };

  const fieldProps = sf.props;
  const fieldError = sf.error;

  const heading = mode === "create" ? (v.kind === "vm" ? "New virtual machine" : "New app") : `Change ${v.name}`;
  return (
    <form ref={formRef} class="form app-form" id="app-form" onSubmit={submit} noValidate aria-labelledby="app-form-title">
      <h2 id="app-form-title" tabIndex={-1}>
        {heading}
      </h2>
      <ProblemSummary id="app-form-error" problems={problems} error={error} f={sf} names={FIELD_NAMES} />

      {mode === "create" ? (
        <>
          <fieldset class="radios" id="app-kind">
            <legend class="field-label">What to run</legend>
            <label class="radio">
              <input type="radio" id="app-kind-container" name="kind" checked={v.kind === "container"} onChange={() => set("kind", "container")} />
              A container (from a container image)
            </label>
            <label class="radio">
              <input type="radio" id="app-kind-vm" name="kind" checked={v.kind === "vm"} onChange={() => set("kind", "vm")} />
              A virtual machine (from a disk image or an installer ISO)
            </label>
          </fieldset>
          <div class="field">
            <label for="app-name">Name</label>
            <p class="field-hint" id="app-name-hint">
              1–64 letters, digits, '.', '_' or '-', starting with a letter or digit.
            </p>
            <input
              {...fieldProps("name", true)}
              class="input"
              type="text"
              name="name"
              autoComplete="off"
              autoCapitalize="off"
              spellcheck={false}
              value={v.name}
              onInput={(e) => set("name", e.currentTarget.value)}
            />
            {fieldError("name")}
          </div>

          {v.kind === "container" ? (
          <fieldset class="fieldset">
            <legend>Image</legend>
            <fieldset class="radios">
              <legend class="field-label">Where the image comes from</legend>
              <label class="radio">
                <input
                  type="radio"
                  id="app-source-registry"
                  name="source"
                  value="registry"
                  checked={v.sourceKind === "registry"}
                  onChange={() => set("sourceKind", "registry")}
                />
                From a container registry
              </label>
              <label class="radio">
                <input
                  type="radio"
                  id="app-source-url"
                  name="source"
                  value="url"
                  checked={v.sourceKind === "url"}
                  onChange={() => set("sourceKind", "url")}
                />
                From an image tarball at a web address
              </label>
              <label class="radio">
                <input
                  type="radio"
                  id="app-source-imported"
                  name="source"
                  value="imported"
                  checked={v.sourceKind === "imported"}
                  disabled={uploadedContainers.length === 0}
                  onChange={() => set("sourceKind", "imported")}
                />
                An image uploaded to the device{uploadedContainers.length === 0 ? " (none yet: upload one on the Storage page)" : ""}
              </label>
            </fieldset>
            {fieldError("source")}
            {v.sourceKind === "imported" ? (
              <ImportedImagePicker field="imported" images={uploadedContainers} value={v.importedSha} onChange={(sha) => set("importedSha", sha)} f={sf} />
            ) : v.sourceKind === "registry" ? (
              <>
                <div class="field">
                  <label for="app-registry">Registry</label>
                  <p class="field-hint" id="app-registry-hint">
                    Host and port of the registry, such as <code>127.0.0.1:5000</code>.
                  </p>
                  <input
                    {...fieldProps("registry", true)}
                    class="input mono"
                    type="text"
                    name="registry"
                    autoComplete="off"
                    autoCapitalize="off"
                    spellcheck={false}
                    value={v.registry}
                    onInput={(e) => set("registry", e.currentTarget.value)}
                  />
                  {fieldError("registry")}
                </div>
                <div class="field">
                  <label for="app-repository">Repository and tag</label>
                  <p class="field-hint" id="app-repository-hint">
                    Such as <code>evebox/busybox:latest</code>; without a tag, <code>:latest</code> is used.
                  </p>
                  <input
                    {...fieldProps("repository", true)}
                    class="input mono"
                    type="text"
                    name="repository"
                    autoComplete="off"
                    autoCapitalize="off"
                    spellcheck={false}
                    value={v.repository}
                    onInput={(e) => set("repository", e.currentTarget.value)}
                    onBlur={splitRepository}
                  />
                  {fieldError("repository")}
                </div>
                <div class="field">
                  <label for="app-sha256">Digest (optional)</label>
                  <p class="field-hint" id="app-sha256-hint">
                    The image manifest's <code>sha256:…</code> digest pins the exact image: a changed tag is then
                    not picked up, and the device can start the app offline once it has the image.
                  </p>
                  <input
                    {...fieldProps("sha256", true)}
                    class="input mono"
                    type="text"
                    name="digest"
                    autoComplete="off"
                    autoCapitalize="off"
                    spellcheck={false}
                    value={v.digest}
                    onInput={(e) => set("digest", e.currentTarget.value)}
                  />
                  {fieldError("sha256")}
                </div>
              </>
            ) : (
              <>
                <div class="field">
                  <label for="app-url">Address of the image tarball</label>
                  <p class="field-hint" id="app-url-hint">
                    An <code>http://</code> or <code>https://</code> address of an OCI or docker-save tarball, such
                    as <code>http://10.0.0.5:8000/images/app.tar</code>.
                  </p>
                  <input
                    {...fieldProps("url", true)}
                    class="input mono"
                    type="url"
                    name="url"
                    autoComplete="off"
                    autoCapitalize="off"
                    spellcheck={false}
                    value={v.url}
                    onInput={(e) => set("url", e.currentTarget.value)}
                  />
                  {fieldError("url")}
                </div>
                <div class="field">
                  <label for="app-sha256">sha256 of the file</label>
                  <p class="field-hint" id="app-sha256-hint">
                    64 hexadecimal digits (<code>sha256sum app.tar</code>). The device refuses a download that does
                    not match.
                  </p>
                  <input
                    {...fieldProps("sha256", true)}
                    class="input mono"
                    type="text"
                    name="sha256"
                    autoComplete="off"
                    autoCapitalize="off"
                    spellcheck={false}
                    value={v.sha256}
                    onInput={(e) => set("sha256", e.currentTarget.value)}
                  />
                  {fieldError("sha256")}
                </div>
              </>
            )}
          </fieldset>
          ) : (
            <VmImageSection mode={mode} vm={v.vm} setVm={(u) => setV((o) => ({ ...o, vm: u(o.vm) }))} f={sf} images={images} uploaded={uploadedDisks} image={view?.image} />
          )}
        </>
      ) : (
        view && (
          <dl class="facts">
            <div>
              <dt>Image</dt>
              <dd>
                <code>{view.image || "—"}</code>
              </dd>
            </div>
          </dl>
        )
      )}

      <fieldset class="fieldset">
        <legend>Resources</legend>
        <div class="field-row">
          <div class="field">
            <label for="app-memory">Memory (MiB)</label>
            <input
              {...fieldProps("memory")}
              class="input narrow"
              type="text"
              inputMode="numeric"
              name="memory"
              autoComplete="off"
              value={v.memory}
              onInput={(e) => set("memory", e.currentTarget.value)}
            />
            {fieldError("memory")}
          </div>
          <div class="field">
            <label for="app-vcpus">vCPUs</label>
            <input
              {...fieldProps("vcpus")}
              class="input narrow"
              type="text"
              inputMode="numeric"
              name="vcpus"
              autoComplete="off"
              value={v.vcpus}
              onInput={(e) => set("vcpus", e.currentTarget.value)}
            />
            {fieldError("vcpus")}
          </div>
        </div>
      </fieldset>

      {v.kind === "container" ? (
      <fieldset class="fieldset">
        <legend>Environment</legend>
        {envEditable ? (
          <>
            <p class="field-hint" id="env-hint">
              Variables the container starts with. <code>EVE_ECO_CMD</code> replaces the image's command.
            </p>
            {v.env.length === 0 && <p class="muted">No variables.</p>}
            <ul class="rows">
              {v.env.map((row, i) => (
                <li class="env-row row-edit" key={row.rowId}>
                  <div class="field">
                    <label for={`env-key-${i}`}>Name{v.env.length > 1 ? ` ${i + 1}` : ""}</label>
                    <input
                      {...fieldProps(`env.${i}.key`)}
                      class="input mono env-key"
                      type="text"
                      autoComplete="off"
                      autoCapitalize="off"
                      spellcheck={false}
                      value={row.key}
                      onInput={(e) => setEnv(i, { key: e.currentTarget.value })}
                    />
                  </div>
                  <div class="field grow">
                    <label for={`env-value-${i}`}>Value{v.env.length > 1 ? ` ${i + 1}` : ""}</label>
                    <input
                      {...fieldProps(`env.${i}.value`)}
                      class="input mono env-value"
                      type="text"
                      autoComplete="off"
                      autoCapitalize="off"
                      spellcheck={false}
                      value={row.value}
                      onInput={(e) => setEnv(i, { value: e.currentTarget.value })}
                    />
                  </div>
                  <button
                    type="button"
                    class="button ghost small row-remove"
                    onClick={() => {
                      focusAfter.current = v.env.length > 1 ? `env-key-${Math.max(0, i - 1)}` : "env-add";
                      setV((old) => ({ ...old, env: old.env.filter((_, j) => j !== i) }));
                    }}
                  >
                    Remove<span class="visually-hidden"> variable {row.key || i + 1}</span>
                  </button>
                  {fieldError(`env.${i}.key`)}
                  {fieldError(`env.${i}.value`)}
                </li>
              ))}
            </ul>
            {fieldError("env")}
            <div>
              <button
                type="button"
                id="env-add"
                class="button secondary small"
                onClick={() => {
                  focusAfter.current = `env-key-${v.env.length}`;
                  setV((old) => ({ ...old, env: [...old.env, { rowId: nextRowId(), key: "", value: "" }] }));
                }}
              >
                Add variable
              </button>
            </div>
          </>
        ) : (
          <p class="notice">
            This app's user data is {view?.userData.kind === "cloud-config" ? "a cloud-config document" : "not a list of KEY=VALUE lines"}; it is kept
            as it is and cannot be edited here.
          </p>
        )}
      </fieldset>
      ) : (
        <VmSettingsSection mode={mode} vm={v.vm} setVm={(u) => setV((o) => ({ ...o, vm: u(o.vm) }))} f={sf} images={images} uploaded={uploadedDisks} image={view?.image} />
      )}

      {v.kind === "container" ? (
      <fieldset class="fieldset">
        <legend>Volumes</legend>
        <p class="field-hint">
          Extra storage that survives restarts and updates of the app (a purge empties it).
          {mode === "edit" ? " Removing a volume deletes its data." : ""}
        </p>
        {v.volumes.length === 0 && <p class="muted">No extra volumes.</p>}
        <ul class="rows">
          {v.volumes.map((row, i) => (
            <li class="volume-row row-edit" key={row.rowId}>
              <div class="field">
                <label for={`volume-size-${i}`}>Size (MiB)</label>
                <input
                  {...fieldProps(`volumes.${i}.size`)}
                  class="input narrow volume-size"
                  type="text"
                  inputMode="numeric"
                  autoComplete="off"
                  value={row.size}
                  disabled={!!row.uuid}
                  title={row.uuid ? "The size of an existing volume is fixed; add a new volume for more space." : undefined}
                  onInput={(e) => setVolume(i, { size: e.currentTarget.value })}
                />
              </div>
              <div class="field grow">
                <label for={`volume-dir-${i}`}>Mounted at</label>
                <input
                  {...fieldProps(`volumes.${i}.mountDir`)}
                  class="input mono volume-dir"
                  type="text"
                  autoComplete="off"
                  autoCapitalize="off"
                  spellcheck={false}
                  placeholder="/data"
                  value={row.mountDir}
                  disabled={row.locked}
                  onInput={(e) => setVolume(i, { mountDir: e.currentTarget.value })}
                />
              </div>
              <label class="checkbox">
                <input
                  type="checkbox"
                  class="volume-readonly"
                  checked={row.readonly}
                  disabled={row.locked}
                  onChange={(e) => setVolume(i, { readonly: e.currentTarget.checked })}
                />
                Read-only
              </label>
              <button
                type="button"
                class="button ghost small row-remove"
                onClick={() => {
                  focusAfter.current = v.volumes.length > 1 ? `volume-dir-${Math.max(0, i - 1)}` : "volume-add";
                  setV((old) => ({ ...old, volumes: old.volumes.filter((_, j) => j !== i) }));
                }}
              >
                Remove<span class="visually-hidden"> volume {row.mountDir || i + 1}</span>
              </button>
              {fieldError(`volumes.${i}.size`)}
              {fieldError(`volumes.${i}.mountDir`)}
              {fieldError(`volumes.${i}`)}
            </li>
          ))}
        </ul>
        <div>
          <button
            type="button"
            id="volume-add"
            class="button secondary small"
            onClick={() => {
              focusAfter.current = `volume-size-${v.volumes.length}`;
              setV((old) => ({ ...old, volumes: [...old.volumes, { rowId: nextRowId(), size: "100", mountDir: "", readonly: false }] }));
            }}
          >
            Add volume
          </button>
        </div>
      </fieldset>
      ) : (
        <VmDisksSection mode={mode} vm={v.vm} setVm={(u) => setV((o) => ({ ...o, vm: u(o.vm) }))} f={sf} images={images} uploaded={uploadedDisks} image={view?.image} />
      )}

      <InterfacesSection rows={v.interfaces} setRows={(u) => setV((o) => ({ ...o, interfaces: u(o.interfaces) }))} f={sf} networks={networks} appUuid={view?.uuid} restartNote={mode === "edit" && v.kind === "vm"} />

      {hardware !== undefined && <AppAdapters hardware={hardware} appUuid={view?.uuid} selected={v.adapters} onChange={(groups) => set("adapters", groups)} />}
      {fieldError("adapters")}

      <div class="form-actions">
        <button type="submit" id="app-submit" class="button primary" disabled={busy}>
          {busy ? "Checking…" : mode === "create" ? "Review and create" : "Review changes"}
        </button>
        <button type="button" id="app-cancel" class="button secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
      <Hint>Nothing is changed until you have seen the plan and chosen Apply.</Hint>
    </form>
  );
}

function Hint({ children }: { children: ComponentChildren }) {
  return <p class="muted form-note">{children}</p>;
}
