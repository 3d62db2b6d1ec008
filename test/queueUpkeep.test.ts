import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueueUpkeep } from '../src/db/queueUpkeep.ts';
import { databaseKinds, freshDatabase, type TestDatabase } from './helpers/db.ts';


describe.each(databaseKinds)('queue upkeep (%s)', (kind) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await freshDatabase(kind);
  });
  afterAll(() => t.drop());

  it('vacuums the queue once 50,000 messages reached an outcome, when no autovacuum does', async () => {
    const [auto] = await t.db.query<{ on: boolean }>(`SELECT current_setting('autovacuum') = 'on' AS on`);
    const vacuums = async () => {
      const [row] = await t.db.query<{ n: number }>(`SELECT vacuum_count::int AS n FROM pg_stat_user_tables WHERE relname = 'messages'`);
      return row?.n ?? 0;
    };
    const before = await vacuums();
    const errors: unknown[] = [];
    const upkeep = new QueueUpkeep(t.db, (err) => errors.push(err));
    upkeep.messagesDone(49_999);
    await new Promise((r) => setTimeout(r, 300));
    expect(await vacuums()).toBe(before);
    upkeep.messagesDone(1);
    const expected = kind === 'pglite' || !auto!.on ? before + 1 : before;
    await expect.poll(vacuums, { timeout: 10_000 }).toBe(expected);
    expect(errors).toEqual([]);
  });
});
