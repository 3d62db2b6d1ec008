import type { Transporter } from 'nodemailer';
import type { AppContext } from '../context.ts';
import { runningCampaignIds } from '../db/campaigns.ts';
import type { WorkerAccount } from '../db/engineAccounts.ts';
import { renewLease } from '../db/engineAccounts.ts';
import { claimMessages, recordOutcomes, type ClaimedMessage, type Outcome } from '../db/messages.ts';
import { addSuppressions } from '../db/suppressions.ts';
import { releaseSends, reserveSends } from '../db/usage.ts';
import type { AppEvent } from '../events.ts';
import { decryptSecret } from '../secrets.ts';
import { classifyError, classifyInfo, type SendOutcome } from '../smtp/classify.ts';
import { createAccountTransport } from '../smtp/transport.ts';
import { applyAccountOutcome } from './accountHealth.ts';
import { completeIfFinished } from '../campaigns/lifecycle.ts';
import type { Renderer } from './renderer.ts';
import { retryAt, MAX_ATTEMPTS } from './retry.ts';
import { Signal } from './signal.ts';

/** Messages claimed (and quota reserved) per round trip. */
const CLAIM_BATCH = 100;
/** Claim the next batch when this few are left queued, so connections never wait on the database. */
const REFILL_BELOW = 50;
/** Outcomes are written in batches of this many, or after this long. */
const FLUSH_BATCH = 100;
const FLUSH_INTERVAL_MS = 100;
export const LEASE_TTL_MS = 30_000;
const HEARTBEAT_MS = 5_000;
const FLUSH_RETRIES = 5;

export type ExitReason = 'no_quota' | 'no_work' | 'lease_lost' | 'account_problem' | 'shutdown' | 'error';

interface Queued {
  msg: ClaimedMessage;
  /** The usage hour the send was reserved in, and until when that reservation may be spent. */
  hourStart: number;
  validUntil: number;
}

/**
 * One account's sending loop (promise 1): reserve quota, claim that many messages round-robin over
 * the user's running campaigns, send them over the account's pooled connections, record outcomes
 * in batches, give back what was not spent. Exits when the account has no quota or no work left.
 *
 *   pending ──claim──► sending ──► sent | failed | pending (retry, pause, throttle) | cancelled (stop)
 */
export class AccountWorker {
  private readonly transport: Transporter;
  private queue: Queued[] = [];
  private inflight = 0;
  private outcomes: Outcome[] = [];
  private bounces: string[] = [];
  private tally: Record<string, number> = {};
  private latencies: number[] = [];
  private unspent = new Map<number, number>();
  private campaignStatus = new Map<number, string>();
  /** Sequence number of the last status event per campaign, so a slower database read never overrides it. */
  private statusSeen = new Map<number, number>();
  private eventSeq = 0;
  private cursors = new Map<number, number>();
  private roundRobin = 0;
  private drained = false;
  private halted: ExitReason | undefined;
  private exitReason: ExitReason = 'no_work';
  private refilling: Promise<void> | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private flushTimer: NodeJS.Timeout | undefined;
  private paceTimer: NodeJS.Timeout | undefined;
  private nextSendAt = 0;
  private readonly wake = new Signal();

  constructor(
    private readonly ctx: AppContext,
    readonly account: WorkerAccount,
    private readonly owner: string,
    private readonly renderer: Renderer,
  ) {
    const password = account.passwordEnc
      ? decryptSecret(ctx.secrets.secretKey, account.passwordEnc, `smtp_accounts:${account.id}:password`)
      : null;
    this.transport = createAccountTransport(account, { username: account.username, password }, account.connections);
  }

  /** Asks the loop to stop claiming; sends in flight finish and are recorded. */
  stop(): void {
    this.halt('shutdown');
  }

  async run(): Promise<ExitReason> {
    const unsubscribe = this.ctx.events.on((e) => this.onEvent(e));
    const heartbeat = setInterval(() => void this.heartbeat(), HEARTBEAT_MS);
    try {
      for (;;) {
        if (this.halted) break;
        this.pump();
        if (!this.refilling && !this.drained && this.queue.length < REFILL_BELOW) {
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
      clearInterval(heartbeat);
      clearTimeout(this.paceTimer);
      unsubscribe();
      this.returnQueued();
      await this.flush();
      await this.releaseUnspent();
      this.transport.close();
    }
    return this.halted ?? this.exitReason;
  }

  private halt(reason: ExitReason): void {
    this.halted ??= reason;
    this.wake.notify();
  }

  private fail(err: unknown): void {
    this.ctx.log.error({ err, accountId: this.account.id }, 'account worker failed');
    this.halt('error');
  }

  private onEvent(e: AppEvent): void {
    if (e.type !== 'campaign.status' || e.userId !== this.account.userId) return;
    this.campaignStatus.set(e.campaignId, e.status);
    this.statusSeen.set(e.campaignId, ++this.eventSeq);
    if (e.status !== 'running') this.wake.notify();
  }

  private async heartbeat(): Promise<void> {
    const expires = new Date(this.ctx.clock.now().getTime() + LEASE_TTL_MS);
    const held = await renewLease(this.ctx.db, this.account.id, this.owner, expires).catch(() => true);
    if (!held) this.halt('lease_lost');
  }

  /** Starts sends while a connection is free: the next message goes out before the last is recorded. */
  private pump(): void {
    while (!this.halted && this.inflight < this.account.connections && this.queue.length > 0) {
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
        this.record(next.msg, status === 'stopped' ? { status: 'cancelled' } : { status: 'pending' });
        continue;
      }
      if (this.ctx.clock.now().getTime() >= next.validUntil) {
        // The reservation belongs to a clock hour that has ended: claim again under the new hour.
        this.returnQueued();
        return;
      }
      this.queue.shift();
      this.unspent.set(next.hourStart, this.unspent.get(next.hourStart)! - 1);
      this.send(next.msg);
    }
  }

  private send(msg: ClaimedMessage): void {
    this.inflight++;
    let raw: string;
    try {
      raw = this.renderer.render(msg, this.account);
    } catch (err) {
      this.settle(msg, { kind: 'failed', error: `rendering failed: ${(err as Error).message}`, suppress: false });
      return;
    }
    const startedAt = performance.now();
    this.transport
      .sendMail({ envelope: { from: this.account.email, to: [msg.email] }, raw })
      .then(classifyInfo, classifyError)
      .then((outcome) => {
        this.latencies.push(performance.now() - startedAt);
        this.settle(msg, outcome);
      });
  }

  private settle(msg: ClaimedMessage, outcome: SendOutcome): void {
    this.inflight--;
    this.pump();
    this.tally[outcome.kind] = (this.tally[outcome.kind] ?? 0) + 1;
    const now = this.ctx.clock.now();
    switch (outcome.kind) {
      case 'sent':
        this.record(msg, { status: 'sent', charged: 1, sentAt: now });
        break;
      case 'unknown':
        // The data went out and the reply was lost: it may well have arrived, so never resend it.
        this.record(msg, { status: 'sent', charged: 1, sentAt: now, error: `possibly delivered: ${outcome.error}` });
        break;
      case 'retry':
        if (msg.attempts + 1 >= MAX_ATTEMPTS) this.record(msg, { status: 'failed', charged: 1, error: outcome.error });
        else this.record(msg, { status: 'pending', charged: 1, error: outcome.error, nextAttemptAt: retryAt(now, msg.attempts + 1) });
        break;
      case 'failed':
        this.record(msg, { status: 'failed', charged: 1, error: outcome.error });
        if (outcome.suppress) this.bounces.push(msg.email);
        break;
      default:
        // The account, not the message, is at fault: the message waits for another account.
        this.record(msg, { status: 'pending', error: outcome.error });
        if (!this.halted) {
          this.halt('account_problem');
          void applyAccountOutcome(this.ctx, this.account, outcome).catch((err) => this.fail(err));
        }
    }
    this.wake.notify();
  }

  private record(msg: ClaimedMessage, o: Partial<Outcome> & Pick<Outcome, 'status'>): void {
    this.outcomes.push({ id: msg.id, charged: 0, error: null, sentAt: null, nextAttemptAt: null, ...o });
    if (this.outcomes.length >= FLUSH_BATCH) void this.flush();
    else this.flushTimer ??= setTimeout(() => void this.flush(), FLUSH_INTERVAL_MS);
  }

  /** Puts every queued, unsent message back in the queue for any account to take. */
  private returnQueued(): void {
    for (const q of this.queue.splice(0)) this.record(q.msg, { status: 'pending' });
  }

  private async refill(): Promise<void> {
    const { db } = this.ctx;
    const now = this.ctx.clock.now();
    const readAt = this.eventSeq;
    const campaigns = await runningCampaignIds(db, this.account.userId);
    const running = new Set(campaigns);
    for (const id of new Set([...campaigns, ...this.campaignStatus.keys()])) {
      if ((this.statusSeen.get(id) ?? -1) > readAt) continue;
      if (running.has(id)) this.campaignStatus.set(id, 'running');
      else if (this.campaignStatus.get(id) === 'running') this.campaignStatus.set(id, 'not_running');
    }
    if (campaigns.length === 0) return this.finish('no_work');
    const reservation = await db.transaction((tx) => reserveSends(tx, this.account.id, CLAIM_BATCH, now));
    if (reservation.granted === 0) return this.finish('no_quota');
    const claimed: ClaimedMessage[] = [];
    for (let i = 0; i < campaigns.length && claimed.length < reservation.granted; i++) {
      const campaignId = campaigns[(this.roundRobin + i) % campaigns.length]!;
      claimed.push(...(await this.claimFrom(campaignId, reservation.granted - claimed.length, now)));
    }
    this.roundRobin = (this.roundRobin + 1) % campaigns.length;
    await releaseSends(db, this.account.id, reservation.hourStart, reservation.granted - claimed.length);
    if (claimed.length === 0) return this.finish('no_work');
    await this.renderer.load(new Set(claimed.map((m) => m.campaignId)));
    const hourStart = reservation.hourStart.getTime();
    this.unspent.set(hourStart, (this.unspent.get(hourStart) ?? 0) + claimed.length);
    for (const msg of claimed) this.queue.push({ msg, hourStart, validUntil: reservation.validUntil.getTime() });
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

  /** Writes buffered outcomes; one write at a time, retried on database trouble. */
  private flush(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    this.flushing = this.flushing.then(async () => {
      const batch = this.outcomes.splice(0);
      const bounces = this.bounces.splice(0);
      if (this.latencies.length > 0 || Object.keys(this.tally).length > 0) {
        const { id: accountId, userId } = this.account;
        this.ctx.events.emit({ type: 'account.outcomes', userId, accountId, counts: this.tally, latenciesMs: this.latencies });
        this.tally = {};
        this.latencies = [];
      }
      if (batch.length === 0 && bounces.length === 0) return;
      for (let attempt = 1; ; attempt++) {
        try {
          await addSuppressions(this.ctx.db, this.account.userId, bounces, 'hard_bounce', this.ctx.clock.now());
          const counters = await recordOutcomes(this.ctx.db, this.account.id, this.owner, batch);
          for (const c of counters) this.ctx.events.emit({ type: 'campaign.progress', userId: c.userId, campaignId: c.id });
          const finished = counters.filter((c) => c.sent + c.failed + c.suppressed + c.cancelled >= c.total).map((c) => c.id);
          await completeIfFinished(this.ctx, finished);
          return;
        } catch (err) {
          if (attempt >= FLUSH_RETRIES) {
            // Unrecorded rows stay 'sending' under this account; once the lease lapses the sweep requeues them.
            this.ctx.log.error({ err, accountId: this.account.id }, 'recording outcomes failed');
            this.halt('error');
            return;
          }
          await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
        }
      }
    });
    return this.flushing;
  }

  private async releaseUnspent(): Promise<void> {
    for (const [hourStart, n] of this.unspent) {
      await releaseSends(this.ctx.db, this.account.id, new Date(hourStart), n).catch((err) =>
        this.ctx.log.warn({ err, accountId: this.account.id }, 'could not give back unspent quota'),
      );
    }
    this.unspent.clear();
  }
}
