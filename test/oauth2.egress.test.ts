import tls from 'node:tls';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.ts';
import { hostResolver } from '../src/net/egressConnect.ts';
import { EgressPolicy } from '../src/net/egressPolicy.ts';
import { AccessTokens } from '../src/smtp/oauthTokens.ts';
import { AccountTransport, ENGINE_TIMEOUTS } from '../src/smtp/transport.ts';
import { databaseKinds } from './helpers/db.ts';
import { addList, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { startDnsServer, type DnsServer } from './helpers/dnsServer.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';
import { startTokenEndpoint, type TokenEndpoint } from './helpers/tokenEndpoint.ts';

/**
 * The OAuth2 token URL is a host the user chose, like an SMTP server's: token requests go only where
 * the egress policy lets SMTP connections go, resolved by the same resolver (MAILPILOT_DNS_SERVERS),
 * to the address that was checked. Here 127.0.0.1 plays a service of the host that must not be
 * reached, 127.0.0.2 an allowed provider, and a DNS server on loopback answers for every name.
 */

const ALLOWED = '127.0.0.2';
const POLICY = () => EgressPolicy.fromEnv({ MAILPILOT_SMTP_DENY: 'loopback', MAILPILOT_SMTP_ALLOW: `${ALLOWED}/32` });
const POLICY_WORDS = "(its operator's MAILPILOT_SMTP_DENY / MAILPILOT_SMTP_ALLOW)";
const CLIENT_ID = 'egress-client';
const CLIENT_SECRET = 'egress-secret-never-shown';
const REFRESH_TOKEN = '1//egress-refresh-token';
const USER = 'news@egress.test';

const refusedReason = (host: string) =>
  `the OAuth2 tokenUrl's host ${host} resolves to an address this installation allows no connections to ${POLICY_WORDS}: give the account a tokenUrl elsewhere`;

describe('a token request the policy refuses fails the SMTP session as a refused host does', () => {
  let dns: DnsServer;
  beforeAll(async () => {
    dns = await startDnsServer();
  });
  afterAll(() => dns?.close());

  it('the account is disabled with the policy named, the session counted as egress_denied, and the token endpoint never reached', async () => {
    const clock = new FakeClock('2026-03-02T10:00:00Z');
    const victim = await startTokenEndpoint({ clock, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN, user: USER, lifetimeS: 600 });
    const smtp = await startSmtpPeer({ listen: { host: ALLOWED }, xoauth2: (u, token) => victim.accepts(u, token) });
    try {
      dns.set('token.egress.test', ['127.0.0.1']);
      const resolve = hostResolver([dns.address]);
      const tokens = new AccessTokens(clock, { policy: POLICY(), resolve }, async () => undefined);
      const tokenUrl = victim.url.replace('127.0.0.1', 'token.egress.test');
      const xoauth2 = tokens.source(1, { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN, tokenUrl, user: USER });
      const sessions: string[] = [];
      const transport = new AccountTransport({ host: ALLOWED, port: smtp.port, security: 'none' }, { username: null, password: null, xoauth2 }, 1, {
        egress: POLICY(),
        resolve,
        plaintextAuth: 'loopback',
        timeouts: ENGINE_TIMEOUTS,
        onSession: (result) => sessions.push(result),
      });
      try {
        expect(await transport.send(USER, 'a@rcpt.test', 'Subject: x\r\n\r\nx\r\n')).toEqual({
          kind: 'account_disabled',
          cause: 'refused_locally',
          problem: 'egress_denied',
          error: refusedReason('token.egress.test'),
        });
      } finally {
        transport.close();
      }
      expect(sessions).toEqual(['egress_denied']);
      expect(victim.connections).toBe(0);
      expect(smtp.messages).toEqual([]);
    } finally {
      await smtp.close();
      await victim.close();
    }
  });
});

describe.each(databaseKinds)('OAuth2 token requests go only where the operator allows (%s)', (kind) => {
  let t: TestMailPilot;
  let dns: DnsServer;
  let key: string;
  const clock = new FakeClock('2026-03-02T10:00:00Z');
  const closers: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    dns = await startDnsServer();
    t = await startTestMailPilot(kind, { clock, config: { smtpEgress: POLICY(), dnsServers: [dns.address], testSendTimeoutMs: 5_000 } });
  });
  beforeEach(async () => {
    key = (await t.createUser()).apiKey;
  });
  afterAll(async () => {
    await t?.close();
    for (const close of closers) await close();
    await dns?.close();
  });

  async function endpointOn(host: string, port?: number): Promise<TokenEndpoint> {
    const e = await startTokenEndpoint({ clock, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN, user: USER, lifetimeS: 600, listen: { host, port } });
    closers.push(() => e.close());
    return e;
  }

  /** An SMTP server on the allowed address taking the tokens `endpoint` issues, and an account on it with `tokenUrl`. */
  async function oauthAccount(endpoint: TokenEndpoint, tokenUrl: string): Promise<{ smtp: SmtpPeer; accountId: number }> {
    const smtp = await startSmtpPeer({ listen: { host: ALLOWED }, xoauth2: (u, token) => endpoint.accepts(u, token) });
    closers.push(() => smtp.close());
    const server = await must(t, key, 'POST', '/api/v1/smtp-servers', { name: 'provider', host: ALLOWED, port: smtp.port, security: 'none' });
    const auth = { type: 'oauth2', clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN, tokenUrl };
    const account = await must(t, key, 'POST', '/api/v1/smtp-accounts', { serverId: server.id, email: USER, hourlyLimit: 0, dailyLimit: 0, auth });
    return { smtp, accountId: account.id };
  }

  const testSend = async (accountId: number) => {
    const list = await must(t, key, 'POST', '/api/v1/lists', { name: 'trial' });
    const campaignId = await createCampaign(t, key, [list.id]);
    return t.api('POST', `/api/v1/campaigns/${campaignId}/test`, { key, body: { email: 'a@rcpt.test', accountId } });
  };

  it('a token URL whose host is an address the policy denies is a 422 naming auth.tokenUrl, on create and on change', async () => {
    const smtp = await startSmtpPeer({ listen: { host: ALLOWED } });
    closers.push(() => smtp.close());
    const server = await must(t, key, 'POST', '/api/v1/smtp-servers', { name: 'provider', host: ALLOWED, port: smtp.port, security: 'none' });
    const base = { serverId: server.id, email: USER, hourlyLimit: 0, dailyLimit: 0 };
    const auth = (tokenUrl: string) => ({ type: 'oauth2', clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN, tokenUrl });
    for (const [url, host] of [
      ['http://127.0.0.1:8080/token', '127.0.0.1'],
      ['https://[::1]/token', '::1'],
      ['https://169.254.169.254/latest/meta-data', '169.254.169.254'],
      ['https://0x7f000001/token', '127.0.0.1'],
    ]) {
      const reply = await t.api('POST', '/api/v1/smtp-accounts', { key, body: { ...base, auth: auth(url!) } });
      expect(reply, url).toEqual({
        status: 422,
        body: { error: { code: 'invalid_field', message: `auth.tokenUrl: ${host} is an address this installation allows no connections to ${POLICY_WORDS}` } },
      });
    }
    // A name is checked when it is resolved, on each request.
    const created = await must(t, key, 'POST', '/api/v1/smtp-accounts', { ...base, auth: auth('https://oauth2.egress.test/token') });
    const patched = await t.api('PATCH', `/api/v1/smtp-accounts/${created.id}`, { key, body: { auth: auth('http://127.0.0.1:8080/token') } });
    expect(patched).toMatchObject({ status: 422, body: { error: { message: expect.stringMatching(/^auth\.tokenUrl: 127\.0\.0\.1 is an address/) } } });
    expect((await must(t, key, 'GET', `/api/v1/smtp-accounts/${created.id}`)).auth.tokenUrl).toBe('https://oauth2.egress.test/token');
  });

  it('a token URL whose name resolves to a denied address is refused before any request: the test send says so, the account is disabled naming the policy', async () => {
    const victim = await endpointOn('127.0.0.1');
    const tokenUrl = victim.url.replace('127.0.0.1', 'localhost');
    const { smtp, accountId } = await oauthAccount(victim, tokenUrl);
    // The system resolver would answer 127.0.0.1 too; MAILPILOT_DNS_SERVERS is the one asked.
    dns.set('localhost', ['127.0.0.1']);
    expect(await testSend(accountId)).toEqual({
      status: 409,
      body: { error: { code: 'smtp_host_refused', message: `the test message was not sent: ${refusedReason('localhost')}` } },
    });
    // One denied address among several refuses the name whole.
    dns.set('localhost', [ALLOWED, '127.0.0.1']);
    expect(await testSend(accountId)).toMatchObject({ status: 409, body: { error: { code: 'smtp_host_refused' } } });

    const campaignId = await createCampaign(t, key, [await addList(t, key, 2, 'egress.test')]);
    await must(t, key, 'POST', `/api/v1/campaigns/${campaignId}/start`);
    await expect
      .poll(async () => (await must(t, key, 'GET', `/api/v1/smtp-accounts/${accountId}`)).health, { timeout: 30_000, interval: 100 })
      .toEqual({ state: 'disabled', reason: refusedReason('localhost') });
    expect(victim.connections).toBe(0);
    expect(victim.requests).toEqual([]);
    expect(smtp.messages).toEqual([]);
  });

  it('an allowed token URL works, connected to the address that was checked, with the name as Host', async () => {
    const provider = await endpointOn(ALLOWED);
    const port = Number(new URL(provider.url).port);
    // The same port on 127.0.0.1, where the system resolver would send "localhost".
    const victim = await endpointOn('127.0.0.1', port);
    dns.set('localhost', [ALLOWED]);
    const { smtp } = await oauthAccount(provider, `http://localhost:${port}/token`);
    const campaignId = await createCampaign(t, key, [await addList(t, key, 3, 'allowed.test')]);
    await must(t, key, 'POST', `/api/v1/campaigns/${campaignId}/start`);
    const done = await waitForCampaign(t, key, campaignId, (c) => c.status === 'completed' || c.status === 'paused_limits');
    expect(done).toMatchObject({ status: 'completed', sent: 3, failed: 0 });
    expect(provider.requests).toEqual([{ grantType: 'refresh_token', clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, refreshToken: REFRESH_TOKEN }]);
    expect(provider.hosts).toEqual([`localhost:${port}`]);
    expect(smtp.messages.map((m) => m.user)).toEqual([USER, USER, USER]);
    expect(victim.connections).toBe(0);
  });

  it('over HTTPS, the checked address is connected to with the name as TLS SNI', async () => {
    const sni: string[] = [];
    // No certificate: the handshake stops once the client has named the server.
    const tlsServer = tls.createServer({
      SNICallback: (name, cb) => {
        sni.push(name);
        cb(new Error('the test only reads the name'));
      },
    });
    tlsServer.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => tlsServer.listen(0, ALLOWED, resolve));
    closers.push(() => new Promise((resolve) => tlsServer.close(() => resolve())));
    const port = (tlsServer.address() as { port: number }).port;
    const victim = await endpointOn('127.0.0.1', port);
    dns.set('oauth2.egress.test', [ALLOWED]);
    const { accountId } = await oauthAccount(victim, `https://oauth2.egress.test:${port}/token`);
    expect(await testSend(accountId)).toEqual({
      status: 502,
      body: { error: { code: 'smtp_error', message: 'the SMTP server did not take the test message: the token endpoint could not be reached' } },
    });
    expect(sni).toEqual(['oauth2.egress.test']);
    expect(victim.connections).toBe(0);
  });
});
