import type { AppContext } from '../context.ts';
import { noteSenderWarnings } from '../db/campaigns.ts';
import type { Outcome } from '../db/messages.ts';
import { addSuppressions } from '../db/suppressions.ts';
import { retryTransient } from '../db/transient.ts';
import { checkRateGuard } from './rateGuard.ts';
import type { OutcomeWriter } from './outcomeWriter.ts';

export type RecordedOutcome = Partial<Outcome> & Pick<Outcome, 'id' | 'status'>;

/**
 * What became of one account worker's messages, handed to the process's OutcomeWriter (rows and
 * campaign counters land together, fenced by the account lease). A write that fails for a
 * transient reason is retried until it lands or `giveUp()` says the lease is gone: an outcome that
 * never lands leaves a sent message 'sending', and recovery would send it again.
 *
 * Writes are continuous, with no timer: one write at a time, the next starting as soon as the
 * previous returns and carrying everything recorded meanwhile. Batches grow with the send rate
 * and the write latency, not with a flush interval.
 *
 * The crash bound (DESIGN.md 5: only what was on the wire can go out twice). After a crash,
 * recovery requeues every row still 'sending', so what a crash doubles is the sends in flight
 * plus the sends settled whose outcomes had not committed. An account worker starts a send only
 * while its uncommitted outcomes are at most its sends in flight counting the new one (it waits
 * for `onCommitted` otherwise). Each send in flight holds a connection of its own, so then
 * uncommitted + in flight ≤ 2 × the connections open; a send settling moves one from in flight to
 * uncommitted and its connection stays open for the next, so a crash doubles at most 2 × the
 * connections open (2 × the account's connections at most) at any send rate. Per connection: its
 * next message may start before its last outcome has committed, the one after only once it has.
 * What this costs: a connection waits whenever committing an outcome takes longer than sending the
 * next message (README, Capacity).
 */
export class OutcomeRecorder {
  private outcomes: Outcome[] = [];
  private bounces: string[] = [];
  private senderWarnings = new Map<number, string>();
  private tally: Record<string, number> = {};
  private latencies: number[] = [];
  private flushing: Promise<void> = Promise.resolve();
  /** A write is chained and has not taken its rows yet: what is recorded now rides with it. */
  private writeQueued = false;
  private readonly waiting = new Set<() => void>();
  private chargedUncommitted = 0;
  /** False once a batch could not be written: its rows stay 'sending' until the lease is recovered. */
  complete = true;

  constructor(
    private readonly ctx: AppContext,
    private readonly account: { id: number; userId: number },
    private readonly writer: OutcomeWriter,
    private readonly giveUp: () => boolean,
    private readonly onFailure: () => void,
  ) {}

  record(o: RecordedOutcome): void {
    const outcome: Outcome = {
      charged: 0,
      attemptedAt: null,
      holdId: null,
      error: null,
      sentAt: null,
      nextAttemptAt: null,
      possiblyDelivered: false,
      hardBounce: false,
      ...o,
    };
    this.outcomes.push(outcome);
    if (outcome.charged > 0) this.chargedUncommitted++;
    void this.flush();
  }

  /**
   * Outcomes of SMTP attempts (charged) recorded and not yet committed or given up on: the sends
   * a crash now would repeat on top of those in flight.
   */
  get uncommitted(): number {
    return this.chargedUncommitted;
  }

  /** Calls `wake` once the next write has returned (each distinct function once). */
  onCommitted(wake: () => void): void {
    this.waiting.add(wake);
  }

  /** A hard bounce: the address joins the user's suppression list with the next batch. */
  bounce(email: string): void {
    this.bounces.push(email);
  }

  senderWarning(campaignId: number, reply: string): void {
    if (!this.senderWarnings.has(campaignId)) {
      this.senderWarnings.set(campaignId, `the receiving side rejected the sender's domain authentication (SPF/DKIM/DMARC): ${reply}`);
    }
  }

  /** Counts an SMTP outcome by kind, for the account.outcomes event (metrics). */
  count(kind: string, latencyMs: number | undefined): void {
    this.tally[kind] = (this.tally[kind] ?? 0) + 1;
    if (latencyMs !== undefined) this.latencies.push(latencyMs);
  }

  /**
   * Resolves once everything recorded so far has been written (or given up on). One write at a
   * time; the chained write starts on a later microtask, so a bounce or warning noted right after
   * its outcome, in the same turn, rides with it.
   */
  flush(): Promise<void> {
    if (!this.writeQueued) {
      this.writeQueued = true;
      this.flushing = this.flushing.then(() => this.write());
    }
    return this.flushing;
  }

  private async write(): Promise<void> {
    this.writeQueued = false;
    const { ctx, account } = this;
    const batch = this.outcomes.splice(0);
    const charged = batch.reduce((n, o) => n + (o.charged > 0 ? 1 : 0), 0);
    const bounces = this.bounces.splice(0);
    const warnings = this.senderWarnings;
    this.senderWarnings = new Map();
    if (this.latencies.length > 0 || Object.keys(this.tally).length > 0) {
      ctx.events.emit({ type: 'account.outcomes', userId: account.userId, accountId: account.id, counts: this.tally, latenciesMs: this.latencies });
      this.tally = {};
      this.latencies = [];
    }
    if (batch.length === 0 && bounces.length === 0) return;
    try {
      // Both may run twice (a reply lost after its commit): each is idempotent.
      await retryTransient(async () => {
        await addSuppressions(ctx.db, account.userId, bounces, 'hard_bounce', ctx.clock.now());
        await noteSenderWarnings(ctx.db, warnings);
      }, this.giveUp);
      await this.writer.write(
        batch.map((o) => ({ ...o, accountId: account.id })),
        this.giveUp,
      );
    } catch (err) {
      // These rows stay 'sending' under the account; recovering its lease requeues them.
      this.complete = false;
      ctx.log.error({ err, accountId: account.id, messages: batch.length }, 'recording outcomes failed');
      this.onFailure();
      return;
    } finally {
      this.chargedUncommitted -= charged;
      const waiting = [...this.waiting];
      this.waiting.clear();
      // Woken on the next turn: the writer's next statement (OutcomeWriter, queued on this turn) goes
      // to the database first, and the sends these wake-ups start run while it is there.
      if (waiting.length > 0) setImmediate(() => waiting.forEach((wake) => wake()));
    }
    // Hard bounces have just been counted: the account may now be past its user's threshold. Not
    // awaited, so the next write (which sends wait on) does not queue behind the check; pausing twice is a no-op.
    if (batch.some((o) => o.hardBounce)) {
      void checkRateGuard(ctx, account).catch((err) => ctx.log.warn({ err, accountId: account.id }, 'the bounce and complaint rate guard could not look at the account'));
    }
  }
}
