import type { Database } from "bun:sqlite";
import { type EmbeddedMigration, migrations as embedded } from "./migrations.gen.ts";

export class StoreTooNewError extends Error {
  constructor(
    readonly path: string,
    readonly storeSchema: number,
    readonly knownSchema: number,
  ) {
    super(
      `the store ${path} was written by a newer evebox (schema ${storeSchema}; this evebox knows up to ${knownSchema}): ` +
        `run that newer evebox, or restore a backup of the store`,
    );
    this.name = "StoreTooNewError";
  }
}

/**
 * Applies every embedded migration the store has not seen, all in one transaction. The schema
 * level is SQLite's user_version, so an older binary can tell that a newer one wrote the file.
 */
export function applyMigrations(
  sqlite: Database,
  path: string,
  migrations: EmbeddedMigration[] = embedded,
): { from: number; to: number } {
  const current = (sqlite.query("PRAGMA user_version").get() as { user_version: number }).user_version;
  if (current > migrations.length) throw new StoreTooNewError(path, current, migrations.length);
  if (current === migrations.length) return { from: current, to: current };
  const run = sqlite.transaction(() => {
    sqlite.run(
      "CREATE TABLE IF NOT EXISTS evebox_migrations (idx INTEGER PRIMARY KEY, tag TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    );
    for (let i = current; i < migrations.length; i++) {
      const m = migrations[i]!;
      for (const statement of m.statements) sqlite.run(statement);
      sqlite.run("INSERT INTO evebox_migrations (idx, tag, applied_at) VALUES (?, ?, ?)", [i, m.tag, Date.now()]);
    }
    // PRAGMA takes no bound parameters; the value is our own integer.
    sqlite.run(`PRAGMA user_version = ${migrations.length}`);
  });
  run.immediate();
  return { from: current, to: migrations.length };
}
