import type { AppContext } from '../context.ts';
import { giveBack, reserveSends, type Reservation } from '../sendingPolicy/reservation.ts';

/**
 * The quota one account worker holds: sends the sending policy reserved for it (held in the database,
 * sendingPolicy/reservation.ts) and not spent yet, per hold. Every reserved send is spent on an SMTP
 * attempt (counted as a send when its outcome lands) or given back: when a claim finds fewer messages
 * than reserved, as soon as a hold's validity has passed, and all at once when the worker ends. A
 * give-back is never repeated, so a crash or a lost reply can leak quota but never let the account
 * pass a limit.
 */
export class QuotaHold {
  /** Unspent sends per hold; holds of an account without limits (null id) need no giving back. */
  private readonly unspent = new Map<number, number>();

  constructor(
    private readonly ctx: AppContext,
    private readonly accountId: number,
  ) {}

  /** Reserves up to `want` sends. Repeated after a lost reply, a reservation leaks quota (never overshoots). */
  async reserve(want: number, now: Date): Promise<Reservation> {
    const r = await reserveSends(this.ctx.db, this.accountId, want, now);
    if (r.holdId !== null && r.granted > 0) this.unspent.set(r.holdId, r.granted);
    return r;
  }

  /** One reserved send is being attempted. */
  spend(holdId: number | null): void {
    if (holdId !== null) this.unspent.set(holdId, this.unspent.get(holdId)! - 1);
  }

  /** A send that was spent turned out to have sent nothing (the account was at fault): it is unspent again. */
  refund(holdId: number | null): void {
    if (holdId !== null) this.unspent.set(holdId, this.unspent.get(holdId)! + 1);
  }

  /** Gives back `count` unspent sends of a hold. */
  async giveBack(holdId: number | null, count: number): Promise<void> {
    if (holdId === null || count <= 0) return;
    this.unspent.set(holdId, this.unspent.get(holdId)! - count);
    await giveBack(this.ctx.db, holdId, count).catch((err) =>
      this.ctx.log.warn({ err, accountId: this.accountId, count }, 'could not give back unspent quota'),
    );
  }

  /** Gives back everything still held by these holds (their validity has passed). */
  async giveBackAll(holdIds: Iterable<number | null>): Promise<void> {
    for (const id of new Set(holdIds)) if (id !== null) await this.giveBack(id, this.unspent.get(id) ?? 0);
  }

  /** Gives back everything still held (the worker is ending). */
  async releaseAll(): Promise<void> {
    await this.giveBackAll([...this.unspent.keys()]);
    this.unspent.clear();
  }
}
