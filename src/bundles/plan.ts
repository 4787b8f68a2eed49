// What importing (or upgrading, or removing) a bundle does to the config: the current document with the
// bundle's previous objects taken out and the fragment put in, the objects that collide with someone else's,
// and what is added, changed and removed. The merged document is validated by the device's own validation
// (config/validate.ts `readConfig`, given as `validate`: the device passes ConfigService's dry run, which
// decodes the merged document as PUT /config does and validates it against the device), so the plan is refused
// exactly when PUT /config would refuse it. Pure.
import type { ObjectProblem } from "../config/problems.ts";

type Obj = Record<string, any>;

/** The collections a bundle's objects live in, and how each object is known (its id, its name). */
export const COLLECTIONS = {
  apps: { kind: "app", id: (o: Obj) => o?.uuidandversion?.uuid, name: (o: Obj) => o?.displayname },
  networkInstances: { kind: "network instance", id: (o: Obj) => o?.uuidandversion?.uuid, name: (o: Obj) => o?.displayname },
  volumes: { kind: "volume", id: (o: Obj) => o?.uuid, name: (o: Obj) => o?.displayName },
  contentInfo: { kind: "content tree", id: (o: Obj) => o?.uuid, name: (o: Obj) => o?.displayName },
  datastores: { kind: "datastore", id: (o: Obj) => o?.id, name: (_o: Obj) => undefined },
  deviceIoList: { kind: "I/O adapter", id: (o: Obj) => o?.logicallabel, name: (o: Obj) => o?.phylabel },
} as const;
export type CollectionKey = keyof typeof COLLECTIONS;
export const COLLECTION_KEYS = Object.keys(COLLECTIONS) as CollectionKey[];

/** The objects a bundle added, by collection: their ids (UUIDs lower case; adapters by logical label). */
export type ObjectRefs = Partial<Record<CollectionKey, string[]>>;

export interface ObjectRef {
  collection: CollectionKey;
  kind: string;
  id: string;
  name: string | null;
}

export interface BundlePlan {
  /** The whole document to offer (current config without the previous objects, plus the fragment). */
  merged: Obj;
  /** The bundle's objects after the change. */
  objects: ObjectRefs;
  added: ObjectRef[];
  changed: ObjectRef[];
  unchanged: ObjectRef[];
  removed: ObjectRef[];
  /** Collisions and the merged document's validation problems: any refuses the bundle. */
  problems: ObjectProblem[];
}

const key = (id: unknown) => (typeof id === "string" ? id.toLowerCase() : "");
const list = (doc: Obj | null | undefined, k: string): Obj[] => (Array.isArray(doc?.[k]) ? doc![k] : []);

function refOf(collection: CollectionKey, o: Obj): ObjectRef {
  const c = COLLECTIONS[collection];
  const name = c.name(o);
  return { collection, kind: c.kind, id: key(c.id(o)) || String(c.id(o) ?? ""), name: typeof name === "string" ? name : null };
}

/**
 * The plan of putting `fragment` (substituted, canonical proto3 JSON) into `current`; `previous`: the objects the
 * installed version of this bundle added (an upgrade), which are replaced; null for a first import.
 */
export function planBundle(current: Obj | null, fragment: Record<string, Obj[]>, previous: ObjectRefs | null, validate: (merged: Obj) => ObjectProblem[]): BundlePlan {
  const problems: ObjectProblem[] = [];
  const merged: Obj = { ...(current ?? {}) };
  const added: ObjectRef[] = [];
  const changed: ObjectRef[] = [];
  const unchanged: ObjectRef[] = [];
  const removed: ObjectRef[] = [];
  const objects: ObjectRefs = {};
  for (const k of COLLECTION_KEYS) {
    const c = COLLECTIONS[k];
    const prev = new Set((previous?.[k] ?? []).map(key));
    const mine = list(current, k).filter((o) => prev.has(key(c.id(o))));
    const others = list(current, k).filter((o) => !prev.has(key(c.id(o))));
    const incoming = list(fragment, k);
    const otherIds = new Map(others.map((o) => [key(c.id(o)), o]));
    const otherNames = new Map(others.filter((o) => typeof c.name(o) === "string" && c.name(o) !== "").map((o) => [c.name(o) as string, o]));
    incoming.forEach((o, i) => {
      const ref = refOf(k, o);
      const path = `config.${k}[${i}]`;
      if (!ref.id) {
        problems.push({ objectKind: "device", objectId: "", path, message: `a ${c.kind} of the bundle has no ${k === "deviceIoList" ? "logicallabel" : "UUID"}` });
        return;
      }
      const sameId = otherIds.get(ref.id);
      if (sameId) {
        problems.push({ objectKind: "device", objectId: ref.id, path, message: `${c.kind} ${ref.id} is already on this device (${describe(k, sameId)}), not from this bundle: the bundle collides with it` });
        return;
      }
      const sameName = ref.name ? otherNames.get(ref.name) : undefined;
      if (sameName && k !== "deviceIoList") {
        problems.push({ objectKind: "device", objectId: ref.id, path, message: `the name ${JSON.stringify(ref.name)} is already used by ${describe(k, sameName)}, not from this bundle: the bundle collides with it` });
        return;
      }
      const before = mine.find((x) => key(c.id(x)) === ref.id);
      if (!before) added.push(ref);
      else if (stable(before) === stable(o)) unchanged.push(ref);
      else changed.push(ref);
    });
    const incomingIds = new Set(incoming.map((o) => key(c.id(o))));
    for (const o of mine) if (!incomingIds.has(key(c.id(o)))) removed.push(refOf(k, o));
    if (others.length || incoming.length) merged[k] = [...others, ...incoming];
    else delete merged[k];
    if (incoming.length) objects[k] = incoming.map((o) => key(c.id(o)));
  }
  if (!problems.length) problems.push(...validate(merged));
  return { merged, objects, added, changed, unchanged, removed, problems };
}

/** The document without the bundle's objects (removing it); adapters an object left behind still uses stay. */
export function withoutBundle(current: Obj, objects: ObjectRefs): { doc: Obj; removed: ObjectRef[]; kept: ObjectRef[] } {
  const doc: Obj = { ...current };
  const removed: ObjectRef[] = [];
  const kept: ObjectRef[] = [];
  const mineOf = (k: CollectionKey) => new Set((objects[k] ?? []).map(key));
  const appsLeft = list(current, "apps").filter((a) => !mineOf("apps").has(key(a?.uuidandversion?.uuid)));
  const adaptersInUse = new Set(appsLeft.flatMap((a) => list(a, "adapters").map((ad) => String(ad?.name ?? ""))));
  for (const k of COLLECTION_KEYS) {
    const c = COLLECTIONS[k];
    const mine = mineOf(k);
    const out: Obj[] = [];
    for (const o of list(current, k)) {
      if (!mine.has(key(c.id(o)))) out.push(o);
      else if (k === "deviceIoList" && (adaptersInUse.has(o.logicallabel) || adaptersInUse.has(o.assigngrp))) {
        kept.push(refOf(k, o));
        out.push(o);
      } else removed.push(refOf(k, o));
    }
    if (out.length) doc[k] = out;
    else delete doc[k];
  }
  return { doc, removed, kept };
}

function describe(k: CollectionKey, o: Obj): string {
  const c = COLLECTIONS[k];
  const name = c.name(o);
  return `${c.kind} ${name ? JSON.stringify(name) + " " : ""}${c.id(o) ?? ""}`.trim();
}

/** JSON with sorted keys: two objects that differ only in key order are the same object. */
function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(",")}]`;
  if (v && typeof v === "object") return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stable((v as Obj)[k])}`).join(",")}}`;
  return JSON.stringify(v);
}
