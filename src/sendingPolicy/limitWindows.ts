import { startOfLocalDay, startOfLocalHour, startOfNextLocalDay } from './zonedTime.ts';

/**
 * The windows a limit counts sends in (API.md "Sending policy"):
 * - calendar: `hourlyLimit` per clock hour and `dailyLimit` per calendar day, in the account's time zone;
 * - rolling: `hourlyLimit` in any 60 minutes and `dailyLimit` in any 24 hours, as Google, Microsoft 365
 *   and SES count (SMTP-FACTS.md "Provider limits").
 *
 * Sends are counted per UTC minute (db/usage.ts). A calendar window is a whole number of minutes in
 * every zone in use, so it is counted exactly. A rolling window is counted to the minute, on the safe
 * side: a minute partly inside the window counts whole, so a send leaves the window at most a minute
 * after the exact instant, never before.
 */

export const LIMIT_WINDOW_KINDS = ['calendar', 'rolling'] as const;
export type LimitWindowKind = (typeof LIMIT_WINDOW_KINDS)[number];

export const MINUTE_MS = 60_000;
export const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;

/** Minutes [from, to) of usage counted by one window, in ms since the epoch. */
export interface Range {
  from: number;
  to: number;
}

export interface LimitWindow {
  kind: LimitWindowKind;
  span: 'hour' | 'day';
  range: Range;
  /** Calendar: when the window ends and the count starts afresh. Rolling: undefined (sends leave one by one). */
  resetsAt: number | undefined;
}

const floorMinute = (at: number) => Math.floor(at / MINUTE_MS) * MINUTE_MS;

/** The window an hourly or daily limit counts in at `at`; calendar windows in time zone `tz`. */
export function limitWindow(kind: LimitWindowKind, span: 'hour' | 'day', at: number, tz: string): LimitWindow {
  if (kind === 'rolling') {
    const length = span === 'hour' ? HOUR_MS : DAY_MS;
    // Every minute with a send inside (at - length, at]: the one holding at - length counts whole.
    return { kind, span, range: { from: floorMinute(at - length), to: floorMinute(at) + MINUTE_MS }, resetsAt: undefined };
  }
  const from = span === 'hour' ? startOfLocalHour(at, tz) : startOfLocalDay(at, tz);
  const to = span === 'hour' ? Math.min(from + HOUR_MS, startOfNextLocalDay(at, tz)) : startOfNextLocalDay(at, tz);
  return { kind, span, range: { from, to }, resetsAt: to };
}

/**
 * When a send counted in the rolling window's minute `minute` has left it: the first instant whose
 * window no longer holds any of that minute.
 */
export function rollingRelease(span: 'hour' | 'day', minute: number): number {
  return minute + MINUTE_MS + (span === 'hour' ? HOUR_MS : DAY_MS);
}
