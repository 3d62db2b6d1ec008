import type { AppContext } from '../context.ts';
import { exhaustAccount, setAccountHealth, throttleAccount } from '../db/engineAccounts.ts';
import { retryTransient } from '../db/transient.ts';
import type { AccountOutcome } from '../smtp/classify.ts';

/**
 * How long an account rests after its server throttles it (421, 4.7.x) or cannot be reached:
 * the base, doubled for each throttle in a row, reset by the next successful send.
 */
export const THROTTLE_BASE_MS = 30_000;
export const THROTTLE_MAX_MS = 30 * 60_000;

/**
 * The one owner of account health: what an account-level SMTP outcome does to the account.
 * Throttled and exhausted accounts come back by themselves; disabled ones when the user fixes them
 * (PATCH active: true or a new password, see smtpAccounts.updateAccount).
 */
export async function applyAccountOutcome(
  ctx: AppContext,
  account: { id: number; userId: number },
  outcome: AccountOutcome,
  giveUp: () => boolean = () => false,
): Promise<void> {
  const now = ctx.clock.now();
  let until: Date | null = null;
  await retryTransient(async () => {
    if (outcome.kind === 'account_throttled') {
      until = await throttleAccount(ctx.db, account.id, { now, baseMs: THROTTLE_BASE_MS, maxMs: THROTTLE_MAX_MS, reason: outcome.error });
    } else if (outcome.kind === 'account_exhausted') {
      until = await exhaustAccount(ctx.db, account.id, now, `the provider says the account is out of quota: ${outcome.error}`);
    } else {
      await setAccountHealth(ctx.db, account.id, 'disabled', null, `the server refused the account's credentials: ${outcome.error}`);
    }
  }, giveUp);
  ctx.log.warn({ accountId: account.id, outcome: outcome.kind, until, reply: outcome.error }, 'account health changed');
  ctx.events.emit({ type: 'engine.wake', userId: account.userId });
}
