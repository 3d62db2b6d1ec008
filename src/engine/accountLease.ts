import type { AppContext } from '../context.ts';
import { renewLease } from '../db/engineAccounts.ts';

/**
 * A worker's hold on its account (the lease notes are in db/engineAccounts.ts). It renews the lease
 * every sixth of its time to live, and it is the worker's fence against a takeover: another process
 * may take the account as soon as lease_expires_at has passed, so the worker must be done with
 * the account before then. Only a renewal that landed moves that moment; a sixth of the time to
 * live before it, `trusted` turns false and `onLost` is called, as it is at once when the lease
 * turns out to be someone else's. That margin also absorbs clock skew between machines. The local
 * deadline runs on the monotonic clock: it is about real time passing, not business time.
 */
export class AccountLease {
  private trustedUntil: number;
  private heartbeat: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private renewing = false;
  private lost = false;
  /** True once the lease is known to be someone else's (or freed by a sweep): outcomes can no longer land. */
  takenOver = false;

  constructor(
    private readonly ctx: AppContext,
    private readonly accountId: number,
    private readonly owner: string,
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
    this.heartbeat = setInterval(() => void this.renew(), this.ttlMs / 6);
    this.armWatchdog();
  }

  stop(): void {
    clearInterval(this.heartbeat);
    clearTimeout(this.watchdog);
  }

  /** Whether no other process can have taken the account yet. */
  get trusted(): boolean {
    return !this.lost && performance.now() < this.trustedUntil;
  }

  private async renew(): Promise<void> {
    if (this.renewing || this.lost) return;
    this.renewing = true;
    const startedAt = performance.now();
    try {
      const expires = new Date(this.ctx.clock.now().getTime() + this.ttlMs);
      if (await renewLease(this.ctx.db, this.accountId, this.owner, expires)) {
        this.trustedUntil = startedAt + this.ttlMs - this.marginMs;
        this.armWatchdog();
      } else {
        this.takenOver = true;
        this.lose();
      }
    } catch (err) {
      // The next heartbeat tries again; the watchdog ends the hold if none lands in time.
      this.ctx.log.debug({ err, accountId: this.accountId }, 'lease renewal failed');
    } finally {
      this.renewing = false;
    }
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
