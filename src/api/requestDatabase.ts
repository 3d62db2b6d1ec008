import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Database, QueryOptions, Transaction } from '../db/database.ts';
import type { EventSink } from '../events.ts';
import { tenantScope } from '../db/tenantScope.ts';
import type { Caller } from './auth.ts';

/**
 * Each API request reaches the database through `req.db`: for a user's key, that user's tenant
 * scope (the row-level security wall, db/tenantScope.ts); for the admin key, the whole database.
 *
 * A user's request runs in one transaction, opened by its first query and settled just before the
 * reply is written: committed for a reply under 400, rolled back otherwise (or if the client goes
 * away first). So the tenant switch is paid once per request, not per query, and a client that sees
 * a success can read what it wrote. Work that others must see only once it is committed (waking the
 * engine) goes through `req.afterCommit`, and events through `req.events`, which holds them until then.
 *
 * Routes that stream, stay open or run their own transactions (an import committing chunk by chunk,
 * the campaign state machine, an event stream) declare `config: { dbScope: 'per-query' }`: their
 * queries each run in a short tenant transaction of their own.
 */

declare module 'fastify' {
  interface FastifyContextConfig {
    dbScope?: 'request' | 'per-query';
  }
  interface FastifyRequest {
    /** The database as the caller may see it. */
    db: Database;
    /** Runs fn once the request's writes are committed; never if they are rolled back. */
    afterCommit(fn: () => void): void;
    /** The process's events, each emitted once the request's writes are committed (never if rolled back). */
    events: EventSink;
  }
}

const ROLLBACK = Symbol('rollback');

/** A transaction opened on first use and held until the request is settled. */
class RequestTransaction {
  private opened: Promise<Transaction> | undefined;
  private decide: ((commit: boolean) => void) | undefined;
  private settled: Promise<void> | undefined;
  private savepoints = 0;
  readonly onCommit: (() => void)[] = [];

  constructor(private readonly scope: Database) {}

  queryable(): Promise<Transaction> {
    this.opened ??= new Promise<Transaction>((resolve, reject) => {
      let began = false;
      this.settled = this.scope
        .transaction(async (tx) => {
          began = true;
          const commit = new Promise<boolean>((decide) => (this.decide = decide));
          resolve(tx);
          if (!(await commit)) throw ROLLBACK;
        })
        .catch((err: unknown) => {
          // A transaction that never began fails the queries waiting for it; one that did fails its settling.
          if (!began) reject(err);
          else if (err !== ROLLBACK) throw err;
        });
    });
    return this.opened;
  }

  /** One nested unit that rolls back alone when fn throws, like a transaction of its own. */
  async nested<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    const tx = await this.queryable();
    const name = `request_${++this.savepoints}`;
    await tx.query(`SAVEPOINT ${name}`);
    try {
      const result = await fn(tx);
      await tx.query(`RELEASE SAVEPOINT ${name}`);
      return result;
    } catch (err) {
      await tx.query(`ROLLBACK TO SAVEPOINT ${name}`);
      throw err;
    }
  }

  /** Commits or rolls back (once; later calls do nothing), then runs the after-commit work. */
  async settle(commit: boolean): Promise<void> {
    const opened = this.opened;
    if (opened === undefined) {
      this.opened = Promise.reject(new Error('the request is over; its transaction is closed'));
      this.opened.catch(() => undefined);
      if (commit) for (const fn of this.onCommit.splice(0)) fn();
      return;
    }
    if (this.decide === undefined) {
      // Still opening (or it failed to open): wait for it, so it is not left behind.
      if (!(await opened.then(() => true, () => false))) return;
    }
    const decide = this.decide;
    if (decide === undefined) return;
    this.decide = undefined;
    decide(commit);
    await this.settled;
    if (commit) for (const fn of this.onCommit.splice(0)) fn();
  }
}

function inTransaction(base: Database, rt: RequestTransaction): Database {
  return {
    kind: base.kind,
    query: async <T>(sql: string, params?: unknown[], opts?: QueryOptions) => (await rt.queryable()).query<T>(sql, params, opts),
    exec: async (sql) => (await rt.queryable()).exec(sql),
    transaction: (fn) => rt.nested(fn),
    listen: (channel, handler) => base.listen(channel, handler),
    notify: (channel, payloads) => base.notify(channel, payloads),
    close: async () => undefined,
  };
}

const refuse = (): never => {
  throw new Error("route modules query through req.db (the caller's scope), never ctx.db");
};

/**
 * The database of a request without a key, and what route modules get as ctx.db: none, so a query
 * that would skip the caller's scope fails at once.
 */
export const noAmbientDatabase: Database = {
  get kind(): never {
    return refuse();
  },
  query: async () => refuse(),
  exec: async () => refuse(),
  transaction: async () => refuse(),
  listen: async () => refuse(),
  notify: async () => refuse(),
  close: async () => refuse(),
};

const transactions = new WeakMap<FastifyRequest, RequestTransaction>();

/**
 * Gives the request its database (none without a key, all of it for the admin, a tenant scope for
 * a user) and its event sink, which holds each event until that database's writes are committed.
 */
export function bindRequestDatabase(req: FastifyRequest, db: Database, caller: Caller | null, events: EventSink): void {
  req.afterCommit = (fn) => fn();
  req.events = { emit: (e) => req.afterCommit(() => events.emit(e)) };
  if (caller === null) {
    req.db = noAmbientDatabase;
    return;
  }
  if (caller.kind === 'admin') {
    req.db = db;
    return;
  }
  const scope = tenantScope(db, caller.userId);
  if (req.routeOptions.config.dbScope === 'per-query') {
    req.db = scope;
    return;
  }
  const rt = new RequestTransaction(scope);
  transactions.set(req, rt);
  req.db = inTransaction(db, rt);
  req.afterCommit = (fn) => void rt.onCommit.push(fn);
}

/** Settles each request's transaction before its reply is written, and whatever happens to the client. */
export function settleRequestTransactions(app: FastifyInstance): void {
  const settle = (req: FastifyRequest, reply: FastifyReply) => transactions.get(req)?.settle(reply.statusCode < 400);
  app.addHook('onSend', async (req, reply, payload) => {
    await settle(req, reply);
    return payload;
  });
  app.addHook('onRequestAbort', async (req) => transactions.get(req)?.settle(false));
  app.addHook('onResponse', async (req) => transactions.get(req)?.settle(false));
}
