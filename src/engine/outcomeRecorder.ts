import { completeIfFinished } from '../campaigns/lifecycle.ts';
import type { AppContext } from '../context.ts';
import { noteSenderWarnings } from '../db/campaigns.ts';
import { recordOutcomes, type Outcome } from '../db/messages.ts';
import { addSuppressions } from '../db/suppressions.ts';
import { retryTransient } from '../db/transient.ts';

/** Outcomes are written in batches of this many, or after this long. */
const FLUSH_BATCH = 100;
const FLUSH_INTERVAL_MS = 100;

export type RecordedOutcome = Partial<Outcome> & Pick<Outcome, 'id' | 'status'>;

/**
 * What became of one account worker's messages, written in batches: one statement per batch for
 * the rows and their campaign counters, fenced by the account lease. A write that fails for a
 * transient reason is retried until it lands or `giveUp()` says the lease is gone: an outcome
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
    private readonly owner: string,
    private readonly giveUp: () => boolean,
    private readonly onFailure: () => void,
  ) {}

  record(o: RecordedOutcome): void {
    this.outcomes.push({ charged: 0, error: null, sentAt: null, nextAttemptAt: null, possiblyDelivered: false, ...o });
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
    let counters;
    try {
      // Every statement here may run twice (a reply lost after its commit): each is idempotent, and
      // recordOutcomes touches only rows still 'sending', so counters never count twice.
      counters = await retryTransient(async () => {
        await addSuppressions(ctx.db, account.userId, bounces, 'hard_bounce', ctx.clock.now());
        await noteSenderWarnings(ctx.db, warnings);
        return recordOutcomes(ctx.db, account.id, this.owner, batch);
      }, this.giveUp);
    } catch (err) {
      // These rows stay 'sending' under the account; recovering its lease requeues them.
      this.complete = false;
      ctx.log.error({ err, accountId: account.id, messages: batch.length }, 'recording outcomes failed');
      this.onFailure();
      return;
    }
    for (const c of counters) ctx.events.emit({ type: 'campaign.progress', userId: c.userId, campaignId: c.id });
    const finished = counters.filter((c) => c.sent + c.failed + c.suppressed + c.cancelled >= c.total).map((c) => c.id);
    // The scheduler also completes finished campaigns on every pass, so a failure here only delays it.
    await completeIfFinished(ctx, finished).catch((err) => ctx.log.warn({ err }, 'could not complete finished campaigns'));
  }
}
