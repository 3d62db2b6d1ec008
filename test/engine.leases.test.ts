import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.ts';
import { Engine } from '../src/engine/engine.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addList, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function acceptedCounts(peer: SmtpPeer): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of peer.messages) for (const r of m.rcptTo) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

/** Latest SMTP transaction start at the peer from `sender`, relative to `since` (0 when none after it). */
function lastStartAfter(peer: SmtpPeer, sender: string, since: number): number {
  return Math.max(since, ...peer.attempts.filter((m) => m.mailFrom === sender).map((m) => m.startedAt)) - since;
}

async function untilTrue(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function sendingCount(t: TestMailPilot, campaignId: number): Promise<number> {
  const [row] = await t.mp.ctx.db.query<{ n: number }>(`SELECT count(*) AS n FROM messages WHERE campaign_id = $1 AND status = 'sending'`, [
    campaignId,
  ]);
  return row!.n;
}

describe.each(databaseKinds)('leases keep one worker per account and recover dead ones (%s)', (kind) => {
  const clock = new FakeClock('2026-03-02T10:00:00Z');
  const leaseTtlMs = 2_000;
  let t: TestMailPilot;
  // Started by the first test, once it has laid out a dead worker's leftovers; the others use it.
  let engine: Engine | undefined;
  const peers: SmtpPeer[] = [];
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { clock, engine: false, config: { leaseTtlMs } });
  });
  afterAll(async () => {
    await engine?.stop();
    await t.close();
    for (const p of peers) await p.close();
  });

  async function ensureEngine(): Promise<void> {
    if (engine) return;
    engine = new Engine(t.mp.ctx);
    await engine.start();
  }

  async function startPeer(script: Parameters<typeof startSmtpPeer>[0] = {}): Promise<SmtpPeer> {
    const p = await startSmtpPeer(script);
    peers.push(p);
    return p;
  }

  it("a sweep returns a dead worker's messages (expired lease) and orphaned claims (no lease) to the queue, each sent once", async () => {
    const peer = await startPeer();
    const { apiKey } = await t.createUser();
    const serverId = await addServer(t, apiKey, peer.port);
    const a = await addAccount(t, apiKey, serverId, 'a@sweep.test');
    const b = await addAccount(t, apiKey, serverId, 'b@sweep.test');
    const listId = await addList(t, apiKey, 50, 'sweep.test');
    const id = await createCampaign(t, apiKey, [listId]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);

    // What a crash leaves behind: account a leased by a process that died holding 20 claims, and
    // 5 claims under account b whose lease is gone (a claim whose reply was lost).
    const { db } = t.mp.ctx;
    await db.query(`UPDATE smtp_accounts SET lease_owner = 'dead-host:1:gone', lease_expires_at = $2 WHERE id = $1`, [
      a,
      new Date(clock.now().getTime() + 30_000),
    ]);
    await db.query(`UPDATE smtp_accounts SET active = false WHERE id = $1`, [b]);
    await db.query(
      `UPDATE messages SET status = 'sending', account_id = $2 WHERE id IN (SELECT id FROM messages WHERE campaign_id = $1 ORDER BY id LIMIT 20)`,
      [id, a],
    );
    await db.query(
      `UPDATE messages SET status = 'sending', account_id = $2 WHERE id IN (SELECT id FROM messages WHERE campaign_id = $1 ORDER BY id OFFSET 20 LIMIT 5)`,
      [id, b],
    );

    await ensureEngine();
    // The orphans of b go back at once; a's claims wait for its lease to expire, and nothing sends through a meanwhile.
    await untilTrue("the orphans' return", async () => (await sendingCount(t, id)) === 20);
    await engine!.wake();
    expect(peer.messages).toHaveLength(0);
    expect(await sendingCount(t, id)).toBe(20);
    await sleep(300);
    expect(peer.messages).toHaveLength(0);

    clock.advance(31_000);
    const done = await waitForCampaign(t, apiKey, id, (c) => c.status === 'completed');
    expect(done).toMatchObject({ sent: 50, pending: 0 });
    const counts = acceptedCounts(peer);
    expect(counts.size).toBe(50);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(peer.messages.every((m) => m.mailFrom === 'a@sweep.test')).toBe(true);
  });

  it('a worker that finds its lease taken stops sending at once, and its late outcomes never land', async () => {
    await ensureEngine();
    const peer = await startPeer({ dataDelayMs: 30 });
    const { apiKey } = await t.createUser();
    const account = await addAccount(t, apiKey, await addServer(t, apiKey, peer.port, 2), 'stolen@lease.test');
    const listId = await addList(t, apiKey, 200, 'lease.test');
    const id = await createCampaign(t, apiKey, [listId]);
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
    await waitForCampaign(t, apiKey, id, (c) => c.sent >= 40);

    // Another owner takes the account (as a process would once the lease had expired).
    const { db } = t.mp.ctx;
    const stolenAt = Date.now();
    await db.query(`UPDATE smtp_accounts SET lease_owner = 'intruder:2:x', lease_expires_at = $2 WHERE id = $1`, [
      account,
      new Date(clock.now().getTime() + 3_600_000),
    ]);
    await sleep(leaseTtlMs * 2);
    // The next heartbeat (a sixth of the lease) finds out; in-flight sends are cut. Nothing starts after.
    expect(lastStartAfter(peer, 'stolen@lease.test', stolenAt)).toBeLessThanOrEqual(leaseTtlMs);
    const frozen = await sendingCount(t, id);
    const sentWhenStolen = (await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}`)).sent;
    await sleep(500);
    // Fenced: the old worker's outcomes for the intruder's rows did not land.
    expect(await sendingCount(t, id)).toBe(frozen);
    expect((await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}`)).sent).toBe(sentWhenStolen);

    // The intruder dies: its lease expires and the sweep hands everything back.
    await db.query(`UPDATE smtp_accounts SET lease_expires_at = $2 WHERE id = $1`, [account, new Date(clock.now().getTime() - 1_000)]);
    const done = await waitForCampaign(t, apiKey, id, (c) => c.status === 'completed');
    expect(done).toMatchObject({ sent: 200, pending: 0 });
    const counts = acceptedCounts(peer);
    expect(counts.size).toBe(200);
    const duplicates = [...counts.values()].reduce((n, c) => n + c - 1, 0);
    expect(duplicates).toBeLessThanOrEqual(frozen);
  });

  it.skipIf(kind !== 'postgres')(
    'a worker that cannot renew its lease (database unreachable for it) stops sending before the lease could be taken over',
    async () => {
      await ensureEngine();
      const peer = await startPeer({ dataDelayMs: 30 });
      const { apiKey } = await t.createUser();
      const account = await addAccount(t, apiKey, await addServer(t, apiKey, peer.port, 2), 'cut-off@lease.test');
      const listId = await addList(t, apiKey, 300, 'cutoff.test');
      const id = await createCampaign(t, apiKey, [listId]);
      await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
      await waitForCampaign(t, apiKey, id, (c) => c.sent >= 40);

      // Holding the account row's lock keeps every renewal of the lease from landing (renewals skip a locked row).
      const [{ name }] = (await t.mp.ctx.db.query<{ name: string }>('SELECT current_database() AS name')) as [{ name: string }];
      const url = new URL(process.env.TEST_DATABASE_URL!);
      url.pathname = `/${name}`;
      const blocker = new pg.Client({ connectionString: url.toString() });
      await blocker.connect();
      let lockedAt = 0;
      try {
        await blocker.query('BEGIN');
        await blocker.query('SELECT 1 FROM smtp_accounts WHERE id = $1 FOR UPDATE', [account]);
        lockedAt = Date.now();
        await sleep(leaseTtlMs * 2);
        // Another process could take the account once the last renewal's lease ran out; the worker stopped before.
        expect(lastStartAfter(peer, 'cut-off@lease.test', lockedAt)).toBeLessThan(leaseTtlMs);
      } finally {
        await blocker.query('ROLLBACK');
        await blocker.end();
      }
      const done = await waitForCampaign(t, apiKey, id, (c) => c.status === 'completed');
      expect(done).toMatchObject({ sent: 300, pending: 0 });
      const counts = acceptedCounts(peer);
      expect(counts.size).toBe(300);
      // Nobody took the account, so the cut worker's outcomes landed when the lock went: nothing twice.
      expect([...counts.values()].every((n) => n === 1)).toBe(true);
    },
  );
});
