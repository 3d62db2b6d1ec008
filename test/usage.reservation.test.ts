import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseSends, reserveSends } from '../src/db/usage.ts';
import { databaseKinds, freshDatabase, type TestDatabase } from './helpers/db.ts';

const NOW = new Date('2026-03-10T10:15:00Z');

describe.each(databaseKinds)('quota reservations (%s)', (kind) => {
  let t: TestDatabase;
  let accountId: number;
  beforeAll(async () => {
    t = await freshDatabase(kind);
    const [user] = await t.db.query<{ id: number }>(`INSERT INTO users (name, email, created_at) VALUES ('u', 'u@x.test', $1) RETURNING id`, [NOW]);
    const [server] = await t.db.query<{ id: number }>(
      `INSERT INTO smtp_servers (user_id, name, host, port, security, max_connections, created_at) VALUES ($1, 's', '127.0.0.1', 25, 'none', 10, $2) RETURNING id`,
      [user!.id, NOW],
    );
    const [account] = await t.db.query<{ id: number }>(
      `INSERT INTO smtp_accounts (user_id, server_id, email, hourly_limit, daily_limit, timezone, created_at)
       VALUES ($1, $2, 'a@x.test', 100, 150, 'Europe/Berlin', $3) RETURNING id`,
      [user!.id, server!.id, NOW],
    );
    accountId = account!.id;
  });
  afterAll(() => t.drop());

  const usage = async () =>
    t.db.query<{ hour: Date; sent: number }>('SELECT hour_start AS hour, sent FROM smtp_usage WHERE account_id = $1 ORDER BY hour_start', [accountId]);

  it('fifty reservations at once (on as many connections as the pool has) grant exactly the hourly limit, then the daily one', async () => {
    const grants = await Promise.all(Array.from({ length: 50 }, () => reserveSends(t.db, accountId, 7, NOW)));
    expect(grants.reduce((n, g) => n + g.granted, 0)).toBe(100);
    // Clock hours in the account's timezone: 11:00 in Berlin is 10:00 UTC.
    expect(grants[0]!.hourStart.toISOString()).toBe('2026-03-10T10:00:00.000Z');
    expect(grants[0]!.validUntil.toISOString()).toBe('2026-03-10T11:00:00.000Z');
    expect(await usage()).toEqual([{ hour: new Date('2026-03-10T10:00:00Z'), sent: 100 }]);

    const nextHour = new Date(NOW.getTime() + 3_600_000);
    const later = await Promise.all(Array.from({ length: 50 }, () => reserveSends(t.db, accountId, 7, nextHour)));
    expect(later.reduce((n, g) => n + g.granted, 0)).toBe(50);
  });

  it('a given-back send can be reserved again; an unknown account gets nothing', async () => {
    const nextHour = new Date(NOW.getTime() + 3_600_000);
    await releaseSends(t.db, accountId, new Date('2026-03-10T11:00:00Z'), 3);
    expect((await reserveSends(t.db, accountId, 10, nextHour)).granted).toBe(3);
    expect((await reserveSends(t.db, accountId, 10, nextHour)).granted).toBe(0);
    expect((await reserveSends(t.db, 999_999, 10, NOW)).granted).toBe(0);
  });
});
