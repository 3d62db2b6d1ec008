import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.ts';
import { accountOAuthSecret } from '../src/db/smtpAccounts.ts';
import { createLogger } from '../src/log.ts';
import { runCli } from './helpers/cli.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addList, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { allMessages, deliveries, waitFor } from './helpers/outcomes.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';
import { startTokenEndpoint, type TokenEndpoint } from './helpers/tokenEndpoint.ts';

/**
 * OAuth2 accounts (XOAUTH2) against a real token endpoint on loopback issuing short-lived tokens
 * (by the test clock) and an smtp-server that accepts only a token that is valid now.
 */

const START = '2026-03-02T10:00:00Z';
const MINUTE = 60_000;
const CLIENT_ID = '1234-mailpilot.apps.googleusercontent.com';
const CLIENT_SECRET = 'GOCSPX-client-secret-never-shown';
const REFRESH_TOKEN = '1//refresh-token-never-shown';
const USER = 'news@oauth.test';
/** Tokens live 10 minutes; MailPilot renews them 5 minutes before they expire. */
const LIFETIME_S = 600;

describe.each(databaseKinds)('OAuth2 (XOAUTH2) accounts (%s)', (kind) => {
  let t: TestMailPilot;
  const clock = new FakeClock(START);
  const logged: string[] = [];
  const peers: SmtpPeer[] = [];
  const endpoints: TokenEndpoint[] = [];
  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _enc, done) {
        logged.push(String(chunk));
        done();
      },
    });
    t = await startTestMailPilot(kind, { clock, log: createLogger('debug', sink) });
  });
  afterAll(async () => {
    await t.close();
    for (const p of peers) await p.close();
    for (const e of endpoints) await e.close();
  });

  /** A token endpoint and an SMTP server that takes only its live tokens, like Gmail's. */
  async function provider(user = USER, refreshToken = REFRESH_TOKEN) {
    const endpoint = await startTokenEndpoint({ clock, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken, user, lifetimeS: LIFETIME_S });
    endpoints.push(endpoint);
    const smtp = await startSmtpPeer({ xoauth2: (u, token) => endpoint.accepts(u, token) });
    peers.push(smtp);
    return { endpoint, smtp };
  }

  const oauth = (endpoint: TokenEndpoint, extra: Record<string, unknown> = {}) => ({
    type: 'oauth2',
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    refreshToken: REFRESH_TOKEN,
    tokenUrl: endpoint.url,
    ...extra,
  });

  async function addOAuthAccount(key: string, serverId: number, endpoint: TokenEndpoint, email = USER): Promise<any> {
    return must(t, key, 'POST', '/api/v1/smtp-accounts', { serverId, email, hourlyLimit: 0, dailyLimit: 0, auth: oauth(endpoint) });
  }

  async function runCampaign(key: string, listId: number) {
    const cid = await createCampaign(t, key, [listId]);
    await must(t, key, 'POST', `/api/v1/campaigns/${cid}/start`);
    return { cid, done: await waitForCampaign(t, key, cid, (c) => c.status === 'completed') };
  }

  const secretsIn = (text: string) => [CLIENT_SECRET, REFRESH_TOKEN, 'rotated-', 'ya29.'].filter((s) => text.includes(s));

  describe('one account through its life', () => {
    let key: string;
    let accountId: number;
    let listId: number;
    let endpoint: TokenEndpoint;
    let smtp: SmtpPeer;

    beforeAll(async () => {
      ({ endpoint, smtp } = await provider());
      key = (await t.createUser()).apiKey;
      // One connection, so each step below opens exactly one session.
      const serverId = await addServer(t, key, smtp.port, 1);
      listId = await addList(t, key, 10, 'life.test');
      const created = await addOAuthAccount(key, serverId, endpoint);
      accountId = created.id;
    });

    it('stores the client secret and refresh token sealed to the row and never replies them', async () => {
      const read = await must(t, key, 'GET', `/api/v1/smtp-accounts/${accountId}`);
      expect(read).toMatchObject({ hasPassword: false, auth: { type: 'oauth2', clientId: CLIENT_ID, tokenUrl: endpoint.url, user: USER } });
      expect(Object.keys(read.auth).sort()).toEqual(['clientId', 'tokenUrl', 'type', 'user']);
      expect(secretsIn(JSON.stringify(read))).toEqual([]);
      expect(secretsIn(JSON.stringify(await must(t, key, 'GET', '/api/v1/smtp-accounts')))).toEqual([]);

      const [row] = await t.mp.ctx.db.query<{ secret: string; refresh: string }>(
        'SELECT oauth_client_secret_enc AS secret, oauth_refresh_token_enc AS refresh FROM smtp_accounts WHERE id = $1',
        [accountId],
      );
      expect(row!.secret).toMatch(/^v1:/);
      expect(row!.refresh).toMatch(/^v1:/);
      expect(secretsIn(JSON.stringify(row))).toEqual([]);
      const key32 = t.mp.ctx.secrets.secretKey;
      expect(accountOAuthSecret(key32, accountId, 'client_secret', row!.secret)).toBe(CLIENT_SECRET);
      expect(accountOAuthSecret(key32, accountId, 'refresh_token', row!.refresh)).toBe(REFRESH_TOKEN);
      // Bound to its row and its field: copied elsewhere, it does not open.
      expect(() => accountOAuthSecret(key32, accountId + 1, 'refresh_token', row!.refresh)).toThrow();
      expect(() => accountOAuthSecret(key32, accountId, 'client_secret', row!.refresh)).toThrow();
    });

    it('sends with XOAUTH2 using a token fetched with the refresh token, then kept in memory', async () => {
      const { cid, done } = await runCampaign(key, listId);
      expect(done).toMatchObject({ sent: 10, failed: 0 });
      expect(smtp.messages.every((m) => m.user === USER && m.mailFrom === USER)).toBe(true);
      expect(endpoint.requests).toEqual([{ grantType: 'refresh_token', clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN }]);
      expect(smtp.authFailures).toBe(0);
      for (const m of await allMessages(t, key, cid)) expect(m.attempts).toBe(1);

      // Another campaign a minute later: the token in memory serves, no new request.
      clock.advance(MINUTE);
      await runCampaign(key, listId);
      expect(endpoint.requests).toHaveLength(1);
      expect(smtp.messages).toHaveLength(20);
    });

    it('renews the token before it expires: no session ever offers an expired one', async () => {
      // 6 minutes after issue, 4 before expiry: inside the 5-minute margin.
      clock.advance(5 * MINUTE);
      await runCampaign(key, listId);
      expect(endpoint.requests).toHaveLength(2);
      expect(smtp.authFailures).toBe(0);
    });

    it('asks once more when the server refuses the token, and carries on', async () => {
      endpoint.invalidateAccessTokens();
      const { done } = await runCampaign(key, listId);
      expect(done).toMatchObject({ sent: 10, failed: 0 });
      expect(smtp.authFailures).toBe(1);
      expect(endpoint.requests).toHaveLength(3);
      expect((await must(t, key, 'GET', `/api/v1/smtp-accounts/${accountId}`)).health).toEqual({ state: 'healthy' });
    });

    it('stores a refresh token the endpoint rotates, sealed, in place of the old one', async () => {
      endpoint.rotate = true;
      endpoint.invalidateAccessTokens();
      await runCampaign(key, listId);
      const [row] = await t.mp.ctx.db.query<{ refresh: string }>('SELECT oauth_refresh_token_enc AS refresh FROM smtp_accounts WHERE id = $1', [accountId]);
      expect(accountOAuthSecret(t.mp.ctx.secrets.secretKey, accountId, 'refresh_token', row!.refresh)).toBe(endpoint.refreshToken);
      expect(endpoint.refreshToken).toMatch(/^1\/\/rotated-/);
      endpoint.rotate = false;
    });

    it('a revoked consent (invalid_grant) disables the account with a reason that says so; its messages go to the other account, none failed', async () => {
      const spare = await startSmtpPeer();
      peers.push(spare);
      // Switched on once the OAuth2 account has failed, so that one meets the revocation first.
      const spareId = await addAccount(t, key, await addServer(t, key, spare.port), 'spare@oauth.test');
      await must(t, key, 'PATCH', `/api/v1/smtp-accounts/${spareId}`, { active: false });
      endpoint.revoke();
      const cid = await createCampaign(t, key, [listId]);
      await must(t, key, 'POST', `/api/v1/campaigns/${cid}/start`);
      const paused = await waitForCampaign(t, key, cid, (c) => c.status === 'paused_limits' && c.pauseReason === 'account_health' && c.resumeAt === null);
      expect(paused.warnings.join(' ')).toMatch(/news@oauth\.test \(the OAuth2 consent was revoked/);
      await must(t, key, 'PATCH', `/api/v1/smtp-accounts/${spareId}`, { active: true });
      const done = await waitForCampaign(t, key, cid, (c) => c.status === 'completed');
      expect(done).toMatchObject({ sent: 10, failed: 0 });
      expect(deliveries(spare).size).toBe(10);
      for (const m of await allMessages(t, key, cid)) expect(m).toMatchObject({ attempts: 1, lastError: null });
      const { health } = await must(t, key, 'GET', `/api/v1/smtp-accounts/${accountId}`);
      expect(health).toEqual({
        state: 'disabled',
        reason:
          'the OAuth2 consent was revoked or has expired (the token endpoint answered invalid_grant): sign in again and PATCH the account with auth and a new refreshToken',
      });
    });

    it('never logs, replies or shows a secret or a token', async () => {
      const everything = [
        logged.join(''),
        JSON.stringify(await must(t, key, 'GET', '/api/v1/smtp-accounts')),
        JSON.stringify((await t.mp.ctx.db.query('SELECT health_reason FROM smtp_accounts'))),
        JSON.stringify((await t.mp.ctx.db.query('SELECT last_error FROM messages WHERE last_error IS NOT NULL'))),
      ].join('\n');
      expect(logged.length).toBeGreaterThan(0);
      expect(secretsIn(everything)).toEqual([]);
      expect(everything).not.toContain('Token has been expired or revoked');
    });
  });

  it('never holds a database connection while the token endpoint takes its time', async () => {
    const { endpoint, smtp } = await provider('slow@oauth.test');
    const { apiKey } = await t.createUser();
    await addOAuthAccount(apiKey, await addServer(t, apiKey, smtp.port), endpoint, 'slow@oauth.test');
    let answer: (() => void) | undefined;
    const held = new Promise<void>((resolve) => (answer = resolve));
    const asked = new Promise<void>((resolve) => {
      endpoint.override = (req, res) => {
        resolve();
        void held.then(() => {
          endpoint.override = undefined;
          res.writeHead(503).end();
        });
        req.resume();
      };
    });
    const cid = await createCampaign(t, apiKey, [await addList(t, apiKey, 3, 'slow.test')]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${cid}/start`);
    await asked;
    // The embedded database has one connection: a request that writes gets through while the worker waits.
    const started = Date.now();
    await must(t, apiKey, 'POST', '/api/v1/lists', { name: 'meanwhile' });
    expect(Date.now() - started).toBeLessThan(5_000);
    answer!();
    // A 503 is the endpoint's trouble, not the consent's: the account backs off.
    const health = await waitFor('the account to back off', async () => {
      const list = await must(t, apiKey, 'GET', '/api/v1/smtp-accounts');
      return list.items[0].health.state === 'throttled' ? list.items[0].health : undefined;
    });
    expect(health.reason).toBe('the token endpoint answered HTTP 503');
  });

  it('bounds the token answer: a huge one is refused without reading it all, and nothing of it is repeated', async () => {
    const { endpoint, smtp } = await provider('huge@oauth.test');
    const { apiKey } = await t.createUser();
    const account = await addOAuthAccount(apiKey, await addServer(t, apiKey, smtp.port), endpoint, 'huge@oauth.test');
    let written = 0;
    endpoint.override = (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 'A');
      const pump = () => {
        while (written < 50 * 1024 * 1024 && res.write(chunk)) written += chunk.length;
        if (written < 50 * 1024 * 1024 && !res.destroyed) res.once('drain', pump);
        else res.end();
      };
      pump();
    };
    const cid = await createCampaign(t, apiKey, [await addList(t, apiKey, 2, 'huge.test')]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${cid}/start`);
    const health = await waitFor('the account to back off', async () => {
      const a = await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${account.id}`);
      return a.health.state === 'throttled' ? a.health : undefined;
    });
    expect(health.reason).toBe("the token endpoint's answer is larger than 65536 bytes");
    expect(written).toBeLessThan(50 * 1024 * 1024);
  });

  it('follows no redirect from the token endpoint: it is a refusal that disables the account', async () => {
    const { endpoint, smtp } = await provider('redirect@oauth.test');
    const elsewhere = await startTokenEndpoint({ clock, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN, user: 'x', lifetimeS: 60 });
    endpoints.push(elsewhere);
    endpoint.override = (req, res) => {
      req.resume();
      res.writeHead(307, { location: elsewhere.url }).end();
    };
    const { apiKey } = await t.createUser();
    const account = await addOAuthAccount(apiKey, await addServer(t, apiKey, smtp.port), endpoint, 'redirect@oauth.test');
    const cid = await createCampaign(t, apiKey, [await addList(t, apiKey, 2, 'redirect.test')]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${cid}/start`);
    const health = await waitFor('the account to be disabled', async () => {
      const a = await must(t, apiKey, 'GET', `/api/v1/smtp-accounts/${account.id}`);
      return a.health.state === 'disabled' ? a.health : undefined;
    });
    expect(health.reason).toBe('the OAuth2 token endpoint refused the account: check its clientId, clientSecret and tokenUrl (the token endpoint refused the request (HTTP 307))');
    expect(elsewhere.requests).toEqual([]);
  });

  it('validates auth: a token URL over plain HTTP elsewhere, or a password as well, is a 422 naming the field; a password or null switches back', async () => {
    const { endpoint, smtp } = await provider('switch@oauth.test');
    const { apiKey } = await t.createUser();
    const serverId = await addServer(t, apiKey, smtp.port);
    const base = { serverId, email: 'switch@oauth.test', hourlyLimit: 0, dailyLimit: 0 };
    const http = await t.api('POST', '/api/v1/smtp-accounts', { key: apiKey, body: { ...base, auth: oauth(endpoint, { tokenUrl: 'http://oauth2.example.com/token' }) } });
    expect(http).toMatchObject({ status: 422, body: { error: { message: expect.stringMatching(/^auth\.tokenUrl: /) } } });
    const both = await t.api('POST', '/api/v1/smtp-accounts', { key: apiKey, body: { ...base, password: 'pw', auth: oauth(endpoint) } });
    expect(both).toMatchObject({ status: 422, body: { error: { message: expect.stringMatching(/^auth: /) } } });
    const missing = await t.api('POST', '/api/v1/smtp-accounts', { key: apiKey, body: { ...base, auth: { type: 'oauth2', clientId: CLIENT_ID, tokenUrl: endpoint.url } } });
    expect(missing.status).toBe(422);
    for (const reply of [http, both, missing]) expect(secretsIn(JSON.stringify(reply.body))).toEqual([]);

    const created = await must(t, apiKey, 'POST', '/api/v1/smtp-accounts', { ...base, auth: oauth(endpoint, { user: 'mailbox@oauth.test' }) });
    expect(created.auth.user).toBe('mailbox@oauth.test');
    const toPassword = await must(t, apiKey, 'PATCH', `/api/v1/smtp-accounts/${created.id}`, { username: 'switch', password: 'pw' });
    expect(toPassword).toMatchObject({ hasPassword: true });
    expect(toPassword.auth).toBeUndefined();
    const toOAuth = await must(t, apiKey, 'PATCH', `/api/v1/smtp-accounts/${created.id}`, { auth: oauth(endpoint) });
    expect(toOAuth).toMatchObject({ hasPassword: false, auth: { user: 'switch@oauth.test' } });
    const cleared = await must(t, apiKey, 'PATCH', `/api/v1/smtp-accounts/${created.id}`, { auth: null });
    expect(cleared).toMatchObject({ hasPassword: false });
    expect(cleared.auth).toBeUndefined();
    const [row] = await t.mp.ctx.db.query('SELECT oauth_client_id, oauth_client_secret_enc, oauth_refresh_token_enc, oauth_token_url FROM smtp_accounts WHERE id = $1', [
      created.id,
    ]);
    expect(Object.values(row!)).toEqual([null, null, null, null]);
  });

  it('the CLI adds an OAuth2 account, the secrets read from standard input', async () => {
    const { endpoint, smtp } = await provider('cli@oauth.test');
    const { apiKey } = await t.createUser();
    const serverId = await addServer(t, apiKey, smtp.port);
    const r = await runCli(
      ['--json', 'smtp', 'add-account', '--server', String(serverId), '--email', 'cli@oauth.test', '--hourly-limit', '0', '--daily-limit', '0',
        '--oauth2-client-id', CLIENT_ID, '--oauth2-token-url', endpoint.url, '--oauth2-secrets-stdin'],
      { env: { MAILPILOT_URL: t.url, MAILPILOT_API_KEY: apiKey }, input: `${CLIENT_SECRET}\n${REFRESH_TOKEN}\n` },
    );
    expect(r).toMatchObject({ code: 0 });
    const account = JSON.parse(r.stdout);
    expect(account).toMatchObject({ email: 'cli@oauth.test', auth: { type: 'oauth2', clientId: CLIENT_ID, tokenUrl: endpoint.url, user: 'cli@oauth.test' } });
    expect(secretsIn(r.stdout + r.stderr)).toEqual([]);
    const { done } = await runCampaign(apiKey, await addList(t, apiKey, 3, 'cli.test'));
    expect(done).toMatchObject({ sent: 3, failed: 0 });
    expect(smtp.messages.every((m) => m.user === 'cli@oauth.test')).toBe(true);
  }, 120_000);
});
