import type { Composer } from '../campaigns/composition.ts';
import type { AppContext } from '../context.ts';
import { runningCampaignIds } from '../db/campaigns.ts';
import { releaseLease } from '../db/engineAccounts.ts';
import type { ClaimedMessage } from '../db/messages.ts';
import { credentials, type SendingAccount } from '../db/sendingAccounts.ts';
import type { AccessTokens } from '../smtp/oauthTokens.ts';
import { setGapUntil } from '../db/usage.ts';
import { isTransientDbError, retryTransient } from '../db/transient.ts';
import type { AppEvent } from '../events.ts';
import type { AccountOutcome, SendOutcome } from '../smtp/classify.ts';
import { AccountTransport, transportOptions } from '../smtp/transport.ts';
import { fewerConnections, onSendOutcome, onTooManyConnections, type ThrottleContext } from './accountHealth.ts';
import { AccountLease } from './accountLease.ts';
import { CampaignStatusCache } from './campaignStatusCache.ts';
import type { LeaseKeeper } from './leaseKeeper.ts';
import type { LocalFailures } from './localFailures.ts';
import { MessageClaims } from './messageClaims.ts';
import { OutcomeRecorder, type RecordedOutcome } from './outcomeRecorder.ts';
import type { OutcomeWriter } from './outcomeWriter.ts';
import { QuotaHold } from './quotaHold.ts';
import { retryAt, MAX_ATTEMPTS } from './retry.ts';
import { AcceptedRecently } from './acceptedRecently.ts';
import { MINUTE_MS } from '../sendingPolicy/limitWindows.ts';
import { SendPace } from './sendPace.ts';
import { MAX_ENDS_PER_MESSAGE, MAX_QUICK_ENDS, SessionBackOff } from './sessionBackOff.ts';
import { Signal } from './signal.ts';

/** What the account workers of one process share. */
export interface WorkerShared {
  composer: Composer;
  outcomes: OutcomeWriter;
  leases: LeaseKeeper;
  /** OAuth2 access tokens, kept in memory across the workers of an account. */
  tokens: AccessTokens;
  localFailures: LocalFailures;
}

/** `reconfigured`: its user switched the account (or its server) off, deleted, paused or changed it. */
export type ExitReason = 'no_quota' | 'no_work' | 'lease_lost' | 'account_problem' | 'shutdown' | 'rebalance' | 'reconfigured' | 'error';

/**
 * Where a worker is in its life:
 *
 *   sending ──no work or quota left──► draining ──queue and sends done──► releasing ──► done
 *      └──────────told to stop, lease lost, account trouble, error──► stopping ──sends done──┘
 *
 * - sending: claims batches (with quota reserved for them) and sends them.
 * - draining: claims nothing more; sends what it holds.
 * - stopping: starts no new send; those in flight finish (or are cut, see stop()).
 * - releasing: records every outcome, gives back unspent quota, reports account trouble, frees the account.
 */
type WorkerState =
  | { name: 'sending' }
  | { name: 'draining'; reason: 'no_work' | 'no_quota' }
  | { name: 'stopping'; reason: ExitReason }
  | { name: 'releasing'; reason: ExitReason }
  | { name: 'done'; reason: ExitReason };

const TRANSITIONS: Record<WorkerState['name'], readonly WorkerState['name'][]> = {
  sending: ['draining', 'stopping'],
  draining: ['stopping', 'releasing'],
  stopping: ['releasing'],
  releasing: ['done'],
  done: [],
};

/** A claimed message waiting for a free session, and the reserved send it will spend. */
interface Queued {
  msg: ClaimedMessage;
  holdId: number | null;
  /** The reservation may only be spent before this moment (business time, ms). */
  validUntil: number;
  /** Sessions the server ended under this message in this worker (see SessionBackOff). */
  sessionEnds: number;
  /** When its SMTP attempt started (business time): the instant it counts as a send at. */
  attemptedAt?: Date;
}

/**
 * One account's sending loop (promise 1): reserve quota, claim that many messages round-robin over
 * the user's running campaigns, send them over the account's SMTP sessions, record outcomes in
 * batches, give back what was not spent, release the account. Ends when the account has no quota
 * or no work left, when the server blames the account, when told to stop or its account changes
 * (switched off, deleted, paused: no new send starts, claimed messages go back uncharged, sends in
 * flight finish), or when its lease can no
 * longer be trusted (then at once: sends in flight are cut, so no two processes ever send through
 * one account).
 *
 *   pending ──claim──► sending ──► sent | failed | pending (retry, pause, account trouble) | cancelled (stop)
 *
 * Database trouble (a dropped connection, a lock timeout) is retried with backoff; the claim and
 * outcome statements are safe to repeat.
 */
export class AccountWorker {
  private state: WorkerState = { name: 'sending' };
  private readonly transport: AccountTransport;
  private readonly lease: AccountLease;
  private readonly book: OutcomeRecorder;
  private readonly quota: QuotaHold;
  private readonly statuses = new CampaignStatusCache();
  private readonly claims: MessageClaims;
  private readonly pace: SendPace;
  private readonly wake = new Signal();
  private readonly notify = () => this.wake.notify();
  private queue: Queued[] = [];
  private inflight = 0;
  private refilling: Promise<void> | undefined;
  /** The first account-level outcome (throttle, quota, credentials), applied to the account on release. */
  private accountProblem: AccountOutcome | undefined;
  /** What the worker saw when a throttle came, for the gentle restart after it. */
  private throttleSeen: ThrottleContext | undefined;
  /** Concurrent sends (hence connections) now: fewer while recovering from a throttle. */
  private connections: number;
  /** The most concurrent connections the account may have, lowered when the server refuses one as too many. */
  private connectionCap: number;
  /** Business time (ms) at which the gentle restart after a throttle ends; undefined when not recovering. */
  private recoveryEndsAt: number | undefined;
  private readonly sessionBackOff: SessionBackOff;
  private readonly accepted = new AcceptedRecently();
  /** Set when sends in flight were cut on purpose: their failures say nothing about the account. */
  private aborted = false;
  /** performance.now() after which database writes give up (shutdown); Infinity otherwise. */
  private giveUpAt = Infinity;
  private throttleStrikes: number;
  /** Messages were handed back since the last claim: they are claimable again once their outcomes land. */
  private returned = false;
  /** Set when the worker ended because recipient throttles held back every due message: not before then. */
  idleUntil: Date | undefined;

  constructor(
    private readonly ctx: AppContext,
    readonly account: SendingAccount,
    private readonly owner: string,
    private readonly shared: WorkerShared,
    leaseTakenAt: number,
  ) {
    const { username, password, oauth } = credentials(ctx.secrets.secretKey, account);
    const xoauth2 = oauth ? shared.tokens.source(account.id, oauth) : undefined;
    const onSession = (result: string) => ctx.events.emit({ type: 'smtp.session', userId: account.userId, accountId: account.id, result });
    this.transport = new AccountTransport(account.server, { username, password, xoauth2 }, account.connections, { ...transportOptions(ctx.config), onSession });
    const recovering = account.recoveryUntil !== null && account.recoveryUntil > ctx.clock.now();
    this.recoveryEndsAt = recovering ? account.recoveryUntil!.getTime() : undefined;
    this.connectionCap = account.connections;
    this.connections = recovering ? 1 : account.connections;
    this.lease = new AccountLease(ctx, account.id, shared.leases, leaseTakenAt, () => {
      this.halt('lease_lost');
      this.abort();
    });
    this.book = new OutcomeRecorder(ctx, account, shared.outcomes, () => this.lease.takenOver || performance.now() > this.giveUpAt, () => this.halt('error'));
    this.quota = new QuotaHold(ctx, account.id);
    this.claims = new MessageClaims(ctx, account, owner);
    this.pace = new SendPace(recovering ? minRate(account.ratePerSecond, account.recoveryRate) : account.ratePerSecond, ctx.clock, this.notify);
    this.throttleStrikes = account.throttleStrikes;
    this.sessionBackOff = new SessionBackOff(account.throttleStrikes > 0);
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

  async run(): Promise<ExitReason> {
    const { userId } = this.account;
    const offStatus = this.ctx.events.on((e) => this.onEvent(e), { type: 'campaign.status', userId });
    const offAccount = this.ctx.events.on((e) => this.onEvent(e), { type: 'account.changed', userId });
    const unsubscribe = () => {
      offStatus();
      offAccount();
    };
    this.lease.start();
    try {
      while (this.state.name === 'sending' || this.state.name === 'draining') {
        this.pump();
        // The next batch is claimed while half of this one is still queued, so sessions never wait on the database.
        if (this.state.name === 'sending' && !this.refilling && this.queue.length < this.claims.size / 2) this.startRefill();
        if (this.state.name === 'draining' && !this.refilling && this.queue.length === 0 && this.inflight === 0) break;
        await this.wake.wait();
      }
      while (this.inflight > 0 || this.refilling) await this.wake.wait();
    } finally {
      await this.release(unsubscribe);
    }
    return this.exitReason;
  }

  private get exitReason(): ExitReason {
    return this.state.name === 'sending' ? 'error' : this.state.reason;
  }

  /** The one place the worker changes state; a transition the diagram does not have is a bug. */
  private enter(next: WorkerState): void {
    if (!TRANSITIONS[this.state.name].includes(next.name)) throw new Error(`account worker: no transition from ${this.state.name} to ${next.name}`);
    this.state = next;
    this.wake.notify();
  }

  /** Starts no new sends, for `reason`; the first reason given wins. */
  private halt(reason: ExitReason): void {
    if (this.state.name === 'sending' || this.state.name === 'draining') this.enter({ name: 'stopping', reason });
  }

  /** Claims nothing more: there is no work or no quota left. */
  private drain(reason: 'no_work' | 'no_quota'): void {
    if (this.state.name === 'sending') this.enter({ name: 'draining', reason });
  }

  private get mayStartSends(): boolean {
    return this.state.name === 'sending' || this.state.name === 'draining';
  }

  /** Cuts the sends in flight; each is recorded by how far it got (see smtp/transport.ts). */
  private abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.transport.close();
  }

  private fail(err: unknown): void {
    // A transient error after the worker was told to stop is just the retry giving up.
    if (!(this.state.name === 'stopping' && isTransientDbError(err))) this.ctx.log.error({ err, accountId: this.account.id }, 'account worker failed');
    this.halt('error');
  }

  private onEvent(e: AppEvent): void {
    if (e.type === 'account.changed' && e.accountIds.includes(this.account.id)) this.halt('reconfigured');
    if (e.type !== 'campaign.status') return;
    if (this.statuses.onEvent(e.campaignId, e.status)) this.wake.notify();
  }

  /** Starts sends while a session is free: the next message goes out before the last is recorded. */
  private pump(): void {
    this.endRecoveryIfDue();
    while (this.mayStartSends && this.inflight < this.connections && this.queue.length > 0) {
      if (!this.lease.trusted) return this.halt('lease_lost');
      if (this.shared.outcomes.full) return this.shared.outcomes.onRoom(this.notify);
      // The crash bound (outcomeRecorder.ts): a send starts with at most one uncommitted outcome per busy connection.
      if (this.book.uncommitted > this.inflight + 1) return this.book.onCommitted(this.notify);
      const next = this.queue[0]!;
      const { campaignId } = next.msg;
      const pausing = this.shared.localFailures.pausing(campaignId);
      if (pausing) return void pausing.then(this.notify);
      if (!this.pace.take()) return;
      if (!this.statuses.isRunning(campaignId)) {
        this.queue.shift();
        this.book.record({ id: next.msg.id, status: this.statuses.isStopped(campaignId) ? 'cancelled' : 'pending' });
        continue;
      }
      if (this.ctx.clock.now().getTime() >= next.validUntil) {
        // The reservation has ended (its window, the sending window or its hold): what it held goes back at once.
        const ended = this.queue.map((q) => q.holdId);
        this.returnQueued();
        void this.quota.giveBackAll(ended);
        return;
      }
      this.queue.shift();
      this.quota.spend(next.holdId);
      this.claims.sent();
      // After a failed render, the next send waits for that failure to settle (see send).
      if (!this.send(next)) return;
    }
  }

  /** Starts one send; false when its message could not be composed. */
  private send(q: Queued): boolean {
    this.inflight++;
    let raw: Buffer;
    let from: string;
    try {
      // Made bytes at once: the socket writes bytes anyway, and the string, kept until the send
      // ended, was a second copy in the V8 heap of each message in flight (~900 of 4.6 KB at a
      // thousand accounts).
      raw = Buffer.from(this.shared.composer.compose(q.msg, this.account));
      from = this.shared.composer.envelopeSender(q.msg, this.account);
    } catch (err) {
      // Nothing went out, so the reserved send is not used. Settled on a later turn of the event
      // loop, so a batch of failing renders (each up to its budget) never runs in one go.
      this.quota.refund(q.holdId);
      const error = `rendering failed: ${(err as Error).message}`;
      this.shared.localFailures.failed(this.account.userId, q.msg.campaignId, error);
      setImmediate(() => this.settle(q, { kind: 'failed', error, cause: 'local' }, undefined));
      return false;
    }
    this.shared.localFailures.composed(q.msg.campaignId);
    q.attemptedAt = this.ctx.clock.now();
    const gapUntil = this.pace.started(q.attemptedAt);
    if (gapUntil) void setGapUntil(this.ctx.db, this.account.id, gapUntil).catch(() => undefined);
    const startedAt = performance.now();
    void this.transport.send(from, q.msg.email, raw).then((outcome) => this.settle(q, outcome, performance.now() - startedAt));
    return true;
  }

  /** The one place a send's outcome turns into a message transition (smtp/classify.ts decides the outcome). */
  private settle(q: Queued, outcome: SendOutcome, latencyMs: number | undefined): void {
    const { msg } = q;
    this.inflight--;
    this.book.count(outcome.kind, latencyMs);
    const now = this.ctx.clock.now();
    const record = (o: Omit<RecordedOutcome, 'id'>) => this.record(q, o);
    switch (outcome.kind) {
      case 'sent':
        record({ status: 'sent', charged: 1, sentAt: now });
        this.accepted.add();
        this.sessionBackOff.accepted();
        if (this.throttleStrikes > 0) {
          this.throttleStrikes = 0;
          void onSendOutcome(this.ctx, this.account, outcome).catch(() => undefined);
        }
        break;
      case 'unknown':
        // The data went out and the reply was lost: it may well have arrived, so it is never sent again.
        record({ status: 'sent', charged: 1, sentAt: now, error: `possibly delivered: ${outcome.error}`, possiblyDelivered: true });
        break;
      case 'retry':
        this.retryLater(q, outcome.error, outcome.maxAttempts);
        break;
      case 'failed':
        record({ status: 'failed', charged: 1, error: outcome.error, hardBounce: outcome.cause === 'hard_bounce' });
        if (outcome.cause === 'hard_bounce') this.book.bounce(msg.email);
        if (outcome.cause === 'sender_config') this.book.senderWarning(msg.campaignId, outcome.error);
        if (outcome.cause === 'protocol') this.ctx.log.error({ accountId: this.account.id, reply: outcome.error }, 'the SMTP server rejected what MailPilot said');
        break;
      case 'session_ended':
        this.onSessionEnded(q, outcome);
        break;
      default:
        // The account, not the message, is at fault: the message goes back untouched for another
        // account (its reserved send too, since nothing went out), and this one stops.
        record({ status: 'pending' });
        this.quota.refund(q.holdId);
        this.blameAccount(outcome, false);
    }
    this.pump();
    this.wake.notify();
  }

  /** One message's transition; a charged SMTP attempt also counts as a send of the account (a message that could not be composed is no attempt). */
  private record(q: Queued, o: Omit<RecordedOutcome, 'id'>): void {
    this.book.record({ id: q.msg.id, ...o, ...(o.charged && q.attemptedAt ? { attemptedAt: q.attemptedAt, holdId: q.holdId } : {}) });
  }

  /** Temporary trouble with the message: it is charged an attempt and retried later, or fails after its last. */
  private retryLater(q: Queued, error: string, maxAttempts = MAX_ATTEMPTS): void {
    const { attempts } = q.msg;
    if (attempts + 1 >= maxAttempts) this.record(q, { status: 'failed', charged: 1, error });
    else this.record(q, { status: 'pending', charged: 1, error, nextAttemptAt: retryAt(this.ctx.clock.now(), attempts + 1) });
  }

  /**
   * The server ended the session, not the account (engine/sessionBackOff.ts): the message goes back
   * in line, uncharged and with its reserved send back in hand, for a session opened after the
   * back-off. A message whose sessions end again and again while others go through is retried
   * later like a 4xx instead, so none loops. "Too many connections" (432) is answered with fewer of
   * them, and counts as a refusal only at one.
   */
  private onSessionEnded(q: Queued, outcome: Extract<SendOutcome, { kind: 'session_ended' }>): void {
    if (this.aborted) {
      // A deliberate cut ends sessions too: that says nothing about the server.
      this.book.record({ id: q.msg.id, status: 'pending' });
      this.quota.refund(q.holdId);
      return;
    }
    if (outcome.fewerConnections && this.connectionCap > 1) {
      this.quota.refund(q.holdId);
      this.queue.push(q);
      return this.lowerConnections();
    }
    const wait = this.sessionBackOff.ended();
    if (wait === 'escalate') {
      this.book.record({ id: q.msg.id, status: 'pending' });
      this.quota.refund(q.holdId);
      const error = `the server ended ${MAX_QUICK_ENDS} sessions in a row without taking a message; last: ${outcome.error}`;
      return this.blameAccount({ kind: 'account_throttled', error, slowDown: false }, true);
    }
    // Only an end after others went through says something about this message.
    if (this.sessionBackOff.isolated && ++q.sessionEnds >= MAX_ENDS_PER_MESSAGE) this.retryLater(q, outcome.error);
    else {
      this.quota.refund(q.holdId);
      this.queue.push(q);
    }
    this.transport.holdNewSessions(wait);
  }

  /** Stops the worker for the first account-level outcome; it is applied to the account on release. */
  private blameAccount(outcome: AccountOutcome, sessionsRefused: boolean): void {
    // After a deliberate cut the failure says nothing about the account.
    if (this.aborted || this.accountProblem) return;
    this.accountProblem = outcome;
    if (outcome.kind === 'account_throttled') {
      this.throttleSeen = { acceptedLastSecond: this.accepted.lastSecond(), ratePerSecond: this.pace.rate, sessionsRefused };
    }
    this.halt('account_problem');
  }

  /**
   * The server refused a connection as one too many (432 4.3.2): this worker keeps to fewer at
   * once, and so does every later one (stored). A burst of refusals from before the cut lowers once.
   */
  private lowerConnections(): void {
    if (this.inflight + 1 > this.connectionCap) return;
    this.connectionCap = fewerConnections(this.connectionCap);
    this.connections = Math.min(this.connections, this.connectionCap);
    this.transport.limitSessions(this.connectionCap);
    void onTooManyConnections(this.ctx, this.account.id, this.connectionCap).catch((err) =>
      this.ctx.log.warn({ err, accountId: this.account.id }, 'could not store the lowered connection count'),
    );
  }

  /** The gentle restart after a throttle has lasted its time: the account's own connections and pace again. */
  private endRecoveryIfDue(): void {
    if (this.recoveryEndsAt === undefined || this.ctx.clock.now().getTime() < this.recoveryEndsAt) return;
    this.recoveryEndsAt = undefined;
    this.connections = this.connectionCap;
    this.pace.setRate(this.account.ratePerSecond);
  }

  /** Puts every queued, unsent message back in the queue for any account to take. */
  private returnQueued(): void {
    for (const q of this.queue.splice(0)) {
      this.book.record({ id: q.msg.id, status: 'pending' });
      this.returned = true;
    }
  }

  private startRefill(): void {
    this.refilling = this.refill()
      .catch((err) => this.fail(err))
      .finally(() => {
        this.refilling = undefined;
        this.wake.notify();
      });
  }

  /** Reserves quota and claims that many messages (round-robin over the running campaigns). */
  private async refill(): Promise<void> {
    const { db } = this.ctx;
    const now = this.ctx.clock.now();
    const retry = <T>(fn: () => Promise<T>) => retryTransient(fn, () => this.state.name !== 'sending');
    if (this.returned) {
      this.returned = false;
      await this.book.flush();
    }
    const mark = this.statuses.mark();
    const campaigns = await retry(() => runningCampaignIds(db, this.account.userId));
    this.statuses.reconcile(campaigns, mark);
    if (campaigns.length === 0) return this.drain('no_work');
    const held = await retry(() => this.quota.reserve(this.claims.resize(), now));
    if (held.rules) this.pace.setGaps(held.rules, held.gapUntil);
    if (held.granted === 0) {
      const { userId, id: accountId } = this.account;
      if (held.reason) this.ctx.events.emit({ type: 'engine.reservation_refused', userId, accountId, reason: held.reason });
      return this.drain('no_quota');
    }
    // A batch the policy cut short (gaps, a limit near) is all there is to claim until it is spent.
    this.claims.size = Math.min(this.claims.size, held.granted);
    const { messages: claimed, throttled } = await this.claims.claim(campaigns, held.granted, now, retry);
    await this.quota.giveBack(held.holdId, held.granted - claimed.length);
    if (claimed.length === 0) {
      // Only messages that recipient throttles hold back: look again when the next minute's room opens.
      if (throttled) this.idleUntil = new Date((Math.floor(now.getTime() / MINUTE_MS) + 1) * MINUTE_MS);
      return this.drain('no_work');
    }
    await retry(() => this.shared.composer.load(new Set(claimed.map((m) => m.campaignId))));
    const validUntil = held.validUntil.getTime();
    for (const msg of claimed) this.queue.push({ msg, holdId: held.holdId, validUntil, sessionEnds: 0 });
  }

  /** Everything the worker must do before it ends, whatever stopped it. */
  private async release(unsubscribe: () => void): Promise<void> {
    // Still 'sending' here means something threw out of the loop.
    if (this.state.name === 'sending') this.halt('error');
    this.enter({ name: 'releasing', reason: this.exitReason });
    this.pace.stop();
    unsubscribe();
    if (this.aborted) this.transport.close();
    else this.transport.quit();
    this.returnQueued();
    await this.book.flush();
    await this.quota.releaseAll();
    if (this.accountProblem) await this.reportAccountProblem(this.accountProblem);
    await this.releaseAccount();
    this.enter({ name: 'done', reason: this.exitReason });
  }

  private async reportAccountProblem(problem: AccountOutcome): Promise<void> {
    await onSendOutcome(this.ctx, this.account, problem, () => performance.now() > this.giveUpAt, this.throttleSeen).catch((err) =>
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

/** The slower of two paces (null: no pace). */
function minRate(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}
