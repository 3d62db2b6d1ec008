import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.ts';
import { RECONNECT_BASE_MS } from '../src/engine/sessionBackOff.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addList, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { allMessages, deliveries, waitFor } from './helpers/outcomes.ts';
import { type SmtpPeer, smtpPeers } from './helpers/smtpPeer.ts';

/**
 * Replies that end a session rather than the account's sending (421, 452 4.5.3, 432 4.3.2): the
 * account reconnects after a short back-off and carries on, with no cool-down, so nothing here
 * needs business time to pass; only a server that refuses session after session gets the long,
 * growing cool-down.
 */

const START = '2026-03-02T10:00:00Z';
const SECOND = 1000;
const iso = (ms: number) => new Date(ms).toISOString();

describe.each(databaseKinds)('sessions the server ends (%s)', (kind) => {
  let t: TestMailPilot;
  const clock = new FakeClock(START);
  const peers = smtpPeers();
  const peer = peers.start;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { clock });
  });
  afterAll(async () => {
    await t.close();
    await peers.closeAll();
  });

  const account = async (key: string, id: number) => must(t, key, 'GET', `/api/v1/smtp-accounts/${id}`);

  /** Everything delivered exactly once, nothing charged an attempt, without business time passing. */
  async function expectDeliveredOnce(key: string, cid: number, p: SmtpPeer, total: number, t0: number): Promise<void> {
    const done = await waitForCampaign(t, key, cid, (c) => c.status === 'completed');
    expect(done).toMatchObject({ sent: total, failed: 0, pending: 0 });
    expect(clock.now().getTime()).toBe(t0);
    const counts = deliveries(p);
    expect(counts.size).toBe(total);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    for (const m of await allMessages(t, key, cid)) expect(m).toMatchObject({ status: 'sent', attempts: 1 });
  }

  it('Gmail 421 4.7.0 "Try again later" now and then: the account reconnects and carries on, healthy', async () => {
    let transactions = 0;
    const p = await peer({
      onMailFrom: () => (++transactions % 10 === 0 ? { code: 421, message: '4.7.0 Try again later, closing connection.' } : undefined),
    });
    const { apiKey } = await t.createUser();
    const id = await addAccount(t, apiKey, await addServer(t, apiKey, p.port, 2), 'gmail@ends.test');
    const cid = await createCampaign(t, apiKey, [await addList(t, apiKey, 60, 'gmail.test')]);
    const t0 = clock.now().getTime();
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${cid}/start`);
    await expectDeliveredOnce(apiKey, cid, p, 60, t0);
    expect(transactions).toBeGreaterThanOrEqual(66);
    expect((await account(apiKey, id)).health).toEqual({ state: 'healthy' });
  });

  it('421 to every 50th recipient (the rest accepted): finished with no cool-down at all, nothing lost or doubled', async () => {
    let recipients = 0;
    let refusals = 0;
    const p = await peer({
      lean: true,
      onRcpt: () => {
        if (++recipients % 50 !== 0) return undefined;
        refusals++;
        return { code: 421, message: '4.7.0 Try again later, closing connection.' };
      },
    });
    const { apiKey } = await t.createUser();
    const serverId = await addServer(t, apiKey, p.port, 4);
    const accounts = [await addAccount(t, apiKey, serverId, 'one@ends.test'), await addAccount(t, apiKey, serverId, 'two@ends.test')];
    const cid = await createCampaign(t, apiKey, [await addList(t, apiKey, 1000, 'fifty.test')]);
    const t0 = clock.now().getTime();
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${cid}/start`);
    await expectDeliveredOnce(apiKey, cid, p, 1000, t0);
    expect(refusals).toBeGreaterThanOrEqual(20);
    for (const id of accounts) expect((await account(apiKey, id)).health).toEqual({ state: 'healthy' });
  });

  it('421 to every attempt: reconnects back off 50, 100, 200, 400 ms, then the account cools down 30 s, 60 s, 120 s, each exact and followed by resumeAt', async () => {
    let refusing = true;
    const p = await peer({ onMailFrom: () => (refusing ? { code: 421, message: '4.7.0 Try again later, closing connection.' } : undefined) });
    const { apiKey } = await t.createUser();
    const id = await addAccount(t, apiKey, await addServer(t, apiKey, p.port, 1), 'refused@ends.test');
    const cid = await createCampaign(t, apiKey, [await addList(t, apiKey, 5, 'refused.test')]);
    let now = clock.now().getTime();
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${cid}/start`);

    /** The account is throttled until `until`, and the campaign waits for exactly that. */
    const expectCoolDown = async (until: number) => {
      const c = await waitForCampaign(t, apiKey, cid, (x) => x.status === 'paused_limits' && x.resumeAt === iso(until));
      expect(c).toMatchObject({ sent: 0, pending: 5 });
      expect((await account(apiKey, id)).health).toEqual({
        state: 'throttled',
        until: iso(until),
        reason: 'the server ended 5 sessions in a row without taking a message; last: 421 4.7.0 Try again later, closing connection.',
        recovery: { until: iso(until + 10 * 60 * SECOND), connections: 1 },
      });
    };

    await expectCoolDown(now + 30 * SECOND);
    // Five sessions, each opened after a wait twice the last.
    expect(p.connectedAt).toHaveLength(5);
    const gaps = p.connectedAt.slice(1).map((at, i) => at - p.connectedAt[i]!);
    gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(RECONNECT_BASE_MS * 2 ** i));

    // Out of the cool-down, one more refusal is the last straw at once: the next cool-down doubles.
    for (const coolDown of [60, 120]) {
      now += (coolDown / 2) * SECOND;
      clock.set(new Date(now));
      await t.mp.engine!.wake();
      const connections = p.connectedAt.length;
      await expectCoolDown(now + coolDown * SECOND);
      expect(p.connectedAt).toHaveLength(connections + 1);
    }

    // The server takes mail again: the account resumes when its cool-down ends, with one connection.
    refusing = false;
    clock.set(new Date(now + 120 * SECOND));
    await t.mp.engine!.wake();
    const done = await waitForCampaign(t, apiKey, cid, (c) => c.status === 'completed');
    expect(done).toMatchObject({ sent: 5, failed: 0 });
    expect(deliveries(p).size).toBe(5);
    for (const m of await allMessages(t, apiKey, cid)) expect(m.attempts).toBe(1);
    expect((await account(apiKey, id)).health).toMatchObject({ state: 'healthy' });
  });

  it('452 4.5.3 "Too many recipients" (a session allows 10): the account opens a new session and carries on', async () => {
    const perSession = new Map<string, number>();
    const p = await peer({
      onRcpt: (_address, session) => {
        const n = (perSession.get(session.id) ?? 0) + 1;
        perSession.set(session.id, n);
        return n > 10 ? { code: 452, message: '4.5.3 Too many recipients' } : undefined;
      },
    });
    const { apiKey } = await t.createUser();
    const id = await addAccount(t, apiKey, await addServer(t, apiKey, p.port, 2), 'many@ends.test');
    const cid = await createCampaign(t, apiKey, [await addList(t, apiKey, 50, 'many.test')]);
    const t0 = clock.now().getTime();
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${cid}/start`);
    await expectDeliveredOnce(apiKey, cid, p, 50, t0);
    expect(p.connectedAt.length).toBeGreaterThanOrEqual(5);
    expect((await account(apiKey, id)).health).toEqual({ state: 'healthy' });
  });

  it('Exchange Online 432 4.3.2 (more than 3 connections): the account keeps to 3 or fewer, for good', async () => {
    let refusals = 0;
    const p = await peer({
      dataDelayMs: 20,
      onMailFrom: () => {
        if (p.openSessions <= 3) return undefined;
        refusals++;
        return { code: 432, message: '4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded [Hostname=AM0PR01MB1234]' };
      },
    });
    const { apiKey } = await t.createUser();
    const id = await addAccount(t, apiKey, await addServer(t, apiKey, p.port, 8), 'exchange@ends.test');
    const list = await addList(t, apiKey, 60, 'exchange.test');
    const first = await createCampaign(t, apiKey, [list]);
    const t0 = clock.now().getTime();
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${first}/start`);
    await expectDeliveredOnce(apiKey, first, p, 60, t0);
    expect(refusals).toBeGreaterThan(0);
    const { health } = await account(apiKey, id);
    expect(health).toEqual({ state: 'healthy', maxConnections: expect.any(Number) });
    expect(health.maxConnections).toBeLessThanOrEqual(3);
    const [row] = await t.mp.ctx.db.query<{ cap: number }>('SELECT connection_cap AS cap FROM smtp_accounts WHERE id = $1', [id]);
    expect(row!.cap).toBe(health.maxConnections);

    // The next campaign starts lowered: no more than that at once, and nothing refused.
    await waitFor('the sessions to close', async () => (p.openSessions === 0 ? true : undefined));
    p.peakSessions = 0;
    const before = refusals;
    const second = await createCampaign(t, apiKey, [list]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${second}/start`);
    expect(await waitForCampaign(t, apiKey, second, (c) => c.status === 'completed')).toMatchObject({ sent: 60, failed: 0 });
    expect(p.peakSessions).toBeLessThanOrEqual(health.maxConnections);
    expect(refusals).toBe(before);
  });
});
