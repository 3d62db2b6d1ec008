import type { AppContext } from '../context.ts';
import { runningCampaignIds } from '../db/campaigns.ts';
import { clearThrottleStrikes, releaseLease, type WorkerAccount } from '../db/engineAccounts.ts';
import { claimMessages, type ClaimedMessage } from '../db/messages.ts';
import { isTransientDbError, retryTransient } from '../db/transient.ts';
import { releaseSends, reserveSends } from '../db/usage.ts';
import type { AppEvent } from '../events.ts';
import { decryptSecret } from '../secrets.ts';
import type { AccountOutcome, SendOutcome } from '../smtp/classify.ts';
import { AccountTransport } from '../smtp/transport.ts';
import { applyAccountOutcome } from './accountHealth.ts';
import { AccountLease } from './accountLease.ts';
import type { LeaseKeeper } from './leaseKeeper.ts';
import { OutcomeRecorder, type RecordedOutcome } from './outcomeRecorder.ts';
import type { OutcomeWriter } from './outcomeWriter.ts';
import type { Renderer } from './renderer.ts';
import { retryAt, MAX_ATTEMPTS } from './retry.ts';
import { Signal } from './signal.ts';

/**
 * Messages claimed (and quota reserved) per round trip: about CLAIM_AHEAD_MS of the account's
 * recent sending, within these bounds. A fast account claims big batches (few statements per
 * message); a thousand slow ones do not hold a hundred rendered-to-be messages each in memory.
 */
const CLAIM_MIN = 20;
const CLAIM_MAX = 100;
const CLAIM_AHEAD_MS = 10_000;

/** What the account workers of one process share. */
export interface WorkerShared {
  renderer: Renderer;
  outcomes: OutcomeWriter;
  leases: LeaseKeeper;
}

export type ExitReason = 'no_quota' | 'no_work' | 'lease_lost' | 'account_problem' | 'shutdown' | 'rebalance' | 'error';

interface Queued {
  msg: ClaimedMessage;
  /** The usage hour the send was reserved in, and until when that reservation may be spent. */
  hourStart: number;
  validUntil: number;
}

/**
 * One account's sending loop (promise 1): reserve quota, claim that many messages round-robin over
 * the user's running campaigns, send them over the account's SMTP sessions, record outcomes in
 * batches, give back what was not spent, release the account. Exits when the account has no quota
 * or no work left, when the server blames the account, when told to stop, or when its lease can no
 * longer be trusted (then at once: sends in flight are cut, so no two processes ever send through
 * one account).
 *
 *   pending ──claim──► sending ──► sent | failed | pending (retry, pause, account trouble) | cancelled (stop)
 *
 * Database trouble (a dropped connection, a lock timeout) is retried with backoff; the claim and
 * outcome statements are safe to repeat.
 */
export class AccountWorker {
  private readonly transport: AccountTransport;
  private readonly lease: AccountLease;
  private readonly book: OutcomeRecorder;
  private readonly notify = () => this.wake.notify();
  private queue: Queued[] = [];
  private inflight = 0;
  private unspent = new Map<number, number>();
  private campaignStatus = new Map<number, string>();
  /** Sequence number of the last status event per campaign, so a slower database read never overrides it. */
  private statusSeen = new Map<number, number>();
  private eventSeq = 0;
  private cursors = new Map<number, number>();
  private claimSize = CLAIM_MIN;
  private sentSinceClaim = 0;
  private lastClaimAt = performance.now();
  private roundRobin = 0;
  private drained = false;
  private halted: ExitReason | undefined;
  private exitReason: ExitReason = 'no_work';
  private refilling: Promise<void> | undefined;
  private paceTimer: NodeJS.Timeout | undefined;
  private nextSendAt = 0;
  private readonly wake = new Signal();
  /** The first account-level outcome (throttle, quota, credentials), applied to the account on exit. */
  private accountProblem: AccountOutcome | undefined;
  /** Set when sends in flight were cut on purpose: their failures say nothing about the account. */
  private aborted = false;
  /** performance.now() after which database writes give up (shutdown); Infinity otherwise. */
  private giveUpAt = Infinity;
  private throttleStrikes: number;

  constructor(
    private readonly ctx: AppContext,
    readonly account: WorkerAccount,
    private readonly owner: string,
    private readonly shared: WorkerShared,
    leaseTakenAt: number,
  ) {
    const password = account.passwordEnc
      ? decryptSecret(ctx.secrets.secretKey, account.passwordEnc, `smtp_accounts:${account.id}:password`)
      : null;
    this.transport = new AccountTransport(account, { username: account.username, password }, account.connections);
    this.lease = new AccountLease(ctx, account.id, shared.leases, leaseTakenAt, () => {
      this.halt('lease_lost');
      this.abort();
    });
    this.book = new OutcomeRecorder(ctx, account, shared.outcomes, () => this.lease.takenOver || performance.now() > this.giveUpAt, () => this.halt('error'));
    this.throttleStrikes = account.throttleStrikes;
  }

  /**
   * Stops claiming; sends in flight finish and are recorded. With a deadline (shutdown), sends
   * still in flight after `abortAfterMs` are cut, and database writes give up after `giveUpAfterMs`.
   */
  stop(reason: 'shutdown' | 'rebalance', deadline?: { abortAfterMs: number; giveUpAfterMs: number }): void {
    this.halt(reason);
    if (!deadline) return;
    this.giveUpAt = performance.now() + deadline.giveUpAfterMs;
    setTimeout(() => this.abort(), deadline.abortAfterMs).unref();
  }

  /** Cuts the sends in flight; each is recorded by how far it got (see smtp/transport.ts). */
  private abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.transport.close();
  }

  async run(): Promise<ExitReason> {
    const unsubscribe = this.ctx.events.on((e) => this.onEvent(e), { type: 'campaign.status', userId: this.account.userId });
    this.lease.start();
    try {
      for (;;) {
        if (this.halted) break;
        this.pump();
        // The next batch is claimed while half of this one is still queued, so sessions never wait on the database.
        if (!this.refilling && !this.drained && this.queue.length < this.claimSize / 2) {
          this.refilling = this.refill()
            .catch((err) => this.fail(err))
            .finally(() => {
              this.refilling = undefined;
              this.wake.notify();
            });
        }
        if (this.drained && !this.refilling && this.queue.length === 0 && this.inflight === 0) break;
        await this.wake.wait();
      }
      while (this.inflight > 0 || this.refilling) await this.wake.wait();
    } finally {
      clearTimeout(this.paceTimer);
      unsubscribe();
      if (this.aborted) this.transport.close();
      else this.transport.quit();
      this.returnQueued();
      await this.book.flush();
      await this.releaseUnspent();
      if (this.accountProblem) await this.reportAccountProblem(this.accountProblem);
      await this.releaseAccount();
    }
    return this.halted ?? this.exitReason;
  }

  private halt(reason: ExitReason): void {
    this.halted ??= reason;
    this.wake.notify();
  }

  private fail(err: unknown): void {
    // A transient error after the worker was told to stop is just the retry giving up.
    if (!(this.halted && isTransientDbError(err))) this.ctx.log.error({ err, accountId: this.account.id }, 'account worker failed');
    this.halt('error');
  }

  private onEvent(e: AppEvent): void {
    if (e.type !== 'campaign.status') return;
    this.campaignStatus.set(e.campaignId, e.status);
    this.statusSeen.set(e.campaignId, ++this.eventSeq);
    if (e.status !== 'running') this.wake.notify();
  }

  /** Starts sends while a session is free: the next message goes out before the last is recorded. */
  private pump(): void {
    while (!this.halted && this.inflight < this.account.connections && this.queue.length > 0) {
      if (!this.lease.trusted) {
        this.halt('lease_lost');
        return;
      }
      if (this.shared.outcomes.full) {
        this.shared.outcomes.onRoom(this.notify);
        return;
      }
      if (this.account.ratePerSecond) {
        const wait = this.nextSendAt - performance.now();
        if (wait > 0) {
          this.paceTimer ??= setTimeout(() => {
            this.paceTimer = undefined;
            this.wake.notify();
          }, wait);
          return;
        }
        this.nextSendAt = Math.max(this.nextSendAt, performance.now()) + 1000 / this.account.ratePerSecond;
      }
      const next = this.queue[0]!;
      const status = this.campaignStatus.get(next.msg.campaignId);
      if (status !== 'running') {
        this.queue.shift();
        this.book.record({ id: next.msg.id, status: status === 'stopped' ? 'cancelled' : 'pending' });
        continue;
      }
      if (this.ctx.clock.now().getTime() >= next.validUntil) {
        // The reservation belongs to a clock hour that has ended: claim again under the new hour.
        this.returnQueued();
        return;
      }
      this.queue.shift();
      this.unspent.set(next.hourStart, this.unspent.get(next.hourStart)! - 1);
      this.sentSinceClaim++;
      this.send(next);
    }
  }

  private send(q: Queued): void {
    this.inflight++;
    let raw: string;
    try {
      raw = this.shared.renderer.render(q.msg, this.account);
    } catch (err) {
      this.settle(q, { kind: 'failed', error: `rendering failed: ${(err as Error).message}`, cause: 'local' }, undefined);
      return;
    }
    const startedAt = performance.now();
    void this.transport.send(this.account.email, q.msg.email, raw).then((outcome) => this.settle(q, outcome, performance.now() - startedAt));
  }

  /** The one place a send's outcome turns into a message transition (smtp/classify.ts decides the outcome). */
  private settle(q: Queued, outcome: SendOutcome, latencyMs: number | undefined): void {
    const { msg } = q;
    this.inflight--;
    this.book.count(outcome.kind, latencyMs);
    const now = this.ctx.clock.now();
    const record = (o: Omit<RecordedOutcome, 'id'>) => this.book.record({ id: msg.id, ...o });
    switch (outcome.kind) {
      case 'sent':
        record({ status: 'sent', charged: 1, sentAt: now });
        if (this.throttleStrikes > 0) {
          this.throttleStrikes = 0;
          void clearThrottleStrikes(this.ctx.db, this.account.id).catch(() => undefined);
        }
        break;
      case 'unknown':
        // The data went out and the reply was lost: it may well have arrived, so it is never sent again.
        record({ status: 'sent', charged: 1, sentAt: now, error: `possibly delivered: ${outcome.error}`, possiblyDelivered: true });
        break;
      case 'retry':
        if (msg.attempts + 1 >= (outcome.maxAttempts ?? MAX_ATTEMPTS)) record({ status: 'failed', charged: 1, error: outcome.error });
        else record({ status: 'pending', charged: 1, error: outcome.error, nextAttemptAt: retryAt(now, msg.attempts + 1) });
        break;
      case 'failed':
        record({ status: 'failed', charged: 1, error: outcome.error });
        if (outcome.cause === 'hard_bounce') this.book.bounce(msg.email);
        if (outcome.cause === 'sender_config') this.book.senderWarning(msg.campaignId, outcome.error);
        if (outcome.cause === 'protocol') this.ctx.log.error({ accountId: this.account.id, reply: outcome.error }, 'the SMTP server rejected what MailPilot said');
        break;
      default:
        // The account, not the message, is at fault: the message goes back untouched for another
        // account (its reserved send too, since nothing went out), and this one stops. After a
        // deliberate cut the failure says nothing about the account.
        record({ status: 'pending' });
        this.unspent.set(q.hourStart, this.unspent.get(q.hourStart)! + 1);
        if (!this.aborted && !this.accountProblem) {
          this.accountProblem = outcome;
          this.halt('account_problem');
        }
    }
    this.pump();
    this.wake.notify();
  }

  /** Puts every queued, unsent message back in the queue for any account to take. */
  private returnQueued(): void {
    for (const q of this.queue.splice(0)) this.book.record({ id: q.msg.id, status: 'pending' });
  }

  private async refill(): Promise<void> {
    const { db } = this.ctx;
    const now = this.ctx.clock.now();
    const retry = <T>(fn: () => Promise<T>) => retryTransient(fn, () => this.halted !== undefined);
    const readAt = this.eventSeq;
    const campaigns = await retry(() => runningCampaignIds(db, this.account.userId));
    const running = new Set(campaigns);
    for (const id of new Set([...campaigns, ...this.campaignStatus.keys()])) {
      if ((this.statusSeen.get(id) ?? -1) > readAt) continue;
      if (running.has(id)) this.campaignStatus.set(id, 'running');
      else if (this.campaignStatus.get(id) === 'running') this.campaignStatus.set(id, 'not_running');
    }
    if (campaigns.length === 0) return this.finish('no_work');
    // Repeated after a lost reply, a reservation leaks quota (never overshoots); a claim leaves
    // orphan 'sending' rows under this account, which go back to the queue when the lease is released.
    this.claimSize = this.nextClaimSize();
    const reservation = await retry(() => reserveSends(db, this.account.id, this.claimSize, now));
    if (reservation.granted === 0) return this.finish('no_quota');
    const hourStart = reservation.hourStart.getTime();
    this.unspent.set(hourStart, (this.unspent.get(hourStart) ?? 0) + reservation.granted);
    const claimed: ClaimedMessage[] = [];
    for (let i = 0; i < campaigns.length && claimed.length < reservation.granted; i++) {
      const campaignId = campaigns[(this.roundRobin + i) % campaigns.length]!;
      claimed.push(...(await retry(() => this.claimFrom(campaignId, reservation.granted - claimed.length, now))));
    }
    this.roundRobin = (this.roundRobin + 1) % campaigns.length;
    await this.giveBack(hourStart, reservation.granted - claimed.length);
    if (claimed.length === 0) return this.finish('no_work');
    await retry(() => this.shared.renderer.load(new Set(claimed.map((m) => m.campaignId))));
    for (const msg of claimed) this.queue.push({ msg, hourStart, validUntil: reservation.validUntil.getTime() });
  }

  private nextClaimSize(): number {
    const elapsed = Math.max(1, performance.now() - this.lastClaimAt);
    const ahead = Math.ceil((this.sentSinceClaim / elapsed) * CLAIM_AHEAD_MS);
    this.sentSinceClaim = 0;
    this.lastClaimAt = performance.now();
    return Math.min(CLAIM_MAX, Math.max(CLAIM_MIN, ahead));
  }

  private finish(reason: ExitReason): void {
    this.drained = true;
    this.exitReason = reason;
  }

  /** Claims from the worker's cursor; rows returned to the queue behind it are picked up when it runs dry. */
  private async claimFrom(campaignId: number, limit: number, now: Date): Promise<ClaimedMessage[]> {
    const base = { accountId: this.account.id, owner: this.owner, campaignId, now };
    const cursor = this.cursors.get(campaignId) ?? 0;
    let claimed = await claimMessages(this.ctx.db, { ...base, afterId: cursor, limit });
    if (claimed.length > 0) this.cursors.set(campaignId, claimed.at(-1)!.id);
    if (claimed.length < limit && cursor > 0) {
      claimed = claimed.concat(await claimMessages(this.ctx.db, { ...base, afterId: 0, limit: limit - claimed.length }));
    }
    return claimed;
  }

  /**
   * Gives back reserved sends that will not be spent. Never repeated: a give-back whose reply was
   * lost may have landed, and giving back twice could let the account pass its limit. A failed
   * one leaks quota instead, which is the safe side.
   */
  private async giveBack(hourStart: number, count: number): Promise<void> {
    if (count <= 0) return;
    this.unspent.set(hourStart, this.unspent.get(hourStart)! - count);
    await releaseSends(this.ctx.db, this.account.id, new Date(hourStart), count).catch((err) =>
      this.ctx.log.warn({ err, accountId: this.account.id, count }, 'could not give back unspent quota'),
    );
  }

  private async releaseUnspent(): Promise<void> {
    for (const [hourStart, n] of this.unspent) await this.giveBack(hourStart, n);
    this.unspent.clear();
  }

  private async reportAccountProblem(problem: AccountOutcome): Promise<void> {
    await applyAccountOutcome(this.ctx, this.account, problem, () => performance.now() > this.giveUpAt).catch((err) =>
      this.ctx.log.error({ err, accountId: this.account.id }, 'could not record the account health change'),
    );
  }

  /**
   * Frees the account for any process, returning orphaned claims to the queue. Not when an
   * outcome batch failed to land: those rows may have been sent, and the lease's expiry (later)
   * is the most that can be done for them.
   */
  private async releaseAccount(): Promise<void> {
    this.lease.stop();
    if (!this.book.complete || this.lease.takenOver) return;
    await retryTransient(
      () => this.ctx.db.transaction((tx) => releaseLease(tx, this.account.id, this.owner)),
      () => performance.now() > this.giveUpAt,
    ).catch((err) => this.ctx.log.warn({ err, accountId: this.account.id }, 'could not release the account lease; it will expire'));
  }
}
