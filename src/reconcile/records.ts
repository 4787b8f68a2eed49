// The reconciler's own bookkeeping per app and content tree, kept in the store so a restarted
// evebox knows which restart/purge counters it already acted on and what it loaded.
import type { Store } from "../store/store.ts";
import { type AppRecord, type ContentTreeRecord, newAppRecord } from "./observed.ts";

const APP = "reconcile.app";
const TREE = "reconcile.contentTree";

export class Records {
  constructor(private readonly store: Store) {}

  apps(): Map<string, AppRecord> {
    return new Map(this.store.observed(APP).map((r) => [r.id, r.data as unknown as AppRecord]));
  }
  app(uuid: string): AppRecord | undefined {
    return this.apps().get(uuid);
  }
  newApp(uuid: string, restartApplied: number, purgeApplied: number): AppRecord {
    return newAppRecord(uuid, restartApplied, purgeApplied);
  }
  putApp(rec: AppRecord): void {
    this.store.putObserved({ kind: APP, id: rec.uuid, name: null, state: "-", error: rec.error, data: rec as unknown as Record<string, unknown> });
  }
  deleteApp(uuid: string): void {
    this.store.deleteObserved(APP, uuid);
  }

  contentTrees(): Map<string, ContentTreeRecord> {
    return new Map(this.store.observed(TREE).map((r) => [r.id, r.data as unknown as ContentTreeRecord]));
  }
  contentTree(uuid: string): ContentTreeRecord | undefined {
    return this.contentTrees().get(uuid);
  }
  putContentTree(rec: ContentTreeRecord): void {
    this.store.putObserved({ kind: TREE, id: rec.uuid, name: null, state: rec.state, error: rec.error, data: rec as unknown as Record<string, unknown> });
  }
  deleteContentTree(uuid: string): void {
    this.store.deleteObserved(TREE, uuid);
  }
}
