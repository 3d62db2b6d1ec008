import type { Queryable } from '../db/database.ts';
import { readPolicyConfigs, readTallies, type PolicyConfigRow, type TallyRow, type TallySpec } from '../db/usage.ts';
import { limitWindow, type LimitWindow } from './limitWindows.ts';
import { effectiveDailyLimit, type AccountRules, type PolicyFacts, type Tally } from './policy.ts';

/** Domain caps count calendar windows in UTC: a cap spans accounts that may each have a zone of their own. */
const CAP_TIMEZONE = 'UTC';

export function rulesOf(c: PolicyConfigRow): AccountRules {
  return {
    hourlyLimit: c.hourlyLimit,
    dailyLimit: c.dailyLimit,
    limitWindow: c.limitWindow,
    timezone: c.timezone,
    sendingWindow: c.sendingWindow,
    warmup: c.warmup,
    minGapSeconds: c.minGapSeconds,
    maxGapSeconds: c.maxGapSeconds,
  };
}

/** Whether any rule counts sends, so reservations must be serialised and held. */
export function hasLimits(c: PolicyConfigRow): boolean {
  return c.hourlyLimit > 0 || c.dailyLimit > 0 || c.warmup !== null || c.caps.length > 0;
}

interface Pending {
  window: LimitWindow;
  spec: TallySpec;
}

function windowsOf(c: PolicyConfigRow, now: number) {
  const rules = rulesOf(c);
  const daily = effectiveDailyLimit(rules, c.sendingDaysBefore);
  const count = (key: string, accountIds: number[], window: LimitWindow, limit: number): Pending => ({
    window,
    spec: { key: `${c.accountId}:${key}`, accountIds, from: new Date(window.range.from), to: new Date(window.range.to), limit, rolling: window.kind === 'rolling' },
  });
  return {
    rules,
    hour: count('hour', [c.accountId], limitWindow(c.limitWindow, 'hour', now, c.timezone), c.hourlyLimit),
    day: count('day', [c.accountId], limitWindow(c.limitWindow, 'day', now, c.timezone), daily),
    caps: c.caps.map((cap) => ({
      cap,
      hour: count(`cap${cap.id}:hour`, cap.accountIds, limitWindow(cap.limitWindow, 'hour', now, CAP_TIMEZONE), cap.hourlyLimit),
      day: count(`cap${cap.id}:day`, cap.accountIds, limitWindow(cap.limitWindow, 'day', now, CAP_TIMEZONE), cap.dailyLimit),
    })),
  };
}

function tally(p: Pending, rows: Map<string, TallyRow>): Tally {
  const r = rows.get(p.spec.key);
  return {
    window: p.window,
    sent: r?.sent ?? 0,
    held: r?.held ?? 0,
    heldUntil: r?.heldUntil?.getTime(),
    releaseMinute: r?.releaseMinute?.getTime(),
  };
}

/**
 * The policy facts of each account at `now`: its rules and state (one statement), then what every
 * window of it and of its domain caps has counted (one more).
 */
export async function readFacts(db: Queryable, accountIds: number[], now: Date): Promise<Map<number, PolicyFacts>> {
  if (accountIds.length === 0) return new Map();
  return factsOf(db, await readPolicyConfigs(db, accountIds, now), now);
}

/** The facts of accounts whose rules were read already (inside a reservation's lock). */
export async function factsOf(db: Queryable, configs: PolicyConfigRow[], now: Date): Promise<Map<number, PolicyFacts>> {
  const at = now.getTime();
  const windows = configs.map((c) => ({ c, w: windowsOf(c, at) }));
  const specs = windows.flatMap(({ w }) => [w.hour.spec, w.day.spec, ...w.caps.flatMap((x) => [x.hour.spec, x.day.spec])]);
  const rows = new Map((await readTallies(db, specs)).map((r) => [r.key, r]));
  return new Map(
    windows.map(({ c, w }) => [
      c.accountId,
      {
        accountId: c.accountId,
        rules: w.rules,
        health: { active: c.active, health: c.health, healthUntil: c.healthUntil, healthReason: c.healthReason },
        sendingDaysBefore: c.sendingDaysBefore,
        gapUntil: c.gapUntil?.getTime(),
        hour: tally(w.hour, rows),
        day: tally(w.day, rows),
        caps: w.caps.map((x) => ({ cap: x.cap, hour: tally(x.hour, rows), day: tally(x.day, rows) })),
      },
    ]),
  );
}
