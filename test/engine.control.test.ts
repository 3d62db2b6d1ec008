import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addList, addServer, createCampaign, must, waitForCampaign, waitForIdleEngine } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

describe.each(databaseKinds)('manual control and tenants (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  beforeAll(async () => {
    t = await startTestMailPilot(kind);
    // A slow peer keeps sends in flight, so pause and stop land mid-batch.
    peer = await startSmtpPeer({ dataDelayMs: 15 });
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  async function sender(name: string, accounts: number) {
    const user = await t.createUser(name);
    const serverId = await addServer(t, user.apiKey, peer.port, accounts * 2);
    const emails: string[] = [];
    for (let i = 0; i < accounts; i++) {
      emails.push(`${name}${i}@${name}.test`);
      await addAccount(t, user.apiKey, serverId, emails[i]!);
    }
    return { ...user, emails };
  }

  const recipientsOf = (domain: string) => peer.messages.flatMap((m) => m.rcptTo).filter((r) => r.endsWith(`@${domain}`));

  it('pause stops new SMTP transactions within a second; resume finishes with no recipient twice', async () => {
    const u = await sender('pauser', 2);
    const listId = await addList(t, u.apiKey, 1500, 'pause.test');
    const id = await createCampaign(t, u.apiKey, [listId]);
    await must(t, u.apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    await waitForCampaign(t, u.apiKey, id, (c) => c.sent >= 100);

    const paused = await must(t, u.apiKey, 'POST', `/api/v1/campaigns/${id}/pause`);
    const pausedAt = Date.now();
    expect(paused.status).toBe('paused');
    await waitForIdleEngine(t);
    await new Promise((r) => setTimeout(r, 1200));
    const late = peer.messages.filter((m) => m.rcptTo[0]!.endsWith('@pause.test') && m.startedAt > pausedAt + 1000);
    expect(late).toEqual([]);
    const whilePaused = recipientsOf('pause.test').length;
    const afterPause = await must(t, u.apiKey, 'GET', `/api/v1/campaigns/${id}`);
    expect(afterPause).toMatchObject({ status: 'paused', sent: whilePaused });
    expect(afterPause.pending).toBe(1500 - whilePaused);
    expect(whilePaused).toBeLessThan(1500);
    const stillSending = await must(t, u.apiKey, 'GET', `/api/v1/campaigns/${id}/messages?status=sending`);
    expect(stillSending.items).toEqual([]);

    expect((await t.api('POST', `/api/v1/campaigns/${id}/pause`, { key: u.apiKey })).status).toBe(409);
    expect((await must(t, u.apiKey, 'POST', `/api/v1/campaigns/${id}/resume`)).status).toBe('running');
    const done = await waitForCampaign(t, u.apiKey, id, (c) => c.status === 'completed');
    expect(done).toMatchObject({ sent: 1500, pending: 0 });
    const received = recipientsOf('pause.test');
    expect(received).toHaveLength(1500);
    expect(new Set(received).size).toBe(1500);
  });

  it('stop cancels what is left: sent + failed + cancelled = total', async () => {
    const u = await sender('stopper', 2);
    const listId = await addList(t, u.apiKey, 1500, 'stop.test');
    const id = await createCampaign(t, u.apiKey, [listId]);
    await must(t, u.apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    await waitForCampaign(t, u.apiKey, id, (c) => c.sent >= 100);
    expect((await must(t, u.apiKey, 'POST', `/api/v1/campaigns/${id}/stop`)).status).toBe('stopped');
    await waitForIdleEngine(t);
    const c = await waitForCampaign(t, u.apiKey, id, (x) => x.pending === 0);
    expect(c.status).toBe('stopped');
    expect(c.sent + c.failed + c.cancelled).toBe(c.total);
    expect(c.cancelled).toBeGreaterThan(0);
    expect(c.sent).toBe(recipientsOf('stop.test').length);
    const rows = await t.mp.ctx.db.query<{ status: string; n: number }>(
      'SELECT status, count(*) AS n FROM messages WHERE campaign_id = $1 GROUP BY status ORDER BY status',
      [id],
    );
    expect(Object.fromEntries(rows.map((r) => [r.status, r.n]))).toEqual({ cancelled: c.cancelled, sent: c.sent });
    expect((await t.api('POST', `/api/v1/campaigns/${id}/resume`, { key: u.apiKey })).status).toBe(409);
    expect((await t.api('POST', `/api/v1/campaigns/${id}/start`, { key: u.apiKey })).status).toBe(409);
  });

  it("sends each user's mail only through that user's own accounts", async () => {
    const a = await sender('alpha', 2);
    const b = await sender('bravo', 3);
    const listA = await addList(t, a.apiKey, 300, 'alpha-rcpt.test');
    const listB = await addList(t, b.apiKey, 300, 'bravo-rcpt.test');
    const campA = await createCampaign(t, a.apiKey, [listA]);
    const campB = await createCampaign(t, b.apiKey, [listB]);
    await must(t, a.apiKey, 'POST', `/api/v1/campaigns/${campA}/start`);
    await must(t, b.apiKey, 'POST', `/api/v1/campaigns/${campB}/start`);
    await waitForCampaign(t, a.apiKey, campA, (c) => c.status === 'completed');
    await waitForCampaign(t, b.apiKey, campB, (c) => c.status === 'completed');
    const fromOf = (domain: string) => new Set(peer.messages.filter((m) => m.rcptTo[0]!.endsWith(`@${domain}`)).map((m) => m.mailFrom));
    expect([...fromOf('alpha-rcpt.test')].sort()).toEqual(a.emails);
    expect([...fromOf('bravo-rcpt.test')].sort()).toEqual(b.emails);
    // B cannot see, start or stop A's campaign, nor learn that it exists.
    for (const [method, path] of [
      ['GET', `/api/v1/campaigns/${campA}`],
      ['GET', `/api/v1/campaigns/${campA}/messages`],
      ['POST', `/api/v1/campaigns/${campA}/stop`],
      ['GET', `/api/v1/lists/${listA}`],
    ] as const) {
      const res = await t.api(method, path, { key: b.apiKey });
      expect(res).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    }
    expect((await must(t, a.apiKey, 'GET', `/api/v1/campaigns/${campA}`)).status).toBe('completed');
  });

  it('refuses bad campaign input: 400 malformed, 422 naming the field, 404 for others\' lists, nothing written', async () => {
    const u = await t.createUser('careful');
    const other = await t.createUser('other');
    const otherList = await must(t, other.apiKey, 'POST', '/api/v1/lists', { name: 'theirs' });
    const mine = await must(t, u.apiKey, 'POST', '/api/v1/lists', { name: 'mine' });
    const base = { name: 'x', listIds: [mine.id], subject: 'Hi', text: 'Hello' };
    const cases: [unknown, number, string, RegExp?][] = [
      ['{"name": "x",', 400, 'malformed_json'],
      [{ ...base, name: '' }, 422, 'invalid_field', /^name: /],
      [{ ...base, listIds: [] }, 422, 'invalid_field', /^listIds: /],
      [{ ...base, listIds: ['abc'] }, 422, 'invalid_field', /^listIds\.0: /],
      [{ ...base, subject: 'Hi\r\nBcc: x@evil.test' }, 422, 'invalid_field', /^subject: /],
      [{ ...base, fromName: 'A\nB' }, 422, 'invalid_field', /^fromName: /],
      [{ ...base, replyTo: 'not an email' }, 422, 'invalid_field', /^replyTo: /],
      [{ ...base, text: undefined }, 422, 'invalid_field', /^html: /],
      [{ ...base, scheduledAt: 'tomorrow' }, 422, 'invalid_field', /^scheduledAt: /],
      [{ ...base, color: 'red' }, 422, 'invalid_field', /^color: /],
      [{ ...base, listIds: [otherList.id] }, 422, 'invalid_field', /^listIds: /],
      [{ ...base, subject: 'Hi {{#if}}' }, 422, 'invalid_template', /^subject: .*line 1/],
    ];
    for (const [body, status, code, message] of cases) {
      const res = await t.api('POST', '/api/v1/campaigns', { key: u.apiKey, body });
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.body.error.code, JSON.stringify(body)).toBe(code);
      if (message) expect(res.body.error.message, JSON.stringify(body)).toMatch(message);
    }
    expect((await must(t, u.apiKey, 'GET', '/api/v1/campaigns')).items).toEqual([]);
    expect((await t.api('GET', '/api/v1/campaigns/abc', { key: u.apiKey })).status).toBe(422);
    expect((await t.api('GET', `/api/v1/campaigns/${2 ** 70}`, { key: u.apiKey })).status).toBe(422);
    expect((await t.api('GET', '/healthz')).status).toBe(200);
  });
});
