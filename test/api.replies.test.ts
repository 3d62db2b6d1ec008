import { generateKeyPairSync } from 'node:crypto';
import Ajv04, { type ValidateFunction } from 'ajv-draft-04';
import addFormats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './helpers/db.ts';
import { startDnsServer, type DnsServer } from './helpers/dnsServer.ts';
import { must, waitForCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

/**
 * Every success reply of the API, as a real request gets it, against the OpenAPI document the
 * server serves. The document's object schemas forbid unknown fields, so a field a route answers
 * and its reply schema forgets fails here, as does a field of the wrong type or a missing one.
 */

type Operation = { responses: Record<string, { content?: Record<string, { schema: object }> }> };
type Document = { paths: Record<string, Record<string, Operation>> };

const SUCCESS = /^2\d\d$/;

describe.each(databaseKinds)('every reply matches the OpenAPI document (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  let dns: DnsServer;
  let doc: Document;
  // OpenAPI 3.0 schemas are JSON Schema draft 4 (boolean exclusiveMinimum) plus `nullable`.
  const ajv = new Ajv04.default({ allErrors: true });
  addFormats.default(ajv);
  const validators = new Map<string, ValidateFunction>();
  /** `method path status` of every success reply checked. */
  const checked = new Set<string>();

  beforeAll(async () => {
    // Addresses starting "refused" are unknown users (5.1.1): enough to trip a strict rate guard.
    peer = await startSmtpPeer({ onRcpt: (address) => (address.startsWith('refused') ? { code: 550, message: '5.1.1 no such user' } : undefined) });
    // rcpt.test takes mail; nomail.test does not exist, so its addresses verify as undeliverable.
    dns = await startDnsServer();
    dns.setMx('rcpt.test', ['mx.rcpt.test']);
    dns.set('mx.rcpt.test', ['192.0.2.10']);
    t = await startTestMailPilot(kind, { config: { dnsServers: [dns.address] } });
    doc = (await t.api('GET', '/api/v1/openapi.json')).body;
  });
  afterAll(async () => {
    await t.close();
    await Promise.all([peer.close(), dns.close()]);
  });

  const operation = (method: string, path: string) => {
    const op = doc.paths[path]?.[method.toLowerCase()];
    if (!op) throw new Error(`the document has no ${method} ${path}`);
    return op;
  };

  const urlOf = (path: string, params: Record<string, string | number>) =>
    path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(String(params[name] ?? `{${name}}`)));

  /**
   * Calls `METHOD path` (an OpenAPI path, `{id}` filled from params) and checks the reply: the
   * status expected, and the body valid against the document's schema for that status.
   */
  async function call<T = any>(
    method: string,
    path: string,
    o: { key?: string; params?: Record<string, string | number>; query?: string; body?: unknown; contentType?: string; status?: number } = {},
  ): Promise<T> {
    const status = o.status ?? 200;
    const res = await t.api(method, urlOf(path, o.params ?? {}) + (o.query ?? ''), o);
    expect(res.status, `${method} ${path}: ${JSON.stringify(res.body)}`).toBe(status);
    const response = operation(method, path).responses[String(status)];
    expect(response, `${method} ${path} documents ${status}`).toBeDefined();
    const schema = response!.content?.['application/json']?.schema;
    if (status === 204) {
      expect(res.body).toBe('');
      expect(response!.content, `${method} ${path} 204 has no body`).toBeUndefined();
    } else {
      expect(schema, `${method} ${path} ${status} documents a JSON body`).toBeDefined();
      const key = `${method} ${path} ${status}`;
      if (!validators.has(key)) validators.set(key, ajv.compile(schema!));
      const validate = validators.get(key)!;
      expect(validate(res.body) ? [] : validate.errors, `${key}: ${JSON.stringify(res.body)}`).toEqual([]);
    }
    checked.add(`${method.toLowerCase()} ${path} ${status}`);
    return res.body as T;
  }

  /** A reply that is not JSON: its status, and a content type the document names for it. */
  async function callText(method: string, path: string, o: { key?: string; params?: Record<string, string | number>; stream?: boolean } = {}) {
    const headers: Record<string, string> = o.key ? { authorization: `Bearer ${o.key}` } : {};
    const abort = new AbortController();
    const res = await fetch(t.url + urlOf(path, o.params ?? {}), { method, headers, signal: abort.signal });
    expect(res.status, `${method} ${path}`).toBe(200);
    const documented = Object.keys(operation(method, path).responses['200']?.content ?? {});
    expect(documented, `${method} ${path}`).toContain(res.headers.get('content-type')!.split(';')[0]);
    if (o.stream) abort.abort();
    else expect((await res.text()).length).toBeGreaterThan(0);
    checked.add(`${method.toLowerCase()} ${path} 200`);
  }

  it('for every route and success status, in the shape the document gives', async () => {
    await call('GET', '/healthz');
    await call('GET', '/readyz');
    await call('GET', '/api/v1/openapi.json');

    // Users and keys.
    const user = await call('POST', '/api/v1/users', { key: t.adminKey, body: { name: 'Ann', email: 'ann@example.test' }, status: 201 });
    const key: string = user.apiKey;
    await call('GET', '/api/v1/me', { key });
    const guarded = await call('PATCH', '/api/v1/me', { key, body: { rateGuard: { complaints: null } } });
    expect(guarded.rateGuard.complaints).toBeNull();
    expect(guarded.rateGuard.hardBounces).toMatchObject({ percent: expect.any(Number) });
    const second = await call('POST', '/api/v1/me/keys', { key, status: 201 });
    await call('GET', '/api/v1/me/keys', { key });
    await call('DELETE', '/api/v1/me/keys/{id}', { key, params: { id: second.id }, status: 204 });

    // Servers, one of them moved under an account with a password.
    const server = await call('POST', '/api/v1/smtp-servers', { key, body: { name: 'peer', host: '127.0.0.1', port: peer.port, security: 'none' }, status: 201 });
    await call('GET', '/api/v1/smtp-servers', { key });
    await call('GET', '/api/v1/smtp-servers/{id}', { key, params: { id: server.id } });
    const spare = await call('POST', '/api/v1/smtp-servers', { key, body: { name: 'spare', host: '127.0.0.1', port: 2525, security: 'starttls' }, status: 201 });
    const moving = await call('POST', '/api/v1/smtp-accounts', {
      key,
      body: { serverId: spare.id, email: 'moving@sender.test', password: 'secret', hourlyLimit: 10, dailyLimit: 100 },
      status: 201,
    });
    const moved = await call('PATCH', '/api/v1/smtp-servers/{id}', { key, params: { id: spare.id }, body: { port: 2526 } });
    expect(moved.passwordsCleared).toEqual([moving.id]);
    await call('DELETE', '/api/v1/smtp-accounts/{id}', { key, params: { id: moving.id }, status: 204 });
    await call('DELETE', '/api/v1/smtp-servers/{id}', { key, params: { id: spare.id }, status: 204 });

    // Accounts with every optional part: DKIM, a bounce domain, a mailbox, a policy; and one with OAuth2.
    const privateKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const account = await call('POST', '/api/v1/smtp-accounts', {
      key,
      body: {
        serverId: server.id,
        email: 'news@sender.test',
        hourlyLimit: 0,
        dailyLimit: 0,
        dkim: { domain: 'sender.test', selector: 's1', privateKey },
        bounceDomain: 'bounces.sender.test',
        imap: { host: '127.0.0.1', port: 993, security: 'tls', password: 'imap-secret' },
        sendingWindow: { timezone: 'UTC', days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '00:00', end: '24:00' },
        warmup: { startPerDay: 50, increasePerDay: 10 },
        maxConnections: 2,
      },
      status: 201,
    });
    expect(Object.keys(account)).toEqual(expect.arrayContaining(['dkim', 'bounceDomain', 'imap', 'usage', 'health']));
    const oauth = await call('POST', '/api/v1/smtp-accounts', {
      key,
      body: {
        serverId: server.id,
        email: 'oauth@sender.test',
        preset: 'gmail',
        active: false,
        auth: { type: 'oauth2', clientId: 'client', clientSecret: 'client-secret', refreshToken: 'refresh', tokenUrl: 'https://oauth.example.test/token' },
      },
      status: 201,
    });
    expect(oauth.auth).toMatchObject({ type: 'oauth2', user: 'oauth@sender.test' });
    expect(oauth.health.state).toBe('disabled');
    await call('GET', '/api/v1/smtp-accounts', { key });
    await call('GET', '/api/v1/smtp-accounts/{id}', { key, params: { id: account.id } });
    await call('PATCH', '/api/v1/smtp-accounts/{id}', { key, params: { id: oauth.id }, body: { ratePerSecond: 0.5, minGapSeconds: 1, maxGapSeconds: 2 } });

    // Domain caps and recipient throttles.
    const cap = await call('POST', '/api/v1/domain-caps', { key, body: { domain: 'sender.test', dailyLimit: 5000 }, status: 201 });
    await call('GET', '/api/v1/domain-caps', { key });
    await call('DELETE', '/api/v1/domain-caps/{id}', { key, params: { id: cap.id }, status: 204 });
    const throttle = await call('POST', '/api/v1/recipient-throttles', { key, body: { domain: 'rcpt.test', perHour: 1000 }, status: 201 });
    await call('GET', '/api/v1/recipient-throttles', { key });
    await call('DELETE', '/api/v1/recipient-throttles/{id}', { key, params: { id: throttle.id }, status: 204 });

    // Lists and contacts, as JSON (one row refused) and as CSV.
    const list = await call('POST', '/api/v1/lists', { key, body: { name: 'Customers' }, status: 201 });
    const imported = await call('POST', '/api/v1/lists/{id}/contacts', {
      key,
      params: { id: list.id },
      body: { contacts: [{ email: 'amy@rcpt.test', name: 'Amy', attributes: { city: 'Oslo' } }, { email: 'not an address' }] },
    });
    expect(imported.invalid).toHaveLength(1);
    await call('POST', '/api/v1/lists/{id}/contacts', { key, params: { id: list.id }, body: 'email,name\nbob@rcpt.test,Bob\n', contentType: 'text/csv' });
    const verifiedImport = await call('POST', '/api/v1/lists/{id}/contacts', {
      key,
      params: { id: list.id },
      query: '?verify=true',
      body: { contacts: [{ email: 'dead@nomail.test' }, { email: 'cy@rcpt.test' }] },
    });
    expect(verifiedImport).toMatchObject({ added: 2, warnings: [] });
    await call('GET', '/api/v1/lists', { key });
    await call('GET', '/api/v1/lists/{id}', { key, params: { id: list.id } });

    // Contacts one at a time, across lists, and verified.
    const found = await call('GET', '/api/v1/contacts', { key, query: '?email=cy%40rcpt.test' });
    const cy = found.items[0];
    expect(cy.verification).toMatchObject({ status: 'deliverable', checks: { domain: 'mx' } });
    const dead = (await call('GET', '/api/v1/contacts', { key, query: '?email=dead%40nomail.test' })).items[0];
    expect(dead.verification).toMatchObject({ status: 'undeliverable', reasons: ['no_mail_domain'] });
    await call('GET', '/api/v1/lists/{id}/contacts/{contactId}', { key, params: { id: list.id, contactId: cy.id } });
    await call('PATCH', '/api/v1/lists/{id}/contacts/{contactId}', { key, params: { id: list.id, contactId: cy.id }, body: { name: 'Cy', attributes: { vip: true } } });
    const never = (await call('GET', '/api/v1/contacts', { key, query: '?email=bob%40rcpt.test' })).items[0];
    expect(never.verification).toBeNull();
    await call('POST', '/api/v1/lists/{id}/contacts/{contactId}/verify', { key, params: { id: list.id, contactId: never.id } });
    const listVerified = await call('POST', '/api/v1/lists/{id}/verify', { key, params: { id: list.id }, query: '?limit=2' });
    expect(listVerified).toMatchObject({ verified: 2, next: expect.any(Number) });
    await call('DELETE', '/api/v1/lists/{id}/contacts/{contactId}', { key, params: { id: list.id, contactId: cy.id }, status: 204 });
    const scratch = await call('POST', '/api/v1/lists', { key, body: { name: 'Scratch' }, status: 201 });
    await call('DELETE', '/api/v1/lists/{id}', { key, params: { id: scratch.id }, status: 204 });

    // Suppressions: added, added again (200), listed, imported, lifted.
    await call('POST', '/api/v1/suppressions', { key, body: { email: 'gone@rcpt.test' }, status: 201 });
    await call('POST', '/api/v1/suppressions', { key, body: { email: 'gone@rcpt.test', reason: 'complaint' }, status: 200 });
    await call('GET', '/api/v1/suppressions', { key });
    const fileImport = await call('POST', '/api/v1/suppressions/import', { key, body: 'email\nold@rcpt.test\nnope\n', contentType: 'text/csv' });
    expect(fileImport.invalidCount).toBe(1);
    await call('DELETE', '/api/v1/suppressions', { key, query: '?email=old%40rcpt.test', status: 204 });
    await callText('GET', '/api/v1/suppressions/export.csv', { key });

    // A campaign: changed, previewed, tried, forecast, sent to the end through the peer.
    const campaign = await call('POST', '/api/v1/campaigns', {
      key,
      body: { name: 'Spring', listIds: [list.id], subject: 'Hi {{name}}', html: '<p>Hi</p><a href="{{unsubscribeUrl}}">unsubscribe</a>', text: 'Hi', skipUndeliverable: true },
      status: 201,
    });
    await call('PATCH', '/api/v1/campaigns/{id}', { key, params: { id: campaign.id }, body: { fromName: 'Spring Shop', replyTo: 'help@sender.test' } });
    await call('POST', '/api/v1/campaigns/{id}/preview', { key, params: { id: campaign.id } });
    await call('POST', '/api/v1/campaigns/{id}/test', { key, params: { id: campaign.id }, body: { email: 'zed@rcpt.test', accountId: account.id } });
    await call('GET', '/api/v1/campaigns/{id}/forecast', { key, params: { id: campaign.id }, query: '?timezone=Europe/Paris' });
    await call('POST', '/api/v1/campaigns/{id}/start', { key, params: { id: campaign.id } });
    await waitForCampaign(t, key, campaign.id, (c) => c.status === 'completed');
    await call('GET', '/api/v1/campaigns', { key });
    const sent = await call('GET', '/api/v1/campaigns/{id}', { key, params: { id: campaign.id } });
    expect(sent).toMatchObject({ skipped: 1, skippedReasons: { no_mail_domain: 1 } });
    const messages = await call('GET', '/api/v1/campaigns/{id}/messages', { key, params: { id: campaign.id } });
    expect(messages.items.map((m: { sentAt: string | null }) => m.sentAt)).not.toContain(null);
    const shares = await call('GET', '/api/v1/campaigns/{id}/accounts', { key, params: { id: campaign.id } });
    expect(shares.items).toHaveLength(1);
    await call('GET', '/api/v1/campaigns/{id}/forecast', { key, params: { id: campaign.id } });
    await callText('GET', '/api/v1/campaigns/{id}/messages.csv', { key, params: { id: campaign.id } });
    await callText('GET', '/api/v1/campaigns/{id}/events', { key, params: { id: campaign.id }, stream: true });

    // Pausing, resuming and stopping a campaign whose only account is outside its sending window.
    const bo = await t.createUser('Bo');
    const boServer = await must(t, bo.apiKey, 'POST', '/api/v1/smtp-servers', { name: 'peer', host: '127.0.0.1', port: peer.port, security: 'none' });
    await must(t, bo.apiKey, 'POST', '/api/v1/smtp-accounts', {
      serverId: boServer.id,
      email: 'weekend@sender.test',
      hourlyLimit: 0,
      dailyLimit: 0,
      // The fake clock starts on a Monday.
      sendingWindow: { timezone: 'UTC', days: ['sun'], start: '09:00', end: '17:00' },
    });
    const boList = await must(t, bo.apiKey, 'POST', '/api/v1/lists', { name: 'Few' });
    await must(t, bo.apiKey, 'POST', `/api/v1/lists/${boList.id}/contacts`, { contacts: [{ email: 'one@rcpt.test' }, { email: 'two@rcpt.test' }] });
    const held = await must(t, bo.apiKey, 'POST', '/api/v1/campaigns', { name: 'Held', listIds: [boList.id], subject: 'Hi', text: 'Hi' });
    const forecast = await call('GET', '/api/v1/campaigns/{id}/forecast', { key: bo.apiKey, params: { id: held.id } });
    expect(forecast.days.length).toBeGreaterThan(0);
    await call('POST', '/api/v1/campaigns/{id}/start', { key: bo.apiKey, params: { id: held.id } });
    await call('POST', '/api/v1/campaigns/{id}/pause', { key: bo.apiKey, params: { id: held.id } });
    await call('POST', '/api/v1/campaigns/{id}/resume', { key: bo.apiKey, params: { id: held.id } });
    const paused = await waitForCampaign(t, bo.apiKey, held.id, (c) => c.status === 'paused_limits');
    expect(paused.pauseReason).toBe('sending_window');
    await call('GET', '/api/v1/campaigns/{id}', { key: bo.apiKey, params: { id: held.id } });
    await call('GET', '/api/v1/campaigns/{id}/messages', { key: bo.apiKey, params: { id: held.id } });

    // An account paused by a strict rate guard (one refusal is past 1%) while its campaign runs: the
    // campaign waits with no resumeAt, and resume lifts the pause. The gap between sends (fake clock,
    // never advanced) holds the second message back, so the pause finds the campaign running.
    const guard = await t.createUser('Gus');
    await call('PATCH', '/api/v1/me', { key: guard.apiKey, body: { rateGuard: { hardBounces: { percent: 1, lastSends: 1, minSends: 1 } } } });
    const guardServer = await must(t, guard.apiKey, 'POST', '/api/v1/smtp-servers', { name: 'peer', host: '127.0.0.1', port: peer.port, security: 'none' });
    const strict = await must(t, guard.apiKey, 'POST', '/api/v1/smtp-accounts', {
      serverId: guardServer.id,
      email: 'strict@sender.test',
      hourlyLimit: 0,
      dailyLimit: 0,
      minGapSeconds: 600,
      maxGapSeconds: 600,
    });
    const guardList = await must(t, guard.apiKey, 'POST', '/api/v1/lists', { name: 'Bouncy' });
    await must(t, guard.apiKey, 'POST', `/api/v1/lists/${guardList.id}/contacts`, { contacts: [{ email: 'refused@rcpt.test' }, { email: 'zoe@rcpt.test' }] });
    const bouncing = await must(t, guard.apiKey, 'POST', '/api/v1/campaigns', { name: 'Bouncy', listIds: [guardList.id], subject: 'Hi', text: 'Hi' });
    await must(t, guard.apiKey, 'POST', `/api/v1/campaigns/${bouncing.id}/start`);
    await waitForCampaign(t, guard.apiKey, bouncing.id, (c) => c.pauseReason === 'bounce_rate');
    const heldBack = await call('GET', '/api/v1/campaigns/{id}', { key: guard.apiKey, params: { id: bouncing.id } });
    expect(heldBack).toMatchObject({ status: 'paused_limits', resumeAt: null, failed: 1 });
    const pausedAccount = await call('GET', '/api/v1/smtp-accounts/{id}', { key: guard.apiKey, params: { id: strict.id } });
    expect(pausedAccount.health).toMatchObject({ state: 'paused', reason: expect.stringMatching(/hard bounce/) });
    await must(t, guard.apiKey, 'POST', `/api/v1/campaigns/${bouncing.id}/stop`);
    const resumed = await call('PATCH', '/api/v1/smtp-accounts/{id}', { key: guard.apiKey, params: { id: strict.id }, body: { resume: true } });
    expect(resumed.health.state).toBe('healthy');

    // Stats for a user and for the admin, while a campaign is unfinished.
    await call('GET', '/api/v1/stats', { key });
    const system = await call('GET', '/api/v1/stats', { key: t.adminKey });
    expect(system.accounts.map((a: { userId?: number }) => a.userId)).not.toContain(undefined);
    expect(system.perUser).toEqual([expect.objectContaining({ userId: bo.id, pending: 2 })]);
    await call('POST', '/api/v1/campaigns/{id}/stop', { key: bo.apiKey, params: { id: held.id } });

    // The pages and files that are not JSON.
    await callText('GET', '/metrics', { key: t.adminKey });
    await callText('GET', '/');
    await callText('GET', '/vendor/{file}', { params: { file: 'preact.mjs' } });
    await callText('GET', '/app/{file}', { params: { file: 'styles.css' } });
    for (const path of Object.keys(doc.paths).filter((p) => /^\/app\/\w+\/\{file\}$/.test(p))) {
      const dir = path.split('/')[2]!;
      const file = { pages: 'lists.js', lib: 'format.js' }[dir];
      expect(file, `a file of src/web/${dir} to fetch`).toBeDefined();
      await callText('GET', path, { params: { file: file! } });
    }
    const unsubscribe = peer.messages.find((m) => m.rcptTo.includes('amy@rcpt.test'))!.headers.get('list-unsubscribe')!;
    const token = /\/u\/([^>]+)>/.exec(unsubscribe)![1]!;
    await callText('GET', '/u/{token}', { params: { token } });
    await callText('POST', '/u/{token}', { params: { token } });

    // Data-protection requests: everything held about an address, then its erasure.
    const exported = await call('GET', '/api/v1/contacts/export', { key, query: '?email=amy%40rcpt.test' });
    expect(exported).toMatchObject({ contacts: [expect.anything()], messages: [expect.objectContaining({ status: 'sent' })], suppression: { reason: 'unsubscribed' } });
    const erased = await call('POST', '/api/v1/contacts/erase', { key, body: { email: 'bob@rcpt.test' } });
    expect(erased).toMatchObject({ erasedContacts: 1, suppressed: true });
    const bobSuppressed = await call('GET', '/api/v1/suppressions', { key, query: '?email=bob%40rcpt.test' });
    expect(bobSuppressed.items).toEqual([expect.objectContaining({ reason: 'erased' })]);

    // Every success reply the document lists was checked above.
    const documented: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const statuses = Object.keys(op.responses).filter((s) => SUCCESS.test(s));
        expect(statuses, `${method} ${path} documents a success reply`).not.toEqual([]);
        for (const status of statuses) documented.push(`${method} ${path} ${status}`);
      }
    }
    expect(documented.filter((d) => !checked.has(d))).toEqual([]);
  });

  it('answers errors in the shape every operation refers to', async () => {
    const { apiKey: key } = await t.createUser('Di');
    const op = operation('GET', '/api/v1/lists/{id}');
    expect(op.responses['4XX']).toEqual({ $ref: '#/components/responses/Error' });
    const error = (doc as unknown as { components: { responses: { Error: { content: Record<string, { schema: object }> } } } }).components.responses.Error;
    const validate = ajv.compile(error.content['application/json']!.schema);
    for (const res of [
      await t.api('GET', '/api/v1/lists/999999', { key }),
      await t.api('POST', '/api/v1/lists', { key, body: { name: '' } }),
      await t.api('GET', '/api/v1/lists'),
    ]) {
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(validate(res.body) ? [] : validate.errors, JSON.stringify(res.body)).toEqual([]);
    }
  });

  it('forbids fields a reply schema does not name, so a forgotten field fails the check above', () => {
    const server = operation('GET', '/api/v1/smtp-servers/{id}').responses['200']!.content!['application/json']!.schema;
    const validate = ajv.compile(server);
    const reply = { id: 1, name: 'peer', host: 'h', port: 25, security: 'none', maxConnections: 1, active: true, createdAt: '2026-03-02T10:00:00.000Z' };
    expect(validate(reply)).toBe(true);
    expect(validate({ ...reply, password: 'x' })).toBe(false);
    expect(validate({ ...reply, createdAt: 'yesterday' })).toBe(false);
  });
});
