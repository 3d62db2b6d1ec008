import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { loadSecrets } from '../src/secrets.ts';
import { databaseKinds } from './helpers/db.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

describe.each(databaseKinds)('API keys (%s)', (kind) => {
  let t: TestMailPilot;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
  });
  afterAll(() => t.close());

  const me = (key: string) => t.api('GET', '/api/v1/me', { key });

  it('issues a key of 32 random bytes, shown once and stored only as its SHA-256', async () => {
    const user = await t.createUser('keyholder');
    const created = await t.api('POST', '/api/v1/me/keys', { key: user.apiKey });
    expect(created.status).toBe(201);
    const { id, apiKey, prefix } = created.body;
    expect(Buffer.from(apiKey.replace(/^mp_/, ''), 'base64url')).toHaveLength(32);
    expect(apiKey.startsWith(prefix)).toBe(true);
    expect((await me(apiKey)).body.id).toBe(user.id);

    const listed = await t.api('GET', '/api/v1/me/keys', { key: apiKey });
    expect(listed.body.items).toContainEqual({ id, prefix, createdAt: expect.any(String), revokedAt: null });
    expect(JSON.stringify(listed.body)).not.toContain(apiKey);
    const [row] = await t.mp.ctx.db.query<{ hash: string }>('SELECT hash FROM api_keys WHERE id = $1', [id]);
    expect(row!.hash).toBe(createHash('sha256').update(apiKey).digest('hex'));
  });

  it('revokes a key at once, and refuses to revoke the last live one', async () => {
    const user = await t.createUser('revoker');
    const second = (await t.api('POST', '/api/v1/me/keys', { key: user.apiKey })).body;
    expect((await t.api('DELETE', `/api/v1/me/keys/${second.id}`, { key: user.apiKey })).status).toBe(204);
    expect((await me(second.apiKey)).status).toBe(401);
    // Revoking again changes nothing.
    expect((await t.api('DELETE', `/api/v1/me/keys/${second.id}`, { key: user.apiKey })).status).toBe(204);

    const [first] = (await t.api('GET', '/api/v1/me/keys', { key: user.apiKey })).body.items;
    const last = await t.api('DELETE', `/api/v1/me/keys/${first.id}`, { key: user.apiKey });
    expect(last).toMatchObject({ status: 409, body: { error: { code: 'last_key' } } });
    expect((await me(user.apiKey)).status).toBe(200);

    // A key may revoke itself when another is left.
    const third = (await t.api('POST', '/api/v1/me/keys', { key: user.apiKey })).body;
    expect((await t.api('DELETE', `/api/v1/me/keys/${first.id}`, { key: user.apiKey })).status).toBe(204);
    expect((await me(user.apiKey)).status).toBe(401);
    expect((await me(third.apiKey)).status).toBe(200);
  });

  it('never leaves a user without a live key when the last two are revoked at once, each with the other', async () => {
    for (let round = 0; round < 15; round++) {
      const user = await t.createUser(`pair${round}`);
      const second = (await t.api('POST', '/api/v1/me/keys', { key: user.apiKey })).body;
      const [first] = (await t.api('GET', '/api/v1/me/keys', { key: user.apiKey })).body.items;
      const outcomes = await Promise.all([
        t.api('DELETE', `/api/v1/me/keys/${second.id}`, { key: user.apiKey }),
        t.api('DELETE', `/api/v1/me/keys/${first.id}`, { key: second.apiKey }),
      ]);
      // The other is refused: 409 last_key, or 401 when its own key was revoked before it was checked.
      expect(outcomes.filter((o) => o.status === 204)).toHaveLength(1);
      expect(outcomes.find((o) => o.status !== 204)?.status).toBeOneOf([401, 409]);
      const live = [(await me(user.apiKey)).status, (await me(second.apiKey)).status].filter((s) => s === 200);
      expect(live).toHaveLength(1);
    }
  });

  it('answers every failed authentication the same way', async () => {
    const user = await t.createUser('uniform');
    const spare = (await t.api('POST', '/api/v1/me/keys', { key: user.apiKey })).body;
    await t.api('DELETE', `/api/v1/me/keys/${spare.id}`, { key: user.apiKey });
    const headers = [
      undefined,
      'Bearer',
      'Basic dXNlcjpwYXNz',
      `Bearer ${user.apiKey}x`,
      `Bearer ${spare.apiKey}`,
      `Bearer ${'a'.repeat(5000)}`,
      `Bearer ${t.adminKey.slice(0, -1)}`,
      `bearer  ${user.apiKey} extra`,
    ];
    const replies = [];
    for (const authorization of headers) {
      const res = await fetch(`${t.url}/api/v1/me`, { headers: authorization ? { authorization } : {} });
      replies.push({ status: res.status, body: await res.text() });
    }
    expect(new Set(replies.map((r) => JSON.stringify(r))).size).toBe(1);
    expect(replies[0]).toEqual({
      status: 401,
      body: JSON.stringify({ error: { code: 'unauthorized', message: 'send a valid API key as "Authorization: Bearer <key>"' } }),
    });
  });
});

describe('the admin key', () => {
  it('takes the admin key from MAILPILOT_ADMIN_KEY, or generates one into the data dir once', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'mailpilot-keys-'));
    try {
      const config = { ...loadConfig({}), dataDir };
      expect(loadSecrets({ ...config, adminKey: 'from-the-environment' }).adminKey).toBe('from-the-environment');
      expect(existsSync(join(dataDir, 'admin.key'))).toBe(false);
      const generated = loadSecrets(config);
      expect(generated.adminKeyGenerated).toBe(true);
      expect(Buffer.from(generated.adminKey.replace(/^mp_/, ''), 'base64url')).toHaveLength(32);
      expect(readFileSync(join(dataDir, 'admin.key'), 'utf8').trim()).toBe(generated.adminKey);
      const again = loadSecrets(config);
      expect(again).toMatchObject({ adminKey: generated.adminKey, adminKeyGenerated: false });
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
