import { pauseForRepeatedFailures } from '../campaigns/autoPause.ts';
import type { AppContext } from '../context.ts';

/** A campaign pauses once this many of its messages in a row fail for the same local reason. */
export const LOCAL_FAILURES_BEFORE_PAUSE = 10;

/**
 * A message that cannot be composed (its template went past the render budget for that contact)
 * fails alone. When a campaign's messages keep failing for the same such reason, the cause is the
 * campaign itself, and sending on would only burn through its list: it pauses with the reason as
 * a warning (autoPause.pauseForRepeatedFailures), and stays paused until its user resumes it.
 * Counted per process, across the accounts sending the campaign; a message composed without
 * trouble starts the count again. While the pause is being written, workers hold that campaign's
 * messages (`pausing`): composing them meanwhile failed each one that was claimed, and could use up
 * the rest of a small list before the pause landed.
 */
export class LocalFailures {
  private readonly streaks = new Map<number, { reason: string; count: number }>();
  private readonly pauses = new Map<number, Promise<void>>();

  constructor(private readonly ctx: AppContext) {}

  composed(campaignId: number): void {
    if (this.streaks.size > 0) this.streaks.delete(campaignId);
  }

  /** The pause being written for the campaign (settled once it has landed, or failed), if any. */
  pausing(campaignId: number): Promise<void> | undefined {
    return this.pauses.get(campaignId);
  }

  failed(userId: number, campaignId: number, reason: string): void {
    const streak = this.streaks.get(campaignId);
    const count = streak?.reason === reason ? streak.count + 1 : 1;
    if (count < LOCAL_FAILURES_BEFORE_PAUSE) {
      this.streaks.set(campaignId, { reason, count });
      return;
    }
    this.streaks.delete(campaignId);
    const warning = `paused after ${count} messages in a row failed for the same reason (${reason}); resume it once that is fixed, or stop it`;
    // The status event reaches the workers inside pauseForRepeatedFailures, before the hold ends.
    const pause = pauseForRepeatedFailures(this.ctx, userId, campaignId, warning)
      .catch((err) => this.ctx.log.error({ err, campaignId }, 'could not pause a campaign whose messages keep failing'))
      .finally(() => this.pauses.delete(campaignId));
    this.pauses.set(campaignId, pause);
  }
}
