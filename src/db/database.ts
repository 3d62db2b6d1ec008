import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { isTransientDbError } from './transient.ts';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { openEmbedded } from './embeddedDatabase.ts';
import { NOTIFY_SQL } from './notify.ts';

/** Something that runs parameterised SQL: the database itself or an open transaction. */
export interface QueryOptions {
  /**
   * Keeps the statement prepared under this name on each server connection, so the engine's hot
   * statements (thousands a minute) are parsed once and soon run on a cached plan (on the embedded
   * database too: embeddedThread.ts).
   */
  prepared?: string;
}

export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[], opts?: QueryOptions): Promise<T[]>;
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
  /** Runs `COPY (query) TO STDOUT` and returns the rows in COPY text format. */
  copyOut(query: string): Promise<string>;
}

export interface Database extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  /**
   * Runs fn in one transaction: committed when it resolves, rolled back when it throws. `opening`
   * is SQL without parameters run first, sent with BEGIN in one round trip (a request's tenant
   * switch, which every API request pays).
   */
  transaction<T>(fn: (tx: Transaction) => Promise<T>, opening?: string): Promise<T>;
  /**
   * Calls `handler` with each notification on `channel` until the returned function is called. On
   * a server the listening connection comes back by itself after it is lost; `onReconnect` is then
   * called, since notifications sent meanwhile are gone.
   */
  listen(channel: string, handler: (payload: string) => void, onReconnect?: () => void): Promise<() => Promise<void>>;
  /** Sends each payload as a notification on `channel`, in order, in one statement. */
  notify(channel: string, payloads: string[]): Promise<void>;
  close(): Promise<void>;
}

const INT8 = 20;
// Ids and counts fit in 2^53; the API promises integers, not strings.
const parseInt8 = (value: string) => Number(value);

// A stuck lock or a runaway statement fails fast and is retried, instead of stalling a worker.
const SESSION_SETTINGS = '-c lock_timeout=5000 -c statement_timeout=60000';
const DEFAULT_POOL_SIZE = 10;
// An unreachable server fails a query in this long instead of stalling it (and a shutdown) indefinitely.
const CONNECT_TIMEOUT_MS = 5_000;
/**
 * How long a query may wait for a free pooled connection. Not the connect timeout: a burst (a
 * hundred users starting campaigns at once, each building its queue) must queue, not fail.
 */
const POOL_WAIT_MS = 120_000;

/** pg-pool uses its connectionTimeoutMillis for the wait too; clients keep the short connect timeout. */
class PooledClient extends pg.Client {
  constructor(config?: pg.ClientConfig) {
    super({ ...config, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  }
}
const LISTEN_RECONNECT_MS = 250;
const LISTEN_RECONNECT_MAX_MS = 5_000;

/** `poolSize`: connections to a server (the embedded database has one). */
export async function openDatabase(opts: { url?: string; dataDir?: string; poolSize?: number }): Promise<Database> {
  if (opts.url) return openPostgres(opts.url, opts.poolSize ?? DEFAULT_POOL_SIZE);
  return openEmbedded(opts.dataDir);
}

async function openPostgres(url: string, poolSize: number): Promise<Database> {
  pg.types.setTypeParser(INT8, parseInt8);
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    options: SESSION_SETTINGS,
    connectionTimeoutMillis: POOL_WAIT_MS,
    Client: PooledClient,
  });
  // An idle client's error (server restart, pg_terminate_backend) must not kill the process;
  // the pool drops that client and the next query gets a fresh one.
  pool.on('error', () => undefined);
  const query = async <T>(sql: string, params?: unknown[], opts?: QueryOptions) =>
    (await pool.query({ text: sql, values: params, name: opts?.prepared })).rows as T[];
  return {
    kind: 'postgres',
    query,
    transaction: async (fn, opening) => {
      const client = await pool.connect();
      // A connection lost while checked out must fail the next query, not crash the process.
      const ignore = () => undefined;
      client.on('error', ignore);
      let lost: Error | undefined;
      try {
        await client.query(opening ? `BEGIN; ${opening}` : 'BEGIN');
        const result = await fn({
          query: async <T>(sql: string, params?: unknown[], opts?: QueryOptions) =>
            (await client.query({ text: sql, values: params, name: opts?.prepared })).rows as T[],
          exec: async (sql) => {
            await client.query(sql);
          },
          copyIn: (target, data) => pipeline(Readable.from([data]), client.query(copyFrom(`COPY ${target} FROM STDIN`))),
          copyOut: async (query) => {
            const chunks: Buffer[] = [];
            for await (const chunk of client.query(copyTo(`COPY (${query}) TO STDOUT`))) chunks.push(chunk as Buffer);
            return Buffer.concat(chunks).toString('utf8');
          },
        });
        await client.query('COMMIT');
        return result;
      } catch (err) {
        if (isTransientDbError(err)) lost = err as Error;
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.off('error', ignore);
        // A client that hit connection trouble is discarded rather than handed to the next caller.
        client.release(lost);
      }
    },
    exec: async (sql) => {
      await pool.query(sql);
    },
    listen: (channel, handler, onReconnect) => listenResiliently(url, channel, handler, onReconnect),
    notify: async (channel, payloads) => {
      if (payloads.length > 0) await pool.query(NOTIFY_SQL, [channel, payloads]);
    },
    close: () => pool.end(),
  };
}

/** A LISTEN on its own connection (a pooled one would be handed to others), re-established when lost. */
async function listenResiliently(
  url: string,
  channel: string,
  handler: (payload: string) => void,
  onReconnect: (() => void) | undefined,
): Promise<() => Promise<void>> {
  let current: pg.Client | undefined;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;

  const connect = async () => {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
    client.on('error', () => undefined);
    client.on('notification', (msg) => {
      if (msg.channel === channel) handler(msg.payload ?? '');
    });
    client.on('end', () => {
      if (current === client && !closed) reconnect(0);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    current = client;
  };

  const reconnect = (attempt: number) => {
    current = undefined;
    const wait = Math.min(LISTEN_RECONNECT_MAX_MS, LISTEN_RECONNECT_MS * 2 ** attempt);
    timer = setTimeout(() => {
      connect().then(
        () => (closed ? void current?.end().catch(() => undefined) : onReconnect?.()),
        () => !closed && reconnect(attempt + 1),
      );
    }, wait);
  };

  await connect();
  return async () => {
    closed = true;
    clearTimeout(timer);
    await current?.end().catch(() => undefined);
  };
}
