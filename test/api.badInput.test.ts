import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BODY_LIMIT_BYTES } from '../src/api/jsonBody.ts';
import { databaseKinds } from './helpers/db.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { createTenant, fingerprint, type Tenant } from './helpers/tenants.ts';

interface BadInput {
  what: string;
  method: string;
  path: string | ((u: Tenant) => string);
  /** JSON-encoded unless a string is given (sent as is, as application/json unless contentType says otherwise). */
  body?: unknown;
  contentType?: string;
  admin?: boolean;
  status: number;
  code: string;
  /** The field the message starts with. */
  field: string;
}

const server = { name: 'Relay', host: 'smtp.example.test', port: 587, security: 'starttls' };
const account = (u: Tenant) => ({ serverId: u.serverId, email: 'sender@example.test', hourlyLimit: 10, dailyLimit: 100 });
const campaign = (u: Tenant) => ({ name: 'News', listIds: [u.listId], subject: 'Hello {{name}}', html: '<p>Hi</p>' });
const deeplyNested = `{"contacts": ${'['.repeat(5000)}${']'.repeat(5000)}}`;

const CASES: BadInput[] = [
  // Body as a whole
  { what: 'malformed JSON', method: 'POST', path: '/api/v1/lists', body: '{"name": ', status: 400, code: 'malformed_json', field: 'body' },
  { what: 'deeply nested JSON', method: 'POST', path: (u) => `/api/v1/lists/${u.listId}/contacts`, body: deeplyNested, status: 400, code: 'too_deeply_nested', field: 'body' },
  { what: 'prototype pollution', method: 'POST', path: '/api/v1/lists', body: '{"name": "x", "__proto__": {"admin": true}}', status: 400, code: 'malformed_json', field: 'body' },
  { what: 'an array for an object', method: 'POST', path: '/api/v1/lists', body: [{ name: 'x' }], status: 422, code: 'invalid_field', field: 'body' },
  { what: 'no body where one is needed', method: 'POST', path: '/api/v1/smtp-servers', status: 422, code: 'invalid_field', field: 'body' },
  { what: 'a body larger than the limit', method: 'POST', path: '/api/v1/lists', body: JSON.stringify({ name: 'x'.repeat(BODY_LIMIT_BYTES) }), status: 413, code: 'body_too_large', field: 'body' },
  { what: 'a content type not taken', method: 'POST', path: '/api/v1/lists', body: 'name=x', contentType: 'application/x-www-form-urlencoded', status: 415, code: 'unsupported_media_type', field: 'body' },
  { what: 'NUL in a nested string', method: 'POST', path: '/api/v1/campaigns', body: (u: Tenant) => ({ ...campaign(u), name: 'a\u0000b' }), status: 422, code: 'invalid_field', field: 'name' },
  // SMTP servers
  { what: 'missing host', method: 'POST', path: '/api/v1/smtp-servers', body: { ...server, host: undefined }, status: 422, code: 'invalid_field', field: 'host' },
  { what: 'port as a string', method: 'POST', path: '/api/v1/smtp-servers', body: { ...server, port: '587' }, status: 422, code: 'invalid_field', field: 'port' },
  { what: 'port out of range', method: 'POST', path: '/api/v1/smtp-servers', body: { ...server, port: 70000 }, status: 422, code: 'invalid_field', field: 'port' },
  { what: 'port of 2^70', method: 'POST', path: '/api/v1/smtp-servers', body: '{"name":"R","host":"h.test","port":1180591620717411303424,"security":"tls"}', status: 422, code: 'invalid_field', field: 'port' },
  { what: 'unknown security', method: 'POST', path: '/api/v1/smtp-servers', body: { ...server, security: 'ssl' }, status: 422, code: 'invalid_field', field: 'security' },
  { what: 'host with a space', method: 'POST', path: '/api/v1/smtp-servers', body: { ...server, host: 'smtp example.test' }, status: 422, code: 'invalid_field', field: 'host' },
  { what: 'host with CRLF', method: 'POST', path: '/api/v1/smtp-servers', body: { ...server, host: 'smtp.example.test\r\nX: y' }, status: 422, code: 'invalid_field', field: 'host' },
  { what: 'unknown field', method: 'POST', path: '/api/v1/smtp-servers', body: { ...server, colour: 'blue' }, status: 422, code: 'invalid_field', field: 'colour' },
  { what: 'zero connections', method: 'POST', path: '/api/v1/smtp-servers', body: { ...server, maxConnections: 0 }, status: 422, code: 'invalid_field', field: 'maxConnections' },
  { what: 'empty name', method: 'POST', path: '/api/v1/smtp-servers', body: { ...server, name: '  ' }, status: 422, code: 'invalid_field', field: 'name' },
  { what: 'id that is not a number', method: 'PATCH', path: '/api/v1/smtp-servers/abc', body: { port: 25 }, status: 422, code: 'invalid_field', field: 'id' },
  { what: 'id of 2^70', method: 'GET', path: '/api/v1/smtp-servers/1180591620717411303424', status: 422, code: 'invalid_field', field: 'id' },
  { what: 'id with a sign', method: 'DELETE', path: '/api/v1/smtp-servers/-1', status: 422, code: 'invalid_field', field: 'id' },
  { what: 'id in hex', method: 'GET', path: '/api/v1/smtp-servers/0x10', status: 422, code: 'invalid_field', field: 'id' },
  { what: 'negative port in a change', method: 'PATCH', path: (u) => `/api/v1/smtp-servers/${u.serverId}`, body: { port: -1 }, status: 422, code: 'invalid_field', field: 'port' },
  { what: 'limit of zero', method: 'GET', path: '/api/v1/smtp-servers?limit=0', status: 422, code: 'invalid_field', field: 'limit' },
  { what: 'limit not a number', method: 'GET', path: '/api/v1/smtp-servers?limit=abc', status: 422, code: 'invalid_field', field: 'limit' },
  { what: 'limit too large', method: 'GET', path: '/api/v1/lists?limit=1001', status: 422, code: 'invalid_field', field: 'limit' },
  { what: 'negative cursor', method: 'GET', path: '/api/v1/campaigns?after=-5', status: 422, code: 'invalid_field', field: 'after' },
  { what: 'unknown query parameter', method: 'GET', path: '/api/v1/smtp-accounts?sort=email', status: 422, code: 'invalid_field', field: 'sort' },
  { what: 'query parameter on a route that takes none', method: 'GET', path: '/api/v1/me?debug=1', status: 422, code: 'invalid_field', field: 'debug' },
  // SMTP accounts
  { what: 'invalid email', method: 'POST', path: '/api/v1/smtp-accounts', body: (u: Tenant) => ({ ...account(u), email: 'not-an-email' }), status: 422, code: 'invalid_field', field: 'email' },
  { what: 'email with a header', method: 'POST', path: '/api/v1/smtp-accounts', body: (u: Tenant) => ({ ...account(u), email: 'a@example.test\r\nBcc: x@example.test' }), status: 422, code: 'invalid_field', field: 'email' },
  { what: 'negative hourly limit', method: 'POST', path: '/api/v1/smtp-accounts', body: (u: Tenant) => ({ ...account(u), hourlyLimit: -1 }), status: 422, code: 'invalid_field', field: 'hourlyLimit' },
  { what: 'fractional daily limit', method: 'POST', path: '/api/v1/smtp-accounts', body: (u: Tenant) => ({ ...account(u), dailyLimit: 1.5 }), status: 422, code: 'invalid_field', field: 'dailyLimit' },
  { what: 'server id as a string', method: 'POST', path: '/api/v1/smtp-accounts', body: (u: Tenant) => ({ ...account(u), serverId: String(u.serverId) }), status: 422, code: 'invalid_field', field: 'serverId' },
  { what: 'server that does not exist', method: 'POST', path: '/api/v1/smtp-accounts', body: (u: Tenant) => ({ ...account(u), serverId: 999999 }), status: 422, code: 'invalid_field', field: 'serverId' },
  { what: 'unknown time zone', method: 'POST', path: '/api/v1/smtp-accounts', body: (u: Tenant) => ({ ...account(u), timezone: 'Mars/Olympus' }), status: 422, code: 'invalid_field', field: 'timezone' },
  { what: 'password with a line break', method: 'PATCH', path: (u) => `/api/v1/smtp-accounts/${u.accountId}`, body: { password: 'pw\nRSET' }, status: 422, code: 'invalid_field', field: 'password' },
  { what: 'zero rate', method: 'PATCH', path: (u) => `/api/v1/smtp-accounts/${u.accountId}`, body: { ratePerSecond: 0 }, status: 422, code: 'invalid_field', field: 'ratePerSecond' },
  // Lists
  { what: 'list without a name', method: 'POST', path: '/api/v1/lists', body: {}, status: 422, code: 'invalid_field', field: 'name' },
  { what: 'list name as a number', method: 'POST', path: '/api/v1/lists', body: { name: 123 }, status: 422, code: 'invalid_field', field: 'name' },
  { what: 'contacts not an array', method: 'POST', path: (u) => `/api/v1/lists/${u.listId}/contacts`, body: { contacts: 'a@example.test' }, status: 422, code: 'invalid_field', field: 'contacts' },
  { what: 'import into a bad id', method: 'POST', path: '/api/v1/lists/abc/contacts', body: { contacts: [] }, status: 422, code: 'invalid_field', field: 'id' },
  // Campaigns
  { what: 'subject with CRLF', method: 'POST', path: '/api/v1/campaigns', body: (u: Tenant) => ({ ...campaign(u), subject: 'Hi\r\nBcc: all@example.test' }), status: 422, code: 'invalid_field', field: 'subject' },
  { what: 'fromName with CR', method: 'POST', path: '/api/v1/campaigns', body: (u: Tenant) => ({ ...campaign(u), fromName: 'Shop\rX' }), status: 422, code: 'invalid_field', field: 'fromName' },
  { what: 'replyTo with a header', method: 'POST', path: '/api/v1/campaigns', body: (u: Tenant) => ({ ...campaign(u), replyTo: 'r@example.test\nBcc: x@example.test' }), status: 422, code: 'invalid_field', field: 'replyTo' },
  { what: 'replyTo not an email', method: 'POST', path: '/api/v1/campaigns', body: (u: Tenant) => ({ ...campaign(u), replyTo: 'nobody' }), status: 422, code: 'invalid_field', field: 'replyTo' },
  { what: 'no lists', method: 'POST', path: '/api/v1/campaigns', body: (u: Tenant) => ({ ...campaign(u), listIds: [] }), status: 422, code: 'invalid_field', field: 'listIds' },
  { what: 'list id as a string', method: 'POST', path: '/api/v1/campaigns', body: (u: Tenant) => ({ ...campaign(u), listIds: [String(u.listId)] }), status: 422, code: 'invalid_field', field: 'listIds.0' },
  { what: 'list id as a boolean', method: 'POST', path: '/api/v1/campaigns', body: (u: Tenant) => ({ ...campaign(u), listIds: [true] }), status: 422, code: 'invalid_field', field: 'listIds.0' },
  { what: 'list that does not exist', method: 'POST', path: '/api/v1/campaigns', body: (u: Tenant) => ({ ...campaign(u), listIds: [999999] }), status: 422, code: 'invalid_field', field: 'listIds' },
  { what: 'html template syntax error', method: 'POST', path: '/api/v1/campaigns', body: (u: Tenant) => ({ ...campaign(u), html: '<p>Hi</p>\n<p>{{#if name}}dear {{name}}</p>' }), status: 422, code: 'invalid_template', field: 'html' },
  { what: 'subject template syntax error', method: 'POST', path: '/api/v1/campaigns', body: (u: Tenant) => ({ ...campaign(u), subject: 'Hello {{name' }), status: 422, code: 'invalid_template', field: 'subject' },
  { what: 'schedule not a date', method: 'POST', path: '/api/v1/campaigns', body: (u: Tenant) => ({ ...campaign(u), scheduledAt: 'tomorrow' }), status: 422, code: 'invalid_field', field: 'scheduledAt' },
  { what: 'neither html nor text', method: 'POST', path: '/api/v1/campaigns', body: (u: Tenant) => ({ ...campaign(u), html: undefined }), status: 422, code: 'invalid_field', field: 'html' },
  { what: 'name too long', method: 'POST', path: '/api/v1/campaigns', body: (u: Tenant) => ({ ...campaign(u), name: 'x'.repeat(201) }), status: 422, code: 'invalid_field', field: 'name' },
  { what: 'unknown message status', method: 'GET', path: (u) => `/api/v1/campaigns/${u.campaignId}/messages?status=lost`, status: 422, code: 'invalid_field', field: 'status' },
  { what: 'a body on an action', method: 'POST', path: (u) => `/api/v1/campaigns/${u.campaignId}/stop`, body: { force: true }, status: 422, code: 'invalid_field', field: 'force' },
  // Suppressions, keys, users
  { what: 'suppress an invalid address', method: 'POST', path: '/api/v1/suppressions', body: { email: 'x' }, status: 422, code: 'invalid_field', field: 'email' },
  { what: 'suppress for an unknown reason', method: 'POST', path: '/api/v1/suppressions', body: { email: 'x@example.test', reason: 'spam' }, status: 422, code: 'invalid_field', field: 'reason' },
  { what: 'lift a suppression given as a number', method: 'DELETE', path: '/api/v1/suppressions', body: { email: 5 }, status: 422, code: 'invalid_field', field: 'email' },
  { what: 'lift a suppression naming no one', method: 'DELETE', path: '/api/v1/suppressions', status: 422, code: 'invalid_field', field: 'email' },
  { what: 'revoke a key by a bad id', method: 'DELETE', path: '/api/v1/me/keys/abc', status: 422, code: 'invalid_field', field: 'id' },
  { what: 'a new key with options', method: 'POST', path: '/api/v1/me/keys', body: { scope: 'all' }, status: 422, code: 'invalid_field', field: 'scope' },
  { what: 'user with an invalid email', method: 'POST', path: '/api/v1/users', body: { name: 'x', email: 'bad' }, admin: true, status: 422, code: 'invalid_field', field: 'email' },
  { what: 'user name with a line break', method: 'POST', path: '/api/v1/users', body: { name: 'x\ny', email: 'x@example.test' }, admin: true, status: 422, code: 'invalid_field', field: 'name' },
];

describe.each(databaseKinds)('hostile input (%s)', (kind) => {
  let t: TestMailPilot;
  let user: Tenant;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
    user = await createTenant(t, 'target');
  });
  afterAll(() => t.close());

  it('has at least 40 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
  });

  it.each(CASES.map((c) => [c.what, c] as const))('refuses %s with the status, code and field, writing nothing', async (_what, c) => {
    const before = await fingerprint(t.mp.ctx.db, user.id);
    const [usersBefore] = await t.mp.ctx.db.query<{ n: number }>('SELECT count(*) AS n FROM users');
    const path = typeof c.path === 'function' ? c.path(user) : c.path;
    const body = typeof c.body === 'function' ? (c.body as (u: Tenant) => unknown)(user) : c.body;
    const res = await t.api(c.method, path, { key: c.admin ? t.adminKey : user.apiKey, body, contentType: c.contentType });
    expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status: c.status, code: c.code });
    expect(res.body.error.message).toMatch(new RegExp(`^${c.field.replace('.', '\\.')}: `));
    expect(await fingerprint(t.mp.ctx.db, user.id)).toEqual(before);
    const [usersAfter] = await t.mp.ctx.db.query<{ n: number }>('SELECT count(*) AS n FROM users');
    expect(usersAfter!.n).toBe(usersBefore!.n);
  });

  it('says where a template error is, by line and column', async () => {
    const res = await t.api('POST', '/api/v1/campaigns', {
      key: user.apiKey,
      body: { ...campaign(user), html: '<p>Hi</p>\n<p>{{#if name}}dear {{name}}</p>' },
    });
    expect(res.body.error.message).toMatch(/^html: template error at line 2, column \d+: /);
  });
});
