import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOLD_TTL_MS } from '../src/sendingPolicy/policy.ts';
import { countTestSend, giveBack, reserveSends } from '../src/sendingPolicy/reservation.ts';
import { databaseKinds, freshDatabase, type TestDatabase } from './helpers/db.ts';

const NOW = new Date('2026-03-10T10:15:00Z');
const HOUR = 3_600_000;

describe.each(databaseKinds)('quota reservations (%s)', (kind) => {
  let t: TestDatabase;
  let userId: number;
  let serverId: number;
  let accountId: number;
  const addAccount = async (email: string, hourly: number, daily: number) => {
    const [account] = await t.db.query<{ id: number }>(
      `INSERT INTO smtp_accounts (user_id, server_id, email, hourly_limit, daily_limit, timezone, created_at)
       VALUES ($1, $2, $3, $4, $5, 'Europe/Berlin', $6) RETURNING id`,
      [userId, serverId, email, hourly, daily, NOW],
    );
    return account!.id;
  };
  beforeAll(async () => {
    t = await freshDatabase(kind);
    const [user] = await t.db.query<{ id: number }>(`INSERT INTO users (name, email, created_at) VALUES ('u', 'u@x.test', $1) RETURNING id`, [NOW]);
    userId = user!.id;
    const [server] = await t.db.query<{ id: number }>(
      `INSERT INTO smtp_servers (user_id, name, host, port, security, max_connections, created_at) VALUES ($1, 's', '127.0.0.1', 25, 'none', 10, $2) RETURNING id`,
      [userId, NOW],
    );
    serverId = server!.id;
    accountId = await addAccount('a@x.test', 100, 150);
  });
  afterAll(() => t.drop());

  const granted = (rs: { granted: number }[]) => rs.reduce((n, r) => n + r.granted, 0);

  it('fifty reservations at once (on as many connections as the pool has) grant exactly the hourly limit, then the daily one', async () => {
    const grants = await Promise.all(Array.from({ length: 50 }, () => reserveSends(t.db, accountId, 7, NOW)));
    expect(granted(grants)).toBe(100);
    // A hold is valid for a short while, and never past the end of its clock hour (11:00 in Berlin is 10:00 UTC).
    expect(grants.find((g) => g.granted > 0)!.validUntil).toEqual(new Date(NOW.getTime() + HOLD_TTL_MS));
    const [held] = await t.db.query<{ n: number }>('SELECT sum(remaining)::int AS n FROM send_holds WHERE account_id = $1', [accountId]);
    expect(held!.n).toBe(100);
    // Reservations are not sends: the account has sent nothing yet.
    expect(await t.db.query('SELECT * FROM smtp_usage WHERE account_id = $1', [accountId])).toEqual([]);

    const nextHour = new Date(NOW.getTime() + HOUR);
    const later = await Promise.all(Array.from({ length: 50 }, () => reserveSends(t.db, accountId, 7, nextHour)));
    expect(granted(later)).toBe(50);
  });

  it('a given-back send can be reserved again; a spent one counts as a send at its instant; an unknown account gets nothing', async () => {
    const nextHour = new Date(NOW.getTime() + HOUR);
    const [hold] = await t.db.query<{ id: number }>('SELECT id FROM send_holds WHERE account_id = $1 AND remaining >= 3 ORDER BY id DESC LIMIT 1', [accountId]);
    await giveBack(t.db, hold!.id, 3);
    const again = await reserveSends(t.db, accountId, 10, nextHour);
    expect(again.granted).toBe(3);
    expect((await reserveSends(t.db, accountId, 10, nextHour)).granted).toBe(0);
    await countTestSend(t.db, accountId, again.holdId, new Date(nextHour.getTime() + 30_000));
    expect(await t.db.query('SELECT minute_start AS minute, sent FROM smtp_usage WHERE account_id = $1', [accountId])).toEqual([
      { minute: new Date('2026-03-10T11:15:00Z'), sent: 1 },
    ]);
    expect((await reserveSends(t.db, 999_999, 10, NOW)).granted).toBe(0);
  });

  it('one domain cap over three accounts, reserved against from every connection at once, is never passed', async () => {
    const capped = await Promise.all(['x1@capped.test', 'x2@capped.test', 'x3@capped.test'].map((e) => addAccount(e, 0, 0)));
    await t.db.query(
      `INSERT INTO domain_caps (user_id, domain, hourly_limit, daily_limit, limit_window, created_at) VALUES ($1, 'capped.test', 0, 40, 'rolling', $2)`,
      [userId, NOW],
    );
    const grants = await Promise.all(Array.from({ length: 60 }, (_, i) => reserveSends(t.db, capped[i % 3]!, 3, NOW)));
    expect(granted(grants)).toBe(40);
    // An account at another domain is not held back by the cap.
    const other = await addAccount('y@elsewhere.test', 0, 0);
    expect((await reserveSends(t.db, other, 5, NOW)).granted).toBe(5);
  });
});
