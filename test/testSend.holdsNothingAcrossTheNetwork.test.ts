import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './helpers/db.ts';
import { addServer, createCampaign, must } from './helpers/fixtures.ts';
import { startTestMailPilot, type ApiReply, type TestMailPilot } from './helpers/mailpilot.ts';
import { startTarpit, type Tarpit } from './helpers/tarpit.ts';

/**
 * Issue 12, item 2: a test send to a server chosen by its user holds no database connection and no
 * lock while it talks to that server. Ten sends at once fill the PostgreSQL pool (10 connections)
 * and, one at a time, the embedded database's only connection, if they held them.
 */

const DEADLINE_MS = 6_000;
const SENDS = 10;
// "Well under a second" for another user, whose request needs nothing the sends hold.
const OTHER_USER_MAX_MS = 1_000;
// The deadline, and room for a loaded 2-core machine to give the reservation back and answer after it.
const SEND_MAX_MS = DEADLINE_MS + 3_000;

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Another user's GET /me, cut after OTHER_USER_MAX_MS so a request held behind the sends fails at once. */
async function otherUsersRequest(t: TestMailPilot, key: string): Promise<{ status: number | 'no answer'; ms: number }> {
  const started = performance.now();
  const answer = await Promise.race([
    t.api('GET', '/api/v1/me', { key }),
    new Promise<'late'>((r) => setTimeout(() => r('late'), OTHER_USER_MAX_MS).unref()),
  ]);
  return { status: answer === 'late' ? 'no answer' : answer.status, ms: performance.now() - started };
}

describe.each(databaseKinds)('a test send holds no database connection across the network (%s)', (kind) => {
  let t: TestMailPilot;
  let sender: { apiKey: string };
  let other: { apiKey: string };
  let campaignId: number;

  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false, config: { testSendTimeoutMs: DEADLINE_MS } });
    sender = await t.createUser('sender');
    other = await t.createUser('other');
    const list = await must(t, sender.apiKey, 'POST', '/api/v1/lists', { name: 'trial' });
    await must(t, sender.apiKey, 'POST', `/api/v1/lists/${list.id}/contacts`, { contacts: [{ email: 'a@rcpt.test' }] });
    campaignId = await createCampaign(t, sender.apiKey, [list.id]);
  });
  afterAll(() => t?.close());

  /** Fires SENDS test sends through one account on `tarpit`'s server; answers with their replies and times. */
  async function testSendsTo(tarpit: Tarpit) {
    const serverId = await addServer(t, sender.apiKey, tarpit.port);
    const account = await must(t, sender.apiKey, 'POST', '/api/v1/smtp-accounts', { serverId, email: `news${tarpit.port}@sender.test`, hourlyLimit: 50, dailyLimit: 0 });
    let settled = 0;
    const sends = Array.from({ length: SENDS }, async () => {
      const started = performance.now();
      const reply: ApiReply = await t.api('POST', `/api/v1/campaigns/${campaignId}/test`, { key: sender.apiKey, body: { email: 'a@rcpt.test', accountId: account.id } });
      settled++;
      return { reply, ms: performance.now() - started };
    });
    await waitFor('every test send to reach the tarpit', () => tarpit.accepted === SENDS);
    return { accountId: account.id as number, sends: Promise.all(sends), settled: () => settled };
  }

  const usage = async (accountId: number) => (await must(t, sender.apiKey, 'GET', `/api/v1/smtp-accounts/${accountId}`)).usage.sentThisHour;
  /** Sends reserved and not yet spent or given back (usage counts sends only). */
  const held = async (accountId: number) =>
    (await t.mp.ctx.db.query<{ n: number }>('SELECT coalesce(sum(remaining), 0)::int AS n FROM send_holds WHERE account_id = $1', [accountId]))[0]!.n;

  it('ten test sends to a server that accepts TCP and never greets: another user is answered meanwhile, each send ends by its deadline and gives its reservation back', async () => {
    const tarpit = await startTarpit('silent');
    try {
      const { accountId, sends, settled } = await testSendsTo(tarpit);
      const meanwhile = await otherUsersRequest(t, other.apiKey);
      const stillInFlight = SENDS - settled();
      const reservedMeanwhile = await held(accountId);
      const results = await sends;

      expect(meanwhile.status).toBe(200);
      expect(meanwhile.ms).toBeLessThan(OTHER_USER_MAX_MS);
      // Answered while sends were still talking to the tarpit (a loaded machine may have ended a few at their greeting wait).
      expect(stillInFlight).toBeGreaterThan(0);
      // Reservations are committed on their own before their conversations begin: another transaction sees them.
      expect(reservedMeanwhile).toBeGreaterThan(0);
      for (const { reply, ms } of results) {
        expect(reply).toEqual({
          status: 502,
          body: { error: { code: 'smtp_error', message: `the SMTP server did not take the test message: the server at 127.0.0.1:${tarpit.port} did not answer as an SMTP server` } },
        });
        expect(ms).toBeLessThan(SEND_MAX_MS);
      }
      expect(await usage(accountId)).toBe(0);
      expect(await held(accountId)).toBe(0);
      await waitFor('the tarpit connections to be closed', () => tarpit.open === 0);
    } finally {
      await tarpit.close();
    }
  });

  it('ten test sends to a server that greets, then trickles a line every half second: another user is answered meanwhile, each send is cut at its deadline with a 504 and gives its reservation back', async () => {
    const tarpit = await startTarpit('trickle', { intervalMs: 500 });
    try {
      const { accountId, sends, settled } = await testSendsTo(tarpit);
      // Past the greeting, into the trickle.
      await new Promise((r) => setTimeout(r, 1_200));
      const meanwhile = await otherUsersRequest(t, other.apiKey);
      const stillInFlight = SENDS - settled();
      const results = await sends;

      expect(meanwhile.status).toBe(200);
      expect(meanwhile.ms).toBeLessThan(OTHER_USER_MAX_MS);
      expect(stillInFlight).toBe(SENDS);
      for (const { reply, ms } of results) {
        expect(reply).toEqual({
          status: 504,
          body: {
            error: {
              code: 'smtp_timeout',
              message: `the test message was not sent within ${DEADLINE_MS / 1000} s: the server at 127.0.0.1:${tarpit.port} did not answer in time`,
            },
          },
        });
        expect(ms).toBeLessThan(SEND_MAX_MS);
      }
      expect(await usage(accountId)).toBe(0);
      expect(await held(accountId)).toBe(0);
      await waitFor('the tarpit connections to be closed', () => tarpit.open === 0);
    } finally {
      await tarpit.close();
    }
  });
});
