import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Queryable } from '../src/db/database.ts';
import { getCampaign, listCampaigns } from '../src/db/campaigns.ts';
import { getList, listLists } from '../src/db/lists.ts';
import { deleteServer, getServer, listServers, updateServer } from '../src/db/smtpServers.ts';
import { addSuppressions } from '../src/db/suppressions.ts';
import { tenantScope } from '../src/db/tenantScope.ts';
import { databaseKinds } from './helpers/db.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { createTenant, fingerprint, USER_TABLES, type Tenant } from './helpers/tenants.ts';

/*
 * The first wall is the user_id filter in every data-layer query. These tests take it away, by
 * replacing some of those functions with versions that forget the filter, and show that the second
 * wall, row-level security under the tenant role, still keeps each user to its own rows.
 */
vi.mock('../src/db/smtpServers.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/db/smtpServers.ts')>();
  const COLUMNS = `id, name, host, port, security, max_connections AS "maxConnections", active, created_at AS "createdAt"`;
  return {
    ...real,
    getServer: async (db: Queryable, _userId: number, id: number) => (await db.query(`SELECT ${COLUMNS} FROM smtp_servers WHERE id = $1`, [id]))[0],
    listServers: (db: Queryable, _userId: number, after: number, limit: number) =>
      db.query(`SELECT ${COLUMNS} FROM smtp_servers WHERE id > $1 ORDER BY id LIMIT $2`, [after, limit]),
    updateServer: async (db: Queryable, _userId: number, id: number, changes: { name?: string }) =>
      (await db.query(`UPDATE smtp_servers SET name = coalesce($2, name) WHERE id = $1 RETURNING ${COLUMNS}`, [id, changes.name ?? null]))[0],
    deleteServer: async (db: Queryable, _userId: number, id: number) =>
      (await db.query('DELETE FROM smtp_servers WHERE id = $1 RETURNING id', [id])).length > 0 ? 'deleted' : 'not_found',
  };
});
vi.mock('../src/db/lists.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/db/lists.ts')>();
  const COLUMNS = `id, name, contact_count AS "contactCount", created_at AS "createdAt"`;
  return {
    ...real,
    getList: async (db: Queryable, _userId: number, id: number) => (await db.query(`SELECT ${COLUMNS} FROM lists WHERE id = $1`, [id]))[0],
    listLists: (db: Queryable, _userId: number, after: number, limit: number) =>
      db.query(`SELECT ${COLUMNS} FROM lists WHERE id > $1 ORDER BY id LIMIT $2`, [after, limit]),
    existingListIds: async (db: Queryable, _userId: number, ids: number[]) =>
      (await db.query<{ id: number }>('SELECT id FROM lists WHERE id = ANY($1::int[])', [ids])).map((r) => r.id),
  };
});
vi.mock('../src/db/campaigns.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/db/campaigns.ts')>();
  return {
    ...real,
    getCampaign: async (db: Queryable, _userId: number, id: number) =>
      (await db.query(`SELECT ${real.CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1`, [id]))[0],
    listCampaigns: (db: Queryable, _userId: number, after: number, limit: number) =>
      db.query(`SELECT ${real.CAMPAIGN_COLUMNS} FROM campaigns WHERE id > $1 ORDER BY id LIMIT $2`, [after, limit]),
  };
});

describe.each(databaseKinds)('row-level security, the second wall (%s)', (kind) => {
  let t: TestMailPilot;
  let alice: Tenant;
  let bob: Tenant;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
    alice = await createTenant(t, 'alice');
    bob = await createTenant(t, 'bob');
    // Some sends on both accounts, so the usage table has rows of each user too.
    const at = new Date('2026-03-02T10:00:00Z');
    for (const tenant of [alice, bob]) {
      const account = tenant.accountId;
      await t.mp.ctx.db.query('INSERT INTO smtp_usage (account_id, minute_start, sent) VALUES ($1, $2, 5)', [account, at]);
      await t.mp.ctx.db.query('INSERT INTO send_holds (account_id, reserved_at, valid_until, remaining) VALUES ($1, $2, $2, 1)', [account, at]);
      await t.mp.ctx.db.query(`INSERT INTO send_days (account_id, day) VALUES ($1, '2026-03-02')`, [account]);
      await t.mp.ctx.db.query(`INSERT INTO recipient_minutes (user_id, domain, minute_start, sent) VALUES ($1, 'rcpt.test', $2, 2)`, [tenant.id, at]);
    }
  });
  afterAll(() => t.close());

  const db = () => t.mp.ctx.db;

  it('keeps answering 404 through the API when the data layer forgets its user filter', async () => {
    const before = await fingerprint(db(), alice.id);
    const key = bob.apiKey;
    const probes: [string, string, unknown?][] = [
      ['GET', `/api/v1/smtp-servers/${alice.serverId}`],
      ['PATCH', `/api/v1/smtp-servers/${alice.serverId}`, { name: 'taken' }],
      ['DELETE', `/api/v1/smtp-servers/${alice.serverId}`],
      ['GET', `/api/v1/lists/${alice.listId}`],
      ['POST', `/api/v1/lists/${alice.listId}/contacts`, { contacts: [{ email: 'planted@example.test' }] }],
      ['GET', `/api/v1/campaigns/${alice.campaignId}`],
      ['GET', `/api/v1/campaigns/${alice.campaignId}/messages`],
      ['GET', `/api/v1/campaigns/${alice.campaignId}/events`],
      ['POST', `/api/v1/campaigns/${alice.draftId}/start`],
      ['POST', `/api/v1/campaigns/${alice.campaignId}/resume`],
      ['POST', `/api/v1/campaigns/${alice.campaignId}/stop`],
    ];
    for (const [method, path, body] of probes) {
      const res = await t.api(method, path, { key, body });
      expect(res.status, `${method} ${path}`).toBe(404);
    }
    const stolen = await t.api('POST', '/api/v1/campaigns', { key, body: { name: 'x', listIds: [alice.listId], subject: 'x', text: 'x' } });
    expect(stolen.status).toBe(422);
    for (const path of ['/api/v1/smtp-servers', '/api/v1/lists', '/api/v1/campaigns']) {
      const items = (await t.api('GET', path, { key })).body.items as { id: number }[];
      expect(items.length, path).toBeGreaterThan(0);
      expect(items.map((i) => i.id), path).not.toContain(path.includes('servers') ? alice.serverId : path.includes('lists') ? alice.listId : alice.campaignId);
    }
    expect(await fingerprint(db(), alice.id)).toEqual(before);
  });

  it("confines a tenant's raw SQL without any user filter to that tenant's rows", async () => {
    const asBob = tenantScope(db(), bob.id);
    for (const [table, mine] of Object.entries(USER_TABLES)) {
      const [seen] = await asBob.query<{ n: number }>(`SELECT count(*) AS n FROM ${table}`);
      const [owned] = await db().query<{ n: number }>(`SELECT count(*) AS n FROM ${table} WHERE ${mine}`, [bob.id]);
      const [all] = await db().query<{ n: number }>(`SELECT count(*) AS n FROM ${table}`);
      expect(seen!.n, table).toBe(owned!.n);
      expect(all!.n, table).toBeGreaterThan(owned!.n);
    }
    const before = await fingerprint(db(), alice.id);
    expect(await asBob.query('UPDATE campaigns SET name = $1 WHERE id = $2 RETURNING id', ['hijacked', alice.campaignId])).toEqual([]);
    expect(await asBob.query('UPDATE smtp_accounts SET hourly_limit = 0 WHERE id = $1 RETURNING id', [alice.accountId])).toEqual([]);
    expect(await asBob.query('DELETE FROM contacts WHERE list_id = $1 RETURNING id', [alice.listId])).toEqual([]);
    expect(await asBob.query('DELETE FROM api_keys WHERE user_id = $1 RETURNING id', [alice.id])).toEqual([]);
    expect(await asBob.query('UPDATE messages SET status = $1 WHERE campaign_id = $2 RETURNING id', ['cancelled', alice.campaignId])).toEqual([]);
    expect(await asBob.query('DELETE FROM smtp_usage WHERE account_id = $1 RETURNING account_id', [alice.accountId])).toEqual([]);
    expect(await fingerprint(db(), alice.id)).toEqual(before);
  });

  it("refuses rows written in another user's name, and answers nothing to the data layer asked for another user", async () => {
    const asBob = tenantScope(db(), bob.id);
    const now = new Date('2026-03-02T10:00:00Z');
    const refused = (p: Promise<unknown>) => expect(p).rejects.toMatchObject({ code: '42501' });
    await refused(asBob.query('INSERT INTO lists (user_id, name, created_at) VALUES ($1, $2, $3)', [alice.id, 'planted', now]));
    await refused(addSuppressions(asBob, alice.id, ['planted@example.test'], 'manual', now));
    await refused(asBob.query('UPDATE lists SET user_id = $1 WHERE id = $2', [alice.id, bob.listId]));
    // The real, filtered functions are mocked here; the mocks forget the user, RLS does not.
    expect(await getServer(asBob, alice.id, alice.serverId)).toBeUndefined();
    expect(await updateServer(asBob, alice.id, alice.serverId, { name: 'x' })).toBeUndefined();
    expect(await deleteServer(asBob, alice.id, alice.serverId)).toBe('not_found');
    expect(await getList(asBob, alice.id, alice.listId)).toBeUndefined();
    expect(await getCampaign(asBob, alice.id, alice.campaignId)).toBeUndefined();
    expect((await listServers(asBob, alice.id, 0, 100)).map((s) => s.id)).toEqual([bob.serverId]);
    expect((await listLists(asBob, alice.id, 0, 100)).map((l) => l.id)).toEqual([bob.listId]);
    expect((await listCampaigns(asBob, alice.id, 0, 100)).map((c) => c.id)).toEqual([bob.campaignId, bob.draftId]);
  });

  it('shows nothing at all to the tenant role when no user is set', async () => {
    const rows = await db().transaction(async (tx) => {
      await tx.query(`SELECT set_config('role', 'mailpilot_tenant', true)`);
      return tx.query<{ n: number }>(`SELECT (SELECT count(*) FROM campaigns) + (SELECT count(*) FROM smtp_accounts) + (SELECT count(*) FROM users) AS n`);
    });
    expect(rows[0]!.n).toBe(0);
  });

  it('walls every table that carries a user_id, forced even for the owner', async () => {
    const tables = await db().query<{ table: string; rls: boolean; forced: boolean; walled: boolean }>(
      `SELECT c.relname AS table, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
              EXISTS (SELECT 1 FROM pg_policies p WHERE p.tablename = c.relname AND p.policyname = 'tenant_wall'
                        AND p.permissive = 'RESTRICTIVE' AND 'mailpilot_tenant' = ANY(p.roles)) AS walled
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r'
          AND (c.relname IN ('users', 'smtp_usage', 'send_holds', 'send_days')
               OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped))
        ORDER BY c.relname`,
    );
    expect(tables.map((t) => t.table)).toEqual(expect.arrayContaining(Object.keys(USER_TABLES)));
    for (const table of tables) expect(table, table.table).toMatchObject({ rls: true, forced: true, walled: true });
  });
});
