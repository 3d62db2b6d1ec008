import type { AppContext } from '../context.ts';
import { renewLeases } from '../db/engineAccounts.ts';

interface Request {
  accountId: number;
  expiresAt: Date;
  resolve: (held: boolean) => void;
  reject: (err: unknown) => void;
}

/**
 * The renewals of all the process's account leases, one statement at a time. With a thousand
 * accounts, one statement each was 200 a second, queued behind claims for a pooled connection;
 * delayed past the lease's margin, a renewal let the lease lapse, and a sweep then sent again what
 * the worker had sent but not yet recorded.
 */
export class LeaseRenewer {
  private pending: Request[] = [];
  private writing = false;

  constructor(
    private readonly ctx: AppContext,
    private readonly owner: string,
  ) {}

  /** Resolves true when the lease was renewed until `expiresAt` (or a moment later), false when it is someone else's. */
  renew(accountId: number, expiresAt: Date): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.pending.push({ accountId, expiresAt, resolve, reject });
      if (!this.writing) void this.writeNext();
    });
  }

  private async writeNext(): Promise<void> {
    this.writing = true;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0);
      // The latest expiry asked for: a lease may outlast what its worker trusts, never fall short of it.
      const expiresAt = new Date(Math.max(...batch.map((r) => r.expiresAt.getTime())));
      try {
        const held = await renewLeases(this.ctx.db, [...new Set(batch.map((r) => r.accountId))], this.owner, expiresAt);
        for (const r of batch) r.resolve(held.has(r.accountId));
      } catch (err) {
        for (const r of batch) r.reject(err);
      }
    }
    this.writing = false;
  }
}
