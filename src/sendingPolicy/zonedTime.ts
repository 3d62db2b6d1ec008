/**
 * Local time in an IANA time zone, DST-correct, from the tz database that Intl carries. Instants are
 * milliseconds since the epoch; a local day is `YYYY-MM-DD`; a local time of day is minutes after
 * midnight. Every zone in use today is offset from UTC by a multiple of 15 minutes, so local hours
 * and days are whole UTC minutes (what the usage buckets of db/usage.ts rely on).
 */

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
// Offsets change at most a few times a year; one lookup per zone per quarter hour is plenty.
const OFFSET_CACHE_SLOT_MS = 15 * MINUTE_MS;
const OFFSET_CACHE_MAX = 50_000;

const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

export interface LocalParts {
  /** `YYYY-MM-DD` */
  date: string;
  weekday: Weekday;
  /** Minutes after local midnight, with the seconds as a fraction. */
  minuteOfDay: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(tz, f);
  }
  return f;
}

const offsets = new Map<string, number>();

/** The zone's offset from UTC at `at`, in minutes (east positive: Asia/Kolkata is +330). */
export function offsetMinutes(at: number, tz: string): number {
  const key = `${tz}|${Math.floor(at / OFFSET_CACHE_SLOT_MS)}`;
  const cached = offsets.get(key);
  if (cached !== undefined) return cached;
  const p: Record<string, string> = {};
  for (const part of formatter(tz).formatToParts(new Date(at))) p[part.type] = part.value;
  const asUtc = Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day), Number(p.hour), Number(p.minute), Number(p.second));
  const offset = Math.round((asUtc - Math.floor(at / 1000) * 1000) / MINUTE_MS);
  if (offsets.size >= OFFSET_CACHE_MAX) offsets.clear();
  offsets.set(key, offset);
  return offset;
}

/** The local calendar date, weekday and time of day of an instant. */
export function localParts(at: number, tz: string): LocalParts {
  const local = new Date(at + offsetMinutes(at, tz) * MINUTE_MS);
  return {
    date: local.toISOString().slice(0, 10),
    weekday: WEEKDAYS[local.getUTCDay()]!,
    minuteOfDay: local.getUTCHours() * 60 + local.getUTCMinutes() + local.getUTCSeconds() / 60 + local.getUTCMilliseconds() / MINUTE_MS,
  };
}

/**
 * The instant of a local date and time of day. A time that does not exist (skipped by a DST jump)
 * is moved forward by the jump, as the clocks are; a time that exists twice (clocks going back)
 * is its first occurrence.
 */
export function instantOf(date: string, minuteOfDay: number, tz: string): number {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  const wall = Date.UTC(y, m - 1, d) + minuteOfDay * MINUTE_MS;
  // The offset an hour before and after the wall time bracket any transition near it.
  const before = offsetMinutes(wall - DAY_MS / 2, tz);
  const after = offsetMinutes(wall + DAY_MS / 2, tz);
  const early = wall - before * MINUTE_MS;
  if (offsetMinutes(early, tz) === before) return early;
  const late = wall - after * MINUTE_MS;
  if (offsetMinutes(late, tz) === after) return late;
  // In the gap: the wall time read with the offset before the jump lands after it.
  return wall - before * MINUTE_MS;
}

/** The day after a local date. */
export function nextDate(date: string): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + DAY_MS).toISOString().slice(0, 10);
}

/** Start of the local day that holds `at`. */
export function startOfLocalDay(at: number, tz: string): number {
  return instantOf(localParts(at, tz).date, 0, tz);
}

/** Start of the local day after the one that holds `at`. */
export function startOfNextLocalDay(at: number, tz: string): number {
  return instantOf(nextDate(localParts(at, tz).date), 0, tz);
}

/**
 * Start of the local clock hour that holds `at`: the last instant before it at which local time
 * read :00. When clocks go back, the two 01:00 hours are two different hours.
 */
export function startOfLocalHour(at: number, tz: string): number {
  const local = at + offsetMinutes(at, tz) * MINUTE_MS;
  return at - (((local % HOUR_MS) + HOUR_MS) % HOUR_MS);
}

/** Whether the runtime knows the zone. */
export function isKnownTimeZone(tz: string): boolean {
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}
