import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../src/errors.ts';
import { bindRequestDatabase, settleRequestTransactions } from '../src/api/requestDatabase.ts';
import { insertList } from '../src/db/lists.ts';
import { insertUser } from '../src/db/users.ts';
import { Events, type AppEvent } from '../src/events.ts';
import { databaseKinds, freshDatabase, type TestDatabase } from './helpers/db.ts';

const NOW = new Date('2026-03-02T10:00:00Z');

describe.each(databaseKinds)("a user's request and its transaction (%s)", (kind) => {
  let database: TestDatabase;
  let app: FastifyInstance;
  let userId: number;
  /** What the after-commit work of each request saw from outside the request. */
  const seenAfterCommit: string[] = [];
  /** Events the requests emitted through req.events, as the process saw them. */
  const emitted: AppEvent[] = [];

  beforeAll(async () => {
    database = await freshDatabase(kind);
    const db = database.db;
    userId = (await insertUser(db, 'ann', 'ann@example.test', NOW)).id;
    app = Fastify();
    const events = new Events();
    events.on((e) => emitted.push(e));
    app.decorateRequest('db', null as never);
    app.decorateRequest('afterCommit', null as never);
    app.decorateRequest('events', null as never);
    app.addHook('onRequest', async (req) => bindRequestDatabase(req, db, { kind: 'user', userId }, events));
    settleRequestTransactions(app);
    app.setErrorHandler((err: Error, _req, reply) => reply.status(err instanceof AppError ? err.status : 500).send({ error: err.message }));

    const addList = async (req: { db: typeof db; afterCommit(fn: () => void): void }, name: string) => {
      const list = await insertList(req.db, userId, name, NOW);
      req.afterCommit(() => {
        void db.query<{ n: number }>('SELECT count(*) AS n FROM lists WHERE name = $1', [name]).then(([r]) => seenAfterCommit.push(`${name}:${r!.n}`));
      });
      return list;
    };
    app.post('/ok', async (req) => addList(req, 'kept'));
    app.post('/sent', async (req, reply) => reply.status(201).send(await addList(req, 'sent')));
    app.post('/fails', async (req) => {
      await addList(req, 'rolled back');
      throw new AppError(409, 'conflict', 'changed my mind');
    });
    app.post('/per-query', { config: { dbScope: 'per-query' } }, async (req) => {
      await addList(req, 'committed at once');
      throw new AppError(409, 'conflict', 'too late');
    });
    app.post('/nested', async (req) => {
      await req.db.transaction((tx) => insertList(tx, userId, 'outer', NOW));
      await req.db.transaction(async (tx) => {
        await insertList(tx, userId, 'inner', NOW);
        throw new Error('undo the inner part');
      }).catch(() => undefined);
      return { ok: true };
    });
    const wake = (userId: number) => ({ type: 'engine.wake', userId }) as const;
    app.post('/announce', async (req) => {
      await addList(req, 'announced');
      req.events.emit(wake(1));
      expect(emitted).toEqual([]);
      return { ok: true };
    });
    app.post('/announce-then-fail', async (req) => {
      await addList(req, 'announced, then rolled back');
      req.events.emit(wake(2));
      throw new AppError(409, 'conflict', 'changed my mind');
    });
    app.get('/who', async (req) => (await req.db.query(`SELECT current_user AS role, current_setting('app.user_id') AS "userId"`))[0]);
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
    await database.drop();
  });

  const names = async () => (await database.db.query<{ name: string }>('SELECT name FROM lists ORDER BY id')).map((r) => r.name);

  it('runs as the tenant role for the caller', async () => {
    const res = await app.inject({ method: 'GET', url: '/who' });
    expect(res.json()).toEqual({ role: 'mailpilot_tenant', userId: String(userId) });
  });

  it('commits before the reply, then runs the after-commit work, whether the handler returns or sends', async () => {
    expect((await app.inject({ method: 'POST', url: '/ok' })).statusCode).toBe(200);
    expect(await names()).toContain('kept');
    expect((await app.inject({ method: 'POST', url: '/sent' })).statusCode).toBe(201);
    expect(await names()).toContain('sent');
    await expect.poll(() => seenAfterCommit).toEqual(expect.arrayContaining(['kept:1', 'sent:1']));
  });

  it('rolls back everything a failed request wrote, and drops its after-commit work', async () => {
    expect((await app.inject({ method: 'POST', url: '/fails' })).statusCode).toBe(409);
    expect(await names()).not.toContain('rolled back');
    expect(seenAfterCommit.some((s) => s.startsWith('rolled back'))).toBe(false);
  });

  it('emits the events of a request once it commits, and none of a request that rolls back', async () => {
    expect((await app.inject({ method: 'POST', url: '/announce' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'POST', url: '/announce-then-fail' })).statusCode).toBe(409);
    expect(emitted).toEqual([{ type: 'engine.wake', userId: 1 }]);
  });

  it('leaves each query of a per-query route committed on its own', async () => {
    expect((await app.inject({ method: 'POST', url: '/per-query' })).statusCode).toBe(409);
    expect(await names()).toContain('committed at once');
  });

  it('gives nested transactions their own rollback', async () => {
    expect((await app.inject({ method: 'POST', url: '/nested' })).statusCode).toBe(200);
    const all = await names();
    expect(all).toContain('outer');
    expect(all).not.toContain('inner');
  });
});
