import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './helpers/db.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

describe.each(databaseKinds)('GET /readyz (%s)', (kind) => {
  let t: TestMailPilot;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
  });
  afterAll(() => t.close());

  it('answers 200 without a key when the database answers and every migration is applied', async () => {
    expect(await t.api('GET', '/readyz')).toEqual({ status: 200, body: { ok: true } });
    expect(await t.api('GET', '/healthz')).toEqual({ status: 200, body: { ok: true } });
  });

  it('answers 503 naming the missing migration, and 200 again once it is back', async () => {
    const [last] = await t.mp.ctx.db.query<{ version: number; name: string }>('SELECT version, name FROM schema_migrations ORDER BY version DESC LIMIT 1');
    await t.mp.ctx.db.query('DELETE FROM schema_migrations WHERE version = $1', [last!.version]);
    try {
      const res = await t.api('GET', '/readyz');
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ ok: false, reason: `the database lacks migrations ${last!.version}: run mailpilot migrate` });
      expect((await t.api('GET', '/healthz')).status).toBe(200);
    } finally {
      await t.mp.ctx.db.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [last!.version, last!.name]);
    }
    expect((await t.api('GET', '/readyz')).status).toBe(200);
  });

  it('answers 503 within its time limit while the database does not answer', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    // A transaction holding the migrations table keeps the readiness query waiting, as a stuck server would.
    const holding = t.mp.ctx.db.transaction(async (tx) => {
      await tx.query('LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE');
      locked();
      await held;
    });
    await isLocked;
    const started = performance.now();
    const res = await t.api('GET', '/readyz');
    const tookMs = performance.now() - started;
    release();
    await holding;
    expect(res).toEqual({ status: 503, body: { ok: false, reason: 'the database did not answer within 2 s' } });
    expect(tookMs).toBeGreaterThanOrEqual(1_900);
    expect(tookMs).toBeLessThan(4_000);
    expect((await t.api('GET', '/readyz')).status).toBe(200);
  });
});
