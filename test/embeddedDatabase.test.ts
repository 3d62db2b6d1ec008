import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../src/db/database.ts';

/** The largest pause of this thread's timers while `work` runs, next to how long it ran (ms). */
async function timerPauseDuring(work: () => Promise<unknown>): Promise<{ maxPauseMs: number; workMs: number }> {
  let last = performance.now();
  let maxPauseMs = 0;
  const tick = () => {
    const now = performance.now();
    maxPauseMs = Math.max(maxPauseMs, now - last);
    last = now;
  };
  const timer = setInterval(tick, 5);
  const started = performance.now();
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  // The gap since the last tick counts too: a thread blocked to the end never ticks at all.
  tick();
  return { maxPauseMs, workMs: performance.now() - started };
}

describe('the embedded database on a thread of its own', () => {
  let db: Database;
  beforeAll(async () => {
    db = await openDatabase({});
    await db.exec(`CREATE TABLE t (id bigint PRIMARY KEY, at timestamptz, tags text[], data bytea, note text)`);
  });
  afterAll(() => db.close());

  it('keeps the process running while a long statement runs', async () => {
    const { maxPauseMs, workMs } = await timerPauseDuring(() => db.query('SELECT count(*) FROM generate_series(1, 3000000) g WHERE g % 7 = 0'));
    // On this thread the statement stopped every timer for its whole length.
    expect(workMs).toBeGreaterThan(200);
    expect(maxPauseMs).toBeLessThan(workMs / 2);
  });

  it('carries parameters and results of every kind the application uses, bigint as number', async () => {
    const at = new Date('2026-11-30T12:34:56.789Z');
    await db.query('INSERT INTO t VALUES ($1, $2, $3, $4, $5)', [9_007_199_254_740_991, at, ['a', 'b,c'], Buffer.from([0, 1, 255]), null]);
    const [row] = await db.query<{ id: number; at: Date; tags: string[]; data: Uint8Array; note: null }>('SELECT * FROM t');
    expect(row).toEqual({ id: 9_007_199_254_740_991, at, tags: ['a', 'b,c'], data: new Uint8Array([0, 1, 255]), note: null });
  });

  it("passes PostgreSQL's error fields on, so callers can tell a unique violation from a bug", async () => {
    const err = await db.query('INSERT INTO t (id) VALUES (9007199254740991)').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ code: '23505', constraint: 't_pkey', message: expect.stringMatching(/duplicate key/) });
  });

  it('keeps a statement given a name prepared: the same rows as unprepared, in and out of transactions, and usable again after it fails', async () => {
    const sql = `SELECT u.id, u.at, u.flag FROM unnest($1::bigint[], $2::timestamptz[], $3::bool[]) AS u(id, at, flag) WHERE u.id > $4`;
    const at = new Date('2026-11-30T01:02:03.004Z');
    const params = [[1, 9_007_199_254_740_991], [at, null], [true, false], 0];
    const plain = await db.query(sql, params);
    expect(plain).toEqual([
      { id: 1, at, flag: true },
      { id: 9_007_199_254_740_991, at: null, flag: false },
    ]);
    expect(await db.query(sql, params, { prepared: 'mp_test_unnest' })).toEqual(plain);
    expect(await db.query(sql, [[5], [null], [null], 9], { prepared: 'mp_test_unnest' })).toEqual([]);
    expect(await db.transaction((tx) => tx.query(sql, params, { prepared: 'mp_test_unnest' }))).toEqual(plain);
    const named = await db.query<{ name: string; parameterTypes: string }>(
      `SELECT name, parameter_types::text AS "parameterTypes" FROM pg_prepared_statements WHERE name = 'mp_test_unnest'`,
    );
    expect(named).toEqual([{ name: 'mp_test_unnest', parameterTypes: '{bigint[],"timestamp with time zone[]",boolean[],bigint}' }]);

    const insert = 'INSERT INTO t (id, note) VALUES ($1, $2)';
    await db.query(insert, [70, 'first'], { prepared: 'mp_test_insert' });
    await expect(db.query(insert, [70, 'again'], { prepared: 'mp_test_insert' })).rejects.toMatchObject({ code: '23505' });
    await db.query(insert, [71, 'after the failure'], { prepared: 'mp_test_insert' });
    expect(await db.query('SELECT id, note FROM t WHERE id BETWEEN 70 AND 79 ORDER BY id')).toEqual([
      { id: 70, note: 'first' },
      { id: 71, note: 'after the failure' },
    ]);
  });

  it('commits a transaction that resolves and rolls back one that throws, with COPY in and out inside', async () => {
    const copied = await db.transaction(async (tx) => {
      await tx.copyIn('t (id, note)', '1\tone\n2\ttwo\n');
      return tx.copyOut('SELECT id, note FROM t WHERE id < 10 ORDER BY id');
    });
    expect(copied).toBe('1\tone\n2\ttwo\n');
    const failure = await db
      .transaction(async (tx) => {
        await tx.query(`UPDATE t SET note = 'changed' WHERE id = 1`);
        throw new Error('changed my mind');
      })
      .catch((e: Error) => e.message);
    expect(failure).toBe('changed my mind');
    expect(await db.query(`SELECT note FROM t WHERE id = 1`)).toEqual([{ note: 'one' }]);
  });

  it('runs the opening SQL of a transaction first, and fails the transaction when it fails', async () => {
    const roles = await db.transaction((tx) => tx.query<{ s: string }>(`SELECT current_setting('mp.test') AS s`), `SET LOCAL mp.test = 'opened'`);
    expect(roles).toEqual([{ s: 'opened' }]);
    await expect(db.transaction(async () => 1, 'SELECT no_such_function()')).rejects.toMatchObject({ code: '42883' });
    // The connection is free again afterwards.
    expect(await db.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });

  it('delivers notifications in order until unlistened', async () => {
    const seen: string[] = [];
    const unlisten = await db.listen('mp_test', (p) => seen.push(p));
    await db.notify('mp_test', ['a', 'b', 'c']);
    await db.query('SELECT 1');
    expect(seen).toEqual(['a', 'b', 'c']);
    await unlisten();
    await db.notify('mp_test', ['d']);
    await db.query('SELECT 1');
    expect(seen).toEqual(['a', 'b', 'c']);
  });

  it('keeps its data in a data directory across a close, and fails queries once closed', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'mailpilot-embedded-')), 'pglite');
    const first = await openDatabase({ dataDir: dir });
    await first.exec('CREATE TABLE kept (v text); INSERT INTO kept VALUES ($$still here$$)');
    await first.close();
    await expect(first.query('SELECT 1')).rejects.toThrow(/embedded database stopped/);
    const second = await openDatabase({ dataDir: dir });
    expect(await second.query('SELECT v FROM kept')).toEqual([{ v: 'still here' }]);
    await second.close();
  });
});
