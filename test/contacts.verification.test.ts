import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './helpers/db.ts';
import { startDnsServer, type DnsServer } from './helpers/dnsServer.ts';
import { addAccount, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

/**
 * Address verification against real DNS servers on loopback: one answering MX, A and NXDOMAIN,
 * one that never answers. Never the internet.
 */
describe.each(databaseKinds)('address verification (%s)', (kind) => {
  let dns: DnsServer;
  let silentDns: DnsServer;
  let peer: SmtpPeer;
  let t: TestMailPilot;
  let deaf: TestMailPilot;
  let key: string;

  beforeAll(async () => {
    dns = await startDnsServer();
    silentDns = await startDnsServer({ silent: true });
    dns.setMx('mx.test', ['mail.mx.test']);
    dns.set('mail.mx.test', ['192.0.2.10']);
    dns.set('aonly.test', ['192.0.2.20']);
    dns.setMx('nullmx.test', ['.']);
    dns.setMx('mailinator.com', ['mail.mailinator.com']);
    peer = await startSmtpPeer();
    t = await startTestMailPilot(kind, { config: { dnsServers: [dns.address] } });
    deaf = await startTestMailPilot(kind, { engine: false, config: { dnsServers: [silentDns.address] } });
    key = (await t.createUser('ada')).apiKey;
  });
  afterAll(async () => {
    await Promise.all([t.close(), deaf.close()]);
    await Promise.all([dns.close(), silentDns.close(), peer.close()]);
  });

  async function listOf(api: TestMailPilot, apiKey: string, emails: string[], query = ''): Promise<{ listId: number; reply: any }> {
    const list = await must(api, apiKey, 'POST', '/api/v1/lists', { name: 'verify' });
    const csv = ['email', ...emails].join('\n') + '\n';
    const reply = await api.api('POST', `/api/v1/lists/${list.id}/contacts${query}`, { key: apiKey, body: csv, contentType: 'text/csv' });
    expect(reply.status).toBe(200);
    return { listId: list.id, reply: reply.body };
  }
  async function contactsOf(api: TestMailPilot, apiKey: string, listId: number): Promise<any[]> {
    const ids = await api.mp.ctx.db.query<{ id: number }>('SELECT id FROM contacts WHERE list_id = $1 ORDER BY id', [listId]);
    return Promise.all(ids.map((r) => must(api, apiKey, 'GET', `/api/v1/lists/${listId}/contacts/${r.id}`)));
  }

  it('verifies on demand: MX, A only, null MX, NXDOMAIN, disposable and role addresses, with suppression read live', async () => {
    const emails = ['ann@mx.test', 'bob@aonly.test', 'cat@nullmx.test', 'dan@nxdomain.test', 'eve@mailinator.com', 'info@mx.test', 'Postmaster+x@MX.test'];
    const { listId } = await listOf(t, key, emails);
    const before = await contactsOf(t, key, listId);
    expect(before.map((c) => c.verification)).toEqual(emails.map(() => null));
    await must(t, key, 'POST', '/api/v1/suppressions', { email: 'bob@aonly.test' });
    const verified = await Promise.all(before.map((c) => must(t, key, 'POST', `/api/v1/lists/${listId}/contacts/${c.id}/verify`)));
    expect(verified.map((c) => [c.email, c.verification.status, c.verification.reasons, c.verification.checks.domain, c.suppressed])).toEqual([
      ['ann@mx.test', 'deliverable', [], 'mx', false],
      ['bob@aonly.test', 'deliverable', [], 'address', true],
      ['cat@nullmx.test', 'undeliverable', ['no_mail_domain'], 'none', false],
      ['dan@nxdomain.test', 'undeliverable', ['no_mail_domain'], 'none', false],
      ['eve@mailinator.com', 'risky', ['disposable_domain'], 'mx', false],
      ['info@mx.test', 'risky', ['role_address'], 'mx', false],
      ['Postmaster+x@mx.test', 'risky', ['role_address'], 'mx', false],
    ]);
    expect(verified[0].verification).toEqual({
      status: 'deliverable',
      reasons: [],
      checks: { syntax: true, domain: 'mx', disposable: false, role: false },
      checkedAt: '2026-03-02T10:00:00.000Z',
    });
    // Kept on the contact; the suppression state is read when asked, not stored.
    await t.api('DELETE', '/api/v1/suppressions?email=bob@aonly.test', { key });
    const bob = (await contactsOf(t, key, listId))[1];
    expect(bob).toMatchObject({ suppressed: false, verification: { status: 'deliverable' } });
  });

  it('verifies on import when asked, asking DNS once per domain however many rows share it', async () => {
    const queriesBefore = dns.queries.filter((q) => q === 'many.test').length;
    dns.setMx('many.test', ['mx.many.test']);
    const emails = [...Array.from({ length: 300 }, (_, i) => `p${i}@many.test`), 'x@gone.test', 'sales@many.test'];
    const { listId, reply } = await listOf(t, key, emails, '?verify=true');
    expect(reply).toMatchObject({ added: 302, invalidCount: 0 });
    expect(dns.queries.filter((q) => q === 'many.test').length - queriesBefore).toBe(1);
    const rows = await t.mp.ctx.db.query<{ email: string; status: string }>(
      `SELECT email, verification->>'status' AS status FROM contacts WHERE list_id = $1 ORDER BY id`,
      [listId],
    );
    expect(rows.filter((r) => r.status === 'deliverable')).toHaveLength(300);
    expect(rows.slice(300)).toEqual([
      { email: 'x@gone.test', status: 'undeliverable' },
      { email: 'sales@many.test', status: 'risky' },
    ]);
    // Without the flag, nothing is verified and what was kept stays.
    const again = await t.api('POST', `/api/v1/lists/${listId}/contacts`, { key, body: 'email\nx@gone.test\n', contentType: 'text/csv' });
    expect(again.body).toMatchObject({ updated: 1 });
    expect((await t.mp.ctx.db.query(`SELECT verification->>'status' AS s FROM contacts WHERE list_id = $1 AND email = 'x@gone.test'`, [listId]))[0]).toEqual({ s: 'undeliverable' });
    expect((await t.api('POST', `/api/v1/lists/${listId}/contacts?verify=yes`, { key, body: 'email\n', contentType: 'text/csv' })).status).toBe(422);
  });

  it('verifies a whole list a page at a time', async () => {
    const { listId } = await listOf(t, key, ['one@mx.test', 'two@nxdomain.test', 'info@aonly.test', 'four@mx.test', 'five@mailinator.com']);
    const first = await must(t, key, 'POST', `/api/v1/lists/${listId}/verify?limit=2`);
    expect(first).toEqual({ verified: 2, deliverable: 1, undeliverable: 1, risky: 0, unknown: 0, next: expect.any(Number) });
    const rest = await must(t, key, 'POST', `/api/v1/lists/${listId}/verify?limit=10&after=${first.next}`);
    expect(rest).toEqual({ verified: 3, deliverable: 1, undeliverable: 0, risky: 2, unknown: 0, next: null });
    const stored = await t.mp.ctx.db.query<{ s: string }>(`SELECT verification->>'status' AS s FROM contacts WHERE list_id = $1 ORDER BY id`, [listId]);
    expect(stored.map((r) => r.s)).toEqual(['deliverable', 'undeliverable', 'risky', 'deliverable', 'risky']);
    expect((await t.api('POST', `/api/v1/lists/${listId}/verify?limit=10001`, { key })).status).toBe(422);
    expect((await t.api('POST', '/api/v1/lists/999999/verify', { key })).status).toBe(404);
  });

  it('skips undeliverable addresses in a campaign that asks to, counted as skipped with the reason', async () => {
    const server = await addServer(t, key, peer.port);
    await addAccount(t, key, server, 'news@shop.test');
    const { listId } = await listOf(t, key, ['ok1@mx.test', 'no@nxdomain.test', 'null@nullmx.test', 'ok2@aonly.test', 'eve@mailinator.com'], '?verify=true');
    const skipping = await createCampaign(t, key, [listId], { skipUndeliverable: true });
    expect((await must(t, key, 'GET', `/api/v1/campaigns/${skipping}`)).skipUndeliverable).toBe(true);
    await must(t, key, 'POST', `/api/v1/campaigns/${skipping}/start`);
    const done = await waitForCampaign(t, key, skipping, (c) => c.status === 'completed');
    expect(done).toMatchObject({ total: 3, sent: 3, failed: 0, suppressed: 0, pending: 0, skipped: 2, skippedReasons: { no_mail_domain: 2 } });
    const received = peer.messages.filter((m) => m.headers.get('x-mailpilot-campaign') === String(skipping)).map((m) => m.rcptTo[0]);
    expect(received.sort()).toEqual(['eve@mailinator.com', 'ok1@mx.test', 'ok2@aonly.test']);

    const everyone = await createCampaign(t, key, [listId]);
    await must(t, key, 'POST', `/api/v1/campaigns/${everyone}/start`);
    expect(await waitForCampaign(t, key, everyone, (c) => c.status === 'completed')).toMatchObject({ total: 5, skipped: 0, skippedReasons: {} });
  });

  it('degrades to unknown, within the lookup timeout, when the DNS server never answers', async () => {
    const deafKey = (await deaf.createUser('deaf')).apiKey;
    const started = Date.now();
    const { listId, reply } = await listOf(deaf, deafKey, ['a@silent-one.test', 'b@silent-two.test', 'info@silent-one.test'], '?verify=true');
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(reply).toMatchObject({ added: 3, invalidCount: 0 });
    const contacts = await contactsOf(deaf, deafKey, listId);
    expect(contacts.map((c) => [c.verification.status, c.verification.reasons])).toEqual([
      ['unknown', ['dns_unanswered']],
      ['unknown', ['dns_unanswered']],
      ['risky', ['dns_unanswered', 'role_address']],
    ]);
    expect(silentDns.queries).toContain('silent-one.test');
    const onDemand = await must(deaf, deafKey, 'POST', `/api/v1/lists/${listId}/contacts/${contacts[1].id}/verify`);
    expect(onDemand.verification).toMatchObject({ status: 'unknown', checks: { domain: 'unknown' } });
  });
});
