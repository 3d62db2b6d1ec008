import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

/** Lists and contacts over their whole life: change, find, delete, with campaigns that use them. */
describe.each(databaseKinds)('contacts over their lifecycle (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  const clock = new FakeClock('2026-03-02T10:00:00Z');
  let alice: { id: number; apiKey: string };
  let bob: { id: number; apiKey: string };

  beforeAll(async () => {
    peer = await startSmtpPeer();
    t = await startTestMailPilot(kind, { clock });
    alice = await t.createUser('alice');
    bob = await t.createUser('bob');
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  async function listWith(key: string, contacts: unknown[], name = 'people'): Promise<number> {
    const list = await must(t, key, 'POST', '/api/v1/lists', { name });
    await must(t, key, 'POST', `/api/v1/lists/${list.id}/contacts`, { contacts });
    return list.id;
  }
  const contactIds = async (listId: number) =>
    (await t.mp.ctx.db.query<{ id: number; email: string }>('SELECT id, email FROM contacts WHERE list_id = $1 ORDER BY id', [listId])).map((r) => r.id);

  it('reads, changes and deletes one contact, with the import caps and the contact count kept', async () => {
    const listId = await listWith(alice.apiKey, [
      { email: 'ann@example.com', name: 'Ann', attributes: { city: 'Paris' } },
      { email: 'ben@example.com' },
    ]);
    const [ann, ben] = await contactIds(listId);
    const got = await t.api('GET', `/api/v1/lists/${listId}/contacts/${ann}`, { key: alice.apiKey });
    expect(got).toEqual({
      status: 200,
      body: {
        id: ann,
        listId,
        listName: 'people',
        email: 'ann@example.com',
        name: 'Ann',
        attributes: { city: 'Paris' },
        verification: null,
        suppressed: false,
        createdAt: '2026-03-02T10:00:00.000Z',
      },
    });

    const patched = await t.api('PATCH', `/api/v1/lists/${listId}/contacts/${ann}`, {
      key: alice.apiKey,
      body: { email: ' Ann.Lee@EXAMPLE.com ', name: 'Ann Lee', attributes: { city: 'Lyon', vip: true } },
    });
    expect(patched.body).toMatchObject({ email: 'Ann.Lee@example.com', name: 'Ann Lee', attributes: { city: 'Lyon', vip: true } });
    expect((await t.api('PATCH', `/api/v1/lists/${listId}/contacts/${ann}`, { key: alice.apiKey, body: { name: null } })).body.name).toBeNull();

    for (const [body, message] of [
      [{ name: 'Eve\r\nBcc: x@example.com' }, /^name: must not contain control characters/],
      [{ name: 'Shop\u202Egnp.exe' }, /^name: must not contain bidirectional/],
      [{ attributes: Object.fromEntries(Array.from({ length: 201 }, (_, i) => [`a${i}`, 1])) }, /^attributes: more than 200 attributes/],
      [{ attributes: { k: 'x'.repeat(10_001) } }, /^attributes\.k: longer than 10000 characters/],
      [{ attributes: { nested: { a: 1 } } }, /^attributes\.nested: /],
      [{ email: 'not-an-address' }, /^email: /],
      [{ phone: '1' }, /phone/],
    ] as const) {
      const res = await t.api('PATCH', `/api/v1/lists/${listId}/contacts/${ann}`, { key: alice.apiKey, body });
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(422);
      expect(res.body.error.message).toMatch(message);
    }
    const duplicate = await t.api('PATCH', `/api/v1/lists/${listId}/contacts/${ann}`, { key: alice.apiKey, body: { email: 'BEN@example.com' } });
    expect(duplicate).toMatchObject({ status: 409, body: { error: { code: 'duplicate_contact' } } });

    expect((await t.api('DELETE', `/api/v1/lists/${listId}/contacts/${ben}`, { key: alice.apiKey })).status).toBe(204);
    expect((await t.api('GET', `/api/v1/lists/${listId}/contacts/${ben}`, { key: alice.apiKey })).status).toBe(404);
    expect((await t.api('DELETE', `/api/v1/lists/${listId}/contacts/${ben}`, { key: alice.apiKey })).status).toBe(404);
    expect((await must(t, alice.apiKey, 'GET', `/api/v1/lists/${listId}`)).contactCount).toBe(1);
  });

  it("finds an address on every list of its user, and never another user's", async () => {
    const first = await listWith(alice.apiKey, [{ email: 'Zoe@find.test', name: 'Zoe' }], 'first');
    const second = await listWith(alice.apiKey, [{ email: 'zoe@FIND.test', attributes: { plan: 'pro' } }, { email: 'other@find.test' }], 'second');
    await listWith(bob.apiKey, [{ email: 'zoe@find.test', name: "Bob's Zoe" }], 'bobs');
    const found = await must(t, alice.apiKey, 'GET', '/api/v1/contacts?email=ZOE@find.test');
    expect(found.next).toBeNull();
    expect(found.items.map((c: any) => [c.listId, c.listName, c.email, c.name])).toEqual([
      [first, 'first', 'Zoe@find.test', 'Zoe'],
      [second, 'second', 'zoe@find.test', null],
    ]);
    expect((await must(t, alice.apiKey, 'GET', '/api/v1/contacts?email=nobody@find.test')).items).toEqual([]);
    expect((await t.api('GET', '/api/v1/contacts?email=nonsense', { key: alice.apiKey })).status).toBe(422);
    expect((await t.api('GET', '/api/v1/contacts', { key: alice.apiKey })).status).toBe(422);
  });

  it("answers 404 for another user's list and contacts on every route, changing nothing", async () => {
    const listId = await listWith(alice.apiKey, [{ email: 'private@example.com', name: 'Private' }]);
    const [id] = await contactIds(listId);
    for (const [method, path, body] of [
      ['GET', `/api/v1/lists/${listId}/contacts/${id}`, undefined],
      ['PATCH', `/api/v1/lists/${listId}/contacts/${id}`, { name: 'Hijacked' }],
      ['DELETE', `/api/v1/lists/${listId}/contacts/${id}`, undefined],
      ['POST', `/api/v1/lists/${listId}/contacts/${id}/verify`, undefined],
      ['DELETE', `/api/v1/lists/${listId}`, undefined],
    ] as const) {
      expect((await t.api(method, path, { key: bob.apiKey, body })).status, `${method} ${path}`).toBe(404);
    }
    // A contact of the user's own list, named through another list id, is not found either.
    const bobList = await listWith(bob.apiKey, [{ email: 'b@example.com' }]);
    expect((await t.api('GET', `/api/v1/lists/${bobList}/contacts/${id}`, { key: bob.apiKey })).status).toBe(404);
    expect((await must(t, alice.apiKey, 'GET', `/api/v1/lists/${listId}/contacts/${id}`)).name).toBe('Private');
  });

  it('refuses to delete a list a campaign that has not started uses (409), then deletes it with its contacts', async () => {
    const listId = await listWith(alice.apiKey, [{ email: 'a@del.test' }, { email: 'b@del.test' }]);
    const draft = await createCampaign(t, alice.apiKey, [listId]);
    const refused = await t.api('DELETE', `/api/v1/lists/${listId}`, { key: alice.apiKey });
    expect(refused).toMatchObject({ status: 409, body: { error: { code: 'list_in_use', message: expect.stringContaining(`campaigns ${draft} have not started`) } } });
    expect((await must(t, alice.apiKey, 'GET', `/api/v1/lists/${listId}`)).contactCount).toBe(2);

    await must(t, alice.apiKey, 'POST', `/api/v1/campaigns/${draft}/stop`);
    expect((await t.api('DELETE', `/api/v1/lists/${listId}`, { key: alice.apiKey })).status).toBe(204);
    expect((await t.api('GET', `/api/v1/lists/${listId}`, { key: alice.apiKey })).status).toBe(404);
    expect(await contactIds(listId)).toEqual([]);
    expect((await t.api('DELETE', `/api/v1/lists/${listId}`, { key: alice.apiKey })).status).toBe(404);
  });

  it('keeps the queue of a started campaign when its list is deleted: every recipient still gets their own message', async () => {
    const key = (await t.createUser('sender')).apiKey;
    const server = await addServer(t, key, peer.port);
    // One send an hour: the rest of the queue waits while the list goes away.
    await addAccount(t, key, server, 'news@shop.test', { hourlyLimit: 1 });
    const contacts = Array.from({ length: 3 }, (_, i) => ({ email: `keep${i}@rcpt.test`, name: `Keeper ${i}`, attributes: { city: `Town${i}` } }));
    const listId = await listWith(key, contacts);
    const campaign = await createCampaign(t, key, [listId]);
    await must(t, key, 'POST', `/api/v1/campaigns/${campaign}/start`);
    await waitForCampaign(t, key, campaign, (c) => c.status === 'paused_limits' && c.sent === 1);

    expect((await t.api('DELETE', `/api/v1/lists/${listId}`, { key })).status).toBe(204);
    expect(await contactIds(listId)).toEqual([]);
    for (let hour = 1; hour <= 2; hour++) {
      clock.advance(60 * 60_000);
      await waitForCampaign(t, key, campaign, (c) => c.sent === hour + 1);
    }
    const done = await waitForCampaign(t, key, campaign, (c) => c.status === 'completed');
    expect(done).toMatchObject({ total: 3, sent: 3, failed: 0 });
    const received = peer.messages.filter((m) => m.rcptTo[0]!.startsWith('keep')).map((m) => [m.rcptTo[0], m.headers.get('subject')]);
    expect(received.sort()).toEqual(contacts.map((c) => [c.email, `Hello ${c.name}`]));
    for (const c of contacts) expect(peer.messages.find((m) => m.rcptTo[0] === c.email)!.raw).toContain(`Hi ${c.name} from ${c.attributes.city}`);
  });
});
