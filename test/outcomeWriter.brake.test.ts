import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueueUpkeep } from '../src/db/queueUpkeep.ts';
import type { AccountOutcomeRow } from '../src/db/messages.ts';
import { OutcomeWriter } from '../src/engine/outcomeWriter.ts';
import { databaseKinds } from './helpers/db.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

const rows = (from: number, n: number): AccountOutcomeRow[] =>
  Array.from({ length: n }, (_, i) => ({
    id: from + i,
    accountId: 1,
    status: 'sent',
    charged: 1,
    attemptedAt: new Date(),
    holdId: null,
    error: null,
    sentAt: new Date(),
    nextAttemptAt: null,
    possiblyDelivered: false,
    hardBounce: false,
  }));

describe.each(databaseKinds)('the outcome writer brakes sending (%s)', (kind) => {
  let t: TestMailPilot;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
  });
  afterAll(() => t.close());

  it('reports itself full past 8,000 unwritten rows and calls the waiting workers back once the backlog has landed', async () => {
    const { ctx } = t.mp;
    const writer = new OutcomeWriter(ctx, ctx.db, 'test-owner', new QueueUpkeep(ctx.db, () => undefined));
    expect(writer.full).toBe(false);
    const writes = [writer.write(rows(1, 3_000), () => true), writer.write(rows(3_001, 3_000), () => true)];
    expect(writer.full).toBe(false);
    writes.push(writer.write(rows(6_001, 3_000), () => true));
    expect(writer.full).toBe(true);

    let woken = 0;
    const wake = () => woken++;
    writer.onRoom(wake);
    writer.onRoom(wake);
    expect(woken).toBe(0);
    await Promise.all(writes);
    expect(writer.full).toBe(false);
    // Once, however often the same worker asked.
    expect(woken).toBe(1);
    writer.onRoom(wake);
    expect(woken).toBe(2);
  });
});
