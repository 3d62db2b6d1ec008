import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.ts';
import { recordBounce } from '../src/db/deliveryReports.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

const TARGET = 'Target@gdpr.test';

/** Data-protection requests (GDPR articles 15 and 17): everything held about an address, and its erasure. */
describe.each(databaseKinds)('export and erasure of an address (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  const clock = new FakeClock('2026-03-02T10:00:00Z');

  beforeAll(async () => {
    peer = await startSmtpPeer();
    t = await startTestMailPilot(kind, { clock });
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  async function listWith(key: string, name: string, contacts: unknown[]): Promise<number> {
    const list = await must(t, key, 'POST', '/api/v1/lists', { name });
    await must(t, key, 'POST', `/api/v1/lists/${list.id}/contacts`, { contacts });
    return list.id;
  }
  const exportOf = (key: string, email: string) => must(t, key, 'GET', `/api/v1/contacts/export?email=${encodeURIComponent(email)}`);

  it("exports everything held about an address, erases it everywhere for its user with counters right and the suppression kept, and leaves another user's data alone", async () => {
    const alice = await t.createUser('alice');
    const bob = await t.createUser('bob');
    const server = await addServer(t, alice.apiKey, peer.port);
    await addAccount(t, alice.apiKey, server, 'news@shop.test', { hourlyLimit: 2 });
    const first = await listWith(alice.apiKey, 'first', [{ email: TARGET, name: 'Tara Get', attributes: { city: 'Oslo' } }]);
    const second = await listWith(alice.apiKey, 'second', [{ email: 'other@gdpr.test', name: 'Other' }, { email: 'target@GDPR.test', attributes: { plan: 'pro' } }]);
    // Bob holds the same address: his data is his.
    const bobList = await listWith(bob.apiKey, 'bobs', [{ email: TARGET, name: "Bob's contact" }]);
    await must(t, bob.apiKey, 'POST', '/api/v1/suppressions', { email: TARGET, reason: 'manual' });
    const bobBefore = await exportOf(bob.apiKey, TARGET);

    // Campaign one reaches the address; campaign two sends to `other` and then waits for quota, the address still queued.
    const one = await createCampaign(t, alice.apiKey, [first]);
    await must(t, alice.apiKey, 'POST', `/api/v1/campaigns/${one}/start`);
    await waitForCampaign(t, alice.apiKey, one, (c) => c.status === 'completed');
    const two = await createCampaign(t, alice.apiKey, [second]);
    await must(t, alice.apiKey, 'POST', `/api/v1/campaigns/${two}/start`);
    await waitForCampaign(t, alice.apiKey, two, (c) => c.status === 'paused_limits' && c.sent === 1);
    expect(peer.messages.filter((m) => m.rcptTo[0] === TARGET)).toHaveLength(1);
    // What came back for the message that went out (as a DSN and a reply would have recorded it).
    await t.mp.ctx.db.query(
      `UPDATE messages SET bounce_type = 'soft', bounce_status = '4.2.2', bounce_diagnostic = 'mailbox of Target@gdpr.test is full',
                           bounced_at = $2, replied_at = $2, last_error = '452 Target@gdpr.test over quota'
        WHERE campaign_id = $1`,
      [one, new Date('2026-03-02T10:05:00Z')],
    );

    const held = await exportOf(alice.apiKey, 'TARGET@gdpr.test');
    expect(held.contacts.map((c: any) => [c.listId, c.listName, c.email, c.name, c.attributes, c.suppressed])).toEqual([
      [first, 'first', TARGET, 'Tara Get', { city: 'Oslo' }, false],
      [second, 'second', 'target@gdpr.test', null, { plan: 'pro' }, false],
    ]);
    expect(held.messages).toEqual([
      expect.objectContaining({
        campaignId: one,
        campaignName: 'Spring news',
        email: TARGET,
        status: 'sent',
        lastError: '452 Target@gdpr.test over quota',
        bounce: { type: 'soft', status: '4.2.2', diagnostic: 'mailbox of Target@gdpr.test is full' },
        bouncedAt: '2026-03-02T10:05:00.000Z',
        complainedAt: null,
        repliedAt: '2026-03-02T10:05:00.000Z',
      }),
      expect.objectContaining({ campaignId: two, email: 'target@gdpr.test', status: 'pending', bounce: null }),
    ]);
    expect(held.suppression).toBeNull();

    const erased = await t.api('POST', '/api/v1/contacts/erase', { key: alice.apiKey, body: { email: 'target@gdpr.TEST' } });
    expect(erased).toEqual({ status: 200, body: { email: 'target@gdpr.TEST', erasedContacts: 2, erasedMessages: 2, suppressed: true } });

    const after = await exportOf(alice.apiKey, TARGET);
    expect(after).toMatchObject({ contacts: [], messages: [], suppression: { email: 'target@gdpr.test', reason: 'erased' } });
    const rows = await t.mp.ctx.db.query<Record<string, unknown>>(
      `SELECT campaign_id, email, status, last_error, bounce_diagnostic, merge FROM messages WHERE campaign_id = ANY($1::int[]) ORDER BY id`,
      [[one, two]],
    );
    expect(rows).toEqual([
      { campaign_id: one, email: '', status: 'sent', last_error: null, bounce_diagnostic: null, merge: null },
      { campaign_id: two, email: 'other@gdpr.test', status: 'sent', last_error: null, bounce_diagnostic: null, merge: null },
      { campaign_id: two, email: '', status: 'suppressed', last_error: null, bounce_diagnostic: null, merge: null },
    ]);
    const [rawHits] = await t.mp.ctx.db.query<{ n: number }>(
      `SELECT (SELECT count(*) FROM contacts WHERE user_id = $1 AND lower(email) = 'target@gdpr.test')
            + (SELECT count(*) FROM messages WHERE user_id = $1 AND (lower(email) = 'target@gdpr.test' OR bounce_diagnostic ILIKE '%target@%' OR last_error ILIKE '%target@%')) AS n`,
      [(await must(t, alice.apiKey, 'GET', '/api/v1/me')).id],
    );
    expect(rawHits!.n).toBe(0);
    // A bounce that arrives after the erasure is counted, but its text (which quotes the address) is not kept.
    const [erasedMessage] = await t.mp.ctx.db.query<{ id: number }>('SELECT id FROM messages WHERE campaign_id = $1', [one]);
    await t.mp.ctx.db.transaction((tx) =>
      recordBounce(
        tx,
        { id: erasedMessage!.id, campaignId: one, accountId: null, email: '', status: 'sent', sentAt: null, bounceType: 'soft', complainedAt: null, repliedAt: null },
        { type: 'hard', status: '5.1.1', diagnostic: '550 5.1.1 <Target@gdpr.test>: no such user', at: new Date('2026-03-02T11:00:00Z') },
        'bounced: 550 5.1.1 <Target@gdpr.test>: no such user',
      ),
    );
    expect((await t.mp.ctx.db.query('SELECT status, bounce_type, bounce_diagnostic, last_error FROM messages WHERE id = $1', [erasedMessage!.id]))[0]).toEqual({
      status: 'failed',
      bounce_type: 'hard',
      bounce_diagnostic: null,
      last_error: null,
    });
    expect(await must(t, alice.apiKey, 'GET', `/api/v1/campaigns/${one}`)).toMatchObject({ total: 1, sent: 0, failed: 1, bounced: 1 });
    // Counters still add up: the waiting message counts as suppressed, and that finished the campaign.
    expect(await must(t, alice.apiKey, 'GET', `/api/v1/campaigns/${two}`)).toMatchObject({ status: 'completed', total: 2, sent: 1, suppressed: 1, pending: 0 });
    expect(await must(t, alice.apiKey, 'GET', `/api/v1/campaigns/${one}`)).toMatchObject({ status: 'completed', total: 1, failed: 1, pending: 0 });
    expect((await must(t, alice.apiKey, 'GET', `/api/v1/lists/${first}`)).contactCount).toBe(0);
    expect((await must(t, alice.apiKey, 'GET', `/api/v1/lists/${second}`)).contactCount).toBe(1);

    // Never mailed again: imported anew, the address is suppressed when the next queue is built.
    await must(t, alice.apiKey, 'POST', `/api/v1/lists/${first}/contacts`, { contacts: [{ email: TARGET }] });
    const three = await createCampaign(t, alice.apiKey, [first]);
    await must(t, alice.apiKey, 'POST', `/api/v1/campaigns/${three}/start`);
    expect(await waitForCampaign(t, alice.apiKey, three, (c) => c.status === 'completed')).toMatchObject({ total: 1, sent: 0, suppressed: 1 });
    expect(peer.messages.filter((m) => m.rcptTo[0]!.toLowerCase() === TARGET.toLowerCase())).toHaveLength(1);

    // Bob's contact, list and suppression are as they were.
    expect(await exportOf(bob.apiKey, TARGET)).toEqual({ ...bobBefore, exportedAt: expect.any(String) });
    expect((await must(t, bob.apiKey, 'GET', `/api/v1/lists/${bobList}`)).contactCount).toBe(1);
  });

  it('erases an address it holds nothing of by suppressing it, and refuses a malformed one', async () => {
    const carol = await t.createUser('carol');
    expect(await must(t, carol.apiKey, 'POST', '/api/v1/contacts/erase', { email: 'never@seen.test' })).toEqual({
      email: 'never@seen.test',
      erasedContacts: 0,
      erasedMessages: 0,
      suppressed: true,
    });
    expect((await must(t, carol.apiKey, 'GET', '/api/v1/suppressions?email=never@seen.test')).items).toMatchObject([{ reason: 'erased' }]);
    expect((await t.api('POST', '/api/v1/contacts/erase', { key: carol.apiKey, body: { email: 'nope' } })).status).toBe(422);
    expect((await t.api('GET', '/api/v1/contacts/export', { key: carol.apiKey })).status).toBe(422);
    expect((await t.api('POST', '/api/v1/contacts/erase', { key: t.adminKey, body: { email: 'a@b.test' } })).status).toBe(403);
  });
});
