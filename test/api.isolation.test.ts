import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './helpers/db.ts';
import type { ApiReply, TestMailPilot } from './helpers/mailpilot.ts';
import { startTestMailPilot } from './helpers/mailpilot.ts';
import { createTenant, fingerprint, type Tenant } from './helpers/tenants.ts';

/** An id no one has. */
const NOBODY = 999_999;

interface Probe {
  method: string;
  /** The OpenAPI path the probe covers. */
  route: string;
  /** The request, for the resource ids given: the victim's, or ids that exist nowhere. */
  path(ids: Tenant): string;
  body?(ids: Tenant): unknown;
  contentType?: string;
  /** Every probe's reply equals its reply for ids that exist nowhere; most of them are 404. */
  status: number;
}

/** Every way to name another user's resource: by path id, or by id or address in a body. */
const PROBES: Probe[] = [
  { method: 'GET', route: '/api/v1/smtp-servers/{id}', path: (v) => `/api/v1/smtp-servers/${v.serverId}`, status: 404 },
  { method: 'PATCH', route: '/api/v1/smtp-servers/{id}', path: (v) => `/api/v1/smtp-servers/${v.serverId}`, body: () => ({ name: 'taken', port: 1 }), status: 404 },
  { method: 'DELETE', route: '/api/v1/smtp-servers/{id}', path: (v) => `/api/v1/smtp-servers/${v.serverId}`, status: 404 },
  { method: 'GET', route: '/api/v1/smtp-accounts/{id}', path: (v) => `/api/v1/smtp-accounts/${v.accountId}`, status: 404 },
  { method: 'PATCH', route: '/api/v1/smtp-accounts/{id}', path: (v) => `/api/v1/smtp-accounts/${v.accountId}`, body: () => ({ hourlyLimit: 1, password: 'x' }), status: 404 },
  { method: 'DELETE', route: '/api/v1/smtp-accounts/{id}', path: (v) => `/api/v1/smtp-accounts/${v.accountId}`, status: 404 },
  {
    method: 'POST',
    route: '/api/v1/smtp-accounts',
    path: () => '/api/v1/smtp-accounts',
    body: (v) => ({ serverId: v.serverId, email: 'thief@example.test', hourlyLimit: 1, dailyLimit: 1 }),
    status: 422,
  },
  { method: 'GET', route: '/api/v1/lists/{id}', path: (v) => `/api/v1/lists/${v.listId}`, status: 404 },
  { method: 'DELETE', route: '/api/v1/lists/{id}', path: (v) => `/api/v1/lists/${v.listId}`, status: 404 },
  { method: 'POST', route: '/api/v1/lists/{id}/verify', path: (v) => `/api/v1/lists/${v.listId}/verify`, status: 404 },
  { method: 'GET', route: '/api/v1/lists/{id}/contacts/{contactId}', path: (v) => `/api/v1/lists/${v.listId}/contacts/${v.contactId}`, status: 404 },
  {
    method: 'PATCH',
    route: '/api/v1/lists/{id}/contacts/{contactId}',
    path: (v) => `/api/v1/lists/${v.listId}/contacts/${v.contactId}`,
    body: () => ({ name: 'Hijacked', attributes: { x: 1 } }),
    status: 404,
  },
  { method: 'DELETE', route: '/api/v1/lists/{id}/contacts/{contactId}', path: (v) => `/api/v1/lists/${v.listId}/contacts/${v.contactId}`, status: 404 },
  {
    method: 'POST',
    route: '/api/v1/lists/{id}/contacts/{contactId}/verify',
    path: (v) => `/api/v1/lists/${v.listId}/contacts/${v.contactId}/verify`,
    status: 404,
  },
  {
    method: 'POST',
    route: '/api/v1/lists/{id}/contacts',
    path: (v) => `/api/v1/lists/${v.listId}/contacts`,
    body: () => ({ contacts: [{ email: 'planted@example.test' }] }),
    status: 404,
  },
  {
    method: 'POST',
    route: '/api/v1/lists/{id}/contacts',
    path: (v) => `/api/v1/lists/${v.listId}/contacts`,
    body: () => 'email\nplanted@example.test\n',
    contentType: 'text/csv',
    status: 404,
  },
  {
    method: 'POST',
    route: '/api/v1/campaigns',
    path: () => '/api/v1/campaigns',
    body: (v) => ({ name: 'steal', listIds: [v.listId], subject: 'x', text: 'x' }),
    status: 422,
  },
  { method: 'GET', route: '/api/v1/campaigns/{id}', path: (v) => `/api/v1/campaigns/${v.campaignId}`, status: 404 },
  { method: 'POST', route: '/api/v1/campaigns/{id}/start', path: (v) => `/api/v1/campaigns/${v.draftId}/start`, status: 404 },
  { method: 'POST', route: '/api/v1/campaigns/{id}/resume', path: (v) => `/api/v1/campaigns/${v.campaignId}/resume`, status: 404 },
  { method: 'POST', route: '/api/v1/campaigns/{id}/pause', path: (v) => `/api/v1/campaigns/${v.campaignId}/pause`, status: 404 },
  { method: 'POST', route: '/api/v1/campaigns/{id}/stop', path: (v) => `/api/v1/campaigns/${v.campaignId}/stop`, status: 404 },
  { method: 'GET', route: '/api/v1/campaigns/{id}/messages', path: (v) => `/api/v1/campaigns/${v.campaignId}/messages`, status: 404 },
  { method: 'GET', route: '/api/v1/campaigns/{id}/events', path: (v) => `/api/v1/campaigns/${v.campaignId}/events`, status: 404 },
  { method: 'PATCH', route: '/api/v1/campaigns/{id}', path: (v) => `/api/v1/campaigns/${v.draftId}`, body: () => ({ name: 'renamed' }), status: 404 },
  { method: 'POST', route: '/api/v1/campaigns/{id}/preview', path: (v) => `/api/v1/campaigns/${v.draftId}/preview`, body: () => ({}), status: 404 },
  {
    method: 'POST',
    route: '/api/v1/campaigns/{id}/test',
    path: (v) => `/api/v1/campaigns/${v.draftId}/test`,
    body: (v) => ({ email: 'probe@example.test', accountId: v.accountId }),
    status: 404,
  },
  { method: 'GET', route: '/api/v1/campaigns/{id}/accounts', path: (v) => `/api/v1/campaigns/${v.campaignId}/accounts`, status: 404 },
  { method: 'GET', route: '/api/v1/campaigns/{id}/messages.csv', path: (v) => `/api/v1/campaigns/${v.campaignId}/messages.csv`, status: 404 },
  { method: 'GET', route: '/api/v1/campaigns/{id}/forecast', path: (v) => `/api/v1/campaigns/${v.campaignId}/forecast`, status: 404 },
  { method: 'DELETE', route: '/api/v1/domain-caps/{id}', path: (v) => `/api/v1/domain-caps/${v.domainCapId}`, status: 404 },
  { method: 'DELETE', route: '/api/v1/recipient-throttles/{id}', path: (v) => `/api/v1/recipient-throttles/${v.throttleId}`, status: 404 },
  { method: 'DELETE', route: '/api/v1/me/keys/{id}', path: (v) => `/api/v1/me/keys/${v.keyId}`, status: 404 },
  { method: 'DELETE', route: '/api/v1/suppressions', path: () => '/api/v1/suppressions', body: (v) => ({ email: v.suppressed }), status: 404 },
  { method: 'DELETE', route: '/api/v1/suppressions', path: (v) => `/api/v1/suppressions?email=${encodeURIComponent(v.suppressed)}`, status: 404 },
];

const nobody: Tenant = {
  name: 'nobody',
  id: NOBODY,
  apiKey: '',
  keyId: NOBODY,
  serverId: NOBODY,
  accountId: NOBODY,
  listId: NOBODY,
  contactId: NOBODY,
  campaignId: NOBODY,
  draftId: NOBODY,
  suppressed: 'nobody@nowhere.test',
  domainCapId: 999_999,
  throttleId: 999_999,
};

describe.each(databaseKinds)('tenant isolation through the API (%s)', (kind) => {
  let t: TestMailPilot;
  let alice: Tenant;
  let bob: Tenant;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
    alice = await createTenant(t, 'alice');
    bob = await createTenant(t, 'bob');
  });
  afterAll(() => t.close());

  const db = () => t.mp.ctx.db;
  const send = (p: Probe, caller: Tenant, target: Tenant): Promise<ApiReply> =>
    t.api(p.method, p.path(target), { key: caller.apiKey, body: p.body?.(target), contentType: p.contentType });

  it('probes every route that takes an id', async () => {
    const doc = (await t.api('GET', '/api/v1/openapi.json')).body;
    const withIds = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
      .filter(([path]) => path.startsWith('/api/') && path.includes('{id}'))
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    const probed = new Set(PROBES.map((p) => `${p.method} ${p.route}`));
    expect(withIds.filter((r) => !probed.has(r))).toEqual([]);
  });

  for (const [attackerName, victimName] of [
    ['bob', 'alice'],
    ['alice', 'bob'],
  ] as const) {
    it(`answers ${attackerName} about ${victimName}'s resources exactly as about ones that do not exist, changing nothing`, async () => {
      const attacker = attackerName === 'bob' ? bob : alice;
      const victim = victimName === 'bob' ? bob : alice;
      const before = await fingerprint(db(), victim.id);
      for (const p of PROBES) {
        const label = `${p.method} ${p.path(victim)}`;
        const foreign = await send(p, attacker, victim);
        const absent = await send(p, attacker, nobody);
        expect(foreign.status, label).toBe(p.status);
        expect(foreign.body.error.code, label).toBe(absent.body.error.code);
        // Messages may name the id asked for; with it masked, the two replies are the same.
        const masked = (r: ApiReply, ids: Tenant) =>
          JSON.stringify(r.body).replaceAll(String(ids.listId), '#').replaceAll(String(ids.serverId), '#');
        expect(masked(foreign, victim), label).toBe(masked(absent, nobody));
        expect(await fingerprint(db(), victim.id), label).toEqual(before);
      }
    });
  }

  it("lists nothing of another user's in any collection or in stats", async () => {
    for (const [me, other] of [
      [bob, alice],
      [alice, bob],
    ] as const) {
      const ids = (path: string) => t.api('GET', path, { key: me.apiKey }).then((r) => r.body.items.map((i: { id: number }) => i.id));
      expect(await ids('/api/v1/smtp-servers')).toEqual([me.serverId]);
      expect(await ids('/api/v1/smtp-accounts')).toEqual([me.accountId]);
      expect(await ids('/api/v1/lists')).toEqual([me.listId]);
      expect(await ids('/api/v1/campaigns')).toEqual([me.campaignId, me.draftId]);
      expect((await ids('/api/v1/me/keys')).length).toBe(2);
      expect(await ids('/api/v1/me/keys')).toContain(me.keyId);
      const suppressions = (await t.api('GET', '/api/v1/suppressions', { key: me.apiKey })).body.items;
      expect(suppressions.map((s: { email: string }) => s.email)).toEqual([me.suppressed]);
      const messages = (await t.api('GET', `/api/v1/campaigns/${me.campaignId}/messages`, { key: me.apiKey })).body.items;
      expect(messages.map((m: { email: string }) => m.email.split('@')[1])).toEqual(Array(3).fill(`${me.name}-rcpt.test`));
      const stats = (await t.api('GET', '/api/v1/stats', { key: me.apiKey })).body;
      expect(stats).toEqual({ activeCampaigns: 0, pending: 3, accounts: [expect.objectContaining({ accountId: me.accountId })] });
      expect(JSON.stringify(stats)).not.toContain(`@${other.name}.test`);
      const meReply = (await t.api('GET', '/api/v1/me', { key: me.apiKey })).body;
      expect(meReply.id).toBe(me.id);
    }
  });

  it('lets the admin see every user in stats, and no user reach admin-only routes', async () => {
    const admin = (await t.api('GET', '/api/v1/stats', { key: t.adminKey })).body;
    expect(admin.accounts.map((a: { accountId: number }) => a.accountId).sort()).toEqual([alice.accountId, bob.accountId].sort());
    expect(admin.perUser.map((u: { userId: number }) => u.userId).sort()).toEqual([alice.id, bob.id].sort());
    const res = await t.api('POST', '/api/v1/users', { key: bob.apiKey, body: { name: 'mallory', email: 'm@example.test' } });
    expect(res.status).toBe(403);
  });
});
