import type { AppContext } from '../context.ts';
import { clearThrottleStrikes, disableAccount, exhaustAccount, resetHealth, throttleAccount } from '../db/accountHealth.ts';
import type { Queryable } from '../db/database.ts';
import { clearServerPasswords } from '../db/smtpAccounts.ts';
import { retryTransient } from '../db/transient.ts';
import type { SendOutcome } from '../smtp/classify.ts';

/**
 * How long an account rests after its server throttles it (421, 4.7.x) or cannot be reached:
 * the base, doubled for each throttle in a row, reset by the next successful send.
 */
export const THROTTLE_BASE_MS = 30_000;
export const THROTTLE_MAX_MS = 30 * 60_000;

/**
 * The one owner of account health: every change of it goes through here (the statements are in
 * db/accountHealth.ts).
 *
 *   healthy ──throttle reply, no connection──► throttled ──health_until passes──► healthy
 *   healthy ──provider quota reply──► exhausted ──next day in its timezone──► healthy
 *   healthy ──credentials refused──► disabled ──the user reconfigures it──► healthy
 *   healthy ──egress policy or AUTH without TLS refused──► disabled ──the user reconfigures it──► healthy
 *   any ──its server moved, password cleared──► disabled ──the password given again──► healthy
 *
 * A successful send resets the run of throttles, so the next throttle backs off from the base.
 */

/**
 * What one send's outcome does to its account: `sent` ends a run of throttles, an account-level
 * outcome (smtp/classify.ts) throttles, exhausts or disables it. Other outcomes concern the message
 * only. Retries transient database trouble until `giveUp()`.
 */
export async function onSendOutcome(
  ctx: AppContext,
  account: { id: number; userId: number },
  outcome: SendOutcome,
  giveUp: () => boolean = () => false,
): Promise<void> {
  const { kind } = outcome;
  if (kind === 'sent') return clearThrottleStrikes(ctx.db, account.id);
  if (kind !== 'account_throttled' && kind !== 'account_exhausted' && kind !== 'account_disabled') return;
  const now = ctx.clock.now();
  let until: Date | null = null;
  await retryTransient(async () => {
    if (kind === 'account_throttled') {
      until = await throttleAccount(ctx.db, account.id, { now, baseMs: THROTTLE_BASE_MS, maxMs: THROTTLE_MAX_MS, reason: outcome.error });
    } else if (kind === 'account_exhausted') {
      until = await exhaustAccount(ctx.db, account.id, now, `the provider says the account is out of quota: ${outcome.error}`);
    } else {
      await disableAccount(ctx.db, account.id, outcome.refusedLocally ? outcome.error : `the server refused the account's credentials: ${outcome.error}`);
    }
  }, giveUp);
  ctx.log.warn({ accountId: account.id, outcome: kind, until, reply: outcome.error }, 'account health changed');
  ctx.events.emit({ type: 'engine.wake', userId: account.userId });
}

/** The parts of an account whose change deserves a fresh attempt, whatever failed before. */
export interface Reconfiguration {
  active?: boolean;
  username?: string | null;
  password?: string | null;
  serverId?: number;
}

/**
 * The user changed the account: switching it back on, or changing how it connects (credentials,
 * server), makes it healthy again. Returns whether its health was reset.
 */
export async function onReconfigured(db: Queryable, accountId: number, changes: Reconfiguration): Promise<boolean> {
  const fresh = changes.active === true || changes.password !== undefined || changes.username !== undefined || changes.serverId !== undefined;
  if (fresh) await resetHealth(db, accountId);
  return fresh;
}

/** The health reason of an account whose password a server change cleared. */
export const PASSWORD_CLEARED_REASON =
  "its server's host, port or security changed, so its password was cleared: give the password again (PATCH the account)";

/**
 * The user changed where one of its servers is (host, port or security). A stored password goes only
 * where its owner sent it, so the accounts on that server lose theirs and are disabled until it is
 * given again; the accounts without one start afresh, like any reconfigured account. Returns the
 * accounts whose password was cleared.
 */
export async function onServerMoved(db: Queryable, userId: number, serverId: number): Promise<number[]> {
  const { cleared, others } = await clearServerPasswords(db, userId, serverId);
  for (const id of cleared) await disableAccount(db, id, PASSWORD_CLEARED_REASON);
  for (const id of others) await resetHealth(db, id);
  return cleared;
}
