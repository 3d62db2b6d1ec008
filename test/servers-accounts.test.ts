import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentials, loadSendingAccount } from '../src/db/sendingAccounts.ts';
import { accountPassword, timezoneKnown } from '../src/db/smtpAccounts.ts';
import type { AppEvent } from '../src/events.ts';
import { databaseKinds } from './helpers/db.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

const NOW = '2026-03-02T10:00:00.000Z';

describe.each(databaseKinds)('SMTP servers and accounts (%s)', (kind) => {
  let t: TestMailPilot;
  let alice: { id: number; apiKey: string };
  let bob: { id: number; apiKey: string };
  const events: AppEvent[] = [];

  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
    alice = await t.createUser('alice');
    bob = await t.createUser('bob');
    t.mp.ctx.events.on((e) => events.push(e));
  });
  afterAll(() => t.close());

  const db = () => t.mp.ctx.db;
  const secretKey = () => t.mp.ctx.secrets.secretKey;

  async function createServer(key: string, body: Record<string, unknown> = {}) {
    const res = await t.api('POST', '/api/v1/smtp-servers', {
      key,
      body: { name: 'Relay', host: 'smtp.example.test', port: 587, security: 'starttls', ...body },
    });
    expect(res.status).toBe(201);
    return res.body as { id: number };
  }

  async function createAccount(key: string, serverId: number, body: Record<string, unknown> = {}) {
    const res = await t.api('POST', '/api/v1/smtp-accounts', {
      key,
      body: { serverId, email: 'sender@example.test', hourlyLimit: 100, dailyLimit: 1000, ...body },
    });
    expect(res.status).toBe(201);
    return res.body as { id: number };
  }

  async function rowCount(table: string): Promise<number> {
    const [row] = await db().query<{ n: number }>(`SELECT count(*) AS n FROM ${table}`);
    return row!.n;
  }

  it('creates, reads, changes and deletes a server', async () => {
    const created = await t.api('POST', '/api/v1/smtp-servers', {
      key: alice.apiKey,
      body: { name: 'Main relay', host: 'smtp.example.test', port: 465, security: 'tls' },
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    expect(created.body).toEqual({
      id,
      name: 'Main relay',
      host: 'smtp.example.test',
      port: 465,
      security: 'tls',
      maxConnections: 10,
      active: true,
      createdAt: NOW,
    });
    const [row] = await db().query('SELECT user_id, host, port, security, max_connections FROM smtp_servers WHERE id = $1', [id]);
    expect(row).toEqual({ user_id: alice.id, host: 'smtp.example.test', port: 465, security: 'tls', max_connections: 10 });

    expect(await t.api('GET', `/api/v1/smtp-servers/${id}`, { key: alice.apiKey })).toEqual({ status: 200, body: created.body });

    const patched = await t.api('PATCH', `/api/v1/smtp-servers/${id}`, {
      key: alice.apiKey,
      body: { port: 2525, security: 'none', maxConnections: 3, active: false },
    });
    // No account on it, so no password was cleared by the move.
    expect(patched).toEqual({ status: 200, body: { ...created.body, port: 2525, security: 'none', maxConnections: 3, active: false, passwordsCleared: [] } });
    const [changed] = await db().query('SELECT port, security, max_connections, active FROM smtp_servers WHERE id = $1', [id]);
    expect(changed).toEqual({ port: 2525, security: 'none', max_connections: 3, active: false });

    expect((await t.api('DELETE', `/api/v1/smtp-servers/${id}`, { key: alice.apiKey })).status).toBe(204);
    expect(await db().query('SELECT id FROM smtp_servers WHERE id = $1', [id])).toEqual([]);
    expect(await t.api('GET', `/api/v1/smtp-servers/${id}`, { key: alice.apiKey })).toMatchObject({
      status: 404,
      body: { error: { code: 'not_found' } },
    });
  });

  it('accepts IP addresses as hosts', async () => {
    for (const host of ['192.0.2.10', '2001:db8::25', 'mail_relay']) {
      const res = await t.api('POST', '/api/v1/smtp-servers', { key: alice.apiKey, body: { name: 'ip', host, port: 25, security: 'none' } });
      expect(res.status, host).toBe(201);
      expect(res.body.host).toBe(host);
    }
  });

  it('pages servers with limit and after', async () => {
    const carol = await t.createUser('carol');
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await createServer(carol.apiKey, { name: `s${i}` })).id);
    const first = await t.api('GET', '/api/v1/smtp-servers?limit=2', { key: carol.apiKey });
    expect(first.status).toBe(200);
    expect(first.body.items.map((s: { id: number }) => s.id)).toEqual(ids.slice(0, 2));
    expect(first.body.next).toBe(ids[1]);
    const second = await t.api('GET', `/api/v1/smtp-servers?limit=2&after=${first.body.next}`, { key: carol.apiKey });
    expect(second.body).toEqual({ items: [expect.objectContaining({ id: ids[2], name: 's2' })], next: null });
  });

  it('refuses invalid server fields with 422 naming the field, writing nothing', async () => {
    const before = await rowCount('smtp_servers');
    const base = { name: 'x', host: 'smtp.example.test', port: 25, security: 'none' };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ port: 0 }, /^port: /],
      [{ port: 70000 }, /^port: /],
      [{ port: '25' }, /^port: /],
      [{ port: 25.5 }, /^port: /],
      [{ security: 'ssl' }, /^security: /],
      [{ maxConnections: 0 }, /^maxConnections: /],
      [{ maxConnections: 101 }, /^maxConnections: /],
      [{ host: 'smtp.example.test\r\nX-Injected: 1' }, /^host: /],
      [{ host: 'smtp.example.test\n' }, /^host: /],
      [{ host: 'smtp example.test' }, /^host: /],
      [{ host: '' }, /^host: /],
      [{ host: '-bad.example.test' }, /^host: /],
      [{ name: '   ' }, /^name: /],
      [{ color: 'red' }, /color/],
    ];
    for (const [change, message] of cases) {
      const res = await t.api('POST', '/api/v1/smtp-servers', { key: alice.apiKey, body: { ...base, ...change } });
      expect(res.status, JSON.stringify(change)).toBe(422);
      expect(res.body.error.code).toBe('invalid_field');
      expect(res.body.error.message).toMatch(message);
    }
    const server = await createServer(alice.apiKey);
    const patch = await t.api('PATCH', `/api/v1/smtp-servers/${server.id}`, { key: alice.apiKey, body: { host: 'a\r\nb' } });
    expect(patch.status).toBe(422);
    expect(patch.body.error.message).toMatch(/^host: /);
    expect(await rowCount('smtp_servers')).toBe(before + 1);
    const [row] = await db().query<{ host: string }>('SELECT host FROM smtp_servers WHERE id = $1', [server.id]);
    expect(row!.host).toBe('smtp.example.test');
  });

  it('refuses to delete a server that accounts still use', async () => {
    const server = await createServer(alice.apiKey);
    const account = await createAccount(alice.apiKey, server.id);
    const res = await t.api('DELETE', `/api/v1/smtp-servers/${server.id}`, { key: alice.apiKey });
    expect(res).toMatchObject({ status: 409, body: { error: { code: 'server_in_use' } } });
    expect(await db().query('SELECT id FROM smtp_servers WHERE id = $1', [server.id])).toHaveLength(1);
    expect((await t.api('DELETE', `/api/v1/smtp-accounts/${account.id}`, { key: alice.apiKey })).status).toBe(204);
    expect((await t.api('DELETE', `/api/v1/smtp-servers/${server.id}`, { key: alice.apiKey })).status).toBe(204);
  });

  it('creates an account, never replying its password and storing it encrypted to its row', async () => {
    const server = await createServer(alice.apiKey);
    const password = 'correct horse battery staple';
    const created = await t.api('POST', '/api/v1/smtp-accounts', {
      key: alice.apiKey,
      body: {
        serverId: server.id,
        email: 'news@example.test',
        username: 'news',
        password,
        hourlyLimit: 50,
        dailyLimit: 500,
        ratePerSecond: 2.5,
        timezone: 'Europe/Paris',
      },
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    expect(created.body).toEqual({
      id,
      serverId: server.id,
      email: 'news@example.test',
      username: 'news',
      hasPassword: true,
      hourlyLimit: 50,
      dailyLimit: 500,
      ratePerSecond: 2.5,
      timezone: 'Europe/Paris',
      active: true,
      usage: { sentThisHour: 0, sentToday: 0, hourlyLimit: 50, dailyLimit: 500, effectiveDailyLimit: 500, nextSendAt: null },
      health: { state: 'healthy' },
      limitWindow: 'calendar',
      preset: null,
      sendingWindow: null,
      warmup: null,
      minGapSeconds: null,
      maxGapSeconds: null,
      maxConnections: null,
      createdAt: NOW,
    });

    const replies = [
      created,
      await t.api('GET', `/api/v1/smtp-accounts/${id}`, { key: alice.apiKey }),
      await t.api('GET', '/api/v1/smtp-accounts', { key: alice.apiKey }),
      await t.api('PATCH', `/api/v1/smtp-accounts/${id}`, { key: alice.apiKey, body: { hourlyLimit: 60 } }),
    ];
    for (const reply of replies) {
      expect(reply.status).toBe(200 + (reply === created ? 1 : 0));
      expect(JSON.stringify(reply.body)).not.toContain(password);
      expect(JSON.stringify(reply.body)).not.toContain('password_enc');
    }

    const [row] = await db().query<{ password_enc: string; user_id: number }>('SELECT password_enc, user_id FROM smtp_accounts WHERE id = $1', [id]);
    expect(row!.user_id).toBe(alice.id);
    expect(row!.password_enc).not.toContain(password);
    expect(row!.password_enc).toMatch(/^v1:/);
    expect(accountPassword(secretKey(), id, row!.password_enc)).toBe(password);

    const sending = await loadSendingAccount(db(), alice.id, id);
    expect(sending).toEqual({
      id,
      userId: alice.id,
      email: 'news@example.test',
      username: 'news',
      passwordEnc: row!.password_enc,
      hourlyLimit: 60,
      dailyLimit: 500,
      ratePerSecond: 2.5,
      timezone: 'Europe/Paris',
      active: true,
      server: { id: server.id, host: 'smtp.example.test', port: 587, security: 'starttls', maxConnections: 10 },
      connections: 10,
      throttleStrikes: 0,
      oauth: null,
      recoveryRate: null,
      recoveryUntil: null,
      dkimDomain: null,
      dkimSelector: null,
      dkimKeyEnc: null,
      bounceDomain: null,
    });
    expect(credentials(secretKey(), sending!)).toEqual({ username: 'news', password });
    expect(await loadSendingAccount(db(), bob.id, id)).toBeUndefined();

    // A ciphertext copied onto another account's row does not decrypt there.
    const other = await createAccount(alice.apiKey, server.id, { password: 'other secret' });
    await db().query('UPDATE smtp_accounts SET password_enc = $1 WHERE id = $2', [row!.password_enc, other.id]);
    expect(() => accountPassword(secretKey(), other.id, row!.password_enc)).toThrow();
    const copied = (await loadSendingAccount(db(), alice.id, other.id))!;
    expect(() => credentials(secretKey(), copied)).toThrow();
  });

  it('creates an account without a password as a relay without AUTH, and changes or clears passwords', async () => {
    const server = await createServer(alice.apiKey);
    const relay = await t.api('POST', '/api/v1/smtp-accounts', {
      key: alice.apiKey,
      body: { serverId: server.id, email: 'relay@example.test', hourlyLimit: 0, dailyLimit: 0 },
    });
    expect(relay.status).toBe(201);
    expect(relay.body).toMatchObject({ username: null, hasPassword: false, ratePerSecond: null, timezone: 'UTC', active: true });
    expect(credentials(secretKey(), (await loadSendingAccount(db(), alice.id, relay.body.id))!).password).toBeNull();

    const set = await t.api('PATCH', `/api/v1/smtp-accounts/${relay.body.id}`, { key: alice.apiKey, body: { password: 'new one' } });
    expect(set.body.hasPassword).toBe(true);
    expect(credentials(secretKey(), (await loadSendingAccount(db(), alice.id, relay.body.id))!).password).toBe('new one');

    const cleared = await t.api('PATCH', `/api/v1/smtp-accounts/${relay.body.id}`, { key: alice.apiKey, body: { password: null } });
    expect(cleared.body.hasPassword).toBe(false);
    const [row] = await db().query('SELECT password_enc FROM smtp_accounts WHERE id = $1', [relay.body.id]);
    expect(row).toEqual({ password_enc: null });
  });

  it('reports usage of the current hour and day, in the account timezone', async () => {
    const server = await createServer(alice.apiKey);
    const utc = await createAccount(alice.apiKey, server.id, { hourlyLimit: 10, dailyLimit: 100 });
    // 10:00Z is 05:00 in New York (EST): its day began at 05:00Z.
    const ny = await createAccount(alice.apiKey, server.id, { hourlyLimit: 0, dailyLimit: 0, timezone: 'America/New_York' });
    const usage: [number, string, number][] = [
      [utc.id, '2026-03-02T10:00:00Z', 7],
      [utc.id, '2026-03-02T08:00:00Z', 5],
      [utc.id, '2026-03-01T23:00:00Z', 100],
      [ny.id, '2026-03-02T10:00:00Z', 1],
      [ny.id, '2026-03-02T06:00:00Z', 2],
      [ny.id, '2026-03-02T04:00:00Z', 40],
    ];
    for (const [accountId, hour, sent] of usage) {
      await db().query('INSERT INTO smtp_usage (account_id, minute_start, sent) VALUES ($1, $2, $3)', [accountId, hour, sent]);
    }
    const one = await t.api('GET', `/api/v1/smtp-accounts/${utc.id}`, { key: alice.apiKey });
    expect(one.body.usage).toEqual({ sentThisHour: 7, sentToday: 12, hourlyLimit: 10, dailyLimit: 100, effectiveDailyLimit: 100, nextSendAt: null });
    const all = await t.api('GET', '/api/v1/smtp-accounts?limit=1000', { key: alice.apiKey });
    const byId = new Map(all.body.items.map((a: { id: number }) => [a.id, a]));
    expect(byId.get(utc.id)).toMatchObject({ usage: { sentThisHour: 7, sentToday: 12 } });
    expect(byId.get(ny.id)).toMatchObject({ usage: { sentThisHour: 1, sentToday: 3, hourlyLimit: 0, dailyLimit: 0 } });
  });

  it('reads health from the stored state, the clock and the active flag', async () => {
    const server = await createServer(alice.apiKey);
    const setHealth = async (id: number, health: string, until: string | null, reason: string | null) =>
      db().query('UPDATE smtp_accounts SET health = $2, health_until = $3, health_reason = $4 WHERE id = $1', [id, health, until, reason]);
    const healthOf = async (id: number) => (await t.api('GET', `/api/v1/smtp-accounts/${id}`, { key: alice.apiKey })).body.health;

    const a = await createAccount(alice.apiKey, server.id);
    await setHealth(a.id, 'throttled', '2026-03-02T10:15:00Z', '421 too many connections');
    expect(await healthOf(a.id)).toEqual({ state: 'throttled', until: '2026-03-02T10:15:00.000Z', reason: '421 too many connections' });
    await setHealth(a.id, 'throttled', '2026-03-02T09:59:00Z', '421 too many connections');
    expect(await healthOf(a.id)).toEqual({ state: 'healthy' });
    await setHealth(a.id, 'exhausted', '2026-03-03T00:00:00Z', '554 5.4.5 daily quota exceeded');
    expect(await healthOf(a.id)).toEqual({ state: 'exhausted', until: '2026-03-03T00:00:00.000Z', reason: '554 5.4.5 daily quota exceeded' });

    const deactivated = await t.api('PATCH', `/api/v1/smtp-accounts/${a.id}`, { key: alice.apiKey, body: { active: false } });
    expect(deactivated.body.health).toEqual({ state: 'disabled', reason: 'deactivated by the user' });
    const reactivated = await t.api('PATCH', `/api/v1/smtp-accounts/${a.id}`, { key: alice.apiKey, body: { active: true } });
    expect(reactivated.body.health).toEqual({ state: 'healthy' });
    const [reset] = await db().query('SELECT health, health_until, health_reason FROM smtp_accounts WHERE id = $1', [a.id]);
    expect(reset).toEqual({ health: 'healthy', health_until: null, health_reason: null });

    await setHealth(a.id, 'disabled', null, '535 authentication failed');
    expect(await healthOf(a.id)).toEqual({ state: 'disabled', reason: '535 authentication failed' });
    await db().query('UPDATE smtp_accounts SET active = false WHERE id = $1', [a.id]);
    expect(await healthOf(a.id)).toEqual({ state: 'disabled', reason: '535 authentication failed' });
    await db().query('UPDATE smtp_accounts SET active = true WHERE id = $1', [a.id]);

    const fixed = await t.api('PATCH', `/api/v1/smtp-accounts/${a.id}`, { key: alice.apiKey, body: { password: 'the right one' } });
    expect(fixed.body.health).toEqual({ state: 'healthy' });
    const [row] = await db().query<{ health: string }>('SELECT health FROM smtp_accounts WHERE id = $1', [a.id]);
    expect(row!.health).toBe('healthy');
  });

  it('refuses invalid account fields with 422 naming the field, writing nothing', async () => {
    const server = await createServer(alice.apiKey);
    const bobServer = await createServer(bob.apiKey);
    const before = await rowCount('smtp_accounts');
    const base = { serverId: server.id, email: 'a@example.test', hourlyLimit: 1, dailyLimit: 1 };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ hourlyLimit: -1 }, /^hourlyLimit: /],
      [{ dailyLimit: -5 }, /^dailyLimit: /],
      [{ dailyLimit: 1.5 }, /^dailyLimit: /],
      [{ hourlyLimit: undefined }, /^hourlyLimit: /],
      [{ timezone: 'Mars/Olympus_Mons' }, /^timezone: /],
      [{ timezone: '+01:00' }, /^timezone: /],
      [{ email: 'not an email' }, /^email: /],
      [{ email: 'a@example.test\r\nBcc: x@example.test' }, /^email: /],
      [{ username: 'a\r\nb' }, /^username: /],
      [{ ratePerSecond: 0 }, /^ratePerSecond: /],
      [{ serverId: 999999 }, /^serverId: /],
      [{ serverId: bobServer.id }, /^serverId: /],
      [{ password: 'x', secret: true }, /secret/],
    ];
    for (const [change, message] of cases) {
      const res = await t.api('POST', '/api/v1/smtp-accounts', { key: alice.apiKey, body: { ...base, ...change } });
      expect(res.status, JSON.stringify(change)).toBe(422);
      expect(res.body.error.code).toBe('invalid_field');
      expect(res.body.error.message).toMatch(message);
      // Another user's server is answered exactly like one that does not exist.
      if (change.serverId === bobServer.id) expect(res.body.error.message).toBe('serverId: no such SMTP server');
    }
    expect(await rowCount('smtp_accounts')).toBe(before);

    const account = await createAccount(alice.apiKey, server.id);
    for (const [change, message] of [
      [{ serverId: bobServer.id }, /^serverId: /],
      [{ timezone: 'Nowhere/Land' }, /^timezone: /],
      [{ hourlyLimit: -1 }, /^hourlyLimit: /],
    ] as const) {
      const res = await t.api('PATCH', `/api/v1/smtp-accounts/${account.id}`, { key: alice.apiKey, body: change });
      expect(res.status).toBe(422);
      expect(res.body.error.message).toMatch(message);
    }
    const [row] = await db().query('SELECT server_id, timezone, hourly_limit FROM smtp_accounts WHERE id = $1', [account.id]);
    expect(row).toEqual({ server_id: server.id, timezone: 'UTC', hourly_limit: 100 });
  });

  it('asks the database whether it knows a time zone', async () => {
    expect(await timezoneKnown(db(), 'Europe/Paris')).toBe(true);
    expect(await timezoneKnown(db(), 'Mars/Olympus_Mons')).toBe(false);
  });

  it('moves an account to another of the user\'s servers', async () => {
    const first = await createServer(alice.apiKey);
    const second = await createServer(alice.apiKey, { host: 'smtp2.example.test' });
    const account = await createAccount(alice.apiKey, first.id);
    const moved = await t.api('PATCH', `/api/v1/smtp-accounts/${account.id}`, { key: alice.apiKey, body: { serverId: second.id } });
    expect(moved.body.serverId).toBe(second.id);
    const [row] = await db().query('SELECT server_id FROM smtp_accounts WHERE id = $1', [account.id]);
    expect(row).toEqual({ server_id: second.id });
  });

  it('deletes an account no worker holds even while a campaign may still send (its messages wait for other accounts), with its usage', async () => {
    const dave = await t.createUser('dave');
    const server = await createServer(dave.apiKey);
    const account = await createAccount(dave.apiKey, server.id);
    await db().query('INSERT INTO smtp_usage (account_id, minute_start, sent) VALUES ($1, $2, 3)', [account.id, NOW]);
    const [campaign] = await db().query<{ id: number }>(
      `INSERT INTO campaigns (user_id, name, subject, list_ids, status, created_at)
       VALUES ($1, 'c', 's', '{}', 'running', $2) RETURNING id`,
      [dave.id, NOW],
    );
    expect((await t.api('DELETE', `/api/v1/smtp-accounts/${account.id}`, { key: dave.apiKey })).status).toBe(204);
    expect(await db().query('SELECT status FROM campaigns WHERE id = $1', [campaign!.id])).toEqual([{ status: 'running' }]);
    expect(await db().query('SELECT id FROM smtp_accounts WHERE id = $1', [account.id])).toEqual([]);
    expect(await db().query('SELECT sent FROM smtp_usage WHERE account_id = $1', [account.id])).toEqual([]);
    expect((await t.api('GET', `/api/v1/smtp-accounts/${account.id}`, { key: dave.apiKey })).status).toBe(404);
  });

  it('wakes the engine for the user after every change', async () => {
    events.length = 0;
    const server = await createServer(alice.apiKey);
    await t.api('PATCH', `/api/v1/smtp-servers/${server.id}`, { key: alice.apiKey, body: { port: 25 } });
    const account = await createAccount(alice.apiKey, server.id);
    await t.api('PATCH', `/api/v1/smtp-accounts/${account.id}`, { key: alice.apiKey, body: { dailyLimit: 5 } });
    await t.api('DELETE', `/api/v1/smtp-accounts/${account.id}`, { key: alice.apiKey });
    await t.api('DELETE', `/api/v1/smtp-servers/${server.id}`, { key: alice.apiKey });
    const wake = { type: 'engine.wake', userId: alice.id };
    expect(events).toEqual([wake, wake, wake, { type: 'account.changed', userId: alice.id, accountIds: [account.id] }, wake, wake, wake]);
  });

  it('answers 404 for another user\'s server or account on every route and changes nothing', async () => {
    const server = await createServer(alice.apiKey);
    const account = await createAccount(alice.apiKey, server.id, { password: 'alice secret' });
    const snapshot = async () => ({
      servers: await db().query('SELECT * FROM smtp_servers WHERE user_id = $1 ORDER BY id', [alice.id]),
      accounts: await db().query('SELECT * FROM smtp_accounts WHERE user_id = $1 ORDER BY id', [alice.id]),
    });
    const before = await snapshot();

    const attempts: [string, string, unknown?][] = [
      ['GET', `/api/v1/smtp-servers/${server.id}`],
      ['PATCH', `/api/v1/smtp-servers/${server.id}`, { port: 26 }],
      ['DELETE', `/api/v1/smtp-servers/${server.id}`],
      ['GET', `/api/v1/smtp-accounts/${account.id}`],
      ['PATCH', `/api/v1/smtp-accounts/${account.id}`, { active: false }],
      ['PATCH', `/api/v1/smtp-accounts/${account.id}`, { password: 'stolen' }],
      ['DELETE', `/api/v1/smtp-accounts/${account.id}`],
    ];
    for (const [method, path, body] of attempts) {
      const res = await t.api(method, path, { key: bob.apiKey, body });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body.error.code).toBe('not_found');
    }
    const bobServer = await createServer(bob.apiKey);
    const bobAccount = await createAccount(bob.apiKey, bobServer.id);
    const move = await t.api('PATCH', `/api/v1/smtp-accounts/${bobAccount.id}`, { key: bob.apiKey, body: { serverId: server.id } });
    expect(move).toMatchObject({ status: 422, body: { error: { message: 'serverId: no such SMTP server' } } });

    const lists = [await t.api('GET', '/api/v1/smtp-servers', { key: bob.apiKey }), await t.api('GET', '/api/v1/smtp-accounts', { key: bob.apiKey })];
    for (const list of lists) {
      expect(list.body.items.map((i: { id: number }) => i.id)).not.toContain(server.id);
      expect(list.body.items.map((i: { id: number }) => i.id)).not.toContain(account.id);
    }
    expect(lists[1]!.body.items).toEqual([expect.objectContaining({ id: bobAccount.id, serverId: bobServer.id })]);
    expect(await snapshot()).toEqual(before);
  });

  it('requires a user key', async () => {
    for (const path of ['/api/v1/smtp-servers', '/api/v1/smtp-accounts']) {
      expect((await t.api('GET', path, { key: t.adminKey })).status).toBe(403);
      expect((await t.api('GET', path)).status).toBe(401);
    }
  });
});
