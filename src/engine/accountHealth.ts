import type { AppContext } from '../context.ts';
import {
  clearThrottleStrikes,
  disableAccount,
  exhaustAccount,
  lowerConnectionCap,
  pauseAccount,
  resetHealth,
  resumePausedAccount,
  throttleAccount,
} from '../db/accountHealth.ts';
import type { Queryable } from '../db/database.ts';
import { clearServerPasswords } from '../db/smtpAccounts.ts';
import { retryTransient } from '../db/transient.ts';
import type { DisabledCause, SendOutcome } from '../smtp/classify.ts';

/**
 * How long an account rests after its server throttles it (SES 454, Google's peak relay limit,
 * 4.7.x, session after session refused) or cannot be reached: the base, doubled for each throttle
 * in a row, reset by the next successful send.
 */
export const THROTTLE_BASE_MS = 30_000;
export const THROTTLE_MAX_MS = 30 * 60_000;
/**
 * Gmail, Google Workspace, Microsoft 365 and SES all count their quotas over a rolling 24 h
 * (SMTP-FACTS.md, provider limits): 24 h after the refusal every send they counted has left the
 * window, whereas the next midnight could come while they still count the whole day.
 */
export const PROVIDER_QUOTA_WINDOW_MS = 24 * 60 * 60_000;
/**
 * After a throttle the account restarts gently for this long once its back-off ends: one
 * connection and, when the server said it sent too fast, half the pace the server accepted in
 * the last second before the throttle (never under MIN_RECOVERY_RATE), so it does not hit the same wall at once.
 */
export const RECOVERY_MS = 10 * 60_000;
export const MIN_RECOVERY_RATE = 1;
/** Exchange Online accepts 3 concurrent connections per mailbox (SMTP-FACTS.md: 432 4.3.2). */
export const EXCHANGE_CONNECTIONS = 3;

/**
 * The one owner of account health: every change of it goes through here (the statements are in
 * db/accountHealth.ts).
 *
 *   healthy ──throttle reply, no connection──► throttled ──health_until passes──► healthy (gently, RECOVERY_MS)
 *   healthy ──provider quota reply──► exhausted ──24 h later──► healthy
 *   healthy ──credentials, basic auth or OAuth2 consent refused──► disabled ──the user reconfigures it──► healthy
 *   healthy ──egress policy or AUTH without TLS refused──► disabled ──the user reconfigures it──► healthy
 *   any ──its server moved, password cleared──► disabled ──the password given again──► healthy
 *   any ──bounce or complaint rate past its user's threshold──► paused ──its user resumes it──► healthy
 *
 * Nothing but its user's resume leaves `paused`: no reply, reset or reconfiguration writes over it.
 * A successful send resets the run of throttles, so the next throttle backs off from the base.
 * Beside the state, what the server teaches stays on the account: fewer connections (432 4.3.2).
 */

/** What the worker saw when a throttle came, for the gentle restart after it. */
export interface ThrottleContext {
  /** Sends the server accepted in the second before the throttle. */
  acceptedLastSecond: number;
  /** The pace the account was held to then (its own or a recovery pace), sends a second; null = none. */
  ratePerSecond: number | null;
  /** The server refused session after session (not a reply about the pace): restart with one connection only. */
  sessionsRefused?: boolean;
}

/** The reason a disabled account shows: what happened and what the user does about it. */
function disabledReason(cause: DisabledCause, error: string): string {
  switch (cause) {
    case 'basic_auth_off':
      return `Microsoft 365 no longer accepts a password for this mailbox (basic authentication is off): switch the account to OAuth2 (PATCH it with auth: {"type": "oauth2", ...}; README, "OAuth2 accounts"). The server said: ${error}`;
    case 'oauth_revoked':
      return `the OAuth2 consent was revoked or has expired (the token endpoint answered invalid_grant): sign in again and PATCH the account with auth and a new refreshToken`;
    case 'oauth_refused':
      return `the OAuth2 token endpoint refused the account: check its clientId, clientSecret and tokenUrl (${error})`;
    case 'refused_locally':
      return error;
    default:
      return `the server refused the account's credentials: ${error}`;
  }
}

/**
 * What one send's outcome does to its account: `sent` ends a run of throttles, an account-level
 * outcome (smtp/classify.ts) throttles, exhausts or disables it. Other outcomes concern the message
 * only. `seen` (throttles only) sets the gentle restart. Retries transient database trouble until `giveUp()`.
 */
export async function onSendOutcome(
  ctx: AppContext,
  account: { id: number; userId: number },
  outcome: SendOutcome,
  giveUp: () => boolean = () => false,
  seen?: ThrottleContext,
): Promise<void> {
  const { kind } = outcome;
  if (kind === 'sent') return clearThrottleStrikes(ctx.db, account.id);
  if (kind !== 'account_throttled' && kind !== 'account_exhausted' && kind !== 'account_disabled') return;
  const now = ctx.clock.now();
  let until: Date | null = null;
  await retryTransient(async () => {
    if (kind === 'account_throttled') {
      const recovery = seen && (outcome.slowDown || seen.sessionsRefused) ? { rate: outcome.slowDown ? recoveryRate(seen) : null, forMs: RECOVERY_MS } : null;
      until = await throttleAccount(ctx.db, account.id, { now, baseMs: THROTTLE_BASE_MS, maxMs: THROTTLE_MAX_MS, reason: outcome.error, recovery });
    } else if (kind === 'account_exhausted') {
      const clears = new Date(now.getTime() + PROVIDER_QUOTA_WINDOW_MS);
      until = await exhaustAccount(ctx.db, account.id, clears, `the provider says the account is out of quota: ${outcome.error}`);
    } else {
      await disableAccount(ctx.db, account.id, disabledReason(outcome.cause, outcome.error));
    }
  }, giveUp);
  ctx.log.warn({ accountId: account.id, outcome: kind, until, reply: outcome.error }, 'account health changed');
  ctx.events.emit({ type: 'engine.wake', userId: account.userId });
}

/** Half of what the server took in its last second (or of the pace then in force, if lower). */
function recoveryRate(seen: ThrottleContext): number {
  const reached = Math.min(seen.acceptedLastSecond, seen.ratePerSecond ?? Infinity);
  return Math.max(MIN_RECOVERY_RATE, reached / 2);
}

/** The connections an account keeps to after the server refused one as too many (432 4.3.2) with `allowed` allowed. */
export function fewerConnections(allowed: number): number {
  return Math.max(1, Math.min(EXCHANGE_CONNECTIONS, allowed - 1));
}

/** The account keeps to at most `cap` concurrent connections from now on (until its user reconfigures it). */
export async function onTooManyConnections(ctx: AppContext, accountId: number, cap: number): Promise<number> {
  const stored = await retryTransient(() => lowerConnectionCap(ctx.db, accountId, cap));
  ctx.log.warn({ accountId, maxConnections: stored }, 'the server allows fewer concurrent connections: lowered');
  return stored;
}

/** The parts of an account whose change deserves a fresh attempt, whatever failed before. */
export interface Reconfiguration {
  active?: boolean;
  username?: string | null;
  password?: string | null;
  serverId?: number;
  auth?: unknown;
}

/**
 * The user changed the account: switching it back on, or changing how it connects (credentials,
 * OAuth2 grant, server), makes it healthy again and forgets what its server taught. Returns whether
 * its health was reset.
 */
export async function onReconfigured(db: Queryable, accountId: number, changes: Reconfiguration): Promise<boolean> {
  const fresh =
    changes.active === true || changes.password !== undefined || changes.username !== undefined || changes.serverId !== undefined || changes.auth !== undefined;
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

/**
 * The account's bounce or complaint rate passed its user's threshold (engine/rateGuard.ts): it is
 * paused with `reason`, and its worker, in whichever process, starts no new send. Returns false
 * when it was paused already.
 */
export async function onRateExceeded(ctx: Pick<AppContext, 'db' | 'events' | 'log'>, account: { id: number; userId: number }, reason: string): Promise<boolean> {
  const paused = await retryTransient(() => pauseAccount(ctx.db, account.id, reason));
  if (!paused) return false;
  ctx.log.warn({ accountId: account.id, reason }, 'account paused for its bounce or complaint rate');
  ctx.events.emit({ type: 'account.changed', userId: account.userId, accountIds: [account.id] });
  ctx.events.emit({ type: 'engine.wake', userId: account.userId });
  return true;
}

/** Its user lifts the pause (PATCH {resume: true}): the rate guard counts from `now`. Returns whether it was paused. */
export async function onResumed(db: Queryable, userId: number, accountId: number, now: Date): Promise<boolean> {
  return resumePausedAccount(db, userId, accountId, now);
}
