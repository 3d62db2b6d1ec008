import { couldEverSend, userAccountStates } from '../db/accountHealth.ts';
import { sendingCampaignsOf } from '../db/campaigns.ts';
import type { Queryable } from '../db/database.ts';
import { accountPaces, readPolicyConfigs, usageSince, type PolicyConfigRow } from '../db/usage.ts';
import { rulesOf } from './facts.ts';
import { DAY_MS, limitWindow, MINUTE_MS, type LimitWindow, type LimitWindowKind } from './limitWindows.ts';
import { decide, effectiveDailyLimit, type PolicyFacts, type Tally } from './policy.ts';
import { localParts } from './zonedTime.ts';

/**
 * A campaign's forecast (API.md `GET /campaigns/:id/forecast`): how many sends each day and when the
 * last one goes, under every rule of the sending policy. It replays the engine's behaviour over time
 * with the policy's own `decide` on simulated usage (the real usage of the last day to start from),
 * so it is no second model of the rules. What it assumes of its own:
 * - an account sends at its `ratePerSecond`, or without one at UNPACED_RATE per SMTP session;
 * - the user's campaigns share its accounts equally while each has messages (the engine's round-robin);
 * - nothing fails or is retried, and no one pauses, stops or changes a setting.
 */

/** Messages a second one SMTP session sends when the account sets no pace (loopback runs far faster). */
export const UNPACED_RATE = 10;
/** Simulated time moves in steps of at most this long while some account sends. */
const STEP_MS = MINUTE_MS;
/** The forecast looks this far ahead at most, and gives up on finishing beyond it. */
export const HORIZON_DAYS = 400;
const HORIZON_MS = HORIZON_DAYS * DAY_MS;
const MAX_STEPS = 200_000;
const CAP_TIMEZONE = 'UTC';

export interface Forecast {
  /** When the campaign's last message is expected to go; null when no rule lets it finish within the horizon. */
  finishAt: Date | null;
  /** Sends expected per day (in `timezone`), from today on. */
  days: { date: string; sends: number }[];
}

/** Sends per minute, in time order, read as windows slide forward. */
class MinuteLog {
  private minutes: number[] = [];
  private counts: number[] = [];

  add(minute: number, n: number): void {
    if (this.minutes.at(-1) === minute) this.counts[this.counts.length - 1]! += n;
    else {
      this.minutes.push(minute);
      this.counts.push(n);
    }
  }

  entries(): [number, number][] {
    return this.minutes.map((m, i) => [m, this.counts[i]!]);
  }

  tally(window: LimitWindow, limit: number): Tally {
    let sent = 0;
    const inWindow: [number, number][] = [];
    for (let i = this.minutes.length - 1; i >= 0 && this.minutes[i]! >= window.range.from; i--) {
      if (this.minutes[i]! >= window.range.to) continue;
      sent += this.counts[i]!;
      inWindow.push([this.minutes[i]!, this.counts[i]!]);
    }
    let releaseMinute: number | undefined;
    if (window.kind === 'rolling' && limit > 0 && sent >= limit) {
      let cum = 0;
      for (const [minute, n] of inWindow.reverse()) {
        cum += n;
        if (cum >= sent - limit + 1) {
          releaseMinute = minute;
          break;
        }
      }
    }
    return { window, sent, held: 0, heldUntil: undefined, releaseMinute };
  }
}

interface SimAccount {
  config: PolicyConfigRow;
  rate: number;
  log: MinuteLog;
  days: Set<string>;
  /** Sends owed from fractions of earlier steps. */
  carry: number;
}

export async function forecastCampaign(
  db: Queryable,
  userId: number,
  campaign: { id: number; pending: number },
  from: Date,
  timezone: string,
): Promise<Forecast> {
  const start = from.getTime();
  const states = await userAccountStates(db, userId, from);
  const ids = states.filter(couldEverSend).map((a) => a.id);
  const configs = await readPolicyConfigs(db, ids, from);
  const capAccounts = [...new Set(configs.flatMap((c) => c.caps.flatMap((cap) => cap.accountIds)))];
  const usage = await usageSince(db, [...new Set([...ids, ...capAccounts])], new Date(start - DAY_MS - MINUTE_MS));
  const paces = new Map((await accountPaces(db, ids)).map((p) => [p.accountId, p]));
  const logs = new Map<number, MinuteLog>();
  const logOf = (id: number) => logs.get(id) ?? logs.set(id, new MinuteLog()).get(id)!;
  for (const u of usage) logOf(u.accountId).add(u.minute.getTime(), u.sent);

  const accounts: SimAccount[] = configs.map((config) => {
    const pace = paces.get(config.accountId)!;
    const gap = config.minGapSeconds ? ((config.minGapSeconds + (config.maxGapSeconds ?? config.minGapSeconds)) / 2) * 1000 : undefined;
    const rate = Math.min(pace.ratePerSecond ?? UNPACED_RATE * pace.connections, gap ? 1000 / gap : Infinity);
    // Today's sends so far make today a sending day (the rules count the days before it).
    const today = localParts(start, config.timezone).date;
    const sentToday = usage.some((u) => u.accountId === config.accountId && localParts(u.minute.getTime(), config.timezone).date === today);
    return { config, rate, log: logOf(config.accountId), days: new Set(sentToday ? [today] : []), carry: 0 };
  });

  const others = (await sendingCampaignsOf(db, userId)).filter((c) => c.id !== campaign.id).map((c) => ({ ...c }));
  const target = { id: campaign.id, pending: campaign.pending };
  const days = new Map<string, number>();
  if (target.pending === 0) return { finishAt: from, days: [] };

  const capLog = (accountIds: number[]) => {
    const merged = new MinuteLog();
    const all = accountIds.flatMap((id) => logs.get(id)?.entries() ?? []).sort((a, b) => a[0] - b[0]);
    for (const [minute, n] of all) merged.add(minute, n);
    return merged;
  };
  const factsAt = (a: SimAccount, at: number): PolicyFacts => {
    const c = a.config;
    const sendingDaysBefore = c.sendingDaysBefore + [...a.days].filter((d) => d < localParts(at, c.timezone).date).length;
    const rules = rulesOf(c);
    const windowOf = (kind: LimitWindowKind, span: 'hour' | 'day', tz: string) => limitWindow(kind, span, at, tz);
    const daily = effectiveDailyLimit(rules, sendingDaysBefore);
    return {
      accountId: c.accountId,
      rules,
      health: { active: c.active, health: c.health, healthUntil: c.healthUntil, healthReason: c.healthReason },
      sendingDaysBefore,
      gapUntil: undefined,
      hour: a.log.tally(windowOf(c.limitWindow, 'hour', c.timezone), c.hourlyLimit),
      day: a.log.tally(windowOf(c.limitWindow, 'day', c.timezone), daily),
      caps: c.caps.map((cap) => {
        const log = capLog(cap.accountIds);
        return {
          cap,
          hour: log.tally(windowOf(cap.limitWindow, 'hour', CAP_TIMEZONE), cap.hourlyLimit),
          day: log.tally(windowOf(cap.limitWindow, 'day', CAP_TIMEZONE), cap.dailyLimit),
        };
      }),
    };
  };

  let t = start;
  for (let step = 0; step < MAX_STEPS && t < start + HORIZON_MS; step++) {
    const demand = target.pending + others.reduce((n, o) => n + o.pending, 0);
    let sentThisStep = 0;
    let nextAt = Infinity;
    for (const a of accounts) {
      const left = demand - sentThisStep;
      if (left <= 0) break;
      const d = decide(factsAt(a, t), t, left);
      if (d.allowance === 0) {
        if (d.nextAt !== null) nextAt = Math.min(nextAt, d.nextAt);
        continue;
      }
      const span = Math.min(STEP_MS, d.validUntil - t);
      const capacity = a.rate * (span / 1000) + a.carry;
      const n = Math.min(d.allowance, left, Math.floor(capacity));
      a.carry = n === Math.floor(capacity) ? capacity - n : 0;
      if (n === 0) {
        nextAt = Math.min(nextAt, t + span);
        continue;
      }
      a.log.add(Math.floor(t / MINUTE_MS) * MINUTE_MS, n);
      a.days.add(localParts(t, a.config.timezone).date);
      sentThisStep += n;
      nextAt = Math.min(nextAt, t + Math.max(MINUTE_MS / 60, Math.min(span, (n / a.rate) * 1000)));
    }
    if (sentThisStep > 0) {
      const forTarget = share(target, others, sentThisStep);
      const date = localParts(t, timezone).date;
      days.set(date, (days.get(date) ?? 0) + forTarget);
      if (target.pending === 0) return { finishAt: new Date(t), days: [...days].map(([date, sends]) => ({ date, sends })) };
    }
    if (!Number.isFinite(nextAt)) break;
    t = Math.max(nextAt, t + 1);
  }
  return { finishAt: null, days: [...days].map(([date, sends]) => ({ date, sends })) };
}

/**
 * Splits `sends` over the campaigns that still have messages, equally (the engine's round-robin),
 * each taking at most what it has left. Returns the target's part, and takes every part off.
 */
function share(target: { pending: number }, others: { pending: number }[], sends: number): number {
  const all = [target, ...others];
  let left = sends;
  let taken = 0;
  while (left > 0) {
    const open = all.filter((c) => c.pending > 0);
    if (open.length === 0) break;
    const each = Math.max(1, Math.floor(left / open.length));
    for (const c of open) {
      const n = Math.min(each, c.pending, left);
      c.pending -= n;
      left -= n;
      if (c === target) taken += n;
      if (left === 0) break;
    }
  }
  return taken;
}
