import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/clock.ts';
import { Composer, type QueuedMessage, type Sender } from '../src/campaigns/composition.ts';
import { databaseKinds } from './helpers/db.ts';
import { addList, createCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

const HOUR_MS = 3_600_000;

describe.each(databaseKinds)("the engine's composer (%s)", (kind) => {
  let t: TestMailPilot;
  const clock = new FakeClock('2026-03-02T10:00:00Z');
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false, clock });
  });
  afterAll(() => t.close());

  it('keeps a campaign it prepared while loads ask for it, and lets go of one no load asked for in an hour', async () => {
    const user = await t.createUser();
    const listId = await addList(t, user.apiKey, 1);
    const [kept, dropped] = [await createCampaign(t, user.apiKey, [listId]), await createCampaign(t, user.apiKey, [listId])];
    const sender: Sender = { id: 1, userId: user.id, email: 'sender@example.test', bounceDomain: null, dkimDomain: null, dkimSelector: null, dkimKeyEnc: null };
    const subjectOf = (campaignId: number) => {
      const m: QueuedMessage = { id: 1, campaignId, email: 'r@rcpt.test', name: 'Ann', attributes: null };
      return /^Subject: (.*)$/m.exec(composer.compose(m, sender))?.[1];
    };
    // Changed behind the composer's back, to see when it reads a campaign again.
    const retitle = (subject: string) => t.mp.ctx.db.query('UPDATE campaigns SET subject = $1 WHERE id = ANY($2::int[])', [subject, [kept, dropped]]);

    const composer = new Composer(t.mp.ctx);
    await composer.load([kept, dropped]);
    await retitle('Changed');
    for (let half = 0; half < 2; half++) {
      clock.advance(HOUR_MS / 2);
      await composer.load([kept]);
    }
    expect(subjectOf(kept)).toBe('Hello Ann');
    expect(subjectOf(dropped)).toBe('Hello Ann');

    clock.advance(HOUR_MS / 2);
    await composer.load([kept]);
    expect(() => subjectOf(dropped)).toThrow();
    await composer.load([dropped]);
    expect(subjectOf(dropped)).toBe('Changed');
    expect(subjectOf(kept)).toBe('Hello Ann');
  });
});
