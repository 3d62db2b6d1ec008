import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addList, addServer, createCampaign, must } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

interface ServerSentEvent {
  event: string;
  data: any;
}

/** A real HTTP client of the event stream, reading events as they arrive. */
async function subscribe(url: string, key: string) {
  const controller = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${key}` }, signal: controller.signal });
  const events: ServerSentEvent[] = [];
  const waiters: { until: (e: ServerSentEvent[]) => boolean; resolve: () => void }[] = [];
  const done = (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) events.push({ event, data: JSON.parse(data) });
          for (const w of waiters.splice(0)) (w.until(events) ? w.resolve : () => waiters.push(w))();
        }
      }
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err;
    }
  })();
  return {
    res,
    events,
    waitFor(until: (e: ServerSentEvent[]) => boolean, timeoutMs = 60_000): Promise<void> {
      if (until(events)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no such event in ${timeoutMs} ms: ${JSON.stringify(events)}`)), timeoutMs);
        waiters.push({ until, resolve: () => (clearTimeout(timer), resolve()) });
      });
    },
    async close() {
      controller.abort();
      await done;
    },
  };
}

describe.each(databaseKinds)('campaign events over SSE (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  beforeAll(async () => {
    t = await startTestMailPilot(kind);
    // Slow replies and two connections stretch the send over a few seconds.
    peer = await startSmtpPeer({ dataDelayMs: 25 });
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  it('pushes progress during a real send and the completed status at the end', async () => {
    const { apiKey } = await t.createUser('watcher');
    const serverId = await addServer(t, apiKey, peer.port, 2);
    await addAccount(t, apiKey, serverId, 'news@watcher.test');
    const listId = await addList(t, apiKey, 300);
    const campaignId = await createCampaign(t, apiKey, [listId]);

    const stream = await subscribe(`${t.url}/api/v1/campaigns/${campaignId}/events`, apiKey);
    expect(stream.res.status).toBe(200);
    expect(stream.res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await stream.waitFor((e) => e.length >= 2);
    expect(stream.events.slice(0, 2)).toEqual([
      { event: 'status', data: expect.objectContaining({ id: campaignId, status: 'draft', total: 0 }) },
      { event: 'progress', data: expect.objectContaining({ id: campaignId, status: 'draft', sent: 0 }) },
    ]);

    await must(t, apiKey, 'POST', `/api/v1/campaigns/${campaignId}/start`);
    await stream.waitFor((e) => e.some((x) => x.event === 'status' && x.data.status === 'completed'));
    // Throttled progress still delivers the last counters, possibly just after the status.
    await stream.waitFor((e) => e.some((x) => x.event === 'progress' && x.data.sent === 300));
    await stream.close();

    const statuses = stream.events.filter((e) => e.event === 'status').map((e) => e.data.status);
    expect(statuses).toEqual(['draft', 'running', 'completed']);
    const completed = stream.events.find((e) => e.event === 'status' && e.data.status === 'completed')!;
    expect(completed.data).toMatchObject({ total: 300, sent: 300, pending: 0 });

    const progress = stream.events.filter((e) => e.event === 'progress').map((e) => e.data.sent as number);
    const midway = progress.filter((sent) => sent > 0 && sent < 300);
    expect(midway.length).toBeGreaterThanOrEqual(2);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(progress.at(-1)).toBe(300);
    expect(peer.messages).toHaveLength(300);
  });

  it("answers 404 as JSON, not a stream, for a campaign that is not the caller's", async () => {
    const owner = await t.createUser('owner');
    const other = await t.createUser('other');
    const listId = await addList(t, owner.apiKey, 1);
    const campaignId = await createCampaign(t, owner.apiKey, [listId]);
    const res = await t.api('GET', `/api/v1/campaigns/${campaignId}/events`, { key: other.apiKey });
    expect(res).toEqual({ status: 404, body: { error: { code: 'not_found', message: 'campaign not found' } } });
  });

  it('ends open streams when the server shuts down', async () => {
    const own = await startTestMailPilot(kind, { engine: false });
    const user = await own.createUser('lingerer');
    const campaignId = await createCampaign(own, user.apiKey, [await addList(own, user.apiKey, 1)]);
    const stream = await subscribe(`${own.url}/api/v1/campaigns/${campaignId}/events`, user.apiKey);
    await stream.waitFor((e) => e.length >= 2);
    await own.close();
    await stream.close();
    expect(stream.events.map((e) => e.event)).toEqual(['status', 'progress']);
  });
});
