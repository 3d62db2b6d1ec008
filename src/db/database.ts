import { mkdirSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

/** Something that runs parameterised SQL: the database itself or an open transaction. */
export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

/** An open transaction: one connection, so temporary tables live as long as it. */
export interface Transaction extends Queryable {
  /**
   * Bulk-loads rows with COPY: `target` is a table and its columns (`staging (a, b)`), `data` is
   * COPY text format (one line per row, tab-separated, backslash escapes).
   */
  copyIn(target: string, data: string): Promise<void>;
}

export interface Database extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  /** Runs fn in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T>;
  listen(channel: string, handler: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

const INT8 = 20;
// Ids and counts fit in 2^53; the API promises integers, not strings.
const parseInt8 = (value: string) => Number(value);

// A stuck lock or a runaway statement fails fast and is retried, instead of stalling a worker.
const SESSION_SETTINGS = '-c lock_timeout=5000 -c statement_timeout=60000';
const POOL_SIZE = 10;

export async function openDatabase(opts: { url?: string; dataDir?: string }): Promise<Database> {
  if (opts.url) return openPostgres(opts.url);
  return openPglite(opts.dataDir);
}

async function openPglite(dataDir: string | undefined): Promise<Database> {
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir, { parsers: { [INT8]: parseInt8 } });
  const query = async <T>(sql: string, params?: unknown[]) => (await db.query<T>(sql, params)).rows;
  return {
    kind: 'pglite',
    query,
    transaction: (fn) =>
      db.transaction((tx) =>
        fn({
          query: async <T>(sql: string, params?: unknown[]) => (await tx.query<T>(sql, params)).rows,
          exec: async (sql) => {
            await tx.exec(sql);
          },
          copyIn: async (target, data) => {
            await tx.query(`COPY ${target} FROM '/dev/blob'`, [], { blob: new Blob([data]) });
          },
        }),
      ),
    exec: async (sql) => {
      await db.exec(sql);
    },
    listen: async (channel, handler) => {
      const unlisten = await db.listen(channel, handler);
      return unlisten;
    },
    close: () => db.close(),
  };
}

async function openPostgres(url: string): Promise<Database> {
  pg.types.setTypeParser(INT8, parseInt8);
  const pool = new pg.Pool({ connectionString: url, max: POOL_SIZE, options: SESSION_SETTINGS });
  // An idle client's error (server restart, pg_terminate_backend) must not kill the process;
  // the pool drops that client and the next query gets a fresh one.
  pool.on('error', () => undefined);
  const query = async <T>(sql: string, params?: unknown[]) => (await pool.query(sql, params)).rows as T[];
  return {
    kind: 'postgres',
    query,
    transaction: async (fn) => {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn({
          query: async <T>(sql: string, params?: unknown[]) => (await client.query(sql, params)).rows as T[],
          exec: async (sql) => {
            await client.query(sql);
          },
          copyIn: (target, data) => pipeline(Readable.from([data]), client.query(copyFrom(`COPY ${target} FROM STDIN`))),
        });
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    exec: async (sql) => {
      await pool.query(sql);
    },
    listen: async (channel, handler) => {
      const client = new pg.Client({ connectionString: url });
      client.on('error', () => undefined);
      await client.connect();
      client.on('notification', (msg) => {
        if (msg.channel === channel) handler(msg.payload ?? '');
      });
      await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      return async () => {
        await client.end().catch(() => undefined);
      };
    },
    close: () => pool.end(),
  };
}
