// What a new document changes, object by object: the preview shown before a config is applied.
// The reconciler turns the same comparison into executable steps; this is the human-readable plan.

type Obj = Record<string, any>;

export interface ConfigChange {
  action: "add" | "remove" | "change";
  kind: string;
  id: string;
  name: string;
  /** For `change`: the top-level fields that differ (e.g. `restart`, `fixedresources`). */
  fields?: string[];
}

interface Collection {
  kind: string;
  field: string;
  id: (o: Obj) => string;
  name: (o: Obj) => string;
}

const COLLECTIONS: Collection[] = [
  { kind: "datastore", field: "datastores", id: (o) => o.id ?? "", name: (o) => o.fqdn ?? "" },
  { kind: "contentTree", field: "contentInfo", id: (o) => o.uuid ?? "", name: (o) => o.displayName || o.URL || "" },
  { kind: "volume", field: "volumes", id: (o) => o.uuid ?? "", name: (o) => o.displayName ?? "" },
  { kind: "networkInstance", field: "networkInstances", id: (o) => o.uuidandversion?.uuid ?? "", name: (o) => o.displayname ?? "" },
  { kind: "app", field: "apps", id: (o) => o.uuidandversion?.uuid ?? "", name: (o) => o.displayname ?? "" },
  { kind: "configItem", field: "configItems", id: (o) => o.key ?? "", name: (o) => o.key ?? "" },
  { kind: "systemAdapter", field: "systemAdapterList", id: (o) => o.name ?? "", name: (o) => o.name ?? "" },
];

const SINGLES = ["baseos", "reboot", "shutdown", "backup", "edgeview", "globalProfile", "localProfileServer", "deviceName"];

export function diffConfigs(before: Obj | null, after: Obj): ConfigChange[] {
  const changes: ConfigChange[] = [];
  for (const c of COLLECTIONS) {
    const old = new Map<string, Obj>((before?.[c.field] ?? []).map((o: Obj) => [c.id(o), o]));
    const seen = new Set<string>();
    for (const o of after[c.field] ?? []) {
      const id = c.id(o);
      seen.add(id);
      const prev = old.get(id);
      if (!prev) changes.push({ action: "add", kind: c.kind, id, name: c.name(o) });
      else {
        const fields = changedFields(prev, o);
        if (fields.length) changes.push({ action: "change", kind: c.kind, id, name: c.name(o), fields });
      }
    }
    for (const [id, o] of old) if (!seen.has(id)) changes.push({ action: "remove", kind: c.kind, id, name: c.name(o) });
  }
  for (const f of SINGLES) {
    const a = before?.[f];
    const b = after[f];
    if (a === undefined && b === undefined) continue;
    if (a === undefined) changes.push({ action: "add", kind: f, id: f, name: f });
    else if (b === undefined) changes.push({ action: "remove", kind: f, id: f, name: f });
    else {
      const fields = typeof a === "object" && typeof b === "object" ? changedFields(a, b) : a === b ? [] : [f];
      if (fields.length) changes.push({ action: "change", kind: f, id: f, name: f, fields });
    }
  }
  return changes;
}

function changedFields(a: Obj, b: Obj): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => stable(a[k]) !== stable(b[k])).sort();
}

function stable(v: unknown): string {
  return JSON.stringify(v, (_, x) => (x && typeof x === "object" && !Array.isArray(x) && !(x instanceof Uint8Array) ? Object.fromEntries(Object.entries(x).sort()) : x));
}
