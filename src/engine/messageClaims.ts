import type { AppContext } from '../context.ts';
import type { Queryable } from '../db/database.ts';
import { claimMessages, claimThrottledMessages, type ClaimedMessage } from '../db/messages.ts';
import { lockThrottleRooms, userHasThrottles, type ThrottleRoom } from '../db/recipientThrottles.ts';
import { HOUR_MS, MINUTE_MS } from '../sendingPolicy/limitWindows.ts';

/**
 * Messages claimed (and quota reserved) per round trip: about CLAIM_AHEAD_MS of the account's
 * recent sending, within these bounds. A fast account claims big batches (few statements per
 * message); a thousand slow ones do not hold a hundred composed-to-be messages each in memory.
 */
const CLAIM_MIN = 20;
const CLAIM_MAX = 100;
const CLAIM_AHEAD_MS = 10_000;
/** With recipient throttles, a claim looks at most this many times its size ahead for messages that may go. */
const THROTTLED_SCAN_FACTOR = 20;

/** What one claim round brought. */
export interface Claimed {
  messages: ClaimedMessage[];
  /** Messages were due but recipient throttles held every one of them back. */
  throttled: boolean;
}

const domainOf = (email: string) => email.slice(email.lastIndexOf('@') + 1).toLowerCase();

/**
 * How one account worker claims messages: round-robin over its user's running campaigns (each
 * claim starts at the next campaign), each campaign walked in id order from a cursor, in batches
 * sized to the account's pace. When the user has recipient throttles, a claim round runs in one
 * transaction holding the user's throttle lock (db/recipientThrottles.ts), claiming no more to each
 * throttled domain than its room: messages that must wait stay pending, the others go.
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
    private readonly account: { id: number; userId: number },
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
  async claim(campaigns: number[], limit: number, now: Date, retry: <T>(fn: () => Promise<T>) => Promise<T>): Promise<Claimed> {
    const order = campaigns.map((_, i) => campaigns[(this.roundRobin + i) % campaigns.length]!);
    this.roundRobin = (this.roundRobin + 1) % campaigns.length;
    if (!(await retry(() => userHasThrottles(this.ctx.db, this.account.userId)))) {
      const messages: ClaimedMessage[] = [];
      for (const campaignId of order) {
        if (messages.length >= limit) break;
        messages.push(...(await retry(() => this.claimFrom(this.ctx.db, campaignId, limit - messages.length, now))));
      }
      return { messages, throttled: false };
    }
    return retry(() =>
      this.ctx.db.transaction(async (tx) => {
        const minute = new Date(Math.floor(now.getTime() / MINUTE_MS) * MINUTE_MS);
        const rooms = await lockThrottleRooms(tx, this.account.userId, minute, new Date(minute.getTime() - HOUR_MS + MINUTE_MS));
        const messages: ClaimedMessage[] = [];
        let heldBack = false;
        for (const campaignId of order) {
          if (messages.length >= limit) break;
          const got = await this.claimThrottled(tx, campaignId, limit - messages.length, now, rooms);
          heldBack ||= got.heldBack;
          for (const m of got.messages) {
            const room = rooms.find((r) => r.domain === domainOf(m.email));
            if (room) room.room--;
          }
          messages.push(...got.messages);
        }
        return { messages, throttled: messages.length === 0 && heldBack };
      }),
    );
  }

  /** Claims from the campaign's cursor; rows returned to the queue behind it are picked up when it runs dry. */
  private async claimFrom(db: Queryable, campaignId: number, limit: number, now: Date): Promise<ClaimedMessage[]> {
    const base = { accountId: this.account.id, owner: this.owner, campaignId, now };
    const cursor = this.cursors.get(campaignId) ?? 0;
    let claimed = await claimMessages(db, { ...base, afterId: cursor, limit });
    if (claimed.length > 0) this.cursors.set(campaignId, claimed.at(-1)!.id);
    if (claimed.length < limit && cursor > 0) {
      claimed = claimed.concat(await claimMessages(db, { ...base, afterId: 0, limit: limit - claimed.length }));
    }
    return claimed;
  }

  /** claimFrom under recipient throttles: the cursor moves past messages that had to wait. */
  private async claimThrottled(
    tx: Queryable,
    campaignId: number,
    limit: number,
    now: Date,
    rooms: ThrottleRoom[],
  ): Promise<{ messages: ClaimedMessage[]; heldBack: boolean }> {
    const base = { accountId: this.account.id, owner: this.owner, campaignId, now, rooms, scan: limit * THROTTLED_SCAN_FACTOR };
    const cursor = this.cursors.get(campaignId) ?? 0;
    const first = await claimThrottledMessages(tx, { ...base, afterId: cursor, limit });
    if (first.scannedTo !== null) this.cursors.set(campaignId, first.scannedTo);
    let { messages } = first;
    let scanned = first.scannedTo !== null;
    if (messages.length < limit && cursor > 0) {
      const again = await claimThrottledMessages(tx, { ...base, afterId: 0, limit: limit - messages.length });
      messages = messages.concat(again.messages);
      scanned ||= again.scannedTo !== null;
    }
    return { messages, heldBack: scanned && messages.length < limit };
  }
}
