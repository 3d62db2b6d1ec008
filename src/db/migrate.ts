import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Database, Queryable } from './database.ts';

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));
// Serialises migrations of several processes starting at once against one server.
const MIGRATION_LOCK = 7_246_001;

interface Migration {
  version: number;
  name: string;
  sql: string;
}

function readMigrations(): Migration[] {
  return readdirSync(MIGRATIONS_DIR)
    .filter((f) => /^\d+_.+\.sql$/.test(f))
    .sort()
    .map((name) => ({ version: Number.parseInt(name, 10), name, sql: readFileSync(MIGRATIONS_DIR + name, 'utf8') }));
}

/**
 * Applies pending migrations in order, each in a transaction of its own: a failing migration rolls
 * back alone and leaves the ones before it applied. Refuses a database newer than this code.
 * Returns the names of the migrations applied.
 */
export async function migrate(db: Database): Promise<string[]> {
  const migrations = readMigrations();
  const applied: string[] = [];
  for (;;) {
    const name = await db.transaction(async (tx) => {
      // Held until this migration commits: a process starting meanwhile waits, then sees it applied.
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
      const done = new Set((await tx.query<{ version: number }>('SELECT version FROM schema_migrations')).map((r) => r.version));
      const newest = migrations.at(-1)?.version ?? 0;
      const unknown = [...done].filter((v) => v > newest);
      if (unknown.length > 0) {
        throw new Error(`the database has schema version ${Math.max(...unknown)}, newer than this MailPilot (${newest}); upgrade MailPilot`);
      }
      const next = migrations.find((m) => !done.has(m.version));
      if (!next) return undefined;
      await tx.exec(next.sql);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [next.version, next.name]);
      return next.name;
    });
    if (name === undefined) return applied;
    applied.push(name);
  }
}

/** Which of this code's migrations the database has not applied (by version); throws when it cannot be read. */
export async function schemaState(db: Queryable): Promise<{ missing: number[] }> {
  const [table] = await db.query<{ present: boolean }>(`SELECT to_regclass('schema_migrations') IS NOT NULL AS present`);
  const done = table!.present ? new Set((await db.query<{ version: number }>('SELECT version FROM schema_migrations')).map((r) => r.version)) : new Set<number>();
  return { missing: readMigrations().filter((m) => !done.has(m.version)).map((m) => m.version) };
}
