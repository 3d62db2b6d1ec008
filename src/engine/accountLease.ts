import type { AppContext } from '../context.ts';
import type { HeldLease, LeaseKeeper } from './leaseKeeper.ts';

/**
 * A worker's hold on its account (the lease notes are in db/engineAccounts.ts). The process's
 * LeaseKeeper renews it every sixth of its time to live; the hold is the worker's fence against a
 * takeover: another process may take the account as soon as lease_expires_at has passed, so the
 * worker must be done with the account before then. Only a renewal that landed moves that moment;
 * a sixth of the time to live before it, `trusted` turns false and `onLost` is called, as it is at
 * once when the lease turns out to be someone else's. That margin also absorbs clock skew between machines. The local
 * deadline runs on the monotonic clock: it is about real time passing, not business time.
 */
export class AccountLease implements HeldLease {
  private trustedUntil: number;
  private watchdog: NodeJS.Timeout | undefined;
  private lost = false;
  /** True once the lease is known to be someone else's (or freed by a sweep): outcomes can no longer land. */
  takenOver = false;

  constructor(
    private readonly ctx: AppContext,
    private readonly accountId: number,
    private readonly keeper: LeaseKeeper,
    /** performance.now() just before the lease was taken. */
    takenAt: number,
    private readonly onLost: () => void,
  ) {
    this.trustedUntil = takenAt + this.ttlMs - this.marginMs;
  }

  private get ttlMs(): number {
    return this.ctx.config.leaseTtlMs;
  }

  private get marginMs(): number {
    return this.ttlMs / 6;
  }

  start(): void {
    this.keeper.hold(this.accountId, this);
    this.armWatchdog();
  }

  stop(): void {
    this.keeper.drop(this.accountId);
    clearTimeout(this.watchdog);
  }

  /** Whether no other process can have taken the account yet. */
  get trusted(): boolean {
    return !this.lost && performance.now() < this.trustedUntil;
  }

  renewed(startedAt: number): void {
    if (this.lost) return;
    this.trustedUntil = startedAt + this.ttlMs - this.marginMs;
    this.armWatchdog();
  }

  revoked(): void {
    this.takenOver = true;
    this.lose();
  }

  private armWatchdog(): void {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => this.lose(), Math.max(0, this.trustedUntil - performance.now()));
  }

  private lose(): void {
    if (this.lost) return;
    this.lost = true;
    this.stop();
    this.ctx.log.warn({ accountId: this.accountId, takenOver: this.takenOver }, 'account lease lost');
    this.onLost();
  }
}
