import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './helpers/db.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

/** README "Bounce and complaint rate guard": the thresholds every user starts with. */
const DEFAULT_RATE_GUARD = {
  hardBounces: { percent: 5, lastSends: 200, minSends: 100 },
  complaints: { percent: 0.3, lastSends: 2000, minSends: 1000 },
};

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
    expect(me).toEqual({ status: 200, body: { id: created.body.id, name: 'Ada', email: 'ada@example.test', rateGuard: DEFAULT_RATE_GUARD } });
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

  it('PATCH /me rateGuard changes one threshold at a time, null turns one off, and each user has their own', async () => {
    const ada = await t.createUser();
    const bob = await t.createUser();
    const strict = { percent: 2, lastSends: 500, minSends: 50 };
    const changed = await t.api('PATCH', '/api/v1/me', { key: ada.apiKey, body: { rateGuard: { hardBounces: strict } } });
    expect(changed).toMatchObject({ status: 200, body: { id: ada.id, rateGuard: { ...DEFAULT_RATE_GUARD, hardBounces: strict } } });
    const off = await t.api('PATCH', '/api/v1/me', { key: ada.apiKey, body: { rateGuard: { complaints: null } } });
    expect(off.body.rateGuard).toEqual({ hardBounces: strict, complaints: null });
    expect((await t.api('GET', '/api/v1/me', { key: ada.apiKey })).body.rateGuard).toEqual({ hardBounces: strict, complaints: null });
    expect((await t.api('GET', '/api/v1/me', { key: bob.apiKey })).body.rateGuard).toEqual(DEFAULT_RATE_GUARD);
  });

  it.each([
    ['no rateGuard', {}, /^rateGuard: /],
    ['a percent of 0', { rateGuard: { hardBounces: { percent: 0, lastSends: 200, minSends: 100 } } }, /^rateGuard\.hardBounces\.percent: /],
    ['a percent above 100', { rateGuard: { complaints: { percent: 101, lastSends: 200, minSends: 100 } } }, /^rateGuard\.complaints\.percent: /],
    ['more minSends than lastSends', { rateGuard: { hardBounces: { percent: 5, lastSends: 100, minSends: 200 } } }, /^rateGuard\.hardBounces\.minSends: must not be more than lastSends/],
    ['lastSends past the bound', { rateGuard: { hardBounces: { percent: 5, lastSends: 10_001, minSends: 100 } } }, /^rateGuard\.hardBounces\.lastSends: /],
    ['a fractional lastSends', { rateGuard: { complaints: { percent: 1, lastSends: 20.5, minSends: 1 } } }, /^rateGuard\.complaints\.lastSends: /],
    ['a missing field', { rateGuard: { complaints: { percent: 1, lastSends: 20 } } }, /^rateGuard\.complaints\.minSends: /],
    ['an unknown threshold', { rateGuard: { softBounces: null } }, /^rateGuard\.softBounces: unknown field/],
  ])('PATCH /me refuses %s with 422 naming the field, changing nothing', async (_what, body, message) => {
    const user = await t.createUser();
    const res = await t.api('PATCH', '/api/v1/me', { key: user.apiKey, body });
    expect(res).toMatchObject({ status: 422, body: { error: { code: 'invalid_field' } } });
    expect(res.body.error.message).toMatch(message);
    expect((await t.api('GET', '/api/v1/me', { key: user.apiKey })).body.rateGuard).toEqual(DEFAULT_RATE_GUARD);
  });
});
