import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Timer } from '../clock.ts';
import type { AppContext } from '../context.ts';
import { campaignsDue, nextDueAt } from '../db/campaigns.ts';
import { expiredLeases, findLaunchCandidates, idleUsersWithWork, releaseLease, sweepExpiredLease, takeLease } from '../db/engineAccounts.ts';
import { nextQuotaAt } from '../db/usage.ts';
import { completeIfFinished, resumeFromLimits, settleStopped, startCampaign } from '../campaigns/lifecycle.ts';
import { AccountWorker, LEASE_TTL_MS } from './accountWorker.ts';
import { pauseIfStuck } from './limits.ts';
import { Renderer } from './renderer.ts';

/** How often the scheduler looks even when nothing woke it (real time, not business time). */
const TICK_INTERVAL_MS = 1_000;

/**
 * The scheduler (one per process): launches one worker per account that can send, taking the
 * account's lease so only one worker in the whole cluster uses it; pauses users whose accounts are
 * all at a limit and resumes them by timer; starts scheduled campaigns; sweeps dead leases.
 */
export class Engine {
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private readonly workers = new Map<number, { worker: AccountWorker; done: Promise<void> }>();
  private readonly renderer: Renderer;
  private interval: NodeJS.Timeout | undefined;
  private dueTimer: Timer | undefined;
  private ticking: Promise<void> | undefined;
  private tickAgain = false;
  private stopping = false;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly ctx: AppContext) {
    this.renderer = new Renderer(ctx);
  }

  async start(): Promise<void> {
    this.unsubscribe = this.ctx.events.on((e) => {
      if (e.type === 'engine.wake' || (e.type === 'campaign.status' && e.status === 'running')) this.wake();
    });
    this.interval = setInterval(() => this.wake(), TICK_INTERVAL_MS);
    this.wake();
    await this.ticking;
  }

  /** Stops launching, lets every worker finish its in-flight sends and record them, frees the leases. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.interval);
    this.dueTimer?.cancel();
    this.unsubscribe?.();
    await this.ticking;
    for (const { worker } of this.workers.values()) worker.stop();
    await Promise.all([...this.workers.values()].map((w) => w.done));
  }

  /** Number of account workers running in this process. */
  get activeWorkers(): number {
    return this.workers.size;
  }

  /** Runs a scheduler pass now (or right after the current one). Resolves when it is done. */
  wake(): Promise<void> {
    if (this.stopping) return Promise.resolve();
    if (this.ticking) {
      this.tickAgain = true;
      return this.ticking;
    }
    this.ticking = (async () => {
      do {
        this.tickAgain = false;
        try {
          await this.tick();
        } catch (err) {
          this.ctx.log.error({ err }, 'scheduler pass failed');
        }
      } while (this.tickAgain && !this.stopping);
    })().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async tick(): Promise<void> {
    const { ctx } = this;
    const now = ctx.clock.now();
    for (const c of await campaignsDue(ctx.db, 'scheduled', now)) {
      await startCampaign(ctx, c.userId, c.id, { dueBy: now }).catch((err) => ctx.log.warn({ err, campaignId: c.id }, 'scheduled start failed'));
    }
    for (const c of await campaignsDue(ctx.db, 'paused_limits', now)) await resumeFromLimits(ctx, c);
    for (const accountId of await expiredLeases(ctx.db, now)) {
      if (!this.workers.has(accountId)) await ctx.db.transaction((tx) => sweepExpiredLease(tx, accountId, now));
    }
    await settleStopped(ctx);
    const finished = await ctx.db.query<{ id: number }>(
      `SELECT id FROM campaigns WHERE status IN ('running', 'paused_limits') AND sent + failed + suppressed + cancelled >= total`,
    );
    await completeIfFinished(ctx, finished.map((r) => r.id));
    await this.launch(now);
    for (const userId of await idleUsersWithWork(ctx.db, now)) await pauseIfStuck(ctx, userId);
    await this.armDueTimer();
  }

  private async launch(now: Date): Promise<void> {
    const candidates = (await findLaunchCandidates(this.ctx.db, now)).filter((c) => !this.workers.has(c.id));
    if (candidates.length === 0) return;
    const quotaAt = await nextQuotaAt(this.ctx.db, candidates.map((c) => c.id), now);
    for (const c of candidates) {
      if (this.stopping || quotaAt.get(c.id)! > now) continue;
      const expires = new Date(now.getTime() + LEASE_TTL_MS);
      const account = await this.ctx.db.transaction((tx) => takeLease(tx, c.id, this.owner, now, expires));
      if (!account) continue;
      const worker = new AccountWorker(this.ctx, account, this.owner, this.renderer);
      const done = worker
        .run()
        .then((reason) => this.ctx.log.debug({ accountId: account.id, reason }, 'account worker exited'))
        .catch((err) => this.ctx.log.error({ err, accountId: account.id }, 'account worker crashed'))
        .then(() => releaseLease(this.ctx.db, account.id, this.owner))
        .catch((err) => this.ctx.log.warn({ err, accountId: account.id }, 'could not release lease'))
        .finally(() => {
          this.workers.delete(account.id);
          void this.wake();
        });
      this.workers.set(account.id, { worker, done });
    }
  }

  /** Business-time timer for the next scheduled start or limit resume, so neither waits for a poll. */
  private async armDueTimer(): Promise<void> {
    const at = await nextDueAt(this.ctx.db);
    this.dueTimer?.cancel();
    this.dueTimer = at && !this.stopping ? this.ctx.clock.at(at, () => void this.wake()) : undefined;
  }
}
