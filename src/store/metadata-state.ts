// What the apps' metadata server (src/metadata/) keeps across restarts, as EVE's msrv keeps it (its usage counters
// in a persist cache, the apps' metadata as a persistent publication): each app's use of its patch envelopes and
// the last status each app posted. Prepared statements over the store's database; bounded by the current config
// (`keepUsage`, `keepStatuses`: rows of apps, envelopes or versions no longer in it go).
import type { Database } from "bun:sqlite";

/** One app's use of one envelope version. */
export interface PatchUsageRow {
  appUuid: string;
  uuid: string;
  version: string;
  apiCalls: number;
  downloads: number;
}

export class MetadataState {
  private prepared: ReturnType<MetadataState["prepare"]> | null = null;

  constructor(private readonly sqlite: Database) {}

  /** The statements, prepared at the first use (not at open: a start's CPU before the console answers, issue 17). */
  private get q() {
    return (this.prepared ??= this.prepare());
  }

  private prepare() {
    const sqlite = this.sqlite;
    return {
      usage: sqlite.query<PatchUsageRow, []>(
        "SELECT app AS appUuid, envelope AS uuid, version, api_calls AS apiCalls, downloads FROM patch_envelope_usage ORDER BY app, envelope, version",
      ),
      count: sqlite.query<never, [string, string, string, number, number]>(
        "INSERT INTO patch_envelope_usage (app, envelope, version, api_calls, downloads) VALUES (?1, ?2, ?3, ?4, ?5) " +
          "ON CONFLICT (app, envelope, version) DO UPDATE SET api_calls = api_calls + ?4, downloads = downloads + ?5",
      ),
      dropUsage: sqlite.query<never, [string, string, string]>("DELETE FROM patch_envelope_usage WHERE app = ? AND envelope = ? AND version = ?"),
      statuses: sqlite.query<{ app: string; data: Uint8Array }, []>("SELECT app, data FROM app_custom_status ORDER BY app"),
      setStatus: sqlite.query<never, [string, Uint8Array, number]>(
        "INSERT INTO app_custom_status (app, data, updated_at) VALUES (?1, ?2, ?3) ON CONFLICT (app) DO UPDATE SET data = ?2, updated_at = ?3",
      ),
      dropStatus: sqlite.query<never, [string]>("DELETE FROM app_custom_status WHERE app = ?"),
    };
  }

  /** Every app's counters. */
  usage(): PatchUsageRow[] {
    return this.q.usage.all();
  }

  /** Adds to one app's counters of one envelope version (a row is made at its first use). */
  count(appUuid: string, uuid: string, version: string, what: "apiCalls" | "downloads"): void {
    this.q.count.run(appUuid, uuid, version, what === "apiCalls" ? 1 : 0, what === "downloads" ? 1 : 0);
  }

  /** Removes the counters `keep` does not want (an app, envelope or version no longer in the config). */
  keepUsage(keep: (row: PatchUsageRow) => boolean): void {
    const gone = this.usage().filter((r) => !keep(r));
    if (!gone.length) return;
    this.sqlite.transaction(() => {
      for (const r of gone) this.q.dropUsage.run(r.appUuid, r.uuid, r.version);
    })();
  }

  /** Each app's last posted status, as posted. */
  statuses(): { uuid: string; data: Uint8Array }[] {
    return this.q.statuses.all().map((r) => ({ uuid: r.app, data: new Uint8Array(r.data) }));
  }

  setStatus(appUuid: string, data: Uint8Array, at = Date.now()): void {
    this.q.setStatus.run(appUuid, data, at);
  }

  /** Removes the statuses of apps `keep` does not hold (apps no longer in the config). */
  keepStatuses(keep: ReadonlySet<string>): void {
    for (const r of this.q.statuses.all()) if (!keep.has(r.app)) this.q.dropStatus.run(r.app);
  }
}
