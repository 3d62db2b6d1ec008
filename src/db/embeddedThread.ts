/**
 * The embedded database (PGlite) on a thread of its own. PGlite runs PostgreSQL compiled to
 * WebAssembly on the thread that calls it, and a statement blocks that thread until it is done:
 * on the process's main thread every statement stopped SMTP sessions, API requests and timers for
 * its whole length (README Capacity). Here it uses the machine's other core instead; the process
 * talks to it with messages (embeddedDatabase.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { parse, PGlite, protocol, type Transaction } from '@electric-sql/pglite';

export type EmbeddedRequest =
  | { id: number; op: 'query'; tx: number | null; sql: string; params: unknown[]; prepared?: string }
  | { id: number; op: 'exec'; tx: number | null; sql: string }
  | { id: number; op: 'copyIn'; tx: number; target: string; data: string }
  | { id: number; op: 'copyOut'; tx: number; query: string }
  | { id: number; op: 'begin'; opening: string | null }
  | { id: number; op: 'end'; tx: number; commit: boolean }
  | { id: number; op: 'listen'; channel: string }
  | { id: number; op: 'unlisten'; listener: number }
  | { id: number; op: 'close' };

/** What a database error carries across: its message and the PostgreSQL fields code reads (`code` above all). */
export interface EmbeddedError {
  message: string;
  fields: Record<string, string>;
}

export type EmbeddedMessage =
  | { id: number; result: unknown }
  | { id: number; error: EmbeddedError }
  | { listener: number; payload: string }
  | { opened: true }
  | { openFailed: EmbeddedError };

export interface EmbeddedThreadData {
  /** Undefined: in memory. */
  dataDir: string | undefined;
}

const INT8 = 20;
// Ids and counts fit in 2^53; the API promises integers, not strings.
const parseInt8 = (value: string) => Number(value);
const ERROR_FIELDS = ['code', 'severity', 'detail', 'hint', 'constraint', 'table', 'column', 'schema', 'dataType', 'where', 'routine'] as const;
/** Thrown out of a transaction's callback to roll it back. */
const ROLLBACK = Symbol('rollback');

function describe(err: unknown): EmbeddedError {
  const e = (err ?? {}) as Record<string, unknown>;
  const fields: Record<string, string> = {};
  for (const f of ERROR_FIELDS) if (typeof e[f] === 'string') fields[f] = e[f];
  return { message: err instanceof Error ? err.message : String(err), fields };
}

const { serialize } = protocol;

/**
 * Runs `sql` as the named prepared statement `name`, parsed and described the first time: the
 * engine's hot statements then skip PostgreSQL's parse and plan (planning was two thirds of the
 * outcome statement on PostgreSQL, 0.45 of 0.6 ms) and the describe round trip PGlite's `query` makes
 * each time. The same protocol steps as PGlite's own `query` otherwise, with the statement's name.
 * `inTransaction`: the caller holds the transaction, so only the query lock is taken.
 */
function preparedQuery(db: PGlite, types: Map<string, number[]>) {
  const step = (message: Uint8Array) => db.execProtocolStream(message, { syncToFs: false });
  return (name: string, sql: string, params: unknown[], inTransaction: boolean): Promise<unknown[]> => {
    const run = () =>
      db._runExclusiveQuery(async () => {
        const messages = [];
        try {
          let paramTypes = types.get(name);
          if (!paramTypes) {
            await step(serialize.parse({ name, text: sql }));
            paramTypes = parse.parseDescribeStatementResults(await step(serialize.describe({ type: 'S', name })));
            types.set(name, paramTypes);
          }
          const values = params.map((v, i) => {
            if (v === null || v === undefined) return null;
            const serializer = db.serializers[paramTypes[i]!];
            return serializer ? (serializer(v) as string) : String(v);
          });
          messages.push(...(await step(serialize.bind({ statement: name, values }))));
          messages.push(...(await step(serialize.describe({ type: 'P' }))));
          messages.push(...(await step(serialize.execute({}))));
        } finally {
          messages.push(...(await step(serialize.sync())));
        }
        if (!db.isInTransaction()) await db.syncToFs();
        return parse.parseResults(messages, db.parsers)[0]?.rows ?? [];
      });
    return inTransaction ? run() : db._runExclusiveTransaction(run);
  };
}

interface OpenTransaction {
  tx: Transaction;
  finish: (commit: boolean) => void;
  done: Promise<void>;
}

async function serve(db: PGlite): Promise<void> {
  const port = parentPort!;
  const transactions = new Map<number, OpenTransaction>();
  const listeners = new Map<number, () => Promise<void>>();
  let nextId = 1;
  const opened = (tx: number): OpenTransaction => {
    const open = transactions.get(tx);
    if (!open) throw new Error(`the embedded database has no open transaction ${tx} (it ended or failed)`);
    return open;
  };
  const on = (tx: number | null): PGlite | Transaction => (tx === null ? db : opened(tx).tx);
  const prepared = preparedQuery(db, new Map());

  const begin = (opening: string | null): Promise<number> => {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      let finish!: (commit: boolean) => void;
      const decided = new Promise<boolean>((r) => (finish = r));
      const done = db
        .transaction(async (tx) => {
          if (opening) await tx.exec(opening);
          transactions.set(id, { tx, finish, done });
          resolve(id);
          if (!(await decided)) throw ROLLBACK;
        })
        .then(
          () => undefined,
          (err: unknown) => {
            if (err !== ROLLBACK) throw err;
          },
        )
        .finally(() => transactions.delete(id));
      // Failing before the transaction opened (its opening SQL) is the begin's failure.
      done.catch(reject);
    });
  };

  const handle = async (r: EmbeddedRequest): Promise<unknown> => {
    switch (r.op) {
      case 'query':
        if (r.prepared) {
          // A transaction that has ended fails the request, as `on` does for an unprepared one.
          if (r.tx !== null) opened(r.tx);
          return prepared(r.prepared, r.sql, r.params, r.tx !== null);
        }
        return (await on(r.tx).query(r.sql, r.params)).rows;
      case 'exec':
        await on(r.tx).exec(r.sql);
        return null;
      case 'copyIn': {
        // PGlite's COPY reads a virtual file, which only a superuser may, so a tenant-scoped
        // transaction steps out of its role for this one statement. The rows land only in the
        // caller's staging table; everything after it runs under the tenant role again.
        const tx = on(r.tx);
        const [scope] = (await tx.query<{ role: string }>('SELECT current_user AS role')).rows;
        await tx.exec('SET LOCAL ROLE NONE');
        try {
          await tx.query(`COPY ${r.target} FROM '/dev/blob'`, [], { blob: new Blob([r.data]) });
        } finally {
          await tx.query(`SELECT set_config('role', $1, true)`, [scope!.role]);
        }
        return null;
      }
      case 'copyOut': {
        const result = await on(r.tx).query(`COPY (${r.query}) TO '/dev/blob'`);
        return (await result.blob?.text()) ?? '';
      }
      case 'begin':
        return begin(r.opening);
      case 'end': {
        const open = opened(r.tx);
        open.finish(r.commit);
        await open.done;
        return null;
      }
      case 'listen': {
        const listener = nextId++;
        listeners.set(listener, await db.listen(r.channel, (payload) => port.postMessage({ listener, payload } satisfies EmbeddedMessage)));
        return listener;
      }
      case 'unlisten':
        await listeners.get(r.listener)?.();
        listeners.delete(r.listener);
        return null;
      case 'close':
        await db.close();
        return null;
    }
  };

  port.on('message', (r: EmbeddedRequest) => {
    handle(r).then(
      (result) => port.postMessage({ id: r.id, result } satisfies EmbeddedMessage),
      (err: unknown) => port.postMessage({ id: r.id, error: describe(err) } satisfies EmbeddedMessage),
    );
  });
  port.postMessage({ opened: true } satisfies EmbeddedMessage);
}

const { dataDir } = workerData as EmbeddedThreadData;
PGlite.create(dataDir, { parsers: { [INT8]: parseInt8 } }).then(serve, (err: unknown) =>
  parentPort!.postMessage({ openFailed: describe(err) } satisfies EmbeddedMessage),
);
