import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './helpers/db.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

describe.each(databaseKinds)('users and keys (%s)', (kind) => {
  let t: TestMailPilot;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
  });
  afterAll(() => t.close());

  it('answers /healthz without a key', async () => {
    expect(await t.api('GET', '/healthz')).toEqual({ status: 200, body: { ok: true } });
  });

  it('lets the admin create a user whose key then identifies it', async () => {
    const created = await t.api('POST', '/api/v1/users', { key: t.adminKey, body: { name: 'Ada', email: 'ada@example.test' } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'Ada', email: 'ada@example.test' });
    expect(created.body.apiKey).toMatch(/^mp_[A-Za-z0-9_-]{43}$/);
    const me = await t.api('GET', '/api/v1/me', { key: created.body.apiKey });
    expect(me).toEqual({ status: 200, body: { id: created.body.id, name: 'Ada', email: 'ada@example.test' } });
    const stored = await t.mp.ctx.db.query<{ hash: string }>('SELECT hash FROM api_keys WHERE user_id = $1', [created.body.id]);
    expect(stored[0]!.hash).not.toContain(created.body.apiKey);
  });

  it('refuses a missing or wrong key with 401 and a user key on admin routes with 403', async () => {
    expect((await t.api('GET', '/api/v1/me')).status).toBe(401);
    const wrong = await t.api('GET', '/api/v1/me', { key: 'mp_nope' });
    expect(wrong).toMatchObject({ status: 401, body: { error: { code: 'unauthorized' } } });
    const user = await t.createUser();
    const res = await t.api('POST', '/api/v1/users', { key: user.apiKey, body: { name: 'x', email: 'x@example.test' } });
    expect(res).toMatchObject({ status: 403, body: { error: { code: 'admin_key_required' } } });
  });

  it('answers malformed JSON with 400 and an invalid field with 422 naming it, writing nothing', async () => {
    const before = await t.mp.ctx.db.query<{ n: number }>('SELECT count(*) AS n FROM users');
    const bad = await t.api('POST', '/api/v1/users', { key: t.adminKey, body: '{"name": ', contentType: 'application/json' });
    expect(bad).toMatchObject({ status: 400, body: { error: { code: 'malformed_json' } } });
    const invalid = await t.api('POST', '/api/v1/users', { key: t.adminKey, body: { name: 'x', email: 'not-an-email' } });
    expect(invalid.status).toBe(422);
    expect(invalid.body.error.code).toBe('invalid_field');
    expect(invalid.body.error.message).toMatch(/^email: /);
    const after = await t.mp.ctx.db.query<{ n: number }>('SELECT count(*) AS n FROM users');
    expect(after[0]!.n).toBe(before[0]!.n);
  });
});
