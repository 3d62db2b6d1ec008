import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Timer } from '../clock.ts';
import type { AppContext } from '../context.ts';
import type { Queryable } from '../db/database.ts';
import { campaignsDue, finishedCampaignIds } from '../db/campaigns.ts';
import { accountsToSweep, countOthersLiveLeases, findLaunchCandidates, idleUsersWithWork, releaseLease, sweepAccount, takeLeases } from '../db/engineAccounts.ts';
import { forgetDeadNodes, removeNode, renewNode } from '../db/engineNodes.ts';
import { nextWakeAt } from '../db/engineSchedule.ts';
import { QueueUpkeep } from '../db/queueUpkeep.ts';
import { isTransientDbError } from '../db/transient.ts';
import { accountAccessTokens, type SendingAccount } from '../db/sendingAccounts.ts';
import { pauseIfStuck, resumeFromLimits } from '../campaigns/autoPause.ts';
import { Composer } from '../campaigns/composition.ts';
import { completeIfFinished, settleStopped, startCampaign } from '../campaigns/lifecycle.ts';
import { AccountWorker, type ExitReason, type WorkerShared } from './accountWorker.ts';
import { purgeHolds } from '../db/usage.ts';
import { readFacts } from '../sendingPolicy/facts.ts';
import { decide } from '../sendingPolicy/policy.ts';
import { LocalFailures } from './localFailures.ts';
import { LeaseKeeper } from './leaseKeeper.ts';
import { OutcomeWriter } from './outcomeWriter.ts';

/** How often the scheduler looks even when nothing woke it (real time, not business time). */
const TICK_INTERVAL_MS = 1_000;
/** An account whose worker found nothing to claim waits this long, or for a wake-up, before the next try. */
const IDLE_COOLDOWN_MS = 1_000;
/** An account whose worker failed waits this long before the next try, doubled per failure in a row. */
const ERROR_BACKOFF_MS = 1_000;
const MAX_ERROR_BACKOFF_MS = 60_000;
/** Accounts whose leases are taken in one transaction. */
const LAUNCH_BATCH = 100;
/** On shutdown, sends in flight get this long to finish, and database writes this long to land. */
const SHUTDOWN_SENDS_MS = 5_000;
const SHUTDOWN_WRITES_MS = 8_000;
/** On shutdown, how long a scheduler pass under way may finish (it may be waiting on an unreachable database). */
const SHUTDOWN_TICK_MS = 1_000;
/** Reserved sends count in every window they touch: a day and a bit covers the longest (a rolling 24 hours). */
const HOLDS_KEPT_MS = 25 * 60 * 60_000;
/** How long a process that stopped renewing its engine_nodes row is remembered. */
const FORGET_NODES_AFTER_MS = 60 * 60_000;

interface Running {
  worker: AccountWorker;
  userId: number;
  done: Promise<void>;
  /** Told to stop so another process can take the account (fair share). */
  leaving: boolean;
}

interface Cooldown {
  until: number;
  userId: number;
  failures: number;
  /** Business time before which the account is not tried again (recipient throttles), ms. */
  notBefore?: number;
}

/**
 * The scheduler (one per process): launches one worker per account that can send, taking the
 * account's lease so only one worker in the whole cluster uses it; pauses users whose accounts are
 * all at a limit and resumes them by timer; starts scheduled campaigns; sweeps dead leases.
 *
 * Several processes share the accounts fairly: each renews a row in engine_nodes, takes at most
 * its share (accounts at work cluster-wide / processes alive) and hands accounts back when it holds
 * more, so a process started later gets work too.
 *
 * Nothing spins: an account whose worker found no work or failed cools down before it is tried
 * again, and work that is not yet due (a retry, an account's back-off, a scheduled start, a limit
 * resume) is woken by a timer at its moment.
 */
export class Engine {
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private readonly workers = new Map<number, Running>();
  private readonly cooldowns = new Map<number, Cooldown>();
  private readonly shared: WorkerShared;
  private interval: NodeJS.Timeout | undefined;
  private dueTimer: Timer | undefined;
  private ticking: Promise<void> | undefined;
  private tickAgain = false;
  private stopping = false;
  private unsubscribe: (() => void) | undefined;
  /** Account workers this process has launched since it started. */
  launches = 0;

  /**
   * `own`: where lease renewals and outcome writes go; on a server, a connection each that nothing
   * else queues on (behind claims and quota steps, they were late: leases lapsed, outcomes piled up).
   */
  constructor(
    private readonly ctx: AppContext,
    own: { leases: Queryable; outcomes: Queryable } = { leases: ctx.db, outcomes: ctx.db },
  ) {
    const upkeep = new QueueUpkeep(ctx.db, (err) => ctx.log.warn({ err }, 'vacuuming the queue failed'));
    this.shared = {
      composer: new Composer(ctx),
      outcomes: new OutcomeWriter(ctx, own.outcomes, this.owner, upkeep),
      leases: new LeaseKeeper(ctx, own.leases, this.owner),
      tokens: accountAccessTokens(ctx),
      localFailures: new LocalFailures(ctx),
    };
  }

  async start(): Promise<void> {
    this.unsubscribe = this.ctx.events.on((e) => {
      if (e.type === 'engine.wake' || (e.type === 'campaign.status' && e.status === 'running')) {
        this.endIdleCooldowns(e.userId);
        void this.wake();
      }
    });
    this.interval = setInterval(() => void this.wake(), TICK_INTERVAL_MS);
    this.shared.leases.start();
    await this.wake();
  }

  /**
   * Stops launching; every worker stops claiming, its sends in flight finish (or are cut after
   * SHUTDOWN_SENDS_MS), its outcomes are recorded and its lease released.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.interval);
    this.dueTimer?.cancel();
    this.unsubscribe?.();
    // A pass that takes a lease after this point hands it straight back (see launch).
    await Promise.race([this.ticking, new Promise((r) => setTimeout(r, SHUTDOWN_TICK_MS).unref())]);
    for (const { worker } of this.workers.values()) {
      worker.stop('shutdown', { abortAfterMs: SHUTDOWN_SENDS_MS, giveUpAfterMs: SHUTDOWN_WRITES_MS });
    }
    await Promise.all([...this.workers.values()].map((w) => w.done));
    this.shared.leases.stop();
    await Promise.race([removeNode(this.ctx.db, this.owner).catch(() => undefined), new Promise((r) => setTimeout(r, 1_000).unref())]);
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
          // The next pass (at the latest TICK_INTERVAL_MS later) starts over; database trouble is expected to pass.
          if (isTransientDbError(err)) this.ctx.log.warn({ err }, 'scheduler pass interrupted by database trouble');
          else this.ctx.log.error({ err }, 'scheduler pass failed');
        }
      } while (this.tickAgain && !this.stopping);
    })().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async tick(): Promise<void> {
    const { ctx } = this;
    const now = ctx.clock.now();
    const nodes = await renewNode(ctx.db, this.owner, now, new Date(now.getTime() + ctx.config.leaseTtlMs));
    await forgetDeadNodes(ctx.db, new Date(now.getTime() - FORGET_NODES_AFTER_MS));
    for (const c of await campaignsDue(ctx.db, 'scheduled', now)) {
      await startCampaign(ctx, c.userId, c.id, { dueBy: now }).catch((err) => ctx.log.warn({ err, campaignId: c.id }, 'scheduled start failed'));
    }
    for (const c of await campaignsDue(ctx.db, 'paused_limits', now)) await resumeFromLimits(ctx, c);
    for (const accountId of await accountsToSweep(ctx.db, now)) {
      if (this.workers.has(accountId)) continue;
      const { requeued, expired, userId } = await ctx.db.transaction((tx) => sweepAccount(tx, accountId, now));
      if (requeued > 0) ctx.log.warn({ accountId, requeued }, 'requeued the messages of a dead worker');
      if (expired) ctx.events.emit({ type: 'engine.lease_takeover', userId: userId!, accountId });
    }
    await settleStopped(ctx);
    await purgeHolds(ctx.db, new Date(now.getTime() - HOLDS_KEPT_MS));
    await completeIfFinished(ctx, await finishedCampaignIds(ctx.db));
    await this.launch(now, nodes);
    for (const userId of await idleUsersWithWork(ctx.db, now)) await pauseIfStuck(ctx, userId);
    await this.armDueTimer(now);
  }

  private async launch(now: Date, nodes: number): Promise<void> {
    const { ctx } = this;
    const candidates = (await findLaunchCandidates(ctx.db, now)).filter((c) => !this.workers.has(c.id) && !this.coolingDown(c.id));
    const atWork = this.workers.size + (await countOthersLiveLeases(ctx.db, this.owner, now)) + candidates.length;
    const share = Math.ceil(atWork / nodes);
    const staying = [...this.workers.values()].filter((w) => !w.leaving);
    for (const w of staying.slice(share)) {
      w.leaving = true;
      w.worker.stop('rebalance');
    }
    const room = Math.max(0, share - staying.length);
    if (candidates.length === 0 || room <= 0) return;
    const facts = await readFacts(ctx.db, candidates.map((c) => c.id), now);
    // Candidates come with users taking turns; the first the sending policy lets send now fill the room.
    const wanted = candidates.filter((c) => decide(facts.get(c.id)!, now.getTime(), 1).allowance > 0).slice(0, room);
    for (let i = 0; i < wanted.length && !this.stopping; i += LAUNCH_BATCH) {
      const ids = wanted.slice(i, i + LAUNCH_BATCH).map((c) => c.id);
      const takenAt = performance.now();
      const expires = new Date(now.getTime() + ctx.config.leaseTtlMs);
      const accounts = await ctx.db.transaction((tx) => takeLeases(tx, ids, this.owner, now, expires));
      if (this.stopping) {
        for (const account of accounts) await ctx.db.transaction((tx) => releaseLease(tx, account.id, this.owner));
        return;
      }
      for (const account of accounts) {
        if (account.takenOver) ctx.events.emit({ type: 'engine.lease_takeover', userId: account.userId, accountId: account.id });
        this.startWorker(account, takenAt);
      }
    }
  }

  private startWorker(account: SendingAccount, takenAt: number): void {
    const { ctx } = this;
    this.launches++;
    const worker = new AccountWorker(ctx, account, this.owner, this.shared, takenAt);
    const done = worker
      .run()
      .then(
        (reason) => this.exited(account.id, account.userId, reason, worker.idleUntil),
        (err) => {
          ctx.log.error({ err, accountId: account.id }, 'account worker crashed');
          this.exited(account.id, account.userId, 'error', undefined);
        },
      )
      .finally(() => {
        this.workers.delete(account.id);
        void this.wake();
      });
    this.workers.set(account.id, { worker, userId: account.userId, done, leaving: false });
  }

  private exited(accountId: number, userId: number, reason: ExitReason, idleUntil: Date | undefined): void {
    this.ctx.log.debug({ accountId, reason }, 'account worker exited');
    const failures = reason === 'error' ? (this.cooldowns.get(accountId)?.failures ?? 0) + 1 : 0;
    if (reason === 'error') {
      const wait = Math.min(MAX_ERROR_BACKOFF_MS, ERROR_BACKOFF_MS * 2 ** (failures - 1));
      this.cooldowns.set(accountId, { until: performance.now() + wait, userId, failures });
    } else if (reason === 'no_work' || reason === 'lease_lost') {
      this.cooldowns.set(accountId, { until: performance.now() + IDLE_COOLDOWN_MS, userId, failures, notBefore: idleUntil?.getTime() });
    } else this.cooldowns.delete(accountId);
    // Handed back for another process to take: tell them now rather than at their next pass.
    if (reason === 'rebalance') this.ctx.events.emit({ type: 'engine.wake', userId });
  }

  private coolingDown(accountId: number): boolean {
    const c = this.cooldowns.get(accountId);
    return c !== undefined && (performance.now() < c.until || (c.notBefore !== undefined && this.ctx.clock.now().getTime() < c.notBefore));
  }

  /** New work for a user (or for anyone): its idle accounts may try again at once (failed ones keep their back-off). */
  private endIdleCooldowns(userId?: number): void {
    for (const [accountId, c] of this.cooldowns) {
      if ((userId === undefined || c.userId === userId) && c.failures === 0 && c.notBefore === undefined) this.cooldowns.delete(accountId);
    }
  }

  /** Business-time timer for the next thing not yet due (see nextWakeAt), so none waits for a poll. */
  private async armDueTimer(now: Date): Promise<void> {
    const at = await nextWakeAt(this.ctx.db, now);
    this.dueTimer?.cancel();
    this.dueTimer =
      at && !this.stopping
        ? this.ctx.clock.at(at, () => {
            this.endIdleCooldowns();
            void this.wake();
          })
        : undefined;
  }
}
