import type { AppContext } from '../context.ts';
import { setAccountHealth } from '../db/engineAccounts.ts';
import type { SendOutcome } from '../smtp/classify.ts';

/** How long an account rests after the server throttles it (421, 4.7.x) or cannot be reached. */
export const THROTTLE_BACKOFF_MS = 60_000;

/**
 * The one owner of account health: what an account-level SMTP outcome does to the account.
 * Throttled and exhausted accounts come back by themselves; disabled ones when the user fixes them.
 */
export async function applyAccountOutcome(
  ctx: AppContext,
  account: { id: number; userId: number; timezone: string },
  outcome: Extract<SendOutcome, { kind: 'account_throttled' | 'account_exhausted' | 'account_disabled' }>,
): Promise<void> {
  const now = ctx.clock.now();
  if (outcome.kind === 'account_throttled') {
    await setAccountHealth(ctx.db, account.id, 'throttled', new Date(now.getTime() + THROTTLE_BACKOFF_MS), outcome.error);
  } else if (outcome.kind === 'account_exhausted') {
    const [row] = await ctx.db.query<{ at: Date }>('SELECT next_day_window_start($1, $2) AS at', [now, account.timezone]);
    await setAccountHealth(ctx.db, account.id, 'exhausted', row!.at, outcome.error);
  } else {
    await setAccountHealth(ctx.db, account.id, 'disabled', null, `the server refused the account's credentials: ${outcome.error}`);
  }
  ctx.log.warn({ accountId: account.id, outcome: outcome.kind, reply: outcome.error }, 'account health changed');
  ctx.events.emit({ type: 'engine.wake', userId: account.userId });
}
