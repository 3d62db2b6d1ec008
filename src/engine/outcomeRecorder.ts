import type { AppContext } from '../context.ts';
import { noteSenderWarnings } from '../db/campaigns.ts';
import type { Outcome } from '../db/messages.ts';
import { addSuppressions } from '../db/suppressions.ts';
import { retryTransient } from '../db/transient.ts';
import { checkRateGuard } from './rateGuard.ts';
import type { OutcomeWriter } from './outcomeWriter.ts';

/** Outcomes are written in batches of this many, or after this long. */
const FLUSH_BATCH = 100;
// Long enough to fill batches at full speed (each statement carries fixed costs), short enough for live counters.
const FLUSH_INTERVAL_MS = 250;

export type RecordedOutcome = Partial<Outcome> & Pick<Outcome, 'id' | 'status'>;

/**
 * What became of one account worker's messages, handed to the process's OutcomeWriter in batches
 * (rows and campaign counters land together, fenced by the account lease). A write that fails for
 * a transient reason is retried until it lands or `giveUp()` says the lease is gone: an outcome
 * that never lands leaves a sent message 'sending', and recovery would send it again.
 */
export class OutcomeRecorder {
  private outcomes: Outcome[] = [];
  private bounces: string[] = [];
  private senderWarnings = new Map<number, string>();
  private tally: Record<string, number> = {};
  private latencies: number[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
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
    this.outcomes.push({
      charged: 0,
      attemptedAt: null,
      holdId: null,
      error: null,
      sentAt: null,
      nextAttemptAt: null,
      possiblyDelivered: false,
      hardBounce: false,
      ...o,
    });
    if (this.outcomes.length >= FLUSH_BATCH) void this.flush();
    else this.flushTimer ??= setTimeout(() => void this.flush(), FLUSH_INTERVAL_MS);
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

  /** Writes what is buffered; one write at a time. */
  flush(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    this.flushing = this.flushing.then(() => this.write());
    return this.flushing;
  }

  private async write(): Promise<void> {
    const { ctx, account } = this;
    const batch = this.outcomes.splice(0);
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
    }
    // Hard bounces have just been counted: the account may now be past its user's threshold.
    if (batch.some((o) => o.hardBounce)) {
      await checkRateGuard(ctx, account).catch((err) => ctx.log.warn({ err, accountId: account.id }, 'the bounce and complaint rate guard could not look at the account'));
    }
  }
}
