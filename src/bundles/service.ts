// The importer: a bundle file is staged on disk, read by its table of contents, its manifest and placeholders
// checked, its signature and every image's digest verified, its parameters checked against the device, and the
// merged config planned and validated by the device's own validation (ConfigService's dry run). Applying it
// puts the images into the content store by digest (ImageStore, as an upload does) and offers the merged
// document as a new local config version authored by the user (ConfigService.put, the path PUT /config takes).
// Anything refused leaves nothing stored and the running config as it was.
import { randomUUID } from "node:crypto";
import { existsSync, statfsSync } from "node:fs";
import { mkdir, open, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { asc, eq } from "drizzle-orm";
import type { HostView } from "../config/device-env.ts";
import { ConfigRejected } from "../config/problems.ts";
import type { ObjectProblem } from "../config/problems.ts";
import { EDGE_DEV_CONFIG, type ConfigService } from "../config/service.ts";
import type { Inventory } from "../hardware/types.ts";
import { DomainError } from "../model/errors.ts";
import type { EventBus } from "../model/events.ts";
import { ImageStore } from "../storage/images.ts";
import { bundleKeys, bundles } from "../store/schema.ts";
import type { Store } from "../store/store.ts";
import { BundleInvalid, compareVersions, type Manifest, type ManifestProblem, readManifest } from "./manifest.ts";
import { checkPlaceholders, type DeviceFacts, type ParamView, resolveParams, type SerialChoice, substitute } from "./placeholders.ts";
import { type BundlePlan, type ObjectRef, type ObjectRefs, planBundle, withoutBundle } from "./plan.ts";
import { KeyInvalid, readPublicKey, type TrustedKey, verifyBytes } from "./signature.ts";
import { type BundleFile, readBundleFile, sha256OfRange } from "./tar.ts";

type Doc = Record<string, any>;
const BINARY = "application/x-proto-binary";
export const REQUIRE_SIGNATURE_KEY = "bundles.requireSignature";
const STAGED_ID = /^[0-9a-f]{32}$/;

export interface BundleServiceOptions {
  store: Store;
  config: ConfigService;
  images: ImageStore;
  events: EventBus;
  /** The device's ports and routes (config/device-env.ts hostView). */
  host: () => HostView;
  /** The hardware inventory (serial ports). */
  inventory: () => Inventory;
  /** The controller's URL when the device is managed (then the controller owns the config), else null. */
  managedBy: () => string | null;
  /** Where staged bundle files wait for their apply (`<persist>/content/bundles/staging`). */
  stagingDir: string;
  /** The largest bundle file accepted (default 64 GiB). */
  maxBytes?: number;
  /** Free space kept after staging (default 1 GiB). */
  reserveBytes?: number;
  /** A staged file untouched this long is removed (default 1 h). */
  stagedTtlMs?: number;
  /** Is this a character device (a pty a config names)? */
  isCharDevice?: (path: string) => boolean;
  freeBytes?: (dir: string) => number;
}

export interface SignatureView {
  status: "unsigned" | "verified" | "untrusted";
  key: { id: string; name: string } | null;
}

export interface InspectResult {
  staged: string;
  bundle: { name: string; version: string; description: string };
  signature: SignatureView;
  images: { name: string; sha256: string; size: number; present: boolean }[];
  parameters: ParamView[];
  upgrade: { from: string } | null;
  /** Null when the parameters do not allow one yet (their problems are in `problems`). */
  plan: { added: ObjectRef[]; changed: ObjectRef[]; unchanged: ObjectRef[]; removed: ObjectRef[] } | null;
  /** Empty: the bundle can be applied as it stands. */
  problems: ManifestProblem[];
}

export interface ApplyResult extends InspectResult {
  configVersion: number | null;
}

export interface BundleRecord {
  name: string;
  version: string;
  description: string;
  params: Record<string, string>;
  objects: ObjectRefs;
  images: Record<string, string>;
  manifestSha256: string;
  configVersion: number | null;
  signer: string | null;
  installedAt: Date;
  installedBy: string;
}

export class BundleService {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly maxBytes: number;

  constructor(private readonly o: BundleServiceOptions) {
    this.maxBytes = o.maxBytes ?? 64 * 1024 ** 3;
  }

  // ---- staging

  /** Streams a bundle file to disk (never held in memory) and answers its staged id. */
  async stage(body: ReadableStream<Uint8Array> | null, length: number | null, signal?: AbortSignal): Promise<string> {
    if (!body) throw new DomainError("invalid", "send the bundle file as the body (application/octet-stream)");
    if (length !== null && length > this.maxBytes) throw new DomainError("too-large", `${length} bytes: a bundle is at most ${this.maxBytes} bytes`);
    await this.sweep();
    await mkdir(this.o.stagingDir, { recursive: true, mode: 0o700 });
    const free = (this.o.freeBytes ?? defaultFree)(this.o.stagingDir);
    const reserve = this.o.reserveBytes ?? 1024 ** 3;
    if (length !== null && length + reserve > free) throw new DomainError("too-large", `not enough free space for ${length} bytes (${free} free, ${reserve} kept free)`);
    const id = randomUUID().replaceAll("-", "");
    const path = this.stagedPath(id);
    const fh = await open(path, "w", 0o600);
    let received = 0;
    let nextCheck = 64 * 1024 * 1024;
    try {
      const reader = body.getReader();
      for (;;) {
        signal?.throwIfAborted();
        const { done, value } = await reader.read();
        if (done) break;
        received += value.length;
        // A body of unknown length is checked against the free space as it grows (a known one was, up front).
        if (length === null && received >= nextCheck) {
          nextCheck += 64 * 1024 * 1024;
          if ((this.o.freeBytes ?? defaultFree)(this.o.stagingDir) < reserve) throw new DomainError("too-large", `not enough free space: ${reserve} bytes are kept free`);
        }
        if (received > (length ?? this.maxBytes)) throw new DomainError("too-large", `the body is larger than ${length ?? this.maxBytes} bytes`);
        let off = 0;
        while (off < value.length) off += (await fh.write(value, off, value.length - off, received - value.length + off)).bytesWritten;
      }
      if (length !== null && received < length) throw new DomainError("invalid", `the upload ended after ${received} of ${length} bytes`);
      if (received === 0) throw new DomainError("invalid", "the bundle file is empty");
      await fh.close();
      return id;
    } catch (e) {
      await fh.close().catch(() => {});
      await rm(path, { force: true });
      throw e;
    }
  }

  private stagedPath(id: string): string {
    if (!STAGED_ID.test(id)) throw new DomainError("invalid", "staged: not an id of a staged bundle");
    return join(this.o.stagingDir, `${id}.tar`);
  }

  async dropStaged(id: string): Promise<void> {
    await rm(this.stagedPath(id), { force: true });
  }

  /** Removes staged files older than the TTL. */
  async sweep(): Promise<void> {
    const ttl = this.o.stagedTtlMs ?? 3600_000;
    let names: string[] = [];
    try {
      names = await readdir(this.o.stagingDir);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(this.o.stagingDir, n);
      const s = await stat(p).catch(() => null);
      if (s && Date.now() - s.mtimeMs > ttl) await rm(p, { force: true });
    }
  }

  // ---- inspect (dry run) and apply

  /** The plan of importing a staged bundle with `params` (null: the defaults, or on an upgrade the values used before). */
  inspect(staged: string, params: Record<string, unknown> | null): Promise<InspectResult> {
    return this.exclusive(async () => (await this.prepare(staged, params)).result);
  }

  /** Imports a staged bundle: refused whole on any problem, nothing stored then. */
  apply(staged: string, params: Record<string, unknown> | null, author: string): Promise<ApplyResult> {
    return this.exclusive(async () => {
      this.refuseManaged("import a bundle");
      const p = await this.prepare(staged, params);
      if (p.result.problems.length || !p.plan) throw new BundleInvalid(p.result.problems);
      const { manifest, file } = p;
      const stored: string[] = [];
      const digests: Record<string, string> = {};
      try {
        for (const [name, spec] of Object.entries(manifest.images)) {
          const sha = spec.sha256!;
          digests[name] = sha;
          if (await this.o.images.get(sha)) continue;
          if (stored.includes(sha)) continue;
          const entry = file.images.get(sha)!;
          const img = await this.o.images.importStream(`${manifest.name} ${manifest.version}: ${name}`, Bun.file(file.path).slice(entry.dataOffset, entry.dataOffset + entry.size).stream(), entry.size);
          stored.push(img.sha256);
          if (img.sha256 !== sha) throw new BundleInvalid([{ path: `images.${name}`, message: "the image changed while it was imported; nothing was stored" }]);
        }
        const result = this.o.config.put(encodeDoc(p.plan.merged), BINARY, { source: "local", author, note: `bundle ${manifest.name} ${manifest.version}${p.previous ? ` (upgrade from ${p.previous.version})` : ""}` });
        const record: BundleRecord = {
          name: manifest.name,
          version: manifest.version,
          description: manifest.description,
          params: p.values,
          objects: p.plan.objects,
          images: digests,
          manifestSha256: new Bun.CryptoHasher("sha256").update(file.manifestBytes).digest("hex"),
          configVersion: result.version,
          signer: p.signer?.id ?? null,
          installedAt: new Date(),
          installedBy: author,
        };
        this.o.store.db.insert(bundles).values(record).onConflictDoUpdate({ target: bundles.name, set: record }).run();
        this.o.events.publish({
          type: "bundle.imported",
          message: `bundle ${manifest.name} ${manifest.version} ${p.previous ? `upgraded from ${p.previous.version}` : "imported"} by ${author}: ${p.plan.added.length} added, ${p.plan.changed.length} changed, ${p.plan.removed.length} removed (config version ${result.version})`,
          data: { name: manifest.name, version: manifest.version, configVersion: result.version },
        });
        if (p.previous) await this.collectImages(Object.values(p.previous.images));
        await this.dropStaged(staged);
        return { ...p.result, configVersion: result.version };
      } catch (e) {
        for (const sha of stored) await this.o.images.remove(sha, { contentTrees: [], apps: [] }).catch(() => {});
        this.o.events.publish({ type: "bundle.refused", message: `bundle ${manifest.name} ${manifest.version} refused: ${(e as Error).message}`, data: { name: manifest.name } });
        throw e;
      }
    });
  }

  private async prepare(staged: string, given: Record<string, unknown> | null) {
    const path = this.stagedPath(staged);
    if (!existsSync(path)) throw new DomainError("not-found", `no staged bundle ${staged} (staged bundles are kept 1 h, and until applied): send the file again`);
    const file = await readBundleFile(path);
    let raw: unknown;
    try {
      raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(file.manifestBytes));
    } catch (e) {
      throw new BundleInvalid([{ path: "bundle.json", message: `not JSON: ${(e as Error).message}` }]);
    }
    const read = readManifest(raw, "built");
    if (!read.manifest) throw new BundleInvalid(read.problems);
    const manifest = read.manifest;
    const ph = checkPlaceholders(manifest);
    if (ph.length) throw new BundleInvalid(ph);

    // The signature, then every image's digest: a mismatch refuses the whole bundle before anything is stored.
    const keys = this.keys();
    const signer = file.signature ? verifyBytes(file.manifestBytes, file.signature, keys) : null;
    const signature: SignatureView = { status: !file.signature ? "unsigned" : signer ? "verified" : "untrusted", key: signer ? { id: signer.id, name: signer.name } : null };
    if (this.policy().requireSignature && !signer) {
      throw new BundleInvalid([{ path: "bundle.sig", message: file.signature ? "signed by a key this device does not trust, and this device requires bundles signed by a trusted key" : "unsigned, and this device requires bundles signed by a trusted key" }]);
    }
    await this.verifyImages(manifest, file);

    const previous = this.record(manifest.name);
    if (previous && compareVersions(manifest.version, previous.version) <= 0) {
      throw new DomainError("conflict", `bundle ${manifest.name} ${previous.version} is installed: an upgrade needs a higher version than ${previous.version} (this is ${manifest.version}); remove it first to install an older one`);
    }
    const current = this.o.config.currentDoc()?.doc ?? {};
    const base = previous ? withoutBundle(current, previous.objects).doc : current;
    const facts = this.facts(base);
    // On an upgrade, what was chosen before stands for a parameter the request leaves out (if the new version still has it).
    const before = previous ? Object.fromEntries(Object.entries(previous.params).filter(([k]) => manifest.parameters[k])) : {};
    const values0 = { ...before, ...(given ?? {}) };
    const { params, values, problems } = resolveParams(manifest, values0, facts);
    const images = await Promise.all(
      Object.entries(manifest.images).map(async ([name, s]) => ({ name, sha256: s.sha256!, size: s.size!, present: !!(await this.o.images.get(s.sha256!)) })),
    );
    const result: InspectResult = {
      staged,
      bundle: { name: manifest.name, version: manifest.version, description: manifest.description },
      signature,
      images,
      parameters: params,
      upgrade: previous ? { from: previous.version } : null,
      plan: null,
      problems,
    };
    if (problems.length) return { result, manifest, file, previous, values, signer, plan: null };

    const digests = Object.fromEntries(Object.entries(manifest.images).map(([n, s]) => [n, s.sha256!]));
    const sub = substitute(manifest, values, digests);
    if (sub.problems.length) return { result: { ...result, problems: sub.problems }, manifest, file, previous, values, signer, plan: null };
    // A serial port of the inventory that the config does not name yet gets its deviceIoList entry (the bundle's).
    const fragmentJson: Doc = { ...sub.config };
    for (const [name, spec] of Object.entries(manifest.parameters)) {
      const choice = spec.kind === "serial" ? facts.serial.find((s) => s.name === values[name]) : undefined;
      if (choice && !choice.declared && !(fragmentJson.deviceIoList ?? []).some((d: Doc) => d?.logicallabel === choice.name)) {
        fragmentJson.deviceIoList = [
          ...(fragmentJson.deviceIoList ?? []),
          { ptype: "PhyIoCOM", phylabel: choice.name, logicallabel: choice.name, assigngrp: choice.name, phyaddrs: { serial: choice.devPath }, usage: "PhyIoUsageDedicated" },
        ];
      }
    }
    let fragment: Doc;
    try {
      fragment = this.o.config.parse(new TextEncoder().encode(JSON.stringify(fragmentJson)), "application/json").doc;
    } catch (e) {
      if (!(e instanceof ConfigRejected)) throw e;
      return { result: { ...result, problems: e.problems.map((p) => ({ path: p.path ? `config.${p.path}` : "config", message: p.message })) }, manifest, file, previous, values, signer, plan: null };
    }
    const plan = planBundle(current, fragment, previous?.objects ?? null, (merged) => this.validate(merged));
    const out: InspectResult = {
      ...result,
      plan: { added: plan.added, changed: plan.changed, unchanged: plan.unchanged, removed: plan.removed },
      problems: plan.problems.map(({ path, message }) => ({ path, message })),
    };
    return { result: out, manifest, file, previous, values, signer, plan: plan as BundlePlan };
  }

  /** The merged document through ConfigService's dry run: decoded as PUT /config decodes it, validated against the device. */
  private validate(merged: Doc): ObjectProblem[] {
    try {
      this.o.config.put(encodeDoc(merged), BINARY, { source: "local", author: "bundle plan", dryRun: true });
      return [];
    } catch (e) {
      if (!(e instanceof ConfigRejected)) throw e;
      return e.problems.map((p) => ({ objectKind: "device" as const, objectId: "", path: p.path, message: p.message }));
    }
  }

  private async verifyImages(m: Manifest, file: BundleFile): Promise<void> {
    const problems: ManifestProblem[] = [];
    const wanted = new Set(Object.values(m.images).map((s) => s.sha256!));
    for (const sha of file.images.keys()) if (!wanted.has(sha)) problems.push({ path: `images/${sha}`, message: "an image no entry of bundle.json names" });
    const checked = new Map<string, string | null>();
    for (const [name, s] of Object.entries(m.images)) {
      const entry = file.images.get(s.sha256!);
      if (!entry) {
        problems.push({ path: `images.${name}`, message: `images/${s.sha256} is not in the bundle file` });
        continue;
      }
      if (entry.size !== s.size) {
        problems.push({ path: `images.${name}`, message: `images/${s.sha256} is ${entry.size} bytes, bundle.json says ${s.size}: the bundle is damaged or was changed` });
        continue;
      }
      if (!checked.has(s.sha256!)) {
        const got = await sha256OfRange(file.path, entry.dataOffset, entry.size);
        checked.set(s.sha256!, got === s.sha256 ? null : got);
      }
      if (checked.get(s.sha256!)) problems.push({ path: `images.${name}`, message: `the image's bytes are not sha256 ${s.sha256}: the bundle is damaged or was changed; nothing was stored` });
    }
    if (problems.length) throw new BundleInvalid(problems);
  }

  /** What the device offers the parameters, judged on `base` (the current config without this bundle's own objects). */
  facts(base: Doc): DeviceFacts {
    const host = this.o.host();
    const ios: Doc[] = Array.isArray(base.deviceIoList) ? base.deviceIoList : [];
    const ports = new Set<string>(host.ports.map((p) => p.name));
    for (const io of ios) if (io?.logicallabel && (io.phyaddrs?.Ifname || io.phyaddrs?.ifname)) ports.add(io.logicallabel);
    for (const sa of Array.isArray(base.systemAdapterList) ? base.systemAdapterList : []) if (sa?.name) ports.add(sa.name);
    const serial: SerialChoice[] = [];
    const named = new Set<string>();
    const isChar = this.o.isCharDevice ?? (() => false);
    let inventory: Inventory | null = null;
    try {
      inventory = this.o.inventory();
    } catch {}
    const inSysfs = new Set((inventory?.serial ?? []).filter((s) => !s.virtual).map((s) => s.devPath));
    for (const io of ios) {
      const dev = io?.phyaddrs?.serial ?? io?.phyaddrs?.Serial;
      if (io?.ptype !== "PhyIoCOM" && !dev) continue;
      if (typeof dev !== "string") continue;
      named.add(dev);
      if (!inSysfs.has(dev) && !isChar(dev)) continue;
      const label = io.assigngrp || io.logicallabel;
      if (label && !serial.some((s) => s.name === label)) serial.push({ name: label, devPath: dev, declared: true });
    }
    for (const s of inventory?.serial ?? []) if (!s.virtual && !named.has(s.devPath) && !serial.some((c) => c.name === s.name)) serial.push({ name: s.name, devPath: s.devPath, declared: false });
    const subnets = [
      ...(Array.isArray(base.networkInstances) ? base.networkInstances : [])
        .filter((ni: Doc) => typeof ni?.ip?.subnet === "string" && ni.ip.subnet)
        .map((ni: Doc) => ({ cidr: ni.ip.subnet as string, what: `network instance ${ni.displayname ?? ni.uuidandversion?.uuid}` })),
      ...host.networks.map((n) => ({ cidr: n, what: "a network of this device's routes" })),
    ];
    return { ports: [...ports].sort(), serial, subnets };
  }

  // ---- what is installed

  record(name: string): BundleRecord | null {
    return (this.o.store.db.select().from(bundles).where(eq(bundles.name, name)).get() as BundleRecord | undefined) ?? null;
  }

  list(): BundleRecord[] {
    return this.o.store.db.select().from(bundles).orderBy(asc(bundles.name)).all() as BundleRecord[];
  }

  /** Removes what the bundle added (a new config version), then its images nothing uses any more. */
  remove(name: string, author: string): Promise<{ removed: ObjectRef[]; kept: ObjectRef[]; configVersion: number | null; images: string[] }> {
    return this.exclusive(async () => {
      this.refuseManaged("remove a bundle");
      const rec = this.record(name);
      if (!rec) throw new DomainError("not-found", `no bundle ${JSON.stringify(name.slice(0, 64))} on this device`);
      const cur = this.o.config.currentDoc()?.doc ?? {};
      const { doc, removed, kept } = withoutBundle(cur, rec.objects);
      let configVersion: number | null = null;
      if (removed.length) configVersion = this.o.config.put(encodeDoc(doc), BINARY, { source: "local", author, note: `bundle ${name} ${rec.version} removed` }).version;
      this.o.store.db.delete(bundles).where(eq(bundles.name, name)).run();
      const images = await this.collectImages(Object.values(rec.images));
      this.o.events.publish({ type: "bundle.removed", message: `bundle ${name} ${rec.version} removed by ${author}: ${removed.length} object(s), ${images.length} image(s)`, data: { name, configVersion } });
      return { removed, kept, configVersion, images };
    });
  }

  /** Removes those of `shas` that no installed bundle and no content tree of the current config uses. */
  private async collectImages(shas: string[]): Promise<string[]> {
    const keep = new Set(this.list().flatMap((b) => Object.values(b.images)));
    const model = this.o.config.model()?.model ?? null;
    const gone: string[] = [];
    for (const sha of new Set(shas)) {
      if (keep.has(sha)) continue;
      const users = ImageStore.users(model, sha);
      if (users.contentTrees.length) continue;
      try {
        await this.o.images.remove(sha, users);
        gone.push(sha);
      } catch {}
    }
    return gone;
  }

  // ---- trusted keys and the signature policy

  keys(): TrustedKey[] {
    return this.o.store.db.select({ id: bundleKeys.id, name: bundleKeys.name, publicKey: bundleKeys.publicKey }).from(bundleKeys).orderBy(asc(bundleKeys.name)).all();
  }

  keyList() {
    return this.o.store.db.select().from(bundleKeys).orderBy(asc(bundleKeys.name)).all();
  }

  addKey(name: string, publicKey: string, by: string) {
    if (typeof name !== "string" || !/^[A-Za-z0-9 ._@-]{1,64}$/.test(name)) throw new DomainError("invalid", "name: 1 to 64 of A-Z a-z 0-9 space . _ @ -");
    let k;
    try {
      k = readPublicKey(publicKey);
    } catch (e) {
      if (e instanceof KeyInvalid) throw new DomainError("invalid", `publicKey: ${e.message}`);
      throw e;
    }
    if (this.o.store.db.select().from(bundleKeys).where(eq(bundleKeys.id, k.id)).get()) throw new DomainError("conflict", `this key is trusted already (id ${k.id})`);
    const row = { id: k.id, name, publicKey: k.pem, addedAt: new Date(), addedBy: by };
    this.o.store.db.insert(bundleKeys).values(row).run();
    this.o.events.publish({ type: "bundle.key-added", message: `bundle signing key ${name} (${k.id}) trusted by ${by}`, data: { id: k.id } });
    return row;
  }

  removeKey(id: string, by: string): void {
    const r = this.o.store.db.delete(bundleKeys).where(eq(bundleKeys.id, id)).returning().all();
    if (!r.length) throw new DomainError("not-found", `no trusted key ${JSON.stringify(id.slice(0, 64))}`);
    this.o.events.publish({ type: "bundle.key-removed", message: `bundle signing key ${r[0]!.name} (${id}) no longer trusted (by ${by})`, data: { id } });
  }

  policy(): { requireSignature: boolean } {
    return { requireSignature: this.o.store.getSetting(REQUIRE_SIGNATURE_KEY) === "true" };
  }

  setPolicy(requireSignature: boolean): { requireSignature: boolean } {
    this.o.store.setSetting(REQUIRE_SIGNATURE_KEY, String(requireSignature));
    return this.policy();
  }

  // ---- the inside

  private refuseManaged(what: string): void {
    const by = this.o.managedBy();
    if (by) throw new DomainError("conflict", `this device is managed by the controller ${by}: it is the authority for the config, so it cannot ${what} here`);
  }

  /** One import or removal at a time: each plans on the config the previous one left. */
  private exclusive<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(f, f);
    this.queue = run.catch(() => {});
    return run;
  }
}

/** A document in ConfigService's reading (protobufjs toObject form) as the canonical binary PUT /config takes. */
function encodeDoc(doc: Doc): Uint8Array {
  const proto = require("../proto/index.ts") as typeof import("../proto/index.ts");
  return proto.encodeMessage(EDGE_DEV_CONFIG, doc);
}

function defaultFree(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}
