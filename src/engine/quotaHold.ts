import type { AppContext } from '../context.ts';
import { releaseSends, reserveSends } from '../db/usage.ts';

/** Reserved sends of one usage window: spend them before `validUntil` (ms), or give them back. */
export interface HeldQuota {
  /** The window the sends were counted in (its start, ms since the epoch). */
  window: number;
  granted: number;
  validUntil: number;
}

/**
 * The quota one account worker holds: sends reserved in the database (db/usage.ts) and not spent
 * yet, per usage window. Every reserved send is either spent on a message that went out, or given
 * back: at once when a claim finds fewer messages than reserved, and all at once when the worker
 * ends. A give-back is never repeated (see giveBack), so a crash or a lost reply can leak quota but
 * never let the account pass its limit.
 */
export class QuotaHold {
  private readonly unspent = new Map<number, number>();

  constructor(
    private readonly ctx: AppContext,
    private readonly accountId: number,
  ) {}

  /**
   * Reserves up to `want` sends. Repeated after a lost reply, a reservation leaks quota (never
   * overshoots), which is why the caller may retry it.
   */
  async reserve(want: number, now: Date): Promise<HeldQuota> {
    const r = await reserveSends(this.ctx.db, this.accountId, want, now);
    const window = r.hourStart.getTime();
    if (r.granted > 0) this.unspent.set(window, (this.unspent.get(window) ?? 0) + r.granted);
    return { window, granted: r.granted, validUntil: r.validUntil.getTime() };
  }

  /** One reserved send went out (or was tried). */
  spend(window: number): void {
    this.unspent.set(window, this.unspent.get(window)! - 1);
  }

  /** A send that was spent turned out to have sent nothing (the account was at fault): it is unspent again. */
  refund(window: number): void {
    this.unspent.set(window, this.unspent.get(window)! + 1);
  }

  /**
   * Gives back reserved sends that will not be spent. Never repeated: a give-back whose reply was
   * lost may have landed, and giving back twice could let the account pass its limit. A failed
   * one leaks quota instead, which is the safe side.
   */
  async giveBack(window: number, count: number): Promise<void> {
    if (count <= 0) return;
    this.unspent.set(window, this.unspent.get(window)! - count);
    await releaseSends(this.ctx.db, this.accountId, new Date(window), count).catch((err) =>
      this.ctx.log.warn({ err, accountId: this.accountId, count }, 'could not give back unspent quota'),
    );
  }

  /** Gives back everything still held (the worker is ending). */
  async releaseAll(): Promise<void> {
    for (const [window, n] of this.unspent) await this.giveBack(window, n);
    this.unspent.clear();
  }
}
