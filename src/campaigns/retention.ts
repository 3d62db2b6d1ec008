import type { Timer } from '../clock.ts';
import type { AppContext } from '../context.ts';
import type { Database } from '../db/database.ts';
import { campaignsToArchive, deleteMessageBatch, markArchived } from '../db/retention.ts';

/**
 * Retention: the per-recipient rows of campaigns finished more than `retentionDays` ago are deleted,
 * a batch per statement, each its own short transaction, so live sending never waits on it (only
 * rows of finished campaigns are touched). What stays: the campaign with its counters (its summary),
 * its failed rows, and the user's suppressions. Unsubscribe links keep working: tokens need no row.
 */

const DAY_MS = 24 * 60 * 60 * 1000;
/** Rows deleted per statement. */
const DELETE_BATCH = 5000;
const CAMPAIGNS_PER_PASS = 100;

export interface ArchiveResult {
  campaigns: number;
  messagesDeleted: number;
}

export async function archiveFinishedCampaigns(db: Database, now: Date, retentionDays: number): Promise<ArchiveResult> {
  const before = new Date(now.getTime() - retentionDays * DAY_MS);
  const result: ArchiveResult = { campaigns: 0, messagesDeleted: 0 };
  for (;;) {
    const ids = await campaignsToArchive(db, before, CAMPAIGNS_PER_PASS);
    for (const id of ids) {
      for (let afterId = 0; ; ) {
        const batch = await deleteMessageBatch(db, id, afterId, DELETE_BATCH);
        result.messagesDeleted += batch.deleted;
        if (batch.lastId === null) break;
        afterId = batch.lastId;
      }
      await markArchived(db, id, now);
      result.campaigns++;
    }
    if (ids.length < CAMPAIGNS_PER_PASS) return result;
  }
}

/**
 * Runs retention now and then once a day (business time) until stopped; a run in progress finishes
 * first. A run that ends after its next one was due starts that one at once; days skipped entirely
 * (the process was stopped or the clock jumped) are made up by one run, not one per day.
 */
export function scheduleDailyRetention(ctx: AppContext): { stop(): Promise<void> } {
  let timer: Timer | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  let due = ctx.clock.now().getTime();
  const run = () => {
    running = archiveFinishedCampaigns(ctx.db, ctx.clock.now(), ctx.config.retentionDays).then(
      (r) => {
        if (r.campaigns > 0) ctx.log.info(r, 'retention archived finished campaigns');
      },
      (err) => ctx.log.error({ err }, 'retention failed'),
    );
    void running.then(() => {
      if (stopped) return;
      const missedDays = Math.floor((ctx.clock.now().getTime() - due) / DAY_MS);
      due += DAY_MS * Math.max(1, missedDays);
      timer = ctx.clock.at(new Date(due), run);
    });
  };
  run();
  return {
    async stop() {
      stopped = true;
      timer?.cancel();
      await running;
    },
  };
}
