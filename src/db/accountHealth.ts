import { BACK_OFF_HEALTH_STATES, sqlList, type HealthState } from '../states.ts';
import type { Queryable } from './database.ts';

/**
 * Account health as stored: every statement that reads or writes smtp_accounts.health lives here,
 * and so do the two rules the rest of the code asks about an account. Only src/engine/accountHealth.ts
 * changes health (the engine's replies, a user's reconfiguration); everything else reads.
 *
 * - **could ever send**: switched on by its user, on a server switched on, and neither disabled nor
 *   paused (a bounce or complaint rate: see engine/rateGuard.ts). A throttle or an exhausted quota
 *   ends by itself, so such an account still could.
 *
 * A paused account stays paused until its user resumes it: no disable, throttle, exhaustion or
 * reset writes over it.
 * - **can send now**: could ever send, and not in a back-off whose `health_until` is still ahead.
 */

/** The columns the rules read, as stored. */
export interface HealthFacts {
  /** The account and its server are both switched on. */
  active: boolean;
  health: HealthState;
  healthUntil: Date | null;
  healthReason: string | null;
}

/** What the account's server taught the engine about it (see engine/accountHealth.ts), as stored. */
export interface LearnedLimits {
  /** Concurrent connections the server accepts (432 4.3.2), or null. */
  connectionCap: number | null;
  /** After a throttle: sends a second until recoveryUntil, or null for the account's own pace. */
  recoveryRate: number | null;
  recoveryUntil: Date | null;
}

const BACK_OFF = sqlList(BACK_OFF_HEALTH_STATES);

/** SQL for "could ever send" over `smtp_accounts a JOIN smtp_servers s`. */
export const COULD_EVER_SEND_SQL = `(a.active AND s.active AND a.health NOT IN ('disabled', 'paused'))`;

/** SQL for "can send now" over `smtp_accounts a JOIN smtp_servers s`; `now` is a parameter such as `$1`. */
export const canSendNowSql = (now: string) =>
  `(a.active AND s.active AND (a.health = 'healthy' OR (a.health IN (${BACK_OFF}) AND a.health_until <= ${now})))`;

export function couldEverSend(h: Pick<HealthFacts, 'active' | 'health'>): boolean {
  return h.active && h.health !== 'disabled' && h.health !== 'paused';
}

/** The end of a back-off still in force, if any. */
export function backOffUntil(h: Pick<HealthFacts, 'health' | 'healthUntil'>, now: Date): Date | undefined {
  const backingOff = (BACK_OFF_HEALTH_STATES as readonly HealthState[]).includes(h.health);
  return backingOff && h.healthUntil && h.healthUntil > now ? h.healthUntil : undefined;
}

export function canSendNow(h: HealthFacts, now: Date): boolean {
  return couldEverSend(h) && (h.health === 'healthy' || backOffUntil(h, now) === undefined);
}

/** Health as the API shows it (API.md `health: {state, until?, reason?}`), with what the server taught the engine. */
export interface HealthView {
  state: HealthState;
  until?: Date;
  reason?: string;
  /** The server accepts no more concurrent connections than this (Exchange Online's 432 4.3.2). */
  maxConnections?: number;
  /** Restarting gently after a throttle: one connection, and at most `ratePerSecond` when set, until `until`. */
  recovery?: { until: Date; connections: 1; ratePerSecond?: number };
}

/** The learned limits still in force, as the API shows them next to the health state. */
export function learnedView(l: LearnedLimits, now: Date): Pick<HealthView, 'maxConnections' | 'recovery'> {
  const view: Pick<HealthView, 'maxConnections' | 'recovery'> = {};
  if (l.connectionCap !== null) view.maxConnections = l.connectionCap;
  if (l.recoveryUntil && l.recoveryUntil > now) {
    view.recovery = { until: l.recoveryUntil, connections: 1, ...(l.recoveryRate !== null ? { ratePerSecond: l.recoveryRate } : {}) };
  }
  return view;
}

/**
 * What the account can do now. A throttle or exhaustion lasts until its `health_until`; an account
 * its user switched off reads as disabled, keeping the engine's reason when it had disabled it first.
 */
export function healthView(h: HealthFacts, now: Date): HealthView {
  const reason = h.healthReason ?? undefined;
  if (!h.active) return { state: 'disabled', reason: h.health === 'disabled' && reason ? reason : 'deactivated by the user' };
  if (h.health === 'disabled' || h.health === 'paused') return { state: h.health, reason };
  const until = backOffUntil(h, now);
  if (until) return { state: h.health, until, reason };
  return { state: 'healthy' };
}

/** Disables the account until its user changes it (see engine/accountHealth.ts onReconfigured). */
export async function disableAccount(db: Queryable, accountId: number, reason: string): Promise<void> {
  await db.query(`UPDATE smtp_accounts SET health = 'disabled', health_until = NULL, health_reason = $2 WHERE id = $1 AND health <> 'paused'`, [
    accountId,
    reason,
  ]);
}

/**
 * Throttles the account for `baseMs` doubled per throttle in a row (capped at `maxMs`), counting
 * this one. With `recovery`, the account then restarts gently for `recovery.forMs` after the
 * back-off ends, at `recovery.rate` sends a second (null: its own pace). Returns the end of the back-off.
 */
export async function throttleAccount(
  db: Queryable,
  accountId: number,
  p: { now: Date; baseMs: number; maxMs: number; reason: string; recovery: { rate: number | null; forMs: number } | null },
): Promise<Date> {
  const [row] = await db.query<{ until: Date }>(
    `WITH backoff AS (
       SELECT $2::timestamptz + make_interval(secs => least($4::float8, $3::float8 * power(2, least(throttle_strikes, 30))) / 1000) AS until
         FROM smtp_accounts WHERE id = $1)
     UPDATE smtp_accounts a
        SET health = 'throttled', health_reason = $5, throttle_strikes = throttle_strikes + 1, health_until = backoff.until,
            recovery_rate = CASE WHEN $6::boolean THEN $7::real ELSE recovery_rate END,
            recovery_until = CASE WHEN $6::boolean THEN backoff.until + make_interval(secs => $8::float8 / 1000) ELSE recovery_until END
       FROM backoff
      WHERE a.id = $1 AND a.health <> 'paused' RETURNING a.health_until AS until`,
    [accountId, p.now, p.baseMs, p.maxMs, p.reason, p.recovery !== null, p.recovery?.rate ?? null, p.recovery?.forMs ?? 0],
  );
  return row?.until ?? p.now;
}

/** Marks the account out of quota until `until`. */
export async function exhaustAccount(db: Queryable, accountId: number, until: Date, reason: string): Promise<Date> {
  const [row] = await db.query<{ until: Date }>(
    `UPDATE smtp_accounts SET health = 'exhausted', health_until = $2, health_reason = $3 WHERE id = $1 AND health <> 'paused' RETURNING health_until AS until`,
    [accountId, until, reason],
  );
  return row?.until ?? until;
}

/** Lowers the account's concurrent connections to at most `max`, for good (until its user reconfigures it). Returns the cap. */
export async function lowerConnectionCap(db: Queryable, accountId: number, max: number): Promise<number> {
  const [row] = await db.query<{ cap: number }>(
    'UPDATE smtp_accounts SET connection_cap = least(coalesce(connection_cap, $2), $2) WHERE id = $1 RETURNING connection_cap AS cap',
    [accountId, max],
  );
  return row?.cap ?? max;
}

/** A successful send ends a run of throttles: the next one backs off from the base again. */
export async function clearThrottleStrikes(db: Queryable, accountId: number): Promise<void> {
  await db.query('UPDATE smtp_accounts SET throttle_strikes = 0 WHERE id = $1 AND throttle_strikes > 0', [accountId]);
}

/** Forgets whatever failed before, and what the server taught: the account is healthy again (unless paused). */
export async function resetHealth(db: Queryable, accountId: number): Promise<void> {
  await db.query(
    `UPDATE smtp_accounts SET connection_cap = NULL, recovery_rate = NULL, recovery_until = NULL,
            health = CASE WHEN health = 'paused' THEN health ELSE 'healthy' END,
            health_until = CASE WHEN health = 'paused' THEN health_until END,
            health_reason = CASE WHEN health = 'paused' THEN health_reason END
      WHERE id = $1`,
    [accountId],
  );
}

/** Pauses the account for its bounce or complaint rate. Returns false when it was paused already (or is gone). */
export async function pauseAccount(db: Queryable, accountId: number, reason: string): Promise<boolean> {
  const rows = await db.query(
    `UPDATE smtp_accounts SET health = 'paused', health_until = NULL, health_reason = $2 WHERE id = $1 AND health <> 'paused' RETURNING id`,
    [accountId, reason],
  );
  return rows.length > 0;
}

/**
 * Lifts the pause of one of the user's accounts: healthy again, and the rate guard counts only the
 * sends from `now` on. Returns false when the account was not paused.
 */
export async function resumePausedAccount(db: Queryable, userId: number, accountId: number, now: Date): Promise<boolean> {
  const rows = await db.query(
    `UPDATE smtp_accounts SET health = 'healthy', health_until = NULL, health_reason = NULL, rate_guard_since = $3
      WHERE id = $1 AND user_id = $2 AND health = 'paused' RETURNING id`,
    [accountId, userId, now],
  );
  return rows.length > 0;
}

/** An account of a user with what decides whether it can send, for the automatic pause. */
export interface UserAccountState extends HealthFacts {
  id: number;
  email: string;
  leased: boolean;
}

/** Every account of a user with its health facts, in id order. */
export async function userAccountStates(db: Queryable, userId: number, now: Date): Promise<UserAccountState[]> {
  return db.query<UserAccountState>(
    `SELECT a.id, a.email, (a.active AND s.active) AS active, a.health, a.health_until AS "healthUntil", a.health_reason AS "healthReason",
            (a.lease_owner IS NOT NULL AND a.lease_expires_at >= $2) AS leased
       FROM smtp_accounts a JOIN smtp_servers s ON s.id = a.server_id
      WHERE a.user_id = $1 ORDER BY a.id`,
    [userId, now],
  );
}

/** Number of a user's accounts that could ever send. */
export async function countAccountsThatCouldSend(db: Queryable, userId: number): Promise<number> {
  const [row] = await db.query<{ n: number }>(
    `SELECT count(*) AS n FROM smtp_accounts a JOIN smtp_servers s ON s.id = a.server_id
      WHERE a.user_id = $1 AND ${COULD_EVER_SEND_SQL}`,
    [userId],
  );
  return row!.n;
}

/** The earliest end of a back-off still ahead, over all accounts (the scheduler's timer). */
export const NEXT_BACK_OFF_END_SQL = (now: string) =>
  `(SELECT min(health_until) FROM smtp_accounts WHERE health IN (${BACK_OFF}) AND health_until > ${now})`;
