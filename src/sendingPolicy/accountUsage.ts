import type { Queryable } from '../db/database.ts';
import { readFacts } from './facts.ts';
import { decide, type PolicyFacts } from './policy.ts';

/**
 * An account's usage as the API shows it (API.md `usage`): sends (never reservations) in its current
 * windows (the clock hour and calendar day in its zone, or the last 60 minutes and 24 hours), its
 * limits, today's daily limit after warm-up, and when it may send next (null: now).
 */
export interface AccountUsage {
  sentThisHour: number;
  sentToday: number;
  hourlyLimit: number;
  dailyLimit: number;
  effectiveDailyLimit: number;
  nextSendAt: Date | null;
}

export function usageOf(f: PolicyFacts, now: Date): AccountUsage {
  const d = decide(f, now.getTime(), 1);
  const gap = f.gapUntil !== undefined && f.gapUntil > now.getTime() ? new Date(f.gapUntil) : null;
  return {
    sentThisHour: f.hour.sent,
    sentToday: f.day.sent,
    hourlyLimit: f.rules.hourlyLimit,
    dailyLimit: f.rules.dailyLimit,
    effectiveDailyLimit: d.effectiveDailyLimit,
    nextSendAt: d.allowance > 0 ? gap : d.nextAt === null ? null : new Date(d.nextAt),
  };
}

/** The usage of each account, read in two statements whatever their number. */
export async function readAccountUsage(db: Queryable, accountIds: number[], now: Date): Promise<Map<number, AccountUsage>> {
  const facts = await readFacts(db, accountIds, now);
  return new Map([...facts].map(([id, f]) => [id, usageOf(f, now)]));
}
