/**
 * When a campaign will finish, from what it has left, how fast it sends and how much quota its
 * user's accounts have left in each coming hour and day. It walks forward one clock hour at a time:
 * in each hour it sends as much as both the rate and the remaining quota allow, then the hourly
 * quota resets (and the daily one at midnight in each account's timezone). It assumes the campaign
 * has its user's accounts to itself, and takes hours as UTC hours (true for whole-hour zones).
 * Shared by the dashboard and the CLI.
 */

const HOUR_MS = 3_600_000;
/** Beyond this the answer is "not within two months", not a date. */
const MAX_HOURS = 24 * 62;

const hourFormats = new Map();
function localHour(timeZone, atMs) {
  let format = hourFormats.get(timeZone);
  if (!format) {
    try {
      format = new Intl.DateTimeFormat('en-GB', { timeZone, hour: 'numeric', hourCycle: 'h23' });
    } catch {
      format = new Intl.DateTimeFormat('en-GB', { timeZone: 'UTC', hour: 'numeric', hourCycle: 'h23' });
    }
    hourFormats.set(timeZone, format);
  }
  return Number(format.format(atMs));
}

/** Shares `amount` out over slots with the given room, as evenly as their room allows. */
function spread(amount, rooms) {
  const given = rooms.map(() => 0);
  let left = amount;
  let open = rooms.map((_, i) => i).filter((i) => rooms[i] > 0);
  while (left > 1e-9 && open.length > 0) {
    const share = left / open.length;
    const next = [];
    for (const i of open) {
      const give = Math.min(share, rooms[i] - given[i]);
      given[i] += give;
      left -= give;
      if (rooms[i] - given[i] > 1e-9) next.push(i);
    }
    open = next;
  }
  return given;
}

/**
 * @param {{pending: number, perSecond: number | null, now: Date | number,
 *   accounts: {active?: boolean, timezone?: string, health?: {state: string},
 *     usage: {sentThisHour: number, sentToday: number, hourlyLimit: number, dailyLimit: number}}[]}} input
 * @returns {{at: Date, limitedBy: 'rate' | 'quota'} | null} null when no account can send or it is more than two months away.
 *   Without a measured rate, `at` is the earliest moment quota allows.
 */
export function estimateFinish({ pending, perSecond, accounts, now }) {
  let t = typeof now === 'number' ? now : now.getTime();
  if (pending <= 0) return { at: new Date(t), limitedBy: 'rate' };
  const usable = accounts.filter((a) => a.active !== false && a.health?.state !== 'disabled');
  if (usable.length === 0) return null;
  const speed = perSecond && perSecond > 0 ? perSecond : Infinity;
  const state = usable.map((a) => ({
    timeZone: a.timezone || 'UTC',
    hourly: a.usage.hourlyLimit > 0 ? a.usage.hourlyLimit : Infinity,
    daily: a.usage.dailyLimit > 0 ? a.usage.dailyLimit : Infinity,
    hour: a.usage.sentThisHour,
    day: a.usage.sentToday,
  }));
  let left = pending;
  let limitedBy = 'rate';
  for (let step = 0; step < MAX_HOURS; step++) {
    const windowEnd = (Math.floor(t / HOUR_MS) + 1) * HOUR_MS;
    const rooms = state.map((s) => Math.max(0, Math.min(s.hourly - s.hour, s.daily - s.day)));
    const quota = rooms.reduce((a, b) => a + b, 0);
    const bySpeed = (speed * (windowEnd - t)) / 1000;
    if (left <= Math.min(quota, bySpeed)) {
      return { at: new Date(t + (speed === Infinity ? 0 : (left / speed) * 1000)), limitedBy };
    }
    if (quota < bySpeed) limitedBy = 'quota';
    const spent = Math.min(quota, bySpeed);
    left -= spent;
    const given = spread(spent, rooms);
    state.forEach((s, i) => {
      s.day += given[i];
      s.hour = 0;
      if (localHour(s.timeZone, windowEnd) === 0) s.day = 0;
    });
    t = windowEnd;
  }
  return null;
}
