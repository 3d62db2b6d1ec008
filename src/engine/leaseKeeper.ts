import type { AppContext } from '../context.ts';
import type { Queryable } from '../db/database.ts';
import { renewLeases } from '../db/engineAccounts.ts';

/** What the keeper tells each lease after a renewal round (see AccountLease). */
export interface HeldLease {
  /** The lease now runs until a time to live after `startedAt` (performance.now() before the statement). */
  renewed(startedAt: number): void;
  /** The account is no longer this process's: taken over, or freed by a sweep. */
  revoked(): void;
}

/**
 * Renews the leases of every account the process holds, all in one statement every sixth of the
 * time to live, on a connection of its own. Per-account renewals on the engine's shared
 * connections (hundreds a second at a thousand accounts) queued behind claims and outcome writes
 * past the lease margin while a hundred campaigns built their queues: leases lapsed under live
 * workers, sweeps requeued messages already sent, and they went out twice.
 */
export class LeaseKeeper {
  private readonly held = new Map<number, HeldLease>();
  private timer: NodeJS.Timeout | undefined;
  private renewing = false;

  constructor(
    private readonly ctx: AppContext,
    private readonly db: Queryable,
    private readonly owner: string,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.renewAll(), this.ctx.config.leaseTtlMs / 6);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  hold(accountId: number, lease: HeldLease): void {
    this.held.set(accountId, lease);
  }

  drop(accountId: number): void {
    this.held.delete(accountId);
  }

  private async renewAll(): Promise<void> {
    if (this.renewing || this.held.size === 0) return;
    this.renewing = true;
    const startedAt = performance.now();
    const round = [...this.held];
    try {
      const expiresAt = new Date(this.ctx.clock.now().getTime() + this.ctx.config.leaseTtlMs);
      const states = await renewLeases(this.db, this.owner, round.map(([id]) => id), expiresAt);
      for (const [id, lease] of round) {
        // Dropped meanwhile: the worker released the account itself (and a new one may hold it now).
        if (this.held.get(id) !== lease) continue;
        const state = states.get(id);
        if (state === undefined) lease.revoked();
        // Locked by another transaction right now: the next round tries again, the lease's watchdog guards meanwhile.
        else if (state) lease.renewed(startedAt);
      }
    } catch (err) {
      // The next round tries again; each lease's watchdog ends its hold if none lands in time.
      this.ctx.log.debug({ err }, 'lease renewal failed');
    } finally {
      this.renewing = false;
    }
  }
}
