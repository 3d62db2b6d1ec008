import type { AppContext } from '../context.ts';
import { claimMessages, type ClaimedMessage } from '../db/messages.ts';

/**
 * Messages claimed (and quota reserved) per round trip: about CLAIM_AHEAD_MS of the account's
 * recent sending, within these bounds. A fast account claims big batches (few statements per
 * message); a thousand slow ones do not hold a hundred composed-to-be messages each in memory.
 */
const CLAIM_MIN = 20;
const CLAIM_MAX = 100;
const CLAIM_AHEAD_MS = 10_000;

/**
 * How one account worker claims messages: round-robin over its user's running campaigns (each
 * claim starts at the next campaign), each campaign walked in id order from a cursor, in batches
 * sized to the account's pace.
 */
export class MessageClaims {
  private readonly cursors = new Map<number, number>();
  private roundRobin = 0;
  private sentSinceSizing = 0;
  private sizedAt = performance.now();
  /** The current batch size: the worker claims again when half of it is left. */
  size = CLAIM_MIN;

  constructor(
    private readonly ctx: AppContext,
    private readonly accountId: number,
    private readonly owner: string,
  ) {}

  /** Counts a message sent, for the next batch's size. */
  sent(): void {
    this.sentSinceSizing++;
  }

  /** Sizes the next batch from the pace since the last one. */
  resize(): number {
    const elapsed = Math.max(1, performance.now() - this.sizedAt);
    const ahead = Math.ceil((this.sentSinceSizing / elapsed) * CLAIM_AHEAD_MS);
    this.sentSinceSizing = 0;
    this.sizedAt = performance.now();
    this.size = Math.min(CLAIM_MAX, Math.max(CLAIM_MIN, ahead));
    return this.size;
  }

  /**
   * Claims up to `limit` messages over `campaigns`, starting one campaign further along than last
   * time. Repeated after a lost reply, a claim leaves orphan 'sending' rows under the account, which
   * go back to the queue when its lease is released.
   */
  async claim(campaigns: number[], limit: number, now: Date, retry: <T>(fn: () => Promise<T>) => Promise<T>): Promise<ClaimedMessage[]> {
    const claimed: ClaimedMessage[] = [];
    for (let i = 0; i < campaigns.length && claimed.length < limit; i++) {
      const campaignId = campaigns[(this.roundRobin + i) % campaigns.length]!;
      claimed.push(...(await retry(() => this.claimFrom(campaignId, limit - claimed.length, now))));
    }
    this.roundRobin = (this.roundRobin + 1) % campaigns.length;
    return claimed;
  }

  /** Claims from the campaign's cursor; rows returned to the queue behind it are picked up when it runs dry. */
  private async claimFrom(campaignId: number, limit: number, now: Date): Promise<ClaimedMessage[]> {
    const base = { accountId: this.accountId, owner: this.owner, campaignId, now };
    const cursor = this.cursors.get(campaignId) ?? 0;
    let claimed = await claimMessages(this.ctx.db, { ...base, afterId: cursor, limit });
    if (claimed.length > 0) this.cursors.set(campaignId, claimed.at(-1)!.id);
    if (claimed.length < limit && cursor > 0) {
      claimed = claimed.concat(await claimMessages(this.ctx.db, { ...base, afterId: 0, limit: limit - claimed.length }));
    }
    return claimed;
  }
}
