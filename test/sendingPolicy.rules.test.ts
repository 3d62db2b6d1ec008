import { describe, expect, it } from 'vitest';
import { limitWindow } from '../src/sendingPolicy/limitWindows.ts';
import { decide, effectiveDailyLimit, HOLD_TTL_MS, type AccountRules, type PolicyFacts, type Tally } from '../src/sendingPolicy/policy.ts';
import { closesAt, nextOpening, type SendingWindow } from '../src/sendingPolicy/sendingWindow.ts';
import { instantOf, startOfLocalDay, startOfLocalHour } from '../src/sendingPolicy/zonedTime.ts';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null | undefined) => (ms === null || ms === undefined ? ms : new Date(ms).toISOString());

const RULES: AccountRules = {
  hourlyLimit: 0,
  dailyLimit: 0,
  limitWindow: 'calendar',
  timezone: 'UTC',
  sendingWindow: null,
  warmup: null,
  minGapSeconds: null,
  maxGapSeconds: null,
};

/** Facts at `now` with `sent` counted in the hour and day windows. */
function facts(rules: Partial<AccountRules>, now: number, counted: { hour?: number; day?: number; releaseMinute?: number } = {}, extra: Partial<PolicyFacts> = {}): PolicyFacts {
  const r = { ...RULES, ...rules };
  const tally = (span: 'hour' | 'day', sent: number): Tally => ({
    window: limitWindow(r.limitWindow, span, now, r.timezone),
    sent,
    held: 0,
    heldUntil: undefined,
    releaseMinute: counted.releaseMinute,
  });
  return {
    accountId: 1,
    rules: r,
    health: { active: true, health: 'healthy', healthUntil: null, healthReason: null },
    sendingDaysBefore: 0,
    gapUntil: undefined,
    hour: tally('hour', counted.hour ?? 0),
    day: tally('day', counted.day ?? 0),
    caps: [],
    ...extra,
  };
}

describe('local time, DST-correct', () => {
  it('counts the two 01:00 hours of the night clocks go back as two hours (America/New_York, 2026-11-01)', () => {
    expect(iso(startOfLocalHour(at('2026-11-01T05:30:00Z'), 'America/New_York'))).toBe('2026-11-01T05:00:00.000Z');
    expect(iso(startOfLocalHour(at('2026-11-01T06:30:00Z'), 'America/New_York'))).toBe('2026-11-01T06:00:00.000Z');
    // The day is 25 hours long.
    const day = limitWindow('calendar', 'day', at('2026-11-01T12:00:00Z'), 'America/New_York');
    expect([iso(day.range.from), iso(day.range.to)]).toEqual(['2026-11-01T04:00:00.000Z', '2026-11-02T05:00:00.000Z']);
  });

  it('starts hours at :30 UTC in a half-hour zone, and days at local midnight (Asia/Kolkata)', () => {
    const hour = limitWindow('calendar', 'hour', at('2026-03-02T10:05:00Z'), 'Asia/Kolkata');
    expect([iso(hour.range.from), iso(hour.range.to)]).toEqual(['2026-03-02T09:30:00.000Z', '2026-03-02T10:30:00.000Z']);
    expect(iso(startOfLocalDay(at('2026-03-02T10:05:00Z'), 'Asia/Kolkata'))).toBe('2026-03-01T18:30:00.000Z');
  });

  it('moves a local time skipped by the spring change forward, and takes the first of a repeated one (Europe/Paris)', () => {
    expect(iso(instantOf('2026-03-29', 2 * 60 + 30, 'Europe/Paris'))).toBe('2026-03-29T01:30:00.000Z');
    expect(iso(instantOf('2026-10-25', 2 * 60 + 30, 'Europe/Paris'))).toBe('2026-10-25T00:30:00.000Z');
    expect(iso(instantOf('2026-10-25', 9 * 60, 'Europe/Paris'))).toBe('2026-10-25T08:00:00.000Z');
  });

  it('counts a rolling window to the minute, on the safe side', () => {
    const w = limitWindow('rolling', 'hour', at('2026-03-02T10:30:20Z'), 'UTC');
    expect([iso(w.range.from), iso(w.range.to), w.resetsAt]).toEqual(['2026-03-02T09:30:00.000Z', '2026-03-02T10:31:00.000Z', undefined]);
  });
});

describe('sending windows', () => {
  const office: SendingWindow = { timezone: 'Europe/Paris', days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '17:00' };

  it('closes on Friday at 17:00 local time and opens again on Monday at 09:00, across the spring change', () => {
    // Friday 2026-03-27, 16:59 in Paris (UTC+1); Monday 2026-03-30 is already summer time (UTC+2).
    expect(iso(closesAt(office, at('2026-03-27T15:59:00Z')))).toBe('2026-03-27T16:00:00.000Z');
    expect(closesAt(office, at('2026-03-27T16:00:00Z'))).toBeUndefined();
    expect(iso(nextOpening(office, at('2026-03-27T16:00:00Z')))).toBe('2026-03-30T07:00:00.000Z');
  });

  it('holds every send outside the window until its next opening, with that reason', () => {
    const d = decide(facts({ sendingWindow: office }, at('2026-03-28T10:00:00Z')), at('2026-03-28T10:00:00Z'), 10);
    expect(d).toMatchObject({ allowance: 0, reason: 'sending_window' });
    expect(iso(d.nextAt)).toBe('2026-03-30T07:00:00.000Z');
  });
});

describe('the policy decides', () => {
  const now = at('2026-03-02T10:15:00Z');

  it('grants the smallest room of every rule, valid until the first window ends or the hold expires', () => {
    const d = decide(facts({ hourlyLimit: 10, dailyLimit: 100 }, now, { hour: 4, day: 97 }), now, 50);
    expect(d).toMatchObject({ allowance: 3, reason: null, nextAt: null });
    expect(d.validUntil).toBe(now + HOLD_TTL_MS);
    const late = at('2026-03-02T10:59:30Z');
    expect(decide(facts({ hourlyLimit: 10 }, late), late, 5).validUntil).toBe(at('2026-03-02T11:00:00Z'));
  });

  it('waits for the end of a full calendar window, and for the oldest send to leave a full rolling one', () => {
    const calendar = decide(facts({ dailyLimit: 10 }, now, { day: 10 }), now, 1);
    expect(calendar).toMatchObject({ allowance: 0, reason: 'limits' });
    expect(iso(calendar.nextAt)).toBe('2026-03-03T00:00:00.000Z');
    const rolling = decide(facts({ dailyLimit: 10, limitWindow: 'rolling' }, now, { day: 10, releaseMinute: at('2026-03-01T23:50:00Z') }), now, 1);
    expect(iso(rolling.nextAt)).toBe('2026-03-02T23:51:00.000Z');
  });

  it('waits for the latest rule, inside the sending window', () => {
    const window: SendingWindow = { timezone: 'UTC', days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '08:00', end: '20:00' };
    // The day's limit resets at midnight, when the window is shut: the next send waits for 08:00.
    const d = decide(facts({ dailyLimit: 10, sendingWindow: window }, now, { day: 10 }), now, 1);
    expect(d).toMatchObject({ allowance: 0, reason: 'sending_window' });
    expect(iso(d.nextAt)).toBe('2026-03-03T08:00:00.000Z');
  });

  it('ramps the daily limit by sending day, capped by dailyLimit', () => {
    const rules = { ...RULES, dailyLimit: 20, warmup: { startPerDay: 5, increasePerDay: 5 } };
    expect([0, 1, 2, 3, 10].map((n) => effectiveDailyLimit(rules, n))).toEqual([5, 10, 15, 20, 20]);
    const d = decide(facts(rules, now, { day: 5 }), now, 1);
    expect(d).toMatchObject({ allowance: 0, reason: 'warmup', effectiveDailyLimit: 5 });
    expect(iso(d.nextAt)).toBe('2026-03-03T00:00:00.000Z');
  });

  it('lets a disabled account never send, and a throttled one after its back-off', () => {
    const disabled = facts({}, now, {}, { health: { active: true, health: 'disabled', healthUntil: null, healthReason: '535' } });
    expect(decide(disabled, now, 1)).toMatchObject({ allowance: 0, nextAt: null, reason: 'account_health' });
    const until = new Date('2026-03-02T10:20:00Z');
    const throttled = facts({}, now, {}, { health: { active: true, health: 'throttled', healthUntil: until, healthReason: '421' } });
    expect(decide(throttled, now, 1)).toMatchObject({ allowance: 0, nextAt: until.getTime(), reason: 'account_health' });
  });

  it('grants no more per hold than its gaps let start before the hold expires', () => {
    expect(decide(facts({ minGapSeconds: 20, maxGapSeconds: 40 }, now), now, 100).allowance).toBe(3);
  });
});
