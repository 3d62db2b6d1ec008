import type { Database } from '../db/database.ts';
import { giveBackHold, insertHold, lockReservations, readPolicyConfigs, recordSend, type PolicyConfigRow } from '../db/usage.ts';
import type { PauseReason } from '../states.ts';
import { factsOf, hasLimits, rulesOf } from './facts.ts';
import { limitWindow } from './limitWindows.ts';
import { decide, type AccountRules, type Decision, type PolicyFacts } from './policy.ts';

/** Sends reserved for one account: start at most `granted` of them, each before `validUntil`. */
export interface Reservation {
  granted: number;
  /** The hold the sends are counted in until they land (null: the account has no limit to hold them against). */
  holdId: number | null;
  validUntil: Date;
  /** When nothing was granted: the earliest moment a send may start (null: none by itself), and why. */
  nextAt: Date | null;
  reason: PauseReason | null;
  rules: AccountRules | undefined;
  /** The earliest start of the next send, after the last one's gap. */
  gapUntil: Date | null;
}

const refused = (now: Date): Reservation => ({
  granted: 0,
  holdId: null,
  validUntil: now,
  nextAt: null,
  reason: 'account_health',
  rules: undefined,
  gapUntil: null,
});

/** Facts of an account without limits: nothing to count. */
function uncounted(c: PolicyConfigRow, now: number): PolicyFacts {
  const empty = (span: 'hour' | 'day') => ({ window: limitWindow('calendar', span, now, c.timezone), sent: 0, held: 0, heldUntil: undefined, releaseMinute: undefined });
  return {
    accountId: c.accountId,
    rules: rulesOf(c),
    health: { active: c.active, health: c.health, healthUntil: c.healthUntil, healthReason: c.healthReason },
    sendingDaysBefore: c.sendingDaysBefore,
    gapUntil: c.gapUntil?.getTime(),
    hour: empty('hour'),
    day: empty('day'),
    caps: [],
  };
}

function reservation(d: Decision, c: PolicyConfigRow, holdId: number | null): Reservation {
  return {
    granted: d.allowance,
    holdId,
    validUntil: new Date(d.validUntil),
    nextAt: d.nextAt === null ? null : new Date(d.nextAt),
    reason: d.reason,
    rules: rulesOf(c),
    gapUntil: c.gapUntil,
  };
}

/**
 * Reserves up to `want` sends of an account at `now`, as the sending policy allows (policy.ts). For
 * an account with limits, in one transaction: its reservations (and its domain caps') are locked,
 * everything counted is read afresh, the policy decides, and what it grants is held (db/usage.ts
 * send_holds) until spent or given back. Concurrent reservations of one account or one cap, in any
 * process, cannot pass a limit. An account without limits holds nothing.
 */
export async function reserveSends(db: Database, accountId: number, want: number, now: Date): Promise<Reservation> {
  const [config] = await readPolicyConfigs(db, [accountId], now);
  if (!config) return refused(now);
  if (!hasLimits(config)) return reservation(decide(uncounted(config, now.getTime()), now.getTime(), want), config, null);
  return db.transaction(async (tx) => {
    await lockReservations(tx, accountId, config.caps.map((c) => c.id));
    // Read again under the lock: a cap added meanwhile is locked too before anything is counted.
    const [fresh] = await readPolicyConfigs(tx, [accountId], now);
    if (!fresh) return refused(now);
    const unlocked = fresh.caps.filter((c) => !config.caps.some((x) => x.id === c.id)).map((c) => c.id);
    if (unlocked.length > 0) await lockReservations(tx, accountId, unlocked);
    const facts = (await factsOf(tx, [fresh], now)).get(accountId)!;
    const d = decide(facts, now.getTime(), want);
    const holdId = d.allowance > 0 ? await insertHold(tx, accountId, now, new Date(d.validUntil), d.allowance) : null;
    return reservation(d, fresh, holdId);
  });
}

/** Gives back `count` unspent sends of a hold (see giveBackHold: never repeated). */
export async function giveBack(db: Database, holdId: number | null, count: number): Promise<void> {
  if (holdId !== null) await giveBackHold(db, holdId, count);
}

/** Counts one send of a test message, which has no queue row, out of its hold. */
export async function countTestSend(db: Database, accountId: number, holdId: number | null, startedAt: Date): Promise<void> {
  await recordSend(db, accountId, holdId, startedAt);
}
