import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addList, addServer, createCampaign, must, waitForCampaign, waitForIdleEngine } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { parsePrometheus, sumOf, type Sample } from './helpers/prometheus.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

/** Reads a campaign's event stream until `count` events have arrived; returns their names. */
async function readEvents(url: string, key: string, count: number): Promise<string[]> {
  const controller = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${key}` }, signal: controller.signal });
  expect(res.status).toBe(200);
  const names: string[] = [];
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    text += decoder.decode(chunk, { stream: true });
    names.splice(0, names.length, ...[...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]!));
    if (names.length >= count) break;
  }
  controller.abort();
  return names;
}

describe.each(databaseKinds)('process counters in /metrics (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  const clock = new FakeClock('2026-03-02T10:00:00Z');

  beforeAll(async () => {
    t = await startTestMailPilot(kind, { clock });
    peer = await startSmtpPeer();
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  const scrape = async (): Promise<Sample[]> => {
    const res = await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${t.adminKey}` } });
    expect(res.status).toBe(200);
    return parsePrometheus(await res.text());
  };

  it('counts the Server-Sent Events written to clients, by event', async () => {
    const { apiKey } = await t.createUser('watcher');
    const listId = await addList(t, apiKey, 1);
    const id = await createCampaign(t, apiKey, [listId]);
    const before = await scrape();
    const names = await readEvents(`${t.url}/api/v1/campaigns/${id}/events`, apiKey, 2);
    expect(names).toEqual(['status', 'progress']);
    const after = await scrape();
    for (const event of ['status', 'progress']) {
      expect(sumOf(after, 'mailpilot_sse_events_total', { event }) - sumOf(before, 'mailpilot_sse_events_total', { event })).toBe(1);
    }
  });

  it('counts a lease taken over from a process that stopped heartbeating, once', async () => {
    const { apiKey } = await t.createUser('orphaned');
    const serverId = await addServer(t, apiKey, peer.port);
    const accountId = await addAccount(t, apiKey, serverId, 'sender@orphaned.test');
    const listId = await addList(t, apiKey, 5, 'orphaned.test');
    const id = await createCampaign(t, apiKey, [listId]);
    expect(sumOf(await scrape(), 'mailpilot_lease_takeovers_total')).toBe(0);
    // A process that crashed while holding the account: its lease expired a minute ago.
    await t.mp.ctx.db.query(`UPDATE smtp_accounts SET lease_owner = 'gone:1:dead', lease_expires_at = $2 WHERE id = $1`, [
      accountId,
      new Date(clock.now().getTime() - 60_000),
    ]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    const done = await waitForCampaign(t, apiKey, id, (c) => c.status === 'completed');
    await waitForIdleEngine(t);
    expect(done.sent).toBe(5);
    const samples = await scrape();
    expect(sumOf(samples, 'mailpilot_lease_takeovers_total')).toBe(1);
    expect(sumOf(samples, 'mailpilot_smtp_sessions_opened_total')).toBe(peer.connections);
    expect(sumOf(samples, 'mailpilot_outcome_rows_written_total')).toBe(5);
    expect(samples.every((s) => s.labels.role === 'serve')).toBe(true);
  });
});
