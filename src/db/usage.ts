import type { HealthState } from '../states.ts';
import type { Queryable } from './database.ts';
import { ACCOUNT_CONNECTIONS_SQL } from './sendingAccounts.ts';

/**
 * What the sending policy (src/sendingPolicy/) counts: sends per account per UTC minute
 * (smtp_usage, at the instant each SMTP attempt started), reserved sends not yet spent (send_holds),
 * the local days an account sent on (send_days), and the rules an account and its user set.
 * See 008_sending_policy.sql.
 */

// Serialises the reservations of one account, and of one domain cap, across processes.
const ACCOUNT_LOCK = 7_246_002;
const DOMAIN_CAP_LOCK = 7_246_003;

/** A domain cap with the user's accounts it counts. */
export interface DomainCapRow {
  id: number;
  domain: string;
  hourlyLimit: number;
  dailyLimit: number;
  limitWindow: 'calendar' | 'rolling';
  accountIds: number[];
}

/** An account's rules and state, as the policy reads them. */
export interface PolicyConfigRow {
  accountId: number;
  userId: number;
  /** The account and its server are both switched on. */
  active: boolean;
  health: HealthState;
  healthUntil: Date | null;
  healthReason: string | null;
  hourlyLimit: number;
  dailyLimit: number;
  limitWindow: 'calendar' | 'rolling';
  timezone: string;
  sendingWindow: { timezone: string; days: ('mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun')[]; start: string; end: string } | null;
  warmup: { startPerDay: number; increasePerDay: number } | null;
  minGapSeconds: number | null;
  maxGapSeconds: number | null;
  gapUntil: Date | null;
  /** Local days (account zone) with sends before the local day of `now`. */
  sendingDaysBefore: number;
  caps: DomainCapRow[];
}

export async function readPolicyConfigs(db: Queryable, accountIds: number[], now: Date): Promise<PolicyConfigRow[]> {
  return db.query<PolicyConfigRow>(
    `SELECT a.id AS "accountId", a.user_id AS "userId", (a.active AND s.active) AS active,
            a.health, a.health_until AS "healthUntil", a.health_reason AS "healthReason",
            a.hourly_limit AS "hourlyLimit", a.daily_limit AS "dailyLimit", a.limit_window AS "limitWindow", a.timezone,
            a.sending_window AS "sendingWindow", a.warmup, a.min_gap_seconds AS "minGapSeconds", a.max_gap_seconds AS "maxGapSeconds",
            a.gap_until AS "gapUntil",
            (SELECT count(*) FROM send_days d WHERE d.account_id = a.id AND d.day < ($2::timestamptz AT TIME ZONE a.timezone)::date)::int AS "sendingDaysBefore",
            coalesce((SELECT json_agg(json_build_object(
                       'id', c.id, 'domain', c.domain, 'hourlyLimit', c.hourly_limit, 'dailyLimit', c.daily_limit, 'limitWindow', c.limit_window,
                       'accountIds', (SELECT array_agg(x.id ORDER BY x.id) FROM smtp_accounts x WHERE x.user_id = c.user_id AND email_domain(x.email) = c.domain))
                       ORDER BY c.id)
                        FROM domain_caps c WHERE c.user_id = a.user_id AND c.domain = email_domain(a.email)), '[]') AS caps
       FROM smtp_accounts a JOIN smtp_servers s ON s.id = a.server_id
      WHERE a.id = ANY($1::int[])`,
    [accountIds, now],
    { prepared: 'mp_policy_configs' },
  );
}

/** One window to count: sends and holds of `accountIds` over the minutes [from, to). */
export interface TallySpec {
  key: string;
  accountIds: number[];
  from: Date;
  to: Date;
  /** The window's limit (0 = none), for the release minute of a full rolling window. */
  limit: number;
  rolling: boolean;
}

export interface TallyRow {
  key: string;
  sent: number;
  held: number;
  heldUntil: Date | null;
  /** A full rolling window: the minute by which enough of its oldest sends are counted that, once they left, one more fits. */
  releaseMinute: Date | null;
}

/** Counts every spec in one statement. */
export async function readTallies(db: Queryable, specs: TallySpec[]): Promise<TallyRow[]> {
  if (specs.length === 0) return [];
  return db.query<TallyRow>(
    `SELECT q.key, s.sent, h.held, h.held_until AS "heldUntil", r.minute AS "releaseMinute"
       FROM jsonb_to_recordset($1::jsonb) AS q(key text, accounts int[], from_at timestamptz, to_at timestamptz, lim int, rolling boolean)
      CROSS JOIN LATERAL (SELECT coalesce(sum(u.sent), 0)::int AS sent FROM smtp_usage u
                           WHERE u.account_id = ANY(q.accounts) AND u.minute_start >= q.from_at AND u.minute_start < q.to_at) s
      CROSS JOIN LATERAL (SELECT coalesce(sum(h.remaining), 0)::int AS held, max(h.valid_until) AS held_until FROM send_holds h
                           WHERE h.account_id = ANY(q.accounts) AND h.remaining > 0 AND h.valid_until > q.from_at AND h.reserved_at < q.to_at) h
       LEFT JOIN LATERAL (
         SELECT b.minute_start AS minute
           FROM (SELECT u.minute_start, sum(u.sent) OVER (ORDER BY u.minute_start) AS cum FROM smtp_usage u
                  WHERE u.account_id = ANY(q.accounts) AND u.minute_start >= q.from_at AND u.minute_start < q.to_at) b
          WHERE b.cum >= s.sent + h.held - q.lim + 1
          ORDER BY b.minute_start LIMIT 1) r ON q.rolling AND q.lim > 0 AND s.sent + h.held >= q.lim`,
    [JSON.stringify(specs.map((s) => ({ key: s.key, accounts: s.accountIds, from_at: s.from, to_at: s.to, lim: s.limit, rolling: s.rolling })))],
  );
}

/**
 * Locks the account's reservations, then its domain caps' (in id order, so two accounts of one cap
 * never wait on each other in a circle), until the transaction ends. Everything the transaction
 * reads afterwards, in later statements, sees every reservation made before the lock was granted.
 */
export async function lockReservations(tx: Queryable, accountId: number, capIds: number[]): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [ACCOUNT_LOCK, accountId]);
  if (capIds.length === 0) return;
  // unnest keeps the array's order, and the lock is taken row by row as it is read.
  await tx.query('SELECT pg_advisory_xact_lock($1, id) FROM unnest($2::int[]) AS c(id)', [DOMAIN_CAP_LOCK, [...capIds].sort((a, b) => a - b)]);
}

/** Holds `count` sends for the account, to be started in [at, validUntil). Returns the hold's id. */
export async function insertHold(tx: Queryable, accountId: number, at: Date, validUntil: Date, count: number): Promise<number> {
  const [row] = await tx.query<{ id: number }>(
    'INSERT INTO send_holds (account_id, reserved_at, valid_until, remaining) VALUES ($1, $2, $3, $4) RETURNING id',
    [accountId, at, validUntil, count],
    { prepared: 'mp_insert_hold' },
  );
  return row!.id;
}

/**
 * Gives back held sends that will not be spent. Never repeated by its callers: a give-back whose
 * reply was lost may have landed, and giving back twice could let the account pass its limit.
 */
export async function giveBackHold(db: Queryable, holdId: number, count: number): Promise<void> {
  if (count <= 0) return;
  await db.query('UPDATE send_holds SET remaining = greatest(0, remaining - $2) WHERE id = $1', [holdId, count], { prepared: 'mp_give_back_hold' });
}

/**
 * Counts one send that started at `at` (a test send, which has no queue row): into the account's
 * minute, out of its hold, and the day into its sending days. The engine's sends are counted by
 * messages.recordOutcomes instead, with their outcomes.
 */
export async function recordSend(db: Queryable, accountId: number, holdId: number | null, at: Date): Promise<void> {
  await db.query(
    `WITH counted AS (
       INSERT INTO smtp_usage AS u (account_id, minute_start, sent) VALUES ($1, date_trunc('minute', $3::timestamptz), 1)
       ON CONFLICT ON CONSTRAINT smtp_usage_pkey DO UPDATE SET sent = u.sent + 1
     ), spent AS (
       UPDATE send_holds SET remaining = greatest(0, remaining - 1) WHERE id = $2
     )
     INSERT INTO send_days (account_id, day)
     SELECT a.id, ($3::timestamptz AT TIME ZONE a.timezone)::date FROM smtp_accounts a WHERE a.id = $1
     ON CONFLICT DO NOTHING`,
    [accountId, holdId, at],
  );
}

/** Holds that no longer count anywhere: spent or given back, or valid so long ago that no window reaches them. */
export async function purgeHolds(db: Queryable, before: Date): Promise<number> {
  const rows = await db.query('DELETE FROM send_holds WHERE remaining = 0 OR valid_until < $1 RETURNING 1', [before]);
  return rows.length;
}

/** Sets when the account's next send may start, after the gap of the one that started (any process reads it). */
export async function setGapUntil(db: Queryable, accountId: number, until: Date): Promise<void> {
  await db.query('UPDATE smtp_accounts SET gap_until = $2 WHERE id = $1', [accountId, until]);
}

/** Sends per minute of the accounts since `from`, oldest first. */
export async function usageSince(db: Queryable, accountIds: number[], from: Date): Promise<{ accountId: number; minute: Date; sent: number }[]> {
  return db.query(
    `SELECT account_id AS "accountId", minute_start AS minute, sent FROM smtp_usage
      WHERE account_id = ANY($1::int[]) AND minute_start >= $2 ORDER BY minute_start`,
    [accountIds, from],
  );
}

/** How fast each account can send as configured: its rate and its SMTP sessions. */
export async function accountPaces(db: Queryable, accountIds: number[]): Promise<{ accountId: number; ratePerSecond: number | null; connections: number }[]> {
  return db.query(
    `SELECT a.id AS "accountId", a.rate_per_second AS "ratePerSecond", ${ACCOUNT_CONNECTIONS_SQL} AS connections
       FROM smtp_accounts a JOIN smtp_servers s ON s.id = a.server_id WHERE a.id = ANY($1::int[])`,
    [accountIds],
  );
}
