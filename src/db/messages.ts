import type { BounceType, MessageStatus } from '../states.ts';
import type { Queryable } from './database.ts';

/** Contacts read per statement when a queue is built, so each statement stays well inside statement_timeout. */
const MATERIALISE_BATCH = 20_000;

/**
 * Builds a campaign's queue from its lists in batches: each address once (case-insensitively) even
 * when it is on several lists, the first list naming it winning; addresses on the user's suppression
 * list are recorded as suppressed and never queued. With `skipUndeliverable`, an address whose
 * contact's last verification was `undeliverable` is left out, counted by its first reason in
 * `skippedReasons`. Each list is walked in address order through its unique index, one batch per
 * statement, so no statement grows with the list.
 */
export async function materialiseQueue(
  tx: Queryable,
  userId: number,
  campaignId: number,
  listIds: number[],
  skipUndeliverable: boolean,
): Promise<{ total: number; suppressed: number; skipped: number; skippedReasons: Record<string, number> }> {
  const counts = { total: 0, suppressed: 0, skipped: 0, skippedReasons: {} as Record<string, number> };
  for (const [i, listId] of listIds.entries()) {
    const earlierLists = listIds.slice(0, i);
    for (let after = ''; ; ) {
      const [row] = await tx.query<{ last: string | null; read: number; total: number; suppressed: number; skipped: Record<string, number> }>(
        `WITH batch AS (
           SELECT id, email, lower(email) AS address,
                  CASE WHEN $7 AND verification->>'status' = 'undeliverable' THEN coalesce(verification->'reasons'->>0, 'undeliverable') END AS skip
             FROM contacts
            WHERE list_id = $3 AND user_id = $1 AND lower(email) > $4
            ORDER BY lower(email) LIMIT $5
         ), candidates AS (
           SELECT b.id, b.email, b.address, b.skip, suppressed.hit IS NOT NULL AS suppressed
             FROM batch b
             -- LATERAL ... LIMIT 1: an index probe per row, never a hash of a whole list or suppression list.
             LEFT JOIN LATERAL (SELECT 1 AS hit FROM contacts e
                                 WHERE e.list_id = ANY($6::int[]) AND lower(e.email) = b.address LIMIT 1) earlier ON true
             LEFT JOIN LATERAL (SELECT 1 AS hit FROM suppressions s
                                 WHERE s.user_id = $1 AND lower(s.email) = b.address LIMIT 1) suppressed ON true
            WHERE earlier.hit IS NULL
         ), queued AS (
           INSERT INTO messages (campaign_id, user_id, contact_id, email, status)
           SELECT $2, $1, c.id, c.email, CASE WHEN c.suppressed THEN 'suppressed' ELSE 'pending' END
             FROM candidates c
            WHERE c.suppressed OR c.skip IS NULL
            ORDER BY c.address
           RETURNING status
         )
         SELECT (SELECT max(address) FROM batch) AS last, (SELECT count(*) FROM batch) AS read,
                count(*) AS total, count(*) FILTER (WHERE status = 'suppressed') AS suppressed,
                (SELECT coalesce(jsonb_object_agg(skip, n), '{}') FROM (
                   SELECT skip, count(*) AS n FROM candidates WHERE skip IS NOT NULL AND NOT suppressed GROUP BY skip) s) AS skipped
           FROM queued`,
        [userId, campaignId, listId, after, MATERIALISE_BATCH, earlierLists, skipUndeliverable],
      );
      counts.total += row!.total;
      counts.suppressed += row!.suppressed;
      for (const [reason, n] of Object.entries(row!.skipped)) {
        counts.skipped += Number(n);
        counts.skippedReasons[reason] = (counts.skippedReasons[reason] ?? 0) + Number(n);
      }
      if (row!.read < MATERIALISE_BATCH || row!.last === null) break;
      after = row!.last;
    }
  }
  return counts;
}

/**
 * The end of both claim statements: the rows of \`picked\` become 'sending' under account $1 (or
 * 'suppressed', counted on campaign $3, when their address was suppressed since the queue was built).
 */
const CLAIMED = `claimed AS (
       UPDATE messages m SET status = CASE WHEN picked.suppressed THEN 'suppressed' ELSE 'sending' END,
                             account_id = CASE WHEN picked.suppressed THEN NULL ELSE $1::int END
         FROM picked WHERE m.id = picked.id
       RETURNING m.id, m.campaign_id, m.email, m.attempts, m.contact_id, m.status, m.merge
     ), counted AS (
       UPDATE campaigns c SET suppressed = c.suppressed + n.n
         FROM (SELECT count(*) AS n FROM claimed WHERE status = 'suppressed') n
        WHERE c.id = $3 AND n.n > 0
     )`;

export interface ClaimedMessage {
  id: number;
  campaignId: number;
  email: string;
  attempts: number;
  name: string | null;
  attributes: Record<string, unknown> | null;
}

/**
 * Claims up to `limit` due pending messages of one running campaign for an account, in id order
 * from `afterId`, skipping rows other workers hold. Lands only while `owner` holds the account's
 * lease and the campaign is still running. An address suppressed since the queue was built (an
 * unsubscribe mid-campaign) is marked suppressed and counted instead of claimed.
 */
export async function claimMessages(
  db: Queryable,
  p: { accountId: number; owner: string; campaignId: number; afterId: number; limit: number; now: Date },
): Promise<ClaimedMessage[]> {
  return db.query<ClaimedMessage>(
    `WITH picked AS (
       SELECT m.id, sup.hit IS NOT NULL AS suppressed
         FROM messages m
         -- LATERAL ... LIMIT 1: an index probe per row, never a hash of the user's whole suppression list.
         LEFT JOIN LATERAL (SELECT 1 AS hit FROM suppressions s
                             WHERE s.user_id = m.user_id AND lower(s.email) = lower(m.email) LIMIT 1) sup ON true
        WHERE m.campaign_id = $3 AND m.status = 'pending' AND m.id > $4
          AND (m.next_attempt_at IS NULL OR m.next_attempt_at <= $6)
          AND EXISTS (SELECT 1 FROM smtp_accounts WHERE id = $1 AND lease_owner = $2)
          AND EXISTS (SELECT 1 FROM campaigns WHERE id = $3 AND status = 'running')
        ORDER BY m.id LIMIT $5
        FOR UPDATE OF m SKIP LOCKED
     ), ${CLAIMED}
     SELECT c.id, c.campaign_id AS "campaignId", c.email, c.attempts,
            CASE WHEN ct.id IS NULL THEN c.merge->>'name' ELSE ct.name END AS name,
            CASE WHEN ct.id IS NULL THEN c.merge->'attributes' ELSE ct.attributes END AS attributes
       FROM claimed c LEFT JOIN contacts ct ON ct.id = c.contact_id
      WHERE c.status = 'sending'
      ORDER BY c.id`,
    [p.accountId, p.owner, p.campaignId, p.afterId, p.limit, p.now],
    { prepared: 'mp_claim' },
  );
}

/**
 * claimMessages for a user with recipient throttles: among the next `scan` due pending messages of
 * the campaign after `afterId`, claims up to `limit`, at most `room` to each throttled domain (the
 * others wait, pending, while messages to other domains go). Returns the claims and the last id
 * scanned, so the next claim starts after messages that had to wait.
 */
export async function claimThrottledMessages(
  db: Queryable,
  p: { accountId: number; owner: string; campaignId: number; afterId: number; limit: number; now: Date; scan: number; rooms: { domain: string; room: number }[] },
): Promise<{ messages: ClaimedMessage[]; scannedTo: number | null }> {
  const [row] = await db.query<{ messages: ClaimedMessage[]; scannedTo: number | null }>(
    `WITH candidates AS (
       SELECT m.id, email_domain(m.email) AS domain
         FROM messages m
        WHERE m.campaign_id = $3 AND m.status = 'pending' AND m.id > $4
          AND (m.next_attempt_at IS NULL OR m.next_attempt_at <= $6)
          AND EXISTS (SELECT 1 FROM smtp_accounts WHERE id = $1 AND lease_owner = $2)
          AND EXISTS (SELECT 1 FROM campaigns WHERE id = $3 AND status = 'running')
        ORDER BY m.id LIMIT $7
     ), allowed AS (
       SELECT r.id FROM (
         SELECT c.id, t.room, row_number() OVER (PARTITION BY c.domain ORDER BY c.id) AS rn
           FROM candidates c LEFT JOIN unnest($8::text[], $9::int[]) AS t(domain, room) ON t.domain = c.domain) r
        WHERE r.room IS NULL OR r.rn <= r.room
        ORDER BY r.id LIMIT $5
     ), picked AS (
       SELECT m.id, sup.hit IS NOT NULL AS suppressed
         FROM messages m JOIN allowed a ON a.id = m.id
         LEFT JOIN LATERAL (SELECT 1 AS hit FROM suppressions s
                             WHERE s.user_id = m.user_id AND lower(s.email) = lower(m.email) LIMIT 1) sup ON true
        WHERE m.status = 'pending'
        ORDER BY m.id
        FOR UPDATE OF m SKIP LOCKED
     ), ${CLAIMED}
     SELECT (SELECT max(id) FROM candidates) AS "scannedTo",
            coalesce((SELECT json_agg(json_build_object('id', c.id, 'campaignId', c.campaign_id, 'email', c.email, 'attempts', c.attempts,
                                                        'name', CASE WHEN ct.id IS NULL THEN c.merge->>'name' ELSE ct.name END,
                                                        'attributes', CASE WHEN ct.id IS NULL THEN c.merge->'attributes' ELSE ct.attributes END) ORDER BY c.id)
                        FROM claimed c LEFT JOIN contacts ct ON ct.id = c.contact_id WHERE c.status = 'sending'), '[]') AS messages`,
    [p.accountId, p.owner, p.campaignId, p.afterId, p.limit, p.now, p.scan, p.rooms.map((r) => r.domain), p.rooms.map((r) => r.room)],
  );
  return row!;
}

/** What became of one claimed message. */
export interface Outcome {
  id: number;
  status: 'sent' | 'failed' | 'cancelled' | 'pending';
  /**
   * 1 when an SMTP attempt was made: it counts toward the message's attempt limit and, at
   * `attemptedAt`, as a send of its account (out of hold `holdId`).
   */
  charged: 0 | 1;
  attemptedAt: Date | null;
  holdId: number | null;
  error: string | null;
  sentAt: Date | null;
  nextAttemptAt: Date | null;
  /** Sent, but the reply to the final dot was lost: counted in the campaign's possiblyDelivered too. */
  possiblyDelivered: boolean;
  /** Failed as a hard bounce during the SMTP conversation (5.1.x): counted in its account's usage for the rate guard. */
  hardBounce: boolean;
}

export interface CampaignCounters {
  id: number;
  userId: number;
  status: string;
  total: number;
  sent: number;
  failed: number;
  suppressed: number;
  cancelled: number;
}

/** An outcome and the account whose worker sent (or handed back) the message. */
export interface AccountOutcomeRow extends Outcome {
  accountId: number;
}

/**
 * Writes a batch of outcomes, of any of the process's accounts, and the campaign counters in one
 * statement. A message handed back to the queue of a campaign stopped meanwhile is cancelled
 * instead. Fenced: a row lands only while `owner` still holds its account's lease, so a worker that
 * lost its account cannot overwrite what the account's new worker does.
 */
export async function recordOutcomes(db: Queryable, owner: string, outcomes: AccountOutcomeRow[]): Promise<CampaignCounters[]> {
  if (outcomes.length === 0) return [];
  return db.query<CampaignCounters>(
    `WITH updated AS (
       UPDATE messages m
          SET status = CASE WHEN u.status = 'pending' AND c.status = 'stopped' THEN 'cancelled' ELSE u.status END,
              -- An address erased while its message was in flight (dataProtection.ts) gets no reply text, which may quote it.
              attempts = m.attempts + u.charged, last_error = CASE WHEN m.email = '' THEN NULL ELSE coalesce(u.error, m.last_error) END,
              sent_at = u.sent_at, next_attempt_at = u.next_attempt_at,
              account_id = CASE WHEN u.status = 'pending' AND c.status <> 'stopped' THEN NULL ELSE m.account_id END
         FROM unnest($2::bigint[], $3::int[], $4::text[], $5::int[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::bool[],
                     $10::timestamptz[], $11::bigint[], $12::bool[])
              AS u(id, account_id, status, charged, error, sent_at, next_attempt_at, possibly_delivered, attempted_at, hold_id, hard_bounce),
              campaigns c, smtp_accounts a
        -- Rows are found by primary key. Written as "IS NOT DISTINCT FROM", the status and account
        -- test cannot steer the planner (which takes 'sending' rows for rare) to an index on status,
        -- whose dead 'sending' entries it would then walk on every batch until the next vacuum.
        -- (No "id = ANY($2)" either: in the join's inner index scan it is re-sorted for every row.)
        WHERE m.id = u.id AND c.id = m.campaign_id
          AND (m.status, m.account_id) IS NOT DISTINCT FROM ('sending', u.account_id)
          AND a.id = u.account_id AND a.lease_owner = $1
       RETURNING m.campaign_id, m.status, m.email, c.user_id, u.possibly_delivered, u.charged, u.account_id, u.attempted_at, u.hold_id, u.hard_bounce, a.timezone
     ), attempts AS (
       -- Each SMTP attempt is a send of its account at the minute it started, spent from its hold.
       SELECT account_id, hold_id, attempted_at, timezone, user_id, email, hard_bounce FROM updated WHERE charged = 1 AND attempted_at IS NOT NULL
     ), counted AS (
       INSERT INTO smtp_usage AS s (account_id, minute_start, sent, hard_bounced)
       SELECT account_id, date_trunc('minute', attempted_at), count(*), count(*) FILTER (WHERE hard_bounce) FROM attempts GROUP BY 1, 2
       ON CONFLICT ON CONSTRAINT smtp_usage_pkey DO UPDATE SET sent = s.sent + excluded.sent, hard_bounced = s.hard_bounced + excluded.hard_bounced
     ), spent AS (
       UPDATE send_holds h SET remaining = greatest(0, h.remaining - x.n)
         FROM (SELECT hold_id, count(*) AS n FROM attempts WHERE hold_id IS NOT NULL GROUP BY hold_id) x
        WHERE h.id = x.hold_id
     ), days AS (
       INSERT INTO send_days (account_id, day)
       SELECT DISTINCT account_id, (attempted_at AT TIME ZONE timezone)::date FROM attempts
       ON CONFLICT DO NOTHING
     ), throttled AS (
       INSERT INTO recipient_minutes AS r (user_id, domain, minute_start, sent)
       SELECT t.user_id, t.domain, date_trunc('minute', x.attempted_at), count(*)
         FROM attempts x JOIN recipient_throttles t ON t.user_id = x.user_id AND t.domain = email_domain(x.email)
        GROUP BY 1, 2, 3
       ON CONFLICT ON CONSTRAINT recipient_minutes_pkey DO UPDATE SET sent = r.sent + excluded.sent
     ), totals AS (
       SELECT campaign_id,
              count(*) FILTER (WHERE status = 'sent') AS sent,
              count(*) FILTER (WHERE status = 'failed') AS failed,
              count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
              count(*) FILTER (WHERE possibly_delivered) AS possibly_delivered
         FROM updated GROUP BY campaign_id
     )
     UPDATE campaigns c SET sent = c.sent + t.sent, failed = c.failed + t.failed, cancelled = c.cancelled + t.cancelled,
            possibly_delivered = c.possibly_delivered + t.possibly_delivered
       FROM totals t WHERE c.id = t.campaign_id
     RETURNING c.id, c.user_id AS "userId", c.status, c.total, c.sent, c.failed, c.suppressed, c.cancelled`,
    [
      owner,
      outcomes.map((o) => o.id),
      outcomes.map((o) => o.accountId),
      outcomes.map((o) => o.status),
      outcomes.map((o) => o.charged),
      outcomes.map((o) => o.error),
      outcomes.map((o) => o.sentAt),
      outcomes.map((o) => o.nextAttemptAt),
      outcomes.map((o) => o.possiblyDelivered),
      outcomes.map((o) => o.attemptedAt),
      outcomes.map((o) => o.holdId),
      outcomes.map((o) => o.hardBounce),
    ],
    { prepared: 'mp_record_outcomes' },
  );
}

/**
 * Returns the messages the accounts' previous workers left in 'sending' (they crashed or lost their
 * lease) to the queue, or cancels them when their campaign was stopped meanwhile.
 */
export async function recoverAccountMessages(tx: Queryable, accountIds: number[]): Promise<number> {
  const rows = await tx.query<{ campaignId: number; n: number }>(
    `WITH recovered AS (
       UPDATE messages m
          SET status = CASE WHEN c.status = 'stopped' THEN 'cancelled' ELSE 'pending' END,
              account_id = CASE WHEN c.status = 'stopped' THEN m.account_id END
         FROM campaigns c
        WHERE m.account_id = ANY($1::int[]) AND m.status = 'sending' AND c.id = m.campaign_id
       RETURNING m.campaign_id, m.status
     ), cancelled AS (
       UPDATE campaigns c SET cancelled = c.cancelled + x.n
         FROM (SELECT campaign_id, count(*) AS n FROM recovered WHERE status = 'cancelled' GROUP BY campaign_id) x
        WHERE c.id = x.campaign_id
     )
     SELECT campaign_id AS "campaignId", count(*) AS n FROM recovered GROUP BY campaign_id`,
    [accountIds],
  );
  return rows.reduce((sum, r) => sum + r.n, 0);
}

/** Cancels every message of a campaign still waiting in the queue, counting them on the campaign. */
export async function cancelPending(db: Queryable, campaignId: number): Promise<number> {
  const [row] = await db.query<{ n: number }>(
    `WITH cancelled AS (
       UPDATE messages SET status = 'cancelled' WHERE campaign_id = $1 AND status = 'pending' RETURNING 1
     ), counted AS (
       UPDATE campaigns SET cancelled = cancelled + (SELECT count(*) FROM cancelled) WHERE id = $1
     )
     SELECT count(*) AS n FROM cancelled`,
    [campaignId],
  );
  return row!.n;
}

/** Whether a user has queued messages that are due now in a running campaign. */
export async function hasDueMessages(db: Queryable, userId: number, now: Date): Promise<boolean> {
  const [row] = await db.query<{ due: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM campaigns c
        WHERE c.user_id = $1 AND c.status = 'running'
          AND EXISTS (SELECT 1 FROM messages m WHERE m.campaign_id = c.id AND m.status = 'pending'
                        AND (m.next_attempt_at IS NULL OR m.next_attempt_at <= $2))
     ) AS due`,
    [userId, now],
  );
  return row!.due;
}

export interface MessageRow {
  id: number;
  email: string;
  status: MessageStatus;
  attempts: number;
  accountId: number | null;
  lastError: string | null;
  sentAt: Date | null;
  /** When a pending message that was retried may be tried again. */
  nextAttemptAt: Date | null;
  /** What a bounce report said after the message was accepted (src/reports/). */
  bounce: { type: BounceType; status: string | null; diagnostic: string | null } | null;
  complainedAt: Date | null;
  repliedAt: Date | null;
}

/** The report columns of a message, as MessageRow shows them. */
export const MESSAGE_REPORT_COLUMNS = `CASE WHEN bounce_type IS NOT NULL THEN json_build_object('type', bounce_type, 'status', bounce_status, 'diagnostic', bounce_diagnostic) END AS bounce,
  complained_at AS "complainedAt", replied_at AS "repliedAt"`;

export async function listMessages(
  db: Queryable,
  userId: number,
  campaignId: number,
  p: { status?: MessageStatus; after: number; limit: number },
): Promise<MessageRow[]> {
  const columns = `id, email, status, attempts, account_id AS "accountId", last_error AS "lastError", sent_at AS "sentAt",
    next_attempt_at AS "nextAttemptAt", ${MESSAGE_REPORT_COLUMNS}`;
  // Two statements, not "($4 IS NULL OR status = $4)", so each can use its own index.
  if (p.status) {
    return db.query<MessageRow>(
      `SELECT ${columns} FROM messages WHERE campaign_id = $1 AND user_id = $2 AND status = $3 AND id > $4 ORDER BY id LIMIT $5`,
      [campaignId, userId, p.status, p.after, p.limit],
    );
  }
  return db.query<MessageRow>(
    `SELECT ${columns} FROM messages WHERE campaign_id = $1 AND user_id = $2 AND id > $3 ORDER BY id LIMIT $4`,
    [campaignId, userId, p.after, p.limit],
  );
}
