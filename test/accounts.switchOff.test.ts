import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.ts';
import { loadConfig } from '../src/config.ts';
import type { Database } from '../src/db/database.ts';
import { createLogger } from '../src/log.ts';
import { startMailPilot } from '../src/server.ts';
import { databaseKinds, freshDatabase, type TestDatabase } from './helpers/db.ts';
import { addList, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { apiClient, startTestMailPilot, type ApiClient } from './helpers/mailpilot.ts';
import { newCluster, spawnMailPilot, stopProcess, type EngineProcess } from './helpers/processes.ts';
import { startSmtpPeer, type PeerScript, type SmtpPeer } from './helpers/smtpPeer.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The server's connections, hence the account's: at most this many sends are in flight at once. */
const CONNECTIONS = 2;

/** Recipients as the peer accepted them, with how many times each. */
function acceptedCounts(peer: SmtpPeer): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of peer.messages) for (const r of m.rcptTo) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

async function untilTrue(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Where a test's MailPilot is: its API, its admin key and its database. */
interface Site {
  api: ApiClient;
  adminKey: string;
  db: Database;
}

interface Sending {
  apiKey: string;
  serverId: number;
  accountId: number;
  campaignId: number;
  t0: number;
}

/** A user with one account on `peer` (CONNECTIONS connections, `ratePerSecond`) and a started campaign of `recipients`. */
async function startSending(site: Site, peer: SmtpPeer, recipients: number, ratePerSecond: number): Promise<Sending> {
  const user = await must(site.api, site.adminKey, 'POST', '/api/v1/users', { name: 'switch', email: 'switch@example.test' });
  const apiKey: string = user.apiKey;
  const serverId = await addServer(site.api, apiKey, peer.port, CONNECTIONS);
  const account = await must(site.api, apiKey, 'POST', '/api/v1/smtp-accounts', {
    serverId,
    email: 'news@switch.test',
    hourlyLimit: 0,
    dailyLimit: 0,
    ratePerSecond,
  });
  const listId = await addList(site.api, apiKey, recipients, 'switch.test');
  const campaignId = await createCampaign(site.api, apiKey, [listId]);
  const t0 = Date.now();
  await must(site.api, apiKey, 'POST', `/api/v1/campaigns/${campaignId}/start`);
  return { apiKey, serverId, accountId: account.id, campaignId, t0 };
}

/** The worker has let the account go and every claimed message is back in the queue or recorded. */
async function untilReleased(db: Database, s: Sending): Promise<void> {
  await untilTrue('the account released', async () => {
    const [row] = await db.query<{ busy: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM smtp_accounts WHERE id = $1 AND lease_owner IS NOT NULL)
           OR EXISTS (SELECT 1 FROM messages WHERE campaign_id = $2 AND status = 'sending') AS busy`,
      [s.accountId, s.campaignId],
    );
    return !row!.busy;
  });
}

async function statusCounts(db: Database, campaignId: number): Promise<Record<string, { n: number; attempts: number }>> {
  const rows = await db.query<{ status: string; n: number; attempts: number }>(
    'SELECT status, count(*)::int AS n, sum(attempts)::int AS attempts FROM messages WHERE campaign_id = $1 GROUP BY status',
    [campaignId],
  );
  return Object.fromEntries(rows.map((r) => [r.status, { n: r.n, attempts: r.attempts }]));
}

/**
 * What the account holds after it stopped: every message the peer accepted is recorded sent and
 * charged once; the others are pending, never attempted; no reserved send is left unspent.
 */
async function expectStoppedCleanly(db: Database, s: Sending, peer: SmtpPeer, recipients: number): Promise<void> {
  const received = peer.messages.length;
  expect(await statusCounts(db, s.campaignId)).toEqual({
    sent: { n: received, attempts: received },
    pending: { n: recipients - received, attempts: 0 },
  });
  const [holds] = await db.query<{ n: number }>('SELECT coalesce(sum(remaining), 0)::int AS n FROM send_holds WHERE account_id = $1', [s.accountId]);
  expect(holds!.n).toBe(0);
}

/** Every recipient reached the peer exactly once. */
function expectEachOnce(peer: SmtpPeer, recipients: number): void {
  const counts = acceptedCounts(peer);
  expect(counts.size).toBe(recipients);
  expect([...counts.values()].every((n) => n === 1)).toBe(true);
}

/** Peer receipts (seconds after the start) and campaign statuses, printed for the issue's note with MAILPILOT_TIMELINE=1. */
function showTimeline(label: string, s: Sending, peer: SmtpPeer, marks: [string, number][]): void {
  if (!process.env.MAILPILOT_TIMELINE) return;
  const at = (t: number) => ((t - s.t0) / 1000).toFixed(2);
  const lines = [
    ...peer.messages.map((m, i) => [m.receivedAt, `peer received #${i + 1}`] as const),
    ...marks.map(([what, t]) => [t, `*** ${what}`] as const),
  ].sort((a, b) => a[0] - b[0]);
  console.log(`${label}\n${lines.map(([t, what]) => `${at(t)} s  ${what}`).join('\n')}`);
}

/**
 * The scenario of issue 15, item 1: an account sending at 4 a second is switched off mid-campaign,
 * then on again. `site` may run the engine in its own process or leave it to another one.
 */
async function switchOffAndOn(site: Site, peer: SmtpPeer, label: string): Promise<void> {
  const RECIPIENTS = 80;
  const s = await startSending(site, peer, RECIPIENTS, 4);
  await untilTrue('the first sends', () => peer.messages.length >= 8);

  const tPatch = Date.now();
  const off = await must(site.api, s.apiKey, 'PATCH', `/api/v1/smtp-accounts/${s.accountId}`, { active: false });
  const tReply = Date.now();
  const atReply = peer.messages.length;
  expect(off.health).toEqual({ state: 'disabled', reason: 'deactivated by the user' });

  await untilReleased(site.db, s);
  const paused = await waitForCampaign(site.api, s.apiKey, s.campaignId, (c) => c.status === 'paused_limits', 30_000);
  expect(paused).toMatchObject({ pauseReason: 'account_health', resumeAt: null });
  // At 4 a second, another two seconds would bring 8 more if the account were still sending.
  await sleep(2_000);
  const tStill = Date.now();
  const stillCount = peer.messages.length;
  expect(peer.messages.length - atReply).toBeLessThanOrEqual(CONNECTIONS);
  expect(peer.messages.length).toBeLessThan(RECIPIENTS);
  await expectStoppedCleanly(site.db, s, peer, RECIPIENTS);
  expect(await must(site.api, s.apiKey, 'GET', `/api/v1/campaigns/${s.campaignId}`)).toMatchObject({ status: 'paused_limits', pauseReason: 'account_health' });

  const tOn = Date.now();
  await must(site.api, s.apiKey, 'PATCH', `/api/v1/smtp-accounts/${s.accountId}`, { active: true });
  const done = await waitForCampaign(site.api, s.apiKey, s.campaignId, (c) => c.status === 'completed', 60_000);
  expect(done).toMatchObject({ sent: RECIPIENTS, failed: 0, pauseReason: null });
  expectEachOnce(peer, RECIPIENTS);
  showTimeline(label, s, peer, [
    ['PATCH {active: false} sent', tPatch],
    [`PATCH replied (${atReply} received so far)`, tReply],
    [`campaign ${paused.status}/${paused.pauseReason}, resumeAt ${paused.resumeAt}; ${stillCount} received 2 s later`, tStill],
    ['PATCH {active: true} sent', tOn],
    ['campaign completed', Date.now()],
  ]);
}

describe('switching an account off stops it at once, in another process too (PostgreSQL)', () => {
  let database: TestDatabase | undefined;
  let worker: EngineProcess | undefined;
  let close: (() => Promise<void>) | undefined;
  let peer: SmtpPeer | undefined;
  afterEach(async () => {
    if (worker) await stopProcess(worker);
    await close?.();
    await peer?.close();
    await database?.drop();
    worker = close = peer = database = undefined;
  });

  it.skipIf(!process.env.TEST_DATABASE_URL)(
    'the API in this process, the engine in a `mailpilot worker` process: PATCH {active: false} stops it before its next send; {active: true} finishes the campaign, each recipient once',
    async () => {
      database = await freshDatabase('postgres');
      const cluster = newCluster(database.url!);
      worker = await spawnMailPilot('worker', cluster);
      const dataDir = mkdtempSync(join(tmpdir(), 'mailpilot-switch-'));
      const config = { ...loadConfig({}), port: 0, dataDir, adminKey: cluster.adminKey, secretKey: cluster.secretKey, logLevel: 'warn' };
      const mp = await startMailPilot({ config, api: true, engine: false, clock: systemClock, db: database.db, log: createLogger('warn') });
      close = async () => {
        await mp.close();
        rmSync(dataDir, { recursive: true, force: true });
      };
      peer = await startSmtpPeer();
      await switchOffAndOn({ api: { api: apiClient(mp.url!) }, adminKey: cluster.adminKey, db: database.db }, peer, 'two processes (PostgreSQL)');
    },
    120_000,
  );
});

describe.each(databaseKinds)('switching an account or its server off, or deleting it, stops its sends (one process, %s)', (kind) => {
  let t: Awaited<ReturnType<typeof startTestMailPilot>> | undefined;
  let peer: SmtpPeer | undefined;
  afterEach(async () => {
    await t?.close();
    await peer?.close();
    t = peer = undefined;
  });

  const site = async (script: PeerScript = {}): Promise<Site> => {
    t = await startTestMailPilot(kind, { clock: systemClock });
    peer = await startSmtpPeer(script);
    return { api: t, adminKey: t.adminKey, db: t.mp.ctx.db };
  };

  it('PATCH {active: false} stops the account before its next send; {active: true} finishes the campaign, each recipient once', async () => {
    const here = await site();
    await switchOffAndOn(here, peer!, `one process (${kind})`);
  }, 90_000);

  it('switching its server off stops the account; switching it on again finishes the campaign', async () => {
    const here = await site();
    const RECIPIENTS = 40;
    const s = await startSending(here, peer!, RECIPIENTS, 10);
    await untilTrue('the first sends', () => peer!.messages.length >= 5);
    await must(here.api, s.apiKey, 'PATCH', `/api/v1/smtp-servers/${s.serverId}`, { active: false });
    const atReply = peer!.messages.length;
    await untilReleased(here.db, s);
    const paused = await waitForCampaign(here.api, s.apiKey, s.campaignId, (c) => c.status === 'paused_limits', 30_000);
    expect(paused).toMatchObject({ pauseReason: 'account_health', resumeAt: null });
    await sleep(1_000);
    expect(peer!.messages.length - atReply).toBeLessThanOrEqual(CONNECTIONS);
    await expectStoppedCleanly(here.db, s, peer!, RECIPIENTS);

    await must(here.api, s.apiKey, 'PATCH', `/api/v1/smtp-servers/${s.serverId}`, { active: true });
    expect(await waitForCampaign(here.api, s.apiKey, s.campaignId, (c) => c.status === 'completed', 60_000)).toMatchObject({ sent: RECIPIENTS });
    expectEachOnce(peer!, RECIPIENTS);
  }, 90_000);

  it('DELETE of a sending account: 204, its sends stop, its messages wait for another account, none lost', async () => {
    const here = await site();
    const RECIPIENTS = 40;
    const s = await startSending(here, peer!, RECIPIENTS, 10);
    await untilTrue('the first sends', () => peer!.messages.length >= 5);
    const res = await here.api.api('DELETE', `/api/v1/smtp-accounts/${s.accountId}`, { key: s.apiKey });
    const atReply = peer!.messages.length;
    expect(res.status).toBe(204);
    expect((await here.api.api('GET', `/api/v1/smtp-accounts/${s.accountId}`, { key: s.apiKey })).status).toBe(404);
    const paused = await waitForCampaign(here.api, s.apiKey, s.campaignId, (c) => c.status === 'paused_limits', 30_000);
    expect(paused).toMatchObject({ pauseReason: 'account_health', resumeAt: null });
    await sleep(1_000);
    expect(peer!.messages.length - atReply).toBeLessThanOrEqual(CONNECTIONS);
    const received = peer!.messages.length;
    expect(await statusCounts(here.db, s.campaignId)).toEqual({
      sent: { n: received, attempts: received },
      pending: { n: RECIPIENTS - received, attempts: 0 },
    });

    await must(here.api, s.apiKey, 'POST', '/api/v1/smtp-accounts', { serverId: s.serverId, email: 'next@switch.test', hourlyLimit: 0, dailyLimit: 0 });
    expect(await waitForCampaign(here.api, s.apiKey, s.campaignId, (c) => c.status === 'completed', 60_000)).toMatchObject({ sent: RECIPIENTS });
    expectEachOnce(peer!, RECIPIENTS);
  }, 90_000);

  it('DELETE of an account whose send in flight outlasts 10 s: 409 account_sending, the account stays switched off; deleted once the send is done', async () => {
    // The peer answers the final dot after 12 s: longer than DELETE waits for the worker to let go.
    const here = await site({ dataDelayMs: 12_000 });
    const s = await startSending(here, peer!, 3, 10);
    await untilTrue('a send in flight', () => peer!.attempts.length >= 1);
    const res = await here.api.api('DELETE', `/api/v1/smtp-accounts/${s.accountId}`, { key: s.apiKey });
    expect(res).toMatchObject({ status: 409, body: { error: { code: 'account_sending', message: expect.stringMatching(/switched off.*delete it again/) } } });
    expect(await must(here.api, s.apiKey, 'GET', `/api/v1/smtp-accounts/${s.accountId}`)).toMatchObject({ active: false });
    const started = peer!.attempts.length;
    expect(started).toBeLessThanOrEqual(CONNECTIONS);

    await untilReleased(here.db, s);
    expect((await here.api.api('DELETE', `/api/v1/smtp-accounts/${s.accountId}`, { key: s.apiKey })).status).toBe(204);
    expect(peer!.messages).toHaveLength(started);
    expect(await statusCounts(here.db, s.campaignId)).toEqual({ sent: { n: started, attempts: started }, pending: { n: 3 - started, attempts: 0 } });
  }, 90_000);
});
