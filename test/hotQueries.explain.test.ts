import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getCampaign, listCampaigns, completeFinished, runningCampaignIds } from '../src/db/campaigns.ts';
import type { Queryable } from '../src/db/database.ts';
import { userAccountStates } from '../src/db/accountHealth.ts';
import { findLaunchCandidates, idleUsersWithWork } from '../src/db/engineAccounts.ts';
import { claimMessages, hasDueMessages, listMessages, materialiseQueue, recordOutcomes, recoverAccountMessages } from '../src/db/messages.ts';
import { readPolicyConfigs, readTallies } from '../src/db/usage.ts';
import { lockReportedMessage, recordBounce } from '../src/db/deliveryReports.ts';
import { countReported, recentSends } from '../src/db/rateGuard.ts';
import { databaseKinds, freshDatabase, type TestDatabase } from './helpers/db.ts';

const MESSAGES = 200_000;
const NOW = new Date('2026-03-02T10:00:00Z');

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
}

/** Sequential scans of the big tables: messages, and smtp_usage (a row per account per minute it sent). */
function seqScansOfBigTables(node: PlanNode): string[] {
  const relation = node['Relation Name'];
  const own = node['Node Type'] === 'Seq Scan' && (relation === 'messages' || relation === 'smtp_usage') ? [`Seq Scan on ${relation}`] : [];
  return own.concat((node.Plans ?? []).flatMap(seqScansOfBigTables));
}

/** Records every statement a data-layer function runs, so the test explains the real SQL. */
function recorder(db: Queryable): { q: Queryable; statements: { sql: string; params: unknown[] }[] } {
  const statements: { sql: string; params: unknown[] }[] = [];
  return {
    statements,
    q: {
      query: async (sql, params = []) => {
        statements.push({ sql, params });
        return [] as never[];
      },
      exec: async () => undefined,
    },
  };
}

describe.each(databaseKinds)('hot queries use indexes on a 200k-message table and 288k usage rows (%s)', (kind) => {
  let t: TestDatabase;
  const ids = { user: 0, list: 0, campaign: 0, account: 0, firstMessage: 0 };

  beforeAll(async () => {
    t = await freshDatabase(kind);
    const { db } = t;
    const [user] = await db.query<{ id: number }>(`INSERT INTO users (name, email, created_at) VALUES ('u', 'u@x.test', $1) RETURNING id`, [NOW]);
    ids.user = user!.id;
    const [server] = await db.query<{ id: number }>(
      `INSERT INTO smtp_servers (user_id, name, host, port, security, max_connections, created_at) VALUES ($1, 's', '127.0.0.1', 25, 'none', 10, $2) RETURNING id`,
      [ids.user, NOW],
    );
    const accounts = await db.query<{ id: number }>(
      `INSERT INTO smtp_accounts (user_id, server_id, email, hourly_limit, daily_limit, created_at)
       SELECT $1, $2, 'a' || g || '@x.test', 100, 1000, $3 FROM generate_series(1, 10) g RETURNING id`,
      [ids.user, server!.id, NOW],
    );
    ids.account = accounts[0]!.id;
    const [list] = await db.query<{ id: number }>(`INSERT INTO lists (user_id, name, created_at) VALUES ($1, 'l', $2) RETURNING id`, [ids.user, NOW]);
    ids.list = list!.id;
    await db.query(
      `INSERT INTO contacts (user_id, list_id, email, name, created_at)
       SELECT $1, $2, 'r' || g || '@rcpt.test', 'R ' || g, $3 FROM generate_series(1, ${MESSAGES}) g`,
      [ids.user, ids.list, NOW],
    );
    const campaigns = await db.query<{ id: number }>(
      `INSERT INTO campaigns (user_id, name, subject, text, list_ids, status, created_at)
       SELECT $1, 'c' || g, 's', 't', ARRAY[$2::int], 'running', $3 FROM generate_series(1, 3) g RETURNING id`,
      [ids.user, ids.list, NOW],
    );
    ids.campaign = campaigns[0]!.id;
    const counts = await materialiseQueue(db, ids.user, ids.campaign, [ids.list], false);
    expect(counts.total).toBe(MESSAGES);
    // Most of the campaign is done, as mid-way through a big send: finished rows must not be scanned.
    await db.query(`UPDATE messages SET status = 'sent', account_id = $2 WHERE campaign_id = $1 AND id % 10 <> 0`, [ids.campaign, ids.account]);
    await db.query(`UPDATE smtp_accounts SET lease_owner = 'me', lease_expires_at = $1`, [new Date(NOW.getTime() + 30_000)]);
    // Ten accounts that each sent in every minute of the last 20 days.
    await db.query(
      `INSERT INTO smtp_usage (account_id, minute_start, sent, hard_bounced)
       SELECT a.id, $1::timestamptz - g * interval '1 minute', 3, (g % 50 = 0)::int FROM smtp_accounts a, generate_series(1, 28800) g`,
      [NOW],
    );
    await db.exec('ANALYZE');
    const [first] = await db.query<{ id: number }>('SELECT min(id) AS id FROM messages');
    ids.firstMessage = first!.id;
  }, 240_000);
  afterAll(() => t.drop());

  // Stopping a campaign is not here: it touches every queued row of the campaign by nature, and a
  // sequential scan is the right plan when most of a big campaign is still queued.
  const hot: [string, (q: Queryable) => Promise<unknown>][] = [
    ['claim', (q) => claimMessages(q, { accountId: ids.account, owner: 'me', campaignId: ids.campaign, afterId: 0, limit: 100, now: NOW })],
    ['claim from cursor', (q) => claimMessages(q, { accountId: ids.account, owner: 'me', campaignId: ids.campaign, afterId: ids.firstMessage + 100_000, limit: 100, now: NOW })],
    [
      'outcome write + counters',
      (q) =>
        recordOutcomes(q, 'me', [
          {
            id: ids.firstMessage + 9,
            accountId: ids.account,
            status: 'sent',
            charged: 1,
            attemptedAt: NOW,
            holdId: 1,
            error: null,
            sentAt: NOW,
            nextAttemptAt: null,
            possiblyDelivered: false,
            hardBounce: false,
          },
        ]),
    ],
    ['sending policy rules', (q) => readPolicyConfigs(q, [ids.account], NOW)],
    [
      'sending policy tallies',
      (q) => readTallies(q, [{ key: 'day', accountIds: [ids.account], from: new Date(NOW.getTime() - 86_400_000), to: NOW, limit: 10, rolling: true }]),
    ],
    ['message listing', (q) => listMessages(q, ids.user, ids.campaign, { after: 0, limit: 100 })],
    ['message listing by status', (q) => listMessages(q, ids.user, ids.campaign, { status: 'failed', after: 0, limit: 100 })],
    ['campaign read', (q) => getCampaign(q, ids.user, ids.campaign)],
    ['campaign listing', (q) => listCampaigns(q, ids.user, 0, 100)],
    ['running campaigns', (q) => runningCampaignIds(q, ids.user)],
    ['due work', (q) => hasDueMessages(q, ids.user, NOW)],
    ['launch candidates', (q) => findLaunchCandidates(q, NOW)],
    ['idle users', (q) => idleUsersWithWork(q, NOW)],
    ['account states', (q) => userAccountStates(q, ids.user, NOW)],
    ['crash recovery of an account', (q) => recoverAccountMessages(q, [ids.account])],
    ['completion', (q) => completeFinished(q, [ids.campaign], NOW)],
    ['report: the message it names', (q) => lockReportedMessage(q, ids.user, ids.firstMessage + 1)],
    [
      'report: a bounce recorded',
      (q) =>
        recordBounce(
          q,
          { id: ids.firstMessage + 1, campaignId: ids.campaign, accountId: ids.account, email: 'r@x', status: 'sent', sentAt: NOW, bounceType: null, complainedAt: null, repliedAt: null },
          { type: 'hard', status: '5.1.1', diagnostic: null, at: NOW },
          'bounced',
        ),
    ],
    ['rate guard: an account’s newest sends, bounces and complaints', (q) => recentSends(q, ids.account, { hardBounces: 200, complaints: 2000 })],
    ['rate guard: a reported bounce counted', (q) => countReported(q, ids.account, NOW, 'hard_bounce')],
  ];

  it.each(hot)('%s', async (_name, run) => {
    const { q, statements } = recorder(t.db);
    await run(q).catch(() => undefined);
    expect(statements.length).toBeGreaterThan(0);
    for (const { sql, params } of statements) {
      const [row] = await t.db.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (FORMAT JSON) ${sql}`, params);
      const plan = row!['QUERY PLAN'][0].Plan;
      expect(seqScansOfBigTables(plan), sql).toEqual([]);
    }
  });
});
