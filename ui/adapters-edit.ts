// An app's adapters as the console edits them: the assignment groups of the configuration's deviceIoList the app
// is given (`apps[].adapters`, `type` + `name`), and which groups the form offers (free and assignable ones, from
// GET /api/v1/hardware) with why the others cannot be chosen. Pure: the documents are never changed in place.
import type { HardwareStatus } from "../src/hardware/service.ts";

type Doc = Record<string, any>;

/** `apps[].adapters` for these groups: each named by its group, typed as its first member (EVE's PhyIoType). */
export function adapterEntries(doc: Doc | null, groups: string[]): Doc[] {
  const io: Doc[] = doc?.deviceIoList ?? [];
  return [...new Set(groups)].map((name) => {
    const member = io.find((e) => e.assigngrp === name) ?? io.find((e) => e.logicallabel === name);
    return { type: typeof member?.ptype === "string" ? member.ptype : "PhyIoNoop", name };
  });
}

/** The groups an app of the document holds (by name, as it names them). */
export function adaptersOf(doc: Doc | null, uuid: string): string[] {
  const app = (doc?.apps ?? []).find((a: Doc) => a.uuidandversion?.uuid === uuid);
  return ((app?.adapters ?? []) as Doc[]).map((a) => String(a.name ?? "")).filter(Boolean);
}

export interface OfferedAdapter {
  name: string;
  type: string;
  /** What its members are on this device, in words. */
  what: string;
  /** Why it cannot be chosen for this app (held by another app, not assignable, missing), or null. */
  unavailable: string | null;
}

/** Every group, with why it cannot be chosen for the app `uuid` (undefined: a new app). */
export function offeredAdapters(hw: HardwareStatus | null, uuid?: string): OfferedAdapter[] {
  return (hw?.bundles ?? []).map((b) => {
    const others = b.usedBy.filter((u) => u.uuid !== uuid);
    const missing = b.found.find((f) => f.missing)?.missing;
    const unavailable =
      b.notAssignable ?? missing ?? (others.length && b.usage !== "PhyIoUsageShared" ? `in use by ${others.map((o) => o.name).join(", ")}` : null);
    return { name: b.name, type: b.type.replace(/^PhyIo/, ""), what: b.found.map((f) => f.missing ?? f.what).join("; "), unavailable };
  });
}

/** Sets an app's adapters in a document being built (a new copy): the groups, or none. */
export function writeAdapters(doc: Doc, app: Doc, groups: string[]): void {
  if (groups.length) app.adapters = adapterEntries(doc, groups);
  else delete app.adapters;
}
