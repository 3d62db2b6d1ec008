import { backOffUntil, couldEverSend, type HealthFacts } from '../db/accountHealth.ts';
import type { PauseReason } from '../states.ts';
import { MINUTE_MS, rollingRelease, type LimitWindow, type LimitWindowKind } from './limitWindows.ts';
import { closesAt, nextOpening, type SendingWindow } from './sendingWindow.ts';
import { startOfNextLocalDay } from './zonedTime.ts';

/**
 * The sending policy: when account A may send its next message, and how many it may send now. One
 * function, `decide`, over the facts the database holds (db/usage.ts reads them); the engine's
 * reservation, the automatic pause and its resumeAt, the account's `usage.nextSendAt` and the
 * campaign forecast all ask it, so none of them is a second model.
 *
 * Rules, each one of the account's or its user's settings (API.md "Sending policy"):
 * - health: a disabled or switched-off account never sends; a throttled or exhausted one waits for its `until`;
 * - sending window: nothing starts outside it;
 * - hourly and daily limits in calendar or rolling windows (limitWindows.ts);
 * - warm-up: on the Nth sending day the daily limit is min(dailyLimit, startPerDay + (N-1) × increasePerDay);
 * - domain caps: limits shared by all of the user's accounts at one domain;
 * - gaps: at most one send per `minGapSeconds` (the worker spaces them, see engine/sendPace.ts).
 * They combine as the smallest allowance wins, and a send may start at the earliest instant every
 * rule allows one (`nextAt`).
 */

/** How long reserved sends may be spent: short, since a crashed worker's unspent holds count until then. */
export const HOLD_TTL_MS = 60_000;

export interface Warmup {
  startPerDay: number;
  increasePerDay: number;
}

/** An account's own rules, as configured. A limit of 0 is no limit. */
export interface AccountRules {
  hourlyLimit: number;
  dailyLimit: number;
  limitWindow: LimitWindowKind;
  timezone: string;
  sendingWindow: SendingWindow | null;
  warmup: Warmup | null;
  minGapSeconds: number | null;
  maxGapSeconds: number | null;
}

/** One of the user's domain caps (API.md `domain-caps`): calendar windows are UTC. */
export interface DomainCap {
  id: number;
  domain: string;
  hourlyLimit: number;
  dailyLimit: number;
  limitWindow: LimitWindowKind;
}

/** What has been counted in one window: sends made, and reserved sends not spent or given back yet. */
export interface Tally {
  window: LimitWindow;
  sent: number;
  held: number;
  /** The latest `valid_until` of the holds counted (ms). */
  heldUntil: number | undefined;
  /**
   * A full rolling window: the minute of its oldest sends by which enough of them are counted that,
   * once they have left, one more send fits (ms); undefined when its holds alone fill it.
   */
  releaseMinute: number | undefined;
}

export interface PolicyFacts {
  accountId: number;
  rules: AccountRules;
  health: HealthFacts;
  /** Local days (account zone) on which the account sent, before today: warm-up day N is this + 1. */
  sendingDaysBefore: number;
  /** The earliest instant the next send may start, after the last one's gap (ms), if any. */
  gapUntil: number | undefined;
  hour: Tally;
  day: Tally;
  caps: { cap: DomainCap; hour: Tally; day: Tally }[];
}

export interface Decision {
  /** Sends that may start now (at most what was asked for). */
  allowance: number;
  /** They must start before this instant (ms). */
  validUntil: number;
  /** When nothing may start now: the earliest instant something may (ms); null when no rule lets it by itself. */
  nextAt: number | null;
  /** When nothing may start now: the rule that holds it back longest. */
  reason: PauseReason | null;
  /** The daily limit today after warm-up (0 = none). */
  effectiveDailyLimit: number;
}

/** Today's daily limit: the account's, lowered by its warm-up ramp (0 = no limit). */
export function effectiveDailyLimit(rules: AccountRules, sendingDaysBefore: number): number {
  if (!rules.warmup) return rules.dailyLimit;
  const ramp = Math.max(1, rules.warmup.startPerDay + sendingDaysBefore * rules.warmup.increasePerDay);
  return rules.dailyLimit > 0 ? Math.min(rules.dailyLimit, ramp) : ramp;
}

interface Block {
  at: number;
  reason: PauseReason;
}

/**
 * When a full window has room for one more send: a calendar window when it resets; a rolling one
 * when enough of its oldest sends have left it (holds it counts leave last, at their validity plus
 * the window's length).
 */
function release(t: Tally, now: number): number {
  const { window } = t;
  if (window.resetsAt !== undefined) return window.resetsAt;
  if (t.releaseMinute !== undefined) return rollingRelease(window.span, t.releaseMinute);
  return Math.max(now + MINUTE_MS, t.heldUntil === undefined ? now : rollingRelease(window.span, t.heldUntil));
}

export function decide(f: PolicyFacts, now: number, want: number): Decision {
  const daily = effectiveDailyLimit(f.rules, f.sendingDaysBefore);
  const never = (): Decision => ({ allowance: 0, validUntil: now, nextAt: null, reason: 'account_health', effectiveDailyLimit: daily });
  if (!couldEverSend(f.health)) return never();

  let allowance = want;
  let validUntil = now + HOLD_TTL_MS;
  const blocks: Block[] = [];
  const limitBy = (t: Tally, limit: number, reason: PauseReason) => {
    if (limit <= 0) return;
    const room = limit - t.sent - t.held;
    if (room <= 0) blocks.push({ at: release(t, now), reason });
    allowance = Math.min(allowance, Math.max(0, room));
    if (t.window.resetsAt !== undefined) validUntil = Math.min(validUntil, t.window.resetsAt);
  };

  const backOff = backOffUntil(f.health, new Date(now));
  if (backOff) blocks.push({ at: backOff.getTime(), reason: 'account_health' });

  limitBy(f.hour, f.rules.hourlyLimit, 'limits');
  const warmupBinds = f.rules.warmup !== null && (f.rules.dailyLimit === 0 || daily < f.rules.dailyLimit);
  limitBy(f.day, daily, warmupBinds ? 'warmup' : 'limits');
  if (f.rules.warmup) {
    // Tomorrow's ramp differs from today's: reservations end with the day.
    const tomorrow = startOfNextLocalDay(now, f.rules.timezone);
    validUntil = Math.min(validUntil, tomorrow);
    const last = blocks.at(-1);
    if (warmupBinds && last?.reason === 'warmup') last.at = Math.min(last.at, tomorrow);
  }
  for (const c of f.caps) {
    limitBy(c.hour, c.cap.hourlyLimit, 'domain_cap');
    limitBy(c.day, c.cap.dailyLimit, 'domain_cap');
  }

  if (f.rules.sendingWindow) {
    const close = closesAt(f.rules.sendingWindow, now);
    if (close === undefined) {
      const opens = nextOpening(f.rules.sendingWindow, now);
      blocks.push({ at: opens ?? Infinity, reason: 'sending_window' });
    } else validUntil = Math.min(validUntil, close);
  }

  if (f.rules.minGapSeconds) allowance = Math.min(allowance, Math.max(1, Math.floor(HOLD_TTL_MS / (f.rules.minGapSeconds * 1000))));

  if (blocks.length === 0 && allowance > 0) return { allowance, validUntil, nextAt: null, reason: null, effectiveDailyLimit: daily };
  // Every rule must let a send through at once: the latest of their moments, inside the sending window.
  let latest = blocks.reduce<Block>((a, b) => (b.at > a.at ? b : a), { at: now, reason: 'limits' });
  if (f.rules.sendingWindow && latest.reason !== 'sending_window' && Number.isFinite(latest.at)) {
    const opens = nextOpening(f.rules.sendingWindow, latest.at);
    if (opens === undefined || opens > latest.at) latest = { at: opens ?? Infinity, reason: 'sending_window' };
  }
  return {
    allowance: 0,
    validUntil: now,
    nextAt: Number.isFinite(latest.at) ? latest.at : null,
    reason: latest.reason,
    effectiveDailyLimit: daily,
  };
}

/**
 * The gap after a send started at `at`: a random pause in [minGapSeconds, maxGapSeconds] (maxGap
 * defaults to minGap). Undefined when the account has no gaps.
 */
export function gapAfter(rules: Pick<AccountRules, 'minGapSeconds' | 'maxGapSeconds'>, at: number): number | undefined {
  if (!rules.minGapSeconds) return undefined;
  const min = rules.minGapSeconds * 1000;
  const max = Math.max(min, (rules.maxGapSeconds ?? rules.minGapSeconds) * 1000);
  return at + min + Math.random() * (max - min);
}
