import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCampaign } from '../src/campaigns/lifecycle.ts';
import { FakeClock } from '../src/clock.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addList, addServer, createCampaign, must, waitForCampaign, waitForIdleEngine } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

const HOUR = 60 * 60 * 1000;

describe.each(databaseKinds)('scheduled campaigns start at their time, and can be moved or cancelled first (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  let key: string;
  let userId: number;
  let listId: number;
  const clock = new FakeClock('2026-03-02T10:00:00Z');
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { clock });
    peer = await startSmtpPeer();
    ({ apiKey: key, id: userId } = await t.createUser());
    await addAccount(t, key, await addServer(t, key, peer.port), 'sched@sender.test');
    listId = await addList(t, key, 3, 'sched.test');
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  const at = (ms: number) => new Date(clock.now().getTime() + ms).toISOString();
  const get = (id: number) => must(t, key, 'GET', `/api/v1/campaigns/${id}`);
  const patch = (id: number, body: unknown) => t.api('PATCH', `/api/v1/campaigns/${id}`, { key, body });
  /** Lets the engine act on the clock's new time, then checks nothing is still in flight. */
  const settle = async () => {
    await t.mp.engine!.wake();
    await waitForIdleEngine(t);
  };

  it('starts a scheduled campaign by timer at its moment, not before', async () => {
    const due = at(2 * HOUR);
    const created = await must(t, key, 'POST', '/api/v1/campaigns', {
      name: 'later',
      listIds: [listId],
      subject: 'Hi {{name}}',
      text: 'Hello',
      scheduledAt: due,
    });
    expect(created).toMatchObject({ status: 'scheduled', scheduledAt: due, total: 0 });
    const before = peer.messages.length;

    clock.advance(2 * HOUR - 1000);
    await settle();
    expect(await get(created.id)).toMatchObject({ status: 'scheduled', startedAt: null });
    expect(peer.messages.length).toBe(before);

    clock.advance(1000);
    const done = await waitForCampaign(t, key, created.id, (c) => c.status === 'completed');
    expect(done).toMatchObject({ total: 3, sent: 3, startedAt: due });
    expect(peer.messages.length).toBe(before + 3);
  });

  it('reschedules: the old moment passes quietly, the new one starts it', async () => {
    const id = await createCampaign(t, key, [listId], { scheduledAt: at(HOUR) });
    const later = at(3 * HOUR);
    const moved = await patch(id, { scheduledAt: later });
    expect(moved).toMatchObject({ status: 200, body: { status: 'scheduled', scheduledAt: later } });

    clock.advance(HOUR);
    await settle();
    expect((await get(id)).status).toBe('scheduled');
    clock.advance(2 * HOUR);
    expect(await waitForCampaign(t, key, id, (c) => c.status === 'completed')).toMatchObject({ sent: 3, startedAt: later });
  });

  it('cancels a schedule (back to draft) or stops a scheduled campaign for good', async () => {
    const drafted = await createCampaign(t, key, [listId], { scheduledAt: at(HOUR) });
    expect((await patch(drafted, { scheduledAt: null })).body).toMatchObject({ status: 'draft', scheduledAt: null });
    const stopped = await createCampaign(t, key, [listId], { scheduledAt: at(HOUR) });
    expect((await must(t, key, 'POST', `/api/v1/campaigns/${stopped}/stop`)).status).toBe('stopped');
    const before = peer.messages.length;

    clock.advance(2 * HOUR);
    await settle();
    expect((await get(drafted)).status).toBe('draft');
    expect((await get(stopped)).status).toBe('stopped');
    expect(peer.messages.length).toBe(before);

    // A draft can be scheduled again, and started by hand at any time.
    expect((await patch(drafted, { scheduledAt: at(HOUR), name: 'renamed' })).body).toMatchObject({ status: 'scheduled', name: 'renamed' });
    expect((await must(t, key, 'POST', `/api/v1/campaigns/${drafted}/start`)).status).toMatch(/running|completed/);
    await waitForCampaign(t, key, drafted, (c) => c.status === 'completed');
  });

  it('changes nothing once a campaign has started (409), and a late scheduler pass does not start a moved campaign', async () => {
    const done = await createCampaign(t, key, [listId]);
    await must(t, key, 'POST', `/api/v1/campaigns/${done}/start`);
    await waitForCampaign(t, key, done, (c) => c.status === 'completed');
    for (const body of [{ scheduledAt: at(HOUR) }, { subject: 'changed' }, { listIds: [listId] }]) {
      const res = await patch(done, body);
      expect(res).toMatchObject({ status: 409, body: { error: { code: 'invalid_state', message: 'cannot change a campaign that is completed' } } });
    }
    expect((await patch(999_999, { name: 'x' })).status).toBe(404);
    const other = await t.createUser();
    expect((await t.api('PATCH', `/api/v1/campaigns/${done}`, { key: other.apiKey, body: { name: 'x' } })).status).toBe(404);

    // The scheduler read the campaign as due, then the user moved it: the start must not happen.
    const moved = await createCampaign(t, key, [listId], { scheduledAt: at(HOUR) });
    const readAt = new Date(clock.now().getTime() + HOUR);
    await patch(moved, { scheduledAt: at(5 * HOUR) });
    const result = await startCampaign(t.mp.ctx, userId, moved, { dueBy: readAt });
    expect(result.status).toBe('scheduled');
    expect((await patch(moved, { scheduledAt: 'tomorrow' })).status).toBe(422);
  });
});
