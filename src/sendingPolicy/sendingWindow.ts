import { instantOf, localParts, nextDate, type Weekday } from './zonedTime.ts';

/**
 * An account's sending window (API.md `sendingWindow`): it sends only on these days, between these
 * local times, in this IANA zone; DST-correct (a window of 09:00–17:00 is 09:00–17:00 on the wall
 * clock on both sides of a change). `end` after `start`, `"24:00"` for the end of the day.
 */
export interface SendingWindow {
  timezone: string;
  days: Weekday[];
  /** `HH:MM`, local. */
  start: string;
  /** `HH:MM`, local, after `start`; `24:00` is midnight at the end of the day. */
  end: string;
}

export const WEEKDAY_NAMES = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const satisfies readonly Weekday[];
/** How far ahead the next opening is looked for: a week covers every day of the week. */
const LOOKAHEAD_DAYS = 8;

const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** When the window that is open at `at` closes, or undefined when it is closed at `at`. */
export function closesAt(w: SendingWindow, at: number): number | undefined {
  const p = localParts(at, w.timezone);
  if (!w.days.includes(p.weekday)) return undefined;
  const start = minutesOf(w.start);
  const end = minutesOf(w.end);
  if (p.minuteOfDay < start || p.minuteOfDay >= end) return undefined;
  return end >= 24 * 60 ? instantOf(nextDate(p.date), 0, w.timezone) : instantOf(p.date, end, w.timezone);
}

/** The first instant at or after `at` inside the window; undefined when it has no day at all. */
export function nextOpening(w: SendingWindow, at: number): number | undefined {
  if (closesAt(w, at) !== undefined) return at;
  let date = localParts(at, w.timezone).date;
  for (let i = 0; i < LOOKAHEAD_DAYS; i++, date = nextDate(date)) {
    const weekday = localParts(instantOf(date, 12 * 60, w.timezone), w.timezone).weekday;
    if (!w.days.includes(weekday)) continue;
    const opens = instantOf(date, minutesOf(w.start), w.timezone);
    if (opens >= at) return opens;
  }
  return undefined;
}
