import { randomBytes } from 'node:crypto';
import pg from 'pg';

const DEFAULT_SERVER_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

export interface BenchDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

async function onServer<T>(serverUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A new empty database on the local PostgreSQL server (or on `serverUrl`'s); MailPilot migrates it on start. */
export async function createBenchDatabase(serverUrl = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL || DEFAULT_SERVER_URL): Promise<BenchDatabase> {
  const name = `mailpilot_bench_${randomBytes(6).toString('hex')}`;
  try {
    await onServer(serverUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`cannot create a database on ${redact(serverUrl)} (set BENCH_DATABASE_URL): ${why}`);
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    // FORCE ends the connections MailPilot may have left behind if it was killed.
    drop: () => onServer(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

export interface DatabaseFootprint {
  /** pg_database_size of the whole database. */
  databaseBytes: number;
  messageRows: number;
  /** The messages table with its indexes and TOAST (pg_total_relation_size), and its indexes alone. */
  messagesBytes: number;
  messagesIndexBytes: number;
  /** messagesBytes / messageRows: what a queued recipient costs, dead row versions of its updates included. */
  bytesPerMessageRow: number | null;
}

/** Disk use of a MailPilot database, read as the server's superuser (row-level security does not hide rows from it). */
export async function databaseFootprint(url: string): Promise<DatabaseFootprint> {
  return onServer(url, async (c) => {
    const { rows } = await c.query<{ database: string; rows: string; total: string; indexes: string }>(
      `SELECT pg_database_size(current_database()) AS database, (SELECT count(*) FROM messages) AS rows,
              pg_total_relation_size('messages') AS total, pg_indexes_size('messages') AS indexes`,
    );
    const r = rows[0]!;
    const messageRows = Number(r.rows);
    return {
      databaseBytes: Number(r.database),
      messageRows,
      messagesBytes: Number(r.total),
      messagesIndexBytes: Number(r.indexes),
      bytesPerMessageRow: messageRows > 0 ? Math.round(Number(r.total) / messageRows) : null,
    };
  });
}
